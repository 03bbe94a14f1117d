//! The input FLV, read once and split into what every publisher sends: the `onMetaData` fields
//! and the audio/video tags with timestamps rebased to zero. Payloads are `Bytes`, so N
//! publishers share one copy of the file.

use std::io::Cursor;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use rml_amf0::Amf0Value;
use rml_rtmp::sessions::StreamMetadata;

use crate::flv_tags::{self, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO};

pub struct MediaTag {
    pub video: bool,
    /// Milliseconds from the first audio/video tag of the file.
    pub timestamp: u32,
    pub data: Bytes,
    pub media_frame: bool,
    pub sequence_header: bool,
}

pub struct Source {
    pub metadata: StreamMetadata,
    pub tags: Vec<MediaTag>,
    /// Timestamp offset between two passes of the file (`--repeat`): its span plus one frame.
    pub period_ms: u32,
    pub file_bytes: u64,
    pub frames_per_pass: u64,
}

impl Source {
    pub fn parse(file: Vec<u8>) -> Result<Source> {
        let file_bytes = file.len() as u64;
        let file = Bytes::from(file);
        let parsed = flv_tags::parse(&file)?;
        let mut metadata = StreamMetadata::new();
        let mut first_ts = None;
        let mut tags = Vec::new();
        for tag in &parsed.tags {
            match tag.tag_type {
                TAG_SCRIPT if first_ts.is_none() => {
                    if let Some(m) = parse_metadata(tag.body) {
                        metadata = m;
                    }
                }
                TAG_AUDIO | TAG_VIDEO if !tag.body.is_empty() => {
                    let base = *first_ts.get_or_insert(tag.timestamp);
                    let start = tag.body.as_ptr() as usize - file.as_ptr() as usize;
                    tags.push(MediaTag {
                        video: tag.tag_type == TAG_VIDEO,
                        timestamp: tag.timestamp.wrapping_sub(base),
                        data: file.slice(start..start + tag.body.len()),
                        media_frame: tag.is_media_frame(),
                        sequence_header: tag.is_sequence_header(),
                    });
                }
                _ => {}
            }
        }
        let frames_per_pass = tags.iter().filter(|t| t.media_frame).count() as u64;
        if frames_per_pass == 0 {
            bail!("no audio or video frames in the file");
        }
        let span = tags.iter().map(|t| t.timestamp).max().unwrap_or(0);
        let video_frames = tags.iter().filter(|t| t.video && t.media_frame).count() as u32;
        let frame_ms = match video_frames {
            0 | 1 => 40,
            n => (span / (n - 1)).max(1),
        };
        Ok(Source {
            metadata,
            period_ms: span + frame_ms,
            file_bytes,
            frames_per_pass,
            tags,
        })
    }
}

/// `onMetaData` fields that rml_rtmp's `publish_metadata` can carry; anything unparsable is
/// simply not forwarded (the recorder must cope with publishers that send no metadata).
fn parse_metadata(body: &[u8]) -> Option<StreamMetadata> {
    let values = rml_amf0::deserialize(&mut Cursor::new(body))
        .context("onMetaData")
        .ok()?;
    let mut values = values.into_iter();
    if values.next()?.get_string()? != "onMetaData" {
        return None;
    }
    let props = values.next()?.get_object_properties()?;
    let num = |k: &str| match props.get(k) {
        Some(Amf0Value::Number(n)) if n.is_finite() && *n >= 0.0 => Some(*n),
        _ => None,
    };
    let mut m = StreamMetadata::new();
    m.video_width = num("width").map(|n| n as u32);
    m.video_height = num("height").map(|n| n as u32);
    m.video_codec_id = num("videocodecid").map(|n| n as u32);
    m.video_frame_rate = num("framerate").map(|n| n as f32);
    m.video_bitrate_kbps = num("videodatarate").map(|n| n as u32);
    m.audio_codec_id = num("audiocodecid").map(|n| n as u32);
    m.audio_bitrate_kbps = num("audiodatarate").map(|n| n as u32);
    m.audio_sample_rate = num("audiosamplerate").map(|n| n as u32);
    m.audio_channels = num("audiochannels").map(|n| n as u32);
    m.audio_is_stereo = match props.get("stereo") {
        Some(Amf0Value::Boolean(b)) => Some(*b),
        _ => None,
    };
    m.encoder = match props.get("encoder") {
        Some(Amf0Value::Utf8String(s)) => Some(s.clone()),
        _ => None,
    };
    Some(m)
}
