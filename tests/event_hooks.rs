//! Event hooks with real parts: ffmpeg publishes real H.264/AAC over RTMP, the recorder records,
//! remuxes and uploads into s3s-fs, and the events reach a real HTTP receiver (a small HTTP/1.1
//! server written here, on a free 127.0.0.1 port, that records every POST and can be told to
//! answer 503 or to hang) and a real hook command (a shell script appending stdin to a file).
//!
//! - `run_delivers_every_event_through_outages`: every event arrives (started, recorded and
//!   uploaded per chunk with the object key, a failed one for a broken chunk, stopped), once per
//!   delivery attempt and exactly once per sink that confirmed it, in order per stream, through a
//!   hanging receiver, a 503 outage and a failing command; `status` and `/metrics` show the queue and the failures;
//!   a hanging receiver does not delay the next chunk's upload (measured against a chunk
//!   uploaded while the receiver answered at once).
//! - `kill_9_of_the_deliverer_loses_nothing`: `deliver` is killed with SIGKILL again and again
//!   while it delivers ingest's events to a slow receiver; every event still arrives at both
//!   sinks, in queue order, with at most one re-delivery per kill, and the queue ends empty.
//! - `a_hook_cannot_hold_delivery_and_producers_ignore_delivery_settings`: remux queues its event
//!   with a malformed `HOOK_TIMEOUT` (only `deliver` reads it; `deliver` refuses it, naming it),
//!   and a hook command that leaves a `sleep 600` holding its stdout and stderr neither holds
//!   delivery past `--hook-timeout` nor leaves the sleep behind.

use crate::support::ingest::{self as common, PublishOpts, ffmpeg_publish, show_log};
use crate::support::publish::{hermetic_aws_env, list_keys, s3s_with_bucket};
use crate::support::{self, Turn, port_open, wait_until};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

const BUCKET: &str = "recordings";

// ---------------------------------------------------------------------------------------------
// The receiver

const ANSWER_OK: u8 = 0;
const ANSWER_503: u8 = 1;
const HANG: u8 = 2;

/// One POST the receiver read, and what it answered.
#[derive(Debug, Clone)]
struct Post {
    event: Value,
    answered: u16,
}

/// An HTTP/1.1 server on 127.0.0.1 that records each POST's JSON body. `mode` decides the
/// answer: 200, 503, or none (the connection is held open until the mode changes).
struct Receiver {
    port: u16,
    mode: Arc<AtomicU8>,
    /// Delay before answering, to widen the window a SIGKILL can hit.
    delay_ms: Arc<AtomicUsize>,
    posts: Arc<Mutex<Vec<Post>>>,
    /// Most requests ever in flight at once.
    max_in_flight: Arc<AtomicUsize>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let r = Receiver {
            port,
            mode: Arc::new(AtomicU8::new(ANSWER_OK)),
            delay_ms: Arc::new(AtomicUsize::new(0)),
            posts: Arc::new(Mutex::new(Vec::new())),
            max_in_flight: Arc::new(AtomicUsize::new(0)),
        };
        let (mode, delay, posts, max) = (
            r.mode.clone(),
            r.delay_ms.clone(),
            r.posts.clone(),
            r.max_in_flight.clone(),
        );
        let in_flight = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (mode, delay, posts, max, in_flight) = (
                    mode.clone(),
                    delay.clone(),
                    posts.clone(),
                    max.clone(),
                    in_flight.clone(),
                );
                std::thread::spawn(move || {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(now, Ordering::SeqCst);
                    serve(conn, &mode, &delay, &posts);
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        r
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/events", self.port)
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }

    fn posts(&self) -> Vec<Post> {
        self.posts.lock().unwrap().clone()
    }

    /// The events answered 2xx, in the order they were answered.
    fn delivered(&self) -> Vec<Value> {
        self.posts()
            .into_iter()
            .filter(|p| p.answered == 200)
            .map(|p| p.event)
            .collect()
    }
}

fn serve(conn: TcpStream, mode: &AtomicU8, delay: &AtomicUsize, posts: &Mutex<Vec<Post>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0usize;
    let mut content_type = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "content-type" => content_type = value.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    assert!(request_line.starts_with("POST /events "), "{request_line}");
    assert_eq!(content_type, "application/json");
    let event: Value = serde_json::from_slice(&body).expect("a JSON event");
    std::thread::sleep(Duration::from_millis(delay.load(Ordering::SeqCst) as u64));
    let answered = match mode.load(Ordering::SeqCst) {
        ANSWER_OK => 200,
        ANSWER_503 => 503,
        _ => {
            // Held open and never answered, until the deliverer gives up and closes it (or
            // the mode changes): recorded as an attempt answered with nothing.
            conn.set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let mut probe = [0u8; 1];
            let mut peer = &conn;
            while mode.load(Ordering::SeqCst) == HANG {
                if matches!(peer.read(&mut probe), Ok(0)) {
                    break;
                }
            }
            posts.lock().unwrap().push(Post { event, answered: 0 });
            return;
        }
    };
    // Recorded before the answer goes out: an answer the deliverer saw is always counted.
    posts.lock().unwrap().push(Post { event, answered });
    let reason = if answered == 200 {
        "OK"
    } else {
        "Service Unavailable"
    };
    let mut conn = conn;
    let _ = write!(
        conn,
        "HTTP/1.1 {answered} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
}

// ---------------------------------------------------------------------------------------------
// The hook command

/// A shell script that appends its stdin (one JSON line) to `got`, and fails while `fail`
/// exists. Returns the command line.
fn hook_script(dir: &Path) -> (String, PathBuf, PathBuf) {
    let got = dir.join("hook-got.jsonl");
    let fail = dir.join("hook-fail");
    let script = dir.join("hook.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'told to fail' >&2; exit 1; fi\ncat >> '{}'\n",
            fail.display(),
            got.display()
        ),
    )
    .unwrap();
    (format!("sh {}", script.display()), got, fail)
}

fn lines_of(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("the command got one JSON event per line"))
        .collect()
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn count_by_id(events: &[Value]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for id in ids(events) {
        *m.entry(id).or_default() += 1;
    }
    m
}

fn kinds(events: &[Value], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["kind"] == kind)
        .cloned()
        .collect()
}

/// The recorder's command with none of the caller's settings.
fn recorder(state: &Path) -> Command {
    let mut cmd = Command::new(support::BIN);
    common::clean_env(&mut cmd);
    for var in [
        "HOOK_COMMAND",
        "WEBHOOK_URL",
        "HOOK_TIMEOUT",
        "DELIVER_BACKOFF_CAP",
        "DELIVER_RETRY_FOR",
        "RTMP_RECORDER_UNTIL_EMPTY",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("--state-dir").arg(state);
    cmd
}

fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap()
    };
    cmd.stdin(Stdio::null())
        .stdout(file())
        .stderr(file())
        .spawn()
        .expect("starting rtmp-recorder")
}

fn queued_events(state: &Path) -> usize {
    std::fs::read_dir(state.join("events"))
        .map(|d| d.count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------

#[test]
fn run_delivers_every_event_through_outages() {
    let dir = Turn::alone().scratch();
    let state = dir.path().join("state");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (store, s3) = rt.block_on(s3s_with_bucket(dir.path(), BUCKET));
    let endpoint = store.endpoint();
    let receiver = Receiver::start();
    let (hook, got, fail) = hook_script(dir.path());

    let port = support::free_port();
    let http_port = support::free_port();
    let log = dir.path().join("run.log");
    let mut run = spawn_logged(
        hermetic_aws_env(
            recorder(&state)
                .args(["run", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--http-listen", &format!("127.0.0.1:{http_port}")])
                .args(["--chunk-duration", "10s"])
                .args(["--destination", &format!("s3://{BUCKET}/e2e")])
                .args(["--endpoint-url", &endpoint])
                .args(["--webhook", &receiver.url()])
                .args(["--hook-command", &hook])
                .args(["--hook-timeout", "2s", "--deliver-backoff-cap", "1s"]),
        ),
        &log,
    );
    let show = || show_log(&log);
    wait_until(Duration::from_secs(15), "run listening", || port_open(port));

    let mut opts = PublishOpts::new(dir.path(), "cam");
    opts.width = 640;
    opts.height = 360;
    let mut publisher = ffmpeg_publish(&format!("rtmp://127.0.0.1:{port}/live/cam"), 35, &opts);

    // The receiver answers at once until the first chunk is visible in the bucket, then hangs
    // (every attempt runs into --hook-timeout) until the second one is, then answers 503 for
    // 6 s, then answers again.
    let mut visible: BTreeMap<String, SystemTime> = BTreeMap::new();
    let mut hang_seen_at: Option<Instant> = None;
    let mut outage_until: Option<Instant> = None;
    let mut command_fails_until: Option<Instant> = None;
    let mut status_during_outage: Option<Value> = None;
    let mut metrics_during_outage = String::new();
    let deadline = Instant::now() + Duration::from_secs(150);
    loop {
        for key in rt.block_on(list_keys(&s3, BUCKET)) {
            if let Some(stem) = key.rsplit('/').next().and_then(|f| f.strip_suffix(".mp4")) {
                visible
                    .entry(stem.to_string())
                    .or_insert_with(SystemTime::now);
            }
        }
        if visible.len() == 1 && hang_seen_at.is_none() {
            receiver.set(HANG);
            hang_seen_at = Some(Instant::now());
            // A chunk remux cannot read: set aside in failed/, which must give an event.
            std::fs::write(
                state.join("remux/20200101T000000.000Z_live_broken_000001.flv"),
                b"not an FLV at all",
            )
            .unwrap();
        }
        if visible.len() == 2 && outage_until.is_none() {
            receiver.set(ANSWER_503);
            outage_until = Some(Instant::now() + Duration::from_secs(6));
        }
        if let Some(until) = outage_until
            && status_during_outage.is_none()
            && Instant::now() + Duration::from_secs(2) >= until
        {
            let out = recorder(&state)
                .args(["status", "--json"])
                .output()
                .unwrap();
            status_during_outage = Some(serde_json::from_slice(&out.stdout).unwrap());
            metrics_during_outage = http_get(http_port, "/metrics");
        }
        if outage_until.is_some_and(|u| Instant::now() >= u) {
            receiver.set(ANSWER_OK);
        }
        // Then the command fails for 4 s while the receiver answers: the webhook must not be
        // POSTed again the events it already took.
        if visible.len() == 3 && command_fails_until.is_none() {
            std::fs::write(&fail, b"").unwrap();
            command_fails_until = Some(Instant::now() + Duration::from_secs(4));
        }
        if command_fails_until.is_some_and(|u| Instant::now() >= u) && fail.exists() {
            std::fs::remove_file(&fail).unwrap();
        }
        if !publisher.running()
            && visible.len() >= 4
            && !fail.exists()
            && queued_events(&state) == 0
        {
            // An object is visible a moment before publish queues its chunk.uploaded (it
            // does so once the store confirmed the manifest too): wait for each one's event.
            let delivered = receiver.delivered();
            let stopped = !kinds(&delivered, "stream.stopped").is_empty();
            if stopped && kinds(&delivered, "chunk.uploaded").len() >= visible.len() {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "events did not all arrive\n{}",
            show()
        );
        assert!(run.try_wait().unwrap().is_none(), "run exited\n{}", show());
        std::thread::sleep(Duration::from_millis(20));
    }
    publisher.wait_ok(Duration::from_secs(5));

    // A hanging receiver does not delay uploads: chunk 2 was uploaded while every delivery
    // attempt hung, chunk 1 while the receiver answered at once.
    let latencies: Vec<(String, Duration)> = visible
        .iter()
        .map(|(stem, seen)| {
            let flv = state.join("archive").join(format!("{stem}.flv"));
            let closed = std::fs::metadata(&flv).unwrap().modified().unwrap();
            (
                stem.clone(),
                seen.duration_since(closed).unwrap_or_default(),
            )
        })
        .collect();
    for (stem, l) in &latencies {
        eprintln!("chunk {stem}: closed -> object visible in {l:?}");
    }
    let (with_ok, with_hang) = (latencies[0].1, latencies[1].1);
    eprintln!(
        "upload of a chunk: {with_ok:?} with the receiver answering, {with_hang:?} with it hanging"
    );
    assert!(
        with_hang < Duration::from_secs(3) && with_hang < with_ok + Duration::from_secs(1),
        "the upload waited on the hanging receiver: {with_hang:?} vs {with_ok:?}\n{}",
        show()
    );

    let delivered = receiver.delivered();
    let posts = receiver.posts();
    let command = lines_of(&got);
    eprintln!(
        "{} events delivered; {} POSTs ({} answered 503, {} unanswered and retried)",
        delivered.len(),
        posts.len(),
        posts.iter().filter(|p| p.answered == 503).count(),
        posts.iter().filter(|p| p.answered == 0).count()
    );
    // Once per attempt: attempts never overlap (one POST at a time), and every event was
    // confirmed exactly once per sink (no crash here).
    assert_eq!(receiver.max_in_flight.load(Ordering::SeqCst), 1);
    for (id, n) in count_by_id(&delivered) {
        assert_eq!(n, 1, "{id} answered 2xx {n} times\n{}", show());
    }
    assert_eq!(
        count_by_id(&command),
        count_by_id(&delivered),
        "the command got each event once (not again when only the webhook failed)"
    );
    let failed_attempts = posts.iter().filter(|p| p.answered == 503).count();
    assert!(
        failed_attempts >= 2,
        "the outage was not seen: {failed_attempts}"
    );
    assert!(
        show().contains("told to fail"),
        "the command's failures (its stderr) were not logged\n{}",
        show()
    );

    // Every event, with what it says.
    let cam = |e: &&Value| e["stream"] == "cam";
    let started = kinds(&delivered, "stream.started");
    assert_eq!(started.iter().filter(cam).count(), 1, "{started:?}");
    let recorded: Vec<Value> = kinds(&delivered, "chunk.recorded");
    let uploaded: Vec<Value> = kinds(&delivered, "chunk.uploaded");
    let stems: BTreeSet<String> = visible.keys().cloned().collect();
    let recorded_stems: BTreeSet<String> = recorded
        .iter()
        .map(|e| e["chunk"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(recorded_stems, stems, "a chunk.recorded per chunk");
    let keys = rt.block_on(list_keys(&s3, BUCKET));
    for e in &uploaded {
        let stem = e["chunk"].as_str().unwrap();
        let key = e["key"].as_str().unwrap();
        assert!(key.starts_with("e2e/live/cam/") && key.ends_with(&format!("{stem}.mp4")));
        assert!(keys.iter().any(|k| k == key), "{key} not in the bucket");
        assert_eq!(e["url"], format!("s3://{BUCKET}/{key}"));
        assert_eq!(e["manifest"]["name"], stem);
        assert!(
            e["manifest"]["sha256"]
                .as_str()
                .is_some_and(|s| s.len() == 64)
        );
        assert_eq!(e["id"], format!("chunk.uploaded:{stem}"));
    }
    assert_eq!(uploaded.len(), stems.len(), "a chunk.uploaded per chunk");
    let stopped = kinds(&delivered, "stream.stopped");
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0]["chunks"], stems.len());
    assert_eq!(stopped[0]["session_start"], started[0]["session_start"]);
    let failed = kinds(&delivered, "chunk.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["stage"], "remux");
    assert_eq!(
        failed[0]["chunk"],
        "20200101T000000.000Z_live_broken_000001"
    );
    assert!(failed[0]["reason"].as_str().unwrap().contains("not an FLV"));

    // In order per stream: started, then each chunk recorded before it is uploaded, stopped last.
    let order = ids(&delivered);
    let at = |id: &str| order.iter().position(|i| i == id).unwrap();
    let first = at(started[0]["id"].as_str().unwrap());
    let last = at(stopped[0]["id"].as_str().unwrap());
    for stem in &stems {
        let r = at(&format!("chunk.recorded:{stem}"));
        let u = at(&format!("chunk.uploaded:{stem}"));
        assert!(first < r && r < u && r < last, "{order:?}");
    }

    // The outage was visible in status and /metrics while it lasted.
    let status = status_during_outage.expect("status during the outage");
    assert!(
        status["events"]["queued"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        status["events"]["delivery_failures"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        status["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains("event delivery is failing")),
        "{status}"
    );
    let metric = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
            .parse()
            .unwrap()
    };
    assert!(metric(&metrics_during_outage, "rtmp_recorder_events_queue_depth") >= 1.0);
    assert!(
        metric(
            &metrics_during_outage,
            "rtmp_recorder_event_delivery_failures_total"
        ) >= 1.0
    );
    let after = http_get(http_port, "/metrics");
    assert_eq!(metric(&after, "rtmp_recorder_events_queue_depth"), 0.0);
    assert_eq!(
        metric(&after, "rtmp_recorder_events_delivered_total") as usize,
        delivered.len()
    );
    assert!(
        show().contains("not delivered") && show().contains("to fix"),
        "the failure was logged with what to do\n{}",
        show()
    );

    common::signal(run.id(), libc::SIGTERM);
    common::wait_child(&mut run, Duration::from_secs(40), "run after SIGTERM", &log);
}

fn http_get(port: u16, path: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or(text)
}

#[test]
fn kill_9_of_the_deliverer_loses_nothing() {
    let dir = Turn::alone().scratch();
    let state = dir.path().join("state");
    let receiver = Receiver::start();
    // Slow answers: a SIGKILL often lands while a POST is in flight.
    receiver.delay_ms.store(150, Ordering::SeqCst);
    let (hook, got, _fail) = hook_script(dir.path());

    // ingest alone queues the events (the hooks' variables in its environment, as the units
    // share recorder.env); short chunks give many of them.
    let port = support::free_port();
    let log = dir.path().join("ingest.log");
    let mut ingest = spawn_logged(
        recorder(&state)
            .env("WEBHOOK_URL", receiver.url())
            .env("HOOK_COMMAND", &hook)
            .args(["ingest", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--chunk-duration", "2s"]),
        &log,
    );
    wait_until(Duration::from_secs(15), "ingest listening", || {
        port_open(port)
    });
    let mut opts = PublishOpts::new(dir.path(), "cam");
    opts.width = 320;
    opts.height = 240;
    let mut publisher = ffmpeg_publish(&format!("rtmp://127.0.0.1:{port}/live/cam"), 16, &opts);

    let deliver = |extra: &[&str]| {
        spawn_logged(
            recorder(&state)
                .args([
                    "deliver",
                    "--webhook",
                    &receiver.url(),
                    "--hook-command",
                    &hook,
                ])
                .args(["--deliver-backoff-cap", "1s"])
                .args(extra),
            &log,
        )
    };
    // Killed at a different instant each time, while events keep arriving.
    let mut kills = 0usize;
    let mut pause = 170u64;
    while publisher.running() || kills < 12 {
        let mut d = deliver(&["--watch"]);
        std::thread::sleep(Duration::from_millis(pause));
        common::signal(d.id(), libc::SIGKILL);
        let _ = d.wait();
        kills += 1;
        pause = 120 + (pause * 7 + 53) % 400;
        assert!(kills < 200, "the publisher never ended\n{}", show_log(&log));
    }
    publisher.wait_ok(Duration::from_secs(5));
    common::signal(ingest.id(), libc::SIGTERM);
    common::wait_child(&mut ingest, Duration::from_secs(40), "ingest", &log);

    // What was queued, by id: every file written, delivered or not (ids are in the files).
    let chunks = common::files_with_ext(&state.join("remux"), "flv").len();
    assert!(chunks >= 6, "16 s at 2 s chunks: {chunks}");

    // A last, clean drain.
    let mut d = deliver(&[]);
    let status = common::wait_child(&mut d, Duration::from_secs(60), "deliver drain", &log);
    assert!(status.success(), "deliver: {status}\n{}", show_log(&log));
    assert_eq!(queued_events(&state), 0, "events/ is empty at the end");

    let delivered = receiver.delivered();
    let command = lines_of(&got);
    // started, stopped, and one chunk.recorded per chunk.
    let expected = 2 + chunks;
    for (sink, events) in [("webhook", &delivered), ("command", &command)] {
        let unique = count_by_id(events);
        assert_eq!(
            unique.len(),
            expected,
            "{sink}: every event at least once: {unique:?}\n{}",
            show_log(&log)
        );
        let twice = unique.values().filter(|n| **n > 1).count();
        eprintln!(
            "{sink}: {} deliveries of {} events after {kills} SIGKILLs ({twice} delivered twice)",
            events.len(),
            unique.len()
        );
        assert_eq!(kinds(events, "stream.started").len().min(1), 1);
        assert_eq!(kinds(events, "stream.stopped").len().min(1), 1);
        // One stream, so the queue's order is known: started, each chunk by sequence, stopped.
        // Each run of the deliverer goes on in that order from the oldest event left, so a
        // sink sees the queue in order, except that the event in flight when a kill landed
        // may come again right after itself: at most one re-delivery per kill.
        let mut recorded = kinds(events, "chunk.recorded");
        recorded.sort_by_key(|e| e["chunk"].as_str().unwrap().to_string());
        let mut queue = ids(&kinds(events, "stream.started"));
        queue.extend(ids(&recorded));
        queue.extend(ids(&kinds(events, "stream.stopped")));
        queue.dedup();
        let mut seen = ids(events);
        seen.dedup();
        assert_eq!(
            seen, queue,
            "{sink}: events out of queue order (beyond one repeat after a kill)"
        );
        assert!(
            events.len() - unique.len() <= kills,
            "{sink}: {} re-deliveries after {kills} kills",
            events.len() - unique.len()
        );
    }
}

/// A process's state as /proc gives it (`None`: gone).
fn proc_state(pid: &str) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
}

#[test]
fn a_hook_cannot_hold_delivery_and_producers_ignore_delivery_settings() {
    let dir = Turn::shared().scratch();
    let state = dir.path().join("state");
    std::fs::create_dir_all(state.join("remux")).unwrap();
    std::fs::write(
        state.join("remux/20200101T000000.000Z_live_broken_000001.flv"),
        b"not an FLV at all",
    )
    .unwrap();

    // A producer needs only to know that a sink is configured: a HOOK_TIMEOUT it never uses,
    // even a malformed one, does not stop it. The broken chunk is set aside (exit 65) and its
    // chunk.failed event queued.
    let hook_dir = dir.path().join("hook");
    std::fs::create_dir_all(&hook_dir).unwrap();
    let (plain_hook, _, _) = hook_script(&hook_dir);
    // A stage run with the hooks' variables as the units share them: its exit code and stderr.
    let stage = |name: &str| {
        let out = recorder(&state)
            .env("HOOK_COMMAND", &plain_hook)
            .env("HOOK_TIMEOUT", "soon")
            .arg(name)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.code(), said)
    };
    let (code, said) = stage("remux");
    assert_eq!(code, Some(65), "remux: {said}");
    assert!(!said.contains("HOOK_TIMEOUT"), "{said}");
    assert_eq!(queued_events(&state), 1, "{said}");

    // deliver, which uses it, refuses it as a usage error that names it.
    let (code, said) = stage("deliver");
    assert_eq!(code, Some(2), "deliver: {said}");
    assert!(
        said.contains("HOOK_TIMEOUT") && said.contains("soon"),
        "{said}"
    );
    assert_eq!(queued_events(&state), 1, "the event stays queued");

    // A hook that leaves a `sleep 600` behind holding its stdout and stderr: the hook's exit
    // decides, delivery ends well within --hook-timeout, and the sleep is killed with the
    // hook's process group.
    let got = dir.path().join("got.jsonl");
    let pid_file = dir.path().join("sleep.pid");
    let script = dir.path().join("lingering.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep 600 &\necho $! > '{}'\ncat >> '{}'\n",
            pid_file.display(),
            got.display()
        ),
    )
    .unwrap();
    let timeout = Duration::from_secs(3);
    let log = dir.path().join("deliver.log");
    let started = Instant::now();
    let mut d = spawn_logged(
        recorder(&state)
            .args(["deliver", "--hook-command"])
            .arg(format!("sh {}", script.display()))
            .args(["--hook-timeout", "3s"]),
        &log,
    );
    let status = common::wait_child(&mut d, Duration::from_secs(30), "deliver", &log);
    let took = started.elapsed();
    eprintln!("delivery with a lingering background child took {took:?}");
    assert!(status.success(), "deliver: {status}\n{}", show_log(&log));
    assert!(
        took < timeout + Duration::from_secs(1),
        "delivery waited on the hook's background child: {took:?}\n{}",
        show_log(&log)
    );
    let delivered = lines_of(&got);
    assert_eq!(kinds(&delivered, "chunk.failed").len(), 1, "{delivered:?}");
    assert_eq!(queued_events(&state), 0);
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(!pid.is_empty());
    wait_until(Duration::from_secs(5), "the hook's sleep gone", || {
        matches!(proc_state(&pid), None | Some('Z'))
    });
}
