//! RTMPS ingest with real clients and certificates made here by the `openssl` CLI: ffmpeg
//! (`rtmps://`) and GStreamer (`rtmp2sink`, GLib's TLS) record packet-exact over TLS; the
//! certificate files are replaced while ingest runs and the next connection is served the new
//! certificate (read back with `openssl s_client`), without a restart; a broken replacement is
//! refused once in the log and the previous certificate stays served; a plain RTMP client on the
//! TLS port and TLS on the plain port are refused at once while a stream beside them records
//! exactly; bad TLS configuration ends the start with exit 2 naming the file; under socket
//! activation the socket named `rtmps` speaks TLS.

use crate::support::{
    self, Turn, free_port, http as http_common, ingest, port_open, run_fails, wait_until, words,
};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ingest::*;

/// Seconds each publisher sends: one chunk (the harness records 10 s chunks).
const SECS: u32 = 3;

/// A certificate and key pair written by `openssl req`, and the fingerprint openssl reads
/// from the certificate file (`sha256 Fingerprint=AB:...`).
struct Pair {
    cert: PathBuf,
    key: PathBuf,
    fingerprint: String,
}

fn openssl() -> Command {
    support::ensure_apt("openssl", "openssl");
    Command::new("openssl")
}

/// A self-signed P-256 certificate for `name` with serial `serial`, in `dir/name.{crt,key}`.
fn make_pair(dir: &Path, name: &str, serial: u32) -> Pair {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    support::run_ok(
        openssl()
            .args(["req", "-x509", "-newkey", "ec"])
            .args([
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
            ])
            .args(["-subj", &format!("/CN={name}")])
            .args(["-set_serial", &serial.to_string()])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        "openssl req -x509",
    );
    let out = support::run_ok(
        openssl()
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(&cert),
        "openssl x509 -fingerprint",
    );
    Pair {
        cert,
        key,
        fingerprint: String::from_utf8_lossy(&out.stdout).trim().to_string(),
    }
}

/// Copies `from` over `to` as certbot's renewal does: a new file renamed into place.
fn replace(from: &Path, to: &Path) {
    let tmp = to.with_extension("new");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, to).unwrap();
}

/// The fingerprint of the certificate a TLS server on `port` presents, as openssl reads it.
fn served_fingerprint(port: u16) -> String {
    let shown = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("running openssl s_client");
    let mut x509 = openssl()
        .args(["x509", "-noout", "-fingerprint", "-sha256"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running openssl x509");
    x509.stdin.take().unwrap().write_all(&shown.stdout).unwrap();
    let out = x509.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "no certificate from 127.0.0.1:{port}: s_client said:\n{}",
        String::from_utf8_lossy(&shown.stdout)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `ingest` with plain RTMP on its harness port, RTMPS on `tls_port` with `pair`, and HTTP
/// on the port returned.
fn start_with_tls(dir: &Path, tls_port: u16, pair: &Pair) -> (Recorder, u16) {
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let (cert, key) = (pair.cert.to_str().unwrap(), pair.key.to_str().unwrap());
    let (mut rec, http_port) = http_common::start_with_http(
        dir,
        &[
            "--tls-listen",
            &tls_addr,
            "--tls-cert",
            cert,
            "--tls-key",
            key,
        ],
    );
    wait_until(Duration::from_secs(10), "the RTMPS port", || {
        port_open(tls_port)
    });
    assert!(rec.exited().is_none(), "{}", show_log(&rec.log));
    (rec, http_port)
}

fn opts(dir: &Path, name: &str) -> PublishOpts {
    let mut o = PublishOpts::new(dir, name);
    (o.width, o.height) = (320, 240);
    o
}

/// Chunks of `label` in `remux/`, oldest first.
fn chunks_of(rec: &Recorder, label: &str) -> Vec<PathBuf> {
    rec.chunks()
        .into_iter()
        .filter(|c| {
            c.file_name()
                .unwrap()
                .to_string_lossy()
                .contains(&format!("_live_{label}_"))
        })
        .collect()
}

fn wait_chunk_of(rec: &Recorder, label: &str) -> Vec<PathBuf> {
    wait_until(Duration::from_secs(30), &format!("{label}'s chunk"), || {
        chunks_of(rec, label).len() == 1 && rec.open_chunks().is_empty()
    });
    chunks_of(rec, label)
}

#[test]
fn ffmpeg_and_gstreamer_record_over_rtmps_and_a_renewed_certificate_is_served_without_restart() {
    let dir = Turn::shared().scratch();
    let live = dir.path().join("live");
    std::fs::create_dir(&live).unwrap();
    let first = make_pair(dir.path(), "first", 1001);
    let second = make_pair(dir.path(), "second", 2002);
    assert_ne!(first.fingerprint, second.fingerprint);
    // The files ingest reads, as certbot's live/ directory holds them.
    let served = Pair {
        cert: live.join("fullchain.pem"),
        key: live.join("privkey.pem"),
        fingerprint: String::new(),
    };
    replace(&first.cert, &served.cert);
    replace(&first.key, &served.key);
    let tls_port = free_port();
    let (mut rec, _) = start_with_tls(dir.path(), tls_port, &served);
    let pid = rec.pid();
    assert_eq!(served_fingerprint(tls_port), first.fingerprint);

    let url = format!("rtmps://127.0.0.1:{tls_port}/live/cam");
    let mut ffmpeg = ffmpeg_publish(&url, SECS, &opts(dir.path(), "ffmpeg"));
    ffmpeg.wait_ok(Duration::from_secs(30));
    let cam = wait_chunk_of(&rec, "cam");
    check_chunks_against_reference(&cam, &ffmpeg.reference, "live", "cam");
    let cam_bytes = std::fs::read(&cam[0]).unwrap();

    // Renewal, one file at a time: between the two the old pair is served (the new
    // certificate does not fit the old key), and once both are there the very next connection
    // gets the new certificate. A renewal that goes right logs no error.
    replace(&second.cert, &served.cert);
    assert_eq!(served_fingerprint(tls_port), first.fingerprint);
    replace(&second.key, &served.key);
    assert_eq!(served_fingerprint(tls_port), second.fingerprint);
    assert!(
        !rec.log_text().contains("not usable"),
        "{}",
        show_log(&rec.log)
    );
    let url = format!("rtmps://127.0.0.1:{tls_port}/live/gst");
    // The certificate is self-signed: GLib must not validate it.
    let mut gst = gst_publish_with(
        &url,
        "tls-validation-flags=0",
        SECS,
        &opts(dir.path(), "gst"),
    );
    gst.wait_ok(Duration::from_secs(30));
    let gst_chunks = wait_chunk_of(&rec, "gst");
    check_chunks_against_reference(&gst_chunks, &gst.reference, "live", "gst");

    // A broken replacement: the certificate file rewritten in place with PEM that is not.
    std::fs::write(
        &served.cert,
        "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    // Within the first seconds it may be a renewal under way (noted at debug); after that it
    // is refused with an error, once.
    let refusal = "changed certificate files are not usable";
    wait_until(Duration::from_secs(10), "the broken file refused", || {
        assert_eq!(served_fingerprint(tls_port), second.fingerprint);
        rec.log_text().contains(refusal)
    });
    for _ in 0..3 {
        assert_eq!(served_fingerprint(tls_port), second.fingerprint);
    }

    assert_eq!(rec.pid(), pid);
    assert!(
        rec.exited().is_none(),
        "ingest exited\n{}",
        show_log(&rec.log)
    );
    assert_eq!(
        std::fs::read(&cam[0]).unwrap(),
        cam_bytes,
        "the first recording changed"
    );
    let log = rec.log_text();
    let second_hex = second.fingerprint.rsplit('=').next().unwrap();
    let reloads: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("certificate files changed"))
        .collect();
    assert_eq!(reloads.len(), 1, "{reloads:?}");
    assert!(reloads[0].contains(second_hex), "{}", reloads[0]);
    let refused: Vec<&str> = log.lines().filter(|l| l.contains(refusal)).collect();
    assert_eq!(
        refused.len(),
        1,
        "one line for one broken pair: {refused:?}"
    );
    assert!(
        refused[0].contains(served.cert.to_str().unwrap())
            && refused[0].contains("not base64")
            && refused[0].contains(second_hex),
        "the line names the file, the problem and the certificate still served: {}",
        refused[0]
    );
    assert!(!log.contains("panicked"), "{}", show_log(&rec.log));
    rec.terminate(Duration::from_secs(10));
}

/// Reads until the peer closes; panics if that takes longer than `within`.
fn closed_within(mut s: TcpStream, within: Duration) -> Vec<u8> {
    s.set_read_timeout(Some(within)).unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset after the alert is a refusal too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "the connection was not closed within {within:?} ({:?}): {e}",
                started.elapsed()
            ),
        }
    }
}

/// The first bytes a TLS client sends: a ClientHello record (its content does not matter to a
/// server that expects RTMP's C0 = 3).
fn client_hello() -> Vec<u8> {
    let mut hello = vec![
        0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03,
    ];
    hello.extend_from_slice(&[0x5a; 32]);
    hello.extend_from_slice(&[0x00, 0x00, 0x02, 0x13, 0x01, 0x01, 0x00, 0x00, 0x00]);
    hello
}

#[test]
fn the_wrong_protocol_on_either_port_is_refused_while_a_stream_records() {
    let dir = Turn::shared().scratch();
    let pair = make_pair(dir.path(), "server", 7);
    let tls_port = free_port();
    let (mut rec, http_port) = start_with_tls(dir.path(), tls_port, &pair);

    let url = format!("rtmps://127.0.0.1:{tls_port}/live/good");
    let mut good = ffmpeg_publish(&url, SECS + 1, &opts(dir.path(), "good"));
    wait_until(Duration::from_secs(20), "the good stream recording", || {
        !rec.open_chunks().is_empty()
    });

    // Plain RTMP's C0+C1 on the TLS port: an alert (content type 21) and the close.
    let mut plain = TcpStream::connect(("127.0.0.1", tls_port)).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend_from_slice(&[0u8; 1536]);
    plain.write_all(&c0c1).unwrap();
    let answer = closed_within(plain, Duration::from_secs(3));
    assert_eq!(
        answer.first(),
        Some(&21),
        "expected a TLS alert, got {answer:?}"
    );
    // TLS on the plain port: closed without an RTMP answer.
    let mut tls = TcpStream::connect(("127.0.0.1", rec.port)).unwrap();
    tls.write_all(&client_hello()).unwrap();
    let answer = closed_within(tls, Duration::from_secs(3));
    assert!(
        answer.is_empty(),
        "the plain port answered a ClientHello with {answer:?}"
    );
    // Real clients: ffmpeg speaking rtmp:// to the TLS port, openssl to the plain one.
    let started = Instant::now();
    run_fails(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error"])
            .args(words("-f lavfi -i testsrc2=size=320x240:rate=30 -t 1"))
            .args(["-c:v", "libx264", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{tls_port}/live/wrong")),
        "ffmpeg publishing plain RTMP to RTMPS",
    );
    run_fails(
        Command::new("openssl").args(["s_client", "-connect", &format!("127.0.0.1:{}", rec.port)]),
        "a TLS handshake on the plain port",
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "refusals took {:?}",
        started.elapsed()
    );

    good.wait_ok(Duration::from_secs(30));
    let chunks = wait_chunk_of(&rec, "good");
    check_chunks_against_reference(&chunks, &good.reference, "live", "good");
    assert!(
        rec.exited().is_none(),
        "ingest exited\n{}",
        show_log(&rec.log)
    );
    let log = rec.log_text();
    assert!(!log.contains("panicked"), "{}", show_log(&rec.log));
    assert!(
        !all_names(&rec.state).iter().any(|n| n.contains("wrong")),
        "the refused client recorded"
    );
    // Two failed TLS handshakes: one warning, the other at debug.
    let warned = log
        .lines()
        .filter(|l| l.starts_with("WARN") && l.contains("TLS handshake failed"))
        .count();
    assert_eq!(warned, 1, "{}", show_log(&rec.log));
    // Both counted for /metrics, beside the certificate's expiry as openssl reads it.
    let metrics = http_common::get(http_port, "/metrics", &[]);
    let samples = http_common::parse_metrics(&metrics.text());
    let failures = http_common::value(&samples, "rtmp_recorder_tls_handshake_failures_total", &[]);
    assert_eq!(failures, 2.0, "{}", metrics.text());
    let expiry = http_common::value(
        &samples,
        "rtmp_recorder_tls_certificate_expiry_timestamp_seconds",
        &[],
    );
    assert_eq!(expiry, not_after(&pair.cert) as f64);
    // Made with `-days 2`: ingest warned at start that it expires within two weeks, once.
    let expiring = log
        .lines()
        .filter(|l| l.starts_with("WARN") && l.contains("certificate expires in"))
        .count();
    assert_eq!(expiring, 1, "{}", show_log(&rec.log));
    rec.terminate(Duration::from_secs(10));
}

/// The certificate's `notAfter` in Unix seconds, as `openssl x509 -enddate` prints it
/// (`notAfter=2026-12-08 16:20:19Z`), converted by GNU date.
fn not_after(cert: &Path) -> i64 {
    let out = support::run_ok(
        openssl()
            .args(["x509", "-noout", "-enddate", "-dateopt", "iso_8601", "-in"])
            .arg(cert),
        "openssl x509 -enddate",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let when = text.trim().trim_start_matches("notAfter=");
    let out = support::run_ok(Command::new("date").args(["-u", "+%s", "-d", when]), "date");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Runs `ingest` with `args` (no plain port taken from the harness) and expects exit 2 with
/// every one of `said` in its output.
fn refused_start(dir: &Path, args: &[&str], said: &[&str]) {
    let mut cmd = Command::new(support::BIN);
    clean_env(&mut cmd);
    let out = cmd
        .arg("--state-dir")
        .arg(dir.join("state"))
        .args(["ingest", "--listen", &format!("127.0.0.1:{}", free_port())])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
    for s in said {
        assert!(text.contains(s), "{args:?}: expected {s:?} in: {text}");
    }
}

#[test]
fn bad_tls_configuration_ends_the_start_naming_the_file() {
    let dir = Turn::shared().scratch();
    let good = make_pair(dir.path(), "good", 1);
    let other = make_pair(dir.path(), "other", 2);
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not PEM\n").unwrap();
    let missing = dir.path().join("missing.key");
    let listen = format!("127.0.0.1:{}", free_port());
    let s = |p: &Path| p.to_str().unwrap().to_string();

    refused_start(dir.path(), &["--tls-listen", &listen], &["--tls-cert"]);
    refused_start(
        dir.path(),
        &["--tls-listen", &listen, "--tls-cert", &s(&good.cert)],
        &["--tls-key"],
    );
    refused_start(
        dir.path(),
        &["--tls-listen", &listen, "--tls-cert", &s(&garbage)],
        &["--tls-key"],
    );
    let with = |cert: &Path, key: &Path| {
        vec![
            "--tls-listen".to_string(),
            listen.clone(),
            "--tls-cert".into(),
            s(cert),
            "--tls-key".into(),
            s(key),
        ]
    };
    let cases: [(Vec<String>, Vec<String>); 4] = [
        (
            with(&garbage, &good.key),
            vec![s(&garbage), "-----BEGIN CERTIFICATE-----".into()],
        ),
        (
            with(&good.cert, &garbage),
            vec![s(&garbage), "no private key".into()],
        ),
        (
            with(&good.cert, &missing),
            vec![s(&missing), "No such file".into()],
        ),
        (
            with(&good.cert, &other.key),
            vec![s(&good.cert), s(&other.key), "does not belong".into()],
        ),
    ];
    for (args, said) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let said: Vec<&str> = said.iter().map(String::as_str).collect();
        refused_start(dir.path(), &args, &said);
    }
}

#[test]
fn the_socket_named_rtmps_speaks_tls_under_socket_activation() {
    let dir = Turn::shared().scratch();
    let pair = make_pair(dir.path(), "activated", 3);
    let (rtmp, rtmps) = (free_port(), free_port());
    let log = dir.path().join("service.log");
    let spawn = |with_cert: bool| {
        let mut cmd = Command::new(support::require_tool(
            "systemd-socket-activate",
            "apt-get install systemd",
        ));
        clean_env(&mut cmd);
        // RTMPS first: ingest must go by the names, not by the order.
        cmd.args(["-l", &format!("127.0.0.1:{rtmps}")])
            .args(["-l", &format!("127.0.0.1:{rtmp}")])
            .arg("--fdname=rtmps:rtmp")
            .arg(support::BIN)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .arg("ingest");
        if with_cert {
            cmd.arg("--tls-cert")
                .arg(&pair.cert)
                .arg("--tls-key")
                .arg(&pair.key);
        }
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("spawning systemd-socket-activate")
    };

    // Without a certificate, the first connection starts ingest, which exits 2 saying why.
    let mut activator = spawn(false);
    wait_until(Duration::from_secs(10), "the activator listening", || {
        port_open(rtmps)
    });
    // (systemd-socket-activate execs ingest in its own process.)
    let status = wait_child(
        &mut activator,
        Duration::from_secs(10),
        "ingest without a certificate",
        &log,
    );
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(2), "{said}");
    assert!(said.contains("TLS_CERT_FILE"), "{said}");

    let mut activator = spawn(true);
    wait_until(Duration::from_secs(10), "the activator listening", || {
        port_open(rtmps)
    });
    assert_eq!(served_fingerprint(rtmps), pair.fingerprint);
    // The other socket is plain RTMP: a TLS client is refused there.
    let s_client = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{rtmp}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!s_client.status.success(), "TLS on the rtmp socket");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("(RTMPS)"), "{text}");
    signal(activator.id(), libc::SIGTERM);
    let _ = wait_child(
        &mut activator,
        Duration::from_secs(10),
        "ingest after SIGTERM",
        &log,
    );
}

/// A TLS client that connects, waits `delay`, does the TLS handshake (not checking the
/// certificate) and then sends nothing; returns (seconds to the end of the TLS handshake,
/// seconds until the server closed), both from the connect; `None` when the server closed
/// before the TLS handshake.
fn stalled_tls_client(port: u16, delay: Duration) -> Option<(f64, f64)> {
    let script = r#"
import socket, ssl, sys, time
port, delay = int(sys.argv[1]), float(sys.argv[2])
start = time.monotonic()
raw = socket.create_connection(("127.0.0.1", port))
time.sleep(delay)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
try:
    tls = ctx.wrap_socket(raw)
except (ConnectionError, ssl.SSLError):
    print("refused")
    sys.exit(0)
handshake = time.monotonic() - start
try:
    while tls.recv(4096):
        pass
except (ConnectionError, ssl.SSLError):
    pass
print(f"{handshake:.3f} {time.monotonic() - start:.3f}")
"#;
    let out = support::run_ok(
        Command::new("python3")
            .args(["-c", script, &port.to_string()])
            .arg(delay.as_secs_f64().to_string()),
        "python3 TLS client",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    if text.trim() == "refused" {
        return None;
    }
    let mut it = text.split_whitespace().map(|n| n.parse::<f64>().unwrap());
    Some((it.next().unwrap(), it.next().unwrap()))
}

#[test]
fn tls_connections_share_the_connection_limit_and_the_handshake_deadline() {
    let dir = Turn::shared().scratch();
    let pair = make_pair(dir.path(), "limits", 9);
    let tls_port = free_port();
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let rec = Recorder::start(
        dir.path(),
        &[
            "--tls-listen",
            &tls_addr,
            "--tls-cert",
            pair.cert.to_str().unwrap(),
            "--tls-key",
            pair.key.to_str().unwrap(),
            "--max-connections",
            "1",
            "--handshake-timeout",
            "3s",
        ],
    );
    wait_until(Duration::from_secs(10), "the RTMPS port", || {
        port_open(tls_port)
    });
    // A TLS handshake by openssl, which ends at once (stdin is empty).
    let handshake = || {
        Command::new("openssl")
            .args(["s_client", "-connect", &tls_addr])
            .stdin(Stdio::null())
            .output()
            .unwrap()
            .status
            .success()
    };
    // Wait until the harness's probes are gone and a TLS client gets the only slot.
    wait_until(Duration::from_secs(10), "a TLS handshake", handshake);

    // A plain connection holds the only slot (it stays silent, so for up to 3 s): a TLS
    // client is turned away.
    let holder = TcpStream::connect(("127.0.0.1", rec.port)).unwrap();
    wait_until(Duration::from_secs(2), "the TLS client turned away", || {
        !handshake()
    });
    assert!(
        rec.log_text().contains("reached --max-connections"),
        "{}",
        show_log(&rec.log)
    );
    drop(holder);

    // The TLS handshake counts against --handshake-timeout: a client that spends 2 s before
    // its TLS handshake and then says nothing is closed 3 s after it connected, not 3 s after
    // its TLS handshake.
    let mut timing = None;
    wait_until(Duration::from_secs(15), "the slot free again", || {
        timing = stalled_tls_client(tls_port, Duration::from_secs(2));
        timing.is_some()
    });
    let (handshake, closed) = timing.unwrap();
    eprintln!("TLS handshake at {handshake} s, closed at {closed} s after connecting");
    assert!(handshake >= 2.0, "TLS handshake after {handshake} s");
    assert!(
        (2.9..4.0).contains(&closed),
        "closed {closed} s after connecting (TLS handshake at {handshake} s); \
         --handshake-timeout is 3 s\n{}",
        show_log(&rec.log)
    );
}
