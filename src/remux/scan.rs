//! Pass 1 of the remux: walks an FLV's tags reading only each tag header and the first bytes
//! of its body (codec headers; whole bodies only for sequence headers and `onMetaData`), and
//! builds the MP4 sample tables. No payload is read: the copy pass moves it later.

use std::io;
use std::os::unix::fs::FileExt;

use thiserror::Error;

use crate::flv::script::{self, Properties};
use crate::flv::tag::{FILE_HEADER_LEN, PREVIOUS_TAG_SIZE_LEN, TAG_HEADER_LEN};
use crate::flv::{
    AudioCodec, FlvError, FlvHeader, TagHeader, TagType, VideoCodec, VideoPacket, parse_audio,
    parse_video,
};
use crate::mp4::{CodecError, Movie, SampleEntry, SampleIn};

/// Bytes of each body read in pass 1: enough for any audio/video tag header (ModEx included).
const PREFIX: usize = 64;
/// Largest script tag we decode for metadata.
const MAX_SCRIPT: u32 = 1 << 20;

/// Why an FLV could not be remuxed. `Unusable` inputs go to `failed/`; I/O errors are retried.
#[derive(Debug, Error)]
pub enum ScanError {
    #[error("{0}")]
    Unusable(String),
    #[error("reading the FLV at offset {offset}: {source}")]
    Io { offset: u64, source: io::Error },
}

/// Random-access reads: a `File`, or a byte slice in tests.
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, offset)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let start = (offset as usize).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

fn read_exact_at<R: ReadAt + ?Sized>(r: &R, buf: &mut [u8], offset: u64) -> Result<(), ScanError> {
    let mut done = 0;
    while done < buf.len() {
        match r.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                return Err(ScanError::Io {
                    offset,
                    source: io::ErrorKind::UnexpectedEof.into(),
                });
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => return Err(ScanError::Io { offset, source }),
        }
    }
    Ok(())
}

/// What pass 1 learned.
#[derive(Debug, Default)]
pub struct Scan {
    pub movie: Movie,
    pub video: Option<usize>,
    pub audio: Option<usize>,
    /// The chunk's `onMetaData` (first one), if any.
    pub metadata: Option<Properties>,
    /// Offset where a torn (incomplete) last tag starts, if the file ends inside one.
    pub torn_at: Option<u64>,
    /// Offset where the tag framing broke (unknown tag type), if it did; the rest is ignored.
    pub framing_lost_at: Option<u64>,
    pub tags: u64,
    /// Frames dropped: before any sequence header, unsupported codecs, bad headers.
    pub dropped: u64,
    /// Samples whose DTS was repaired.
    pub repaired: u64,
    /// Sample description changes (new SPS/PPS, new audio config) mid-chunk.
    pub config_changes: u64,
}

/// Scans an FLV of `len` bytes.
pub fn scan<R: ReadAt + ?Sized>(r: &R, len: u64) -> Result<Scan, ScanError> {
    if len == 0 {
        return Err(ScanError::Unusable("the file is empty".into()));
    }
    let mut fixed = [0u8; FILE_HEADER_LEN];
    if len < FILE_HEADER_LEN as u64 {
        return Err(ScanError::Unusable(format!(
            "not an FLV file: only {len} bytes"
        )));
    }
    read_exact_at(r, &mut fixed, 0)?;
    if &fixed[..3] != b"FLV" {
        return Err(ScanError::Unusable(format!(
            "not an FLV file: it starts with {:02x?}, not \"FLV\"",
            &fixed[..3]
        )));
    }
    let (_header, header_size): (FlvHeader, u32) =
        FlvHeader::parse(&fixed).map_err(|e| ScanError::Unusable(e.to_string()))?;

    let mut s = Scan::default();
    let mut pos = u64::from(header_size) + PREVIOUS_TAG_SIZE_LEN as u64;
    let mut head = [0u8; TAG_HEADER_LEN + PREFIX];
    let mut body = Vec::new();
    loop {
        if pos >= len {
            break;
        }
        if pos + TAG_HEADER_LEN as u64 > len {
            s.torn_at = Some(pos);
            break;
        }
        let want = (len - pos).min(head.len() as u64) as usize;
        read_exact_at(r, &mut head[..want], pos)?;
        let hb: &[u8; TAG_HEADER_LEN] = head[..TAG_HEADER_LEN]
            .try_into()
            .map_err(|_| ScanError::Unusable("tag header".into()))?;
        let tag = match TagHeader::parse(hb) {
            Ok(t) => t,
            Err(_) if s.tags == 0 => {
                return Err(ScanError::Unusable(format!(
                    "not an FLV file: no valid tag at offset {pos}"
                )));
            }
            Err(_) => {
                s.framing_lost_at = Some(pos);
                break;
            }
        };
        let body_off = pos + TAG_HEADER_LEN as u64;
        let end = body_off + u64::from(tag.data_size) + PREVIOUS_TAG_SIZE_LEN as u64;
        if end > len {
            s.torn_at = Some(pos);
            break;
        }
        s.tags += 1;
        let have = (want - TAG_HEADER_LEN).min(tag.data_size as usize);
        let prefix = &head[TAG_HEADER_LEN..TAG_HEADER_LEN + have];
        if !tag.filtered {
            let at = TagAt {
                r,
                header: &tag,
                body_off,
                prefix,
            };
            on_tag(&at, &mut s, &mut body)?;
        } else {
            s.dropped += 1;
        }
        pos = end;
    }
    s.repaired = s.movie.summaries().iter().map(|t| t.repaired).sum();
    if s.movie.summaries().iter().all(|t| t.frames == 0) {
        let why = if s.tags == 0 {
            "no complete tag".to_string()
        } else {
            format!(
                "no decodable audio or video track ({} tags, {} frames dropped)",
                s.tags, s.dropped
            )
        };
        return Err(ScanError::Unusable(why));
    }
    Ok(s)
}

/// A tag being scanned: its header, where its body starts in the file, and the first bytes of
/// the body (enough for the codec headers; the rest is read only when needed).
struct TagAt<'a, R: ReadAt + ?Sized> {
    r: &'a R,
    header: &'a TagHeader,
    body_off: u64,
    prefix: &'a [u8],
}

impl<R: ReadAt + ?Sized> TagAt<'_, R> {
    /// The whole body, read into `buf`.
    fn body<'b>(&self, buf: &'b mut Vec<u8>) -> Result<&'b [u8], ScanError> {
        buf.clear();
        buf.resize(self.header.data_size as usize, 0);
        read_exact_at(self.r, buf, self.body_off)?;
        Ok(buf)
    }

    /// A video tag: a sequence header makes (or changes) the track's sample entry, a frame
    /// becomes a sample whose payload starts after the tag's codec header.
    fn video(&self, s: &mut Scan, buf: &mut Vec<u8>) -> Result<(), ScanError> {
        let (tag, body_off, prefix) = (self.header, self.body_off, self.prefix);
        let dts = i64::from(tag.timestamp);
        let parsed = match parse_video(prefix) {
            Err(FlvError::ShortBody { .. }) if prefix.len() < tag.data_size as usize => {
                let body = self.body(buf)?;
                parse_video(body)
                    .map(|t| (t.codec, t.keyframe, t.packet, body.len() - t.payload.len()))
            }
            other => other.map(|t| {
                (
                    t.codec,
                    t.keyframe,
                    t.packet,
                    prefix.len() - t.payload.len(),
                )
            }),
        };
        let Ok((codec, keyframe, packet, header_len)) = parsed else {
            s.dropped += 1;
            return Ok(());
        };
        match packet {
            VideoPacket::SequenceHeader => {
                let body = self.body(buf)?;
                let record = &body[header_len.min(body.len())..];
                let entry = match codec {
                    VideoCodec::Avc => SampleEntry::avc(record),
                    VideoCodec::Hevc => SampleEntry::hevc(record),
                    VideoCodec::Av1 => {
                        let (w, h) = metadata_size(s.metadata.as_ref());
                        SampleEntry::av1(record, w, h)
                    }
                    _ => {
                        s.dropped += 1;
                        return Ok(());
                    }
                };
                match entry {
                    Ok(entry) => set_entry(s, true, entry),
                    Err(e) => {
                        log::warn!(offset = body_off; "ignoring a bad video sequence header: {e}");
                        s.dropped += 1;
                    }
                }
            }
            VideoPacket::Frame { composition_time } => {
                let mut header_len = header_len;
                if codec == VideoCodec::Av1 {
                    header_len += temporal_delimiter_len(prefix.get(header_len..).unwrap_or(&[]));
                }
                let sample = SampleIn {
                    dts_ms: dts,
                    cto_ms: composition_time,
                    size: tag.data_size.saturating_sub(header_len as u32),
                    keyframe,
                    source: body_off + header_len as u64,
                };
                push_sample(s, s.video, sample);
            }
            _ => {}
        }
        Ok(())
    }

    /// An audio tag: an AAC sequence header (or, for MP3, each frame header) sets the sample
    /// entry; frames become samples.
    fn audio(&self, s: &mut Scan, buf: &mut Vec<u8>) -> Result<(), ScanError> {
        let (tag, body_off, prefix) = (self.header, self.body_off, self.prefix);
        let dts = i64::from(tag.timestamp);
        let Ok(t) = parse_audio(prefix) else {
            s.dropped += 1;
            return Ok(());
        };
        let header_len = prefix.len() - t.payload.len();
        let size = tag.data_size.saturating_sub(header_len as u32);
        match t.codec {
            AudioCodec::Aac if t.sequence_header => {
                let body = self.body(buf)?;
                match SampleEntry::aac(&body[header_len.min(body.len())..]) {
                    Ok(entry) => set_entry(s, false, entry),
                    Err(e) => {
                        log::warn!(offset = body_off; "ignoring a bad AAC sequence header: {e}");
                        s.dropped += 1;
                    }
                }
                return Ok(());
            }
            AudioCodec::Mp3 if !t.unsupported => match SampleEntry::mp3(t.payload) {
                Ok(entry) => set_entry(s, false, entry),
                Err(_) => {
                    s.dropped += 1;
                    return Ok(());
                }
            },
            AudioCodec::Aac if !t.unsupported => {}
            _ => {
                s.dropped += 1;
                return Ok(());
            }
        }
        let sample = SampleIn {
            dts_ms: dts,
            cto_ms: 0,
            size,
            keyframe: true,
            source: body_off + header_len as u64,
        };
        push_sample(s, s.audio, sample);
        Ok(())
    }
}

fn on_tag<R: ReadAt + ?Sized>(
    at: &TagAt<'_, R>,
    s: &mut Scan,
    buf: &mut Vec<u8>,
) -> Result<(), ScanError> {
    let tag = at.header;
    match tag.tag_type {
        TagType::Script => {
            if s.metadata.is_none() && tag.data_size <= MAX_SCRIPT {
                let body = at.body(buf)?;
                if let Ok(props) = script::decode_metadata(body) {
                    s.metadata = Some(props);
                }
            }
            Ok(())
        }
        TagType::Video => at.video(s, buf),
        TagType::Audio => at.audio(s, buf),
    }
}

/// Adds `sample` to `track`; an empty sample, or one before its track has a sample entry, is
/// dropped (and counted).
fn push_sample(s: &mut Scan, track: Option<usize>, sample: SampleIn) {
    match track {
        Some(track) if sample.size > 0 => {
            s.movie.push(track, sample);
        }
        _ => s.dropped += 1,
    }
}

/// Length of a leading AV1 temporal delimiter OBU, which MP4 samples leave out (AV1 in
/// ISOBMFF, section 2.4); 0 if the frame does not start with one.
fn temporal_delimiter_len(obus: &[u8]) -> usize {
    const OBU_TEMPORAL_DELIMITER: u8 = 2;
    let Some(&header) = obus.first() else {
        return 0;
    };
    let has_extension = header & 0x04 != 0;
    let has_size = header & 0x02 != 0;
    if (header >> 3) & 0x0f != OBU_TEMPORAL_DELIMITER || !has_size {
        return 0;
    }
    let mut at = 1 + usize::from(has_extension);
    // leb128 obu_size; a temporal delimiter has no payload, so it is 0.
    match obus.get(at) {
        Some(0) => {
            at += 1;
            at
        }
        _ => 0,
    }
}

/// Makes `entry` current for the video or audio track, creating the track on first use.
fn set_entry(s: &mut Scan, video: bool, entry: SampleEntry) {
    let slot = if video { s.video } else { s.audio };
    match slot {
        None => {
            let track = s.movie.add_track(entry);
            if video {
                s.video = Some(track);
            } else {
                s.audio = Some(track);
            }
        }
        Some(track) => {
            if s.movie.set_entry(track, entry) {
                s.config_changes += 1;
            }
        }
    }
}

fn metadata_size(meta: Option<&Properties>) -> (u16, u16) {
    let get = |k: &str| {
        meta.and_then(|m| script::get(m, k))
            .and_then(|v| v.as_f64())
            .filter(|v| *v >= 0.0 && *v <= 65535.0)
            .map_or(0, |v| v as u16)
    };
    (get("width"), get("height"))
}

impl From<CodecError> for ScanError {
    fn from(e: CodecError) -> ScanError {
        ScanError::Unusable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flv::FlvWriter;

    /// An FLV with an AAC config and `frames` AAC frames (after one AVC frame that has no
    /// sequence header yet).
    fn flv(frames: u32) -> Vec<u8> {
        let mut w = FlvWriter::new(Vec::new(), true, true).unwrap();
        w.write_tag(TagType::Video, 0, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65])
            .unwrap();
        w.write_tag(TagType::Audio, 0, &[0xAF, 0, 0x11, 0x90])
            .unwrap();
        for i in 0..frames {
            w.write_tag(
                TagType::Audio,
                i * 21,
                &[0xAF, 1, 0x21, 0x10, 0x05, i as u8],
            )
            .unwrap();
        }
        w.into_inner()
    }

    #[test]
    fn frames_become_samples_after_their_codec_header() {
        let data = flv(3);
        let s = scan(data.as_slice(), data.len() as u64).unwrap();
        assert_eq!(s.audio, Some(0));
        assert_eq!(s.video, None);
        assert_eq!(s.dropped, 1, "the AVC frame before any sequence header");
        let t = &s.movie.summaries()[0];
        assert_eq!((t.frames, t.codec.as_str()), (3, "mp4a.40.2"));
        let layout = s.movie.layout(0).unwrap();
        // Each payload starts after the 2-byte AAC header: 4 bytes per frame.
        assert!(layout.ranges.iter().all(|r| r.1 == 4));
        assert_eq!(
            &data[layout.ranges[2].0 as usize..][..4],
            &[0x21, 0x10, 0x05, 2]
        );
        assert_eq!((s.torn_at, s.framing_lost_at), (None, None));
    }

    #[test]
    fn a_torn_tail_and_lost_framing_stop_the_scan_cleanly() {
        let data = flv(3);
        let torn = &data[..data.len() - 3];
        let s = scan(torn, torn.len() as u64).unwrap();
        assert_eq!(s.movie.summaries()[0].frames, 2);
        assert!(s.torn_at.is_some());

        let mut broken = flv(3);
        let at = broken.len();
        broken.extend_from_slice(&[0x07; 20]);
        let s = scan(broken.as_slice(), broken.len() as u64).unwrap();
        assert_eq!(s.movie.summaries()[0].frames, 3);
        assert_eq!(s.framing_lost_at, Some(at as u64));
    }

    #[test]
    fn unusable_inputs_say_why() {
        let why = |d: &[u8]| match scan(d, d.len() as u64) {
            Err(ScanError::Unusable(w)) => w,
            other => panic!("{other:?}"),
        };
        assert!(why(b"").contains("empty"));
        assert!(why(b"GIF89a.........").contains("not an FLV"));
        let header_only = &flv(0)[..13];
        assert!(why(header_only).contains("no complete tag"));
        assert!(why(&flv(0)).contains("no decodable"));
    }
}
