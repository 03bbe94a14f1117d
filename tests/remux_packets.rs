//! Packet identity: FLV chunks made by real encoders go through `rtmp-recorder remux`; the MP4
//! must carry exactly the FLV's packets (same bytes, same order per stream, same timestamps),
//! agree with `ffmpeg -c copy`, decode without a single error and have its moov first.

use crate::support::flv::Flv;
use crate::support::{Turn, flv, packets, remux, words};

use std::path::{Path, PathBuf};

use remux::*;

/// `dir/in.flv` from ffmpeg 9 with AAC and the `video` encoder arguments; asserts its video
/// carries the Enhanced RTMP FourCC header (an ExVideoTagHeader with `fourcc`). Returns the
/// ffmpeg 9 binary and the FLV.
fn enhanced_flv(dir: &Path, fourcc: &str, video: &[&str]) -> (PathBuf, PathBuf) {
    let flv = dir.join("in.flv");
    let f9 = ffmpeg9();
    let mut args = video.to_vec();
    args.extend_from_slice(&["-c:a", "aac", "-f", "flv"]);
    encode_with(&f9, &flv, &testsrc_av("640x360"), &args);
    let data = std::fs::read(&flv).unwrap();
    assert!(
        data.windows(4).any(|w| w == fourcc.as_bytes()),
        "no Enhanced RTMP {fourcc} header"
    );
    (f9, flv)
}

/// An encoder fixture: what ffmpeg encodes (`inputs`, then `args`), and what the MP4's manifest
/// and streams must say beyond carrying exactly the FLV's packets.
struct Fixture {
    name: &'static str,
    inputs: Vec<String>,
    args: &'static str,
    check: fn(&Path, &Path, &serde_json::Value),
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| a.to_string()).collect()
}

fn fixtures() -> Vec<Fixture> {
    vec![
        Fixture {
            name: "H.264 High with B-frames + AAC, 720p",
            inputs: [VIDEO_720P, SINE_48K]
                .concat()
                .iter()
                .map(|a| a.to_string())
                .collect(),
            args: "-t 5 -c:v libx264 -preset veryfast -profile:v high -bf 3 -g 60 -pix_fmt yuv420p -c:a aac -b:a 128k -ar 48000 -ac 2",
            check: |flv, mp4, m| {
                // B-frames: the first frame's pts is after its dts, and ffprobe agrees with the FLV.
                let p = packets::read(mp4);
                assert!(p.iter().any(|x| x.stream == 0 && x.pts_ms != x.dts_ms));
                let level: u32 = probe(flv, "v", "stream=level").trim().parse().unwrap();
                assert_eq!(m["video"]["codec"], format!("avc1.6400{level:02x}"));
                assert_eq!(m["video"]["width"], 1280);
                assert_eq!(m["video"]["height"], 720);
                assert_eq!(m["video"]["frames"], 150);
                assert_eq!(m["audio"]["codec"], "mp4a.40.2");
                assert_eq!(m["audio"]["sample_rate"], 48000);
                assert_eq!(m["audio"]["channels"], 2);
                let d = m["duration_ms"].as_u64().unwrap();
                assert!((4900..=5200).contains(&d), "duration {d}");
            },
        },
        Fixture {
            name: "audio only, AAC",
            inputs: strings(SINE_48K),
            args: "-t 4 -c:a aac -b:a 96k -ac 2",
            check: |_, _, m| {
                assert!(m["video"].is_null());
                assert_eq!(m["audio"]["codec"], "mp4a.40.2");
            },
        },
        Fixture {
            name: "video only, H.264",
            inputs: strings(&["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=25"]),
            args: "-t 4 -c:v libx264 -preset veryfast -g 50",
            check: |_, _, m| {
                assert!(m["audio"].is_null());
                assert_eq!(m["video"]["frames"], 100);
            },
        },
        Fixture {
            name: "AAC mono 44.1 kHz",
            inputs: lavfi_av(
                "testsrc2=size=320x240:rate=30",
                "sine=frequency=1000:sample_rate=44100",
            )
            .to_vec(),
            args: "-t 4 -c:v libx264 -preset veryfast -c:a aac -ar 44100 -ac 1",
            check: |_, _, m| {
                assert_eq!(m["audio"]["sample_rate"], 44100);
                assert_eq!(m["audio"]["channels"], 1);
            },
        },
        Fixture {
            name: "MP3 audio",
            inputs: lavfi_av(
                "testsrc2=size=320x240:rate=30",
                "sine=frequency=600:sample_rate=44100",
            )
            .to_vec(),
            args: "-t 4 -c:v libx264 -preset veryfast -c:a libmp3lame -b:a 128k -ar 44100",
            check: |_, mp4, m| {
                assert_eq!(m["audio"]["codec"], "mp4a.6b");
                assert_eq!(m["audio"]["sample_rate"], 44100);
                assert_eq!(probe(mp4, "a", "stream=codec_name").trim(), "mp3");
            },
        },
    ]
}

/// Every encoder fixture: our MP4 carries exactly the FLV's packets, agrees with ffmpeg's own
/// remux, and its manifest describes the streams.
#[test]
fn encoder_fixtures_remux_packet_for_packet() {
    let _turn = Turn::shared();
    for case in fixtures() {
        eprintln!("fixture: {}", case.name);
        let dir = tempfile::tempdir().unwrap();
        let flv = dir.path().join("in.flv");
        encode(&flv, &case.inputs, &words(case.args));
        let (mp4, _) = remux_one(dir.path(), &flv);
        assert_packet_identical(Path::new(ffmpeg()), &flv, &mp4);
        (case.check)(&flv, &mp4, &manifest(&mp4));
    }
}

#[test]
fn resolution_and_audio_config_change_mid_stream() {
    let dir = Turn::shared().scratch();
    let a = dir.path().join("a.flv");
    let b = dir.path().join("b.flv");
    // The second part also changes the audio configuration (48 kHz stereo -> 44.1 kHz mono).
    let enc = |out: &Path, size: &str, rate: &str, channels: &str| {
        let video = format!("testsrc2=size={size}:rate=30");
        let audio = format!("sine=sample_rate={rate}");
        encode(
            out,
            &lavfi_av(&video, &audio),
            &[
                "-t", "2", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "30",
                "-c:a", "aac", "-ar", rate, "-ac", channels,
            ],
        )
    };
    enc(&a, "640x360", "48000", "2");
    enc(&b, "320x240", "44100", "1");
    // One FLV: all of a, then b's tags (its second AVC/AAC sequence headers included, its
    // onMetaData dropped) shifted to follow a.
    let (header, mut tags) = flv::split(&a);
    let end = tags.iter().map(|t| t.ts).max().unwrap() + 40;
    let (_, b_tags) = flv::split(&b);
    tags.extend(b_tags.into_iter().filter(|t| t.kind != 18).map(|mut t| {
        t.ts += end;
        t
    }));
    let flv = dir.path().join("in.flv");
    std::fs::write(&flv, flv::join(&header, &tags)).unwrap();

    let (mp4, log) = remux_one(dir.path(), &flv);
    assert!(log.contains("sample descriptions"), "{log}");
    assert_packet_identical(Path::new(ffmpeg()), &flv, &mp4);
    // Both picture sizes come out of the decoder.
    let text = probe(&mp4, "v", "frame=width,height");
    let count = |size: &str| {
        text.lines()
            .filter(|l| l.trim_end_matches(',') == size)
            .count()
    };
    assert_eq!(count("640,360"), 60, "{text}");
    assert_eq!(count("320,240"), 60, "{text}");
    // And both audio configurations.
    let text = probe(&mp4, "a", "frame=sample_rate,channels");
    let configs: std::collections::BTreeSet<&str> =
        text.lines().map(|l| l.trim_end_matches(',')).collect();
    assert!(
        configs.contains("2") && configs.contains("1"),
        "{configs:?}"
    );
}

#[test]
fn hevc_enhanced_rtmp_flv() {
    let dir = Turn::shared().scratch();
    let (f9, flv) = enhanced_flv(
        dir.path(),
        "hvc1",
        &words("-t 4 -c:v libx265 -preset veryfast -x265-params log-level=none:bframes=3"),
    );
    let (mp4, _) = remux_one(dir.path(), &flv);
    assert_packet_identical(&f9, &flv, &mp4);
    // Debian's ffmpeg (which cannot read enhanced FLV) decodes our MP4 cleanly too.
    assert_decodes_clean(Path::new(ffmpeg()), &mp4);
    let m = manifest(&mp4);
    assert!(
        m["video"]["codec"]
            .as_str()
            .unwrap()
            .starts_with("hvc1.1.6.L"),
        "{m}"
    );
    assert_eq!(m["video"]["width"], 640);
}

#[test]
fn truncated_flv_is_remuxed_up_to_its_last_complete_tag() {
    let dir = Turn::shared().scratch();
    let args = "-t 4 -c:v libx264 -preset veryfast -c:a aac";
    let full = encoded(dir.path(), "full.flv", &testsrc_av("640x360"), args);
    let data = std::fs::read(&full).unwrap();
    let ends = Flv::parse(&full, &data).tag_ends();
    let last_complete = ends[ends.len() * 2 / 3];
    let next = ends[ends.len() * 2 / 3 + 1];
    // Cut in the middle of the following tag.
    let cut = (last_complete + next) / 2;
    let torn = dir.path().join("torn.flv");
    std::fs::write(&torn, &data[..cut]).unwrap();
    let reference = dir.path().join("complete.flv");
    std::fs::write(&reference, &data[..last_complete]).unwrap();

    let (mp4, log) = remux_one(dir.path(), &torn);
    assert!(
        log.contains("torn tail"),
        "no warning about the torn tail: {log}"
    );
    assert_packet_identical(Path::new(ffmpeg()), &reference, &mp4);
}

#[test]
fn bad_timestamps_are_repaired() {
    let dir = Turn::shared().scratch();
    let args = "-t 4 -c:v libx264 -preset veryfast -bf 0 -c:a aac";
    let src = encoded(dir.path(), "src.flv", &testsrc_av("320x240"), args);
    let (header, mut tags) = flv::split(&src);
    let n = tags.len();
    // A timestamp reset a third of the way in and a jump of an hour two thirds in.
    for t in &mut tags[n / 3..] {
        t.ts = t.ts.saturating_sub(1000);
    }
    for t in &mut tags[2 * n / 3..] {
        t.ts += 3_600_000;
    }
    let flv = dir.path().join("in.flv");
    std::fs::write(&flv, flv::join(&header, &tags)).unwrap();
    let (mp4, log) = remux_one(dir.path(), &flv);
    assert!(log.contains("repaired"), "{log}");
    assert_decodes_clean(Path::new(ffmpeg()), &mp4);
    assert_moov_first(&mp4);
    // Every packet is there, byte for byte, and the decode order is monotonic again.
    let src_p = packets::read(&flv);
    let got = packets::read(&mp4);
    assert_eq!(packets::by_stream(&src_p), packets::by_stream(&got));
    for (stream, ts) in packets::times(&got) {
        assert!(
            ts.windows(2).all(|w| w[1].0 > w[0].0),
            "stream {stream}: dts not increasing"
        );
        let span = ts.last().unwrap().0 - ts[0].0;
        assert!(
            span < 6_000,
            "stream {stream}: the jump was kept ({span} ms)"
        );
    }
    let m = manifest(&mp4);
    assert!(m["duration_ms"].as_u64().unwrap() < 6_000, "{m}");
}

#[test]
fn garbage_and_empty_inputs_fail_while_the_queue_drains() {
    let dir = Turn::shared().scratch();
    let good = dir.path().join("good.flv");
    encode(&good, SINE_48K, &["-t", "2", "-c:a", "aac"]);
    let garbage = dir.path().join("garbage.flv");
    let noise: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, noise).unwrap();
    let empty = dir.path().join("empty.flv");
    std::fs::write(&empty, b"").unwrap();
    // An FLV header with nothing decodable: a script tag only.
    let (header, tags) = flv::split(&good);
    let meta_only = dir.path().join("meta.flv");
    std::fs::write(
        &meta_only,
        flv::join(
            &header,
            &tags
                .into_iter()
                .filter(|t| t.kind == 18)
                .collect::<Vec<_>>(),
        ),
    )
    .unwrap();

    let state = dir.path().join("state");
    let names = [chunk_name(1), chunk_name(2), chunk_name(3), chunk_name(4)];
    queue(
        &state,
        &[
            (&names[0], &garbage),
            (&names[1], &empty),
            (&names[2], &meta_only),
            (&names[3], &good),
        ],
    );
    let out = remux(&state, &[]);
    let log = String::from_utf8_lossy(&out.stderr);
    // 65: inputs were set aside; the good one is remuxed all the same.
    assert_eq!(out.status.code(), Some(65), "{log}");
    for (name, why) in [
        (&names[0], "not an FLV"),
        (&names[1], "empty"),
        (&names[2], "no decodable"),
    ] {
        assert!(
            state.join("failed").join(name).exists(),
            "{name} not in failed/"
        );
        let reason =
            std::fs::read_to_string(state.join("failed").join(format!("{name}.reason"))).unwrap();
        assert!(reason.contains(why), "{name}: reason {reason:?}");
    }
    let mp4 = published_mp4(&state, &names[3]);
    assert!(
        mp4.exists(),
        "the good chunk after the bad ones was not remuxed: {log}"
    );
    assert_packet_identical(Path::new(ffmpeg()), &good, &mp4);
    assert_eq!(std::fs::read_dir(state.join("remux")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(state.join("tmp")).unwrap().count(), 0);
}

#[test]
fn av1_enhanced_rtmp_flv() {
    let dir = Turn::shared().scratch();
    let (f9, flv) = enhanced_flv(dir.path(), "av01", &words("-t 3 -c:v libsvtav1 -preset 12"));
    let (mp4, _) = remux_one(dir.path(), &flv);
    // MP4 samples leave out AV1 temporal delimiters (as ffmpeg's MP4 muxer does), so the
    // reference is ffmpeg's remux; otherwise every byte is the FLV's.
    assert_like_ffmpeg_remux(&f9, &flv, &mp4);
    let (src, got) = (
        packets::by_stream(&packets::read_with(&f9, &flv)),
        packets::by_stream(&packets::read_with(&f9, &mp4)),
    );
    assert_eq!(src[&1], got[&1], "audio differs");
    let delimiters = src[&0]
        .iter()
        .zip(&got[&0])
        .filter(|(a, b)| a.0 == b.0 + 2)
        .count();
    assert_eq!(
        delimiters,
        src[&0].len(),
        "every AV1 frame lost exactly its 2-byte delimiter"
    );
    let m = manifest(&mp4);
    assert!(
        m["video"]["codec"].as_str().unwrap().starts_with("av01.0."),
        "{m}"
    );
}
