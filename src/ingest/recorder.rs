//! One publish session's chunk files. Runs on its own thread (file writes and fsync block), fed
//! the session's messages in arrival order; asks the splitter where chunks begin, writes each
//! chunk to `recording/` under an exclusive lock, and hands every finished chunk to `remux/`.
//! Dropping a recorder finishes its open chunk, so a connection that dies in any way (EOF,
//! timeout, protocol error, panic) still hands on what it recorded.
//!
//! A full disk (ENOSPC, EDQUOT) does not end the session: the open chunk is cut back to its
//! last whole tag and handed on, then frames are dropped and counted while the publisher stays
//! connected. At each split point (keyframe) the recorder looks whether the file system has
//! [`RESUME_FREE`] again and, if so, starts a new chunk there. The chunk after an outage skips
//! one sequence number, so the manifests show the gap.
//!
//! A publisher that comes back within `--reconnect-grace` continues the recording its last
//! publish left (see `reconnect`): the recorder keeps that record in `sessions/` as chunks start
//! and are handed on, and completes it with the last frame when the publisher goes.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use bytes::Bytes;

use crate::chunk::{Action, Message, Refused, SplitReason, Splitter};
use crate::disk::{self, DiskSpace};
use crate::events::{Emitter, Event};
use crate::flv::{FlvWriter, TagType};
use crate::ingest::chunk_file::ChunkFile;
use crate::ingest::connection::Shared;
use crate::ingest::metadata::{ChunkFields, chunk_metadata};
use crate::ingest::sessions::Sessions;
use crate::ingest::status::{Stats, StreamCounters};
use crate::manifest::Gap;
use crate::naming::{ChunkName, NodeId, StreamNames};
use crate::reconnect::{self, Decision, Ended, OpenChunk as OpenRecord, SessionRecord};
use crate::spool::{self, StateDir};
use crate::utc::Civil;

/// A message of a publishing stream, as the connection hands it over.
#[derive(Debug, Clone)]
pub enum Input {
    Metadata(Bytes),
    Audio { timestamp: u64, body: Bytes },
    Video { timestamp: u64, body: Bytes },
}

impl Input {
    /// The message, borrowed, as the splitter takes it.
    pub fn message(&self) -> Message<'_> {
        match self {
            Input::Metadata(body) => Message::Metadata(body),
            Input::Audio { timestamp, body } => Message::Audio {
                timestamp: *timestamp,
                body,
            },
            Input::Video { timestamp, body } => Message::Video {
                timestamp: *timestamp,
                body,
            },
        }
    }
}

/// Records one publish session of one stream into chunks.
pub struct StreamRecorder {
    state: StateDir,
    events: Emitter,
    /// When the session began (wall clock): its stream events' identity.
    session_start: Civil,
    /// Chunks handed on in this session.
    handed_on: u32,
    names: StreamNames,
    node: NodeId,
    splitter: Splitter,
    open: Option<OpenChunk>,
    seq: u32,
    previous: Option<String>,
    session_first_timestamp: Option<u64>,
    seen_audio: bool,
    seen_video: bool,
    stats: Arc<Stats>,
    /// Set while the disk is full: frames are dropped until a split point finds room.
    outage: Option<Outage>,
    counters: Arc<StreamCounters>,
    /// The splitter's wall clock (its pacing of chunk starts, the UTC starts of chunks) counts
    /// from here; the splitter knows the UTC time of this instant (`origin_ms`).
    created: Instant,
    origin_ms: i64,
    /// The time of the message being pushed, since `created`.
    now: std::time::Duration,
    /// The stream's recording as `sessions/` keeps it (reconnect continuity).
    sessions: Sessions,
    record: SessionRecord,
    /// Set by a publish that continues a recording, until its first chunk records the gap.
    resumed: Option<Ended>,
    /// Added to the media time of this publish to give stream offsets: after a reconnect, the
    /// offset the recording had reached plus the time away.
    offset_base: u64,
    /// The last frame written: when it arrived (since `created`) and its stream offset.
    last_frame: Option<(std::time::Duration, u64)>,
}

struct OpenChunk {
    stem: String,
    path: PathBuf,
    writer: FlvWriter<ChunkFile>,
    /// Writes before the first frame: the file header and the header tags.
    header_writes: u64,
    last_timestamp: u32,
    /// The stream offset of the chunk's first frame.
    offset_ms: u64,
}

struct Outage {
    since: Instant,
    dropped: u64,
}

/// Free space a split point must see before recording resumes after a full disk: enough for a
/// few seconds of a high-bitrate stream, so a disk at the edge does not produce a chunk per
/// keyframe.
pub const RESUME_FREE: u64 = 8 << 20;

impl StreamRecorder {
    pub fn new(
        shared: &Shared,
        names: StreamNames,
        counters: Arc<StreamCounters>,
    ) -> StreamRecorder {
        // Read together: from here on, the UTC time of a frame is this plus the monotonic
        // time since, so a clock step during a session does not reorder its chunks.
        let created = Instant::now();
        let origin = unix_ms_now();
        let record = SessionRecord::begin(&names, origin);
        StreamRecorder {
            state: shared.state.clone(),
            events: shared.events.clone(),
            session_start: Civil::from_unix_millis(origin),
            handed_on: 0,
            names,
            node: shared.node.clone(),
            splitter: Splitter::new(shared.split).with_utc_origin(origin),
            open: None,
            seq: 0,
            previous: None,
            session_first_timestamp: None,
            seen_audio: false,
            seen_video: false,
            stats: shared.stats.clone(),
            outage: None,
            counters,
            created,
            origin_ms: origin,
            now: std::time::Duration::ZERO,
            sessions: shared.sessions.clone(),
            record,
            resumed: None,
            offset_base: 0,
            last_frame: None,
        }
    }

    /// Decides whether this publish continues the stream's last recording (it came back within
    /// `--reconnect-grace`) and queues the `stream.started` event. Reads `sessions/`, so it
    /// runs on the recorder's thread.
    pub fn begin(&mut self) {
        let grace_ms = self.sessions.grace_ms();
        let decision = reconnect::decide(self.sessions.load(&self.names), self.origin_ms, grace_ms);
        let mut started = Event::stream_started(&self.names, self.session_start);
        match decision {
            Decision::Resume { record, away_ms } => {
                log::info!(
                    stream = self.names.stream(),
                    previous = record.previous.as_deref().unwrap_or("");
                    "publisher back after {:.1}s, within --reconnect-grace ({}s): the recording \
                     continues at sequence {} after {}",
                    away_ms as f64 / 1000.0,
                    grace_ms / 1000,
                    record.sequence + 1,
                    record.previous.as_deref().unwrap_or("no chunk")
                );
                self.seq = record.sequence;
                self.previous = record.previous.clone();
                self.resumed = record.ended;
                started.continues_after = record.previous.clone();
                started.away_ms = Some(away_ms);
                self.record = SessionRecord {
                    publish_start_ms: self.origin_ms,
                    publish_chunks: 0,
                    ..record
                };
            }
            Decision::New {
                expired_ms: Some(ago),
            } if grace_ms > 0 => log::info!(
                stream = self.names.stream();
                "new recording (sequence 1): the stream's last publish ended {:.1}s ago, past \
                 --reconnect-grace ({}s)",
                ago as f64 / 1000.0,
                grace_ms / 1000
            ),
            Decision::New { .. } => {}
        }
        self.events.emit_or_log(&started);
    }

    /// Writes the stream's record; a failure costs the chain after a reconnect, never a frame,
    /// so it is logged and recording goes on.
    fn save_record(&self) {
        if let Err(e) = self.sessions.save(&self.names, &self.record) {
            log::warn!(
                stream = self.names.stream();
                "{e:#}; a reconnect within --reconnect-grace may start a new recording instead \
                 of continuing this one. To fix: see that the state directory is writable"
            );
        }
    }

    /// The stream as its chunk names spell it (safe in logs: no control characters).
    pub fn label(&self) -> &str {
        self.names.stream()
    }

    /// Takes the next message of the session.
    pub fn push(&mut self, input: &Input) -> Result<()> {
        let msg = input.message();
        let (tag_type, body) = (msg.tag_type(), msg.body());
        match tag_type {
            TagType::Audio => self.seen_audio = true,
            TagType::Video => self.seen_video = true,
            TagType::Script => {}
        }
        let dropped_before = self.splitter.dropped();
        self.now = self.created.elapsed();
        match self.splitter.push_at(self.now, &msg) {
            Action::Remember => {
                let dropped = self.splitter.dropped() - dropped_before;
                Stats::add(&self.stats.frames_dropped, dropped);
                Stats::add(&self.counters.dropped, dropped);
                self.oversized()
            }
            Action::Write { .. } if self.outage.is_some() => {
                self.dropped(1);
                Ok(())
            }
            Action::Write { timestamp } => self.write(tag_type, timestamp, body),
            Action::StartChunk { timestamp, reason } => {
                self.finish()?;
                if self.outage.is_some() && !self.room_to_resume() {
                    self.dropped(1);
                    self.splitter.cut_at_next_split_point();
                    return Ok(());
                }
                match self.start(reason) {
                    Ok(()) => {}
                    Err(e) if disk::is_full_anywhere(&e) => {
                        self.disk_full(&format!("{e:#}"), 1);
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
                self.write(tag_type, timestamp, body)?;
                if self.open.is_some()
                    && let Some(outage) = self.outage.take()
                {
                    let stem = self.open.as_ref().map_or("", |c| c.stem.as_str());
                    log::warn!(
                        stream = self.names.stream(),
                        chunk = stem,
                        dropped = outage.dropped;
                        "the disk has room again: recording resumed at a keyframe after {} frame(s) dropped over {:.1}s",
                        outage.dropped,
                        outage.since.elapsed().as_secs_f64()
                    );
                }
                Ok(())
            }
        }
    }

    /// Says what the splitter dropped for its size: metadata is only informational, so the
    /// session goes on without it; the frames after a dropped sequence header could not be
    /// decoded, so that one ends the session (what was recorded is handed on).
    fn oversized(&mut self) -> Result<()> {
        match self.splitter.take_refused() {
            None => Ok(()),
            Some(Refused::Metadata { bytes }) => {
                log::warn!(
                    stream = self.names.stream();
                    "metadata of {bytes} bytes dropped: over the {} byte cap; the chunks keep the \
                     previous metadata. To fix: send less onMetaData from the publisher",
                    crate::chunk::MAX_METADATA_BYTES
                );
                Ok(())
            }
            Some(Refused::SequenceHeader { bytes }) => anyhow::bail!(
                "stream {}: a sequence header of {bytes} bytes is over the {} byte cap (no \
                 encoder sends one this large); the frames after it could not be decoded",
                self.names.stream(),
                crate::chunk::MAX_SEQUENCE_HEADER_BYTES
            ),
        }
    }

    fn write(&mut self, tag_type: TagType, timestamp: u32, body: &[u8]) -> Result<()> {
        let Some(chunk) = self.open.as_mut() else {
            // The splitter opens a chunk before the first frame; a write before that is a bug,
            // but dropping a frame silently would be worse than an error.
            anyhow::bail!("stream {}: frame with no open chunk", self.names.stream());
        };
        match chunk.writer.write_tag(tag_type, timestamp, body) {
            Ok(()) => {
                chunk.last_timestamp = chunk.last_timestamp.max(timestamp);
                self.last_frame =
                    Some((self.now, chunk.offset_ms + u64::from(chunk.last_timestamp)));
                Ok(())
            }
            Err(e) if disk::is_full(&e) => {
                let what = format!("writing {}: {e}", chunk.path.display());
                // The tag just written is among those the cut drops.
                let lost = chunk
                    .writer
                    .get_mut()
                    .cut_to_complete_tags()
                    .with_context(|| format!("cutting {} back", chunk.path.display()))?;
                self.disk_full(&what, lost);
                self.finish()
            }
            Err(e) => Err(e).with_context(|| format!("writing {}", chunk.path.display())),
        }
    }

    /// Counts frames lost to a full disk; the first loss starts an outage.
    fn disk_full(&mut self, what: &str, lost: u64) {
        if self.outage.is_some() {
            self.dropped(lost);
            return;
        }
        Stats::add(&self.stats.frames_dropped, lost);
        Stats::add(&self.counters.dropped, lost);
        self.outage = Some(Outage {
            since: Instant::now(),
            dropped: lost,
        });
        // The next chunk's number skips one: the manifests then show frames are missing.
        self.seq += 1;
        self.splitter.cut_at_next_split_point();
        log::error!(
            stream = self.names.stream();
            "disk full: {what}; the open chunk is cut at its last whole tag and handed on, \
             frames are dropped (the publisher stays connected) until {} are free again, then \
             recording resumes at the next keyframe. To fix: {}",
            crate::ingest::status::human_bytes(RESUME_FREE),
            disk::advice(self.state.root())
        );
    }

    fn dropped(&mut self, n: u64) {
        Stats::add(&self.stats.frames_dropped, n);
        Stats::add(&self.counters.dropped, n);
        if let Some(outage) = self.outage.as_mut() {
            outage.dropped += n;
        }
    }

    fn room_to_resume(&self) -> bool {
        DiskSpace::of(self.state.root()).is_ok_and(|s| s.available >= RESUME_FREE)
    }

    fn start(&mut self, reason: SplitReason) -> Result<()> {
        self.seq += 1;
        // The splitter reckons the chunk's UTC start from the clock the shell passed in (see
        // `chunk`), the same time its `--align-chunks` boundaries are counted on.
        let utc_ms = self
            .splitter
            .chunk_utc_ms()
            .expect("the splitter reckons a UTC start for every chunk it starts");
        let start = Civil::from_unix_millis(utc_ms);
        let name = ChunkName::of(start, &self.names, self.seq, &self.node);
        let stem = name.stem();
        let path = self.state.recording().join(format!("{stem}.flv"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating chunk {}", path.display()))?;
        // Held until the chunk is handed on: after a crash, an unlocked file in recording/ is
        // one nobody writes any more, and salvage may take it.
        file.try_lock()
            .with_context(|| format!("locking chunk {}", path.display()))?;

        let chunk_ts = self.splitter.chunk_start_timestamp().unwrap_or(0);
        let first = *self.session_first_timestamp.get_or_insert(chunk_ts);
        // The first chunk after a reconnect: the time away is the gap in the recording, and
        // the offsets go on from where they stopped plus that time.
        let gap = self.resumed.take().map(|ended| {
            let away_ms = u64::try_from(utc_ms.saturating_sub(ended.utc_ms)).unwrap_or(0);
            self.offset_base = ended.offset_ms + away_ms;
            Gap {
                duration_ms: away_ms,
                reason: reconnect::GAP_REASON_RECONNECT.to_string(),
            }
        });
        let offset_ms = self.offset_base + chunk_ts.saturating_sub(first);
        let headers = self.splitter.header_tags();
        let has_video = self.seen_video || headers.iter().any(|h| h.tag_type == TagType::Video);
        let has_audio = self.seen_audio || headers.iter().any(|h| h.tag_type == TagType::Audio);
        let mut writer = FlvWriter::new(ChunkFile::new(file), has_audio, has_video)
            .with_context(|| format!("writing {}", path.display()))?;

        let publisher_metadata = headers
            .iter()
            .find(|h| h.tag_type == TagType::Script)
            .map(|h| h.body);
        let fields = ChunkFields {
            sequence: self.seq,
            previous: self.previous.clone(),
            utc_start: start.rfc3339(),
            stream_offset_ms: offset_ms,
            gap,
        };
        let metadata = chunk_metadata(publisher_metadata, &fields);
        writer
            .write_tag(TagType::Script, 0, &metadata)
            .with_context(|| format!("writing {}", path.display()))?;
        for header in headers.iter().filter(|h| h.tag_type != TagType::Script) {
            writer
                .write_tag(header.tag_type, 0, header.body)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        if reason == SplitReason::HardLimit {
            log::warn!(
                stream = self.names.stream(),
                chunk = stem.as_str();
                "chunk started at a frame that is not a keyframe: the previous chunk reached twice \
                 --max-chunk-size or --max-chunk-frames without one; its manifest will say \
                 starts_without_keyframe. To fix: have the publisher send keyframes (e.g. every 2 s)"
            );
        } else {
            log::info!(
                stream = self.names.stream(),
                chunk = stem.as_str();
                "chunk started ({reason:?})"
            );
        }
        self.record.sequence = self.seq;
        self.record.open = Some(OpenRecord {
            stem: stem.clone(),
            utc_ms,
            offset_ms,
        });
        self.record.ended = None;
        self.save_record();
        self.open = Some(OpenChunk {
            stem,
            path,
            header_writes: writer.get_ref().writes(),
            writer,
            last_timestamp: 0,
            offset_ms,
        });
        Ok(())
    }

    /// Finishes the open chunk, if any: flush, unlock, fsync and rename into `remux/`. On a
    /// full disk, what reached it in whole tags is handed on; a chunk left without a single
    /// frame is removed.
    pub fn finish(&mut self) -> Result<()> {
        let Some(chunk) = self.open.take() else {
            return Ok(());
        };
        let mut file = chunk.writer.into_inner();
        if let Err(e) = file.flush() {
            if !disk::is_full(&e) {
                return Err(e).with_context(|| format!("writing {}", chunk.path.display()));
            }
            let lost = file
                .cut_to_complete_tags()
                .with_context(|| format!("cutting {} back", chunk.path.display()))?;
            self.disk_full(&format!("writing {}: {e}", chunk.path.display()), lost);
        }
        let frames = file.writes_on_disk().saturating_sub(chunk.header_writes);
        let file = file
            .into_file()
            .with_context(|| format!("writing {}", chunk.path.display()))?;
        let bytes = file
            .metadata()
            .with_context(|| format!("stat {}", chunk.path.display()))?
            .len();
        // Unlock before the rename so remux can take the file at once; `handoff` fsyncs it.
        drop(file);
        if frames == 0 {
            self.record.open = None;
            std::fs::remove_file(&chunk.path)
                .with_context(|| format!("removing {}", chunk.path.display()))?;
            log::warn!(stream = self.names.stream(), chunk = chunk.stem.as_str();
                "chunk removed: the disk filled before its first frame was written");
            return Ok(());
        }
        // Queued before the handoff: after a crash in between, salvage hands the chunk on and
        // queues the same event again (same id), so the event is never missing.
        self.events
            .emit_or_log(&Event::chunk_recorded(&chunk.stem, bytes, Some(frames)));
        spool::handoff(&chunk.path, &self.state.remux_inbox())?;
        self.handed_on += 1;
        Stats::add(&self.stats.chunks_written, 1);
        log::info!(
            stream = self.names.stream(),
            chunk = chunk.stem.as_str(),
            frames = frames,
            bytes = bytes,
            duration_ms = chunk.last_timestamp;
            "chunk finished and handed to remux"
        );
        self.record.previous = Some(chunk.stem.clone());
        self.record.open = None;
        self.record.publish_chunks = self.handed_on;
        self.save_record();
        self.previous = Some(chunk.stem);
        Ok(())
    }

    /// Completes the record with the last frame, so a publisher that comes back within the
    /// grace continues from here. A publish that never started a chunk leaves the record as
    /// the one before it left it.
    fn end_record(&mut self) {
        if self.record.sequence == 0 || self.record.ended.is_some() {
            return;
        }
        let (at, offset_ms) = self.last_frame.unwrap_or((self.now, self.offset_base));
        // A chunk that could not be handed on stays in recording/ for the next start's
        // salvage, which hands it on under this name.
        if let Some(open) = self.record.open.take() {
            self.record.previous = Some(open.stem);
        }
        self.record.ended = Some(Ended {
            utc_ms: self.origin_ms + i64::try_from(at.as_millis()).unwrap_or(i64::MAX / 2),
            offset_ms,
        });
        self.save_record();
    }
}

/// The wall clock, read in the shell (`utc` and `chunk` stay pure).
fn unix_ms_now() -> i64 {
    i64::try_from(crate::observe::unix_ms_now()).unwrap_or(i64::MAX)
}

impl Drop for StreamRecorder {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            log::error!(
                stream = self.names.stream();
                "could not finish the open chunk: {e:#}; it stays in recording/ and the next start salvages it"
            );
        }
        self.end_record();
        self.events.emit_or_log(&Event::stream_stopped(
            &self.names,
            self.session_start,
            self.handed_on,
            self.previous.clone(),
        ));
    }
}
