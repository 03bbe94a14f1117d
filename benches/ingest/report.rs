//! The benchmark's report: the side-by-side tables, the ratios and the PASS/FAIL lines against
//! the targets (full speed: CPU per GB <= nginx-rtmp's; real time: 0 frames lost, CPU per GB
//! <= 0.8x nginx-rtmp's, peak RSS <= nginx-rtmp's + 16 MB).

use std::fs;

use crate::scenario::{Measured, Scenario};
use crate::servers::Kind;
use crate::{GB, MB};

pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The round with the least CPU per GB: background load only ever adds CPU time.
pub fn best(runs: &[Measured], kind: Kind) -> Option<&Measured> {
    runs.iter()
        .filter(|m| m.kind == kind)
        .min_by(|a, b| a.cpu_per_gb().total_cmp(&b.cpu_per_gb()))
}

pub fn print_full_speed(sc: &Scenario, runs: &[Measured]) -> bool {
    println!();
    println!(
        "(a) full speed: {} streams x {} pass(es) of a 20 s 6 Mbps FLV, best of {} round(s); \
         MB = 1e6 B, GB = 1e9 B sent",
        sc.copies,
        sc.repeat,
        runs.iter()
            .filter(|m| m.kind == runs[0].kind)
            .count()
            .max(1)
    );
    println!(
        "{:<14} {:>6} {:>7} {:>7} {:>13} {:>9} {:>16} {:>9} {:>8} {:>5} {:>6}",
        "server",
        "GB",
        "wall s",
        "MB/s",
        "CPU s usr+sys",
        "CPU s/GB",
        "CPU s/GB rounds",
        "kworker s",
        "client s",
        "lost",
        "failed"
    );
    let mut ok = true;
    for m in runs {
        ok &= report_trouble(m);
    }
    let mut shown = Vec::new();
    for kind in [Kind::Nginx, Kind::Ours] {
        let Some(m) = best(runs, kind) else {
            continue;
        };
        let rounds: Vec<String> = runs
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| format!("{:.2}", r.cpu_per_gb()))
            .collect();
        let lost: u64 = runs
            .iter()
            .filter(|r| r.kind == kind)
            .map(|r| r.frame_diff().0)
            .sum();
        println!(
            "{:<14} {:>6.2} {:>7.2} {:>7.1} {:>6.2}+{:<6.2} {:>9.2} {:>16} {:>9.2} {:>8.2} {:>5} {:>6}",
            kind.name(),
            m.load.bytes_sent as f64 / GB,
            m.load.wall_s,
            m.load.bytes_sent as f64 / MB / m.load.wall_s,
            m.server_cpu.user,
            m.server_cpu.system,
            m.cpu_per_gb(),
            rounds.join(" "),
            m.kworker_s,
            m.load.client_cpu_s,
            lost,
            m.load.failed,
        );
        shown.push(m);
    }
    for m in &shown {
        let incl = m.load.bytes_sent as f64 / MB / (m.load.wall_s + m.settle_s);
        match m.kind {
            Kind::Nginx => println!(
                "  nginx-rtmp never fsyncs its recordings; `sync -f` afterwards took {:.2} s \
                 ({incl:.1} MB/s including it)",
                m.settle_s
            ),
            Kind::Ours => println!(
                "  rtmp-recorder fsyncs every chunk before handing it off; the last was handed \
                 off {:.2} s after the clients finished ({incl:.1} MB/s including that)",
                m.settle_s
            ),
        }
    }
    match (best(runs, Kind::Nginx), best(runs, Kind::Ours)) {
        (Some(n), Some(o)) => {
            let ratio = o.cpu_per_gb() / n.cpu_per_gb();
            let pass = ratio <= 1.0;
            println!(
                "CPU-seconds per GB, rtmp-recorder / nginx-rtmp = {ratio:.2} (target <= 1.00): {}",
                if pass { "PASS" } else { "FAIL" }
            );
            let with_kworkers = |m: &Measured| {
                (m.server_cpu.total() + m.kworker_s) / (m.load.bytes_sent as f64 / GB)
            };
            println!(
                "  counting kernel workers too (page writeback of unsynced files runs there): \
                 {:.2} (informational; machine-wide, so other work on the machine adds to it)",
                with_kworkers(o) / with_kworkers(n)
            );
            println!(
                "MB/s, rtmp-recorder / nginx-rtmp = {:.2}",
                (o.load.bytes_sent as f64 / o.load.wall_s)
                    / (n.load.bytes_sent as f64 / n.load.wall_s)
            );
            ok &= pass;
        }
        _ => {
            println!("CPU per GB ratio: not measured (a server is missing from this run)");
            ok = false;
        }
    }
    ok
}

/// Real time, ours / nginx-rtmp's CPU seconds per GB (issue 15: what a deployment pays per
/// stream must be clearly below the server we replace).
const REAL_TIME_CPU_TARGET: f64 = 0.8;
/// Real time, how much more peak memory than nginx-rtmp's we may hold.
const RSS_ALLOWANCE_MB: f64 = 16.0;

pub fn print_real_time(sc: &Scenario, runs: &[Measured]) -> bool {
    println!();
    println!(
        "(b) real time: {} streams x {} pass(es) of a 20 s 6 Mbps FLV, started {} ms apart",
        sc.copies, sc.repeat, sc.stagger_ms
    );
    println!(
        "{:<14} {:>6} {:>7} {:>13} {:>6} {:>8} {:>7} {:>8} {:>9} {:>5} {:>5} {:>7} {:>5}",
        "server",
        "failed",
        "wall s",
        "CPU s usr+sys",
        "CPU %",
        "CPU s/GB",
        "RSS MB",
        "sent",
        "recorded",
        "lost",
        "extra",
        "lag ms",
        "files"
    );
    let mut ok = true;
    for m in runs {
        let (lost, extra) = m.frame_diff();
        println!(
            "{:<14} {:>6} {:>7.2} {:>6.2}+{:<6.2} {:>6.1} {:>8.2} {:>7.1} {:>8} {:>9} {:>5} {:>5} {:>7.0} {:>5}",
            m.kind.name(),
            m.load.failed,
            m.load.wall_s,
            m.server_cpu.user,
            m.server_cpu.system,
            100.0 * m.server_cpu.total() / m.load.wall_s,
            m.cpu_per_gb(),
            m.peak_rss as f64 / MB,
            m.frames_sent(),
            m.recorded.total_frames(),
            lost,
            extra,
            m.load.max_lag_ms,
            m.recorded.files,
        );
        ok &= report_trouble(m);
        if m.kind == Kind::Ours {
            let pass = lost == 0 && m.load.failed == 0 && m.server_trouble.is_none();
            println!(
                "rtmp-recorder: {} real-time streams, {lost} frames lost (target 0): {}",
                sc.copies,
                if pass { "PASS" } else { "FAIL" }
            );
            ok &= pass;
        }
    }
    match (best(runs, Kind::Nginx), best(runs, Kind::Ours)) {
        (_, None) => {
            println!("rtmp-recorder: real-time run missing: FAIL");
            ok = false;
        }
        (Some(n), Some(o)) => {
            let ratio = o.cpu_per_gb() / n.cpu_per_gb();
            let cpu_pass = ratio <= REAL_TIME_CPU_TARGET;
            println!(
                "CPU-seconds per GB in real time, rtmp-recorder / nginx-rtmp = {ratio:.2} (target \
                 <= {REAL_TIME_CPU_TARGET:.2}; this is what a live deployment pays): {}",
                if cpu_pass { "PASS" } else { "FAIL" }
            );
            let extra_mb = (o.peak_rss as f64 - n.peak_rss as f64) / MB;
            let rss_pass = extra_mb <= RSS_ALLOWANCE_MB;
            println!(
                "peak RSS in real time, rtmp-recorder - nginx-rtmp = {extra_mb:+.1} MB (target \
                 <= +{RSS_ALLOWANCE_MB:.0} MB): {}",
                if rss_pass { "PASS" } else { "FAIL" }
            );
            ok &= cpu_pass && rss_pass;
        }
        (None, Some(_)) => {}
    }
    println!(
        "CPU % is of one core; `lag ms` is how far the slowest publisher fell behind real time \
         (large = the server or the machine could not keep up); RSS is the peak"
    );
    ok
}

/// Prints stream errors, bad files and server trouble; returns whether there were none.
pub fn report_trouble(m: &Measured) -> bool {
    let mut clean = true;
    let errors: Vec<_> = m
        .load
        .streams
        .iter()
        .filter_map(|(_, _, e)| e.as_deref())
        .collect();
    for e in errors.iter().take(5) {
        println!("    {}: stream error: {e}", m.kind.name());
        clean = false;
    }
    if errors.len() > 5 {
        println!("    ... and {} more stream errors", errors.len() - 5);
    }
    for b in m.recorded.bad_files.iter().take(5) {
        println!("    {}: unreadable recording: {b}", m.kind.name());
        clean = false;
    }
    if m.recorded.torn_files > 0 {
        println!(
            "    {}: {} recording(s) end in a partial tag",
            m.kind.name(),
            m.recorded.torn_files
        );
    }
    if let Some(t) = &m.server_trouble {
        println!("    {}: server {t}", m.kind.name());
        clean = false;
    }
    clean
}
