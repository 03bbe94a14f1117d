//! FLV container framing: the file header, the 11-byte tag header, tag types and the errors
//! the FLV code reports.

use std::io;

/// Bytes in the FLV file header we write (and the minimum a reader accepts).
pub const FILE_HEADER_LEN: usize = 9;
/// Bytes in a tag header.
pub const TAG_HEADER_LEN: usize = 11;
/// Bytes in the PreviousTagSize field that follows the file header and every tag.
pub const PREVIOUS_TAG_SIZE_LEN: usize = 4;
/// Largest tag body the 24-bit DataSize field can describe.
pub const MAX_DATA_SIZE: u32 = 0x00ff_ffff;

/// FLV bytes one tag with a `body_len`-byte body adds to a file (header, body, PreviousTagSize).
pub fn tag_len(body_len: usize) -> u64 {
    (TAG_HEADER_LEN + body_len + PREVIOUS_TAG_SIZE_LEN) as u64
}

/// Bytes of the file header plus PreviousTagSize0.
pub const FILE_PREAMBLE_LEN: u64 = (FILE_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN) as u64;

const FLAG_AUDIO: u8 = 0x04;
const FLAG_VIDEO: u8 = 0x01;

/// The kind of a tag, from the low five bits of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TagType {
    /// 8
    Audio,
    /// 9
    Video,
    /// 18: AMF0 script data such as `onMetaData`.
    Script,
}

impl TagType {
    pub fn from_u8(v: u8) -> Option<TagType> {
        match v {
            8 => Some(TagType::Audio),
            9 => Some(TagType::Video),
            18 => Some(TagType::Script),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        match self {
            TagType::Audio => 8,
            TagType::Video => 9,
            TagType::Script => 18,
        }
    }
}

/// What the file header announces. Informational only: players (and we) go by the tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlvHeader {
    pub has_audio: bool,
    pub has_video: bool,
}

impl FlvHeader {
    /// The 9-byte header plus PreviousTagSize0, as the writer emits it.
    pub fn encode(self) -> [u8; FILE_HEADER_LEN + PREVIOUS_TAG_SIZE_LEN] {
        let mut flags = 0;
        if self.has_audio {
            flags |= FLAG_AUDIO;
        }
        if self.has_video {
            flags |= FLAG_VIDEO;
        }
        [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
    }

    /// Parses the fixed 9 bytes; returns the header and the declared header size.
    pub fn parse(b: &[u8; FILE_HEADER_LEN]) -> Result<(FlvHeader, u32), FlvError> {
        if &b[..3] != b"FLV" {
            return Err(FlvError::NotFlv(format!(
                "signature is {:02x} {:02x} {:02x}, not \"FLV\"",
                b[0], b[1], b[2]
            )));
        }
        if b[3] != 1 {
            return Err(FlvError::NotFlv(format!(
                "unsupported FLV version {}",
                b[3]
            )));
        }
        let size = u32::from_be_bytes([b[5], b[6], b[7], b[8]]);
        if (size as usize) < FILE_HEADER_LEN {
            return Err(FlvError::NotFlv(format!("header size {size} is below 9")));
        }
        Ok((
            FlvHeader {
                has_audio: b[4] & FLAG_AUDIO != 0,
                has_video: b[4] & FLAG_VIDEO != 0,
            },
            size,
        ))
    }
}

/// The 11-byte tag header. The stream id (always 0) is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TagHeader {
    pub tag_type: TagType,
    /// Body bytes that follow the header.
    pub data_size: u32,
    /// Milliseconds: 24 low bits plus the 8-bit extension as the high byte.
    pub timestamp: u32,
    /// The "Filter" bit: the body is encrypted/pre-processed. We never write it; a reader
    /// reports it so callers can refuse such tags.
    pub filtered: bool,
}

impl TagHeader {
    /// Parses a tag header. `Err(tag type byte)` for an unknown tag type.
    pub fn parse(b: &[u8; TAG_HEADER_LEN]) -> Result<TagHeader, u8> {
        let tag_type = TagType::from_u8(b[0] & 0x1f).ok_or(b[0])?;
        Ok(TagHeader {
            tag_type,
            filtered: b[0] & 0x20 != 0,
            data_size: u32::from_be_bytes([0, b[1], b[2], b[3]]),
            timestamp: u32::from_be_bytes([b[7], b[4], b[5], b[6]]),
        })
    }

    pub fn encode(&self) -> [u8; TAG_HEADER_LEN] {
        let s = self.data_size.to_be_bytes();
        let t = self.timestamp.to_be_bytes();
        let first = self.tag_type.as_u8() | if self.filtered { 0x20 } else { 0 };
        [first, s[1], s[2], s[3], t[1], t[2], t[3], t[0], 0, 0, 0]
    }
}

/// Errors from reading or parsing FLV. Offsets are byte offsets in the file.
#[derive(Debug, thiserror::Error)]
pub enum FlvError {
    #[error("not an FLV file: {0}")]
    NotFlv(String),
    #[error("FLV header is truncated ({0} bytes)")]
    TruncatedHeader(u64),
    #[error("unknown FLV tag type {tag_type} (byte 0x{byte:02x}) at offset {offset}")]
    UnknownTagType { tag_type: u8, byte: u8, offset: u64 },
    #[error("{what} tag body is too short ({len} bytes): {detail}")]
    ShortBody {
        what: &'static str,
        len: usize,
        detail: &'static str,
    },
    #[error("bad AMF0 script data at byte {pos}: {reason}")]
    Amf { pos: usize, reason: String },
    #[error("read_body called without a current tag")]
    NoCurrentTag,
    #[error("I/O error at FLV offset {offset}: {source}")]
    Io { offset: u64, source: io::Error },
}
