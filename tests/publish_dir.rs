//! Publish to a local directory (`file://`), the default destination, retention and the inbox
//! rules (hand-copied files wait until quiet; names that are not chunks go to `{prefix}/{file}`).
//! Fixtures: a real ffmpeg-made MP4 and random bytes named like chunks.

use crate::support::{self, Turn, publish, sha256_hex};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use publish::*;
use rtmp_recorder::spool::StateDir;

fn dir_cmd(state: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(support::BIN);
    cmd.arg("--state-dir")
        .arg(state)
        .args(["publish"])
        .args(extra)
        .env_remove("S3_BUCKET")
        .env_remove("DESTINATION");
    cmd
}

fn rel_key(name: &rtmp_recorder::spool::ChunkName, ext: &str) -> String {
    format!("live/{}/2026/11/26/{}.{ext}", name.stream, name.stem())
}

#[test]
fn copies_to_a_directory_with_manifests_and_archives() {
    let tmp = Turn::shared().scratch();
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let out_dir = tmp.path().join("out");
    let mp4 = real_mp4(tmp.path());
    let a = chunk_name("cam1", 1);
    queue_mp4(&state, &a, &mp4);
    let b = chunk_name("cam2", 2);
    let b_bytes = random_bytes(17 << 20, 9);
    queue_mp4(&state, &b, &b_bytes);
    let dest = format!("file://{}", out_dir.display());
    let out = run(dir_cmd(
        state.root(),
        &[
            "--destination",
            &dest,
            "--upload-quiet-for",
            "0",
            "--s3-prefix",
            "ignored",
        ],
    ));
    assert_eq!(out.status.code(), Some(0));
    for (name, bytes) in [(&a, &mp4), (&b, &b_bytes)] {
        let got = std::fs::read(out_dir.join(rel_key(name, "mp4"))).unwrap();
        assert_eq!(sha256_hex(&got), sha256_hex(bytes));
        let manifest: rtmp_recorder::manifest::ChunkManifest =
            serde_json::from_slice(&std::fs::read(out_dir.join(rel_key(name, "json"))).unwrap())
                .unwrap();
        assert_eq!(manifest.sha256, Some(sha256_hex(bytes)));
        assert_eq!(manifest.mp4_bytes, Some(bytes.len() as u64));
        assert_eq!(manifest.name, name.stem());
        assert_eq!(manifest.utc_start, name.start.rfc3339());
    }
    assert_archived(&state, [&a, &b], &["mp4"]);
    // No temporary files are left beside the published ones.
    let day = out_dir.join("live/cam1/2026/11/26");
    assert_eq!(
        files_in(&day),
        vec![format!("{}.json", a.stem()), format!("{}.mp4", a.stem())]
    );
}

#[test]
fn without_a_destination_publishes_into_the_state_dir() {
    let tmp = Turn::shared().scratch();
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let a = chunk_name("cam1", 1);
    let bytes = random_bytes(1000, 1);
    queue_mp4(&state, &a, &bytes);
    let out = run(dir_cmd(state.root(), &["--upload-quiet-for", "0"]));
    assert_eq!(out.status.code(), Some(0));
    let got = std::fs::read(state.published().join(rel_key(&a, "mp4"))).unwrap();
    assert_eq!(got, bytes);
}

fn age(path: &Path, by: Duration) {
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - by).unwrap();
}

#[test]
fn retention_deletes_only_old_archived_uploads() {
    let tmp = Turn::shared().scratch();
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let two_days = Duration::from_secs(2 * 86_400);
    let old = state
        .archive()
        .join("20261120T000000.000Z_live_cam1_000001.mp4");
    let old_json = old.with_extension("json");
    let fresh = state
        .archive()
        .join("20261125T000000.000Z_live_cam1_000002.mp4");
    let flv = state
        .archive()
        .join("20261120T000000.000Z_live_cam1_000001.flv");
    for p in [&old, &old_json, &fresh, &flv] {
        std::fs::write(p, b"x").unwrap();
    }
    for p in [&old, &old_json, &flv] {
        age(p, two_days);
    }
    // Old but never uploaded: it must be published, not deleted.
    let pending = chunk_name("cam1", 3);
    let file = queue_mp4(&state, &pending, b"pending bytes");
    age(&state.publish_inbox().join(&file), two_days);
    let out = run(dir_cmd(state.root(), &["--keep-uploaded-for", "1d"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !old.exists() && !old_json.exists(),
        "old archived upload deleted"
    );
    assert!(fresh.exists(), "recent upload kept");
    assert!(flv.exists(), "remux's FLVs are not publish's to delete");
    // The old inbox file was uploaded, then archived with the upload time as its age.
    assert!(state.archive().join(&file).exists());
    assert_eq!(
        std::fs::read(state.published().join(rel_key(&pending, "mp4"))).unwrap(),
        b"pending bytes"
    );
}

#[test]
fn hand_copied_files_wait_until_quiet_and_other_names_go_under_the_prefix() {
    let tmp = Turn::shared().scratch();
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let a = chunk_name("cam1", 1);
    let file = queue_mp4(&state, &a, b"just copied");
    std::fs::write(state.publish_inbox().join("holiday.mp4"), b"not a chunk").unwrap();
    let out = run(dir_cmd(state.root(), &["--upload-quiet-for", "1h"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        files_in(&state.publish_inbox()),
        vec![file.clone(), "holiday.mp4".to_string()]
    );
    let out = run(dir_cmd(state.root(), &["--upload-quiet-for", "0"]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(files_in(&state.publish_inbox()), Vec::<String>::new());
    assert_eq!(files_in(&state.failed()), Vec::<String>::new());
    assert!(state.archive().join(&file).exists());
    // A name that is not a chunk's goes to `{prefix}/{file}` (no prefix here), with a manifest
    // that says what little is known.
    assert_eq!(
        std::fs::read(state.published().join("holiday.mp4")).unwrap(),
        b"not a chunk"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.published().join("holiday.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["name"], "holiday");
    assert_eq!(manifest["mp4_bytes"], 11);
    assert!(state.archive().join("holiday.mp4").exists());
}

#[test]
fn watch_mode_publishes_new_files_and_stops_on_sigterm() {
    let tmp = Turn::shared().scratch();
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let mut cmd = dir_cmd(state.root(), &["--watch", "--sync-interval", "1s"]);
    let mut child = cmd.spawn().unwrap();
    support::wait_stage_started(state.root(), "publish", child.id());
    let mut queued = Vec::new();
    for seq in 1..=3u32 {
        let name = chunk_name("cam1", seq);
        // With a manifest, a file counts as handed over by remux and needs no quiet period.
        queue_manifest(&state, &manifest_for(&name, 1000));
        queued.push(queue_mp4(
            &state,
            &name,
            &random_bytes(5000, u64::from(seq)),
        ));
        std::thread::sleep(Duration::from_millis(300));
    }
    support::wait_until(Duration::from_secs(20), "watch mode to publish", || {
        assert!(child.try_wait().unwrap().is_none(), "watch mode exited");
        queued.iter().all(|f| state.archive().join(f).exists())
    });
    // SAFETY: kill(2) on our own child's PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(files_in(&state.publish_inbox()), Vec::<String>::new());
}

#[test]
fn manifests_left_by_a_crash_after_archiving_are_tidied() {
    let tmp = Turn::shared().scratch();
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    // A run died after moving A.mp4 to archive/ (archive/A.json written) but before removing
    // publish/A.json; for B it died before writing archive/B.json. C is remux mid-handoff
    // (manifest renamed in, MP4 not yet): it must be left alone.
    let [a, b, c] = [1, 2, 3].map(|seq| chunk_name("cam1", seq).stem());
    std::fs::write(state.archive().join(format!("{a}.mp4")), b"a").unwrap();
    std::fs::write(state.archive().join(format!("{a}.json")), b"{\"done\":1}").unwrap();
    std::fs::write(state.publish_inbox().join(format!("{a}.json")), b"{}").unwrap();
    std::fs::write(state.archive().join(format!("{b}.mp4")), b"b").unwrap();
    std::fs::write(
        state.publish_inbox().join(format!("{b}.json")),
        b"{\"b\":1}",
    )
    .unwrap();
    std::fs::write(state.publish_inbox().join(format!("{c}.json")), b"{}").unwrap();
    let out = run(dir_cmd(state.root(), &[]));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(files_in(&state.publish_inbox()), vec![format!("{c}.json")]);
    assert_eq!(
        std::fs::read(state.archive().join(format!("{a}.json"))).unwrap(),
        b"{\"done\":1}"
    );
    assert_eq!(
        std::fs::read(state.archive().join(format!("{b}.json"))).unwrap(),
        b"{\"b\":1}"
    );
}
