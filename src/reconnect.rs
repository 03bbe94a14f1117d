//! Reconnect continuity: what ingest keeps of a stream's recording between two publishes, and
//! whether a publisher that comes back continues it. A publisher that drops (a network blip, an
//! encoder switching networks) and publishes the same stream again within `--reconnect-grace`
//! continues the same recording: the sequence goes on, the next chunk names the last one as
//! `previous` and records the gap, and the stream offset keeps counting wall time. The record
//! lives in the state directory (`sessions/`, written by `ingest::sessions`), so an ingest
//! restart in between does not break the chain. Pure: the clock is passed in.

use serde::{Deserialize, Serialize};

use crate::naming::StreamNames;

/// Why a chunk's predecessor is not right before it in time; in the manifest as `gap.reason`.
pub const GAP_REASON_RECONNECT: &str = "reconnect";

/// One stream's recording as its last publish left it. Times are Unix ms (UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The stream, as chunk names spell it (`naming::StreamNames`).
    pub app: String,
    pub stream: String,
    /// When the recording (its first publish) began.
    pub session_start_ms: i64,
    /// When the last publish began (the identity of its stream events), and the chunks it
    /// handed on: a crash's `stream.stopped` is made from them.
    pub publish_start_ms: i64,
    pub publish_chunks: u32,
    /// The last sequence number used.
    pub sequence: u32,
    /// The last chunk handed on: the next chunk's `previous`.
    pub previous: Option<String>,
    /// The chunk being written, from its start until it is handed on. After a crash it is the
    /// chunk salvage hands on, so it becomes `previous`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open: Option<OpenChunk>,
    /// The last frame, once the publisher is gone; `None` while it publishes (or if ingest
    /// died under it, until `crashed` completes the record at the next start).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenChunk {
    pub stem: String,
    /// The chunk's UTC start and its offset in the stream.
    pub utc_ms: i64,
    pub offset_ms: u64,
}

/// The last recorded frame: its arrival and its offset in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub utc_ms: i64,
    pub offset_ms: u64,
}

/// What a new publish of a stream does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Continue the recording after `record`'s last chunk; `away_ms` since its last frame.
    Resume { record: SessionRecord, away_ms: u64 },
    /// A new recording (sequence 1). `expired_ms`: the previous one ended this long ago, past
    /// the grace (`None` when there was none to continue).
    New { expired_ms: Option<u64> },
}

/// Whether a publish at `now_ms` continues `record`, with a grace of `grace_ms` (0: never).
/// A record whose publisher has not ended is never continued: its publisher is live, or ingest
/// died under it and the start has not completed it (`crashed`).
pub fn decide(record: Option<SessionRecord>, now_ms: i64, grace_ms: u64) -> Decision {
    let Some(record) = record else {
        return Decision::New { expired_ms: None };
    };
    let Some(ended) = record.ended else {
        return Decision::New { expired_ms: None };
    };
    let away_ms = u64::try_from(now_ms.saturating_sub(ended.utc_ms)).unwrap_or(0);
    if grace_ms == 0 || away_ms > grace_ms {
        return Decision::New {
            expired_ms: Some(away_ms),
        };
    }
    Decision::Resume { record, away_ms }
}

impl SessionRecord {
    /// The record of a recording that has just begun.
    pub fn begin(names: &StreamNames, start_ms: i64) -> SessionRecord {
        SessionRecord {
            app: names.app().to_string(),
            stream: names.stream().to_string(),
            session_start_ms: start_ms,
            publish_start_ms: start_ms,
            publish_chunks: 0,
            sequence: 0,
            previous: None,
            open: None,
            ended: None,
        }
    }

    /// Whether a record last touched at `mtime_ms` may be forgotten at `now_ms`: its publisher
    /// ended more than the grace ago. A record that never ended is kept until `crashed` runs.
    pub fn expired(&self, now_ms: i64, grace_ms: u64) -> bool {
        self.ended.is_some_and(|e| {
            grace_ms == 0 || u64::try_from(now_ms.saturating_sub(e.utc_ms)).unwrap_or(0) > grace_ms
        })
    }

    /// Completes the record of a publish whose ingest died (kill -9, power loss).
    /// `salvaged`: salvage handed the open chunk on; it becomes `previous` and the recording
    /// ends where it does. `None`: nothing of the open chunk reached the disk, so `previous`
    /// stays, its sequence number stays used (the next chunk skips it, which shows the loss)
    /// and the end is `fallback_ms` (the record's last write, a lower bound).
    pub fn crashed(mut self, salvaged: Option<SalvagedEnd>, fallback_ms: i64) -> SessionRecord {
        if self.ended.is_some() {
            return self;
        }
        let open = self.open.take();
        let ended = match (open, salvaged) {
            (Some(open), Some(end)) => {
                // Its media end when it holds a frame; else the wall time since it began.
                let within = end.media_end_ms.map_or_else(
                    || u64::try_from(end.last_write_ms.saturating_sub(open.utc_ms)).unwrap_or(0),
                    u64::from,
                );
                self.previous = Some(open.stem);
                self.publish_chunks += 1;
                Ended {
                    utc_ms: end.last_write_ms.max(open.utc_ms),
                    offset_ms: open.offset_ms + within,
                }
            }
            (Some(open), None) => Ended {
                utc_ms: fallback_ms.max(open.utc_ms),
                offset_ms: open.offset_ms,
            },
            // Between two chunks: the last one was handed on and the record says so.
            (None, _) => Ended {
                utc_ms: fallback_ms,
                offset_ms: 0,
            },
        };
        self.ended = Some(ended);
        self
    }
}

/// Where salvage found a crashed publish's open chunk ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SalvagedEnd {
    /// The last write to its file (Unix ms): the end in wall time, to the writer's last block.
    pub last_write_ms: i64,
    /// Its last frame's timestamp, ms after its first.
    pub media_end_ms: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ended_at(utc_ms: i64) -> SessionRecord {
        SessionRecord {
            app: "live".into(),
            stream: "cam1".into(),
            session_start_ms: 1_000,
            publish_start_ms: 1_000,
            publish_chunks: 4,
            sequence: 4,
            previous: Some("c4".into()),
            open: None,
            ended: Some(Ended {
                utc_ms,
                offset_ms: 40_000,
            }),
        }
    }

    #[test]
    fn within_the_grace_resumes_after_it_a_new_session() {
        let r = ended_at(50_000);
        assert_eq!(
            decide(Some(r.clone()), 62_000, 30_000),
            Decision::Resume {
                record: r.clone(),
                away_ms: 12_000
            }
        );
        // The grace is inclusive; one ms past it is a new session that says how long ago.
        assert!(matches!(
            decide(Some(r.clone()), 80_000, 30_000),
            Decision::Resume { .. }
        ));
        assert_eq!(
            decide(Some(r.clone()), 80_001, 30_000),
            Decision::New {
                expired_ms: Some(30_001)
            }
        );
        // 0 turns continuity off.
        assert_eq!(
            decide(Some(r), 50_001, 0),
            Decision::New {
                expired_ms: Some(1)
            }
        );
        assert_eq!(
            decide(None, 50_000, 30_000),
            Decision::New { expired_ms: None }
        );
    }

    #[test]
    fn a_live_or_unfinished_record_is_never_continued() {
        let mut r = ended_at(50_000);
        r.ended = None;
        assert_eq!(
            decide(Some(r.clone()), 50_001, 30_000),
            Decision::New { expired_ms: None }
        );
        assert!(!r.expired(i64::MAX, 30_000));
    }

    #[test]
    fn a_clock_stepped_back_counts_as_no_time_away() {
        let r = ended_at(50_000);
        assert!(matches!(
            decide(Some(r), 40_000, 30_000),
            Decision::Resume { away_ms: 0, .. }
        ));
    }

    #[test]
    fn a_crash_makes_the_salvaged_chunk_previous_and_ends_at_its_last_write() {
        let r = SessionRecord {
            app: "live".into(),
            stream: "cam1".into(),
            session_start_ms: 1_000,
            publish_start_ms: 1_000,
            publish_chunks: 4,
            sequence: 7,
            previous: Some("c6".into()),
            open: Some(OpenChunk {
                stem: "c7".into(),
                utc_ms: 100_000,
                offset_ms: 60_000,
            }),
            ended: None,
        };
        let salvaged = SalvagedEnd {
            last_write_ms: 104_500,
            media_end_ms: Some(4_400),
        };
        let done = r.clone().crashed(Some(salvaged), 100_010);
        assert_eq!(done.previous.as_deref(), Some("c7"));
        assert_eq!(done.open, None);
        assert_eq!(
            done.publish_chunks, 5,
            "the salvaged chunk is the publish's too"
        );
        assert_eq!(
            done.ended,
            Some(Ended {
                utc_ms: 104_500,
                offset_ms: 64_400
            })
        );
        // Without a frame in it, the wall time since it began.
        let no_frame = SalvagedEnd {
            media_end_ms: None,
            ..salvaged
        };
        assert_eq!(
            r.clone()
                .crashed(Some(no_frame), 0)
                .ended
                .map(|e| e.offset_ms),
            Some(64_500)
        );
        // Completing twice changes nothing.
        assert_eq!(done.clone().crashed(None, 200_000), done);

        // Nothing of c7 reached the disk: c6 stays previous, 7 stays used.
        let lost = r.crashed(None, 100_010);
        assert_eq!(lost.previous.as_deref(), Some("c6"));
        assert_eq!(lost.sequence, 7);
        assert_eq!(lost.publish_chunks, 4);
        assert_eq!(
            lost.ended,
            Some(Ended {
                utc_ms: 100_010,
                offset_ms: 60_000
            })
        );
    }

    #[test]
    fn expiry_follows_the_grace() {
        let r = ended_at(50_000);
        assert!(!r.expired(80_000, 30_000));
        assert!(r.expired(80_001, 30_000));
        assert!(r.expired(50_000, 0));
    }

    #[test]
    fn records_round_trip_as_json() {
        let r = ended_at(50_000);
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("open"));
        assert_eq!(serde_json::from_str::<SessionRecord>(&json).unwrap(), r);
    }
}
