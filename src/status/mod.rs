//! `rtmp-recorder status`: one terminal screen (or `--json`) on how every stage is doing, read
//! from the state directory and, where systemd runs, from `systemctl show`: each stage's state,
//! live streams with duration and bitrate, queue depths, the last upload, the last error, and
//! what is in `failed/` and why. The exit status says whether all is well: [`ALL_WELL`],
//! [`ATTENTION`] (the problems are listed), or [`UNREADABLE`].

mod render;
mod units;

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::disk::MinFree;
use crate::observe::live::{self, LiveSnapshot};
use crate::observe::queues::{self, Disk, FailedFile};
use crate::observe::record::{self, Event, Stage, StageRecord};
use crate::observe::{running, unix_ms_now};
use crate::spool::StateDir;

pub const ALL_WELL: u8 = 0;
/// Something needs an operator: a failed unit, files in `failed/`, low disk, failing uploads.
pub const ATTENTION: u8 = 1;
/// The state directory cannot be read (wrong `--state-dir`, or not allowed: try sudo).
pub const UNREADABLE: u8 = 2;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Print JSON for scripts instead of the screen for a person.
    #[arg(long)]
    pub json: bool,

    /// The watermark to judge free disk by (as ingest's `--min-free-disk`).
    #[arg(long, env = "MIN_FREE_DISK", value_parser = MinFree::parse, default_value = "512M")]
    pub min_free_disk: MinFree,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub state_dir: String,
    /// Empty when all is well.
    pub problems: Vec<String>,
    pub stages: Vec<StageState>,
    pub live_streams: Vec<LiveStreamState>,
    pub queues: QueueState,
    pub last_upload: Option<When>,
    pub last_error: Option<StageError>,
    pub events: EventsState,
    pub failed: Vec<FailedFile>,
    pub disk: Option<Disk>,
}

#[derive(Debug, Serialize)]
pub struct StageState {
    pub stage: &'static str,
    /// `systemd` (the units' states) or `process` (whether a process runs it).
    pub source: &'static str,
    pub state: String,
    pub running: bool,
    pub failed: bool,
    pub done: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct LiveStreamState {
    pub app: String,
    pub stream: String,
    pub duration_seconds: u64,
    /// Average since the stream began publishing.
    pub bitrate_bits_per_second: u64,
    pub bytes: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
}

#[derive(Debug, Serialize)]
pub struct QueueState {
    pub remux: u64,
    pub publish: u64,
    pub oldest_unpublished_age_seconds: Option<u64>,
}

/// The event hooks' queue (`events/`) and the deliver stage's record.
#[derive(Debug, Serialize)]
pub struct EventsState {
    pub queued: u64,
    pub delivered: u64,
    /// Failed delivery attempts (all runs).
    pub delivery_failures: u64,
    pub last_delivery: Option<When>,
    pub last_delivery_error: Option<When>,
}

#[derive(Debug, Serialize)]
pub struct When {
    pub what: String,
    pub at: String,
    pub age_seconds: u64,
}

#[derive(Debug, Serialize)]
pub struct StageError {
    pub stage: &'static str,
    pub message: String,
    pub at: String,
    pub age_seconds: u64,
}

/// Runs the command; prints the report and returns the exit status.
pub fn main(state_dir: &Path, args: &Args) -> ExitCode {
    let report = match gather(&StateDir::new(state_dir), args.min_free_disk) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "{e:#}: is --state-dir right, and may you read it? (under systemd: sudo rtmp-recorder status)"
            );
            return ExitCode::from(UNREADABLE);
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("encoding the report: {e}");
                return ExitCode::from(UNREADABLE);
            }
        }
    } else {
        print!("{}", render::screen(&report));
    }
    ExitCode::from(if report.problems.is_empty() {
        ALL_WELL
    } else {
        ATTENTION
    })
}

pub fn gather(state: &StateDir, min_free: MinFree) -> Result<Report> {
    let root = state.root();
    std::fs::read_dir(root).with_context(|| format!("reading {}", root.display()))?;
    let now = unix_ms_now();
    let mut problems = Vec::new();
    let remux = record::read(state, Stage::Remux).unwrap_or_default();
    let publish = record::read(state, Stage::Publish).unwrap_or_default();
    let deliver = record::read(state, Stage::Deliver).unwrap_or_default();

    let mut stages = Vec::new();
    // (name, as its unit `rtmp-recorder-NAME` and its lock `status/LOCK.lock` call it, total)
    for (stage, lock, done) in [
        ("ingest", "ingest", None),
        ("remux", "remux", Some(remux.done)),
        ("publish", "publish", Some(publish.done)),
        ("events", "deliver", Some(deliver.done)),
    ] {
        let s = match units::state(stage) {
            Some(unit) => StageState {
                stage,
                source: "systemd",
                running: unit.running,
                failed: unit.failed,
                state: unit.text,
                done,
            },
            None => {
                let holder = running::holder(state, lock);
                StageState {
                    stage,
                    source: "process",
                    running: holder.is_some(),
                    failed: false,
                    state: match holder {
                        Some(pid) => format!("running (pid {pid})"),
                        None => "not running".to_string(),
                    },
                    done,
                }
            }
        };
        if s.failed {
            problems.push(format!("{stage}: {}", s.state));
        }
        stages.push(s);
    }

    // The snapshot speaks for a live ingest only: after it stopped, its streams are over.
    let snapshot = match running::holder(state, "ingest") {
        Some(_) => live::read(state)?.unwrap_or_default(),
        None => LiveSnapshot::default(),
    };
    let live_streams = snapshot
        .streams
        .iter()
        .map(|s| {
            let ms = snapshot.taken_unix_ms.saturating_sub(s.started_unix_ms);
            LiveStreamState {
                app: s.app.clone(),
                stream: s.stream.clone(),
                duration_seconds: now.saturating_sub(s.started_unix_ms) / 1000,
                bitrate_bits_per_second: (s.bytes * 8 * 1000).checked_div(ms).unwrap_or(0),
                bytes: s.bytes,
                video_frames: s.video_frames,
                audio_frames: s.audio_frames,
            }
        })
        .collect();

    let q = queues::read(state)?;
    if !q.failed.is_empty() {
        problems.push(format!(
            "{} file(s) in failed/ (see below; move them away once dealt with)",
            q.failed.len()
        ));
    }
    let disk = Disk::read(state, min_free).ok();
    if let Some(d) = disk.filter(Disk::is_low) {
        problems.push(format!(
            "free disk {} bytes is below the watermark {min_free} ({} bytes)",
            d.available_bytes, d.min_free_bytes
        ));
    }
    let last_error = [(Stage::Remux, &remux), (Stage::Publish, &publish)]
        .into_iter()
        .filter_map(|(stage, r)| r.last_error.as_ref().map(|e| (stage, e, r)))
        .max_by_key(|(_, e, _)| e.at_unix_ms)
        .map(|(stage, e, r)| {
            let queued = if stage == Stage::Remux {
                q.remux
            } else {
                q.publish
            };
            if failing(r) && queued > 0 {
                problems.push(format!(
                    "{} is failing: {} (with {queued} file(s) queued)",
                    stage.name(),
                    e.what
                ));
            }
            StageError {
                stage: stage.name(),
                message: e.what.clone(),
                at: rfc3339(e.at_unix_ms),
                age_seconds: now.saturating_sub(e.at_unix_ms) / 1000,
            }
        });
    if let Some(e) = &deliver.last_error
        && failing(&deliver)
        && q.events > 0
    {
        problems.push(format!(
            "event delivery is failing: {} (with {} event(s) queued)",
            e.what, q.events
        ));
    }
    let events = EventsState {
        queued: q.events,
        delivered: deliver.done,
        delivery_failures: deliver.failures.values().sum(),
        last_delivery: deliver.last_done.as_ref().map(|e| when(e, now)),
        last_delivery_error: deliver.last_error.as_ref().map(|e| when(e, now)),
    };
    Ok(Report {
        state_dir: root.display().to_string(),
        problems,
        stages,
        live_streams,
        queues: QueueState {
            remux: q.remux,
            publish: q.publish,
            oldest_unpublished_age_seconds: q
                .oldest_unpublished_unix_ms
                .map(|t| now.saturating_sub(t) / 1000),
        },
        last_upload: publish.last_done.as_ref().map(|e| when(e, now)),
        last_error,
        events,
        failed: q.failed,
        disk,
    })
}

fn when(e: &Event, now: u64) -> When {
    When {
        what: e.what.clone(),
        at: rfc3339(e.at_unix_ms),
        age_seconds: now.saturating_sub(e.at_unix_ms) / 1000,
    }
}

fn rfc3339(unix_ms: u64) -> String {
    crate::utc::Civil::from_unix_millis(unix_ms as i64).rfc3339()
}

/// Whether a stage's last error came after its last success: it is failing now.
fn failing(r: &StageRecord) -> bool {
    r.last_error.as_ref().is_some_and(|e| {
        r.last_done
            .as_ref()
            .is_none_or(|d| d.at_unix_ms < e.at_unix_ms)
    })
}
