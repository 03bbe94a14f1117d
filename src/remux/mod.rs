//! The remux stage: drains `remux/`, turning each finished FLV chunk into a faststart MP4 in
//! `publish/` (manifest first, then the MP4), and moves the FLV to `archive/`. Unusable inputs
//! go to `failed/` with a reason; the queue keeps draining.
//!
//! `--keep-flv-for`: archived FLVs older than that are deleted. Age alone is enough: an FLV only
//! reaches `archive/` after its MP4 was produced.

pub mod blocks;
pub mod copy;
pub mod direct;
pub mod job;
pub mod manifest;
pub mod mapped;
pub mod scan;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::exit::{self, Coded};
use crate::observe::record::{self, FailureKind, Stage};
use crate::spool::{self, Mode, StateDir};

pub use job::{Outcome, remux_one};

#[derive(Debug, Clone, clap::Args)]
#[group(id = "remux")]
pub struct Args {
    /// A file copied into `remux/` by hand is only taken once unmodified this long.
    #[arg(long = "quiet-seconds", env = "QUIET_SECONDS", value_parser = crate::duration::parse, default_value = "60")]
    pub quiet: Duration,

    /// Delete archived FLVs older than this once their MP4 exists (0: keep them).
    #[arg(long = "keep-flv-for", env = "FLV_MAX_AGE_SECONDS", value_parser = crate::duration::parse, default_value = "0")]
    pub keep_flv_for: Duration,

    /// Where events go: `run` passes its own; the `remux` stage alone reads the hooks'
    /// variables from the environment.
    #[arg(skip)]
    pub events: Option<crate::events::Emitter>,
}

/// How often `--watch` looks at the inbox.
const POLL: Duration = Duration::from_millis(200);
/// How often `--watch` looks for archived FLVs to delete.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// After a failure that is not the input's fault (I/O), wait this long before retrying it.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Drains the inbox; in `Mode::Watch`, keeps remuxing new chunks until shutdown.
pub async fn run(
    state: StateDir,
    args: Args,
    mode: Mode,
    mut shutdown: crate::shutdown::Shutdown,
) -> Result<()> {
    let _running = crate::observe::running::mark(&state, "remux");
    let events = match args.events.clone() {
        Some(e) => e,
        None => crate::events::Emitter::from_env(&state)?,
    };
    let start = state.clone();
    // Stale partials in tmp/ are gone already: `StateDir::open` removes them for every stage.
    tokio::task::spawn_blocking(move || clear_abandoned_outputs(&start)).await??;
    let mut retry_at: HashMap<PathBuf, Instant> = HashMap::new();
    let mut pruned_at: Option<Instant> = None;
    let mut tally = Tally::default();
    let said_left = spool::Leftovers::default();
    crate::systemd::status("remuxing the chunks in remux/");
    loop {
        let pass = drain(&state, &args, &events, &shutdown, &mut retry_at, &mut tally).await?;
        let prune_due = pruned_at.is_none_or(|t| t.elapsed() >= PRUNE_EVERY);
        if !args.keep_flv_for.is_zero() && prune_due {
            pruned_at = Some(Instant::now());
            let archive = state.archive();
            let age = args.keep_flv_for;
            let removed = tokio::task::spawn_blocking(move || {
                spool::remove_older_than(&archive, age, |p| {
                    p.extension().is_none_or(|e| e != "flv")
                })
            })
            .await??;
            if removed > 0 {
                log::info!(removed = removed; "deleted {removed} archived FLVs older than --keep-flv-for");
            }
        }
        if mode != Mode::Watch || shutdown.is_requested() {
            if pass.errors > 0 && pass.errors == pass.disk_full {
                return Err(Coded::new(
                    exit::TEMPORARY,
                    format!(
                        "the disk is full: {} chunk(s) could not be remuxed and stay in remux/ untouched; \
                         to fix: {}",
                        pass.errors,
                        crate::disk::advice(state.root())
                    ),
                )
                .into());
            }
            if pass.errors > 0 {
                anyhow::bail!(
                    "{} chunks could not be remuxed (see the log); they stay in remux/",
                    pass.errors
                );
            }
            let lingering =
                !shutdown.is_requested() && said_left.linger(mode, &state.remux_inbox())?;
            if !lingering {
                if tally.failed > 0 && mode != Mode::Watch {
                    return Err(Coded::new(
                        exit::SET_ASIDE,
                        format!(
                            "{} file(s) could not be remuxed and were moved to {} (each has a .reason file); the rest is done",
                            tally.failed,
                            state.failed().display()
                        ),
                    )
                    .into());
                }
                return Ok(());
            }
            tokio::select! {
                _ = tokio::time::sleep(spool::LINGER) => {}
                _ = shutdown.requested() => return Ok(()),
            }
            continue;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.requested() => return Ok(()),
        }
    }
}

/// What the run did so far: MP4s written (shown in `systemctl status`), inputs set aside.
#[derive(Debug, Default)]
struct Tally {
    remuxed: usize,
    failed: usize,
}

/// One pass's failures that were not the input's fault, and how many of them a full disk caused.
struct Pass {
    errors: usize,
    disk_full: usize,
}

/// One pass over the inbox, oldest first.
async fn drain(
    state: &StateDir,
    args: &Args,
    events: &crate::events::Emitter,
    shutdown: &crate::shutdown::Shutdown,
    retry_at: &mut HashMap<PathBuf, Instant>,
    tally: &mut Tally,
) -> Result<Pass> {
    let inbox = state.remux_inbox();
    let files = tokio::task::spawn_blocking(move || spool::list_inbox(&inbox, "flv")).await??;
    retry_at.retain(|p, _| files.contains(p));
    let mut pass = Pass {
        errors: 0,
        disk_full: 0,
    };
    for flv in files {
        if shutdown.is_requested() {
            break;
        }
        if retry_at.get(&flv).is_some_and(|t| Instant::now() < *t) {
            continue;
        }
        match one(state, &flv, args.quiet, events).await {
            Ok(outcome) => {
                retry_at.remove(&flv);
                match outcome {
                    Outcome::Done { mp4 } => {
                        tally.remuxed += 1;
                        let (_, chunk) = spool::log_labels(&mp4);
                        crate::systemd::status(&format!(
                            "remuxed {} chunk(s); last {chunk}",
                            tally.remuxed
                        ));
                    }
                    Outcome::Failed(_) => tally.failed += 1,
                    Outcome::Skipped(_) => {}
                }
            }
            Err(e) => {
                pass.errors += 1;
                retry_at.insert(flv.clone(), Instant::now() + RETRY_AFTER);
                let (stream, chunk) = spool::log_labels(&flv);
                if crate::disk::is_full_anywhere(&e) {
                    pass.disk_full += 1;
                    log::error!(stream = stream.as_str(), chunk = chunk.as_str();
                        "disk full while remuxing: {e:#}; the partial MP4 is removed and the FLV stays in remux/ untouched, retried in {}s. To fix: {}",
                        RETRY_AFTER.as_secs(), crate::disk::advice(state.root()));
                    crate::systemd::status("disk full: waiting for space to remux");
                } else {
                    log::error!(stream = stream.as_str(), chunk = chunk.as_str();
                        "remux failed, will retry in {}s: {e:#}", RETRY_AFTER.as_secs());
                }
            }
        }
    }
    Ok(pass)
}

async fn one(
    state: &StateDir,
    flv: &Path,
    quiet: Duration,
    events: &crate::events::Emitter,
) -> Result<Outcome> {
    let state = state.clone();
    let events = events.clone();
    let flv = flv.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let result = remux_one(&state, &flv, quiet, &events);
        // The stage record is a file written with fsync: updated here, off the async workers.
        match &result {
            Ok(Outcome::Done { mp4 }) => {
                record::done(&state, Stage::Remux, &spool::log_labels(mp4).1);
            }
            Ok(Outcome::Failed(reason)) => {
                let what = format!("{}: {reason}", flv.display());
                record::failed(&state, Stage::Remux, FailureKind::Rejected, &what);
            }
            Ok(Outcome::Skipped(_)) => {}
            Err(e) => {
                let what = format!("{}: {e:#}", flv.display());
                record::failed(&state, Stage::Remux, FailureKind::Local, &what);
            }
        }
        result
    })
    .await
    .context("remux task panicked")?
}

/// Removes `tmp/remux-STEM.mp4` files no remux is writing: their FLV is gone (done) or not locked
/// (its remux died). A locked FLV means another remux process is at work on that very file.
fn clear_abandoned_outputs(state: &StateDir) -> Result<()> {
    let tmp = state.tmp();
    let entries = std::fs::read_dir(&tmp).with_context(|| format!("listing {}", tmp.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name
            .strip_prefix(job::TMP_PREFIX)
            .and_then(|n| n.strip_suffix(".mp4"))
        else {
            continue;
        };
        let flv = state.remux_inbox().join(format!("{stem}.flv"));
        let in_use = flv.exists() && matches!(spool::try_lock(&flv), Ok(None));
        if !in_use {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}
