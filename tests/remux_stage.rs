//! The remux stage around the conversion: files copied in by hand wait until quiet (and with
//! `--until-empty` the run waits for them), locked files are left to their owner, `--watch` picks up new chunks and stops on SIGTERM,
//! `--keep-flv-for` prunes old archived FLVs only, and the manifest carries ingest's metadata.

use crate::support::flv::Tag;
use crate::support::{self, Turn, ensure_apt, flv, packets, remux, words};

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use remux::*;
use rtmp_recorder::flv::script::{Amf0Value, encode_metadata};
use rtmp_recorder::manifest::{
    META_PREVIOUS, META_SEQUENCE, META_STREAM_OFFSET_MS, META_UTC_START,
};

fn small_flv(path: &Path) {
    encode(
        path,
        &testsrc_av("320x240"),
        &words("-t 2 -c:v libx264 -preset ultrafast -c:a aac"),
    );
}

/// A scratch directory with `in.flv` (2 s of 320x240) and the path of a state directory in it.
fn small_flv_and_state() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let flv = dir.path().join("in.flv");
    small_flv(&flv);
    let state = dir.path().join("state");
    (dir, flv, state)
}

#[test]
fn hand_copied_files_wait_until_quiet_then_get_default_names() {
    let _turn = Turn::shared();
    let (_dir, flv, state) = small_flv_and_state();
    queue(&state, &[("my video.flv", &flv)]);
    let out = remux(&state, &[]);
    assert!(out.status.success());
    assert!(
        state.join("remux/my video.flv").exists(),
        "taken before it was quiet"
    );
    let out = remux(&state, &["--quiet-seconds", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(state.join("publish/my video.mp4").exists());
    assert!(state.join("archive/my video.flv").exists());
    let m = manifest(&state.join("publish/my video.mp4"));
    assert_eq!(m["name"], "my video");
    assert_eq!(m["stream"], "my video");
    assert_eq!(m["sequence"], 1);
    assert_packet_identical(
        Path::new(ffmpeg()),
        &flv,
        &state.join("publish/my video.mp4"),
    );
}

/// `--until-empty` (what the .path-activated unit runs): a hand-copied file that is not quiet yet
/// keeps remux up, saying so, instead of ending the run with remux/ not empty; once quiet it is
/// remuxed and remux exits with the folder empty.
#[test]
fn until_empty_waits_for_a_file_to_become_quiet() {
    let _turn = Turn::shared();
    let (_dir, flv, state) = small_flv_and_state();
    queue(&state, &[("my video.flv", &flv)]);
    let started = Instant::now();
    let out = remux(&state, &["--until-empty", "--quiet-seconds", "3"]);
    let took = started.elapsed();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(state.join("publish/my video.mp4").exists(), "{log}");
    let left: Vec<_> = std::fs::read_dir(state.join("remux")).unwrap().collect();
    assert!(left.is_empty(), "remux/ still holds {left:?}");
    assert!(took >= Duration::from_secs(3), "exited after {took:?}");
    assert!(
        log.contains("my video.flv") && log.contains("not taken yet"),
        "{log}"
    );
}

#[test]
fn a_locked_chunk_is_left_to_its_owner() {
    let _turn = Turn::shared();
    let (_dir, flv, state) = small_flv_and_state();
    let name = chunk_name(1);
    queue(&state, &[(&name, &flv)]);
    let queued = state.join("remux").join(&name);
    let held = std::fs::File::open(&queued).unwrap();
    held.try_lock().unwrap();
    let out = remux(&state, &[]);
    assert!(out.status.success());
    assert!(queued.exists(), "a locked chunk was taken");
    assert_eq!(std::fs::read_dir(state.join("publish")).unwrap().count(), 0);
    drop(held);
    assert!(remux(&state, &[]).status.success());
    assert!(!queued.exists());
    assert!(state.join("archive").join(&name).exists());
}

#[test]
fn watch_mode_picks_up_new_chunks_and_stops_on_sigterm() {
    let _turn = Turn::shared();
    let (_dir, flv, state) = small_flv_and_state();
    let mut child = remux_command(&state, &["--watch"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::wait_stage_started(&state, "remux", child.id());
    // Arrives the way ingest hands chunks on: written elsewhere, renamed in.
    let name = chunk_name(7);
    std::fs::copy(&flv, state.join("recording").join(&name)).unwrap();
    std::fs::rename(
        state.join("recording").join(&name),
        state.join("remux").join(&name),
    )
    .unwrap();
    let mp4 = published_mp4(&state, &name);
    support::wait_until(
        Duration::from_secs(20),
        "--watch to remux the new chunk",
        || mp4.exists(),
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "--watch exited on its own"
    );
    // SAFETY: signalling our own child by its PID.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let mut status = None;
    support::wait_until(Duration::from_secs(10), "an exit after SIGTERM", || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let status = status.unwrap();
    assert!(status.success(), "{status:?}");
    assert_packet_identical(Path::new(ffmpeg()), &flv, &mp4);
}

#[test]
fn keep_flv_for_prunes_old_archived_flvs_only() {
    let dir = Turn::shared().scratch();
    let state = dir.path().join("state");
    let archive = state.join("archive");
    std::fs::create_dir_all(&archive).unwrap();
    let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
    for (name, old) in [("old.flv", true), ("new.flv", false), ("old.mp4", true)] {
        let f = std::fs::File::create(archive.join(name)).unwrap();
        if old {
            f.set_modified(two_hours_ago).unwrap();
        }
    }
    let out = remux(&state, &["--keep-flv-for", "1h"]);
    assert!(out.status.success());
    assert!(!archive.join("old.flv").exists());
    assert!(archive.join("new.flv").exists());
    assert!(
        archive.join("old.mp4").exists(),
        "publish's archived MP4 was deleted"
    );
    // Without the option nothing is deleted.
    std::fs::File::create(archive.join("old2.flv"))
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    assert!(remux(&state, &[]).status.success());
    assert!(archive.join("old2.flv").exists());
}

#[test]
fn the_manifest_carries_ingest_metadata() {
    let dir = Turn::shared().scratch();
    let src = dir.path().join("src.flv");
    small_flv(&src);
    let (header, mut tags) = flv::split(&src);
    let meta = encode_metadata(&[
        ("width".to_string(), Amf0Value::Number(320.0)),
        (META_SEQUENCE.to_string(), Amf0Value::Number(42.0)),
        (
            META_PREVIOUS.to_string(),
            Amf0Value::String("20261126T025500.000Z_live_cam1_000041".to_string()),
        ),
        (
            META_UTC_START.to_string(),
            Amf0Value::String("2026-11-26T03:00:00.250Z".to_string()),
        ),
        (
            META_STREAM_OFFSET_MS.to_string(),
            Amf0Value::Number(12_300_000.0),
        ),
    ]);
    for t in tags.iter_mut().filter(|t| t.kind == 18) {
        t.data = meta.clone();
    }
    let flv = dir.path().join("in.flv");
    std::fs::write(&flv, flv::join(&header, &tags)).unwrap();
    let state = dir.path().join("state");
    let name = "20261126T030000.250Z_live_cam1_000042.flv";
    queue(&state, &[(name, &flv)]);
    assert!(remux(&state, &[]).status.success());
    let m = manifest(&published_mp4(&state, name));
    assert_eq!(m["sequence"], 42);
    assert_eq!(m["previous"], "20261126T025500.000Z_live_cam1_000041");
    assert_eq!(m["utc_start"], "2026-11-26T03:00:00.250Z");
    assert_eq!(m["stream_offset_ms"], 12_300_000);
    assert_eq!(m["app"], "live");
    assert_eq!(m["stream"], "cam1");
    assert_eq!(m["video"]["frames"], 60);
    let d = m["duration_ms"].as_u64().unwrap();
    assert!((1950..=2150).contains(&d), "duration {d}");
}

/// Peak RSS of `rtmp-recorder remux` over a ~100 MB chunk stays far below the chunk size:
/// pass 1 keeps a few numbers per sample, pass 2 a fixed window and buffer.
#[test]
fn memory_stays_flat_in_chunk_size() {
    let dir = Turn::shared().scratch();
    let cbr = "-t 2 -c:v libx264 -preset ultrafast -bf 0 -b:v 8M -minrate 8M -maxrate 8M -bufsize 16M -x264-params nal-hrd=cbr -c:a aac";
    let clip = encoded(dir.path(), "clip.flv", &testsrc_av("640x360"), cbr);
    // The clip back to back until the chunk is ~100 MB (no encoder needed for the bulk).
    let (header, tags) = flv::split(&clip);
    let span = tags.iter().map(|t| t.ts).max().unwrap() + 100;
    let clip_bytes: usize = tags.iter().map(|t| t.data.len() + 15).sum();
    let copies = (100 << 20) / clip_bytes + 1;
    let mut all = Vec::new();
    for k in 0..copies as u32 {
        all.extend(tags.iter().filter(|t| k == 0 || t.kind != 18).map(|t| Tag {
            kind: t.kind,
            ts: t.ts + k * span,
            offset: 0,
            data: t.data.clone(),
        }));
    }
    let flv = dir.path().join("big.flv");
    std::fs::write(&flv, flv::join(&header, &all)).unwrap();
    drop(all);
    let size = std::fs::metadata(&flv).unwrap().len();
    assert!(size > 100 << 20, "fixture only {size} bytes");

    let state = dir.path().join("state");
    let name = chunk_name(1);
    queue(&state, &[(&name, &flv)]);
    // GNU time forks the remux from its own small process: a child spawned straight from
    // this (large) test process would inherit its peak RSS in ru_maxrss.
    ensure_apt("/usr/bin/time", "time");
    let report = dir.path().join("rusage");
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&report)
        .arg(support::BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(["remux", "--log-level", "warn"])
        .env_remove("JOURNAL_STREAM")
        .status()
        .unwrap();
    assert!(status.success());
    let kib: f64 = std::fs::read_to_string(&report)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let peak_mib = kib / 1024.0;
    eprintln!(
        "remux of a {} MB chunk: peak RSS {peak_mib:.1} MiB",
        size >> 20
    );
    assert!(peak_mib < 32.0, "peak RSS {peak_mib:.1} MiB");
    let mp4 = published_mp4(&state, &name);
    // Every packet of the big chunk, byte for byte. (No decode check here: the splice points
    // leave gaps that make ffmpeg's null muxer complain about any MP4 of this input, its own
    // `-c copy` remux included.)
    let got = packets::read(&mp4);
    assert_eq!(
        got.len(),
        packets::read(&clip).len() * copies,
        "packet count"
    );
    assert_eq!(
        packets::by_stream(&got),
        packets::by_stream(&packets::read(&flv))
    );
}
