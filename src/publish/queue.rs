//! The publish loop over `publish/`: one file at a time, oldest first. Each MP4 goes up, then its
//! manifest; only when the destination has confirmed both do they move to `archive/`. Transient
//! faults wait (backoff with jitter) and retry; permanent ones stop the run with a clear line;
//! a file that can never be published goes to `failed/` with its reason. The steps in the state
//! directory are `job`'s, run off the async workers; this loop does the waiting and the uploads.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::backoff::Backoff;
use super::fault::Fault;
use super::job::{self, Examined, Upload};
use super::key::KeyTemplate;
use super::store::{Store, hex};
use crate::exit::{self, Coded};
use crate::naming::NodeId;
use crate::observe::record::{self, FailureKind, Stage};
use crate::shutdown::Shutdown;
use crate::spool::{self, Mode, StateDir};

/// How often watch mode looks for new files between sweeps.
const POLL: Duration = Duration::from_millis(200);

pub struct Queue {
    pub state: StateDir,
    /// Where `chunk.uploaded` and `chunk.failed` go.
    pub events: crate::events::Emitter,
    pub store: Store,
    pub template: KeyTemplate,
    pub prefix: String,
    pub node: NodeId,
    /// Drain mode gives up after this long without progress; watch mode (`None`) never does.
    pub retry_for: Option<Duration>,
    pub backoff_cap: Duration,
    pub keep_uploaded_for: Duration,
    pub quiet_for: Duration,
}

/// What happened to one inbox file.
#[derive(Debug, PartialEq, Eq)]
enum Done {
    Published,
    /// Not taken now (see [`Examined::Skipped`]).
    Skipped,
    /// Set aside in `failed/`.
    Failed,
}

impl Queue {
    pub async fn run(
        self,
        mode: Mode,
        sync_interval: Duration,
        mut shutdown: Shutdown,
    ) -> Result<()> {
        let queue = Arc::new(self);
        queue.drive(mode, sync_interval, &mut shutdown).await
    }

    async fn drive(
        self: &Arc<Self>,
        mode: Mode,
        sync_interval: Duration,
        shutdown: &mut Shutdown,
    ) -> Result<()> {
        let watch = mode == Mode::Watch;
        let said_left = spool::Leftovers::default();
        let mut backoff = Backoff::for_this_process(Duration::from_millis(250), self.backoff_cap);
        let mut trouble_since: Option<Instant> = None;
        let mut last_reported: Option<String> = None;
        let mut last_sweep: Option<Instant> = None;
        let mut uploaded = 0usize;
        let mut set_aside = 0usize;
        crate::systemd::status("publishing the files in publish/");
        loop {
            if shutdown.is_requested() {
                return Ok(());
            }
            if last_sweep.is_none_or(|t| t.elapsed() >= sync_interval) {
                self.sweep().await?;
                last_sweep = Some(Instant::now());
            }
            let files = self
                .blocking("listing publish/", |q| {
                    spool::list_inbox(&q.state.publish_inbox(), "mp4")
                })
                .await?;
            let mut published = 0usize;
            let mut fault = None;
            for file in files {
                if shutdown.is_requested() {
                    return Ok(());
                }
                let outcome = tokio::select! {
                    r = self.publish_one(&file) => r.map_err(|e| self.local_failure(e))?,
                    _ = shutdown.requested() => return Ok(()),
                };
                match outcome {
                    Ok(Done::Published) => {
                        published += 1;
                        uploaded += 1;
                        let (_, chunk) = spool::log_labels(&file);
                        crate::systemd::status(&format!(
                            "published {uploaded} chunk(s); last {chunk}"
                        ));
                        backoff.reset();
                        trouble_since = None;
                        last_reported = None;
                    }
                    Ok(Done::Failed) => {
                        published += 1;
                        set_aside += 1;
                    }
                    Ok(Done::Skipped) => {}
                    Err(f) => {
                        fault = Some((f, spool::log_labels(&file)));
                        break;
                    }
                }
            }
            match fault {
                None if !watch && published == 0 => {
                    self.sweep().await?;
                    let left = said_left.clone();
                    let lingering = self
                        .blocking("looking for files still arriving", move |q| {
                            left.linger(mode, &q.state.publish_inbox())
                        })
                        .await?;
                    if !lingering {
                        return self.finished(set_aside);
                    }
                    if sleep_or_shutdown(spool::LINGER, shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                None if !watch => continue,
                None => {}
                Some((Fault::Permanent(msg), (stream, chunk))) => {
                    self.record_failure(FailureKind::Permanent, &msg).await;
                    if !watch {
                        // main logs this as the run's one error line.
                        let text = format!(
                            "{msg}; files stay in {}",
                            self.state.publish_inbox().display()
                        );
                        return Err(Coded::new(exit::PERMANENT, text).into());
                    }
                    // A service keeps going: the operator may fix the credentials or bucket.
                    if last_reported.as_deref() != Some(msg.as_str()) {
                        log::error!(stream = stream.as_str(), chunk = chunk.as_str();
                            "{msg}; files stay queued, retrying every {}",
                            crate::duration::format(self.backoff_cap)
                        );
                        crate::systemd::status(&format!("stuck: {msg}"));
                        last_reported = Some(msg);
                    }
                    if sleep_or_shutdown(self.backoff_cap, shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                // Conflicts are settled per file in publish_one; should one get here, waiting
                // is the safe choice.
                Some((Fault::Transient(msg) | Fault::Conflict(msg), (stream, chunk))) => {
                    self.record_failure(FailureKind::Transient, &msg).await;
                    let since = *trouble_since.get_or_insert_with(Instant::now);
                    if let Some(limit) = self.retry_for
                        && since.elapsed() >= limit
                    {
                        let text = format!(
                            "gave up after {} of retries: {msg}; files stay in {}",
                            crate::duration::format(limit),
                            self.state.publish_inbox().display()
                        );
                        return Err(Coded::new(exit::TEMPORARY, text).into());
                    }
                    let delay = backoff.next_delay();
                    log::warn!(stream = stream.as_str(), chunk = chunk.as_str();
                        "{msg}; retry {} in {:.1}s",
                        backoff.attempts(),
                        delay.as_secs_f64()
                    );
                    crate::systemd::status(&format!(
                        "store unreachable for {}s, retry {} in {:.0}s: {msg}",
                        since.elapsed().as_secs(),
                        backoff.attempts(),
                        delay.as_secs_f64()
                    ));
                    if sleep_or_shutdown(delay, shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
            }
            if sleep_or_shutdown(POLL, shutdown).await {
                return Ok(());
            }
        }
    }

    /// How a drain ends: exit 65 when it set anything aside, so the unit shows it.
    fn finished(&self, set_aside: usize) -> Result<()> {
        if set_aside == 0 {
            return Ok(());
        }
        Err(Coded::new(
            exit::SET_ASIDE,
            format!(
                "{set_aside} file(s) could not be published and were moved to {} (each has a .reason file); the rest is done",
                self.state.failed().display()
            ),
        )
        .into())
    }

    /// A failure in the state directory: a full disk is temporary (the MP4 stays in publish/
    /// and the next run retries), anything else a runtime failure.
    fn local_failure(&self, e: anyhow::Error) -> anyhow::Error {
        if !crate::disk::is_full_anywhere(&e) {
            return e;
        }
        Coded::new(
            exit::TEMPORARY,
            format!(
                "disk full: {e:#}; the MP4 stays in {} untouched and is retried at the next run. To fix: {}",
                self.state.publish_inbox().display(),
                crate::disk::advice(self.state.root())
            ),
        )
        .into()
    }

    /// Runs `f` (the state directory's steps) off the async workers.
    async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        what: &'static str,
        f: impl FnOnce(&Queue) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let queue = Arc::clone(self);
        tokio::task::spawn_blocking(move || f(&queue))
            .await
            .with_context(|| format!("{what}: the task panicked"))?
    }

    async fn record_failure(self: &Arc<Self>, kind: FailureKind, message: &str) {
        let message = message.to_string();
        let _ = self
            .blocking("recording a failure", move |q| {
                record::failed(&q.state, Stage::Publish, kind, &message);
                Ok(())
            })
            .await;
    }

    /// Publishes one MP4 and its manifest. `Err` is for local failures (the state directory);
    /// `Ok(Err(fault))` for the destination's.
    async fn publish_one(self: &Arc<Self>, mp4: &Path) -> Result<Result<Done, Fault>> {
        let path = mp4.to_path_buf();
        let examined = self
            .blocking("examining an MP4 in publish/", move |q| {
                let keys = job::Keys {
                    template: &q.template,
                    prefix: &q.prefix,
                    node: &q.node,
                    quiet_for: q.quiet_for,
                };
                job::examine(&q.state, &keys, &path, &q.events)
            })
            .await?;
        let mut upload = match examined {
            Examined::Upload(u) => u,
            Examined::Skipped(why) => {
                log::debug!("{}: not now ({why})", mp4.display());
                return Ok(Ok(Done::Skipped));
            }
            Examined::Failed => return Ok(Ok(Done::Failed)),
        };
        let stored = match self.store.put_file(&upload.mp4, &upload.mp4_spec).await {
            Ok(s) => s,
            Err(Fault::Conflict(reason)) => return self.set_aside(upload, reason).await,
            Err(f) => return Ok(Err(f)),
        };
        let json = upload.final_manifest(&stored)?;
        match self.store.put_bytes(json.clone(), &upload.json_spec).await {
            Ok(_) => {}
            Err(Fault::Conflict(reason)) => return self.set_aside(upload, reason).await,
            Err(f) => return Ok(Err(f)),
        }
        let url = self.store.url(&upload.mp4_spec.key);
        log::info!(stream = upload.stream.as_str(), chunk = upload.stem.as_str();
            "{} {} ({} bytes, sha256 {}) as {url}",
            if stored.already_there {
                "already published"
            } else {
                "published"
            },
            upload.file_name,
            stored.size,
            hex(&stored.sha256),
        );
        self.blocking("archiving a published MP4", move |q| {
            // Queued before the MP4 leaves the inbox: a crash in between uploads it again (a
            // no-op for the store) and queues the same event.
            let manifest = serde_json::from_slice(&json).unwrap_or_default();
            let event = crate::events::Event::chunk_uploaded(
                &upload.stem,
                &upload.mp4_spec.key,
                &url,
                stored.size,
                manifest,
            );
            q.events.emit(&event)?;
            job::archive(&q.state, upload, &json)
        })
        .await?;
        Ok(Ok(Done::Published))
    }

    /// Moves an MP4 the destination refused for good to `failed/`.
    async fn set_aside(
        self: &Arc<Self>,
        upload: Box<Upload>,
        reason: String,
    ) -> Result<Result<Done, Fault>> {
        self.blocking("setting an MP4 aside", move |q| {
            job::set_aside(&q.state, &upload.mp4, &reason, &q.events)
        })
        .await?;
        Ok(Ok(Done::Failed))
    }

    async fn sweep(self: &Arc<Self>) -> Result<()> {
        let removed = self
            .blocking("sweeping publish/ and archive/", |q| {
                job::sweep(&q.state, q.keep_uploaded_for)
            })
            .await?;
        if removed > 0 {
            log::info!(
                "retention: deleted {removed} archived files older than {}",
                crate::duration::format(self.keep_uploaded_for)
            );
        }
        Ok(())
    }
}

async fn sleep_or_shutdown(d: Duration, shutdown: &mut Shutdown) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = shutdown.requested() => true,
    }
}
