//! The per-chunk manifest: what remux learned about a chunk (from the FLV's metadata and its
//! frames), completed by publish (size, sha256) and uploaded beside the MP4 so a consumer can
//! detect gaps (`sequence`, `previous`). Remux writes it as `publish/NAME.json` before it renames
//! `NAME.mp4` in; publish reads it, fills `mp4_bytes`/`sha256`, and uploads it.

use serde::{Deserialize, Serialize};

use crate::naming::ChunkName;

/// Keys ingest writes into each chunk's `onMetaData`, which remux copies into the manifest.
pub const META_SEQUENCE: &str = "rtmpRecorderSequence";
pub const META_PREVIOUS: &str = "rtmpRecorderPrevious";
pub const META_UTC_START: &str = "rtmpRecorderUtcStart";
pub const META_STREAM_OFFSET_MS: &str = "rtmpRecorderStreamOffsetMs";
pub const META_GAP_MS: &str = "rtmpRecorderGapMs";
pub const META_GAP_REASON: &str = "rtmpRecorderGapReason";

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkManifest {
    pub version: u32,
    /// The chunk's file stem, `{UTC start}_{app}_{stream}_{seq}-{node}`.
    pub name: String,
    pub app: String,
    /// The stream's label (never the secret key unless the operator made it the label).
    pub stream: String,
    /// 1-based sequence number within one recording (one publish, or several joined by
    /// reconnects within `--reconnect-grace`).
    pub sequence: u32,
    /// Stem of the chunk before this one in the same recording (so on the same node); `None`
    /// for the first.
    pub previous: Option<String>,
    /// UTC time of the chunk's first frame, RFC 3339: its arrival for a session's first chunk,
    /// then the previous chunk's start plus the media time between them (within a second of
    /// the arrival; see `chunk`). With `--align-chunks`, within one GOP after a multiple of the
    /// chunk duration.
    pub utc_start: String,
    /// The ingest node that recorded the chunk (`--node-id`, mapped like an app), also the
    /// end of `name` and of `previous`; absent in manifests of chunks recorded before nodes
    /// had ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Time of the chunk's first frame since the recording began: media time within one
    /// publish, plus wall time across a reconnect within `--reconnect-grace`.
    pub stream_offset_ms: u64,
    /// A break between `previous` and this chunk that the chain continues over: the publisher
    /// dropped and came back within `--reconnect-grace`. Absent when the chunks are seamless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<Gap>,
    pub duration_ms: u64,
    pub video: Option<TrackSummary>,
    pub audio: Option<TrackSummary>,
    /// The chunk's first video frame is not a keyframe: ingest cut it at a hard cap (twice
    /// `--max-chunk-size` or `--max-chunk-frames`) in a stream that sent no keyframe for that
    /// long, so its frames up to the first keyframe need the previous chunk to be decoded.
    /// Absent (false) in every other chunk.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub starts_without_keyframe: bool,
    /// Filled by publish from the file it uploads.
    pub mp4_bytes: Option<u64>,
    /// Hex SHA-256 of the MP4, filled by publish.
    pub sha256: Option<String>,
}

/// Nothing was recorded for `duration_ms` before the chunk, for `reason` (`reconnect`: the
/// publisher's wall time away, from its last frame to its first again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    pub reason: String,
    pub duration_ms: u64,
}

impl ChunkManifest {
    /// What the name `stem` tells alone: for a chunk name (`name`), its app, stream, sequence,
    /// start and node; any other name only itself (app `-`, sequence 1). No tracks, no
    /// durations, no chain: remux fills those from the FLV, a hand-copied MP4 has none.
    pub fn from_name(stem: &str, name: Option<&ChunkName>) -> ChunkManifest {
        ChunkManifest {
            version: MANIFEST_VERSION,
            name: stem.to_string(),
            app: name.map_or_else(|| "-".to_string(), |n| n.app.clone()),
            stream: name.map_or_else(|| stem.to_string(), |n| n.stream.clone()),
            sequence: name.map_or(1, |n| n.seq),
            previous: None,
            utc_start: name.map(|n| n.start.rfc3339()).unwrap_or_default(),
            node: name.and_then(|n| n.node.clone()),
            stream_offset_ms: 0,
            gap: None,
            duration_ms: 0,
            video: None,
            audio: None,
            starts_without_keyframe: false,
            mp4_bytes: None,
            sha256: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackSummary {
    /// RFC 6381 codec string, e.g. `avc1.64001f`, `hvc1.1.6.L93.B0`, `mp4a.40.2`, `mp4a.6b`.
    pub codec: String,
    pub frames: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sample_rate: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub channels: Option<u32>,
}
