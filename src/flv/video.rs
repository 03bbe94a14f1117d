//! Video tag headers: legacy FLV (codec id 7 = AVC) and Enhanced RTMP v1/v2 `ExVideoTagHeader`
//! (FourCC `avc1`, `hvc1`, `av01`, `vp09`).
//!
//! Only what recording and remuxing need is decoded: codec, key/command frame, whether the
//! body is a sequence header (decoder configuration) or a coded frame, and the composition
//! time offset. Multitrack bodies are recognised and reported as [`VideoPacket::Unsupported`].

use super::modex::skip_mod_ex;
use super::tag::FlvError;

const FRAME_KEY: u8 = 1;
const FRAME_COMMAND: u8 = 5;
const LEGACY_AVC: u8 = 7;

// Enhanced RTMP VideoPacketType values.
const PT_SEQUENCE_START: u8 = 0;
const PT_CODED_FRAMES: u8 = 1;
const PT_SEQUENCE_END: u8 = 2;
const PT_CODED_FRAMES_X: u8 = 3;
const PT_METADATA: u8 = 4;
const PT_MPEG2TS_SEQUENCE_START: u8 = 5;
const PT_MULTITRACK: u8 = 6;

/// A video codec. `Other` holds a legacy codec id (1..=15) or an unknown FourCC (big-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VideoCodec {
    Avc,
    Hevc,
    Av1,
    Vp9,
    Other(u32),
}

impl VideoCodec {
    pub fn from_fourcc(f: [u8; 4]) -> VideoCodec {
        match &f {
            b"avc1" => VideoCodec::Avc,
            b"hvc1" => VideoCodec::Hevc,
            b"av01" => VideoCodec::Av1,
            b"vp09" => VideoCodec::Vp9,
            _ => VideoCodec::Other(u32::from_be_bytes(f)),
        }
    }

    /// The FourCC (`avc1`, `hvc1`, `av01`, `vp09`), or a readable stand-in for others.
    pub fn fourcc_str(&self) -> String {
        match self {
            VideoCodec::Avc => "avc1".into(),
            VideoCodec::Hevc => "hvc1".into(),
            VideoCodec::Av1 => "av01".into(),
            VideoCodec::Vp9 => "vp09".into(),
            VideoCodec::Other(v) if *v < 16 => format!("flv-codec-{v}"),
            VideoCodec::Other(v) => {
                let b = v.to_be_bytes();
                if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
                    String::from_utf8_lossy(&b).into_owned()
                } else {
                    format!("0x{v:08x}")
                }
            }
        }
    }
}

/// What a video tag body carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoPacket {
    /// Decoder configuration (avcC, hvcC, av1C, vpcC).
    SequenceHeader,
    /// A coded frame. `composition_time` is PTS - DTS in ms (signed 24-bit; 0 where the codec
    /// or packet type has none).
    Frame {
        composition_time: i32,
    },
    EndOfSequence,
    /// Enhanced RTMP AMF metadata (e.g. HDR colour info).
    Metadata,
    /// Recognised but not handled: multitrack, MPEG2-TS sequence start, command frames,
    /// unknown packet types. (Legacy codecs other than AVC give `Frame` with codec `Other`.)
    Unsupported,
}

/// A parsed video tag body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoTag<'a> {
    pub codec: VideoCodec,
    /// Frame type 1 (a seekable frame). Never set for command frames.
    pub keyframe: bool,
    /// Frame type 5: a video info/command frame, not a media frame.
    pub command: bool,
    /// Enhanced RTMP header (FourCC) rather than a legacy one.
    pub enhanced: bool,
    pub packet: VideoPacket,
    /// The codec payload: configuration record, or length-prefixed NAL units / OBUs / frame.
    pub payload: &'a [u8],
}

fn short(len: usize, detail: &'static str) -> FlvError {
    FlvError::ShortBody {
        what: "video",
        len,
        detail,
    }
}

fn si24(b: &[u8]) -> i32 {
    // Sign-extend by placing the 24 bits high and shifting back arithmetically.
    i32::from_be_bytes([b[0], b[1], b[2], 0]) >> 8
}

/// Parses the video tag header at the start of `body`.
pub fn parse_video(body: &[u8]) -> Result<VideoTag<'_>, FlvError> {
    let first = *body.first().ok_or_else(|| short(0, "no header byte"))?;
    if first & 0x80 != 0 {
        parse_enhanced(body)
    } else {
        parse_legacy(body)
    }
}

fn parse_legacy(body: &[u8]) -> Result<VideoTag<'_>, FlvError> {
    let frame_type = body[0] >> 4;
    let codec_id = body[0] & 0x0f;
    let codec = if codec_id == LEGACY_AVC {
        VideoCodec::Avc
    } else {
        VideoCodec::Other(u32::from(codec_id))
    };
    let mut tag = VideoTag {
        codec,
        keyframe: frame_type == FRAME_KEY,
        command: frame_type == FRAME_COMMAND,
        enhanced: false,
        packet: VideoPacket::Unsupported,
        payload: &body[1..],
    };
    if tag.command {
        return Ok(tag);
    }
    if codec != VideoCodec::Avc {
        // Older codecs (Sorenson, VP6, ...) put the frame right after the header byte.
        tag.packet = VideoPacket::Frame {
            composition_time: 0,
        };
        return Ok(tag);
    }
    if body.len() < 5 {
        return Err(short(body.len(), "AVC header needs 5 bytes"));
    }
    tag.packet = match body[1] {
        0 => VideoPacket::SequenceHeader,
        1 => VideoPacket::Frame {
            composition_time: si24(&body[2..5]),
        },
        2 => VideoPacket::EndOfSequence,
        _ => VideoPacket::Unsupported,
    };
    tag.payload = &body[5..];
    Ok(tag)
}

fn parse_enhanced(body: &[u8]) -> Result<VideoTag<'_>, FlvError> {
    let frame_type = (body[0] >> 4) & 0x07;
    let (packet_type, mut rest) = skip_mod_ex("video", body)?;
    let command = frame_type == FRAME_COMMAND;
    let mut tag = VideoTag {
        codec: VideoCodec::Other(0),
        keyframe: frame_type == FRAME_KEY,
        command,
        enhanced: true,
        packet: VideoPacket::Unsupported,
        payload: rest,
    };
    if command && packet_type != PT_METADATA {
        // A command frame carries a VideoCommand byte instead of a FourCC and media.
        return Ok(tag);
    }
    if packet_type == PT_MULTITRACK {
        return Ok(tag);
    }
    if rest.len() < 4 {
        return Err(short(body.len(), "FourCC missing"));
    }
    tag.codec = VideoCodec::from_fourcc([rest[0], rest[1], rest[2], rest[3]]);
    rest = &rest[4..];
    tag.payload = rest;
    tag.packet = match packet_type {
        PT_SEQUENCE_START => VideoPacket::SequenceHeader,
        PT_CODED_FRAMES if matches!(tag.codec, VideoCodec::Avc | VideoCodec::Hevc) => {
            if rest.len() < 3 {
                return Err(short(body.len(), "composition time missing"));
            }
            tag.payload = &rest[3..];
            VideoPacket::Frame {
                composition_time: si24(&rest[..3]),
            }
        }
        PT_CODED_FRAMES | PT_CODED_FRAMES_X => VideoPacket::Frame {
            composition_time: 0,
        },
        PT_SEQUENCE_END => VideoPacket::EndOfSequence,
        PT_METADATA => VideoPacket::Metadata,
        PT_MPEG2TS_SEQUENCE_START => VideoPacket::Unsupported,
        _ => VideoPacket::Unsupported,
    };
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::modex::PACKET_TYPE_MOD_EX as PT_MOD_EX;

    #[test]
    fn legacy_avc_frame_with_negative_composition_time() {
        let body = [0x27, 1, 0xff, 0xff, 0xfe, 0xaa];
        let t = parse_video(&body).unwrap();
        assert_eq!(t.codec, VideoCodec::Avc);
        assert!(!t.keyframe && !t.enhanced && !t.command);
        assert_eq!(
            t.packet,
            VideoPacket::Frame {
                composition_time: -2
            }
        );
        assert_eq!(t.payload, &[0xaa]);
    }

    #[test]
    fn legacy_avc_sequence_header_and_keyframe() {
        let t = parse_video(&[0x17, 0, 0, 0, 0, 1, 2]).unwrap();
        assert!(t.keyframe);
        assert_eq!(t.packet, VideoPacket::SequenceHeader);
        assert_eq!(t.payload, &[1, 2]);
        let t = parse_video(&[0x17, 1, 0, 0, 0x42]).unwrap();
        assert_eq!(
            t.packet,
            VideoPacket::Frame {
                composition_time: 0x42
            }
        );
    }

    #[test]
    fn legacy_command_frame_is_not_a_keyframe() {
        let t = parse_video(&[0x57, 0]).unwrap();
        assert!(t.command && !t.keyframe);
        assert_eq!(t.packet, VideoPacket::Unsupported);
        let t = parse_video(&[0x14, 0, 1]).unwrap();
        assert_eq!(t.codec, VideoCodec::Other(4));
        assert!(t.keyframe);
        assert_eq!(
            t.packet,
            VideoPacket::Frame {
                composition_time: 0
            }
        );
        assert_eq!(t.payload, &[0, 1]);
    }

    #[test]
    fn enhanced_hevc_coded_frames_and_x() {
        let mut b = vec![0x80 | (1 << 4) | PT_CODED_FRAMES];
        b.extend_from_slice(b"hvc1");
        b.extend_from_slice(&[0, 0, 40, 9]);
        let t = parse_video(&b).unwrap();
        assert_eq!(t.codec, VideoCodec::Hevc);
        assert!(t.keyframe && t.enhanced);
        assert_eq!(
            t.packet,
            VideoPacket::Frame {
                composition_time: 40
            }
        );
        assert_eq!(t.payload, &[9]);

        let mut b = vec![0x80 | (2 << 4) | PT_CODED_FRAMES_X];
        b.extend_from_slice(b"hvc1");
        b.push(9);
        let t = parse_video(&b).unwrap();
        assert!(!t.keyframe);
        assert_eq!(
            t.packet,
            VideoPacket::Frame {
                composition_time: 0
            }
        );
        assert_eq!(t.payload, &[9]);
    }

    #[test]
    fn enhanced_av1_vp9_sequence_and_frames() {
        for (fourcc, codec) in [(b"av01", VideoCodec::Av1), (b"vp09", VideoCodec::Vp9)] {
            let mut b = vec![0x80 | (1 << 4) | PT_SEQUENCE_START];
            b.extend_from_slice(fourcc);
            b.push(0x81);
            let t = parse_video(&b).unwrap();
            assert_eq!((t.codec, t.packet), (codec, VideoPacket::SequenceHeader));
            assert_eq!(t.payload, &[0x81]);
            b[0] = 0x80 | (1 << 4) | PT_CODED_FRAMES;
            let t = parse_video(&b).unwrap();
            assert_eq!(
                t.packet,
                VideoPacket::Frame {
                    composition_time: 0
                }
            );
            assert_eq!(t.payload, &[0x81], "AV1/VP9 CodedFrames have no SI24");
        }
    }

    #[test]
    fn enhanced_other_packet_types() {
        let mk = |pt: u8| {
            let mut b = vec![0x80 | (1 << 4) | pt];
            b.extend_from_slice(b"avc1");
            b
        };
        assert_eq!(
            parse_video(&mk(PT_SEQUENCE_END)).unwrap().packet,
            VideoPacket::EndOfSequence
        );
        assert_eq!(
            parse_video(&mk(PT_METADATA)).unwrap().packet,
            VideoPacket::Metadata
        );
        assert_eq!(
            parse_video(&mk(PT_MPEG2TS_SEQUENCE_START)).unwrap().packet,
            VideoPacket::Unsupported
        );
        let t = parse_video(&[0x80 | (1 << 4) | PT_MULTITRACK, 0, 1, 2, 3, 4]).unwrap();
        assert_eq!(t.packet, VideoPacket::Unsupported);
        let t = parse_video(&[0x80 | (5 << 4) | PT_CODED_FRAMES, 1]).unwrap();
        assert!(t.command && !t.keyframe);
        assert_eq!(t.packet, VideoPacket::Unsupported);
        let mut u = mk(PT_SEQUENCE_START);
        u[1..5].copy_from_slice(b"xyz1");
        let t = parse_video(&u).unwrap();
        assert_eq!(t.codec.fourcc_str(), "xyz1");
    }

    #[test]
    fn enhanced_mod_ex_prefix_is_skipped() {
        // ModEx with 2 data bytes (size-1 = 1), then modex type/packet type byte: CodedFramesX.
        let mut b = vec![
            0x80 | (1 << 4) | PT_MOD_EX,
            1,
            0xaa,
            0xbb,
            PT_CODED_FRAMES_X,
        ];
        b.extend_from_slice(b"av01");
        b.push(7);
        let t = parse_video(&b).unwrap();
        assert_eq!(t.codec, VideoCodec::Av1);
        assert_eq!(t.payload, &[7]);
    }

    #[test]
    fn short_bodies_are_errors_not_panics() {
        assert!(parse_video(&[]).is_err());
        assert!(parse_video(&[0x17, 1, 0]).is_err());
        assert!(parse_video(&[0x90, b'h', b'v']).is_err());
        assert!(parse_video(&[0x91, b'h', b'v', b'c', b'1', 0]).is_err());
        assert!(parse_video(&[0x97, 0xff, 0]).is_err());
        assert!(parse_video(&[0x97, 5, 0]).is_err());
        // Every prefix of a valid body either parses or errors; none panic.
        let mut b = vec![
            0x80 | (1 << 4) | PT_MOD_EX,
            0xff,
            0,
            1,
            1,
            2,
            PT_CODED_FRAMES,
        ];
        b.extend_from_slice(b"hvc1\0\0\x01\x02");
        for n in 0..=b.len() {
            let _ = parse_video(&b[..n]);
        }
    }
}
