//! Reader/writer tests: round trips, torn tails at every offset, hostile input, and real FLVs
//! written by ffmpeg.

use std::io::{BufReader, Cursor};
use std::path::Path;
use std::process::{Command, Output};

use super::script::{self, Amf0Value};
use super::*;

fn sample_tags() -> Vec<(TagType, u32, Vec<u8>)> {
    vec![
        (
            TagType::Script,
            0,
            script::encode_metadata(&[("width".into(), Amf0Value::Number(320.0))]),
        ),
        (TagType::Video, 0, vec![0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f]),
        (TagType::Audio, 0, vec![0xaf, 0, 0x12, 0x10]),
        (TagType::Video, 0, vec![0x17, 1, 0, 0, 0x21, 9, 9, 9]),
        (TagType::Audio, 23, vec![0xaf, 1, 1, 2, 3]),
        (TagType::Video, 33, vec![]),
        // Beyond 24 bits: the extended timestamp byte carries the high bits.
        (
            TagType::Video,
            0x1234_5678,
            vec![0x27, 1, 0xff, 0xff, 0xf0, 5],
        ),
    ]
}

fn write_file(tags: &[(TagType, u32, Vec<u8>)]) -> (Vec<u8>, Vec<u64>) {
    let mut w = FlvWriter::new(Vec::new(), true, true).unwrap();
    let mut ends = vec![w.bytes_written()];
    for (t, ts, body) in tags {
        w.write_tag(*t, *ts, body).unwrap();
        ends.push(w.bytes_written());
    }
    let bytes = w.into_inner();
    assert_eq!(*ends.last().unwrap(), bytes.len() as u64);
    (bytes, ends)
}

#[test]
fn writer_reader_round_trip() {
    let tags = sample_tags();
    let (bytes, ends) = write_file(&tags);
    assert_eq!(&bytes[..13], b"FLV\x01\x05\0\0\0\x09\0\0\0\0");
    let mut r = FlvReader::new(BufReader::new(Cursor::new(&bytes))).unwrap();
    assert_eq!(
        r.header(),
        FlvHeader {
            has_audio: true,
            has_video: true
        }
    );
    let mut buf = Vec::new();
    for (i, (t, ts, body)) in tags.iter().enumerate() {
        let info = r.next_tag().unwrap().expect("tag");
        assert_eq!(info.header.tag_type, *t);
        assert_eq!(info.header.timestamp, *ts);
        assert_eq!(info.header.data_size as usize, body.len());
        assert_eq!(info.tag_offset(), ends[i]);
        assert_eq!(info.end_offset(), ends[i + 1]);
        assert!(info.previous_size_ok);
        assert_eq!(r.read_body_prefix(2).unwrap(), &body[..body.len().min(2)]);
        r.read_body(&mut buf).unwrap();
        assert_eq!(&buf, body);
        assert_eq!(r.position(), ends[i + 1]);
    }
    assert!(r.next_tag().unwrap().is_none());
    assert_eq!(r.torn_tail(), None);
    assert!(r.next_tag().unwrap().is_none());
    assert!(matches!(r.read_body(&mut buf), Err(FlvError::NoCurrentTag)));
    assert_eq!(
        complete_prefix_len(Cursor::new(&bytes)).unwrap(),
        bytes.len() as u64
    );
}

/// Hands out one byte per read and an `Interrupted` error every third call.
struct Trickle<'a> {
    data: &'a [u8],
    calls: usize,
}

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(3) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.data.len()).min(1);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn short_reads_and_interrupts_are_retried() {
    let tags = sample_tags();
    let (bytes, _) = write_file(&tags);
    let mut r = FlvReader::new(Trickle {
        data: &bytes,
        calls: 0,
    })
    .unwrap();
    for (_, ts, body) in &tags {
        let info = r.next_tag().unwrap().unwrap();
        assert_eq!(info.header.timestamp, *ts);
        assert_eq!(r.body(), &body[..]);
    }
    assert!(r.next_tag().unwrap().is_none());
    assert_eq!(r.torn_tail(), None);
}

#[test]
fn torn_tail_at_every_offset() {
    let (bytes, ends) = write_file(&sample_tags());
    for cut in 0..=bytes.len() {
        let part = &bytes[..cut];
        if cut < 13 {
            assert!(complete_prefix_len(Cursor::new(part)).is_err(), "cut {cut}");
            assert!(FlvReader::new(Cursor::new(part)).is_err());
            continue;
        }
        let expect = *ends.iter().filter(|&&e| e <= cut as u64).max().unwrap();
        assert_eq!(
            complete_prefix_len(Cursor::new(part)).unwrap(),
            expect,
            "cut {cut}"
        );
        let mut r = FlvReader::new(Cursor::new(part)).unwrap();
        let mut n = 0;
        while let Some(info) = r.next_tag().unwrap() {
            assert!(info.end_offset() <= cut as u64);
            n += 1;
        }
        assert_eq!(
            n,
            ends.iter().filter(|&&e| e <= cut as u64).count() - 1,
            "cut {cut}"
        );
        let torn = if expect == cut as u64 {
            None
        } else {
            Some(expect)
        };
        assert_eq!(r.torn_tail(), torn, "cut {cut}");
        assert_eq!(r.position(), expect);
    }
}

#[test]
fn empty_and_garbage_input_give_clear_errors() {
    let e = FlvReader::new(Cursor::new(b"")).unwrap_err().to_string();
    assert!(e.contains("not an FLV file") && e.contains("empty"), "{e}");
    let e = FlvReader::new(Cursor::new(b"\x00\x00\x00\x20ftypisom....")).unwrap_err();
    assert!(e.to_string().contains("not an FLV file"), "{e}");
    let e = FlvReader::new(Cursor::new(b"FLV\x02\x05\0\0\0\x09\0\0\0\0")).unwrap_err();
    assert!(e.to_string().contains("version 2"), "{e}");
    let e = FlvReader::new(Cursor::new(b"FLV\x01\x05\0\0\0\x03\0\0\0\0")).unwrap_err();
    assert!(e.to_string().contains("header size"), "{e}");
    let e = FlvReader::new(Cursor::new(b"FLV\x01\x05\0\0")).unwrap_err();
    assert!(matches!(e, FlvError::TruncatedHeader(7)), "{e}");

    // A valid header followed by noise: the framing error names the offset.
    let mut bytes = FlvHeader {
        has_audio: true,
        has_video: false,
    }
    .encode()
    .to_vec();
    bytes.extend_from_slice(&[0x33; 40]);
    let mut r = FlvReader::new(Cursor::new(&bytes)).unwrap();
    let e = r.next_tag().unwrap_err().to_string();
    assert!(
        e.contains("unknown FLV tag type 19") && e.contains("offset 13"),
        "{e}"
    );
}

#[test]
fn lying_data_size_is_a_torn_tail_not_an_allocation() {
    let (mut bytes, ends) = write_file(&sample_tags()[..2]);
    // A tag header claiming 16 MiB with 5 bytes behind it.
    bytes.extend_from_slice(&[9, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5]);
    let mut r = FlvReader::new(Cursor::new(&bytes)).unwrap();
    assert!(r.next_tag().unwrap().is_some());
    assert!(r.next_tag().unwrap().is_some());
    assert!(r.next_tag().unwrap().is_none());
    assert_eq!(r.torn_tail(), Some(ends[2]));
}

#[test]
fn zeroed_tail_after_crash_is_cut_by_salvage() {
    let (mut bytes, ends) = write_file(&sample_tags());
    bytes.extend_from_slice(&[0u8; 4096]);
    assert_eq!(
        complete_prefix_len(Cursor::new(&bytes)).unwrap(),
        *ends.last().unwrap()
    );
}

#[test]
fn bad_previous_tag_size_is_counted_not_fatal() {
    let tags = sample_tags();
    let (mut bytes, ends) = write_file(&tags);
    // Corrupt the PreviousTagSize after tag 2 (index 2).
    let at = ends[3] as usize - 1;
    bytes[at] ^= 1;
    let mut r = FlvReader::new(Cursor::new(&bytes)).unwrap();
    let mut oks = Vec::new();
    while let Some(info) = r.next_tag().unwrap() {
        oks.push(info.previous_size_ok);
    }
    assert_eq!(oks.len(), tags.len());
    assert_eq!(oks.iter().filter(|ok| !**ok).count(), 1);
    assert!(!oks[2]);
    assert_eq!(r.bad_previous_sizes(), 1);
    assert_eq!(r.torn_tail(), None);
    // Salvage keeps only what is consistently framed, and says where its media ends: the
    // latest timestamp of the audio and video tags kept (only tag 1 is kept, at 0).
    assert_eq!(
        complete_prefix(Cursor::new(&bytes)).unwrap(),
        CompletePrefix {
            len: ends[2],
            last_media_timestamp: Some(0)
        }
    );
    // Whole, it ends at the last frame's timestamp, whatever order the tags came in.
    let (whole, _) = write_file(&tags);
    let latest = tags
        .iter()
        .filter(|t| t.0 != TagType::Script)
        .map(|t| t.1)
        .max();
    assert_eq!(
        complete_prefix(Cursor::new(&whole))
            .unwrap()
            .last_media_timestamp,
        latest
    );
}

#[test]
fn oversized_body_is_refused_by_the_writer() {
    let mut w = FlvWriter::new(Vec::new(), false, true).unwrap();
    let e = w
        .write_tag(TagType::Video, 0, &vec![0; 1 << 24])
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(w.bytes_written(), 13);
}

/// Runs a tool; panics with its stderr unless it succeeds.
pub(crate) fn run_tool(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run tool (apt-get install -y ffmpeg)");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn run(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&run_tool(cmd).stdout).into_owned()
}

/// A real FLV from ffmpeg at `path`: `seconds` of 320x240 30 fps H.264 with B-frames and a
/// keyframe every 30 frames, plus AAC.
pub(crate) fn ffmpeg_h264_aac_flv(path: &Path, seconds: &str) {
    run_tool(
        Command::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30",
                "-f",
                "lavfi",
                "-i",
                "sine",
                "-t",
                seconds,
                "-c:v",
                "libx264",
                "-bf",
                "2",
                "-g",
                "30",
                "-c:a",
                "aac",
                "-f",
                "flv",
            ])
            .arg(path),
    );
}

/// ffprobe's line per video packet of `path`, in file order: "pts,dts,flags" (ffprobe's own
/// field order), then anything it reported on stderr, so a decode error breaks the listing.
pub(crate) fn video_packets(path: &Path) -> String {
    let out = run_tool(
        Command::new("ffprobe")
            .args([
                "-v",
                "error",
                "-select_streams",
                "v",
                "-show_entries",
                "packet=pts,dts,flags",
                "-of",
                "csv=p=0",
            ])
            .arg(path),
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Real FLV from ffmpeg: H.264 with B-frames and AAC.
#[test]
fn parses_ffmpeg_flv() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.flv");
    ffmpeg_h264_aac_flv(&path, "2");
    let probe = video_packets(&path);
    let mut probe_ct = Vec::new();
    let mut probe_keys = 0;
    for line in probe.lines() {
        let f: Vec<&str> = line.split(',').collect();
        let (pts, dts): (i64, i64) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        probe_ct.push(pts - dts);
        probe_keys += usize::from(f[2].contains('K'));
    }
    let probe_video = probe_ct.len();
    let probe_audio = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "a",
            "-show_entries",
            "packet=pts",
            "-of",
            "csv=p=0",
        ])
        .arg(&path))
    .lines()
    .count();

    let file = std::fs::File::open(&path).unwrap();
    let len = file.metadata().unwrap().len();
    let mut r = FlvReader::new(BufReader::new(file)).unwrap();
    assert!(r.header().has_audio && r.header().has_video);
    let (mut keys, mut frames, mut audio_frames) = (0, 0, 0);
    let mut cts = Vec::new();
    let mut first_audio = None;
    let mut first_video = None;
    let mut metadata = None;
    let mut last_dts = 0;
    while let Some(info) = r.next_tag().unwrap() {
        match info.header.tag_type {
            TagType::Script => metadata = Some(r.body().to_vec()),
            TagType::Video => {
                let v = parse_video(r.body()).unwrap();
                assert_eq!(v.codec, VideoCodec::Avc);
                first_video.get_or_insert(v.packet);
                if let VideoPacket::Frame { composition_time } = v.packet {
                    assert!(info.header.timestamp >= last_dts, "DTS order");
                    last_dts = info.header.timestamp;
                    frames += 1;
                    keys += usize::from(v.keyframe);
                    cts.push(i64::from(composition_time));
                    assert!(!v.payload.is_empty());
                }
            }
            TagType::Audio => {
                let a = parse_audio(r.body()).unwrap();
                assert_eq!(a.codec, AudioCodec::Aac);
                first_audio.get_or_insert(a.sequence_header);
                audio_frames += usize::from(!a.sequence_header);
            }
        }
    }
    assert_eq!(r.torn_tail(), None);
    assert_eq!(r.bad_previous_sizes(), 0);
    assert_eq!(r.position(), len);
    assert_eq!(frames, probe_video);
    assert_eq!(frames, 60);
    assert_eq!(keys, probe_keys);
    assert!(keys >= 2, "two GOPs of 30 in 60 frames");
    assert_eq!(
        cts, probe_ct,
        "composition offsets match ffprobe's pts - dts"
    );
    let mut distinct = cts.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() >= 2,
        "B-frames give varying offsets: {distinct:?}"
    );
    assert_eq!(audio_frames, probe_audio);
    assert_eq!(first_video, Some(VideoPacket::SequenceHeader));
    assert_eq!(first_audio, Some(true), "AAC sequence header comes first");

    // onMetaData: decode, re-encode, decode again to the same ordered pairs.
    let body = metadata.expect("ffmpeg writes onMetaData");
    let props = script::decode_metadata(&body).unwrap();
    for (key, want) in [
        ("width", 320.0),
        ("height", 240.0),
        ("videocodecid", 7.0),
        ("audiocodecid", 10.0),
    ] {
        let got = script::get(&props, key).and_then(Amf0Value::as_f64);
        assert_eq!(got, Some(want), "{key}");
    }
    assert!(
        script::get(&props, "encoder")
            .and_then(Amf0Value::as_str)
            .is_some_and(|s| s.starts_with("Lavf"))
    );
    let again = script::encode_metadata(&props);
    assert_eq!(script::decode_metadata(&again).unwrap(), props);
    assert_eq!(
        again, body,
        "byte-identical re-encode of ffmpeg's onMetaData"
    );

    // Copy every tag through the writer: the bytes come out identical to ffmpeg's tags.
    let original = std::fs::read(&path).unwrap();
    let mut r = FlvReader::new(Cursor::new(&original)).unwrap();
    let mut w = FlvWriter::new(Vec::new(), true, true).unwrap();
    while let Some(info) = r.next_tag().unwrap() {
        w.write_tag(info.header.tag_type, info.header.timestamp, r.body())
            .unwrap();
    }
    assert_eq!(w.into_inner(), original);
}
