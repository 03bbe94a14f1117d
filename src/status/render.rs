//! The screen `rtmp-recorder status` prints for a person.

use std::fmt::Write;

use super::Report;
use crate::ingest::status::human_bytes;

pub fn screen(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rtmp-recorder: {}    state directory {}",
        if r.problems.is_empty() {
            "all well"
        } else {
            "NEEDS ATTENTION"
        },
        r.state_dir
    );
    for p in &r.problems {
        let _ = writeln!(s, "  ! {p}");
    }
    let _ = writeln!(s, "\nstages");
    for st in &r.stages {
        let done = match (st.stage, st.done) {
            ("remux", Some(n)) => format!("    {n} remuxed"),
            ("publish", Some(n)) => format!("    {n} uploaded"),
            ("events", Some(n)) => format!("    {n} event(s) delivered"),
            _ => String::new(),
        };
        let _ = writeln!(s, "  {:<8} {}{done}", st.stage, st.state);
    }
    let _ = writeln!(s, "\nlive streams: {}", r.live_streams.len());
    for l in &r.live_streams {
        let d = l.duration_seconds;
        let _ = writeln!(
            s,
            "  {}/{}  {:02}:{:02}:{:02}  {:.0} kbit/s  {} received, {} video / {} audio frames",
            l.app,
            l.stream,
            d / 3600,
            d / 60 % 60,
            d % 60,
            l.bitrate_bits_per_second as f64 / 1000.0,
            human_bytes(l.bytes),
            l.video_frames,
            l.audio_frames
        );
    }
    let oldest = r
        .queues
        .oldest_unpublished_age_seconds
        .map(|a| format!(", oldest unpublished chunk started {a}s ago"))
        .unwrap_or_default();
    let _ = writeln!(
        s,
        "\nqueues: remux/ {} FLV(s), publish/ {} MP4(s){oldest}",
        r.queues.remux, r.queues.publish
    );
    match &r.last_upload {
        Some(u) => {
            let _ = writeln!(
                s,
                "last upload: {} at {} ({}s ago)",
                u.what, u.at, u.age_seconds
            );
        }
        None => {
            let _ = writeln!(s, "last upload: none yet");
        }
    }
    match &r.last_error {
        Some(e) => {
            let _ = writeln!(
                s,
                "last error: {} at {} ({}s ago): {}",
                e.stage, e.at, e.age_seconds, e.message
            );
        }
        None => {
            let _ = writeln!(s, "last error: none");
        }
    }
    let ev = &r.events;
    if ev.queued > 0 || ev.delivered > 0 || ev.delivery_failures > 0 {
        let _ = writeln!(
            s,
            "events: {} queued, {} delivered, {} failed attempt(s)",
            ev.queued, ev.delivered, ev.delivery_failures
        );
        if let Some(e) = &ev.last_delivery_error {
            let _ = writeln!(
                s,
                "last delivery error: at {} ({}s ago): {}",
                e.at, e.age_seconds, e.what
            );
        }
    }
    let _ = writeln!(s, "failed/: {} file(s)", r.failed.len());
    for f in &r.failed {
        let _ = writeln!(s, "  {}: {}", f.name, f.reason);
    }
    if let Some(d) = &r.disk {
        let _ = writeln!(
            s,
            "disk: {} free of {} (watermark {})",
            human_bytes(d.available_bytes),
            human_bytes(d.total_bytes),
            human_bytes(d.min_free_bytes)
        );
    }
    s
}
