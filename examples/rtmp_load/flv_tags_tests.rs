//! Tests of the FLV tag walker on hand-built tags (the ffmpeg cross-check is in
//! `end_to_end_tests`). A separate file because the benchmark compiles `flv_tags.rs` too.

use crate::flv_tags::*;

fn tag(tag_type: u8, ts: u32, body: &[u8]) -> Vec<u8> {
    let size = body.len() as u32;
    let mut t = vec![tag_type];
    t.extend_from_slice(&size.to_be_bytes()[1..]);
    t.extend_from_slice(&ts.to_be_bytes()[1..]);
    t.push((ts >> 24) as u8);
    t.extend_from_slice(&[0, 0, 0]);
    t.extend_from_slice(body);
    t.extend_from_slice(&(size + 11).to_be_bytes());
    t
}

fn file(tags: &[Vec<u8>]) -> Vec<u8> {
    let mut f = b"FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00".to_vec();
    for t in tags {
        f.extend_from_slice(t);
    }
    f
}

#[test]
fn frames_are_told_from_headers_and_markers() {
    let f = file(&[
        tag(TAG_SCRIPT, 0, b"\x02\x00\x0aonMetaData"),
        tag(TAG_VIDEO, 0, &[0x17, 0, 0, 0, 0, 1, 2]), // AVC sequence header
        tag(TAG_AUDIO, 0, &[0xaf, 0, 0x12, 0x10]),    // AAC AudioSpecificConfig
        tag(TAG_VIDEO, 0, &[0x17, 1, 0, 0, 0, 9, 9]), // AVC keyframe
        tag(TAG_AUDIO, 21, &[0xaf, 1, 7, 7]),         // AAC raw
        tag(TAG_VIDEO, 33, &[0x27, 1, 0, 0, 0, 9]),   // AVC inter frame
        tag(TAG_VIDEO, 40, &[0x57, 0]),               // video info/command frame
        tag(TAG_VIDEO, 66, &[0x17, 2, 0, 0, 0]),      // AVC end of sequence
        tag(TAG_VIDEO, 70, &[0x90, b'h', b'v', b'c', b'1']), // E-RTMP sequence start
        tag(
            TAG_VIDEO,
            0x0100_0000,
            &[0x91, b'h', b'v', b'c', b'1', 0, 0, 0, 5],
        ), // E-RTMP frame
    ]);
    let parsed = parse(&f).unwrap();
    assert_eq!(parsed.tags.len(), 10);
    assert_eq!(parsed.torn_tail_bytes, 0);
    let frames: Vec<bool> = parsed.tags.iter().map(|t| t.is_media_frame()).collect();
    assert_eq!(
        frames,
        [
            false, false, false, true, true, true, false, false, false, true
        ]
    );
    let headers = parsed
        .tags
        .iter()
        .filter(|t| t.is_sequence_header())
        .count();
    assert_eq!(headers, 3);
    assert_eq!(
        parsed.tags[9].timestamp, 0x0100_0000,
        "extended timestamp byte"
    );
    assert_eq!(count_media_frames(&f).unwrap(), 4);
}

#[test]
fn a_torn_last_tag_is_not_counted() {
    let whole = file(&[
        tag(TAG_AUDIO, 0, &[0xaf, 1, 7, 7]),
        tag(TAG_AUDIO, 21, &[0xaf, 1, 8, 8]),
    ]);
    let cut = &whole[..whole.len() - 6];
    let parsed = parse(cut).unwrap();
    assert_eq!(parsed.tags.len(), 1);
    assert_eq!(parsed.torn_tail_bytes, 11 + 4 - 6 + 4);
    // Only the trailing PreviousTagSize missing: the tag itself is whole.
    let parsed = parse(&whole[..whole.len() - 4]).unwrap();
    assert_eq!(parsed.tags.len(), 2);
}

#[test]
fn not_flv_is_an_error() {
    assert!(parse(b"GIF89a....").is_err());
    assert!(parse(b"FLV\x01\x05\x00\x00\x00\x02").is_err());
}
