//! The publish loop over `publish/`: one file at a time, oldest first. Each MP4 goes up, then its
//! manifest; only when the destination has confirmed both do they move to `archive/`. Transient
//! faults wait (backoff with jitter) and retry; permanent ones stop the run with a clear line;
//! a file that can never be published goes to `failed/` with its reason.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};

use super::backoff::Backoff;
use super::fault::Fault;
use super::key::{self, KeyTemplate};
use super::store::{ObjectSpec, Store, hex, parse_sha256};
use crate::exit::{self, Coded};
use crate::manifest::{ChunkManifest, MANIFEST_VERSION};
use crate::observe::record::{self, FailureKind, Stage};
use crate::shutdown::Shutdown;
use crate::spool::{self, ChunkName, Mode, StateDir};

/// How often watch mode looks for new files between sweeps.
const POLL: Duration = Duration::from_millis(200);

pub struct Queue {
    pub state: StateDir,
    pub store: Store,
    pub template: KeyTemplate,
    pub prefix: String,
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
    /// Another process holds it, or it vanished meanwhile.
    Busy,
    /// Copied in by hand and still changing (or not yet quiet long enough).
    NotQuiet,
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
        let watch = mode == Mode::Watch;
        let mut said_left = Vec::new();
        let seed = u64::from(std::process::id())
            ^ SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as u64)
                .unwrap_or(0);
        let mut backoff = Backoff::new(Duration::from_millis(250), self.backoff_cap, seed);
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
                self.sweep()?;
                last_sweep = Some(Instant::now());
            }
            let files = spool::list_inbox(&self.state.publish_inbox(), "mp4")?;
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
                    Ok(Done::Busy | Done::NotQuiet) => {}
                    Err(f) => {
                        fault = Some((f, spool::log_labels(&file)));
                        break;
                    }
                }
            }
            match fault {
                None if !watch && published == 0 => {
                    self.sweep()?;
                    let lingering = mode == Mode::UntilEmpty
                        && spool::leftovers(&self.state.publish_inbox(), &mut said_left)?.is_some();
                    if !lingering {
                        return self.finished(set_aside);
                    }
                    if sleep_or_shutdown(spool::LINGER, &mut shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                None if !watch => continue,
                None => {}
                Some((Fault::Permanent(msg), (stream, chunk))) => {
                    record::failed(&self.state, Stage::Publish, FailureKind::Permanent, &msg);
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
                    if sleep_or_shutdown(self.backoff_cap, &mut shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
                // Conflicts are settled per file in publish_one; should one get here, waiting
                // is the safe choice.
                Some((Fault::Transient(msg) | Fault::Conflict(msg), (stream, chunk))) => {
                    record::failed(&self.state, Stage::Publish, FailureKind::Transient, &msg);
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
                    if sleep_or_shutdown(delay, &mut shutdown).await {
                        return Ok(());
                    }
                    continue;
                }
            }
            if sleep_or_shutdown(POLL, &mut shutdown).await {
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

    /// Publishes one MP4 and its manifest. `Err` is for local failures (the state directory);
    /// `Ok(Err(fault))` for the destination's.
    async fn publish_one(&self, mp4: &Path) -> Result<Result<Done, Fault>> {
        let Some(file_name) = mp4.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            return Ok(Ok(Done::Busy));
        };
        let lock = match spool::try_lock(mp4) {
            Ok(Some(lock)) => lock,
            Ok(None) => return Ok(Ok(Done::Busy)),
            Err(_) if !mp4.exists() => return Ok(Ok(Done::Busy)),
            Err(e) => return Err(e),
        };
        let json_path = mp4.with_extension("json");
        let has_manifest = json_path.exists();
        // Our stages rename complete files in; anything else must have stopped changing.
        if !has_manifest && spool::unmodified_for(mp4)? < self.quiet_for {
            return Ok(Ok(Done::NotQuiet));
        }
        let chunk = ChunkName::parse(&file_name);
        let stem = file_name
            .strip_suffix(".mp4")
            .unwrap_or(&file_name)
            .to_string();
        let json_name = format!("{stem}.json");
        // A chunk's objects go where the key template says; a file copied in by hand under
        // another name goes to `{prefix}/{file}` (see `key::hand_copied`).
        let (mp4_key, json_key) = match &chunk {
            Some(c) => (
                self.template.render(&self.prefix, c, &file_name),
                self.template.render(&self.prefix, c, &json_name),
            ),
            None => (
                key::hand_copied(&self.prefix, &file_name),
                key::hand_copied(&self.prefix, &json_name),
            ),
        };
        let mut manifest = if has_manifest {
            match read_manifest(&json_path) {
                Ok(m) => m,
                Err(e) => return self.set_aside(mp4, &format!("{e:#}")).map(Ok),
            }
        } else {
            manifest_from_name(&stem, chunk.as_ref())
        };
        let stream = chunk
            .as_ref()
            .map_or_else(|| manifest.stream.clone(), |c| c.stream.clone());
        let mut metadata = BTreeMap::new();
        metadata.insert("stream".to_string(), stream.clone());
        if !manifest.utc_start.is_empty() {
            metadata.insert("utc-start".to_string(), manifest.utc_start.clone());
        }
        metadata.insert(
            "duration".to_string(),
            format!("{:.3}", manifest.duration_ms as f64 / 1000.0),
        );
        let mp4_spec = ObjectSpec {
            key: mp4_key,
            content_type: "video/mp4",
            metadata: metadata.clone(),
        };
        // Remux may have hashed the MP4 as it wrote it; then a large upload reads it only once.
        let size = fs::metadata(mp4)
            .with_context(|| format!("stat {}", mp4.display()))?
            .len();
        let known_sha256 = match (&manifest.sha256, manifest.mp4_bytes) {
            (Some(text), Some(bytes)) if bytes == size => parse_sha256(text),
            _ => None,
        };
        let stored = match self.store.put_file(mp4, &mp4_spec, known_sha256).await {
            Ok(s) => s,
            Err(Fault::Conflict(reason)) => return self.set_aside(mp4, &reason).map(Ok),
            Err(f) => return Ok(Err(f)),
        };
        manifest.mp4_bytes = Some(stored.size);
        manifest.sha256 = Some(hex(&stored.sha256));
        let mut json = serde_json::to_vec_pretty(&manifest).context("encoding manifest")?;
        json.push(b'\n');
        let json_spec = ObjectSpec {
            key: json_key,
            content_type: "application/json",
            metadata,
        };
        match self.store.put_bytes(json.clone(), &json_spec).await {
            Ok(_) => {}
            Err(Fault::Conflict(reason)) => return self.set_aside(mp4, &reason).map(Ok),
            Err(f) => return Ok(Err(f)),
        }
        log::info!(stream = stream.as_str(), chunk = stem.as_str();
            "{} {file_name} ({} bytes, sha256 {}) as {}",
            if stored.already_there {
                "already published"
            } else {
                "published"
            },
            stored.size,
            hex(&stored.sha256),
            self.store.url(&mp4_spec.key)
        );
        record::done(&self.state, Stage::Publish, &mp4_spec.key);
        // Retention counts from the upload, not from when remux wrote the file.
        let _ = lock.set_modified(SystemTime::now());
        let archive = self.state.archive();
        spool::write_atomically(&self.state.tmp(), &archive.join(&json_name), &json)?;
        spool::handoff(mp4, &archive)?;
        drop(lock);
        remove_if_present(&json_path)?;
        Ok(Ok(Done::Published))
    }

    /// Moves the MP4 (and its manifest) to `failed/` with the reason.
    fn set_aside(&self, mp4: &Path, reason: &str) -> Result<Done> {
        let (stream, chunk) = spool::log_labels(mp4);
        log::error!(stream = stream.as_str(), chunk = chunk.as_str();
            "{}: {reason}; moved to {}",
            mp4.display(),
            self.state.failed().display()
        );
        self.state.fail(mp4, reason)?;
        record::failed(
            &self.state,
            Stage::Publish,
            FailureKind::Rejected,
            &format!("{}: {reason}", mp4.display()),
        );
        let json = mp4.with_extension("json");
        if json.exists() {
            spool::handoff(&json, &self.state.failed())?;
        }
        Ok(Done::Failed)
    }

    /// Housekeeping: manifests whose MP4 was archived by a run that died before removing them,
    /// and retention of archived files.
    fn sweep(&self) -> Result<()> {
        let inbox = self.state.publish_inbox();
        let archive = self.state.archive();
        for json in spool::list_inbox(&inbox, "json")? {
            let mp4 = json.with_extension("mp4");
            let Some(name) = mp4.file_name() else {
                continue;
            };
            if !mp4.exists() && archive.join(name).exists() {
                let archived_json = json.file_name().map(|n| archive.join(n));
                if archived_json.is_some_and(|p| p.exists()) {
                    remove_if_present(&json)?;
                } else {
                    spool::handoff(&json, &archive)?;
                }
            }
        }
        let removed = spool::remove_older_than(&archive, self.keep_uploaded_for, |p| {
            !matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("mp4") | Some("json")
            )
        })?;
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

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                spool::fsync_dir(dir).with_context(|| format!("fsync {}", dir.display()))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

fn read_manifest(path: &Path) -> Result<ChunkManifest> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a chunk manifest", path.display()))
}

/// For an MP4 copied in by hand, without a manifest: what its name tells. A chunk name tells
/// app, stream, sequence and start; any other name only itself.
fn manifest_from_name(stem: &str, chunk: Option<&ChunkName>) -> ChunkManifest {
    ChunkManifest {
        version: MANIFEST_VERSION,
        name: stem.to_string(),
        app: chunk.map_or_else(|| "-".to_string(), |c| c.app.clone()),
        stream: chunk.map_or_else(|| stem.to_string(), |c| c.stream.clone()),
        sequence: chunk.map_or(1, |c| c.seq),
        previous: None,
        utc_start: chunk.map(|c| c.start.rfc3339()).unwrap_or_default(),
        stream_offset_ms: 0,
        duration_ms: 0,
        video: None,
        audio: None,
        starts_without_keyframe: false,
        mp4_bytes: None,
        sha256: None,
    }
}
