//! RTMP load generator: publishes N copies of one FLV file to an RTMP server, at real time (paced
//! by the media timestamps) or at full speed, and prints what it sent.
//!
//! ```text
//! cargo run --release --example rtmp_load -- --url rtmp://127.0.0.1:1935/live \
//!     --copies 50 --input cam.flv --realtime [--key-prefix load] [--repeat 3] [--json]
//! ```
//! Stream `i` publishes key `{prefix}{i}`. Exit status 0 if every stream published all of its
//! tags and the server closed cleanly after our deleteStream, 1 if any stream failed, 2 on bad
//! arguments or an unreadable input. `--json` prints one JSON summary line on stdout (the table
//! goes to stderr); the ingest benchmark reads it.

// The benchmark compiles this file too and uses the parts the load tool does not.
#[allow(dead_code)]
mod flv_tags;
mod publisher;
mod source;

#[cfg(test)]
mod end_to_end_tests;
#[cfg(test)]
mod flv_tags_tests;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

use publisher::{Plan, StreamReport, Target};
use source::Source;

#[derive(Debug, Parser)]
#[command(
    name = "rtmp_load",
    about = "Publish N copies of an FLV file over RTMP"
)]
struct Args {
    /// rtmp://host[:port]/app
    #[arg(long)]
    url: String,
    /// Number of simultaneous publishers.
    #[arg(long, default_value_t = 1)]
    copies: u32,
    /// FLV file to publish (read once into memory).
    #[arg(long)]
    input: PathBuf,
    /// Pace tags by their timestamps, as a live encoder would.
    #[arg(long, conflicts_with = "full_speed")]
    realtime: bool,
    /// Send as fast as the server reads (the default).
    #[arg(long)]
    full_speed: bool,
    /// Stream key prefix; stream i publishes `{prefix}{i}`.
    #[arg(long, default_value = "load")]
    key_prefix: String,
    /// Publish the file this many times back to back in each session (timestamps continue).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    repeat: u32,
    /// Start stream i this many milliseconds after stream i-1 (spreads keyframes like real cameras).
    #[arg(long, default_value_t = 0)]
    stagger_ms: u64,
    /// Print one JSON summary line on stdout; the human table goes to stderr.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("rtmp_load: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Returns whether every stream succeeded.
fn run(args: Args) -> Result<bool> {
    let target = Arc::new(Target::parse(&args.url)?);
    let file =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let source = Source::parse(file).with_context(|| format!("{}", args.input.display()))?;
    let plan = Arc::new(Plan {
        source: Arc::new(source),
        repeat: args.repeat,
        realtime: args.realtime,
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting tokio")?;
    let cpu_before = process_cpu();
    let started = Instant::now();
    let reports = runtime.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..args.copies {
            let key = format!("{}{i}", args.key_prefix);
            let (target, plan) = (target.clone(), plan.clone());
            let delay = Duration::from_millis(args.stagger_ms.saturating_mul(u64::from(i)));
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                publisher::publish(target, key, plan).await
            }));
        }
        let mut reports = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            reports.push(t.await.unwrap_or_else(|e| StreamReport {
                key: format!("{}{i}", args.key_prefix),
                error: Some(format!("task failed: {e}")),
                ..StreamReport::default()
            }));
        }
        reports
    });
    let wall = started.elapsed();
    let client_cpu = process_cpu().saturating_sub(cpu_before);

    let summary = Summary::new(&args, &plan, &reports, wall, client_cpu);
    summary.print_table(&args, &plan, &reports);
    if args.json {
        println!("{}", summary.to_json(&reports));
    }
    Ok(summary.failed == 0)
}

struct Summary {
    bytes_sent: u64,
    frames_sent: u64,
    frames_expected_per_stream: u64,
    failed: usize,
    wall: Duration,
    client_cpu: Duration,
    max_lag: Duration,
}

impl Summary {
    fn new(
        args: &Args,
        plan: &Plan,
        reports: &[StreamReport],
        wall: Duration,
        client_cpu: Duration,
    ) -> Summary {
        Summary {
            bytes_sent: reports.iter().map(|r| r.bytes_sent).sum(),
            frames_sent: reports.iter().map(|r| r.frames_sent).sum(),
            frames_expected_per_stream: plan.source.frames_per_pass * u64::from(args.repeat),
            failed: reports.iter().filter(|r| r.error.is_some()).count(),
            wall,
            client_cpu,
            max_lag: reports.iter().map(|r| r.max_lag).max().unwrap_or_default(),
        }
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes_sent as f64 / 1e6 / self.wall.as_secs_f64().max(1e-9)
    }

    fn print_table(&self, args: &Args, plan: &Plan, reports: &[StreamReport]) {
        let out = &mut std::io::stderr();
        use std::io::Write;
        let src = &plan.source;
        let _ = writeln!(
            out,
            "rtmp_load: {} stream(s) x {} pass(es) of {} ({:.1} MB, {} frames, {:.1} s) {} to {}",
            args.copies,
            args.repeat,
            args.input.display(),
            src.file_bytes as f64 / 1e6,
            src.frames_per_pass,
            f64::from(src.period_ms) / 1e3,
            if plan.realtime {
                "in real time"
            } else {
                "at full speed"
            },
            args.url,
        );
        let _ = writeln!(
            out,
            "{:<16} {:>12} {:>8} {:>9} {:>10}  result",
            "stream", "bytes", "frames", "seconds", "max lag"
        );
        for r in reports {
            let _ = writeln!(
                out,
                "{:<16} {:>12} {:>8} {:>9.2} {:>8}ms  {}",
                r.key,
                r.bytes_sent,
                r.frames_sent,
                r.elapsed.as_secs_f64(),
                r.max_lag.as_millis(),
                r.error.as_deref().unwrap_or("ok"),
            );
        }
        let _ = writeln!(
            out,
            "total: {} bytes ({:.1} MB), {} frames ({} expected per stream), wall {:.2} s, \
             {:.1} MB/s, client CPU {:.2} s, max lag {} ms, {} of {} stream(s) failed",
            self.bytes_sent,
            self.bytes_sent as f64 / 1e6,
            self.frames_sent,
            self.frames_expected_per_stream,
            self.wall.as_secs_f64(),
            self.mb_per_s(),
            self.client_cpu.as_secs_f64(),
            self.max_lag.as_millis(),
            self.failed,
            reports.len(),
        );
    }

    fn to_json(&self, reports: &[StreamReport]) -> serde_json::Value {
        serde_json::json!({
            "streams": reports.len(),
            "failed": self.failed,
            "bytes_sent": self.bytes_sent,
            "frames_sent": self.frames_sent,
            "frames_expected_per_stream": self.frames_expected_per_stream,
            "wall_s": self.wall.as_secs_f64(),
            "mb_per_s": self.mb_per_s(),
            "client_cpu_s": self.client_cpu.as_secs_f64(),
            "max_lag_ms": self.max_lag.as_secs_f64() * 1e3,
            "per_stream": reports.iter().map(|r| serde_json::json!({
                "key": r.key,
                "bytes_sent": r.bytes_sent,
                "frames_sent": r.frames_sent,
                "elapsed_s": r.elapsed.as_secs_f64(),
                "max_lag_ms": r.max_lag.as_secs_f64() * 1e3,
                "error": r.error,
            })).collect::<Vec<_>>(),
        })
    }
}

/// User + system CPU of this process so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}
