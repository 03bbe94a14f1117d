//! Builds a chunk's manifest from what ingest wrote into its `onMetaData` (the
//! `manifest::META_*` keys) and what the remux counted; files without those keys (copied in by
//! hand) get what their name says, or defaults.

use crate::flv::script::{self, Properties};
use crate::manifest::{
    ChunkManifest, Gap, META_GAP_MS, META_GAP_REASON, META_PREVIOUS, META_SEQUENCE,
    META_STREAM_OFFSET_MS, META_UTC_START, TrackSummary,
};
use crate::mp4::movie;
use crate::naming::ChunkName;

/// The manifest of chunk `stem`.
pub fn build(
    stem: &str,
    name: Option<&ChunkName>,
    meta: Option<&Properties>,
    tracks: &[movie::TrackSummary],
) -> ChunkManifest {
    let num = |k: &str| {
        meta.and_then(|m| script::get(m, k))
            .and_then(|v| v.as_f64())
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    let text = |k: &str| {
        meta.and_then(|m| script::get(m, k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    };
    let start_ms = tracks.iter().map(|t| t.first_dts_ms).min().unwrap_or(0);
    let duration_ms = tracks
        .iter()
        .map(|t| (t.first_dts_ms - start_ms) as u64 + t.duration_ms)
        .max()
        .unwrap_or(0);
    let summary = |video: bool| {
        tracks
            .iter()
            .find(|t| t.video == video && t.frames > 0)
            .map(|t| TrackSummary {
                codec: t.codec.clone(),
                frames: t.frames,
                width: t.width.map(u32::from),
                height: t.height.map(u32::from),
                sample_rate: t.sample_rate,
                channels: t.channels.map(u32::from),
            })
    };
    let from_name = ChunkManifest::from_name(stem, name);
    ChunkManifest {
        sequence: num(META_SEQUENCE).map_or(from_name.sequence, |v| v as u32),
        previous: text(META_PREVIOUS).filter(|p| !p.is_empty()),
        utc_start: text(META_UTC_START).unwrap_or_else(|| from_name.utc_start.clone()),
        stream_offset_ms: num(META_STREAM_OFFSET_MS).map_or(0, |v| v as u64),
        gap: text(META_GAP_REASON).map(|reason| Gap {
            reason,
            duration_ms: num(META_GAP_MS).map_or(0, |v| v as u64),
        }),
        duration_ms,
        video: summary(true),
        audio: summary(false),
        starts_without_keyframe: tracks
            .iter()
            .any(|t| t.video && t.frames > 0 && !t.starts_with_keyframe),
        ..from_name
    }
}
