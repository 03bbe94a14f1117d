//! What the state directory holds right now: inbox depths, the oldest chunk not yet published,
//! the files set aside in `failed/` with their reasons, and free disk.

use std::path::Path;
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::disk::{DiskSpace, MinFree};
use crate::naming::ChunkName;
use crate::spool::{self, StateDir};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Queues {
    /// FLVs in `remux/`.
    pub remux: u64,
    /// MP4s in `publish/`.
    pub publish: u64,
    /// Events in `events/` waiting for delivery.
    pub events: u64,
    /// Start (ms since the Unix epoch) of the oldest chunk in `remux/` or `publish/`: its name's
    /// UTC start, else its file's mtime (copied in by hand).
    pub oldest_unpublished_unix_ms: Option<u64>,
    pub failed: Vec<FailedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailedFile {
    pub name: String,
    /// The first line of `NAME.reason`, or why it could not be read.
    pub reason: String,
}

pub fn read(state: &StateDir) -> Result<Queues> {
    let remux = spool::list_inbox(&state.remux_inbox(), "flv")?;
    let publish = spool::list_inbox(&state.publish_inbox(), "mp4")?;
    let oldest = remux
        .iter()
        .chain(publish.iter())
        .filter_map(|p| chunk_start_unix_ms(p))
        .min();
    Ok(Queues {
        remux: remux.len() as u64,
        publish: publish.len() as u64,
        events: crate::events::queued(state)?.len() as u64,
        oldest_unpublished_unix_ms: oldest,
        failed: failed_files(&state.failed())?,
    })
}

fn chunk_start_unix_ms(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    if let Some(chunk) = ChunkName::parse(name) {
        return Some(chunk.start.to_unix_millis().max(0) as u64);
    }
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    Some(mtime.duration_since(UNIX_EPOCH).ok()?.as_millis() as u64)
}

fn failed_files(dir: &Path) -> Result<Vec<FailedFile>> {
    let mut out = Vec::new();
    let names = spool::entries(dir)?;
    for name in names.iter().cloned() {
        if name.ends_with(".reason") || name.starts_with('.') {
            continue;
        }
        // A manifest set aside beside its MP4 is part of that entry.
        if name.ends_with(".json") && names.contains(&name.replace(".json", ".mp4")) {
            continue;
        }
        let reason_path = dir.join(format!("{name}.reason"));
        let reason = match std::fs::read_to_string(&reason_path) {
            Ok(text) => text.lines().next().unwrap_or("").trim().to_string(),
            Err(e) => format!("no reason file ({e})"),
        };
        out.push(FailedFile { name, reason });
    }
    Ok(out)
}

/// Free space of the state directory's file system against the watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Disk {
    pub available_bytes: u64,
    pub total_bytes: u64,
    pub min_free_bytes: u64,
}

impl Disk {
    pub fn read(state: &StateDir, min_free: MinFree) -> Result<Disk> {
        let space = DiskSpace::of(state.root())
            .with_context(|| format!("reading free space of {}", state.root().display()))?;
        Ok(Disk {
            available_bytes: space.available,
            total_bytes: space.total,
            min_free_bytes: min_free.bytes(space.total),
        })
    }

    pub fn is_low(&self) -> bool {
        self.available_bytes < self.min_free_bytes
    }
}
