//! Counters the ingest shell keeps for systemd's STATUS= line, the log, `/metrics` and the live
//! snapshot that `rtmp-recorder status` reads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::observe::live::{LiveSnapshot, LiveStream};

#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub live_streams: AtomicU64,
    pub chunks_written: AtomicU64,
    pub bytes_received: AtomicU64,
    pub rejected: AtomicU64,
    pub protocol_errors: AtomicU64,
    /// Messages not recorded: media before a stream's first frame or on a stream that is not
    /// publishing, script data that is not metadata, and frames lost because the disk was full
    /// (cut from a chunk's tail or never written).
    pub frames_dropped: AtomicU64,
    /// Publishes refused because free disk was below `--min-free-disk`.
    pub refused_disk: AtomicU64,
    /// RTMPS connections whose TLS handshake failed.
    pub tls_handshake_failures: AtomicU64,
    /// The served RTMPS certificate's `notAfter` (Unix seconds); 0 without RTMPS or when its
    /// date could not be read.
    pub tls_not_after: AtomicU64,
    /// Every stream being recorded, by `(app, label)`.
    pub streams: Mutex<BTreeMap<(String, String), Arc<StreamCounters>>>,
}

/// What one live stream has received so far (payload bytes of its messages, frames by kind).
#[derive(Debug, Default)]
pub struct StreamCounters {
    /// Wall clock when publishing began, in milliseconds since the Unix epoch.
    pub started_unix_ms: u64,
    pub bytes: AtomicU64,
    pub video_frames: AtomicU64,
    pub audio_frames: AtomicU64,
    pub dropped: AtomicU64,
}

impl Stats {
    /// Registers a stream that began publishing; [`Stats::stream_ended`] removes it.
    pub fn stream_started(&self, app: &str, label: &str, now_unix_ms: u64) -> Arc<StreamCounters> {
        let counters = Arc::new(StreamCounters {
            started_unix_ms: now_unix_ms,
            ..StreamCounters::default()
        });
        if let Ok(mut streams) = self.streams.lock() {
            streams.insert((app.to_string(), label.to_string()), counters.clone());
        }
        counters
    }

    pub fn stream_ended(&self, app: &str, label: &str) {
        if let Ok(mut streams) = self.streams.lock() {
            streams.remove(&(app.to_string(), label.to_string()));
        }
    }

    /// The live streams and counters as `rtmp-recorder status` and `/metrics` read them.
    pub fn snapshot(&self, pid: u32, taken_unix_ms: u64) -> LiveSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let streams = self
            .streams
            .lock()
            .map(|s| {
                s.iter()
                    .map(|((app, stream), c)| LiveStream {
                        app: app.clone(),
                        stream: stream.clone(),
                        started_unix_ms: c.started_unix_ms,
                        bytes: get(&c.bytes),
                        video_frames: get(&c.video_frames),
                        audio_frames: get(&c.audio_frames),
                        dropped_frames: get(&c.dropped),
                    })
                    .collect()
            })
            .unwrap_or_default();
        LiveSnapshot {
            pid,
            taken_unix_ms,
            connections: get(&self.connections),
            chunks_closed: get(&self.chunks_written),
            bytes_received: get(&self.bytes_received),
            rejected: get(&self.rejected),
            protocol_errors: get(&self.protocol_errors),
            frames_dropped: get(&self.frames_dropped),
            streams,
        }
    }

    /// Records the served RTMPS certificate's expiry for `/metrics`.
    pub fn set_tls_not_after(&self, not_after: Option<i64>) {
        let secs = not_after.and_then(|t| u64::try_from(t).ok()).unwrap_or(0);
        self.tls_not_after.store(secs, Ordering::Relaxed);
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Ordering::Relaxed);
    }

    /// The human STATUS= line: what an operator wants from `systemctl status`.
    pub fn status_line(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut line = format!(
            "{} live stream(s), {} connection(s), {} chunk(s) written, {} received, {} rejected, {} protocol error(s)",
            get(&self.live_streams),
            get(&self.connections),
            get(&self.chunks_written),
            human_bytes(get(&self.bytes_received)),
            get(&self.rejected),
            get(&self.protocol_errors),
        );
        let (dropped, refused) = (get(&self.frames_dropped), get(&self.refused_disk));
        if dropped > 0 || refused > 0 {
            line.push_str(&format!(
                ", disk full: {dropped} frame(s) dropped, {refused} publish(es) refused"
            ));
        }
        line
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_line_reads_well() {
        let s = Stats::default();
        Stats::add(&s.live_streams, 2);
        Stats::add(&s.bytes_received, 3 * 1024 * 1024 + 512 * 1024);
        let line = s.status_line();
        assert!(line.starts_with("2 live stream(s)"), "{line}");
        assert!(line.contains("3.5 MiB received"), "{line}");
        assert_eq!(human_bytes(12), "12 B");
    }
}
