//! The boxes of a faststart movie, built from the sample tables of `movie`: `ftyp`, and a
//! `moov` with one `trak` per track (`stsd`, `stts`, `ctts`, `stss`, `stsc`, `stsz`,
//! `stco`/`co64`, and an edit list where a track's first presented frame is not at the movie's start).

use mp4_atom::{
    Co64, Ctts, CttsEntry, Dinf, Dref, DrefEntry, Edts, Elst, ElstEntry, FourCC, Ftyp, Hdlr,
    Matrix, Mdhd, Mdia, Minf, Moov, Mvhd, Smhd, Stbl, Stco, Stsc, StscEntry, Stsd, Stss, Stsz,
    StszSamples, Stts, SttsEntry, Tkhd, Trak, Url, Vmhd,
};

use super::codec::{SampleEntry, VideoConfig};
use super::error::MovieError;
use super::track::{Track, Window, source_order};

/// Movie timescale: milliseconds, the FLV's own unit.
const MOVIE_TIMESCALE: u32 = 1000;

pub(super) fn ftyp(tracks: &[&Track]) -> Ftyp {
    let mut brands: Vec<FourCC> = vec![b"isom".into(), b"iso2".into(), b"mp41".into()];
    for t in tracks {
        let brand: Option<FourCC> = match t.entries[0] {
            SampleEntry::Video {
                config: VideoConfig::Avc(_),
                ..
            } => Some(b"avc1".into()),
            SampleEntry::Video {
                config: VideoConfig::Av1(_),
                ..
            } => Some(b"av01".into()),
            _ => None,
        };
        if let Some(b) = brand
            && !brands.contains(&b)
        {
            brands.push(b);
        }
    }
    Ftyp {
        major_brand: b"isom".into(),
        minor_version: 512,
        compatible_brands: brands,
    }
}

/// Where a track's chunks lie: a chunk is a run of consecutive samples of one track and one
/// sample entry in the `mdat`.
#[derive(Default, Clone)]
struct Chunks {
    offsets: Vec<u64>,
    /// (samples in the chunk, sample entry index)
    runs: Vec<(u32, u16)>,
}

/// Walks the `mdat` (starting at file offset `base`) in source order and cuts it into chunks.
fn chunks(tracks: &[&Track], base: u64) -> Vec<Chunks> {
    let mut out = vec![Chunks::default(); tracks.len()];
    let mut pos = base;
    let mut last: Option<(usize, u16)> = None;
    for (i, s) in source_order(tracks) {
        let c = &mut out[i];
        match c.runs.last_mut() {
            Some(run) if last == Some((i, s.entry)) => run.0 += 1,
            _ => {
                c.offsets.push(pos);
                c.runs.push((1, s.entry));
            }
        }
        last = Some((i, s.entry));
        pos += u64::from(s.size);
    }
    out
}

pub(super) fn moov(
    tracks: &[&Track],
    window: Option<Window>,
    base: u64,
    wide: bool,
    creation_time: u64,
) -> Result<Moov, MovieError> {
    let start_ms = tracks
        .iter()
        .filter_map(|t| t.samples.first().map(|s| s.dts_ms))
        .min()
        .unwrap_or(0);
    let chunks = chunks(tracks, base);
    let mut traks = Vec::with_capacity(tracks.len());
    let mut movie_duration = 0u64;
    for (i, (t, c)) in tracks.iter().zip(&chunks).enumerate() {
        let track_id = i as u32 + 1;
        let stbl = stbl(t, track_id, c, wide)?;
        let trak = trak(
            t,
            track_id,
            Edit::of(t, start_ms, window),
            creation_time,
            stbl,
        );
        movie_duration = movie_duration.max(trak.tkhd.duration);
        traks.push(trak);
    }
    Ok(Moov {
        mvhd: Mvhd {
            creation_time,
            modification_time: creation_time,
            timescale: MOVIE_TIMESCALE,
            duration: movie_duration,
            rate: 1u16.into(),
            volume: 1u8.into(),
            matrix: Matrix::default(),
            next_track_id: tracks.len() as u32 + 1,
        },
        trak: traks,
        ..Moov::default()
    })
}

/// Run-length entries: `(count, value)` for consecutive equal values.
fn runs<T: PartialEq + Copy>(values: impl Iterator<Item = T>) -> Vec<(u32, T)> {
    let mut out: Vec<(u32, T)> = Vec::new();
    for v in values {
        match out.last_mut() {
            Some((n, last)) if *last == v => *n += 1,
            _ => out.push((1, v)),
        }
    }
    out
}

fn stbl(t: &Track, track_id: u32, c: &Chunks, wide: bool) -> Result<Stbl, MovieError> {
    // Decode-time deltas in ticks; the last sample lasts a typical interval.
    let mut deltas = Vec::with_capacity(t.samples.len());
    for w in t.samples.windows(2) {
        let d = t.ticks(w[1].dts_ms) - t.ticks(w[0].dts_ms);
        deltas.push(u32::try_from(d).map_err(|_| MovieError::Track {
            track: track_id,
            why: "sample interval out of range",
        })?);
    }
    deltas.push(t.last_duration_ticks());
    let stts = runs(deltas.into_iter())
        .into_iter()
        .map(|(sample_count, sample_delta)| SttsEntry {
            sample_count,
            sample_delta,
        })
        .collect();

    // Signed composition offsets (version 1 when any is negative), only where B-frames are.
    let ctts = t.samples.iter().any(|s| s.cto_ms != 0).then(|| Ctts {
        entries: runs(t.samples.iter().map(|s| t.ticks(i64::from(s.cto_ms))))
            .into_iter()
            .map(|(sample_count, sample_offset)| CttsEntry {
                sample_count,
                sample_offset,
            })
            .collect(),
    });

    // No stss means every sample is a sync sample.
    let stss = (t.video() && !t.samples.iter().all(|s| s.keyframe)).then(|| Stss {
        entries: t
            .samples
            .iter()
            .enumerate()
            .filter(|(_, s)| s.keyframe)
            .map(|(n, _)| n as u32 + 1)
            .collect(),
    });

    let mut stsc: Vec<StscEntry> = Vec::new();
    for (n, &(count, entry)) in c.runs.iter().enumerate() {
        let desc = u32::from(entry) + 1;
        if stsc
            .last()
            .is_some_and(|e| e.samples_per_chunk == count && e.sample_description_index == desc)
        {
            continue;
        }
        stsc.push(StscEntry {
            first_chunk: n as u32 + 1,
            samples_per_chunk: count,
            sample_description_index: desc,
        });
    }

    let first_size = t.samples[0].size;
    let stsz = if t.samples.iter().all(|s| s.size == first_size) {
        StszSamples::Identical {
            count: t.samples.len() as u32,
            size: first_size,
        }
    } else {
        StszSamples::Different {
            sizes: t.samples.iter().map(|s| s.size).collect(),
        }
    };

    let (stco, co64) = if wide {
        let entries = c.offsets.clone();
        (None, Some(Co64 { entries }))
    } else {
        let entries = c.offsets.iter().map(|&o| o as u32).collect();
        (Some(Stco { entries }), None)
    };

    Ok(Stbl {
        stsd: Stsd {
            codecs: t.entries.iter().map(|e| e.to_codec(track_id)).collect(),
        },
        stts: Stts { entries: stts },
        ctts,
        stss,
        stsc: Stsc { entries: stsc },
        stsz: Stsz { samples: stsz },
        stco,
        co64,
        ..Stbl::default()
    })
}

/// Where a track's presentation begins on the movie timeline, in the form ffmpeg's own muxer
/// writes and every demuxer reads alike: an empty edit up to the track's first presentation
/// time, then the media from the first sample's composition time (`media_time`). The other
/// spelling of the same instant (empty edit up to the first *decode* time, `media_time` 0) is
/// valid too, but ffmpeg's demuxer (and the players built on it) then presents a B-frame
/// track early by its first composition offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Edit {
    /// Movie time (ms) before the track's first presented frame.
    pub(super) empty_ms: u64,
    /// The composition time in the media (track ticks) shown at the end of the empty edit.
    pub(super) media_time: u64,
    /// The composition time in the media (ticks) where presentation stops.
    pub(super) media_end: u64,
    /// False when the media is shown whole from the movie's start: no edit list is written.
    needed: bool,
}

impl Edit {
    /// `start_ms` is the movie's start: the earliest first DTS of all tracks, unless a
    /// `window` (a clip) says which span of the samples' timeline is shown.
    pub(super) fn of(t: &Track, start_ms: i64, window: Option<Window>) -> Edit {
        let first = t.samples[0];
        let origin = window.map_or(start_ms, |w| w.from_ms);
        // `media_time` cannot be negative: a first frame with a negative composition offset
        // is entered at its decode time, and the part of it before that is not shown.
        let lead_ms = i64::from(first.cto_ms.max(0));
        let shown_from = (first.dts_ms + lead_ms).max(origin);
        let whole_end = t.presentation_end_ticks();
        let media_end = match window {
            Some(w) => whole_end.min(t.ticks(w.to_ms - first.dts_ms).max(0) as u64),
            None => whole_end,
        };
        let empty_ms = (shown_from - origin) as u64;
        let media_time = t.ticks(shown_from - first.dts_ms) as u64;
        Edit {
            empty_ms,
            media_time,
            media_end,
            needed: empty_ms > 0 || media_time > 0 || media_end < whole_end,
        }
    }
}

fn trak(t: &Track, track_id: u32, edit: Edit, creation_time: u64, stbl: Stbl) -> Trak {
    let ts = t.timescale();
    let media_ticks = t.media_ticks();
    let shown_ms = edit.media_end.saturating_sub(edit.media_time) * 1000 / u64::from(ts);
    let edts = edit.needed.then(|| {
        let mut entries = Vec::with_capacity(2);
        if edit.empty_ms > 0 {
            entries.push(ElstEntry {
                segment_duration: edit.empty_ms,
                media_time: None,
                media_rate: 1i16.into(),
            });
        }
        entries.push(ElstEntry {
            segment_duration: shown_ms,
            media_time: Some(edit.media_time),
            media_rate: 1i16.into(),
        });
        Edts {
            elst: Some(Elst { entries }),
        }
    });
    let video = t.video();
    let (width, height) = t.entries[0].dimensions().unwrap_or((0, 0));
    let (handler, name) = if video {
        (b"vide", "VideoHandler")
    } else {
        (b"soun", "SoundHandler")
    };
    Trak {
        tkhd: Tkhd {
            creation_time,
            modification_time: creation_time,
            track_id,
            duration: edit.empty_ms + shown_ms,
            layer: 0,
            alternate_group: 0,
            enabled: true,
            in_movie: true,
            size_is_aspect_ratio: false,
            volume: if video { 0u8.into() } else { 1u8.into() },
            matrix: Matrix::default(),
            width: width.into(),
            height: height.into(),
        },
        edts,
        mdia: Mdia {
            mdhd: Mdhd {
                creation_time,
                modification_time: creation_time,
                timescale: ts,
                duration: media_ticks,
                language: "und".to_string(),
            },
            hdlr: Hdlr {
                handler: handler.into(),
                name: name.to_string(),
            },
            minf: Minf {
                vmhd: video.then(Vmhd::default),
                smhd: (!video).then(Smhd::default),
                dinf: Dinf {
                    dref: Dref {
                        entries: vec![DrefEntry::Url(Url {
                            location: String::new(),
                        })],
                    },
                },
                stbl,
                ..Minf::default()
            },
        },
        ..Trak::default()
    }
}
