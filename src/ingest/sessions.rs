//! The session records of reconnect continuity (`reconnect`): one file per stream in
//! `sessions/`, `APP_STREAM.json` (the names as chunk names spell them), written atomically by
//! the stream's recorder when a chunk starts, when one is handed on, and when the publisher
//! goes. At start, after salvage, ingest completes the records its previous run left open (it
//! died under a publisher), queues the `stream.stopped` that run could not, and forgets
//! records past the grace. Records are kept with continuity off too (grace 0), for that event.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context, Result};

use crate::events::{Emitter, Event};
use crate::ingest::salvage::Salvaged;
use crate::log_safe;
use crate::naming::{self, StreamNames};
use crate::reconnect::{SalvagedEnd, SessionRecord};
use crate::spool::{self, StateDir};
use crate::utc::Civil;

/// Where the records live and how long a record may be continued.
#[derive(Debug, Clone)]
pub struct Sessions {
    dir: PathBuf,
    tmp: PathBuf,
    grace_ms: u64,
}

impl Sessions {
    pub fn new(state: &StateDir, grace: Duration) -> Sessions {
        Sessions {
            dir: state.sessions(),
            tmp: state.tmp(),
            grace_ms: u64::try_from(grace.as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// `--reconnect-grace`, in ms; 0: continuity is off and no record is kept.
    pub fn grace_ms(&self) -> u64 {
        self.grace_ms
    }

    fn path(&self, names: &StreamNames) -> PathBuf {
        self.dir
            .join(format!("{}_{}.json", names.app(), names.stream()))
    }

    /// The stream's record (none with continuity off). One that cannot be read is reported
    /// and ignored: the stream then starts a new recording, which costs the chain, never a
    /// frame.
    pub fn load(&self, names: &StreamNames) -> Option<SessionRecord> {
        if self.grace_ms == 0 {
            return None;
        }
        let path = self.path(names);
        match read(&path) {
            Ok(record) => record,
            Err(e) => {
                log::warn!(
                    stream = names.stream();
                    "{e:#}; this publish starts a new recording (sequence 1). To fix: nothing, \
                     the record is rewritten by this publish"
                );
                None
            }
        }
    }

    /// Replaces the stream's record (fsynced, renamed in).
    pub fn save(&self, names: &StreamNames, record: &SessionRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(record).context("encoding a session record")?;
        spool::write_atomically(&self.tmp, &self.path(names), &bytes)
    }

    /// At ingest's start, after salvage: completes the records of publishes the previous
    /// ingest died under (each ends where salvage found its open chunk ends, see
    /// `SessionRecord::crashed`), and removes records past the grace. Returns how many were
    /// completed.
    pub fn recover(&self, salvaged: &[Salvaged], now_ms: i64, events: &Emitter) -> Result<usize> {
        let mut completed = 0;
        for path in spool::list_inbox(&self.dir, "json")? {
            let record = match read(&path) {
                Ok(Some(r)) => r,
                Ok(None) => continue,
                Err(e) => {
                    log::warn!("{e:#}; removed (its stream's next publish starts a new recording)");
                    remove(&path)?;
                    continue;
                }
            };
            let record = if record.ended.is_none() {
                let open_end = record.open.as_ref().and_then(|o| {
                    salvaged
                        .iter()
                        .find(|s| s.stem == o.stem)
                        .map(|s| SalvagedEnd {
                            last_write_ms: s.last_write_ms,
                            media_end_ms: s.media_end_ms,
                        })
                });
                let done = record.crashed(open_end, mtime_ms(&path).unwrap_or(now_ms));
                // Before the record says it ended: a crash in between queues it again (same id).
                stopped(&done, events);
                let bytes =
                    serde_json::to_vec_pretty(&done).context("encoding a session record")?;
                spool::write_atomically(&self.tmp, &path, &bytes)?;
                completed += 1;
                done
            } else {
                record
            };
            if record.expired(now_ms, self.grace_ms) {
                remove(&path)?;
            }
        }
        Ok(completed)
    }
}

/// Queues the `stream.stopped` of a publish whose ingest died under it, as that ingest would
/// have (same id: the publish's start).
fn stopped(record: &SessionRecord, events: &Emitter) {
    let names = naming::decode(&record.app)
        .zip(naming::decode(&record.stream))
        .and_then(|(app, stream)| StreamNames::new(&app, &stream).ok());
    let Some(names) = names else {
        log::warn!(
            "session record of {}/{} does not name a stream; no stream.stopped for it",
            log_safe::shown(&record.app),
            log_safe::shown(&record.stream)
        );
        return;
    };
    events.emit_or_log(&Event::stream_stopped(
        &names,
        Civil::from_unix_millis(record.publish_start_ms),
        record.publish_chunks,
        record.previous.clone(),
    ));
}

/// A record, `None` if there is none.
fn read(path: &Path) -> Result<Option<SessionRecord>> {
    spool::read_json(path, "a session record")
}

fn remove(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

fn mtime_ms(path: &Path) -> Option<i64> {
    let t = fs::metadata(path).and_then(|m| m.modified()).ok()?;
    let ms = t.duration_since(UNIX_EPOCH).ok()?.as_millis();
    i64::try_from(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconnect::{Ended, OpenChunk};

    fn names() -> StreamNames {
        StreamNames::new("live", "cam1").unwrap()
    }

    #[test]
    fn records_round_trip_and_off_means_none_continued() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let sessions = Sessions::new(&state, Duration::from_secs(30));
        assert_eq!(sessions.load(&names()), None);
        let mut r = SessionRecord::begin(&names(), 1);
        r.sequence = 3;
        sessions.save(&names(), &r).unwrap();
        assert_eq!(sessions.load(&names()), Some(r.clone()));
        assert!(state.sessions().join("live_cam1.json").exists());

        // Off: kept (for a crash's stream.stopped), never continued.
        let off = Sessions::new(&state, Duration::ZERO);
        assert_eq!(off.load(&names()), None);
    }

    #[test]
    fn recovery_ends_open_records_where_salvage_found_the_chunk_and_forgets_expired_ones() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        let sessions = Sessions::new(&state, Duration::from_secs(30));
        let now = i64::try_from(crate::observe::unix_ms_now()).unwrap();
        // Ingest died while cam1's chunk c2 was open.
        let open = SessionRecord {
            app: "live".into(),
            stream: "cam1".into(),
            session_start_ms: now - 60_000,
            publish_start_ms: now - 30_000,
            publish_chunks: 1,
            sequence: 2,
            previous: Some("c1".into()),
            open: Some(OpenChunk {
                stem: "c2".into(),
                utc_ms: now - 20_000,
                offset_ms: 40_000,
            }),
            ended: None,
        };
        sessions.save(&names(), &open).unwrap();
        let salvaged = [Salvaged {
            stem: "c2".into(),
            last_write_ms: now - 1_000,
            media_end_ms: Some(18_500),
        }];
        // cam2 ended long ago.
        let cam2 = StreamNames::new("live", "cam2").unwrap();
        let mut old = SessionRecord::begin(&cam2, now - 600_000);
        old.ended = Some(Ended {
            utc_ms: now - 300_000,
            offset_ms: 1,
        });
        sessions.save(&cam2, &old).unwrap();
        // A record that is not ours to read.
        fs::write(state.sessions().join("live_bad.json"), b"{").unwrap();

        let events = Emitter::new(&state, true);
        assert_eq!(sessions.recover(&salvaged, now, &events).unwrap(), 1);
        let done = sessions.load(&names()).unwrap();
        assert_eq!(done.previous.as_deref(), Some("c2"));
        assert_eq!(
            done.ended,
            Some(Ended {
                utc_ms: now - 1_000,
                offset_ms: 58_500
            })
        );
        assert_eq!(sessions.load(&cam2), None);
        assert!(!state.sessions().join("live_bad.json").exists());
        // The stream.stopped the dead ingest owed, with its publish's identity.
        let queued: Vec<Event> = spool::list_inbox(&state.events(), "json")
            .unwrap()
            .iter()
            .map(|p| serde_json::from_slice(&fs::read(p).unwrap()).unwrap())
            .collect();
        assert_eq!(queued.len(), 1, "{queued:?}");
        let start = Civil::from_unix_millis(now - 30_000);
        assert_eq!(
            queued[0].id,
            Event::stream_stopped(&names(), start, 0, None).id
        );
        assert_eq!(queued[0].chunks, Some(2));
        assert_eq!(queued[0].last_chunk.as_deref(), Some("c2"));
    }
}
