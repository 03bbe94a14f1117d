//! One publish session's chunk files. Runs on its own thread (file writes and fsync block), fed
//! the session's messages in arrival order; asks the splitter where chunks begin, writes each
//! chunk to `recording/` under an exclusive lock, and hands every finished chunk to `remux/`.
//! Dropping a recorder finishes its open chunk, so a connection that dies in any way (EOF,
//! timeout, protocol error, panic) still hands on what it recorded.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use bytes::Bytes;

use crate::chunk::{Action, Message, SplitConfig, SplitReason, Splitter};
use crate::flv::{FlvWriter, TagType};
use crate::ingest::metadata::{ChunkFields, chunk_metadata};
use crate::ingest::status::{Stats, StreamCounters};
use crate::naming::ChunkName;
use crate::spool::{self, StateDir};
use crate::utc::Civil;

/// A message of a publishing stream, as the connection hands it over.
#[derive(Debug, Clone)]
pub enum Input {
    Metadata(Bytes),
    Audio { timestamp: u64, body: Bytes },
    Video { timestamp: u64, body: Bytes },
}

/// Records one publish session of one stream into chunks.
pub struct StreamRecorder {
    state: StateDir,
    app: String,
    label: String,
    splitter: Splitter,
    open: Option<OpenChunk>,
    seq: u32,
    previous: Option<String>,
    session_first_timestamp: Option<u64>,
    seen_audio: bool,
    seen_video: bool,
    stats: Arc<Stats>,
    counters: Arc<StreamCounters>,
}

struct OpenChunk {
    stem: String,
    path: PathBuf,
    writer: FlvWriter<BufWriter<File>>,
    frames: u64,
    last_timestamp: u32,
}

const WRITE_BUFFER: usize = 256 * 1024;

impl StreamRecorder {
    pub fn new(
        state: StateDir,
        app: &str,
        label: &str,
        config: SplitConfig,
        stats: Arc<Stats>,
        counters: Arc<StreamCounters>,
    ) -> StreamRecorder {
        StreamRecorder {
            state,
            app: app.to_string(),
            label: label.to_string(),
            splitter: Splitter::new(config),
            open: None,
            seq: 0,
            previous: None,
            session_first_timestamp: None,
            seen_audio: false,
            seen_video: false,
            stats,
            counters,
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// Takes the next message of the session.
    pub fn push(&mut self, input: &Input) -> Result<()> {
        let (msg, tag_type, body) = match input {
            Input::Metadata(body) => (Message::Metadata(body), TagType::Script, body),
            Input::Audio { timestamp, body } => {
                self.seen_audio = true;
                (
                    Message::Audio {
                        timestamp: *timestamp,
                        body,
                    },
                    TagType::Audio,
                    body,
                )
            }
            Input::Video { timestamp, body } => {
                self.seen_video = true;
                (
                    Message::Video {
                        timestamp: *timestamp,
                        body,
                    },
                    TagType::Video,
                    body,
                )
            }
        };
        let dropped_before = self.splitter.dropped();
        match self.splitter.push(&msg) {
            Action::Remember => {
                let dropped = self.splitter.dropped() - dropped_before;
                Stats::add(&self.stats.frames_dropped, dropped);
                Stats::add(&self.counters.dropped, dropped);
                Ok(())
            }
            Action::Write { timestamp } => self.write(tag_type, timestamp, body),
            Action::StartChunk { timestamp, reason } => {
                self.finish()?;
                self.start(reason)?;
                self.write(tag_type, timestamp, body)
            }
        }
    }

    fn write(&mut self, tag_type: TagType, timestamp: u32, body: &[u8]) -> Result<()> {
        let Some(chunk) = self.open.as_mut() else {
            // The splitter opens a chunk before the first frame; a write before that is a bug,
            // but dropping a frame silently would be worse than an error.
            anyhow::bail!("stream {}: frame with no open chunk", self.label);
        };
        chunk
            .writer
            .write_tag(tag_type, timestamp, body)
            .with_context(|| format!("writing {}", chunk.path.display()))?;
        chunk.frames += 1;
        chunk.last_timestamp = chunk.last_timestamp.max(timestamp);
        Ok(())
    }

    fn start(&mut self, reason: SplitReason) -> Result<()> {
        self.seq += 1;
        // The clock is read here, in the shell; `utc` stays pure.
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        let start = Civil::from_unix_millis(since_epoch.as_millis() as i64);
        let name = ChunkName::new(start, &self.app, &self.label, self.seq);
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
        let headers = self.splitter.header_tags();
        let has_video = self.seen_video || headers.iter().any(|h| h.tag_type == TagType::Video);
        let has_audio = self.seen_audio || headers.iter().any(|h| h.tag_type == TagType::Audio);
        let mut writer = FlvWriter::new(
            BufWriter::with_capacity(WRITE_BUFFER, file),
            has_audio,
            has_video,
        )
        .with_context(|| format!("writing {}", path.display()))?;

        let publisher_metadata = headers
            .iter()
            .find(|h| h.tag_type == TagType::Script)
            .map(|h| h.body);
        let fields = ChunkFields {
            sequence: self.seq,
            previous: self.previous.clone(),
            utc_start: start.rfc3339(),
            stream_offset_ms: chunk_ts.saturating_sub(first),
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
        log::info!(
            stream = self.label.as_str(),
            chunk = stem.as_str();
            "chunk started ({reason:?})"
        );
        self.open = Some(OpenChunk {
            stem,
            path,
            writer,
            frames: 0,
            last_timestamp: 0,
        });
        Ok(())
    }

    /// Finishes the open chunk, if any: flush, unlock, fsync and rename into `remux/`.
    pub fn finish(&mut self) -> Result<()> {
        let Some(chunk) = self.open.take() else {
            return Ok(());
        };
        let bytes = chunk.writer.bytes_written();
        let mut buffered = chunk.writer.into_inner();
        buffered
            .flush()
            .with_context(|| format!("writing {}", chunk.path.display()))?;
        let file = buffered
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", chunk.path.display()))?;
        // Unlock before the rename so remux can take the file at once; `handoff` fsyncs it.
        drop(file);
        spool::handoff(&chunk.path, &self.state.remux_inbox())?;
        Stats::add(&self.stats.chunks_written, 1);
        log::info!(
            stream = self.label.as_str(),
            chunk = chunk.stem.as_str(),
            frames = chunk.frames,
            bytes = bytes,
            duration_ms = chunk.last_timestamp;
            "chunk finished and handed to remux"
        );
        self.previous = Some(chunk.stem);
        Ok(())
    }
}

impl Drop for StreamRecorder {
    fn drop(&mut self) {
        if let Err(e) = self.finish() {
            log::error!(
                stream = self.label.as_str();
                "could not finish the open chunk: {e:#}; it stays in recording/ and the next start salvages it"
            );
        }
    }
}
