//! `--align-chunks` with real publishers: two ffmpeg streams (H.264 with a keyframe every second,
//! AAC, `-re`) start 37 s apart on one ingest with 10 s chunks. Every chunk boundary of both
//! streams lies within one GOP after the same clock times (multiples of 10 s since the epoch),
//! read two ways: from the chunk names' UTC start (what the manifests carry), and, independently
//! of the recorder's own clock, from when the test sees each finished chunk arrive in `remux/`
//! (ingest hands a chunk on as soon as the next one starts). Each stream's first chunk is the
//! shorter one. About 56 s of wall time: the 37 s are the issue's, the rest the shortest that
//! still gives the later stream a boundary of its own.

use crate::support::Turn;
use crate::support::clock::{GOP_MS, publish_to_all};
use crate::support::ingest::{Publisher, Recorder, files_with_ext};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rtmp_recorder::naming::ChunkName;

const CHUNK_MS: i64 = 10_000;
/// How late the test may see a handed-on chunk after the keyframe that ended it: ingest hands
/// frames to the recorder in batches of up to 100 ms, then fsyncs and renames; the test polls
/// every 20 ms; the rest is for a loaded 2-core machine that also encodes both streams.
const SEEN_LATE_MS: i64 = 1_000;
/// How early: the recorder reckons a frame's UTC time from its stream's first frame plus media
/// time, so a publisher whose first frame came late could make a cut land a little before
/// the multiple on the test's clock.
const SEEN_EARLY_MS: i64 = 500;

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

struct Chunk {
    utc_start_ms: i64,
    /// When the test saw the finished chunk in `remux/` (its successor had started).
    seen_ms: i64,
}

#[test]
fn two_streams_started_37_s_apart_cut_at_the_same_clock_times() {
    let dir = Turn::alone().scratch();
    let rec = Recorder::start(dir.path(), &["--align-chunks"]);
    let started = Instant::now();
    let mut a = publish_to_all(&[rec.url("live", "a")], 52, dir.path(), "a");
    let mut b: Option<Publisher> = None;

    let mut seen: BTreeMap<PathBuf, i64> = BTreeMap::new();
    let deadline = started + Duration::from_secs(90);
    loop {
        if b.is_none() && started.elapsed() >= Duration::from_secs(37) {
            // Past the end of a, so every multiple a cuts at falls while b is live.
            b = Some(publish_to_all(&[rec.url("live", "b")], 18, dir.path(), "b"));
        }
        let now = unix_ms(SystemTime::now());
        for flv in rec.chunks() {
            seen.entry(flv).or_insert(now);
        }
        let a_done = !a.running();
        let b_done = b.as_mut().is_some_and(|b| !b.running());
        if a_done && b_done && rec.open_chunks().is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "publishers or chunks did not finish\n{}",
            rec.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    for publisher in [&mut a, b.as_mut().unwrap()] {
        publisher.wait_ok(Duration::from_secs(5));
    }
    assert_eq!(files_with_ext(&rec.remux(), "flv").len(), seen.len());

    let mut streams: BTreeMap<String, Vec<Chunk>> = BTreeMap::new();
    for (flv, seen_ms) in &seen {
        let name = ChunkName::parse(&flv.file_name().unwrap().to_string_lossy()).unwrap();
        streams.entry(name.stream.clone()).or_default().push(Chunk {
            utc_start_ms: name.start.to_unix_millis(),
            seen_ms: *seen_ms,
        });
    }
    let mut boundaries: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for (stream, chunks) in &mut streams {
        chunks.sort_by_key(|c| c.utc_start_ms);
        let starts: Vec<i64> = chunks.iter().map(|c| c.utc_start_ms % 60_000).collect();
        eprintln!("stream {stream}: chunk starts (ms past the minute) {starts:?}");
        assert!(chunks.len() >= 2, "{stream}: no boundary in {starts:?}");
        // The first chunk ends at the first multiple after the stream began: shorter than one
        // (without alignment it would end a whole chunk duration after its start).
        let began = chunks[0].utc_start_ms;
        let first_multiple = began - began.rem_euclid(CHUNK_MS) + CHUNK_MS;
        let second = chunks[1].utc_start_ms;
        assert!(
            (first_multiple..first_multiple + GOP_MS).contains(&second),
            "{stream}: the first chunk began at {began} and ended at {second}, not at the first \
             multiple of 10 s after it ({first_multiple})"
        );
        for (i, pair) in chunks.windows(2).enumerate() {
            let start = pair[1].utc_start_ms;
            let multiple = start - start.rem_euclid(CHUNK_MS);
            // By the name: the first keyframe at or after the multiple.
            assert!(
                start - multiple < GOP_MS,
                "{stream}: chunk {} starts {} ms after a multiple of 10 s",
                i + 2,
                start - multiple
            );
            // By the test's own clock: the chunk before it was handed on right then.
            let late = pair[0].seen_ms - multiple;
            eprintln!(
                "stream {stream}: boundary at +{} ms, seen at {late:+} ms",
                start - multiple
            );
            assert!(
                (-SEEN_EARLY_MS..GOP_MS + SEEN_LATE_MS).contains(&late),
                "{stream}: the chunk ending at the {multiple} boundary was handed on {late} ms \
                 after it\n{}",
                rec.log_text()
            );
            boundaries.entry(stream.clone()).or_default().push(multiple);
        }
    }
    // Where both streams were live, they cut at the same clock times.
    let (a_cuts, b_cuts) = (&boundaries["a"], &boundaries["b"]);
    assert!(a_cuts.len() >= 4, "{a_cuts:?}");
    let b_start = streams["b"][0].utc_start_ms;
    let a_end = streams["a"].last().unwrap().utc_start_ms;
    let shared: Vec<i64> = a_cuts
        .iter()
        .copied()
        .filter(|m| (b_start..=a_end).contains(m))
        .collect();
    let b_shared: Vec<i64> = b_cuts.iter().copied().filter(|m| *m <= a_end).collect();
    assert!(
        !b_shared.is_empty(),
        "b has no boundary while a was live: {b_cuts:?}"
    );
    assert_eq!(b_shared, shared, "a cut at {a_cuts:?}, b at {b_cuts:?}");
    assert!(
        (37_000 - GOP_MS..37_000 + 2 * GOP_MS).contains(&(b_start - streams["a"][0].utc_start_ms)),
        "b started {} ms after a",
        b_start - streams["a"][0].utc_start_ms
    );
}
