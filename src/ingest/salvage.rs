//! Crash recovery: chunks left in `recording/` by a writer that died (kill -9, power loss) are
//! cut at their last complete tag and handed to `remux/`, so nothing that reached the disk is lost.
//! A live writer holds its chunk's lock, so a locked file is never touched.

use std::fs;
use std::io::BufReader;

use anyhow::{Context, Result};

use crate::events::{Emitter, Event};
use crate::flv;
use crate::spool::{self, StateDir};

/// A chunk salvage handed on.
#[derive(Debug, Clone)]
pub struct Salvaged {
    pub stem: String,
    /// When its dead writer last wrote it (Unix ms): where its recording ends in wall time.
    pub last_write_ms: i64,
    /// Its last frame's timestamp (ms after its first): where it ends in media time.
    pub media_end_ms: Option<u32>,
}

/// Salvages every abandoned chunk. Returns those handed on.
pub fn salvage(state: &StateDir, events: &Emitter) -> Result<Vec<Salvaged>> {
    let mut handed = Vec::new();
    for path in spool::list_inbox(&state.recording(), "flv")? {
        let Some(file) = spool::try_lock(&path)? else {
            log::info!(chunk = path.display().to_string().as_str(); "chunk is being written by another process; left alone");
            continue;
        };
        let meta = file
            .metadata()
            .with_context(|| format!("stat {}", path.display()))?;
        let len = meta.len();
        // Read before the cut below touches it.
        let last_write_ms = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        if len == 0 {
            // Its writer died before its buffer first reached the disk: nothing to hand on,
            // and nothing wrong with the file either.
            drop(file);
            fs::remove_file(&path).with_context(|| format!("removing empty {}", path.display()))?;
            log::warn!(chunk = path.display().to_string().as_str(); "abandoned chunk is empty (its writer died before anything reached the disk); removed");
            continue;
        }
        let prefix = match flv::complete_prefix(BufReader::new(&file)) {
            Ok(prefix) => prefix,
            Err(e) => {
                drop(file);
                let reason = format!("abandoned chunk is not a readable FLV: {e}");
                log::error!(chunk = path.display().to_string().as_str(); "{reason}; moved to failed/");
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                events.emit_or_log(&Event::chunk_failed(
                    "ingest",
                    &name.unwrap_or_default(),
                    &reason,
                ));
                state.fail(&path, &reason)?;
                continue;
            }
        };
        let complete = prefix.len;
        if complete < len {
            // `try_lock` opened the file for writing; `handoff` below fsyncs the cut.
            file.set_len(complete)
                .with_context(|| format!("truncating {}", path.display()))?;
            log::warn!(
                chunk = path.display().to_string().as_str();
                "salvaged an abandoned chunk: cut {} torn bytes after the last complete tag",
                len - complete
            );
        } else {
            log::warn!(chunk = path.display().to_string().as_str(); "salvaged an abandoned chunk (it was complete)");
        }
        drop(file);
        if complete == 0 {
            fs::remove_file(&path).with_context(|| format!("removing empty {}", path.display()))?;
            continue;
        }
        // Before the handoff: a crash in between salvages the chunk again, with the same event.
        let (_, stem) = spool::log_labels(&path);
        events.emit_or_log(&Event::chunk_recorded(&stem, complete, None));
        spool::handoff(&path, &state.remux_inbox())?;
        handed.push(Salvaged {
            stem,
            last_write_ms,
            media_end_ms: prefix.last_media_timestamp,
        });
    }
    Ok(handed)
}
