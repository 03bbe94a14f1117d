//! A/V sync as players see it: the first video and audio presentation times of a remuxed chunk,
//! read by ffmpeg's demuxer (what mpv and VLC build on) and by GStreamer's `qtdemux`, equal the
//! FLV's to the millisecond; so does the first video frame headless Chromium presents (its
//! `requestVideoFrameCallback` media time). Chromium exposes no per-track audio time to a
//! page; its demuxer for `<video src>` is FFmpeg's, checked directly here. Cases: audio first (a publisher whose audio runs ahead of
//! its first keyframe, or a file copied in by hand) and video first (as ingest cuts chunks),
//! each with and without B-frames. The edit list decides this, and two spellings of one instant
//! are read differently by ffmpeg; see `mp4::boxes::Edit`.

use crate::support::{Turn, packets, remux};

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use remux::*;

struct Case {
    name: &'static str,
    /// `-itsoffset` of the video input (seconds).
    video_offset: &'static str,
    /// `-itsoffset` of the audio input (seconds).
    audio_offset: &'static str,
    bframes: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "audio first, B-frames",
        video_offset: "0.7",
        audio_offset: "0",
        bframes: "2",
    },
    Case {
        name: "audio first, no B-frames",
        video_offset: "0.7",
        audio_offset: "0",
        bframes: "0",
    },
    Case {
        name: "video first, B-frames",
        video_offset: "0",
        audio_offset: "0.4",
        bframes: "2",
    },
    Case {
        name: "video first, no B-frames",
        video_offset: "0",
        audio_offset: "0.4",
        bframes: "0",
    },
];

/// First presentation time (ms) per codec type ("video", "audio").
type Starts = BTreeMap<&'static str, i64>;

/// An FLV of 3 s of 30 fps H.264 and AAC with the case's input offsets.
fn fixture(dir: &Path, case: &Case) -> std::path::PathBuf {
    let flv = dir.join("in.flv");
    let inputs = [
        "-itsoffset",
        case.video_offset,
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=30",
        "-itsoffset",
        case.audio_offset,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
    ];
    encode(
        &flv,
        &inputs,
        &[
            "-t",
            "3",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-bf",
            case.bframes,
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ar",
            "48000",
            "-f",
            "flv",
        ],
    );
    flv
}

/// ffmpeg's demuxer: the earliest pts of each stream (`-map 0:v? -map 0:a?`, so 0 is video).
fn ffmpeg_starts(file: &Path) -> Starts {
    let mut out = Starts::new();
    for p in packets::read(file) {
        let kind = if p.stream == 0 { "video" } else { "audio" };
        let e = out.entry(kind).or_insert(p.pts_ms);
        *e = (*e).min(p.pts_ms);
    }
    out
}

/// The FLV's own presentation times, relative to its first decode time (the MP4's time zero).
fn flv_starts(flv: &Path) -> Starts {
    let packets = packets::read(flv);
    let origin = packets.iter().map(|p| p.dts_ms).min().expect("FLV packets");
    ffmpeg_starts(flv)
        .into_iter()
        .map(|(k, v)| (k, v - origin))
        .collect()
}

/// GStreamer's `qtdemux`: each pad's earliest buffer in stream time, read by a pad probe
/// against the segment in force on the pad (`support/remux/qtdemux_starts.py`, run by Debian's
/// Python with its GStreamer bindings).
fn gstreamer_starts(file: &Path) -> Starts {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/remux/qtdemux_starts.py"
    );
    let out = run("/usr/bin/python3", &[script, file.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut starts = Starts::new();
    for line in text.lines() {
        let (kind, ns) = line.split_once(' ').expect("`kind ns` lines");
        let kind = match kind {
            "video" => "video",
            "audio" => "audio",
            other => panic!("qtdemux_starts.py printed {other:?}"),
        };
        let ns: i64 = ns.parse().unwrap();
        starts.insert(kind, (ns + 500_000) / 1_000_000);
    }
    assert_eq!(
        starts.len(),
        2,
        "qtdemux gave no buffers for some pad:\n{text}"
    );
    starts
}

/// The page reports the media time of the first video frame Chromium presents.
const FIRST_FRAME_PAGE: &str = r#"<!doctype html>
<html><body>
<video id="v" src="/chunk.mp4" muted preload="auto" playsinline></video>
<script>
const v = document.getElementById('v');
function report(r) { fetch('/result', {method: 'POST', body: JSON.stringify(r)}); }
v.requestVideoFrameCallback((now, frame) => report({first: frame.mediaTime}));
v.addEventListener('error', () => report({error: v.error.code}));
setTimeout(() => report({timeout: true}), 20000);
</script>
</body></html>"#;

/// Chromium: the media time (ms) of the first video frame it presents.
fn chromium_first_video_frame(file: &Path) -> i64 {
    let r = browser::chromium_report(FIRST_FRAME_PAGE, file, Duration::from_secs(60)).json;
    let first = r["first"]
        .as_f64()
        .unwrap_or_else(|| panic!("chromium presented no frame: {r}"));
    (first * 1000.0).round() as i64
}

#[test]
fn first_presentation_times_equal_the_flvs_in_ffmpeg_gstreamer_and_chromium() {
    let _turn = Turn::shared();
    let mut failures = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let flv = fixture(dir.path(), case);
        let (mp4, _) = remux_one(dir.path(), &flv);
        let want = flv_starts(&flv);
        assert_eq!(want.len(), 2, "{}: FLV lacks a stream", case.name);
        let (v, a) = (want["video"], want["audio"]);
        // The fixture is what the case says it is.
        if case.video_offset != "0" {
            assert!(a + 500 < v, "{}: audio should lead: {want:?}", case.name);
        } else {
            assert!(v + 300 < a, "{}: video should lead: {want:?}", case.name);
        }
        let pts_after_dts = packets::read(&flv)
            .iter()
            .any(|p| p.stream == 0 && p.pts_ms != p.dts_ms);
        assert_eq!(pts_after_dts, case.bframes != "0", "{}", case.name);

        let chromium = Starts::from([("video", chromium_first_video_frame(&mp4))]);
        for (reader, got) in [
            ("ffmpeg", ffmpeg_starts(&mp4)),
            ("qtdemux", gstreamer_starts(&mp4)),
            ("chromium", chromium),
        ] {
            for (kind, &g) in &got {
                let w = want[kind];
                eprintln!(
                    "{}: {reader} {kind} starts at {g} ms, FLV {w} ms",
                    case.name
                );
                if (w - g).abs() > 1 {
                    failures.push(format!(
                        "{}: {reader} presents {kind} first at {g} ms, the FLV at {w} ms",
                        case.name
                    ));
                }
            }
        }
        assert_like_ffmpeg_remux(Path::new(ffmpeg()), &flv, &mp4);
        // The edit list ends after the last frame presented: every frame is shown.
        let shown = |f: &Path| probe(f, "v", "frame=pts_time").lines().count();
        assert_eq!(shown(&mp4), shown(&flv), "{}: frames shown", case.name);
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
