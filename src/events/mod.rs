//! Event hooks: what happened to streams and chunks, for a program of the operator's
//! (`--hook-command`) or an HTTP receiver (`--webhook`), delivered at least once.
//!
//! Producers (ingest, remux, publish) never talk to a receiver. Each writes its event as one
//! file into `events/` of the state directory, atomically (`spool::write_atomically`: `tmp/`,
//! fsync, rename, fsync the folder), before the step it reports is committed: a crash in between
//! redoes the step, which writes the same event (same `id`) again. Writing costs one small
//! fsynced file and never waits on a receiver, so a receiver that hangs or is down cannot slow
//! recording, remux or upload. The `deliver` stage ([`deliver`]) drains the folder, oldest
//! first, and removes an event's file only once every configured sink took it.
//!
//! Events are written only when a sink is configured (`--hook-command`, `--webhook`, or their
//! variables in the stage's environment), so a recorder without hooks queues nothing.
//!
//! File names sort by creation time (`{µs since the epoch}-{pid}-{counter}.json`), so delivery in
//! name order keeps each stream's events in the order they happened.

pub mod deliver;
mod sink;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::naming::{ChunkName, StreamNames};
use crate::spool::{self, StateDir};
use crate::utc::Civil;

/// Where events go. The producers (ingest, remux, publish) read only these, to know whether
/// to queue events at all; everything about delivery is `deliver`'s.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(id = "event-sinks")]
pub struct Sinks {
    /// Run this shell command for every event, with the event's JSON on stdin (`sh -c`); exit
    /// status 0 means delivered. Processes it leaves running in the background are killed
    /// when it exits. Also read by ingest, remux and publish: with it set, they queue events
    /// in events/.
    #[arg(long, env = "HOOK_COMMAND")]
    pub hook_command: Option<String>,

    /// POST every event's JSON to this http:// URL; a 2xx answer means delivered. Also read by
    /// ingest, remux and publish: with it set, they queue events in events/.
    #[arg(long, env = "WEBHOOK_URL")]
    pub webhook: Option<String>,
}

impl Sinks {
    /// Whether any sink is configured (an empty value is none).
    pub fn any(&self) -> bool {
        [&self.hook_command, &self.webhook]
            .iter()
            .any(|s| s.as_deref().is_some_and(|v| !v.trim().is_empty()))
    }
}

/// The hooks' settings: the sinks (for `deliver` and `run`) and how delivery retries.
#[derive(Debug, Clone, Default, clap::Args)]
#[group(id = "events")]
pub struct Args {
    #[command(flatten)]
    pub sinks: Sinks,

    /// An attempt (the command's run, the POST) that takes longer than this fails, and is retried.
    #[arg(long, env = "HOOK_TIMEOUT", value_parser = crate::duration::parse, default_value = "10s")]
    pub hook_timeout: Duration,

    /// Longest wait between two attempts (exponential backoff with jitter up to this).
    #[arg(long, env = "DELIVER_BACKOFF_CAP", value_parser = crate::duration::parse, default_value = "60s")]
    pub deliver_backoff_cap: Duration,

    /// Without --watch: after the oldest event failed for this long, exit 75 (events stay
    /// queued; the unit is restarted 30 s later). With --watch (and `run`) there is no limit.
    #[arg(long, env = "DELIVER_RETRY_FOR", value_parser = crate::duration::parse, default_value = "10m")]
    pub deliver_retry_for: Duration,
}

/// What an event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    /// A publisher began a session on a stream (ingest).
    #[serde(rename = "stream.started")]
    StreamStarted,
    /// A chunk was finished and handed to remux (ingest).
    #[serde(rename = "chunk.recorded")]
    ChunkRecorded,
    /// A chunk's MP4 and manifest were uploaded and verified (publish).
    #[serde(rename = "chunk.uploaded")]
    ChunkUploaded,
    /// A stage set a chunk aside in `failed/` (remux, publish, ingest's salvage).
    #[serde(rename = "chunk.failed")]
    ChunkFailed,
    /// A session ended, its last chunk handed on (ingest).
    #[serde(rename = "stream.stopped")]
    StreamStopped,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::StreamStarted => "stream.started",
            Kind::ChunkRecorded => "chunk.recorded",
            Kind::ChunkUploaded => "chunk.uploaded",
            Kind::ChunkFailed => "chunk.failed",
            Kind::StreamStopped => "stream.stopped",
        }
    }
}

/// One event, as delivered (JSON). `id` is the same every time the same thing is reported
/// (retries, a step redone after a crash): `KIND:CHUNK` for chunk events, `KIND:APP_STREAM:START`
/// (the session's UTC start) for stream events. Receivers deduplicate by it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: String,
    pub kind: Kind,
    /// When the event was written (RFC 3339, UTC).
    pub time: String,
    /// App and stream as chunk names spell them (`naming`), as in the manifest.
    pub app: String,
    pub stream: String,
    /// The chunk's name without extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk: Option<String>,
    /// Stream events: when the session began (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_start: Option<String>,
    /// `chunk.recorded`: the FLV's size; `chunk.uploaded`: the MP4's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// `chunk.recorded`: frames (audio and video) in the chunk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    /// `chunk.uploaded`: the MP4's object key and URL (`s3://bucket/key`, or a path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `chunk.uploaded`: the manifest as uploaded beside the MP4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<serde_json::Value>,
    /// `chunk.failed`: the stage that set the file aside, the file in `failed/`, and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `stream.started` of a publisher back within `--reconnect-grace`: the chunk its
    /// recording continues after, and how long it was away (from its last frame).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continues_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub away_ms: Option<u64>,
    /// `stream.stopped`: chunks the session handed on, and the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_chunk: Option<String>,
}

impl Event {
    fn new(kind: Kind, id_tail: &str, app: &str, stream: &str, now: Civil) -> Event {
        Event {
            id: format!("{}:{id_tail}", kind.name()),
            kind,
            time: now.rfc3339(),
            app: app.to_string(),
            stream: stream.to_string(),
            chunk: None,
            session_start: None,
            bytes: None,
            frames: None,
            key: None,
            url: None,
            manifest: None,
            stage: None,
            file: None,
            reason: None,
            continues_after: None,
            away_ms: None,
            chunks: None,
            last_chunk: None,
        }
    }

    fn of_session(kind: Kind, names: &StreamNames, start: Civil, now: Civil) -> Event {
        let tail = format!("{}_{}:{}", names.app(), names.stream(), start.compact());
        let mut e = Event::new(kind, &tail, names.app(), names.stream(), now);
        e.session_start = Some(start.rfc3339());
        e
    }

    /// An event about the chunk `stem` (its name without extension; any file name for a file
    /// copied in by hand, whose app is then empty and whose stream is the stem).
    fn of_chunk(kind: Kind, stem: &str, now: Civil) -> Event {
        let (app, stream) = match ChunkName::parse(&format!("{stem}.flv")) {
            Some(c) => (c.app, c.stream),
            None => (String::new(), stem.to_string()),
        };
        let mut e = Event::new(kind, stem, &app, &stream, now);
        e.chunk = Some(stem.to_string());
        e
    }

    pub fn stream_started(names: &StreamNames, start: Civil) -> Event {
        Event::of_session(Kind::StreamStarted, names, start, now())
    }

    pub fn stream_stopped(
        names: &StreamNames,
        start: Civil,
        chunks: u32,
        last_chunk: Option<String>,
    ) -> Event {
        let mut e = Event::of_session(Kind::StreamStopped, names, start, now());
        e.chunks = Some(chunks);
        e.last_chunk = last_chunk;
        e
    }

    pub fn chunk_recorded(stem: &str, bytes: u64, frames: Option<u64>) -> Event {
        let mut e = Event::of_chunk(Kind::ChunkRecorded, stem, now());
        e.bytes = Some(bytes);
        e.frames = frames;
        e
    }

    pub fn chunk_uploaded(
        stem: &str,
        key: &str,
        url: &str,
        bytes: u64,
        manifest: serde_json::Value,
    ) -> Event {
        let mut e = Event::of_chunk(Kind::ChunkUploaded, stem, now());
        e.key = Some(key.to_string());
        e.url = Some(url.to_string());
        e.bytes = Some(bytes);
        e.manifest = Some(manifest);
        e
    }

    /// `file` is the name the input has in `failed/`.
    pub fn chunk_failed(stage: &str, file: &str, reason: &str) -> Event {
        let stem = file.rsplit_once('.').map_or(file, |(stem, _)| stem);
        let mut e = Event::of_chunk(Kind::ChunkFailed, stem, now());
        e.stage = Some(stage.to_string());
        e.file = Some(file.to_string());
        e.reason = Some(reason.to_string());
        e
    }
}

fn now() -> Civil {
    Civil::from_unix_millis(i64::try_from(crate::observe::unix_ms_now()).unwrap_or(i64::MAX))
}

/// Writes events into `events/`, or nothing when no sink is configured.
#[derive(Debug, Clone, Default)]
pub struct Emitter {
    state: Option<StateDir>,
}

/// Tells apart events one process writes within one microsecond.
static WRITTEN: AtomicU64 = AtomicU64::new(0);

impl Emitter {
    /// Events go to `state`'s `events/` when `on`.
    pub fn new(state: &StateDir, on: bool) -> Emitter {
        Emitter {
            state: on.then(|| state.clone()),
        }
    }

    /// On when the environment configures a sink (`HOOK_COMMAND`, `WEBHOOK_URL`): the stages
    /// run as their own processes (the units) share one environment file with `deliver`. Only
    /// the sinks are read: a bad delivery setting (`HOOK_TIMEOUT`, ...) is `deliver`'s to
    /// report and must not stop recording, remux or upload.
    pub fn from_env(state: &StateDir) -> Result<Emitter> {
        let sinks: Sinks = crate::cli::args_from_env("the event hooks' sinks")?;
        Ok(Emitter::new(state, sinks.any()))
    }

    pub fn is_on(&self) -> bool {
        self.state.is_some()
    }

    /// Queues `event` durably: when this returns `Ok`, the event survives a crash. Blocking
    /// (a small file and two fsyncs): call it off the async workers.
    pub fn emit(&self, event: &Event) -> Result<()> {
        let Some(state) = &self.state else {
            return Ok(());
        };
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_micros();
        let n = WRITTEN.fetch_add(1, Ordering::Relaxed) % 1_000_000;
        let name = format!("{micros:016}-{:07}-{n:06}.json", std::process::id());
        let mut json = serde_json::to_vec(event).context("encoding an event")?;
        json.push(b'\n');
        spool::write_atomically(&state.tmp(), &state.events().join(&name), &json)
            .with_context(|| format!("queueing event {}", event.id))?;
        log::debug!("queued event {} as events/{name}", event.id);
        Ok(())
    }

    /// [`Emitter::emit`] for a producer that must go on without the event (ingest: recording
    /// comes first): a failure is logged with what it costs.
    pub fn emit_or_log(&self, event: &Event) {
        if let Err(e) = self.emit(event) {
            log::error!(
                "{e:#}; this event is lost (the recording is not). To fix: free space or make {} writable",
                self.state
                    .as_ref()
                    .map_or(String::new(), |s| s.events().display().to_string())
            );
        }
    }
}

/// The queued events, oldest first.
pub fn queued(state: &StateDir) -> Result<Vec<std::path::PathBuf>> {
    spool::list_inbox(&state.events(), "json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_files_sort_by_time() {
        let (_tmp, state) = StateDir::temporary();
        let names = StreamNames::new("live", "cam 1").unwrap();
        let start = Civil::from_unix_millis(1_790_000_000_123);
        let stem = ChunkName::of(
            start,
            &names,
            1,
            &crate::naming::NodeId::new("rec1").unwrap(),
        )
        .stem();
        let a = Event::chunk_recorded(&stem, 10, Some(3));
        let b = Event::chunk_recorded(&stem, 10, Some(3));
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, format!("chunk.recorded:{stem}"));
        assert_eq!((a.app.as_str(), a.stream.as_str()), ("live", "cam%201"));
        let started = Event::stream_started(&names, start);
        assert_eq!(
            started.id,
            "stream.started:live_cam%201:20260921T141320.123Z"
        );
        let failed = Event::chunk_failed("remux", &format!("{stem}.flv"), "not an FLV");
        assert_eq!(failed.id, format!("chunk.failed:{stem}"));

        let off = Emitter::new(&state, false);
        off.emit(&a).unwrap();
        assert!(queued(&state).unwrap().is_empty());
        let on = Emitter::new(&state, true);
        for e in [&started, &a, &failed] {
            on.emit(e).unwrap();
        }
        let files = queued(&state).unwrap();
        let kinds: Vec<Kind> = files
            .iter()
            .map(|p| {
                serde_json::from_slice::<Event>(&std::fs::read(p).unwrap())
                    .unwrap()
                    .kind
            })
            .collect();
        assert_eq!(
            kinds,
            [Kind::StreamStarted, Kind::ChunkRecorded, Kind::ChunkFailed]
        );
    }
}
