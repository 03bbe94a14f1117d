//! One track's sample table as the movie builds it, its timing rules (ticks, durations, where
//! presentation ends), the window a clip shows, and the source order of all tracks' samples
//! (the `mdat` order). Shared by `movie` (which fills the tables) and `boxes` (which encodes them).

use super::codec::SampleEntry;

#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    pub(super) dts_ms: i64,
    pub(super) cto_ms: i32,
    pub(super) size: u32,
    pub(super) source: u64,
    /// Index into the track's sample entries.
    pub(super) entry: u16,
    pub(super) keyframe: bool,
}

#[derive(Debug)]
pub(super) struct Track {
    pub(super) entries: Vec<SampleEntry>,
    pub(super) current: u16,
    pub(super) samples: Vec<Sample>,
    /// Added to incoming DTS to stitch over discontinuities.
    pub(super) shift: i64,
    pub(super) repaired: u64,
    /// The next sample pushed follows a gap: its DTS is kept however far it jumps.
    pub(super) gap_pending: bool,
}

impl Track {
    pub(super) fn timescale(&self) -> u32 {
        self.entries[0].timescale()
    }

    pub(super) fn video(&self) -> bool {
        self.entries[0].is_video()
    }

    pub(super) fn ticks(&self, ms: i64) -> i64 {
        let ts = i64::from(self.timescale());
        (ms * ts + ms.signum() * 500) / 1000
    }

    /// A typical sample interval in ms, for repairs and the last sample's duration.
    pub(super) fn typical_interval_ms(&self) -> i64 {
        let n = self.samples.len();
        if n >= 2 {
            let d = self.samples[n - 1].dts_ms - self.samples[n - 2].dts_ms;
            if d > 0 && d <= 1000 {
                return d;
            }
        }
        match self.entries[usize::from(self.current)].frame_ticks() {
            Some(t) => (i64::from(t) * 1000 / i64::from(self.timescale())).max(1),
            None => 33,
        }
    }

    pub(super) fn last_duration_ticks(&self) -> u32 {
        let n = self.samples.len();
        if let Some(t) = self.entries[usize::from(self.current)].frame_ticks() {
            return t;
        }
        if n >= 2 {
            let d = self.ticks(self.samples[n - 1].dts_ms) - self.ticks(self.samples[n - 2].dts_ms);
            if d > 0 {
                return d as u32;
            }
        }
        self.ticks(33) as u32
    }

    /// Media duration in the track's timescale.
    pub(super) fn media_ticks(&self) -> u64 {
        match (self.samples.first(), self.samples.last()) {
            (Some(a), Some(b)) => {
                (self.ticks(b.dts_ms) - self.ticks(a.dts_ms)) as u64
                    + u64::from(self.last_duration_ticks())
            }
            _ => 0,
        }
    }

    /// Where presentation ends in the media, in ticks: the latest composition time plus that
    /// sample's duration. With B-frames this is past the decode span ([`Track::media_ticks`]),
    /// and an edit that stopped there would drop the last frames shown.
    pub(super) fn presentation_end_ticks(&self) -> u64 {
        let Some(first) = self.samples.first() else {
            return 0;
        };
        let origin = self.ticks(first.dts_ms);
        let last_duration = i64::from(self.last_duration_ticks());
        let mut end = 0i64;
        for (i, s) in self.samples.iter().enumerate() {
            let dts = self.ticks(s.dts_ms);
            let duration = self
                .samples
                .get(i + 1)
                .map_or(last_duration, |n| self.ticks(n.dts_ms) - dts);
            end = end.max(dts - origin + self.ticks(i64::from(s.cto_ms)) + duration);
        }
        end.max(0) as u64
    }
}

/// The span of the samples' timeline a movie shows (ms, `to_ms` exclusive): a clip decodes from
/// the keyframe before `from_ms` but presents from `from_ms` on, by its edit lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The samples of all tracks in source order, which is the `mdat` order: (track, sample).
pub(super) fn source_order<'a>(
    tracks: &'a [&'a Track],
) -> impl Iterator<Item = (usize, &'a Sample)> + 'a {
    let mut next = vec![0usize; tracks.len()];
    std::iter::from_fn(move || {
        let mut best: Option<(usize, u64)> = None;
        for (i, t) in tracks.iter().enumerate() {
            if let Some(s) = t.samples.get(next[i])
                && best.is_none_or(|(_, src)| s.source < src)
            {
                best = Some((i, s.source));
            }
        }
        let (i, _) = best?;
        let s = &tracks[i].samples[next[i]];
        next[i] += 1;
        Some((i, s))
    })
}
