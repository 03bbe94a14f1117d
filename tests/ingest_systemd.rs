//! Ingest under systemd's protocols, driven by systemd's own tools: `systemd-socket-activate`
//! passes the listening socket (real `LISTEN_FDS`) and starts ingest on the first connection;
//! the service reports `READY=1`, `STATUS=`, `WATCHDOG=1` (every `WATCHDOG_USEC`/2) and
//! `STOPPING=1` to the `NOTIFY_SOCKET` this test binds. With two sockets named as the units
//! name them (`rtmp`, `http`), the first HTTP request starts ingest, which serves HTTP on one
//! and RTMP on the other.

use crate::support::{self, Turn, free_port, http, ingest, port_open, wait_until, words};

use std::os::unix::net::UnixDatagram;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ingest::*;

/// Collects every notification datagram on a background thread.
struct Notifications {
    messages: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Notifications {
    fn bind(path: &std::path::Path) -> Notifications {
        let sock = UnixDatagram::bind(path).expect("binding NOTIFY_SOCKET");
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = messages.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = sock.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                sink.lock().unwrap().push((Instant::now(), text));
            }
        });
        Notifications { messages }
    }

    /// Every `KEY=VALUE` line received so far, in order.
    fn lines(&self) -> Vec<(Instant, String)> {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(t, m)| m.lines().map(|l| (*t, l.to_string())).collect::<Vec<_>>())
            .collect()
    }

    fn has(&self, line: &str) -> bool {
        self.lines().iter().any(|(_, l)| l == line)
    }

    fn count(&self, line: &str) -> usize {
        self.lines().iter().filter(|(_, l)| l == line).count()
    }
}

/// Kills the activated service on drop, showing its log if the test failed.
struct Service {
    child: Option<Child>,
    log: std::path::PathBuf,
}

impl Service {
    /// `systemd-socket-activate ACTIVATOR_ARGS rtmp-recorder --state-dir DIR/state ingest
    /// --chunk-duration 10s INGEST_ARGS`, its output in DIR/service.log. Both argument lists are
    /// written as on a command line (split at whitespace: paths in them must have none).
    fn activate(dir: &std::path::Path, activator: &str, ingest: &str) -> Service {
        let log = dir.join("service.log");
        let log_file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new("systemd-socket-activate");
        clean_env(&mut cmd);
        cmd.args(words(activator))
            .arg(support::BIN)
            .arg("--state-dir")
            .arg(dir.join("state"))
            .args(["ingest", "--chunk-duration", "10s"])
            .args(words(ingest))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().unwrap())
            .stderr(log_file);
        Service {
            child: Some(cmd.spawn().expect("spawning systemd-socket-activate")),
            log,
        }
    }

    /// SIGTERM, and a clean exit within 15 s.
    fn stop(&mut self) {
        let mut child = self.child.take().expect("service already stopped");
        signal(child.id(), libc::SIGTERM);
        let status = wait_child(
            &mut child,
            Duration::from_secs(15),
            "ingest after SIGTERM",
            &self.log,
        );
        assert!(
            status.success(),
            "ingest exited with {status} after SIGTERM"
        );
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", show_log(&self.log));
        }
    }
}

#[test]
fn socket_activation_and_notifications() {
    let dir = Turn::shared().scratch();
    let notify_path = dir.path().join("notify.sock");
    let notes = Notifications::bind(&notify_path);
    let port = free_port();
    // `--listen` names another port: with a socket from systemd, ingest must not bind it.
    let unused_port = free_port();
    let state = dir.path().join("state");
    let mut service = Service::activate(
        dir.path(),
        &format!(
            "-l 127.0.0.1:{port} -E NOTIFY_SOCKET={} -E WATCHDOG_USEC=500000",
            notify_path.display()
        ),
        &format!("--listen 127.0.0.1:{unused_port}"),
    );
    wait_until(
        Duration::from_secs(10),
        "systemd-socket-activate listening",
        || port_open(port),
    );

    // The first client starts the service (systemd-socket-activate execs it in place, so the
    // child's pid is the service's).
    let secs = 5;
    let mut opts = PublishOpts::new(dir.path(), "pub");
    opts.width = 640;
    opts.height = 360;
    let mut publisher = ffmpeg_publish(&format!("rtmp://127.0.0.1:{port}/live/sd"), secs, &opts);
    wait_until(Duration::from_secs(15), "READY=1", || notes.has("READY=1"));
    assert!(
        !port_open(unused_port),
        "ingest bound --listen although systemd passed a socket"
    );
    publisher.wait_ok(Duration::from_secs(secs as u64 + 30));

    let remux = state.join("remux");
    wait_until(Duration::from_secs(15), "the chunk in remux/", || {
        files_with_ext(&remux, "flv").len() == 1
            && files_with_ext(&state.join("recording"), "flv").is_empty()
    });
    check_chunks_against_reference(
        &files_with_ext(&remux, "flv"),
        &publisher.reference,
        "live",
        "sd",
    );

    // At 250 ms intervals, the run so far has given many watchdog pings.
    let ready_at = notes
        .lines()
        .into_iter()
        .find(|(_, l)| l == "READY=1")
        .map(|(t, _)| t)
        .unwrap();
    wait_until(Duration::from_secs(3), "WATCHDOG=1 pings", || {
        notes.count("WATCHDOG=1") >= 8
    });
    let pings: Vec<Instant> = notes
        .lines()
        .into_iter()
        .filter(|(_, l)| l == "WATCHDOG=1")
        .map(|(t, _)| t)
        .collect();
    let elapsed = ready_at.elapsed().as_secs_f64();
    assert!(
        pings.len() as f64 >= elapsed / 0.5,
        "{} WATCHDOG=1 in {elapsed:.1} s with WATCHDOG_USEC=500000",
        pings.len()
    );
    eprintln!(
        "{} WATCHDOG=1 in {elapsed:.1} s; notifications: {:?}",
        pings.len(),
        notes
            .lines()
            .iter()
            .map(|(_, l)| l.as_str())
            .filter(|l| *l != "WATCHDOG=1")
            .collect::<Vec<_>>()
    );
    let max_gap = pings
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or_default();
    assert!(
        max_gap < Duration::from_millis(500),
        "watchdog gap {max_gap:?}"
    );
    assert!(
        notes
            .lines()
            .iter()
            .any(|(_, l)| l.starts_with("STATUS=") && l.len() > 7),
        "no STATUS= line: {:?}",
        notes.lines()
    );

    service.stop();
    wait_until(Duration::from_secs(2), "STOPPING=1", || {
        notes.has("STOPPING=1")
    });
    let lines: Vec<String> = notes.lines().into_iter().map(|(_, l)| l).collect();
    let ready = lines.iter().position(|l| l == "READY=1").unwrap();
    let stopping = lines.iter().position(|l| l == "STOPPING=1").unwrap();
    assert!(ready < stopping, "READY=1 after STOPPING=1: {lines:?}");
}

#[test]
fn rtmp_and_http_sockets_are_told_apart_by_name() {
    let dir = Turn::shared().scratch();
    let (rtmp, http) = (free_port(), free_port());
    // With sockets from systemd, ingest must bind neither of these.
    let (unused_rtmp, unused_http) = (free_port(), free_port());
    let state = dir.path().join("state");
    // The HTTP socket first: ingest must go by the names, not by the order.
    let mut service = Service::activate(
        dir.path(),
        &format!("-l 127.0.0.1:{http} -l 127.0.0.1:{rtmp} --fdname=http:rtmp"),
        &format!("--listen 127.0.0.1:{unused_rtmp} --http-listen 127.0.0.1:{unused_http}"),
    );
    wait_until(Duration::from_secs(10), "both sockets listening", || {
        port_open(http) && port_open(rtmp)
    });
    // An HTTP request starts the service and is answered by it.
    let health = http::get(http, "/healthz", &[]);
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["status"], "ok");

    let mut opts = PublishOpts::new(dir.path(), "pub");
    (opts.width, opts.height) = (426, 240);
    let mut publisher = ffmpeg_publish(&format!("rtmp://127.0.0.1:{rtmp}/live/sd"), 3, &opts);
    publisher.wait_ok(Duration::from_secs(40));
    wait_until(Duration::from_secs(15), "the chunk in remux/", || {
        files_with_ext(&state.join("remux"), "flv").len() == 1
    });
    let metrics = http::parse_metrics(&http::get(http, "/metrics", &[]).text());
    assert_eq!(
        http::value(&metrics, "rtmp_recorder_chunks_closed_total", &[]),
        1.0
    );
    assert!(!port_open(unused_rtmp) && !port_open(unused_http));

    service.stop();
}
