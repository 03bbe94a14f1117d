//! Cutting a clip out of recorded chunks, without re-encoding. Pure: the chunks' sample tables
//! come in (read from their heads by `read`), a new movie comes out whose samples point into
//! the chunks' files; the caller copies those byte ranges.
//!
//! Rules:
//! - The chunks are consecutive pieces of one stream; each sample's time on the stream is its
//!   chunk's offset plus its time in the chunk.
//! - Video is decoded from the last keyframe at or before `from` and carries every sample up to
//!   the last one presented before `to`; audio from the frame playing at `from` to the last one
//!   starting before `to`. The edit lists ([`Window`]) present exactly `from..to`.
//! - A codec configuration that changes between chunks (a new resolution) becomes another
//!   sample description, as within one chunk.
//! - A piece may follow a gap (`after_gap`: a missing chunk, a reconnect), bridged on request:
//!   its offset places it on the timeline at its wall-clock distance from the pieces before,
//!   and its samples keep those times, so everything after the gap keeps its wall-clock
//!   position in the clip; the last sample before the gap lasts until the first after it.
//!   (Not an empty edit in the middle of the edit list: ffmpeg's demuxer, and the players built
//!   on it, replay the media from its start during such an edit.)
//! - The files are addressed as one space: each chunk's bytes start at its `base` (the sum of
//!   the sizes before it), so the movie's copy plan is one list of ranges ([`locate`] maps a
//!   range back to its chunk).

use thiserror::Error;

use super::read::{StoredMovie, StoredSample, StoredTrack};
use super::{Movie, MovieError, SampleIn, Window};

#[derive(Debug, Error)]
pub enum ClipError {
    #[error("nothing was recorded between {from_ms} ms and {to_ms} ms of the stream")]
    Nothing { from_ms: i64, to_ms: i64 },
    #[error("the clip's end ({to_ms} ms) is not after its start ({from_ms} ms)")]
    Backwards { from_ms: i64, to_ms: i64 },
    #[error(transparent)]
    Movie(#[from] MovieError),
}

/// One chunk of the stream.
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    pub movie: &'a StoredMovie,
    /// Where the chunk starts on the stream's timeline (its manifest's `stream_offset_ms`).
    pub offset_ms: i64,
    /// Where the chunk's file starts in the address space of all chunks' files.
    pub base: u64,
    /// The chunk follows a gap in the recording (its offset says how long the gap is).
    pub after_gap: bool,
}

/// A sample of one kind (video or audio), placed on the stream's timeline.
#[derive(Clone, Copy)]
struct Placed<'a> {
    track: &'a StoredTrack,
    /// (piece, track) it comes from: a change of either may change the sample entry.
    from: (usize, usize),
    sample: StoredSample,
    dts_ms: i64,
    base: u64,
}

impl Placed<'_> {
    fn pts_ms(&self) -> i64 {
        self.dts_ms + i64::from(self.sample.cto_ms)
    }
}

/// The movie of `window` (stream time, ms) out of `pieces`, in order.
pub fn plan(pieces: &[Piece], window: Window) -> Result<Movie, ClipError> {
    let Window { from_ms, to_ms } = window;
    if to_ms <= from_ms {
        return Err(ClipError::Backwards { from_ms, to_ms });
    }
    let mut movie = Movie::new();
    for video in [true, false] {
        let placed: Vec<Placed> = pieces
            .iter()
            .enumerate()
            .flat_map(|(pi, p)| {
                p.movie
                    .tracks
                    .iter()
                    .enumerate()
                    .filter(move |(_, t)| t.video() == video)
                    .flat_map(move |(ti, t)| {
                        t.samples.iter().map(move |&sample| Placed {
                            track: t,
                            from: (pi, ti),
                            sample,
                            dts_ms: p.offset_ms + sample.dts_ms,
                            base: p.base,
                        })
                    })
            })
            .collect();
        let Some(range) = span(&placed, video, window) else {
            continue;
        };
        let mut track = None;
        let mut current = None;
        let mut last_piece = None;
        for p in &placed[range] {
            let entry = &p.track.entries[usize::from(p.sample.entry)];
            let id = (p.from, p.sample.entry);
            let t = match track {
                None => {
                    let t = movie.add_track(entry.clone());
                    track = Some(t);
                    t
                }
                Some(t) => {
                    if current != Some(id) {
                        movie.set_entry(t, entry.clone());
                    }
                    t
                }
            };
            current = Some(id);
            let piece = p.from.0;
            if let Some(last) = last_piece
                && pieces[last + 1..=piece].iter().any(|q| q.after_gap)
            {
                movie.gap_before_next(t);
            }
            last_piece = Some(piece);
            movie.push(
                t,
                SampleIn {
                    dts_ms: p.dts_ms,
                    cto_ms: p.sample.cto_ms,
                    size: p.sample.size,
                    keyframe: p.sample.keyframe,
                    source: p.base + p.sample.offset,
                },
            );
        }
    }
    if movie.track_count() == 0 {
        return Err(ClipError::Nothing { from_ms, to_ms });
    }
    movie.show_only(window);
    Ok(movie)
}

/// The samples (indices into `placed`, decode order) a clip of `window` needs.
fn span(placed: &[Placed], video: bool, window: Window) -> Option<std::ops::Range<usize>> {
    // The last sample presented before the end; with B-frames, every sample decoded before it
    // comes along (a later-presented one may be its reference).
    let last = placed.iter().rposition(|p| {
        let start = if video { p.pts_ms() } else { p.dts_ms };
        start < window.to_ms
    })?;
    let first = if video {
        // Decoding starts at a keyframe: the last one at or before `from`, else the first.
        placed[..=last]
            .iter()
            .rposition(|p| p.sample.keyframe && p.dts_ms <= window.from_ms)
            .or_else(|| placed[..=last].iter().position(|p| p.sample.keyframe))?
    } else {
        placed[..=last]
            .iter()
            .rposition(|p| p.dts_ms <= window.from_ms)
            .unwrap_or(0)
    };
    // Nothing of this kind is shown if it all ends before the window opens (the last
    // sample lasting as long as the one before it).
    let n = placed.len();
    let last_duration = match n {
        2.. => placed[n - 1].dts_ms - placed[n - 2].dts_ms,
        _ => 0,
    };
    let end = placed.iter().map(Placed::pts_ms).max()? + last_duration.max(1);
    if end <= window.from_ms {
        return None;
    }
    Some(first..last + 1)
}

/// Which piece (index into the bases, ascending) holds `address`, and where in its file.
pub fn locate(bases: &[u64], address: u64) -> (usize, u64) {
    let piece = bases.partition_point(|&b| b <= address).saturating_sub(1);
    (piece, address - bases[piece])
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{SPS_720P, aac, avc, sample};
    use super::super::read::parse;
    use super::super::{Movie, SampleEntry};
    use super::*;

    /// A stored chunk of `ms` of 30 fps video (keyframe every 15 frames, B-frame offsets) and
    /// 21 ms audio frames, written by `Movie` and read back from its head.
    fn chunk(video: SampleEntry, ms: i64) -> (StoredMovie, u64) {
        let mut m = Movie::new();
        let v = m.add_track(video);
        let a = m.add_track(aac());
        let mut src = 0u64;
        let frames = ms / 33;
        for i in 0..frames {
            let cto = if i % 15 == 0 { 66 } else { 33 };
            m.push(v, sample(i * 33, cto, 100, src, i % 15 == 0));
            src += 100;
        }
        for i in 0..ms / 21 {
            m.push(a, sample(i * 21, 0, 10, src, true));
            src += 10;
        }
        let layout = m.layout(0).unwrap();
        (parse(&layout.head).unwrap(), layout.file_size)
    }

    /// Chunk `a` at 0, then `b` at `b_at` ms of the stream.
    fn two<'a>(
        a: &'a StoredMovie,
        a_size: u64,
        b: &'a StoredMovie,
        b_at: i64,
        after_gap: bool,
    ) -> [Piece<'a>; 2] {
        [
            Piece {
                movie: a,
                offset_ms: 0,
                base: 0,
                after_gap: false,
            },
            Piece {
                movie: b,
                offset_ms: b_at,
                base: a_size,
                after_gap,
            },
        ]
    }

    fn other_sps() -> SampleEntry {
        let mut sps = SPS_720P;
        sps[3] = 0x28;
        avc(&sps)
    }

    #[test]
    fn a_clip_across_two_chunks_decodes_from_the_keyframe_and_shows_the_window() {
        let (a, a_size) = chunk(avc(&SPS_720P), 1980);
        let (b, _) = chunk(other_sps(), 1980);
        let pieces = two(&a, a_size, &b, 1980, false);
        let window = Window {
            from_ms: 1200,
            to_ms: 2600,
        };
        let layout = plan(&pieces, window).unwrap().layout(0).unwrap();
        let clip = parse(&layout.head).unwrap();
        let (v, au) = (&clip.tracks[0], &clip.tracks[1]);

        // Video: from the keyframe at 990 ms (frame 30), through the last frame shown
        // before 2600 ms; both configurations.
        assert_eq!(v.entries, vec![avc(&SPS_720P), other_sps()]);
        let first = v.samples[0];
        assert!(first.keyframe);
        // On the clip's timeline, 1200 ms of the stream is 0.
        assert_eq!(first.dts_ms, 990 - 1200);
        let last = v.samples.last().unwrap();
        assert!(last.dts_ms + i64::from(last.cto_ms) < 2600 - 1200);
        let frames_a = (1980 / 33 - 30) as usize;
        assert_eq!(
            v.samples[frames_a].entry, 1,
            "chunk B's frames use its configuration"
        );
        assert_eq!(v.samples[frames_a - 1].entry, 0);
        // Audio: from the frame playing at 1200 ms (starts at 1197) to the last before 2600.
        assert_eq!(au.samples[0].dts_ms, 1197 - 1200);
        assert!(au.samples.last().unwrap().dts_ms < 2600 - 1200);

        // The copy plan points into both chunks' files: locate maps it back.
        let bases = [0, a_size];
        let (p0, _) = locate(&bases, layout.ranges[0].0);
        let (p1, off) = locate(&bases, layout.ranges.last().unwrap().0);
        assert_eq!((p0, p1), (0, 1));
        assert!(off < a_size);
    }

    #[test]
    fn a_bridged_gap_keeps_what_follows_at_its_place() {
        use mp4_atom::{Decode, Moov};
        let (a, a_size) = chunk(avc(&SPS_720P), 1980);
        let (b, _) = chunk(avc(&SPS_720P), 1980);
        // Chunk B starts 60 s after A ends (chunks lost): far enough to be stitched shut by
        // the remux's repair of jumping timestamps, were the gap not declared.
        let b_at = 1980 + 60_000;
        let pieces = two(&a, a_size, &b, b_at, true);
        let window = Window {
            from_ms: 1200,
            to_ms: b_at + 1000,
        };
        let layout = plan(&pieces, window).unwrap().layout(0).unwrap();
        let clip = parse(&layout.head).unwrap();
        // B's samples keep their place: 60 s after A's, relative to the window.
        for (track, first_b) in [
            (0, (1980 / 33 - 30) as usize),
            (1, (1980 / 21 - 57) as usize),
        ] {
            let s = &clip.tracks[track].samples;
            assert_eq!(s[first_b].dts_ms, b_at - 1200, "track {track}");
            assert!(s[first_b - 1].dts_ms < 1980 - 1200, "track {track}");
        }
        // One edit per track: the window, whole (no empty edit in the middle).
        let ftyp = u32::from_be_bytes(layout.head[..4].try_into().unwrap()) as usize;
        let moov = Moov::decode(&mut &layout.head[ftyp..]).unwrap();
        for t in &moov.trak {
            let elst = t.edts.as_ref().unwrap().elst.as_ref().unwrap();
            assert_eq!(elst.entries.len(), 1);
            assert_eq!(
                elst.entries[0].segment_duration,
                (window.to_ms - window.from_ms) as u64
            );
        }
    }

    #[test]
    fn a_window_outside_the_recording_or_backwards_is_refused() {
        let (a, _) = chunk(avc(&SPS_720P), 990);
        let pieces = [Piece {
            movie: &a,
            offset_ms: 0,
            base: 0,
            after_gap: false,
        }];
        let window = |from_ms, to_ms| Window { from_ms, to_ms };
        let after = plan(&pieces, window(5_000, 6_000));
        assert!(matches!(after, Err(ClipError::Nothing { .. })));
        let backwards = plan(&pieces, window(500, 500));
        assert!(matches!(backwards, Err(ClipError::Backwards { .. })));
    }

    #[test]
    fn locate_finds_the_piece_of_an_address() {
        let bases = [0, 100, 250];
        assert_eq!(locate(&bases, 0), (0, 0));
        assert_eq!(locate(&bases, 99), (0, 99));
        assert_eq!(locate(&bases, 100), (1, 0));
        assert_eq!(locate(&bases, 300), (2, 50));
    }
}
