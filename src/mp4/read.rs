//! Reading a chunk back: the head of a faststart MP4 as this crate writes it (`ftyp`, `moov`,
//! then `mdat`) into per-track sample tables on the chunk's own timeline, with the file offset
//! of every sample. What a clip is cut from: the head alone says which byte ranges hold the
//! samples wanted, so a chunk in S3 is read with ranged GETs and never downloaded whole.
//!
//! Times come back in the FLV's milliseconds: `remux` stores every DTS as whole ticks of the
//! source millisecond, and the edit list (`boxes::Edit`) says where each track starts on the
//! movie timeline, so both convert back exactly.

use mp4_atom::{Atom, Codec, Decode, Encode, Hev1, Hvc1, Moov, StszSamples, Trak, Visual};
use thiserror::Error;

use super::codec::{CodecError, SampleEntry, VideoConfig};

#[derive(Debug, Error)]
pub enum ReadError {
    #[error("not an MP4 head: {0}")]
    Layout(String),
    #[error("decoding the moov: {0}")]
    Moov(mp4_atom::Error),
    #[error("track {track}: {why}")]
    Track { track: u32, why: String },
    #[error("track {track}: {source}")]
    Codec { track: u32, source: CodecError },
}

/// How much of a file the head needs, read from its first bytes (box headers only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadExtent {
    /// The head is `prefix[..n]`; the `mdat` box starts at `n`.
    Complete(usize),
    /// The next box header to look at lies within the first `n` bytes: read that many.
    Need(usize),
}

pub fn head_extent(prefix: &[u8]) -> Result<HeadExtent, ReadError> {
    let mut at = 0usize;
    loop {
        let Some(header) = prefix.get(at..at + 8) else {
            return Ok(HeadExtent::Need(at + 8));
        };
        let size = u32::from_be_bytes(header[..4].try_into().unwrap());
        match &header[4..8] {
            b"mdat" => return Ok(HeadExtent::Complete(at)),
            _ if size < 8 => {
                return Err(ReadError::Layout(format!(
                    "box at byte {at} has size {size}; the head ends with mdat"
                )));
            }
            _ => at += size as usize,
        }
    }
}

/// `Some(n)` once the box headers in `prefix` reach the `mdat` (the head is `prefix[..n]`),
/// `None` if more bytes are needed to tell.
pub fn head_len(prefix: &[u8]) -> Result<Option<usize>, ReadError> {
    Ok(match head_extent(prefix)? {
        HeadExtent::Complete(n) => Some(n),
        HeadExtent::Need(_) => None,
    })
}

/// One sample as stored, on the chunk's movie timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredSample {
    pub dts_ms: i64,
    pub cto_ms: i32,
    pub size: u32,
    /// Byte offset of the payload in the file.
    pub offset: u64,
    pub keyframe: bool,
    /// Index into the track's sample entries.
    pub entry: u16,
}

#[derive(Debug, Clone)]
pub struct StoredTrack {
    pub entries: Vec<SampleEntry>,
    /// In decode order.
    pub samples: Vec<StoredSample>,
}

impl StoredTrack {
    pub fn video(&self) -> bool {
        self.entries[0].is_video()
    }
}

/// A chunk's sample tables, one per track.
#[derive(Debug, Clone)]
pub struct StoredMovie {
    pub tracks: Vec<StoredTrack>,
}

/// Parses `head` (at least everything before the `mdat`; see [`head_len`]).
pub fn parse(head: &[u8]) -> Result<StoredMovie, ReadError> {
    let end = head_len(head)?.ok_or_else(|| ReadError::Layout("no mdat after the head".into()))?;
    let mut at = 0usize;
    let mut moov = None;
    while at < end {
        let size = u32::from_be_bytes(head[at..at + 4].try_into().unwrap()) as usize;
        if &head[at + 4..at + 8] == Moov::KIND.as_ref() {
            let mut body = &head[at..at + size];
            moov = Some(Moov::decode(&mut body).map_err(ReadError::Moov)?);
        }
        at += size;
    }
    let moov = moov.ok_or_else(|| ReadError::Layout("no moov before the mdat".into()))?;
    let tracks = moov.trak.iter().map(track).collect::<Result<Vec<_>, _>>()?;
    Ok(StoredMovie { tracks })
}

fn track(t: &Trak) -> Result<StoredTrack, ReadError> {
    let id = t.tkhd.track_id;
    let bad = |why: &str| ReadError::Track {
        track: id,
        why: why.to_string(),
    };
    let timescale = t.mdia.mdhd.timescale;
    if timescale == 0 {
        return Err(bad("timescale 0"));
    }
    let stbl = &t.mdia.minf.stbl;
    let entries = stbl
        .stsd
        .codecs
        .iter()
        .map(|c| {
            entry(
                c,
                timescale,
                stbl.stts.entries.first().map(|e| e.sample_delta),
            )
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| ReadError::Codec { track: id, source })?;
    if entries.is_empty() {
        return Err(bad("no sample description"));
    }

    let sizes: Vec<u32> = match &stbl.stsz.samples {
        StszSamples::Identical { count, size } => vec![*size; *count as usize],
        StszSamples::Different { sizes } => sizes.clone(),
    };
    let n = sizes.len();
    let mut dts = Vec::with_capacity(n);
    let mut t_ticks = 0i64;
    for e in &stbl.stts.entries {
        for _ in 0..e.sample_count {
            dts.push(t_ticks);
            t_ticks += i64::from(e.sample_delta);
        }
    }
    let mut cto = Vec::with_capacity(n);
    if let Some(ctts) = &stbl.ctts {
        for e in &ctts.entries {
            cto.extend(std::iter::repeat_n(
                e.sample_offset,
                e.sample_count as usize,
            ));
        }
    } else {
        cto.resize(n, 0);
    }
    if dts.len() != n || cto.len() != n {
        return Err(bad(&format!(
            "tables disagree: {n} sizes, {} decode times, {} composition offsets",
            dts.len(),
            cto.len()
        )));
    }
    let keyframe: Vec<bool> = match &stbl.stss {
        None => vec![true; n],
        Some(stss) => {
            let mut k = vec![false; n];
            for &s in &stss.entries {
                *k.get_mut(s as usize - 1)
                    .ok_or_else(|| bad("sync sample out of range"))? = true;
            }
            k
        }
    };
    let chunk_offsets: Vec<u64> = match (&stbl.stco, &stbl.co64) {
        (Some(stco), _) => stco.entries.iter().map(|&o| u64::from(o)).collect(),
        (None, Some(co64)) => co64.entries.clone(),
        (None, None) => return Err(bad("no chunk offsets")),
    };

    // Where the media starts on the movie timeline: the empty edit minus the media time it
    // enters at (see `boxes::Edit`), in ms.
    let ms = |ticks: i64| {
        (ticks * 1000 + ticks.signum() * i64::from(timescale) / 2) / i64::from(timescale)
    };
    let origin_ms = match t.edts.as_ref().and_then(|e| e.elst.as_ref()) {
        None => 0,
        Some(elst) => {
            let empty: u64 = elst
                .entries
                .iter()
                .take_while(|e| e.media_time.is_none())
                .map(|e| e.segment_duration)
                .sum();
            let media_time = elst.entries.iter().find_map(|e| e.media_time).unwrap_or(0);
            // The movie timescale is milliseconds (`boxes::MOVIE_TIMESCALE`).
            empty as i64 - ms(media_time as i64)
        }
    };

    let mut samples = Vec::with_capacity(n);
    let mut next = 0usize;
    let stsc = &stbl.stsc.entries;
    for (ci, &chunk_offset) in chunk_offsets.iter().enumerate() {
        let chunk_no = ci as u32 + 1;
        let Some(run) = stsc.iter().rev().find(|e| e.first_chunk <= chunk_no) else {
            return Err(bad("stsc does not cover chunk 1"));
        };
        let entry =
            run.sample_description_index
                .checked_sub(1)
                .filter(|&i| (i as usize) < entries.len())
                .ok_or_else(|| bad("sample description index out of range"))? as u16;
        let mut offset = chunk_offset;
        for _ in 0..run.samples_per_chunk {
            let i = next;
            if i >= n {
                return Err(bad("chunks hold more samples than the tables"));
            }
            samples.push(StoredSample {
                dts_ms: origin_ms + ms(dts[i]),
                cto_ms: ms(cto[i]) as i32,
                size: sizes[i],
                offset,
                keyframe: keyframe[i],
                entry,
            });
            offset += u64::from(sizes[i]);
            next += 1;
        }
    }
    if next != n {
        return Err(bad(&format!("chunks hold {next} of {n} samples")));
    }
    Ok(StoredTrack { entries, samples })
}

fn video(config: VideoConfig, visual: &Visual) -> SampleEntry {
    SampleEntry::Video {
        config,
        width: visual.width,
        height: visual.height,
    }
}

/// The sample entry behind an `stsd` codec box; `first_delta` (the first sample's duration in
/// ticks) tells MP3's samples per frame.
fn entry(c: &Codec, timescale: u32, first_delta: Option<u32>) -> Result<SampleEntry, CodecError> {
    Ok(match c {
        Codec::Avc1(a) => video(VideoConfig::Avc(a.avcc.clone()), &a.visual),
        // hev1 differs from hvc1 only in allowing parameter sets in the samples too.
        Codec::Hvc1(Hvc1 { hvcc, visual, .. }) | Codec::Hev1(Hev1 { hvcc, visual, .. }) => {
            video(VideoConfig::Hevc(hvcc.clone()), visual)
        }
        Codec::Av01(a) => video(VideoConfig::Av1(a.av1c.clone()), &a.visual),
        Codec::Mp4a(m) => {
            let dc = &m.esds.es_desc.dec_config;
            match (dc.object_type_indication, &dc.dec_specific) {
                (0x40, Some(specific)) => SampleEntry::aac(&specific.raw)?,
                (0x6B | 0x69, _) => SampleEntry::Mp3 {
                    sample_rate: timescale,
                    channels: m.audio.channel_count,
                    samples_per_frame: first_delta.unwrap_or(1152),
                },
                _ => {
                    return Err(CodecError::Unsupported(format!(
                        "mp4a with object type 0x{:02x}",
                        dc.object_type_indication
                    )));
                }
            }
        }
        other => {
            // The box's own four-character code names it.
            let mut raw = Vec::new();
            let kind = match other.encode(&mut raw) {
                Ok(()) if raw.len() >= 8 => String::from_utf8_lossy(&raw[4..8]).into_owned(),
                _ => "an unknown sample entry".to_string(),
            };
            return Err(CodecError::Unsupported(format!("sample entry {kind}")));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{SPS_720P, aac, avc, sample, two_configurations};
    use super::super::{Movie, SampleIn};
    use super::*;

    /// Video with B-frames from `video_ms`, audio from `audio_ms`, interleaved in the source;
    /// the source is laid out back to back from offset 0, so the mdat is the source.
    fn movie(video_ms: i64, audio_ms: i64) -> (Movie, Vec<(usize, SampleIn)>) {
        let mut m = Movie::new();
        let v = m.add_track(avc(&SPS_720P));
        let a = m.add_track(aac());
        let mut pushed = Vec::new();
        let mut src = 0u64;
        for i in 0..40i64 {
            let cto = if i % 3 == 0 { 67 } else { 33 };
            let s = sample(video_ms + i * 33, cto, 100 + i as u32, src, i % 20 == 0);
            src += u64::from(s.size);
            m.push(v, s);
            pushed.push((v, s));
            let s = sample(audio_ms + i * 21, 0, 10 + (i as u32 % 3), src, true);
            src += u64::from(s.size);
            m.push(a, s);
            pushed.push((a, s));
        }
        (m, pushed)
    }

    #[test]
    fn a_written_head_reads_back_as_the_samples_pushed() {
        for (video_ms, audio_ms) in [(0, 0), (700, 0), (0, 400), (1_000, 1_010)] {
            let (m, pushed) = movie(video_ms, audio_ms);
            let layout = m.layout(0).unwrap();
            let head_end = layout.head.len() as u64;
            let mut file = layout.head.clone();
            file.extend_from_slice(&[0u8; 64]);
            assert_eq!(head_len(&file).unwrap(), Some(layout.head.len() - 8));

            let read = parse(&file).unwrap();
            assert_eq!(read.tracks.len(), 2);
            assert!(read.tracks[0].video() && !read.tracks[1].video());
            // The movie starts at the earlier first DTS; times read back relative to it.
            let origin = video_ms.min(audio_ms);
            for (track, stored) in read.tracks.iter().enumerate() {
                let want: Vec<StoredSample> = pushed
                    .iter()
                    .filter(|(t, _)| *t == track)
                    .map(|(_, s)| StoredSample {
                        dts_ms: s.dts_ms - origin,
                        cto_ms: s.cto_ms,
                        size: s.size,
                        // The mdat keeps the source order, right behind the head.
                        offset: head_end + s.source,
                        keyframe: s.keyframe,
                        entry: 0,
                    })
                    .collect();
                assert_eq!(stored.samples, want, "track {track}, {video_ms}/{audio_ms}");
            }
            assert_eq!(read.tracks[0].entries, vec![avc(&SPS_720P)]);
            assert_eq!(read.tracks[1].entries, vec![aac()]);
        }
    }

    #[test]
    fn a_second_configuration_reads_back_per_sample() {
        let (m, other) = two_configurations();
        let read = parse(&m.layout(0).unwrap().head).unwrap();
        let t = &read.tracks[0];
        assert_eq!(t.entries, vec![avc(&SPS_720P), other]);
        let entries: Vec<u16> = t.samples.iter().map(|s| s.entry).collect();
        assert_eq!(entries, vec![0, 0, 1, 1]);
    }

    #[test]
    fn a_prefix_too_short_asks_for_more_and_garbage_is_an_error() {
        let (m, _) = movie(0, 0);
        let head = m.layout(0).unwrap().head;
        assert_eq!(head_len(&head[..20]).unwrap(), None);
        // The ftyp's header tells where the moov's is; the moov's where the mdat's is.
        let ftyp = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        assert_eq!(
            head_extent(&head[..20]).unwrap(),
            HeadExtent::Need(ftyp + 8)
        );
        let moov = u32::from_be_bytes(head[ftyp..ftyp + 4].try_into().unwrap()) as usize;
        assert_eq!(
            head_extent(&head[..ftyp + 8]).unwrap(),
            HeadExtent::Need(ftyp + moov + 8)
        );
        assert_eq!(
            head_extent(&head[..ftyp + moov + 8]).unwrap(),
            HeadExtent::Complete(ftyp + moov)
        );
        assert!(head_len(&[0, 0, 0, 3, b'f', b't', b'y', b'p']).is_err());
        let mut broken = head.clone();
        // Cut the moov short: its decoder must refuse it, not panic.
        let moov_at = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        broken.truncate(moov_at + 200);
        broken.extend_from_slice(&[0, 0, 0, 8, b'm', b'd', b'a', b't']);
        assert!(parse(&broken).is_err());
    }
}
