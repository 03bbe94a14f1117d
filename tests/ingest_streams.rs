//! Several publishers on one ingest: two keys record side by side into their own chunk series; a
//! second publisher on a live key is turned away without disturbing the first; with
//! `--allowed-keys` an unknown key is rejected and a known key is recorded under its label, the
//! key itself appearing in no log line and no file name.
//!
//! These streams are 640x360: what is tested is stream handling, and four real-time encodes at
//! 720p next to another test would not keep up on two cores.

use crate::support::{self, Turn, ingest, wait_until};

use std::path::PathBuf;
use std::time::Duration;

use ingest::*;

fn small(dir: &std::path::Path, name: &str) -> PublishOpts {
    PublishOpts {
        width: 640,
        height: 360,
        ..PublishOpts::new(dir, name)
    }
}

/// A 5 s publish to live/`key`, which ingest must refuse (ffmpeg ends with an error); `what`
/// names it in the failure, `name` its files.
fn assert_refused(rec: &Recorder, dir: &std::path::Path, key: &str, name: &str, what: &str) {
    let mut publisher = ffmpeg_publish(&rec.url("live", key), 5, &small(dir, name));
    let status = publisher.wait(Duration::from_secs(20));
    assert!(
        !status.success(),
        "{what} was accepted\n{}",
        publisher.log_text()
    );
}

fn chunks_labelled(rec: &Recorder, label: &str) -> Vec<PathBuf> {
    rec.chunks()
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .contains(&format!("_{label}_"))
        })
        .collect()
}

#[test]
fn two_streams_and_a_rejected_second_publisher() {
    let dir = Turn::alone().scratch();
    let rec = Recorder::start(dir.path(), &[]);
    let secs = 14;
    let mut a = ffmpeg_publish(&rec.url("live", "cam-a"), secs, &small(dir.path(), "a"));
    let mut b = gst_publish(&rec.url("live", "cam-b"), secs, &small(dir.path(), "b"));

    wait_until(Duration::from_secs(10), "cam-a recording", || {
        rec.open_chunks()
            .iter()
            .any(|p| p.to_string_lossy().contains("_cam-a_"))
    });
    let second = "a second publisher on the live key cam-a";
    assert_refused(&rec, dir.path(), "cam-a", "intruder", second);
    assert!(
        a.running(),
        "the first publisher on cam-a was disturbed\n{}",
        a.log_text()
    );

    a.wait_ok(Duration::from_secs(secs as u64 + 30));
    b.wait_ok(Duration::from_secs(secs as u64 + 30));
    rec.wait_chunks(4, Duration::from_secs(15));

    let chunks_a = chunks_labelled(&rec, "cam-a");
    let chunks_b = chunks_labelled(&rec, "cam-b");
    check_chunks_against_reference(&chunks_a, &a.reference, "live", "cam-a");
    check_chunks_against_reference(&chunks_b, &b.reference, "live", "cam-b");
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn allowed_keys_reject_unknown_keys_and_hide_known_ones() {
    let dir = Turn::alone().scratch();
    let labelled_key = "k3y-Secret-4f9a2c71";
    let bare_key = "bare-Secret-0b1d";
    let keys = dir.path().join("allowed-keys");
    std::fs::write(&keys, format!("{labelled_key} lobby\n{bare_key}\n")).unwrap();
    let rec = Recorder::start(dir.path(), &["--allowed-keys", keys.to_str().unwrap()]);

    assert_refused(&rec, dir.path(), "not-a-key", "bad", "an unknown key");

    let secs = 12;
    let mut good = ffmpeg_publish(
        &rec.url("live", labelled_key),
        secs,
        &small(dir.path(), "good"),
    );
    let mut bare = ffmpeg_publish(&rec.url("live", bare_key), secs, &small(dir.path(), "bare"));
    good.wait_ok(Duration::from_secs(secs as u64 + 30));
    bare.wait_ok(Duration::from_secs(secs as u64 + 30));
    rec.wait_chunks(4, Duration::from_secs(15));

    // Without a label the name is `key-` and the first 16 hex digits of the key's HMAC-SHA256
    // under the installation's label key (made at start, readable by its owner only).
    let label_key = rec.state.join("secrets/label-key");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&label_key).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "{}", label_key.display());
    let bare_label = format!(
        "key-{}",
        &support::openssl_hmac(
            &format!("hexkey:{}", hex(&std::fs::read(&label_key).unwrap())),
            bare_key
        )[..16]
    );

    check_chunks_against_reference(
        &chunks_labelled(&rec, "lobby"),
        &good.reference,
        "live",
        "lobby",
    );
    check_chunks_against_reference(
        &chunks_labelled(&rec, &bare_label),
        &bare.reference,
        "live",
        &bare_label,
    );
    let names = all_names(&rec.state);
    assert!(
        !names.iter().any(|n| n.contains("not-a-key")),
        "the rejected key left files: {names:?}"
    );
    for key in [labelled_key, bare_key, "not-a-key"] {
        assert!(
            !names.iter().any(|n| n.contains(key)),
            "key {key} appears in a file name: {names:?}"
        );
        // Nor inside the recordings, which are uploaded as they are (metadata included).
        for chunk in rec.chunks() {
            let bytes = std::fs::read(&chunk).unwrap();
            assert!(
                !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
                "key {key} appears inside {}",
                chunk.display()
            );
        }
        let log = rec.log_text();
        assert!(
            !log.contains(key),
            "key {key} appears in the log:\n{}",
            log.lines()
                .filter(|l| l.contains(key))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}
