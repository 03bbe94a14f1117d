//! Ingest's live snapshot, `status/live.json`: written atomically every couple of seconds while
//! ingest runs (HTTP is optional, so `rtmp-recorder status` reads this file instead).

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::spool::{self, StateDir};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveSnapshot {
    pub pid: u32,
    /// When it was taken, in ms since the Unix epoch.
    pub taken_unix_ms: u64,
    pub connections: u64,
    pub chunks_closed: u64,
    /// Bytes read from every RTMP socket since ingest started.
    pub bytes_received: u64,
    pub rejected: u64,
    pub protocol_errors: u64,
    pub frames_dropped: u64,
    pub streams: Vec<LiveStream>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveStream {
    pub app: String,
    /// The stream's label (never the key).
    pub stream: String,
    pub started_unix_ms: u64,
    /// Payload bytes of the stream's messages.
    pub bytes: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub dropped_frames: u64,
}

pub fn path(state: &StateDir) -> PathBuf {
    state.status().join("live.json")
}

pub fn write(state: &StateDir, snapshot: &LiveSnapshot) -> Result<()> {
    let json = serde_json::to_vec_pretty(snapshot).context("encoding the live snapshot")?;
    spool::write_atomically(&state.tmp(), &path(state), &json)
}

/// The last snapshot ingest wrote; `None` when there is none (ingest never ran here).
pub fn read(state: &StateDir) -> Result<Option<LiveSnapshot>> {
    spool::read_json(&path(state), "a live snapshot")
}
