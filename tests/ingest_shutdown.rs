//! Stopping ingest mid-stream loses nothing it had: SIGTERM finishes the open chunk into
//! `remux/` before exiting; after kill -9 the next start salvages the partial chunk (cut at its
//! last complete tag) into `remux/`, and it decodes cleanly. Streams are 640x360: what is tested
//! is the chunk files, not the encoder.

use crate::support::flv::Flv;
use crate::support::{Turn, ingest, packets, wait_until};

use std::path::Path;
use std::time::Duration;

use ingest::*;

/// Ingest started in `dir`, and ffmpeg publishing 60 s of 640x360 to it as `live/NAME`.
fn record(dir: &Path, name: &str) -> (Recorder, Publisher) {
    let rec = Recorder::start(dir, &[]);
    let opts = PublishOpts {
        width: 640,
        height: 360,
        ..PublishOpts::new(dir, name)
    };
    let publisher = ffmpeg_publish(&rec.url("live", name), 60, &opts);
    (rec, publisher)
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Whether the chunk being recorded has grown past `len` bytes.
fn open_chunk_over(rec: &Recorder, len: u64) -> bool {
    rec.open_chunks().first().is_some_and(|p| file_len(p) > len)
}

#[test]
fn sigterm_finishes_the_open_chunk() {
    let dir = Turn::shared().scratch();
    let (mut rec, mut publisher) = record(dir.path(), "term");

    // Into the second chunk by a few seconds.
    wait_until(Duration::from_secs(30), "chunk 1 finished", || {
        rec.chunks().len() == 1
    });
    wait_until(Duration::from_secs(10), "chunk 2 growing", || {
        open_chunk_over(&rec, 150_000)
    });
    let status = rec.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "rtmp-recorder exited with {status} after SIGTERM"
    );
    // Without its server the publisher fails; its reference holds all it sent.
    publisher.wait(Duration::from_secs(20));

    let chunks = files_with_ext(&dir.path().join("state/remux"), "flv");
    let open = files_with_ext(&dir.path().join("state/recording"), "flv");
    assert!(open.is_empty(), "chunks left in recording/: {open:?}");
    assert_eq!(chunks.len(), 2, "remux/ holds {chunks:?}");
    for (i, c) in chunks.iter().enumerate() {
        let flv = Flv::read(c);
        check_chunk_layout(&flv, i == 0);
        let stem = c.file_stem().unwrap().to_string_lossy();
        check_chunk_name(&stem, "live", "term", i + 1);
        assert_eq!(decode_errors(c), "", "{} decodes cleanly", c.display());
    }
    let last = Flv::read(&chunks[1]);
    assert!(
        last.video().count() >= 30,
        "the finished chunk holds only {} video frames",
        last.video().count()
    );
    assert_prefix_of_reference(&chunks, &publisher.reference);
}

#[test]
fn kill9_partial_chunk_is_salvaged_on_restart() {
    let dir = Turn::shared().scratch();
    let (mut rec, mut publisher) = record(dir.path(), "crash");

    wait_until(
        Duration::from_secs(20),
        "a partial chunk of some size",
        || open_chunk_over(&rec, 300_000),
    );
    rec.kill9();
    publisher.wait(Duration::from_secs(20));
    let partial = rec.open_chunks();
    assert_eq!(partial.len(), 1, "recording/ after kill -9: {partial:?}");
    assert!(
        rec.chunks().is_empty(),
        "remux/ before restart: {:?}",
        rec.chunks()
    );

    // Whatever the kill left, make the last tag torn, as a crash in the middle of a write
    // would: salvage must cut there and keep every complete tag before it.
    let len = file_len(&partial[0]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&partial[0])
        .and_then(|f| f.set_len(len - 100))
        .unwrap();
    let before = Flv::read(&partial[0]);
    assert!(
        before.trailing > 0,
        "the partial chunk does not end in a torn tag"
    );

    let rec = Recorder::start(dir.path(), &[]);
    let salvaged = rec.wait_chunks(1, Duration::from_secs(15));
    let flv = Flv::read(&salvaged[0]);
    let kept: Vec<&Vec<u8>> = flv.media().map(|t| &t.data).collect();
    let complete: Vec<&Vec<u8>> = before.media().map(|t| &t.data).collect();
    assert_eq!(
        kept.len(),
        complete.len(),
        "salvage kept {} media tags; the partial chunk had {} complete ones",
        kept.len(),
        complete.len()
    );
    assert!(
        kept == complete,
        "salvaged media tags differ from the partial chunk's"
    );
    check_chunk_layout(&flv, true);
    let stem = salvaged[0].file_stem().unwrap().to_string_lossy();
    check_chunk_name(&stem, "live", "crash", 1);
    assert!(
        flv.video().count() >= 30,
        "salvaged chunk holds only {} video frames",
        flv.video().count()
    );
    assert_eq!(
        decode_errors(&salvaged[0]),
        "",
        "salvaged chunk decodes cleanly"
    );
    assert_prefix_of_reference(&salvaged, &publisher.reference);
}

/// A publisher that vanishes (kill -9, no deleteStream) has its chunk finished and handed on
/// at once, not left in `recording/` until a restart.
#[test]
fn vanished_publisher_has_its_chunk_finished() {
    let dir = Turn::shared().scratch();
    let (rec, mut publisher) = record(dir.path(), "gone");
    // Both of some size: ingest writes a large frame through at once, while ffmpeg's file
    // output holds back more, and the comparison below needs packets in both.
    wait_until(
        Duration::from_secs(20),
        "a chunk and a reference of some size",
        || open_chunk_over(&rec, 150_000) && file_len(&publisher.reference) > 150_000,
    );
    signal(publisher.pid(), libc::SIGKILL);
    publisher.wait(Duration::from_secs(5));

    // Well inside the 30 s idle timeout: the closed connection itself ends the chunk.
    let chunks = rec.wait_chunks(1, Duration::from_secs(5));
    let flv = Flv::read(&chunks[0]);
    check_chunk_layout(&flv, true);
    assert!(
        flv.video().count() >= 30,
        "{} video frames",
        flv.video().count()
    );
    assert_eq!(decode_errors(&chunks[0]), "", "the chunk decodes cleanly");
    // The killed publisher's reference may lack its last buffered packets, and its last tag
    // may be torn (ffmpeg then reads a short packet); what both hold before that must agree.
    let got = packets::by_stream(&packets::read(&chunks[0]));
    let want = packets::by_stream(&packets::read(&publisher.reference));
    for (stream, list) in &got {
        let n = list.len().min(want[stream].len().saturating_sub(1));
        assert!(
            n >= list.len() / 2,
            "stream {stream}: reference too short to compare"
        );
        assert!(
            list[..n] == want[stream][..n],
            "stream {stream}: packets differ"
        );
    }
}
