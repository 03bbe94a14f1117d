//! Proves the test harness itself against nginx-rtmp, a server we did not write: both publishers
//! deliver exactly their reference packets, the FLV walker reads a real server's recording, the
//! packet comparison catches a changed byte, and a second publisher on a live key is seen as
//! rejected. If these fail, the ingest tests' verdicts mean nothing.

use crate::support::flv::{Flv, Tag};
use crate::support::{Turn, ingest, packets, wait_until, words};

use std::time::Duration;

use ingest::*;

#[test]
fn harness_matches_nginx_rtmp() {
    let dir = Turn::alone().scratch();
    let mut nginx = Nginx::start(dir.path(), None);

    let secs = 12;
    let mut ff = ffmpeg_publish(
        &nginx.url("live", "ff"),
        secs,
        &PublishOpts::new(dir.path(), "ff"),
    );
    let mut gst = gst_publish(
        &nginx.url("live", "gst"),
        secs,
        &PublishOpts::new(dir.path(), "gst"),
    );

    // Wait until nginx has the ffmpeg stream live, then try to take the key over. nginx names
    // recordings by the second they start, and the rejected publisher's file would truncate a
    // same-second one: wait for the next second.
    let mut started_at = None;
    wait_until(Duration::from_secs(10), "nginx recording ff", || {
        started_at = std::fs::read_dir(&nginx.record_dir).ok().and_then(|rd| {
            rd.flatten().find_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.strip_prefix("ff-")?
                    .strip_suffix(".flv")?
                    .parse::<u64>()
                    .ok()
            })
        });
        started_at.is_some()
    });
    wait_until(Duration::from_secs(3), "the next second", || {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        Some(now) > started_at
    });
    let mut second = ffmpeg_publish(
        &nginx.url("live", "ff"),
        3,
        &PublishOpts::new(dir.path(), "ff-second"),
    );
    let status = second.wait(Duration::from_secs(20));
    assert!(
        !status.success(),
        "second publisher on a live key was not rejected by nginx: {}",
        second.log_text()
    );

    let started = std::time::Instant::now();
    ff.wait_ok(Duration::from_secs(secs as u64 + 20));
    eprintln!("ffmpeg publisher done after {:?} more", started.elapsed());
    gst.wait_ok(Duration::from_secs(secs as u64 + 20));
    // nginx also opens a file for the rejected publisher; the real recording is the largest.
    let recordings = nginx.stop();
    for (prefix, reference) in [("ff", &ff.reference), ("gst", &gst.reference)] {
        let rec = recordings
            .iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
            .max_by_key(|p| std::fs::metadata(p).unwrap().len())
            .unwrap_or_else(|| panic!("no nginx recording for {prefix}: {recordings:?}"));
        let rec_flv = Flv::read(rec);
        let ref_flv = Flv::read(reference);
        assert_eq!(rec_flv.trailing, 0, "{prefix}: nginx file has a torn tail");
        assert!(
            rec_flv.tags.iter().any(Tag::is_video_seq_header),
            "{prefix}: AVC header"
        );
        assert!(
            rec_flv.tags.iter().any(Tag::is_aac_seq_header),
            "{prefix}: AAC header"
        );
        assert!(
            rec_flv.video().next().unwrap().is_keyframe(),
            "{prefix}: first video"
        );

        // 12 s with a keyframe every 2 s splits once at 10 s.
        let timeline = video_timeline(&ref_flv);
        // ffmpeg's -t may let one more frame through.
        assert!(
            timeline.len().abs_diff(secs as usize * 30) <= 2,
            "{prefix}: video frames"
        );
        // ffmpeg's timestamps are exact: 12 s split once, at 10 s, however the rule is read.
        // GStreamer's live sources jitter by a few ms, so a keyframe due at 10 s may land just
        // before it and the split moves to the next one.
        for r in candidate_chunk_starts(&ref_flv, CHUNK) {
            if prefix == "ff" {
                assert_eq!(r.starts, vec![0, 300], "{prefix}: {r:?}");
            }
            assert!(r.starts.iter().all(|&i| timeline[i].key), "{prefix}: {r:?}");
        }
        assert!(
            timeline.iter().step_by(60).all(|f| f.key),
            "{prefix}: 2 s GOP"
        );
        assert_eq!(
            timeline.iter().filter(|f| f.key).count(),
            timeline.len().div_ceil(60),
            "{prefix}: keyframes"
        );

        let (v, a) = count_packets(reference);
        assert_eq!(
            v,
            timeline.len() as u64,
            "{prefix}: reference video packets"
        );
        // 48 kHz AAC: 1024 samples a frame, 46.9 frames a second.
        assert!(
            a.abs_diff(secs as u64 * 48_000 / 1024) <= 3,
            "{prefix}: {a} audio"
        );
        assert_eq!(
            count_packets(rec),
            (v, a),
            "{prefix}: nginx vs reference packets"
        );
        assert_eq!(
            packets::by_stream(&packets::read(rec)),
            packets::by_stream(&packets::read(reference)),
            "{prefix}: nginx recording's packets differ from the reference"
        );
        assert_eq!(decode_errors(rec), "", "{prefix}: nginx recording decodes");
    }

    // The chunk checks accept ffmpeg's own segmenter (cuts at the first keyframe after 10 s,
    // each segment with its headers and timestamps from 0) and notice a missing chunk.
    let seg_dir = dir.path().join("segments");
    std::fs::create_dir(&seg_dir).unwrap();
    let status = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(&ff.reference)
        .args(words("-map 0 -c copy -f segment -segment_time 10"))
        .args(["-reset_timestamps", "1", "-segment_format", "flv"])
        .arg(seg_dir.join("c%03d.flv"))
        .status()
        .unwrap();
    assert!(status.success(), "ffmpeg segment");
    let segments = files_with_ext(&seg_dir, "flv");
    assert_eq!(segments.len(), 2, "{segments:?}");
    let splits = check_chunks_media(&segments, &ff.reference);
    assert_eq!(splits.starts, vec![0, 300]);
    let only_first = segments[..1].to_vec();
    let missing = std::panic::catch_unwind(|| check_chunks_media(&only_first, &ff.reference));
    assert!(missing.is_err(), "a missing chunk went unnoticed");

    // The comparison notices one changed byte in one video frame, and the walker a torn tail.
    let reference = &ff.reference;
    let mut bytes = std::fs::read(reference).unwrap();
    let ref_flv = Flv::read(reference);
    let frame = ref_flv.video().nth(100).unwrap();
    let at = frame.offset as usize + 11 + frame.data.len() - 1;
    bytes[at] ^= 0x55;
    let tampered = dir.path().join("tampered.flv");
    std::fs::write(&tampered, &bytes).unwrap();
    assert_ne!(
        packets::by_stream(&packets::read(&tampered)),
        packets::by_stream(&packets::read(reference))
    );
    let torn = dir.path().join("torn.flv");
    std::fs::write(&torn, &bytes[..at]).unwrap();
    assert!(Flv::read(&torn).trailing > 0, "torn tail not seen");
}
