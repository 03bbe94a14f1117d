//! Reconnect continuity with real publishers: ffmpeg publishes (H.264 + AAC, real time) through a
//! proxy that cuts it off with a connection reset, then publishes the same stream again. Within
//! `--reconnect-grace` the two publishes are one recording: one unbroken sequence and `previous`
//! chain, the first chunk after the cut says `gap` (reason reconnect, the time away), stream
//! offsets keep counting wall time, and every frame ingest was given of the first publish
//! (counted by the proxy) and every frame of the second are in the chunks, in order, unchanged.
//! The same across an ingest restart (SIGTERM) between the two, and across a `kill -9` of ingest
//! under the publisher (then the first publish is a prefix: what was on disk). Past the grace,
//! the second publish starts a new recording at sequence 1 and the log says why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use std::process::Command;

use rtmp_recorder::manifest::{ChunkManifest, Gap};
use rtmp_recorder::naming::ChunkName;

use crate::support::flv::{Amf, Flv};
use crate::support::ingest::{PublishOpts, Publisher, Recorder, ffmpeg_publish};
use crate::support::rtmp_cut::{CutProxy, Passed};
use crate::support::{self, Scratch, Turn, free_port, packets, wait_until};

/// The first publish lasts long enough for its first 10 s chunk to be handed on; it is cut a
/// few seconds into the second.
const FIRST_SECS: u32 = 40;
const SECOND_SECS: u32 = 6;

fn opts(dir: &Path, name: &str) -> PublishOpts {
    PublishOpts {
        width: 640,
        height: 360,
        ..PublishOpts::new(dir, name)
    }
}

/// A hook configured, so ingest queues its events in `events/`; no `deliver` runs here, so
/// they stay there for the test to read.
const HOOK: [(&str, &str); 1] = [("HOOK_COMMAND", "true")];

fn start(dir: &Path, port: u16) -> Recorder {
    Recorder::start_with_env(dir, port, &[], &HOOK)
}

/// The events of `kind` ingest queued, oldest first (their names sort by time).
fn queued_events(rec: &Recorder, kind: &str) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(rec.state.join("events"))
        .expect("reading events/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).expect("an event"))
        .filter(|e: &serde_json::Value| e["kind"] == kind)
        .collect()
}

/// How much later than its arrival the recorder may date a frame: it dates a frame when the
/// frame's batch reaches it (batches wait up to 100 ms, and a publishing connection's reads up
/// to 100 ms more), so the last frame before a drop can look up to this much later than the
/// test saw it, and the time away that much shorter.
const DATED_LATE_MS: u64 = 300;

/// The `stream.started` of the publish that continued the recording names the chunk before the
/// gap and a time away of at most the gap (it is judged at the publish, the gap at its first
/// frame) and at least what the test saw, less [`DATED_LATE_MS`].
fn check_continued_event(rec: &Recorder, before_gap: &str, gap_ms: u64, away: Duration) {
    let started = queued_events(rec, "stream.started");
    let continued: Vec<_> = started
        .iter()
        .filter(|e| e.get("continues_after").is_some())
        .collect();
    assert_eq!(continued.len(), 1, "{started:?}");
    assert_eq!(continued[0]["continues_after"], before_gap);
    let away_ms = continued[0]["away_ms"].as_u64().expect("away_ms");
    assert!(
        ((away.as_millis() as u64).saturating_sub(DATED_LATE_MS)..=gap_ms).contains(&away_ms),
        "away_ms {away_ms}: the test saw {away:?}, the gap is {gap_ms} ms"
    );
}

/// Starts ingest and the first publish (through a cut proxy, if `cut`), and returns once its
/// first chunk is handed on and `into_second` more has passed.
fn first_publish(
    dir: &Path,
    cut: bool,
    into_second: Duration,
) -> (Recorder, Option<CutProxy>, Publisher) {
    let rec = start(dir, free_port());
    let proxy = cut.then(|| CutProxy::start(([127, 0, 0, 1], rec.port).into()));
    let url = match &proxy {
        Some(p) => p.url("live", "cam"),
        None => rec.url("live", "cam"),
    };
    let p = ffmpeg_publish(&url, FIRST_SECS, &opts(dir, "first"));
    wait_until(Duration::from_secs(40), "the first chunk handed on", || {
        !rec.chunks().is_empty()
    });
    std::thread::sleep(into_second);
    (rec, proxy, p)
}

/// The second publish, whole, straight to ingest; returns when ingest has handed on every chunk.
/// `away_from` is when the first publish's last frame had surely arrived.
fn second_publish(rec: &Recorder, dir: &Path, away_from: Instant) -> (Publisher, Duration) {
    let away = away_from.elapsed();
    let mut p = ffmpeg_publish(&rec.url("live", "cam"), SECOND_SECS, &opts(dir, "second"));
    p.wait_ok(Duration::from_secs(60));
    wait_until(Duration::from_secs(20), "every chunk handed on", || {
        rec.open_chunks().is_empty()
    });
    (p, away)
}

/// A recorded chunk: its name, metadata and packets.
struct Chunk {
    path: PathBuf,
    name: ChunkName,
    meta: BTreeMap<String, Amf>,
    packets: Vec<packets::Packet>,
}

impl Chunk {
    fn num(&self, key: &str) -> f64 {
        match self.meta.get(key) {
            Some(Amf::Number(n)) => *n,
            other => panic!("{}: {key} is {other:?}", self.path.display()),
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        match self.meta.get(key) {
            Some(Amf::Str(s)) => Some(s),
            None => None,
            other => panic!("{}: {key} is {other:?}", self.path.display()),
        }
    }

    fn stem(&self) -> String {
        self.name.stem()
    }

    /// The chunk's last frame, in ms after its first (FLV timestamps restart in each chunk).
    fn last_frame_ms(&self) -> i64 {
        self.packets.iter().map(|p| p.dts_ms).max().unwrap_or(0)
    }
}

fn chunks(rec: &Recorder) -> Vec<Chunk> {
    let mut all: Vec<Chunk> = rec
        .chunks()
        .into_iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let name =
                ChunkName::parse(&file).unwrap_or_else(|| panic!("{file}: not a chunk name"));
            let meta = Flv::read(&path)
                .metadata()
                .unwrap_or_else(|| panic!("{file}: no onMetaData"));
            let packets = packets::read(&path);
            Chunk {
                path,
                name,
                meta,
                packets,
            }
        })
        .collect();
    all.sort_by_key(|c| c.name.seq);
    all
}

/// Per stream (video 0, audio 1), the packets' (size, hash) of `chunks` in order.
fn packets_of(chunks: &[Chunk]) -> BTreeMap<u32, Vec<(u64, String)>> {
    let all: Vec<packets::Packet> = chunks.iter().flat_map(|c| c.packets.clone()).collect();
    packets::by_stream(&all)
}

/// How the first publish's frames must show in the chunks before the gap.
enum FirstPart {
    /// Exactly the first frames of the reference, as many as the proxy passed on.
    Exactly(Passed),
    /// A prefix of the reference (ingest was killed: what reached the disk).
    Prefix,
}

/// One recording across the reconnect: sequence 1..n, each chunk naming the one before, one
/// gap (reason reconnect, `away` plus at most the second publisher's start-up), offsets that
/// go on by the time away, and the frames of both publishes.
/// Returns the name of the chunk before the gap and the gap.
fn check_one_recording(
    all: &[Chunk],
    first: FirstPart,
    away: Duration,
    late_ms: u64,
    dir: &Path,
) -> (String, u64) {
    let names: Vec<String> = all.iter().map(Chunk::stem).collect();
    for (i, c) in all.iter().enumerate() {
        assert_eq!(c.name.seq as usize, i + 1, "sequence of {names:?}");
        assert_eq!(
            c.num("rtmpRecorderSequence") as usize,
            i + 1,
            "{}",
            c.stem()
        );
        let previous = if i == 0 {
            String::new()
        } else {
            all[i - 1].stem()
        };
        assert_eq!(
            c.text("rtmpRecorderPrevious"),
            Some(previous.as_str()),
            "previous of {}",
            c.stem()
        );
    }
    let gaps: Vec<usize> = (0..all.len())
        .filter(|&i| all[i].text("rtmpRecorderGapReason").is_some())
        .collect();
    assert_eq!(gaps.len(), 1, "one chunk records the gap: {names:?}");
    let j = gaps[0];
    assert!(j >= 2, "the first publish made two chunks: {names:?}");
    let after = &all[j];
    assert_eq!(after.text("rtmpRecorderGapReason"), Some("reconnect"));
    let gap_ms = after.num("rtmpRecorderGapMs") as u64;
    let away_ms = away.as_millis() as u64;
    assert!(
        (away_ms.saturating_sub(DATED_LATE_MS)..=away_ms + late_ms).contains(&gap_ms),
        "gap {gap_ms} ms; the test saw the publisher away {away_ms} ms (+ up to {late_ms})"
    );
    // Offsets: the chunk before the gap, its last frame, the time away.
    let before = &all[j - 1];
    let expect =
        before.num("rtmpRecorderStreamOffsetMs") as i64 + before.last_frame_ms() + gap_ms as i64;
    let got = after.num("rtmpRecorderStreamOffsetMs") as i64;
    assert!(
        (got - expect).abs() <= 100,
        "offset after the gap {got} ms, expected ~{expect} (offset before, its last frame, the gap)"
    );

    let first_ref = packets::by_stream(&packets::read(&dir.join("first.ref.flv")));
    let second_ref = packets::by_stream(&packets::read(&dir.join("second.ref.flv")));
    let got_first = packets_of(&all[..j]);
    match first {
        FirstPart::Exactly(passed) => {
            for (stream, n) in [(0, passed.video), (1, passed.audio)] {
                let want = &first_ref[&stream][..n];
                assert_eq!(
                    got_first[&stream].len(),
                    n,
                    "stream {stream}: the proxy passed {n} frames of the first publish to ingest"
                );
                assert!(got_first[&stream] == want, "stream {stream}: frames differ");
            }
        }
        FirstPart::Prefix => {
            for (stream, list) in &got_first {
                let want = &first_ref[stream];
                assert!(
                    list.len() > 100 && list.len() <= want.len() && list[..] == want[..list.len()],
                    "stream {stream}: {} frames recorded are not a prefix of the {} published",
                    list.len(),
                    want.len()
                );
            }
        }
    }
    assert_eq!(
        packets_of(&all[j..]),
        second_ref,
        "the second publish, every frame"
    );
    (before.stem(), gap_ms)
}

/// ffmpeg through the cut proxy, cut off 2 s into its second chunk; `between` runs after the
/// cut (the publisher has gone); then the second publish. Checks they are one recording.
/// Returns the recorder and its scratch directory (dropped in that order).
fn cut_off_then_back(between: impl FnOnce(Recorder, &Path) -> Recorder) -> (Recorder, Scratch) {
    let dir = Turn::shared().scratch();
    let (rec, proxy, mut first) = first_publish(dir.path(), true, Duration::from_secs(2));
    let cut_at = Instant::now();
    let passed = proxy.expect("a cut proxy").cut(Duration::from_millis(500));
    first.wait(Duration::from_secs(20));
    let rec = between(rec, dir.path());
    let (_second, away) = second_publish(&rec, dir.path(), cut_at);
    let (before_gap, gap_ms) = check_one_recording(
        &chunks(&rec),
        FirstPart::Exactly(passed),
        away,
        3_000,
        dir.path(),
    );
    check_continued_event(&rec, &before_gap, gap_ms, away);
    check_manifests(&rec);
    (rec, dir)
}

/// A real remux run over the chunks: the manifests carry the one chain and the gap.
fn check_manifests(rec: &Recorder) {
    let flv: Vec<Chunk> = chunks(rec);
    support::run_ok(
        Command::new(support::BIN)
            .arg("--state-dir")
            .arg(&rec.state)
            .args(["remux", "--until-empty"]),
        "remux --until-empty",
    );
    for (i, c) in flv.iter().enumerate() {
        let path = rec.state.join("publish").join(format!("{}.json", c.stem()));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let m: ChunkManifest = serde_json::from_str(&text).expect("a manifest");
        assert_eq!(m.sequence as usize, i + 1);
        assert_eq!(m.previous, (i > 0).then(|| flv[i - 1].stem()));
        let gap = c.text("rtmpRecorderGapReason").map(|reason| Gap {
            reason: reason.to_string(),
            duration_ms: c.num("rtmpRecorderGapMs") as u64,
        });
        assert_eq!(m.gap, gap, "{}", c.stem());
        assert_eq!(
            m.stream_offset_ms,
            c.num("rtmpRecorderStreamOffsetMs") as u64
        );
    }
}

#[test]
fn a_publisher_cut_off_and_back_within_the_grace_continues_the_recording() {
    let (rec, _dir) = cut_off_then_back(|rec, _| rec);
    assert!(
        rec.log_text().contains("within --reconnect-grace"),
        "{}",
        rec.log_text()
    );
}

#[test]
fn a_reconnect_continues_the_recording_across_an_ingest_restart() {
    cut_off_then_back(|mut rec, dir| {
        assert!(rec.terminate(Duration::from_secs(30)).success());
        start(dir, rec.port)
    });
}

#[test]
fn a_reconnect_continues_the_recording_after_ingest_was_killed_under_the_publisher() {
    let dir = Turn::shared().scratch();
    // Long enough into the second chunk that some of it reached the disk (ingest writes in
    // blocks of 64 KiB; this stream makes ~110 KB/s).
    let (mut rec, _, mut first) = first_publish(dir.path(), false, Duration::from_secs(5));
    let killed_at = Instant::now();
    rec.kill9();
    first.wait(Duration::from_secs(20));
    let port = rec.port;
    rec = start(dir.path(), port);
    let (_second, away) = second_publish(&rec, dir.path(), killed_at);
    // The end of a killed publish is the last write to its chunk, which ingest buffers: up to
    // a moment before the kill, so the gap may be a little longer than the test saw.
    let (before_gap, gap_ms) =
        check_one_recording(&chunks(&rec), FirstPart::Prefix, away, 5_000, dir.path());
    check_continued_event(&rec, &before_gap, gap_ms, away);
    // The killed ingest could not say the first publish stopped; the next start did, with the
    // first publish's identity, its two chunks and the salvaged one as the last.
    let started = queued_events(&rec, "stream.started");
    let stopped = queued_events(&rec, "stream.stopped");
    let first_stop = stopped
        .iter()
        .find(|e| e["last_chunk"] == before_gap.as_str())
        .unwrap_or_else(|| panic!("no stream.stopped for the killed publish: {stopped:?}"));
    assert_eq!(first_stop["chunks"], 2);
    assert_eq!(
        first_stop["id"]
            .as_str()
            .unwrap()
            .strip_prefix("stream.stopped:"),
        started[0]["id"]
            .as_str()
            .unwrap()
            .strip_prefix("stream.started:"),
        "the same publish"
    );
    assert!(
        rec.log_text()
            .contains("were publishing when ingest stopped"),
        "{}",
        rec.log_text()
    );
}

#[test]
fn past_the_grace_a_publish_starts_a_new_recording() {
    let dir = Turn::shared().scratch();
    let rec = Recorder::start(dir.path(), &["--reconnect-grace", "2s"]);
    let url = rec.url("live", "cam");
    ffmpeg_publish(&url, 4, &opts(dir.path(), "first")).wait_ok(Duration::from_secs(60));
    wait_until(
        Duration::from_secs(20),
        "the first publish handed on",
        || rec.chunks().len() == 1 && rec.open_chunks().is_empty(),
    );
    std::thread::sleep(Duration::from_millis(2_500));
    let (_second, _) = second_publish(&rec, dir.path(), Instant::now());
    let all = chunks(&rec);
    assert_eq!(all.len(), 2, "one chunk per publish");
    for c in &all {
        assert_eq!(c.name.seq, 1, "{}: a new recording starts at 1", c.stem());
        assert_eq!(c.text("rtmpRecorderPrevious"), Some(""));
        assert_eq!(c.text("rtmpRecorderGapReason"), None);
    }
    assert!(
        rec.log_text().contains("past --reconnect-grace (2s)"),
        "{}",
        rec.log_text()
    );
}
