//! Files copied in by hand flow end to end, as the seed's `aws s3 sync` did: an FLV copied into
//! `remux/` and an MP4 copied into `publish/`, neither named like a chunk, reach a real S3 server
//! (s3s-fs) under `{prefix}/{file}`. A stage that sets an input aside in `failed/` exits 65 and
//! says so in its log, having done the rest.

use crate::support::{self, Turn, publish, remux};

use std::path::Path;
use std::time::{Duration, SystemTime};

use publish::{files_in, get, list_keys, publish_cmd, real_mp4, s3s_with_bucket};
use rtmp_recorder::spool::StateDir;
use support::sha256_hex;

const BUCKET: &str = "recordings";

/// Makes a hand-copied file look as if the copy ended long ago (past any quiet period).
fn settle(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(old))
        .unwrap_or_else(|e| panic!("setting mtime of {}: {e}", path.display()));
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hand_copied_flv_and_mp4_reach_the_bucket_under_the_prefix() {
    let tmp = Turn::shared().scratch();
    let (server, c) = s3s_with_bucket(tmp.path(), BUCKET).await;
    let state = StateDir::open(tmp.path().join("state")).unwrap();

    // An FLV from a camera's SD card and an MP4 from an editor, copied in by hand.
    let flv_src = tmp.path().join("source.flv");
    remux::encode(
        &flv_src,
        &remux::testsrc_av("320x240"),
        &[
            "-t", "3", "-c:v", "libx264", "-g", "30", "-c:a", "aac", "-f", "flv",
        ],
    );
    let talk = state.remux_inbox().join("Board meeting.flv");
    std::fs::copy(&flv_src, &talk).unwrap();
    settle(&talk);
    let mp4_bytes = real_mp4(tmp.path());
    let edit = state.publish_inbox().join("edit-final.mp4");
    std::fs::write(&edit, &mp4_bytes).unwrap();
    settle(&edit);

    let out = remux::remux(state.root(), &["--quiet-seconds", "60"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let remuxed = state.publish_inbox().join("Board meeting.mp4");
    assert!(remuxed.exists(), "{}", stderr(&out));
    // Checked on a copy: the check writes ffmpeg's own remux beside the file it looks at.
    let checked = tmp.path().join("remuxed.mp4");
    std::fs::copy(&remuxed, &checked).unwrap();
    remux::assert_packet_identical(
        Path::new(remux::ffmpeg()),
        &state.archive().join("Board meeting.flv"),
        &checked,
    );
    let remuxed_bytes = std::fs::read(&remuxed).unwrap();

    let mut cmd = publish_cmd(state.root(), &server.endpoint(), BUCKET);
    cmd.arg("--until-empty");
    let out = publish::run(cmd);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    assert_eq!(
        list_keys(&c, BUCKET).await,
        [
            "rec/Board meeting.json",
            "rec/Board meeting.mp4",
            "rec/edit-final.json",
            "rec/edit-final.mp4"
        ]
    );
    for (key, want) in [
        ("rec/Board meeting.mp4", &remuxed_bytes),
        ("rec/edit-final.mp4", &mp4_bytes),
    ] {
        let got = get(&c, BUCKET, key).await;
        assert_eq!(sha256_hex(&got.bytes), sha256_hex(want), "{key}");
        assert_eq!(got.content_type.as_deref(), Some("video/mp4"));
    }
    let manifest = get(&c, BUCKET, "rec/Board meeting.json").await;
    let manifest: serde_json::Value = serde_json::from_slice(&manifest.bytes).unwrap();
    assert_eq!(manifest["name"], "Board meeting");
    assert_eq!(manifest["sha256"], sha256_hex(&remuxed_bytes));
    assert!(manifest["video"]["frames"].as_u64().unwrap() > 0);
    assert_eq!(files_in(&state.failed()), Vec::<String>::new());
    assert_eq!(files_in(&state.publish_inbox()), Vec::<String>::new());
    assert!(state.archive().join("edit-final.mp4").exists());
}

#[test]
fn a_stage_that_sets_files_aside_exits_65_and_does_the_rest() {
    let tmp = Turn::shared().scratch();
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let good = tmp.path().join("good.flv");
    remux::small_flv(&good, 1);
    let good_name = remux::chunk_name(1);
    remux::queue(state.root(), &[(good_name.as_str(), good.as_path())]);
    std::fs::write(state.remux_inbox().join("notes.flv"), b"not an FLV at all").unwrap();
    settle(&state.remux_inbox().join("notes.flv"));

    let out = remux::remux(state.root(), &[]);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 file(s) could not be remuxed and were moved to"),
        "{}",
        stderr(&out)
    );
    assert_eq!(files_in(&state.failed()), ["notes.flv", "notes.flv.reason"]);
    assert!(remux::published_mp4(state.root(), &good_name).exists());
    // Nothing left to do, nothing set aside: a clean exit.
    let out = remux::remux(state.root(), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // publish: a chunk whose manifest is not one cannot be published; the good one is.
    let stem = good_name.trim_end_matches(".flv");
    let bad = remux::chunk_name(2);
    let bad_stem = bad.trim_end_matches(".flv");
    std::fs::copy(
        remux::published_mp4(state.root(), &good_name),
        state.publish_inbox().join(format!("{bad_stem}.mp4")),
    )
    .unwrap();
    std::fs::write(
        state.publish_inbox().join(format!("{bad_stem}.json")),
        b"{\"not\": \"a manifest\"}",
    )
    .unwrap();
    let mut cmd = std::process::Command::new(support::BIN);
    cmd.arg("--state-dir")
        .arg(state.root())
        .args(["publish", "--destination"])
        .arg(format!("file://{}", tmp.path().join("out").display()));
    let out = publish::run(cmd);
    assert_eq!(out.status.code(), Some(65), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("1 file(s) could not be published and were moved to"),
        "{}",
        stderr(&out)
    );
    assert!(state.archive().join(format!("{stem}.mp4")).exists());
    assert!(state.failed().join(format!("{bad_stem}.mp4")).exists());
    assert!(
        state
            .failed()
            .join(format!("{bad_stem}.mp4.reason"))
            .exists()
    );
}
