//! The sample-table builder and faststart layout. Samples come in (per track: millisecond DTS,
//! composition offset, size, keyframe, where the payload lies in the source file); out comes the
//! file head (`ftyp`, `moov`, the `mdat` header) and the list of source byte ranges whose
//! concatenation is the `mdat` body. No payload is ever held: the caller copies the ranges.
//!
//! The `mdat` keeps the source order of samples, so the copy is one sequential pass over the
//! source; each run of consecutive samples of one track (and one sample entry) is an MP4 chunk.
//!
//! Timing: video runs at 90 kHz (every millisecond is whole ticks), audio at its sample rate;
//! each sample's DTS is its source millisecond converted to ticks (not accumulated durations),
//! so a demuxer reads back exactly the FLV's DTS and PTS (PTS = DTS + composition offset, as
//! `ctts`). The movie starts at the earliest first DTS of all tracks (normally 0; otherwise
//! everything moves by that one constant). Each track's edit list says where its first frame
//! is presented: an empty edit up to its first PTS, then the media from that frame's
//! composition time (`boxes::Edit`), so the A/V relation every demuxer reads is the FLV's.

use mp4_atom::Encode;

use super::boxes;
use super::codec::SampleEntry;
use super::error::MovieError;
use super::track::{Sample, Track, Window, source_order};

/// A DTS more than this ahead of its predecessor is a discontinuity: the rest of the track's
/// timeline is stitched on so the sample follows its predecessor by one typical interval.
pub const MAX_DTS_GAP_MS: i64 = 30_000;
/// A DTS this far behind its predecessor is a timestamp reset (a discontinuity, handled as
/// above); less is jitter, and only that one sample moves.
pub const MAX_DTS_STEP_BACK_MS: i64 = 500;

/// One input sample of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleIn {
    /// Decode time in milliseconds (the FLV tag timestamp).
    pub dts_ms: i64,
    /// Presentation minus decode time in milliseconds (the FLV composition time).
    pub cto_ms: i32,
    pub size: u32,
    pub keyframe: bool,
    /// Where the payload starts in the source file.
    pub source: u64,
}

/// What a track looked like, for logs and the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackSummary {
    pub video: bool,
    pub codec: String,
    pub frames: u64,
    /// First DTS to the end of the last sample.
    pub duration_ms: u64,
    pub first_dts_ms: i64,
    pub entries: usize,
    /// Samples whose DTS had to be repaired (backwards or jumping).
    pub repaired: u64,
    pub width: Option<u16>,
    pub height: Option<u16>,
    pub sample_rate: Option<u32>,
    pub channels: Option<u16>,
    /// The first sample is a sync sample (decodable without earlier ones).
    pub starts_with_keyframe: bool,
}

/// Builds one movie from samples pushed in source order.
#[derive(Debug, Default)]
pub struct Movie {
    tracks: Vec<Track>,
    window: Option<Window>,
}

/// The file head and the copy plan for the `mdat` body.
#[derive(Debug)]
pub struct Layout {
    /// `ftyp`, `moov` and the `mdat` box header.
    pub head: Vec<u8>,
    /// Source ranges (offset, length) in `mdat` order.
    pub ranges: Vec<(u64, u32)>,
    /// Total bytes of the file.
    pub file_size: u64,
}

impl Movie {
    pub fn new() -> Movie {
        Movie::default()
    }

    /// Adds a track whose first sample entry is `entry`; returns its index.
    pub fn add_track(&mut self, entry: SampleEntry) -> usize {
        self.tracks.push(Track {
            entries: vec![entry],
            current: 0,
            samples: Vec::new(),
            shift: 0,
            repaired: 0,
            gap_pending: false,
        });
        self.tracks.len() - 1
    }

    /// Shows only `window` of the timeline; the movie's time 0 is `window.from_ms`.
    pub fn show_only(&mut self, window: Window) {
        self.window = Some(window);
    }

    /// The next sample pushed to `track` follows a gap (a clip bridging a missing chunk or a
    /// reconnect): its DTS is kept however far it jumps, so it and what follows stay at their
    /// place on the timeline; the sample before it lasts until it (in `stts`).
    pub fn gap_before_next(&mut self, track: usize) {
        self.tracks[track].gap_pending = true;
    }

    pub fn track_count(&self) -> usize {
        self.tracks.len()
    }

    /// A new codec configuration for `track`: samples pushed from now on use it. An identical
    /// configuration (a repeated sequence header) changes nothing; a different one becomes a
    /// second `stsd` entry. Returns true when the entry differs from the current one.
    pub fn set_entry(&mut self, track: usize, entry: SampleEntry) -> bool {
        let t = &mut self.tracks[track];
        if t.entries[usize::from(t.current)] == entry {
            return false;
        }
        if let Some(i) = t.entries.iter().position(|e| *e == entry) {
            t.current = i as u16;
        } else {
            t.entries.push(entry);
            t.current = (t.entries.len() - 1) as u16;
        }
        // A track with no samples yet simply starts with the newer configuration.
        if t.samples.is_empty() {
            let keep = t.entries[usize::from(t.current)].clone();
            t.entries = vec![keep];
            t.current = 0;
        }
        true
    }

    /// Appends a sample to `track`. A DTS that does not move forward, or jumps ahead by more
    /// than [`MAX_DTS_GAP_MS`], is repaired (see [`TrackSummary::repaired`]); returns true if so.
    pub fn push(&mut self, track: usize, s: SampleIn) -> bool {
        let typical = self.tracks[track].typical_interval_ms();
        let t = &mut self.tracks[track];
        let mut dts = s.dts_ms + t.shift;
        let mut repaired = false;
        let after_gap = std::mem::take(&mut t.gap_pending);
        // A declared gap (a bridged clip) keeps its DTS however far it jumps ahead.
        let prev = t.samples.last().filter(|p| !(after_gap && dts > p.dts_ms));
        if let Some(prev) = prev {
            let gap = dts - prev.dts_ms;
            if gap <= -MAX_DTS_STEP_BACK_MS || gap > MAX_DTS_GAP_MS {
                // A discontinuity: stitch the rest of the track on.
                let target = prev.dts_ms + typical;
                t.shift += target - dts;
                dts = target;
                t.repaired += 1;
                repaired = true;
            } else if gap <= 0 {
                // Jitter (two frames with one timestamp, a frame a little early): nudge this
                // one sample just past its predecessor and leave the timeline alone.
                dts = prev.dts_ms + 1;
                t.repaired += 1;
                repaired = true;
            }
        }
        t.samples.push(Sample {
            dts_ms: dts,
            cto_ms: s.cto_ms,
            size: s.size,
            source: s.source,
            entry: t.current,
            keyframe: s.keyframe,
        });
        repaired
    }

    pub fn summaries(&self) -> Vec<TrackSummary> {
        self.tracks
            .iter()
            .map(|t| {
                let first = &t.entries[0];
                TrackSummary {
                    video: t.video(),
                    codec: first.codec_string(),
                    frames: t.samples.len() as u64,
                    duration_ms: t.media_ticks() * 1000 / u64::from(t.timescale()),
                    first_dts_ms: t.samples.first().map_or(0, |s| s.dts_ms),
                    entries: t.entries.len(),
                    repaired: t.repaired,
                    width: first.dimensions().map(|d| d.0),
                    height: first.dimensions().map(|d| d.1),
                    sample_rate: first.sample_rate(),
                    channels: first.channels(),
                    starts_with_keyframe: t.samples.first().is_none_or(|s| s.keyframe),
                }
            })
            .collect()
    }

    /// Lays the movie out: tracks without samples are dropped; `creation_time` is seconds
    /// since 1904 (MP4 epoch), 0 if unknown.
    pub fn layout(&self, creation_time: u64) -> Result<Layout, MovieError> {
        let tracks: Vec<&Track> = self
            .tracks
            .iter()
            .filter(|t| !t.samples.is_empty())
            .collect();
        if tracks.is_empty() {
            return Err(MovieError::Empty);
        }
        let ranges: Vec<(u64, u32)> = source_order(&tracks)
            .map(|(_, s)| (s.source, s.size))
            .collect();
        let mdat_body: u64 = ranges.iter().map(|r| u64::from(r.1)).sum();
        let mdat_header: u64 = if mdat_body + 8 > u64::from(u32::MAX) {
            16
        } else {
            8
        };

        let ftyp = encode(&boxes::ftyp(&tracks), "ftyp")?;
        // The chunk offsets depend on the moov's own size, which depends only on whether
        // offsets need 64 bits: lay out once with zero base, then with the real one.
        let mut wide = false;
        loop {
            let probe = encode(
                &boxes::moov(&tracks, self.window, 0, wide, creation_time)?,
                "moov",
            )?;
            let base = ftyp.len() as u64 + probe.len() as u64 + mdat_header;
            if !wide && base + mdat_body > u64::from(u32::MAX) {
                wide = true;
                continue;
            }
            let moov = encode(
                &boxes::moov(&tracks, self.window, base, wide, creation_time)?,
                "moov",
            )?;
            debug_assert_eq!(moov.len(), probe.len());
            let mut head = ftyp;
            head.extend_from_slice(&moov);
            if mdat_header == 16 {
                head.extend_from_slice(&1u32.to_be_bytes());
                head.extend_from_slice(b"mdat");
                head.extend_from_slice(&(mdat_body + 16).to_be_bytes());
            } else {
                head.extend_from_slice(&((mdat_body + 8) as u32).to_be_bytes());
                head.extend_from_slice(b"mdat");
            }
            let file_size = head.len() as u64 + mdat_body;
            return Ok(Layout {
                head,
                ranges,
                file_size,
            });
        }
    }
}

fn encode<T: Encode>(atom: &T, what: &'static str) -> Result<Vec<u8>, MovieError> {
    let mut out = Vec::new();
    atom.encode(&mut out)
        .map_err(|source| MovieError::Encode { what, source })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{SPS_720P, aac, avc, sample as frame, two_configurations};
    use super::*;
    use mp4_atom::{Decode, Moov};

    fn parse(layout: &Layout) -> (Moov, usize) {
        let head = &layout.head;
        let ftyp_len = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
        assert_eq!(&head[4..8], b"ftyp");
        assert_eq!(&head[ftyp_len + 4..ftyp_len + 8], b"moov");
        let mut rest = &head[ftyp_len..];
        let moov = Moov::decode(&mut rest).unwrap();
        (moov, head.len())
    }

    #[test]
    fn interleaved_tracks_get_chunks_offsets_and_an_edit_for_the_late_track() {
        let mut m = Movie::new();
        let v = m.add_track(avc(&SPS_720P));
        let a = m.add_track(aac());
        let mut src = 1000u64;
        for i in 0..10i64 {
            m.push(
                v,
                frame(i * 33, if i % 2 == 1 { 66 } else { 0 }, 100, src, i == 0),
            );
            src += 120;
            m.push(a, frame(46 + i * 21, 0, 10, src, true));
            src += 30;
            m.push(a, frame(46 + i * 21 + 10, 0, 10, src, true));
            src += 30;
        }
        let layout = m.layout(0).unwrap();
        let (moov, head_len) = parse(&layout);
        assert_eq!(moov.trak.len(), 2);
        let vt = &moov.trak[0];
        let at = &moov.trak[1];
        assert_eq!(vt.mdia.mdhd.timescale, 90_000);
        assert_eq!(at.mdia.mdhd.timescale, 48_000);
        assert_eq!(
            (vt.tkhd.width.integer(), vt.tkhd.height.integer()),
            (1280, 720)
        );
        // Video starts the movie and its first frame presents at once: no edit. Audio starts
        // 46 ms later: an empty edit, then its media from the start.
        assert!(vt.edts.is_none());
        assert_eq!(
            edits(at),
            vec![(46, None), (at.tkhd.duration - 46, Some(0))]
        );
        // Signed composition offsets (only where B-frames are): 66 ms in 90 kHz.
        let ctts = vt.mdia.minf.stbl.ctts.as_ref().unwrap();
        assert!(ctts.entries.iter().any(|e| e.sample_offset == 66 * 90));
        // Sync samples: only the first video frame.
        assert_eq!(vt.mdia.minf.stbl.stss.as_ref().unwrap().entries, vec![1]);
        // One chunk per run: 10 video chunks of 1, 10 audio chunks of 2; offsets in mdat.
        let vco = &vt.mdia.minf.stbl.stco.as_ref().unwrap().entries;
        let aco = &at.mdia.minf.stbl.stco.as_ref().unwrap().entries;
        assert_eq!((vco.len(), aco.len()), (10, 10));
        assert_eq!(vco[0] as usize, head_len);
        assert_eq!(aco[0] as usize, head_len + 100);
        assert_eq!(vco[1] as usize, head_len + 120);
        assert_eq!(at.mdia.minf.stbl.stsc.entries[0].samples_per_chunk, 2);
        // The copy plan is the source order.
        assert_eq!(layout.ranges[0], (1000, 100));
        assert_eq!(layout.ranges[1], (1120, 10));
        assert_eq!(layout.ranges.len(), 30);
        assert_eq!(layout.file_size, head_len as u64 + 10 * 100 + 20 * 10);
    }

    /// (segment duration in ms, media time in track ticks) of each edit.
    fn edits(t: &mp4_atom::Trak) -> Vec<(u64, Option<u64>)> {
        let Some(edts) = &t.edts else {
            return Vec::new();
        };
        edts.elst
            .as_ref()
            .unwrap()
            .entries
            .iter()
            .map(|e| (e.segment_duration, e.media_time))
            .collect()
    }

    /// A B-frame video track (first composition offset 67 ms) and an audio track starting at
    /// `audio_ms`, video at `video_ms`.
    fn av_movie(video_ms: i64, audio_ms: i64, first_cto: i32) -> Moov {
        let mut m = Movie::new();
        let v = m.add_track(avc(&SPS_720P));
        let a = m.add_track(aac());
        let mut src = 0u64;
        for i in 0..30i64 {
            let cto = if i == 0 { first_cto } else { 33 };
            m.push(v, frame(video_ms + i * 33, cto, 100, src, i == 0));
            src += 100;
            m.push(a, frame(audio_ms + i * 21, 0, 10, src, true));
            src += 10;
        }
        parse(&m.layout(0).unwrap()).0
    }

    #[test]
    fn a_late_b_frame_track_is_delayed_to_its_first_presentation_time() {
        // Audio first, video 700 ms later with its first frame shown 67 ms after its decode
        // time: the empty edit lasts until 767 ms and the media is entered at 67 ms.
        let moov = av_movie(700, 0, 67);
        let (vt, at) = (&moov.trak[0], &moov.trak[1]);
        let shown = vt.tkhd.duration - 767;
        assert_eq!(edits(vt), vec![(767, None), (shown, Some(67 * 90))]);
        assert!(at.edts.is_none());
        // The media edit runs from the first presented frame to the end of the last one
        // presented, which (composition offset 33 ms) is 33 ms past the decode span.
        let media_ms = vt.mdia.mdhd.duration * 1000 / 90_000;
        assert_eq!(shown, media_ms + 33 - 67);
        assert_eq!(moov.mvhd.duration, vt.tkhd.duration.max(at.tkhd.duration));
    }

    #[test]
    fn a_b_frame_track_that_starts_the_movie_enters_its_media_at_the_first_pts() {
        let moov = av_movie(0, 0, 67);
        let vt = &moov.trak[0];
        assert_eq!(
            edits(vt),
            vec![(67, None), (vt.tkhd.duration - 67, Some(67 * 90))]
        );
        assert!(moov.trak[1].edts.is_none());
    }

    #[test]
    fn a_negative_first_composition_offset_enters_the_media_at_its_start() {
        // `media_time` cannot be negative: the track shows from its first decode time.
        let moov = av_movie(10, 0, -30);
        let vt = &moov.trak[0];
        assert_eq!(
            edits(vt),
            vec![(10, None), (vt.tkhd.duration - 10, Some(0))]
        );
    }

    #[test]
    fn a_repeated_configuration_changes_nothing() {
        let mut m = Movie::new();
        let v = m.add_track(avc(&SPS_720P));
        m.push(v, frame(0, 0, 10, 0, true));
        assert!(!m.set_entry(v, avc(&SPS_720P)));
        assert_eq!(m.summaries()[0].entries, 1);
    }

    #[test]
    fn a_new_configuration_mid_track_is_a_second_sample_description() {
        let (m, _) = two_configurations();
        let (moov, _) = parse(&m.layout(0).unwrap());
        let stbl = &moov.trak[0].mdia.minf.stbl;
        assert_eq!(stbl.stsd.codecs.len(), 2);
        let idx: Vec<(u32, u32)> = stbl
            .stsc
            .entries
            .iter()
            .map(|e| (e.first_chunk, e.sample_description_index))
            .collect();
        assert_eq!(idx, vec![(1, 1), (2, 2)]);
        assert_eq!(m.summaries()[0].entries, 2);
    }

    #[test]
    fn timestamps_going_back_or_jumping_are_stitched() {
        let mut m = Movie::new();
        let v = m.add_track(avc(&SPS_720P));
        let mut repaired = 0;
        // A reset by a minute, a jump by an hour, then jitter (a repeated timestamp).
        let dts = [
            60_000, 60_033, 60_066, 10, 43, 3_600_076, 3_600_109, 3_600_109, 3_600_142,
        ];
        for (i, dts) in dts.iter().enumerate() {
            if m.push(v, frame(*dts, 0, 1, i as u64, i == 0)) {
                repaired += 1;
            }
        }
        assert_eq!(repaired, 3);
        let s = &m.summaries()[0];
        assert_eq!(s.repaired, 3);
        assert_eq!(s.frames, 9);
        // Stitched: 60000, +33 ... 60198; the repeated one nudged to 60199, the next on time.
        assert_eq!(s.first_dts_ms, 60_000);
        // The last frame lasts as long as the interval before it (32 ms).
        assert_eq!(s.duration_ms, 60_231 + 32 - 60_000);
        let (moov, _) = parse(&m.layout(0).unwrap());
        let stts: Vec<(u32, u32)> = moov.trak[0]
            .mdia
            .minf
            .stbl
            .stts
            .entries
            .iter()
            .map(|e| (e.sample_count, e.sample_delta / 90))
            .collect();
        assert_eq!(stts, vec![(6, 33), (1, 1), (2, 32)]);
    }

    #[test]
    fn past_4_gib_offsets_are_64_bit_and_mdat_uses_a_large_size() {
        let mut m = Movie::new();
        let v = m.add_track(avc(&SPS_720P));
        let a = m.add_track(aac());
        let big = 1u32 << 30;
        let mut src = 0u64;
        for i in 0..5i64 {
            m.push(v, frame(i * 33, 0, big, src, i == 0));
            src += u64::from(big) + 20;
            m.push(a, frame(i * 33, 0, 100, src, true));
            src += 120;
        }
        let layout = m.layout(0).unwrap();
        let (moov, head_len) = parse(&layout);
        let stbl = &moov.trak[1].mdia.minf.stbl;
        assert!(stbl.stco.is_none());
        let co = &stbl.co64.as_ref().unwrap().entries;
        assert!(co[4] > u64::from(u32::MAX));
        assert_eq!(co[0], head_len as u64 + u64::from(big));
        let h = &layout.head[head_len - 16..];
        assert_eq!(&h[..8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
        let body = 5 * (u64::from(big) + 100);
        assert_eq!(u64::from_be_bytes(h[8..].try_into().unwrap()), body + 16);
        assert_eq!(layout.file_size, head_len as u64 + body);
    }

    #[test]
    fn an_empty_movie_is_an_error() {
        let mut m = Movie::new();
        m.add_track(aac());
        assert!(matches!(m.layout(0), Err(MovieError::Empty)));
    }
}
