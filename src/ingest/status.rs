//! Counters the ingest shell keeps for systemd's STATUS= line and for the log.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub live_streams: AtomicU64,
    pub chunks_written: AtomicU64,
    pub bytes_received: AtomicU64,
    pub rejected: AtomicU64,
    pub protocol_errors: AtomicU64,
    /// Frames lost because the disk was full (cut from a chunk's tail or never written).
    pub frames_dropped: AtomicU64,
    /// Publishes refused because free disk was below `--min-free-disk`.
    pub refused_disk: AtomicU64,
}

impl Stats {
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
