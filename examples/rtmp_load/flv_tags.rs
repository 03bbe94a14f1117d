//! A minimal FLV tag walker for the load tool and the ingest benchmark: splits a whole FLV file in
//! memory into tags and tells media frames from sequence headers. The benchmark counts recorded
//! frames with it, so it is deliberately independent of the crate's own `flv` module (the thing
//! being measured should not also be the ruler).

use std::fmt;

pub const TAG_AUDIO: u8 = 8;
pub const TAG_VIDEO: u8 = 9;
pub const TAG_SCRIPT: u8 = 18;

const FILE_HEADER_LEN: usize = 9;
const TAG_HEADER_LEN: usize = 11;
const PREVIOUS_TAG_SIZE_LEN: usize = 4;

/// One FLV tag, borrowing its body from the file buffer.
#[derive(Debug, Clone, Copy)]
pub struct Tag<'a> {
    pub tag_type: u8,
    /// Milliseconds, with the extended (upper) byte applied.
    pub timestamp: u32,
    pub body: &'a [u8],
    /// Byte offset of the tag header in the file, for error messages.
    pub offset: usize,
}

impl Tag<'_> {
    /// Audio or video data that a player would decode or present: not a codec configuration
    /// record, not an end-of-sequence marker, not a video info/command frame, not empty.
    pub fn is_media_frame(&self) -> bool {
        match self.tag_type {
            TAG_AUDIO => is_audio_frame(self.body),
            TAG_VIDEO => is_video_frame(self.body),
            _ => false,
        }
    }

    pub fn is_sequence_header(&self) -> bool {
        match self.tag_type {
            TAG_AUDIO => self.body.len() >= 2 && self.body[0] >> 4 == 10 && self.body[1] == 0,
            TAG_VIDEO => video_packet_type(self.body) == Some(VideoPacket::SequenceStart),
            _ => false,
        }
    }
}

fn is_audio_frame(body: &[u8]) -> bool {
    let Some(&first) = body.first() else {
        return false;
    };
    let sound_format = first >> 4;
    match sound_format {
        // AAC: packet type 1 is raw data, 0 the AudioSpecificConfig.
        10 => body.get(1) == Some(&1) && body.len() > 2,
        // Enhanced RTMP audio (ExHeader): packet type in the low nibble, 1 = coded frames.
        9 => first & 0x0f == 1,
        _ => body.len() > 1,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum VideoPacket {
    SequenceStart,
    Frame,
    Other,
}

fn video_packet_type(body: &[u8]) -> Option<VideoPacket> {
    let &first = body.first()?;
    let frame_type = (first >> 4) & 0x07;
    if first & 0x80 != 0 {
        // Enhanced RTMP: low nibble is the packet type (0 start, 1 frames, 3 frames without
        // composition time, 2 end, 4 metadata, 5 MPEG-2 TS start).
        return Some(match first & 0x0f {
            0 => VideoPacket::SequenceStart,
            1 | 3 if frame_type != 5 => VideoPacket::Frame,
            _ => VideoPacket::Other,
        });
    }
    if frame_type == 5 {
        return Some(VideoPacket::Other);
    }
    match first & 0x0f {
        // AVC (7) and the de-facto HEVC (12) / AV1 (13) ids share AVCPacketType in byte 1.
        7 | 12 | 13 => Some(match body.get(1)? {
            0 => VideoPacket::SequenceStart,
            1 => VideoPacket::Frame,
            _ => VideoPacket::Other,
        }),
        _ if body.len() > 1 => Some(VideoPacket::Frame),
        _ => Some(VideoPacket::Other),
    }
}

fn is_video_frame(body: &[u8]) -> bool {
    video_packet_type(body) == Some(VideoPacket::Frame)
}

/// Why a buffer is not an FLV file at all.
#[derive(Debug)]
pub struct NotFlv(pub String);

impl fmt::Display for NotFlv {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFlv {}

/// All complete tags of an FLV file, and how many bytes at the end did not form a whole tag
/// (a recording cut off mid-write has a torn tail; that is data, not an error).
#[derive(Debug)]
pub struct FlvTags<'a> {
    pub tags: Vec<Tag<'a>>,
    pub torn_tail_bytes: usize,
}

pub fn parse(file: &[u8]) -> Result<FlvTags<'_>, NotFlv> {
    if file.len() < FILE_HEADER_LEN || &file[..3] != b"FLV" {
        return Err(NotFlv("no FLV signature".into()));
    }
    let data_offset = u32::from_be_bytes([file[5], file[6], file[7], file[8]]) as usize;
    if data_offset < FILE_HEADER_LEN {
        return Err(NotFlv(format!("header length {data_offset} is below 9")));
    }
    let mut pos = data_offset + PREVIOUS_TAG_SIZE_LEN;
    let mut tags = Vec::new();
    while pos + TAG_HEADER_LEN <= file.len() {
        let h = &file[pos..pos + TAG_HEADER_LEN];
        // The low 5 bits are the tag type; bit 5 is the (unused by us) encryption filter flag.
        let tag_type = h[0] & 0x1f;
        let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let timestamp = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
        let body_start = pos + TAG_HEADER_LEN;
        // A tag whose body is whole counts even if its trailing PreviousTagSize is missing.
        if body_start + size > file.len() {
            break;
        }
        let end = (body_start + size + PREVIOUS_TAG_SIZE_LEN).min(file.len());
        tags.push(Tag {
            tag_type,
            timestamp,
            body: &file[body_start..body_start + size],
            offset: pos,
        });
        pos = end;
    }
    Ok(FlvTags {
        tags,
        torn_tail_bytes: file.len().saturating_sub(pos),
    })
}

/// Media frames (see [`Tag::is_media_frame`]) in an FLV file.
pub fn count_media_frames(file: &[u8]) -> Result<u64, NotFlv> {
    Ok(parse(file)?
        .tags
        .iter()
        .filter(|t| t.is_media_frame())
        .count() as u64)
}
