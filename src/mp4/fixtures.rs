//! Codec configurations for the unit tests of the MP4 core.

use super::{Movie, SampleEntry, SampleIn};

/// An AVC sample entry around `sps` (with a fixed PPS).
pub fn avc(sps: &[u8]) -> SampleEntry {
    // AVCDecoderConfigurationRecord: version, profile, compat, level, 4-byte lengths,
    // one SPS, one PPS.
    let mut rec = vec![1, sps[1], sps[2], sps[3], 0xFF, 0xE1];
    rec.extend_from_slice(&(sps.len() as u16).to_be_bytes());
    rec.extend_from_slice(sps);
    rec.extend_from_slice(&[1, 0, 4, 0x68, 0xEB, 0xE3, 0xCB]);
    SampleEntry::avc(&rec).unwrap()
}

/// H.264 High, 1280x720.
pub const SPS_720P: [u8; 26] = [
    0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10, 0x00, 0x00, 0x03, 0x00,
    0x10, 0x00, 0x00, 0x03, 0x03, 0xc0, 0xf1, 0x83, 0x19, 0x60,
];

/// AAC LC, 48 kHz stereo.
pub fn aac() -> SampleEntry {
    SampleEntry::aac(&[0x11, 0x90]).unwrap()
}

/// A movie whose one track (video, track 0) changes configuration mid-way: two samples under
/// [`SPS_720P`], then two under another level. Returns it and the second configuration.
pub fn two_configurations() -> (Movie, SampleEntry) {
    let mut m = Movie::new();
    let v = m.add_track(avc(&SPS_720P));
    m.push(v, sample(0, 0, 10, 0, true));
    m.push(v, sample(33, 0, 10, 10, false));
    let mut sps = SPS_720P;
    sps[3] = 0x28;
    let other = avc(&sps);
    assert!(
        m.set_entry(v, other.clone()),
        "another level is a new configuration"
    );
    m.push(v, sample(66, 0, 10, 20, true));
    m.push(v, sample(99, 0, 10, 30, false));
    (m, other)
}

/// One input sample (times in ms).
pub fn sample(dts_ms: i64, cto_ms: i32, size: u32, source: u64, keyframe: bool) -> SampleIn {
    SampleIn {
        dts_ms,
        cto_ms,
        size,
        keyframe,
        source,
    }
}
