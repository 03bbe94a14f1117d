//! ingest's HTTP endpoints over a real socket (`--http-listen`), against real recordings:
//! - `/healthz` and `/`: 200 with JSON while ingest accepts; 503 with the reason when free disk is
//!   below `--min-free-disk` and when the state directory stops being writable (ingest runs as an
//!   unprivileged user then, since root writes anywhere), 200 again once it is writable;
//! - `/metrics`: read by the Prometheus client library's parser, with values checked against
//!   what the test did: ffmpeg publishes through ingest and is paused, and the frames counted
//!   per stream equal the frames found in the chunks; chunks closed, queue depths, uploads by a
//!   real `publish` run and files in `failed/` equal what is on disk;
//! - `/recordings/`: HTML and JSON listings of exactly the served files; Range requests (206,
//!   `Content-Range`, suffix ranges, 416); traversal attempts (`..`, `%2e%2e`, `%2f`,
//!   backslashes, NUL, hidden files) and symbolic links (to a file and to a folder outside) refused
//!   and never listed.

use crate::support::flv::Flv;
use crate::support::{self, Turn, free_port, http, ingest, wait_until};
use tempfile::TempDir;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use http::{get, parse_metrics, start_with_http, value};
use ingest::{PublishOpts, Recorder};

#[test]
fn health_is_ok_while_ingest_accepts_and_503_below_the_disk_watermark() {
    let dir = Turn::shared().scratch();
    for sub in ["ok", "full"] {
        fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let (_rec, http) = start_with_http(&dir.path().join("ok"), &[]);
    for path in ["/healthz", "/"] {
        let r = get(http, path, &[]);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert!(r.header("content-type").starts_with("application/json"));
        let j = r.json();
        assert_eq!(j["status"], "ok", "{j}");
        assert_eq!(j["live_streams"], 0);
        assert!(j["disk_available_bytes"].as_u64().unwrap() > 0);
    }

    let (_full, http) = start_with_http(&dir.path().join("full"), &["--min-free-disk", "100%"]);
    let r = get(http, "/healthz", &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    let j = r.json();
    assert_eq!(j["status"], "unavailable");
    let reasons = j["reasons"].to_string();
    assert!(reasons.contains("below --min-free-disk 100%"), "{reasons}");
    assert_eq!(get(http, "/", &[]).status, 503);
}

#[test]
fn health_is_503_while_the_state_directory_is_not_writable() {
    let dir = Turn::shared().scratch();
    // Root writes through any mode bits: ingest runs as nobody, as the units run it unprivileged.
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let state = dir.path().join("state");
    fs::create_dir(&state).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    if root {
        chown_tree(&state, 65534);
    }
    let (port, http) = (free_port(), free_port());
    let log = dir.path().join("ingest.log");
    let mut cmd = if root {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(support::BIN);
        c
    } else {
        Command::new(support::BIN)
    };
    ingest::clean_env(&mut cmd);
    let mut child = cmd
        .arg("--state-dir")
        .arg(&state)
        .args(["ingest", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--http-listen", &format!("127.0.0.1:{http}")])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log).unwrap())
        .spawn()
        .expect("starting ingest");
    support::wait_for_port(http, &mut child, Duration::from_secs(15), "ingest", || {
        ingest::show_log(&log)
    });
    assert_eq!(get(http, "/healthz", &[]).status, 200);

    set_mode_tree(&state, 0o555);
    let r = get(http, "/healthz", &[]);
    set_mode_tree(&state, 0o755);
    assert_eq!(r.status, 503, "{}", r.text());
    let reasons = r.json()["reasons"].to_string();
    assert!(reasons.contains("is not writable"), "{reasons}");
    assert!(reasons.contains("Permission denied"), "{reasons}");

    let again = get(http, "/healthz", &[]);
    assert_eq!(again.status, 200, "{}", again.text());
    ingest::signal(child.id(), libc::SIGTERM);
    ingest::wait_child(&mut child, Duration::from_secs(30), "ingest", &log);
}

fn chown_tree(path: &Path, id: u32) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    assert_eq!(unsafe { libc::chown(c.as_ptr(), id, id) }, 0);
    if path.is_dir() {
        for e in fs::read_dir(path).unwrap() {
            chown_tree(&e.unwrap().path(), id);
        }
    }
}

fn set_mode_tree(path: &Path, mode: u32) {
    for e in fs::read_dir(path).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            set_mode_tree(&p, mode);
        }
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Video and audio messages ingest received for a stream, from its chunks: every frame lands in
/// exactly one chunk, and each chunk repeats the one sequence header of each kind at its head.
fn frames_in_chunks(chunks: &[std::path::PathBuf]) -> (u64, u64) {
    let (mut video, mut audio) = (1, 1);
    for c in chunks {
        let flv = Flv::read(c);
        video += flv
            .media()
            .filter(|t| t.is_video() && !t.is_video_seq_header())
            .count() as u64;
        audio += flv
            .media()
            .filter(|t| t.is_audio() && !t.is_aac_seq_header())
            .count() as u64;
    }
    (video, audio)
}

#[test]
fn metrics_count_what_a_real_publish_did() {
    let dir = Turn::shared().scratch();
    let (rec, http) = start_with_http(dir.path(), &[]);
    let metrics = || {
        let r = get(http, "/metrics", &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            r.header("content-type")
                .starts_with("text/plain; version=0.0.4"),
            "{:?}",
            r.headers
        );
        parse_metrics(&r.text())
    };
    let idle = metrics();
    assert_eq!(value(&idle, "rtmp_recorder_live_streams", &[]), 0.0);
    assert_eq!(value(&idle, "rtmp_recorder_chunks_closed_total", &[]), 0.0);

    let mut opts = PublishOpts::new(dir.path(), "cam1");
    (opts.width, opts.height) = (426, 240);
    let mut ffmpeg = ingest::ffmpeg_publish(&rec.url("live", "cam1"), 60, &opts);
    let stream = [("app", "live"), ("stream", "cam1"), ("kind", "video")];
    wait_until(Duration::from_secs(30), "12 s of video received", || {
        metrics().iter().any(|s| {
            s.name == "rtmp_recorder_stream_received_frames_total"
                && s.labels.get("kind").is_some_and(|k| k == "video")
                && s.value >= 360.0
        })
    });
    // Paused, the publisher sends nothing more: the counters settle on everything received.
    ingest::signal(ffmpeg.pid(), libc::SIGSTOP);
    let mut last = Vec::new();
    wait_until(Duration::from_secs(20), "the counters to settle", || {
        std::thread::sleep(Duration::from_millis(500));
        let now: Vec<f64> = metrics()
            .iter()
            .filter(|s| s.name.starts_with("rtmp_recorder_stream_received"))
            .map(|s| s.value)
            .collect();
        let settled = now == last;
        last = now;
        settled
    });
    let live = metrics();
    assert_eq!(value(&live, "rtmp_recorder_live_streams", &[]), 1.0);
    let video = value(&live, "rtmp_recorder_stream_received_frames_total", &stream);
    let audio = value(
        &live,
        "rtmp_recorder_stream_received_frames_total",
        &[("stream", "cam1"), ("kind", "audio")],
    );
    let bytes = value(
        &live,
        "rtmp_recorder_stream_received_bytes_total",
        &[("app", "live"), ("stream", "cam1")],
    );
    assert_eq!(value(&live, "rtmp_recorder_chunks_closed_total", &[]), 1.0);
    assert_eq!(
        value(&live, "rtmp_recorder_queue_depth", &[("stage", "remux")]),
        1.0
    );
    let age = value(
        &live,
        "rtmp_recorder_oldest_unpublished_chunk_age_seconds",
        &[],
    );
    assert!((10.0..600.0).contains(&age), "oldest chunk age {age}");
    let families: Vec<(&str, &str)> = live
        .iter()
        .map(|s| (s.family.as_str(), s.kind.as_str()))
        .collect();
    for (family, kind) in [
        ("rtmp_recorder_stream_received_bytes", "counter"),
        ("rtmp_recorder_chunks_closed", "counter"),
        ("rtmp_recorder_uploads", "counter"),
        ("rtmp_recorder_upload_failures", "counter"),
        ("rtmp_recorder_frames_dropped", "counter"),
        ("rtmp_recorder_queue_depth", "gauge"),
        ("rtmp_recorder_failed_files", "gauge"),
        ("rtmp_recorder_disk_free_bytes", "gauge"),
    ] {
        assert!(families.contains(&(family, kind)), "no {kind} {family}");
    }

    // The publisher goes away: its chunk is finished, and the counters match the chunks.
    ffmpeg.kill();
    let chunks = rec.wait_chunks(2, Duration::from_secs(30));
    let (want_video, want_audio) = frames_in_chunks(&chunks);
    assert_eq!((video, audio), (want_video as f64, want_audio as f64));
    let payload: u64 = chunks
        .iter()
        .flat_map(|c| {
            Flv::read(c)
                .media()
                .map(|t| t.data.len() as u64)
                .collect::<Vec<_>>()
        })
        .sum();
    assert!(
        bytes >= payload as f64 * 0.9,
        "bytes {bytes} vs chunk payload {payload}"
    );
    let after = metrics();
    assert_eq!(value(&after, "rtmp_recorder_live_streams", &[]), 0.0);
    assert_eq!(value(&after, "rtmp_recorder_chunks_closed_total", &[]), 2.0);
    assert_eq!(
        value(&after, "rtmp_recorder_frames_dropped_total", &[]),
        0.0
    );
    assert!(
        !after
            .iter()
            .any(|s| s.name.starts_with("rtmp_recorder_stream_"))
    );

    // A real remux and publish run: their records reach ingest's /metrics.
    let bad = rec
        .remux()
        .join("20200101T000000.000Z_live_cam1_000001.flv");
    fs::write(&bad, b"not an FLV at all").unwrap();
    let state = rec.state.to_str().unwrap().to_string();
    let dest = format!("file://{}", dir.path().join("bucket").display());
    for args in [
        vec!["--state-dir", &state, "remux"],
        vec!["--state-dir", &state, "publish", "--destination", &dest],
    ] {
        let mut cmd = Command::new(support::BIN);
        ingest::clean_env(&mut cmd);
        // A run that set a file aside may say so in its exit status; what it did is counted below.
        let out = cmd.args(&args).output().expect("running a stage");
        eprintln!("{args:?}: {}", out.status);
    }
    let done = metrics();
    assert_eq!(
        value(&done, "rtmp_recorder_queue_depth", &[("stage", "remux")]),
        0.0
    );
    assert_eq!(
        value(&done, "rtmp_recorder_queue_depth", &[("stage", "publish")]),
        0.0
    );
    assert_eq!(value(&done, "rtmp_recorder_remuxes_total", &[]), 2.0);
    assert_eq!(value(&done, "rtmp_recorder_uploads_total", &[]), 2.0);
    assert_eq!(
        value(
            &done,
            "rtmp_recorder_upload_failures_total",
            &[("kind", "transient")]
        ),
        0.0
    );
    assert_eq!(value(&done, "rtmp_recorder_failed_files", &[]), 1.0);
    assert_eq!(
        value(
            &done,
            "rtmp_recorder_oldest_unpublished_chunk_age_seconds",
            &[]
        ),
        0.0
    );
    let last_upload = value(&done, "rtmp_recorder_last_upload_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - last_upload).abs() < 120.0,
        "last upload {last_upload}, now {now}"
    );
    let free = value(&done, "rtmp_recorder_disk_free_bytes", &[]);
    let size = value(&done, "rtmp_recorder_disk_size_bytes", &[]);
    assert!(free > 0.0 && free <= size, "free {free} of {size}");
    assert_eq!(
        value(&done, "rtmp_recorder_disk_min_free_bytes", &[]),
        512.0 * 1024.0 * 1024.0
    );
}

/// A state directory holding what `/recordings/` must and must not show.
struct Tree {
    _dir: TempDir,
    rec: Recorder,
    http: u16,
    mp4: Vec<u8>,
}

fn tree() -> Tree {
    let dir = TempDir::new().unwrap();
    let (rec, http) = start_with_http(dir.path(), &[]);
    let state = &rec.state;
    let mp4: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let published = http::published_path(state, "20261202T100000.000Z_live_cam1_000001.mp4");
    fs::create_dir_all(published.parent().unwrap()).unwrap();
    fs::write(&published, &mp4).unwrap();
    fs::write(published.with_extension("json"), b"{}\n").unwrap();
    fs::write(
        state.join("archive/20261202T100000.000Z_live_cam1_000001.flv"),
        b"FLV",
    )
    .unwrap();
    // Never served: partials, hidden files, other kinds, work folders, links out.
    fs::write(published.parent().unwrap().join(".x.mp4.partial"), b"p").unwrap();
    fs::write(state.join("archive/notes.txt"), b"t").unwrap();
    fs::write(
        state.join("recording/20261202T110000.000Z_live_cam1_000001.flv"),
        b"r",
    )
    .unwrap();
    fs::write(state.join("tmp/remux-x.mp4"), b"t").unwrap();
    std::os::unix::fs::symlink("/etc/passwd", state.join("archive/passwd.mp4")).unwrap();
    std::os::unix::fs::symlink("/etc", state.join("archive/etc")).unwrap();
    std::os::unix::fs::symlink(state.join("tmp"), state.join("published/live/tmp")).unwrap();
    Tree {
        _dir: dir,
        rec,
        http,
        mp4,
    }
}

#[test]
fn recordings_list_only_finished_files_in_html_and_json() {
    let _turn = Turn::shared();
    let t = tree();
    let json = [("Accept", "application/json")];
    let top = get(t.http, "/recordings/", &json);
    assert_eq!(top.status, 200);
    let names: Vec<String> = top.json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["published", "publish", "archive"]);

    let archive = get(t.http, "/recordings/archive/", &json).json();
    let entries: Vec<(String, String)> = archive["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().into(),
                e["href"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        [(
            "20261202T100000.000Z_live_cam1_000001.flv".to_string(),
            "/recordings/archive/20261202T100000.000Z_live_cam1_000001.flv".to_string()
        )]
    );
    let live = get(t.http, "/recordings/published/live/", &json).json();
    assert_eq!(live["entries"].as_array().unwrap().len(), 1, "{live}");
    assert_eq!(live["entries"][0]["name"], "cam1");
    let day = get(t.http, "/recordings/published/live/cam1/2026/12/02/", &json).json();
    let files: Vec<(&str, u64)> = day["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["size"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        files,
        [
            ("20261202T100000.000Z_live_cam1_000001.json", 3),
            (
                "20261202T100000.000Z_live_cam1_000001.mp4",
                t.mp4.len() as u64
            ),
        ]
    );

    // A browser asks for HTML first.
    let html = get(
        t.http,
        "/recordings/published/live/cam1/2026/12/02/",
        &[("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")],
    );
    assert_eq!(html.status, 200);
    assert!(html.header("content-type").starts_with("text/html"));
    let text = html.text();
    assert!(
        text.contains("<a href=\"/recordings/published/live/cam1/2026/12/02/20261202T100000.000Z_live_cam1_000001.mp4\">"),
        "{text}"
    );
    assert!(!text.contains("partial"), "{text}");
    let bare = get(t.http, "/recordings", &[]);
    assert_eq!(bare.status, 308);
    assert_eq!(bare.header("location"), "/recordings/");
    let folder = get(t.http, "/recordings/published/live", &[]);
    assert_eq!(folder.status, 308);
    assert_eq!(folder.header("location"), "/recordings/published/live/");
    drop(t.rec);
}

#[test]
fn recordings_download_with_ranges() {
    let _turn = Turn::shared();
    let t = tree();
    let path =
        "/recordings/published/live/cam1/2026/12/02/20261202T100000.000Z_live_cam1_000001.mp4";
    let total = t.mp4.len();
    let whole = get(t.http, path, &[]);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.header("content-type"), "video/mp4");
    assert_eq!(whole.header("accept-ranges"), "bytes");
    assert!(whole.body == t.mp4, "whole file differs");

    let part = get(t.http, path, &[("Range", "bytes=1000-1999")]);
    assert_eq!(part.status, 206);
    assert_eq!(
        part.header("content-range"),
        format!("bytes 1000-1999/{total}")
    );
    assert!(part.body == t.mp4[1000..2000]);
    let open = get(
        t.http,
        path,
        &[("Range", &format!("bytes={}-", total - 10))],
    );
    assert_eq!(open.status, 206);
    assert!(open.body == t.mp4[total - 10..]);
    let suffix = get(t.http, path, &[("Range", "bytes=-500")]);
    assert_eq!(suffix.status, 206);
    assert_eq!(
        suffix.header("content-range"),
        format!("bytes {}-{}/{total}", total - 500, total - 1)
    );
    assert!(suffix.body == t.mp4[total - 500..]);
    let beyond = get(t.http, path, &[("Range", &format!("bytes={total}-"))]);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("content-range"), format!("bytes */{total}"));
    let flv = get(
        t.http,
        "/recordings/archive/20261202T100000.000Z_live_cam1_000001.flv",
        &[],
    );
    assert_eq!((flv.status, flv.body.as_slice()), (200, &b"FLV"[..]));
}

#[test]
fn recordings_refuse_traversal_and_links() {
    let _turn = Turn::shared();
    let t = tree();
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    let first_line = passwd.lines().next().unwrap().to_string();
    for path in [
        "/recordings/../etc/passwd",
        "/recordings/archive/../../../../etc/passwd",
        "/recordings/%2e%2e/%2e%2e/etc/passwd",
        "/recordings/archive/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        "/recordings/archive/..%2f..%2f..%2fetc%2fpasswd",
        "/recordings/archive%2f..%2f..%2fetc%2fpasswd",
        "/recordings/%2fetc%2fpasswd",
        "/recordings/archive/..\\..\\..\\etc\\passwd",
        "/recordings/archive/..%5c..%5cetc%5cpasswd",
        "/recordings/archive/20261202T100000.000Z_live_cam1_000001.flv%00.mp4",
        "/recordings/archive/passwd.mp4",
        "/recordings/archive/etc/passwd",
        "/recordings/archive/etc/",
        "/recordings/published/live/tmp/remux-x.mp4",
        "/recordings/published/live/cam1/2026/12/02/.x.mp4.partial",
        "/recordings/recording/",
        "/recordings/recording/20261202T110000.000Z_live_cam1_000001.flv",
        "/recordings/tmp/remux-x.mp4",
        "/recordings/failed/",
        "/recordings/status/live.json",
        "/recordings/archive/notes.txt",
        "/recordings/%c0%ae%c0%ae/etc/passwd",
    ] {
        let r = get(t.http, path, &[]);
        assert!(
            r.status == 400 || r.status == 404,
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains(&first_line), "{path} leaked /etc/passwd");
    }
    let listing = get(
        t.http,
        "/recordings/archive/",
        &[("Accept", "application/json")],
    )
    .text();
    for hidden in ["passwd", "etc", "notes"] {
        assert!(!listing.contains(hidden), "{hidden} listed: {listing}");
    }
    let live = get(t.http, "/recordings/published/live/", &[]).text();
    assert!(!live.contains("tmp"), "{live}");
}
