//! What the stages leave in `status/` of the state directory for others to read, so that
//! `rtmp-recorder status` and ingest's `/metrics` see every stage even when remux and publish are
//! short-lived processes started by systemd:
//! - `live.json`: ingest's live streams and counters, rewritten every couple of seconds
//!   ([`live`]);
//! - `remux.json`, `publish.json`: cumulative counts, failures by kind, the last chunk done and
//!   the last error of those stages ([`record`]);
//! - `STAGE.lock`: held by a running stage ([`running`]);
//! - and what the inboxes and `failed/` hold right now ([`queues`]).

pub mod live;
pub mod queues;
pub mod record;
pub mod running;

use std::time::{SystemTime, UNIX_EPOCH};

/// The wall clock in milliseconds since the Unix epoch (0 before 1970).
pub fn unix_ms_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
