//! Who may publish and under which name, over real sockets with real ffmpeg publishers:
//! - names map reversibly: `live/cam/1` and `live/cam-1` published at once record apart, and
//!   `камера1` stays readable, in chunk names and object keys (`file://` destination), and
//!   `clip live/cam/1` finds its stream by the same mapping;
//! - a name too long for a file is refused with `BadName` before `Publish.Start`;
//! - a query on the app (`live?token=SECRET/cam`) reaches no file name, object key or log line,
//!   and a newline in a name cannot forge a log line;
//! - signed tokens (made by `rtmp-recorder token`, and independently by openssl) admit until
//!   they expire; altered or expired ones are refused with the reason;
//! - the publish hook admits one stream, refuses another, and one it leaves hanging is refused
//!   after its timeout while another stream records;
//! - a NUL in a stream name (sent by a hand-built client: ffmpeg cannot) panics nothing.
//!
//! Publishes are short (2-3 s of 320x240 video) so the file stays fast.

use crate::support::{self, Turn, free_port, ingest, port_open, rtmp, wait_until, words};

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ingest::*;

const FPS: u32 = 30;

/// ffmpeg publishing `secs` s of 320x240 H.264 (30 fps, 1 s GOP) to `url`, with the app and
/// playpath given apart when `names` is set (so a stream name may hold `/` or a newline).
fn publish(url: &str, names: Option<(&str, &str)>, secs: u32, log: &Path) -> Child {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-re"])
        .args(["-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size=320x240:rate={FPS}"))
        .args(["-t", &secs.to_string()])
        .args(words("-c:v libx264 -preset ultrafast -pix_fmt yuv420p"))
        .args(["-g", "30", "-f", "flv"]);
    if let Some((app, playpath)) = names {
        cmd.args(["-rtmp_app", app, "-rtmp_playpath", playpath]);
    }
    cmd.arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("spawning ffmpeg")
}

/// Waits for a publisher; whether it exited successfully.
fn finish(child: &mut Child, log: &Path) -> bool {
    wait_child(child, Duration::from_secs(40), "ffmpeg", log).success()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The first chunk's MP4 among `files` whose name holds `_{app}_{stream}_` (the node's id
/// follows the sequence).
fn chunk_of(files: &[PathBuf], app: &str, stream: &str) -> PathBuf {
    let marker = format!("_{app}_{stream}_000001-");
    let found: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.contains(&marker) && name.ends_with(".mp4")
        })
        .collect();
    assert_eq!(found.len(), 1, "one chunk {marker} among {files:?}");
    found[0].clone()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn names_map_reversibly_and_what_cannot_be_recorded_is_refused_first() {
    let dir = Turn::shared().scratch();
    let port = free_port();
    let log = dir.path().join("run.log");
    let published = dir.path().join("published");
    let state = dir.path().join("state");
    let mut run = start_run_to_files(
        &state,
        &published,
        port,
        &log,
        &["--log-level", "debug"],
        &["--chunk-duration", "1s"],
    );
    let base = format!("rtmp://127.0.0.1:{port}");
    let long = "x".repeat(300);
    let forged = "cam\n[FORGED] publish started";
    // ffmpeg takes the app up to the first `/` after the host and sends all of it:
    // `live?token=SECRET0xA` here.
    let query_app = format!("{base}/live?token=SECRET0xA/cam");
    let url = format!("{base}/x/y");
    // (what, URL, app and playpath when given apart, secs, recorded as (app, stream) or refused)
    type Case<'a> = (
        &'a str,
        &'a str,
        Option<(&'a str, &'a str)>,
        u32,
        Option<(&'a str, &'a str)>,
    );
    let (url, query_app) = (url.as_str(), query_app.as_str());
    let cases: [Case; 6] = [
        (
            "slash",
            url,
            Some(("live", "cam/1")),
            3,
            Some(("live", "cam%2F1")),
        ),
        (
            "dash",
            url,
            Some(("live", "cam-1")),
            3,
            Some(("live", "cam-1")),
        ),
        (
            "cyrillic",
            url,
            Some(("live", "камера1")),
            2,
            Some(("live", "камера1")),
        ),
        ("query-app", query_app, None, 2, Some(("live", "cam"))),
        (
            "newline",
            url,
            Some(("live", forged)),
            2,
            Some(("live", "cam%0A%5BFORGED%5D%20publish%20started")),
        ),
        ("long", url, Some(("live", long.as_str())), 2, None),
    ];
    let mut running: Vec<_> = cases
        .iter()
        .map(|(what, url, names, secs, _)| {
            let flog = dir.path().join(format!("{what}.log"));
            (publish(url, *names, *secs, &flog), flog)
        })
        .collect();
    for ((child, flog), (what, _, _, _, expect)) in running.iter_mut().zip(&cases) {
        let ok = finish(child, flog);
        assert_eq!(ok, expect.is_some(), "{what}: ffmpeg said\n{}", read(flog));
    }
    // The long name heard why, before anything was sent (no Publish.Start: ffmpeg fails at once).
    let long_log = read(&dir.path().join("long.log"));
    assert!(
        long_log.contains("stream name too long"),
        "ffmpeg was not told why: {long_log}"
    );
    let recorded = cases.iter().filter(|c| c.4.is_some()).count();
    wait_until(Duration::from_secs(60), "every chunk published", || {
        let pending: usize = ["recording", "remux", "publish"]
            .iter()
            .map(|d| std::fs::read_dir(state.join(d)).map_or(0, |e| e.count()))
            .sum();
        pending == 0
            && support::files_under(&published)
                .iter()
                .filter(|p| p.extension().is_some_and(|e| e == "mp4"))
                .count()
                >= recorded
    });

    let objects = support::files_under(&published);
    let archived = files_with_ext(&state.join("archive"), "flv");
    for (what, _, _, secs, expect) in &cases {
        let Some((app, stream)) = expect else {
            continue;
        };
        // Every frame sent is in the one chunk (1 s target, but 3 s of a 1 s GOP is 1-3 chunks:
        // count over the stream's chunks).
        let flvs: Vec<&PathBuf> = archived
            .iter()
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.contains(&format!("_{app}_{stream}_"))
            })
            .collect();
        let video: u64 = flvs.iter().map(|f| count_packets(f).0).sum();
        assert_eq!(video, (secs * FPS) as u64, "{what}: frames of {flvs:?}");
        // Its object key holds the mapped names as folders.
        let mp4 = chunk_of(&objects, app, stream);
        let rel = mp4
            .strip_prefix(&published)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            rel.starts_with(&format!("{app}/{stream}/")),
            "{what}: key {rel}"
        );
    }
    run_clip(dir.path(), &published, &objects);

    ingest::signal(run.id(), libc::SIGTERM);
    wait_child(&mut run, Duration::from_secs(30), "run", &log);
    let text = read(&log);
    for secret in ["SECRET0xA", "token="] {
        assert!(!text.contains(secret), "{secret} in the log:\n{text}");
        let names = all_names(dir.path().join("state").as_path());
        assert!(!names.iter().any(|n| n.contains(secret)), "{names:?}");
        let keys = all_names(&published);
        assert!(!keys.iter().any(|n| n.contains(secret)), "{keys:?}");
    }
    // No line starts with what the name tried to forge; the refusal of the long name says
    // why and shows the name cut short.
    assert!(
        !text.lines().any(|l| l.starts_with("[FORGED]")),
        "a forged line:\n{text}"
    );
    let refusal = text
        .lines()
        .find(|l| l.contains("refused: stream name too long"))
        .unwrap_or_else(|| panic!("no refusal line:\n{text}"));
    assert!(
        refusal.contains("...(300 bytes)") && refusal.len() < 400,
        "{refusal}"
    );
    assert!(
        !all_names(&state).iter().any(|n| n.contains("xxxxxxxx")),
        "the refused name left files"
    );
}

/// `clip live/cam/1` finds the stream published as `cam/1`, not `cam-1`.
fn run_clip(dir: &Path, published: &Path, objects: &[PathBuf]) {
    let json = chunk_of(objects, "live", "cam%2F1").with_extension("json");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let start = manifest["utc_start"].as_str().unwrap().to_string();
    let start_ms = rtmp_recorder::utc::Civil::parse_rfc3339_millis(&start).unwrap();
    let to = rtmp_recorder::utc::Civil::from_unix_millis(start_ms + 500).rfc3339();
    let out = dir.join("clip.mp4");
    let mut cmd = Command::new(support::BIN);
    clean_env(&mut cmd);
    let o = cmd
        .arg("--state-dir")
        .arg(dir.join("no-state"))
        .args(["clip", "live/cam/1", "--from", &start, "--to", &to, "-o"])
        .arg(&out)
        .arg("--destination")
        .arg(format!("file://{}", published.display()))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(count_packets(&out).0 > 0);
}

#[test]
fn signed_tokens_admit_until_they_expire() {
    let dir = Turn::shared().scratch();
    let secret_file = dir.path().join("publish-secret");
    let secret = "test-secret-7f3a9c1e5b";
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let rec = Recorder::start(
        dir.path(),
        &[
            "--publish-secret",
            secret_file.to_str().unwrap(),
            "--allowed-apps",
            "live",
        ],
    );
    let base = format!("rtmp://127.0.0.1:{}", rec.port);
    let mut cmd = Command::new(support::BIN);
    clean_env(&mut cmd);
    cmd.env("PUBLISH_SECRET_FILE", &secret_file).args([
        "token",
        "live/cam1",
        "--valid-for",
        "1h",
        "--url",
        &base,
    ]);
    let made = support::run_ok(&mut cmd, "rtmp-recorder token");
    let good = String::from_utf8(made.stdout).unwrap().trim().to_string();
    assert!(
        good.starts_with(&format!("{base}/live/cam1?exp=")),
        "{good}"
    );

    let sign = |app: &str, stream: &str, exp: u64| {
        let sig = support::openssl_hmac(&format!("key:{secret}"), &format!("{app}/{stream}:{exp}"));
        format!("{base}/{app}/{stream}?exp={exp}&sig={sig}")
    };
    // The command's token is the one openssl computes for the same expiry.
    let exp: u64 = good
        .split("exp=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(exp > unix_now() + 3500 && exp <= unix_now() + 3600, "{exp}");
    assert_eq!(good, sign("live", "cam1", exp));
    let expired = sign("live", "cam2", unix_now() - 5);
    let mut altered = sign("live", "cam3", unix_now() + 600);
    let last = altered.pop().unwrap();
    altered.push(if last == '0' { '1' } else { '0' });
    let other_app = sign("studio", "cam4", unix_now() + 600);
    let bare = format!("{base}/live/cam5");
    // (what, url, recorded, the reason told)
    let cases = [
        ("good", good.as_str(), true, ""),
        ("expired", expired.as_str(), false, "token expired"),
        ("altered", altered.as_str(), false, "bad signature"),
        ("other-app", other_app.as_str(), false, "app not allowed"),
        ("bare", bare.as_str(), false, "no publish token"),
    ];
    let mut running: Vec<_> = cases
        .iter()
        .map(|(what, url, ..)| {
            let flog = dir.path().join(format!("{what}.log"));
            (publish(url, None, 2, &flog), flog)
        })
        .collect();
    for ((child, flog), (what, _, recorded, reason)) in running.iter_mut().zip(&cases) {
        let ok = finish(child, flog);
        assert_eq!(ok, *recorded, "{what}: ffmpeg said\n{}", read(flog));
        assert!(read(flog).contains(reason), "{what}: {}", read(flog));
    }
    let chunks = rec.wait_chunks(1, Duration::from_secs(30));
    check_chunk_name(
        &chunks[0].file_stem().unwrap().to_string_lossy(),
        "live",
        "cam1",
        1,
    );
    assert_eq!(count_packets(&chunks[0]).0, (2 * FPS) as u64);
    let text = rec.log_text();
    for (_, reason) in cases.iter().skip(1).map(|c| (c.0, c.3)) {
        assert!(
            text.contains(&format!("refused: {reason}")),
            "no {reason:?} refusal:\n{text}"
        );
    }
    for leaked in ["sig=", "exp=", secret] {
        assert!(!text.contains(leaked), "{leaked} in the log:\n{text}");
        assert!(!all_names(&rec.state).iter().any(|n| n.contains(leaked)));
    }
}

/// A hook server: admits `ok*` (labelling `ok-labelled` as `lobby`), answers 403 to `no`, and
/// never answers `slow`; appends each request body to `requests`.
const HOOK: &str = r#"
import http.server, json, sys, time
port, requests = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with open(requests, "a") as f:
            f.write(body.decode() + "\n")
        stream = json.loads(body)["stream"]
        if stream == "slow":
            time.sleep(60)
            return
        code = 200 if stream.startswith("ok") else 403
        answer = json.dumps({"label": "lobby"}) if stream == "ok-labelled" else ""
        self.send_response(code)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer.encode())
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
"#;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_publish_hook_decides_and_fails_closed() {
    let dir = Turn::shared().scratch();
    let hook_port = free_port();
    let requests = dir.path().join("hook-requests");
    let _hook = Killed(
        Command::new("python3")
            .args(["-c", HOOK, &hook_port.to_string()])
            .arg(&requests)
            .stdin(Stdio::null())
            .spawn()
            .expect("starting python3"),
    );
    wait_until(Duration::from_secs(30), "hook listening", || {
        port_open(hook_port)
    });
    let rec = Recorder::start(
        dir.path(),
        &[
            "--publish-hook",
            &format!("http://127.0.0.1:{hook_port}/on_publish"),
            "--publish-hook-timeout",
            // Long enough that the others' ffmpeg starts, even on a loaded machine, fall inside.
            "5s",
        ],
    );
    // The hanging one first: the others are asked and record while it waits.
    let slow_log = dir.path().join("slow.log");
    let mut slow = publish(&rec.url("live", "slow"), None, 2, &slow_log);
    wait_until(Duration::from_secs(30), "the hook asked about slow", || {
        read(&requests).contains("\"slow\"")
    });
    let asked_slow = Instant::now();
    let cases = [
        ("ok", "ok?user=ann&sig=abc", true),
        ("ok-labelled", "ok-labelled", true),
        ("no", "no", false),
    ];
    let mut running: Vec<_> = cases
        .iter()
        .map(|(what, name, _)| {
            let flog = dir.path().join(format!("{what}.log"));
            (publish(&rec.url("live", name), None, 2, &flog), flog)
        })
        .collect();
    for ((child, flog), (what, _, admitted)) in running.iter_mut().zip(&cases) {
        let ok = finish(child, flog);
        assert_eq!(ok, *admitted, "{what}: ffmpeg said\n{}", read(flog));
    }
    let slow_ok = finish(&mut slow, &slow_log);
    let waited = asked_slow.elapsed();
    assert!(!slow_ok, "a hook that never answered admitted a stream");
    assert!(
        waited >= Duration::from_millis(4500),
        "refused after {waited:?}, before the 5 s timeout"
    );
    let chunks = rec.wait_chunks(2, Duration::from_secs(30));
    let names: Vec<String> = chunks
        .iter()
        .map(|c| c.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.contains("_live_ok_000001-")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.contains("_live_lobby_000001-")),
        "{names:?}"
    );
    for c in &chunks {
        assert_eq!(count_packets(c).0, (2 * FPS) as u64, "{c:?}");
    }
    let text = rec.log_text();
    let refusals = [
        "refused: publish hook answered 403",
        "refused: publish hook did not answer within 5s",
    ];
    support::assert_contains_all(&text, &refusals, "the log");
    // Asked while the hook still hung on slow: admitted before slow's timeout, so the hook's
    // calls do not wait for each other.
    let line_of = |pred: &dyn Fn(&str) -> bool| text.lines().position(pred);
    let ok_started = line_of(&|l| {
        l.contains("publish started") && l.split_whitespace().any(|w| w == "stream=ok")
    });
    let slow_timed_out = line_of(&|l| l.contains("did not answer within 5s"));
    assert!(
        ok_started.is_some() && ok_started < slow_timed_out,
        "ok started at line {ok_started:?}, slow timed out at line {slow_timed_out:?}:\n{text}"
    );
    // The hook heard app, stream, peer and the query without its sig.
    let asked: Vec<serde_json::Value> = read(&requests)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ok = asked.iter().find(|r| r["stream"] == "ok").unwrap();
    assert_eq!(ok["app"], "live");
    assert_eq!(ok["params"], serde_json::json!({"user": "ann"}));
    assert!(ok["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
}

/// Handshake (C0 C1, S0 S1 S2, C2 echoing S1), then connect, createStream and publish `name`;
/// returns the socket and whether the server answered `NetStream.Publish.Start`.
fn raw_publish(port: u16, name: &str) -> (std::net::TcpStream, bool) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536u32).map(|i| (i * 7 + 3) as u8));
    s.write_all(&c0c1).unwrap();
    let mut s012 = vec![0u8; 1 + 1536 + 1536];
    s.read_exact(&mut s012).unwrap();
    s.write_all(&s012[1..1537]).unwrap();
    s.write_all(&rtmp::publish_bytes(name)).unwrap();
    let mut replies = rtmp::ReplyReader::default();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        let n = match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for (_, msg) in replies.read(&buf[..n]) {
            if let Some((_, code)) = rtmp::info_code(&msg) {
                if code == "NetStream.Publish.Start" {
                    return (s, true);
                }
                if code.starts_with("NetStream.Publish.") {
                    return (s, false);
                }
            }
        }
    }
    (s, false)
}

#[test]
fn a_nul_in_a_name_panics_nothing() {
    let dir = Turn::shared().scratch();
    let mut rec = Recorder::start(dir.path(), &[]);
    // Twice: the first publish's live entry and connection slot are given back when it ends.
    for round in 1..=2 {
        let (socket, started) = raw_publish(rec.port, "cam\0x");
        assert!(started, "round {round}: {}", rec.log_text());
        drop(socket);
        wait_until(Duration::from_secs(30), "the publish ended", || {
            rec.log_text().matches("publisher gone").count() >= round
        });
    }
    let text = rec.log_text();
    let started = text
        .lines()
        .filter(|l| l.contains("publish started") && l.contains("stream=cam%00x"))
        .count();
    assert_eq!(started, 2, "{text}");
    assert!(!text.contains("panicked"), "{text}");
    assert!(rec.exited().is_none(), "ingest died:\n{text}");
}
