//! Ingest benchmark (`cargo bench --bench ingest`): our `rtmp-recorder ingest` against nginx-rtmp
//! (Debian libnginx-mod-rtmp, `record all`), in the same run, on the same machine and input.
//!
//! (a) full speed: N publishers send a 6 Mbps H.264+AAC FLV as fast as the server reads it;
//!     prints MB/s and server CPU-seconds per GB for both, and ours/nginx (target <= 1).
//! (b) real time: 50 publishers paced by media timestamps; counts the media frames in every
//!     recorded file against the frames sent (target: 0 lost), server CPU %, peak RSS.
//! (c) capacity: the most real-time streams each server sustains, at 6 and at 2.5 Mbps
//!     (target: ours >= nginx-rtmp's); see `ingest/capacity.rs`.
//!
//! Each scenario starts a fresh server in its own scratch directory under
//! `target/ingest-bench/runs/`. The load generator is `examples/rtmp_load` as a child process,
//! so its CPU is not counted as the server's (it does share the machine's cores).
//!
//! Knobs (environment): INGEST_BENCH_COPIES (8), INGEST_BENCH_REPEAT (passes of the 20 s file
//! per full-speed stream, 12), INGEST_BENCH_RT_COPIES (50), INGEST_BENCH_RT_REPEAT (1),
//! INGEST_BENCH_ROUNDS (full-speed rounds per server, best kept, 3),
//! INGEST_BENCH_ONLY (`nginx` or `ours`), INGEST_BENCH_NO_BUILD=1, INGEST_BENCH_KEEP=1 (keep
//! the recordings), INGEST_BENCH_CAPACITY=0 (skip (c)), INGEST_BENCH_CAPACITY_START (streams
//! tried first, 200), INGEST_BENCH_CAPACITY_MAX (1600), INGEST_BENCH_CAPACITY_BUDGET_S (time for
//! all four searches, 720).

#[path = "ingest/capacity.rs"]
mod capacity;
#[path = "../examples/rtmp_load/flv_tags.rs"]
#[allow(dead_code)]
mod flv_tags;
#[path = "ingest/recorded.rs"]
mod recorded;
#[path = "ingest/report.rs"]
mod report;
#[path = "ingest/scenario.rs"]
mod scenario;
#[path = "ingest/servers.rs"]
mod servers;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use report::{load_average, print_full_speed, print_real_time};
use scenario::{Pace, Scenario, run_scenario};
use servers::Kind;

const GB: f64 = 1e9;
const MB: f64 = 1e6;

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("ingest bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

struct Config {
    copies: u32,
    repeat: u32,
    rt_copies: u32,
    rt_repeat: u32,
    rounds: u32,
    kinds: Vec<Kind>,
    build: bool,
    keep: bool,
    capacity: bool,
    capacity_start: u32,
    capacity_max: u32,
    capacity_budget: Duration,
}

impl Config {
    fn from_env() -> Result<Config> {
        let num = |name: &str, default: u32| -> Result<u32> {
            match std::env::var(name) {
                Ok(v) => v
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .with_context(|| format!("{name}={v:?}: expected a positive number")),
                Err(_) => Ok(default),
            }
        };
        let kinds = match std::env::var("INGEST_BENCH_ONLY").as_deref() {
            Ok("nginx") => vec![Kind::Nginx],
            Ok("ours") => vec![Kind::Ours],
            Ok(other) => bail!("INGEST_BENCH_ONLY={other:?}: expected nginx or ours"),
            Err(_) => vec![Kind::Nginx, Kind::Ours],
        };
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
        Ok(Config {
            copies: num("INGEST_BENCH_COPIES", 8)?,
            repeat: num("INGEST_BENCH_REPEAT", 12)?,
            rt_copies: num("INGEST_BENCH_RT_COPIES", 50)?,
            rt_repeat: num("INGEST_BENCH_RT_REPEAT", 1)?,
            rounds: num("INGEST_BENCH_ROUNDS", 3)?,
            kinds,
            build: !flag("INGEST_BENCH_NO_BUILD"),
            keep: flag("INGEST_BENCH_KEEP"),
            capacity: std::env::var("INGEST_BENCH_CAPACITY").map_or(true, |v| v != "0"),
            capacity_start: num("INGEST_BENCH_CAPACITY_START", 200)?,
            capacity_max: num("INGEST_BENCH_CAPACITY_MAX", 1600)?,
            capacity_budget: Duration::from_secs(
                num("INGEST_BENCH_CAPACITY_BUDGET_S", 720)?.into(),
            ),
        })
    }
}

struct Paths {
    manifest_dir: PathBuf,
    bench_dir: PathBuf,
    flv: PathBuf,
    /// The same picture at 2.5 Mbps (a 720p30 camera), for the capacity search.
    flv_2500k: PathBuf,
    recorder: PathBuf,
    load: PathBuf,
}

impl Paths {
    fn find() -> Result<Paths> {
        // This binary is target/<profile>/deps/ingest-HASH; `cargo build --release` puts the
        // server and the load tool in target/release.
        let exe = std::env::current_exe().context("locating the bench binary")?;
        let target = exe
            .ancestors()
            .nth(3)
            .context("bench binary is not under target/<profile>/deps")?
            .to_path_buf();
        let release = target.join("release");
        let bench_dir = target.join("ingest-bench");
        Ok(Paths {
            manifest_dir: std::env::var_os("CARGO_MANIFEST_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR"))),
            flv: bench_dir.join("src-6m.flv"),
            flv_2500k: bench_dir.join("src-2500k.flv"),
            recorder: release.join("rtmp-recorder"),
            load: release.join("examples").join("rtmp_load"),
            bench_dir,
        })
    }
}

/// 20 s of 1280x720 testsrc2 at `video_bitrate` (`6M`, `2.5M`; x264 ultrafast, 2 s GOP, a
/// rate buffer of two seconds, `buffer`) with 128 kbps AAC, made once.
fn ensure_flv(flv: &Path, video_bitrate: &str, buffer: &str) -> Result<()> {
    if flv.exists() {
        return Ok(());
    }
    let dir = flv.parent().context("input path has no folder")?;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let partial = flv.with_extension("partial.flv");
    eprintln!("making {} with ffmpeg (once)", flv.display());
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "20", "-c:v", "libx264", "-preset", "ultrafast"])
        .args(["-b:v", video_bitrate, "-maxrate", video_bitrate])
        .args(["-bufsize", buffer, "-g", "60"])
        .args([
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-ac", "2",
        ])
        .args(["-f", "flv"])
        .arg(&partial)
        .status()
        .context("running ffmpeg (apt-get install ffmpeg)")?;
    if !status.success() {
        bail!("ffmpeg failed ({status}) making {}", partial.display());
    }
    fs::rename(&partial, flv).with_context(|| format!("renaming to {}", flv.display()))
}

fn build(paths: &Paths) -> Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!("building rtmp-recorder and the rtmp_load example (release)");
    let status = Command::new(cargo)
        .current_dir(&paths.manifest_dir)
        .args([
            "build",
            "--release",
            "--bin",
            "rtmp-recorder",
            "--example",
            "rtmp_load",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    Ok(())
}

fn run() -> Result<bool> {
    let cfg = Config::from_env()?;
    let paths = Paths::find()?;
    ensure_flv(&paths.flv, "6M", "12M")?;
    if cfg.capacity {
        ensure_flv(&paths.flv_2500k, "2.5M", "5M")?;
    }
    if cfg.build {
        build(&paths)?;
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let started = Instant::now();

    let full = Scenario {
        name: "full-speed",
        pace: Pace::FullSpeed,
        copies: cfg.copies,
        repeat: cfg.repeat,
        stagger_ms: 0,
        input: paths.flv.clone(),
    };
    let realtime = Scenario {
        name: "real-time",
        pace: Pace::RealTime,
        copies: cfg.rt_copies,
        repeat: cfg.rt_repeat,
        // Cameras do not start on the same millisecond; spread the keyframes over a second.
        stagger_ms: 1000 / u64::from(cfg.rt_copies),
        input: paths.flv.clone(),
    };
    let mut ok = true;
    let mut run_all = |sc: &Scenario, rounds: u32| {
        let mut runs = Vec::new();
        // Alternating servers round by round spreads drifting background load over both.
        for round in 1..=rounds {
            for &kind in &cfg.kinds {
                match run_scenario(kind, sc, round, &paths, &cfg) {
                    Ok(m) => runs.push(m),
                    Err(e) => {
                        ok = false;
                        eprintln!("{} {}: FAILED: {e:#}", sc.name, kind.name());
                    }
                }
            }
        }
        runs
    };
    let full_runs = run_all(&full, cfg.rounds);
    let rt_runs = run_all(&realtime, 1);
    let searches = if cfg.capacity {
        let bitrates = [
            capacity::Bitrate {
                label: "6 Mbps",
                input: paths.flv.clone(),
            },
            capacity::Bitrate {
                label: "2.5 Mbps",
                input: paths.flv_2500k.clone(),
            },
        ];
        capacity::run_all(&paths, &cfg, &bitrates)
    } else {
        Vec::new()
    };

    println!();
    println!(
        "ingest benchmark: {} cores, shared by the server, the load generator and anything else \
         running (load average at the end: {}); input {}",
        cores,
        load_average(),
        paths.flv.display()
    );
    ok &= print_full_speed(&full, &full_runs);
    ok &= print_real_time(&realtime, &rt_runs);
    if cfg.capacity {
        ok &= capacity::print(&searches, cfg.capacity_budget);
    }
    println!("total bench time {:.0} s", started.elapsed().as_secs_f64());
    Ok(ok)
}
