//! `rtmp-recorder status` on a state directory where everything happens at once: ffmpeg
//! publishing live into a real ingest, a chunk queued in `remux/`, one uploaded by a real
//! `publish` run, and a broken chunk that remux set aside in `failed/`. Checked as text and as
//! `--json`, with the exit status: 1 while `failed/` holds something, 0 once it is dealt with,
//! 2 for a state directory that cannot be read.

use crate::support::{self, Turn, ingest, wait_until};

use std::fs;
use std::process::{Command, Output};
use std::time::Duration;

use ingest::{PublishOpts, Recorder};

fn status(state: &std::path::Path, extra: &[&str]) -> Output {
    let mut cmd = Command::new(support::BIN);
    ingest::clean_env(&mut cmd);
    cmd.arg("--state-dir")
        .arg(state)
        .arg("status")
        .args(extra)
        .output()
        .expect("running rtmp-recorder status")
}

fn stage(state: &std::path::Path, args: &[&str]) {
    let mut cmd = Command::new(support::BIN);
    ingest::clean_env(&mut cmd);
    // Whether a run that set a file aside exits 0 is not this test's business; what it did is.
    let out = cmd
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("running a stage");
    eprintln!(
        "{args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn status_shows_live_queued_uploaded_and_failed() {
    let dir = Turn::shared().scratch();
    let rec = Recorder::start(dir.path(), &[]);
    let state = rec.state.clone();
    let mut opts = PublishOpts::new(dir.path(), "cam1");
    (opts.width, opts.height) = (426, 240);
    let mut ffmpeg = ingest::ffmpeg_publish(&rec.url("live", "cam1"), 60, &opts);

    wait_until(Duration::from_secs(40), "the first chunk", || {
        rec.chunks().len() == 1
    });
    // Older than any real chunk, so remux meets it first and its good chunk is the last word.
    fs::write(
        rec.remux()
            .join("20200101T000000.000Z_live_cam1_000001.flv"),
        b"not an FLV",
    )
    .unwrap();
    stage(&state, &["remux"]);
    let dest = format!("file://{}", dir.path().join("bucket").display());
    stage(&state, &["publish", "--destination", &dest]);
    wait_until(Duration::from_secs(40), "a second chunk queued", || {
        rec.chunks().len() == 1
    });
    // Until the snapshot (every 2 s) shows the stream, and while ffmpeg still publishes.
    let mut json = serde_json::Value::Null;
    wait_until(
        Duration::from_secs(10),
        "status to show the live stream",
        || {
            let out = status(&state, &["--json"]);
            json = serde_json::from_slice(&out.stdout).unwrap();
            json["live_streams"]
                .as_array()
                .is_some_and(|l| !l.is_empty())
        },
    );
    let text_out = status(&state, &[]);
    assert!(
        ffmpeg.running(),
        "the publisher ended before status was read"
    );

    let live = &json["live_streams"][0];
    assert_eq!(live["app"], "live");
    assert_eq!(live["stream"], "cam1");
    let secs = live["duration_seconds"].as_u64().unwrap();
    assert!((15..120).contains(&secs), "duration {secs}");
    // testsrc2 at 426x240 plus 128 kbit/s AAC: far above audio alone, far below 10 Mbit/s.
    let bitrate = live["bitrate_bits_per_second"].as_u64().unwrap();
    assert!(
        (150_000..10_000_000).contains(&bitrate),
        "bitrate {bitrate}"
    );
    assert!(live["video_frames"].as_u64().unwrap() >= 15 * 30);

    let stages = json["stages"].as_array().unwrap();
    assert_eq!(stages[0]["stage"], "ingest");
    assert_eq!(stages[0]["running"], true);
    assert_eq!(stages[0]["state"], format!("running (pid {})", rec.pid()));
    assert_eq!(stages[1]["stage"], "remux");
    assert_eq!(stages[1]["state"], "not running");
    assert_eq!(stages[1]["done"], 1);
    assert_eq!(stages[2]["done"], 1);

    assert_eq!(json["queues"]["remux"], 1);
    assert_eq!(json["queues"]["publish"], 0);
    let oldest = json["queues"]["oldest_unpublished_age_seconds"]
        .as_u64()
        .unwrap();
    // The queued chunk holds 10 s of media that arrived in real time, so it started about 10 s
    // before it was handed on; its own span may be a frame short of that, hence 9.
    assert!((9..60).contains(&oldest), "oldest {oldest}");
    let uploaded: Vec<_> = ingest::files_with_ext(&state.join("archive"), "mp4");
    assert_eq!(uploaded.len(), 1);
    let uploaded_name = uploaded[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let last = json["last_upload"]["what"].as_str().unwrap();
    assert!(last.ends_with(&uploaded_name), "{last} vs {uploaded_name}");
    assert_eq!(json["last_error"]["stage"], "remux");
    let failed = json["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{json}");
    assert_eq!(
        failed[0]["name"],
        "20200101T000000.000Z_live_cam1_000001.flv"
    );
    let reason =
        fs::read_to_string(state.join("failed/20200101T000000.000Z_live_cam1_000001.flv.reason"))
            .unwrap();
    assert_eq!(failed[0]["reason"], reason.lines().next().unwrap());
    assert!(
        json["problems"].to_string().contains("in failed/"),
        "{json}"
    );

    let text = support::stdout_with_code(&text_out, 1);
    let wants = [
        "rtmp-recorder: NEEDS ATTENTION",
        "file(s) in failed/",
        &format!("ingest   running (pid {})", rec.pid()),
        "remux    not running    1 remuxed",
        "publish  not running    1 uploaded",
        "live streams: 1",
        "  live/cam1  00:00:",
        "queues: remux/ 1 FLV(s), publish/ 0 MP4(s), oldest unpublished chunk started",
        &format!("last upload: {last} at "),
        "last error: remux at ",
        &format!(
            "  20200101T000000.000Z_live_cam1_000001.flv: {}",
            reason.lines().next().unwrap()
        ),
        "disk: ",
    ];
    support::assert_contains_all(&text, &wants, "status");
    assert!(text.lines().count() <= 24, "more than one screen:\n{text}");

    // Dealt with: the operator moves the failed files away; all is well again.
    for name in ingest::all_names(&state.join("failed")) {
        fs::remove_file(state.join("failed").join(name)).unwrap();
    }
    let ok = status(&state, &[]);
    let text = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{text}");
    assert!(text.starts_with("rtmp-recorder: all well"), "{text}");

    // ingest gone: no live streams, whatever the last snapshot said.
    ffmpeg.kill();
    drop(rec);
    let after: serde_json::Value =
        serde_json::from_slice(&status(&state, &["--json"]).stdout).unwrap();
    assert_eq!(after["live_streams"].as_array().unwrap().len(), 0);
    assert_eq!(after["stages"][0]["state"], "not running");

    let missing = status(&dir.path().join("no-such-dir"), &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-dir"));
}
