//! The `deliver` stage: drains `events/`, oldest first, handing each event to every configured
//! sink, one event at a time, so each stream's events arrive in the order they happened.
//!
//! Per event, each sink that takes it gets a marker beside it (`NAME.SINK.done`, created and
//! fsynced) unless it was the last one waiting; once every sink took the event, its file is
//! removed, then its markers. So a crash at any instant loses no event and re-offers it only to
//! the sinks that had not confirmed it: a webhook that answered 2xx is not POSTed the same event
//! again because the command failed. A sink may still get an event twice when the process dies
//! after the sink took it and before its marker reached the disk: delivery is at least once, and
//! an event's `id` is the same every time.
//!
//! An event a sink refuses (the command exits non-zero, the receiver answers something other
//! than 2xx or not within `--hook-timeout`) is retried with capped exponential backoff and holds
//! back the events behind it. The first failure is a warning; while it goes on, one warning a
//! minute says how many attempts failed and how many events wait. Without `--watch`, the stage
//! gives up after `--deliver-retry-for` with exit 75 (the unit restarts it); nothing is dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use serde::Deserialize;

use super::sink::Sink;
use super::{Args, queued};
use crate::exit::{self, Coded};
use crate::observe::record::{self, FailureKind, Stage};
use crate::publish::Backoff;
use crate::quieted::Quieted;
use crate::shutdown::Shutdown;
use crate::spool::{self, Mode, StateDir};

/// How often `--watch` looks for new events.
const POLL: Duration = Duration::from_millis(200);
/// At most one warning this often while an event keeps failing.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What delivery reads of a queued event (the bytes go out as they are).
#[derive(Deserialize)]
struct Head {
    id: String,
    kind: String,
    #[serde(default)]
    stream: String,
    #[serde(default)]
    chunk: Option<String>,
}

struct Deliverer {
    state: StateDir,
    sinks: Vec<Sink>,
    timeout: Duration,
}

/// Delivers the queued events; in `Mode::Watch`, keeps delivering new ones until shutdown.
pub async fn run(state: StateDir, args: Args, mode: Mode, mut shutdown: Shutdown) -> Result<()> {
    let sinks =
        Sink::configured(&args.sinks).map_err(|e| Coded::new(exit::USAGE, format!("{e:#}")))?;
    if sinks.is_empty() {
        return Err(Coded::new(
            exit::USAGE,
            format!(
                "no event sink is configured: set --hook-command (HOOK_COMMAND) or --webhook (WEBHOOK_URL); the {} queued event(s) stay in {}",
                queued(&state).map(|q| q.len()).unwrap_or(0),
                state.events().display()
            ),
        )
        .into());
    }
    // One deliverer at a time keeps the order; a second one (a drain beside `run`) leaves.
    let Some(_running) = crate::observe::running::hold(&state, "deliver")? else {
        log::info!(
            "another process delivers the events in {}; leaving them to it",
            state.events().display()
        );
        return Ok(());
    };
    let stage = Arc::new(Deliverer {
        state,
        sinks,
        timeout: args.hook_timeout,
    });
    log::info!(
        "delivering the events in {} to {}{}",
        stage.state.events().display(),
        stage
            .sinks
            .iter()
            .map(Sink::describe)
            .collect::<Vec<_>>()
            .join(" and "),
        if mode == Mode::Watch {
            " (watching)"
        } else {
            ""
        }
    );
    crate::systemd::status("delivering the events in events/");
    let mut backoff =
        Backoff::for_this_process(Duration::from_millis(250), args.deliver_backoff_cap);
    let mut trouble: Option<Trouble> = None;
    let mut delivered = 0u64;
    let said_left = spool::Leftovers::default();
    stage.blocking(|s| sweep_markers(&s.state.events())).await?;
    loop {
        if shutdown.is_requested() {
            return Ok(());
        }
        let files = stage.blocking(|s| queued(&s.state)).await?;
        if files.is_empty() {
            if mode != Mode::Watch {
                // A foreign file left in events/ would have the .path unit start us again and
                // again: under the unit, wait (saying so) until it is moved away.
                let left = said_left.clone();
                let lingering = stage
                    .blocking(move |s| {
                        sweep_markers(&s.state.events())?;
                        left.linger(mode, &s.state.events())
                    })
                    .await?;
                if !lingering {
                    log::info!("no events left to deliver: {delivered} event(s) delivered");
                    return Ok(());
                }
                if sleep_or_shutdown(spool::LINGER, &mut shutdown).await {
                    return Ok(());
                }
                continue;
            }
            if sleep_or_shutdown(POLL, &mut shutdown).await {
                return Ok(());
            }
            continue;
        }
        let waiting = files.len();
        let mut failure = None;
        for file in files {
            if shutdown.is_requested() {
                return Ok(());
            }
            let attempt = tokio::select! {
                r = stage.deliver_one(&file) => r?,
                _ = shutdown.requested() => return Ok(()),
            };
            match attempt {
                Attempt::Gone => {}
                Attempt::Delivered(id) => {
                    delivered += 1;
                    if let Some(t) = trouble.take() {
                        log::info!(
                            "event {id} delivered after {} failed attempt(s) over {}s; delivery goes on",
                            t.attempts,
                            t.since.elapsed().as_secs()
                        );
                    }
                    backoff.reset();
                    crate::systemd::status(&format!("delivered {delivered} event(s); last {id}"));
                }
                Attempt::Failed(f) => {
                    failure = Some(f);
                    break;
                }
            }
        }
        let Some(f) = failure else { continue };
        if trouble.as_ref().is_none_or(|t| t.id != f.id) {
            trouble = Some(Trouble::new(&f.id));
        }
        let t = trouble.as_mut().expect("set just above");
        t.attempts += 1;
        let delay = backoff.next_delay();
        let advice = format!(
            "events wait in {} (none is dropped); to fix: make the receiver answer 2xx, or the command exit 0, for this event",
            stage.state.events().display()
        );
        if t.log.note(t.since.elapsed()).is_some() {
            log::warn!(stream = f.stream.as_str(), chunk = f.chunk.as_str();
                "event {} not delivered: {}; {} failed attempt(s) over {}s, {waiting} event(s) waiting, next try in {:.1}s; {advice}",
                f.id, f.message, t.attempts, t.since.elapsed().as_secs(), delay.as_secs_f64());
        } else {
            log::debug!(
                "event {} not delivered: {}; retry in {:.1}s",
                f.id,
                f.message,
                delay.as_secs_f64()
            );
        }
        crate::systemd::status(&format!(
            "event {} not delivered for {}s ({} attempts), {waiting} waiting: {}",
            f.id,
            t.since.elapsed().as_secs(),
            t.attempts,
            f.message
        ));
        if mode != Mode::Watch && t.since.elapsed() >= args.deliver_retry_for {
            return Err(Coded::new(
                exit::TEMPORARY,
                format!(
                    "gave up after {} of retries: event {} not delivered: {}; {advice}",
                    crate::duration::format(args.deliver_retry_for),
                    f.id,
                    f.message
                ),
            )
            .into());
        }
        if sleep_or_shutdown(delay, &mut shutdown).await {
            return Ok(());
        }
    }
}

/// The event that keeps failing, since when, and which of its failures get a warning.
struct Trouble {
    id: String,
    since: Instant,
    attempts: u64,
    log: Quieted,
}

impl Trouble {
    fn new(id: &str) -> Trouble {
        Trouble {
            id: id.to_string(),
            since: Instant::now(),
            attempts: 0,
            log: Quieted::new(WARN_EVERY),
        }
    }
}

/// What one attempt at the oldest event came to.
enum Attempt {
    /// Every sink has it; its file is gone.
    Delivered(String),
    /// Its file went away before it was read (or it was not an event and went to `failed/`).
    Gone,
    Failed(Failure),
}

/// An attempt that did not deliver an event to every sink.
struct Failure {
    id: String,
    stream: String,
    chunk: String,
    message: String,
}

impl Deliverer {
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Deliverer) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let stage = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&stage))
            .await
            .context("a delivery task panicked")?
    }

    /// Offers one event to each sink that has not taken it yet. `Err` is a local failure (the
    /// state directory).
    async fn deliver_one(self: &Arc<Self>, file: &Path) -> Result<Attempt> {
        let path = file.to_path_buf();
        let read = self
            .blocking(move |s| {
                let bytes = match std::fs::read(&path) {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                let head: Head = match serde_json::from_slice(&bytes) {
                    Ok(h) => h,
                    Err(e) => {
                        let reason = format!("not an event: {e}");
                        log::error!(
                            "{}: {reason}; moved to {}",
                            path.display(),
                            s.state.failed().display()
                        );
                        s.state.fail(&path, &reason)?;
                        return Ok(None);
                    }
                };
                let done: Vec<bool> = s.sinks.iter().map(|k| marker(&path, k).exists()).collect();
                Ok(Some((bytes, head, done)))
            })
            .await?;
        let Some((bytes, head, done)) = read else {
            return Ok(Attempt::Gone);
        };
        let json = Bytes::from(bytes);
        let mut failures = Vec::new();
        let mut took = Vec::new();
        for (sink, done) in self.sinks.iter().zip(&done) {
            if *done {
                continue;
            }
            match sink
                .deliver(&json, &head.id, &head.kind, self.timeout)
                .await
            {
                Ok(()) => took.push(sink.clone()),
                Err(e) => failures.push(format!("{} {e:#}", sink.describe())),
            }
        }
        let all_taken = failures.is_empty();
        let file = file.to_path_buf();
        let id = head.id.clone();
        let message = failures.join("; ");
        let said = message.clone();
        self.blocking(move |s| {
            if all_taken {
                remove_event(&file, &s.sinks)?;
                record::done(&s.state, Stage::Deliver, &id);
            } else {
                for sink in &took {
                    mark(&file, sink)?;
                }
                record::failed(
                    &s.state,
                    Stage::Deliver,
                    FailureKind::Transient,
                    &format!("event {id}: {said}"),
                );
            }
            Ok(())
        })
        .await?;
        if all_taken {
            log::info!(stream = head.stream.as_str(), chunk = head.chunk.as_deref().unwrap_or("");
                "delivered event {} ({})", head.id, head.kind);
            return Ok(Attempt::Delivered(head.id));
        }
        Ok(Attempt::Failed(Failure {
            id: head.id,
            stream: head.stream,
            chunk: head.chunk.unwrap_or_default(),
            message,
        }))
    }
}

/// `NAME.json` → `NAME.SINK.done`: this sink took the event.
fn marker(event: &Path, sink: &Sink) -> PathBuf {
    event.with_extension(format!("{}.done", sink.name()))
}

fn mark(event: &Path, sink: &Sink) -> Result<()> {
    let path = marker(event, sink);
    std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    if let Some(dir) = path.parent() {
        spool::fsync_dir(dir).with_context(|| format!("fsync {}", dir.display()))?;
    }
    Ok(())
}

/// The event first (once it is gone nothing is offered again), then its markers.
fn remove_event(event: &Path, sinks: &[Sink]) -> Result<()> {
    remove_if_present(event)?;
    if let Some(dir) = event.parent() {
        spool::fsync_dir(dir).with_context(|| format!("fsync {}", dir.display()))?;
    }
    for sink in sinks {
        remove_if_present(&marker(event, sink))?;
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

/// Removes markers whose event is gone (a run that died between the two removals), so the
/// folder empties and its `.path` unit rests.
fn sweep_markers(dir: &Path) -> Result<()> {
    for name in spool::entries(dir)? {
        let Some(stem) = name
            .strip_suffix(".done")
            .and_then(|n| n.rsplit_once('.'))
            .map(|(s, _)| s)
        else {
            continue;
        };
        if !dir.join(format!("{stem}.json")).exists() {
            remove_if_present(&dir.join(&name))?;
        }
    }
    Ok(())
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.requested() => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_of_gone_events_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let sink = Sink::Command("true".into());
        let live = dir.join("1-1-1.json");
        std::fs::write(&live, b"{}").unwrap();
        mark(&live, &sink).unwrap();
        mark(&dir.join("2-1-1.json"), &sink).unwrap();
        sweep_markers(dir).unwrap();
        assert_eq!(
            spool::entries(dir).unwrap(),
            ["1-1-1.command.done", "1-1-1.json"]
        );
        remove_event(&live, &[sink]).unwrap();
        assert!(spool::entries(dir).unwrap().is_empty());
    }
}
