//! The persisted record of a short-lived stage (`status/remux.json`, `status/publish.json`):
//! cumulative across runs, read-modify-written atomically after each event. Observing must never
//! stop the work, so a record that cannot be read starts afresh and one that cannot be written
//! is logged and skipped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::spool::{self, StateDir};

/// Which stage keeps a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Remux,
    Publish,
    /// Event delivery (`events::deliver`): `done` counts delivered events.
    Deliver,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Remux => "remux",
            Stage::Publish => "publish",
            Stage::Deliver => "deliver",
        }
    }
}

/// Why an attempt failed, as counted in [`StageRecord::failures`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The store did not answer or answered 5xx/SlowDown: retried.
    Transient,
    /// The store refused (access denied, no such bucket, bad credentials): needs an operator.
    Permanent,
    /// The input was set aside in `failed/` (not a chunk, a conflicting object, unreadable).
    Rejected,
    /// A local error (the state directory); retried.
    Local,
}

impl FailureKind {
    pub fn name(self) -> &'static str {
        match self {
            FailureKind::Transient => "transient",
            FailureKind::Permanent => "permanent",
            FailureKind::Rejected => "rejected",
            FailureKind::Local => "local",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Chunks remuxed, or uploads verified.
    pub done: u64,
    /// Failed attempts by [`FailureKind::name`].
    pub failures: BTreeMap<String, u64>,
    pub last_done: Option<Event>,
    pub last_error: Option<Event>,
}

/// Something that happened, and when (ms since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The chunk or object key for [`StageRecord::last_done`], the message for an error.
    pub what: String,
    pub at_unix_ms: u64,
}

pub fn path(state: &StateDir, stage: Stage) -> PathBuf {
    state.status().join(format!("{}.json", stage.name()))
}

/// The record of `stage`; empty when it never ran here.
pub fn read(state: &StateDir, stage: Stage) -> Result<StageRecord> {
    let path = path(state, stage);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(StageRecord::default()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a stage record", path.display()))
}

/// Records one success of `stage`: `what` is the chunk or object key.
pub fn done(state: &StateDir, stage: Stage, what: &str) {
    update(state, stage, |r| {
        r.done += 1;
        r.last_done = Some(Event {
            what: what.to_string(),
            at_unix_ms: super::unix_ms_now(),
        });
    });
}

/// Records one failed attempt of `stage`.
pub fn failed(state: &StateDir, stage: Stage, kind: FailureKind, message: &str) {
    update(state, stage, |r| {
        *r.failures.entry(kind.name().to_string()).or_default() += 1;
        r.last_error = Some(Event {
            what: message.to_string(),
            at_unix_ms: super::unix_ms_now(),
        });
    });
}

fn update(state: &StateDir, stage: Stage, change: impl FnOnce(&mut StageRecord)) {
    let mut record = read(state, stage).unwrap_or_else(|e| {
        log::warn!("{e:#}; starting the {} record afresh", stage.name());
        StageRecord::default()
    });
    change(&mut record);
    let written = serde_json::to_vec_pretty(&record)
        .context("encoding a stage record")
        .and_then(|json| {
            std::fs::create_dir_all(state.status())
                .with_context(|| format!("creating {}", state.status().display()))?;
            spool::write_atomically(&state.tmp(), &path(state, stage), &json)
        });
    if let Err(e) = written {
        log::warn!(
            "could not update the {} record: {e:#}; `rtmp-recorder status` and /metrics miss this event",
            stage.name()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accumulates_across_updates_and_survives_a_corrupt_file() {
        let (_tmp, state) = StateDir::temporary();
        assert_eq!(
            read(&state, Stage::Publish).unwrap(),
            StageRecord::default()
        );
        done(&state, Stage::Publish, "a/b.mp4");
        failed(&state, Stage::Publish, FailureKind::Transient, "503");
        failed(&state, Stage::Publish, FailureKind::Transient, "timeout");
        done(&state, Stage::Publish, "a/c.mp4");
        let r = read(&state, Stage::Publish).unwrap();
        assert_eq!(r.done, 2);
        assert_eq!(r.failures["transient"], 2);
        assert_eq!(r.last_done.unwrap().what, "a/c.mp4");
        assert_eq!(r.last_error.unwrap().what, "timeout");
        std::fs::write(path(&state, Stage::Remux), b"{ torn").unwrap();
        assert!(read(&state, Stage::Remux).is_err());
        done(&state, Stage::Remux, "x");
        assert_eq!(read(&state, Stage::Remux).unwrap().done, 1);
    }
}
