//! Ingest benchmark (`cargo bench --bench ingest`): our `rtmp-recorder ingest` against nginx-rtmp
//! (Debian libnginx-mod-rtmp, `record all`), in the same run, on the same machine and input.
//!
//! (a) full speed: N publishers send a 6 Mbps H.264+AAC FLV as fast as the server reads it;
//!     prints MB/s and server CPU-seconds per GB for both, and ours/nginx (target <= 1).
//! (b) real time: 50 publishers paced by media timestamps; counts the media frames in every
//!     recorded file against the frames sent (target: 0 lost), server CPU %, peak RSS.
//!
//! Each scenario starts a fresh server in its own scratch directory under
//! `target/ingest-bench/runs/`. The load generator is `examples/rtmp_load` as a child process,
//! so its CPU is not counted as the server's (it does share the machine's cores).
//!
//! Knobs (environment): INGEST_BENCH_COPIES (8), INGEST_BENCH_REPEAT (passes of the 20 s file
//! per full-speed stream, 12), INGEST_BENCH_RT_COPIES (50), INGEST_BENCH_RT_REPEAT (1),
//! INGEST_BENCH_ROUNDS (full-speed rounds per server, best kept, 3),
//! INGEST_BENCH_ONLY (`nginx` or `ours`), INGEST_BENCH_NO_BUILD=1, INGEST_BENCH_KEEP=1 (keep
//! the recordings).

#[path = "../examples/rtmp_load/flv_tags.rs"]
#[allow(dead_code)]
mod flv_tags;
#[path = "ingest/recorded.rs"]
mod recorded;
#[path = "ingest/servers.rs"]
mod servers;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use recorded::Recorded;
use servers::{CpuTime, Kind, Server};

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
        })
    }
}

struct Paths {
    manifest_dir: PathBuf,
    bench_dir: PathBuf,
    flv: PathBuf,
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
            recorder: release.join("rtmp-recorder"),
            load: release.join("examples").join("rtmp_load"),
            bench_dir,
        })
    }
}

/// 20 s of 1280x720 testsrc2 at 6 Mbps (x264 ultrafast, 2 s GOP) with 128 kbps AAC, made once.
fn ensure_flv(flv: &Path) -> Result<()> {
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
        .args([
            "-b:v", "6M", "-maxrate", "6M", "-bufsize", "12M", "-g", "60",
        ])
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

#[derive(Clone, Copy)]
enum Pace {
    FullSpeed,
    RealTime,
}

struct Scenario {
    name: &'static str,
    pace: Pace,
    copies: u32,
    repeat: u32,
    stagger_ms: u64,
}

/// What the load tool reported (its `--json` line).
struct Load {
    bytes_sent: u64,
    wall_s: f64,
    client_cpu_s: f64,
    max_lag_ms: f64,
    failed: u64,
    /// (key, frames sent, error)
    streams: Vec<(String, u64, Option<String>)>,
}

impl Load {
    fn parse(v: &Value) -> Result<Load> {
        let u = |k: &str| v[k].as_u64().with_context(|| format!("load JSON: no {k}"));
        let f = |k: &str| v[k].as_f64().with_context(|| format!("load JSON: no {k}"));
        let streams = v["per_stream"]
            .as_array()
            .context("load JSON: no per_stream")?
            .iter()
            .map(|s| {
                (
                    s["key"].as_str().unwrap_or("?").to_string(),
                    s["frames_sent"].as_u64().unwrap_or(0),
                    s["error"].as_str().map(str::to_string),
                )
            })
            .collect();
        Ok(Load {
            bytes_sent: u("bytes_sent")?,
            wall_s: f("wall_s")?,
            client_cpu_s: f("client_cpu_s")?,
            max_lag_ms: f("max_lag_ms")?,
            failed: u("failed")?,
            streams,
        })
    }
}

struct Measured {
    kind: Kind,
    load: Load,
    server_cpu: CpuTime,
    /// Kernel worker threads over the same window (machine-wide; see `kernel_worker_cpu`).
    kworker_s: f64,
    /// nginx: `sync -f` of its record folder; ours: until `recording/` is empty (all fsynced
    /// and handed off).
    settle_s: f64,
    peak_rss: u64,
    recorded: Recorded,
    /// Set when the server died during the run or did not stop cleanly.
    server_trouble: Option<String>,
}

impl Measured {
    fn frames_sent(&self) -> u64 {
        self.load.streams.iter().map(|s| s.1).sum()
    }

    /// (lost, extra) over all streams: frames sent but not recorded, and recorded beyond sent.
    fn frame_diff(&self) -> (u64, u64) {
        self.load
            .streams
            .iter()
            .fold((0, 0), |(lost, extra), (key, sent, _)| {
                let rec = self.recorded.frames(key);
                (
                    lost + sent.saturating_sub(rec),
                    extra + rec.saturating_sub(*sent),
                )
            })
    }

    fn cpu_per_gb(&self) -> f64 {
        self.server_cpu.total() / (self.load.bytes_sent as f64 / GB)
    }
}

fn run_scenario(
    kind: Kind,
    sc: &Scenario,
    round: u32,
    paths: &Paths,
    cfg: &Config,
) -> Result<Measured> {
    let dir = paths
        .bench_dir
        .join("runs")
        .join(format!("{}-{}-{round}", sc.name, kind.name()));
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut server = match kind {
        Kind::Nginx => Server::start_nginx(&dir)?,
        Kind::Ours => Server::start_ours(&paths.recorder, &dir)?,
    };
    eprintln!(
        "{} {}: {} stream(s) x {} pass(es) -> {} (pid {})",
        sc.name,
        kind.name(),
        sc.copies,
        sc.repeat,
        server.url(),
        server.pid()
    );
    let cpu_before = server.cpu();
    let kworker_before = servers::kernel_worker_cpu();
    let load = run_load(paths, &server.url(), sc, &dir)?;

    let settle = Instant::now();
    match kind {
        Kind::Nginx => {
            // nginx-rtmp never fsyncs its recordings; flush them so the comparison is fair.
            let status = Command::new("sync")
                .arg("-f")
                .arg(&server.record_dirs[0])
                .status()
                .context("running sync -f")?;
            if !status.success() {
                bail!("sync -f failed ({status})");
            }
        }
        Kind::Ours => wait_handed_off(&server, Duration::from_secs(60)),
    }
    let settle_s = settle.elapsed().as_secs_f64();
    wait_cpu_idle(&server);
    let server_cpu = server.cpu().since(cpu_before);
    let kworker_s = servers::kernel_worker_cpu() - kworker_before;
    let peak_rss = server.peak_rss();
    let alive = server.alive();
    let stopped = server.stop();
    let server_trouble = match (alive, stopped) {
        (true, Ok(())) => None,
        (true, Err(how)) => Some(format!("{how}; see {}", server.log.display())),
        (false, Err(how)) => Some(format!(
            "died during the run ({how}); see {}",
            server.log.display()
        )),
        (false, Ok(())) => Some("died during the run".into()),
    };
    let recorded = recorded::count(kind, &server.record_dirs);
    if !cfg.keep {
        for d in &server.record_dirs {
            let _ = fs::remove_dir_all(d);
        }
    }
    Ok(Measured {
        kind,
        load,
        server_cpu,
        kworker_s,
        settle_s,
        peak_rss,
        recorded,
        server_trouble,
    })
}

fn run_load(paths: &Paths, url: &str, sc: &Scenario, dir: &Path) -> Result<Load> {
    let out_path = dir.join("load.json");
    let log_path = dir.join("load.log");
    let mut child = Command::new(&paths.load)
        .args(["--url", url, "--key-prefix", "load", "--json"])
        .args(["--copies", &sc.copies.to_string()])
        .args(["--repeat", &sc.repeat.to_string()])
        .args(["--stagger-ms", &sc.stagger_ms.to_string()])
        .arg(match sc.pace {
            Pace::FullSpeed => "--full-speed",
            Pace::RealTime => "--realtime",
        })
        .arg("--input")
        .arg(&paths.flv)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path)?)
        .stderr(fs::File::create(&log_path)?)
        .spawn()
        .with_context(|| format!("starting {}", paths.load.display()))?;
    let media_s = 21.0 * f64::from(sc.repeat);
    let limit = Duration::from_secs_f64(match sc.pace {
        Pace::RealTime => media_s * 1.5 + 60.0,
        Pace::FullSpeed => media_s * 2.0 + 120.0,
    });
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "load tool still running after {limit:?}; log {}",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let text = fs::read_to_string(&out_path)?;
    let Some(line) = text.lines().last().filter(|l| l.starts_with('{')) else {
        bail!(
            "load tool printed no summary ({status}):\n{}",
            servers::tail(&log_path, 10)
        );
    };
    let v: Value = serde_json::from_str(line).context("parsing the load tool's JSON")?;
    Load::parse(&v)
}

fn wait_handed_off(server: &Server, limit: Duration) {
    let Some(dir) = &server.recording_dir else {
        return;
    };
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let busy = fs::read_dir(dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if !busy {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the server's CPU time stops moving, so work it does after the clients have gone
/// (closing files, fsync) is counted.
fn wait_cpu_idle(server: &Server) {
    let mut last = server.cpu();
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(200));
        let now = server.cpu();
        if now == last {
            return;
        }
        last = now;
    }
}

fn run() -> Result<bool> {
    let cfg = Config::from_env()?;
    let paths = Paths::find()?;
    ensure_flv(&paths.flv)?;
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
    };
    let realtime = Scenario {
        name: "real-time",
        pace: Pace::RealTime,
        copies: cfg.rt_copies,
        repeat: cfg.rt_repeat,
        // Cameras do not start on the same millisecond; spread the keyframes over a second.
        stagger_ms: 1000 / u64::from(cfg.rt_copies),
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
    println!("total bench time {:.0} s", started.elapsed().as_secs_f64());
    Ok(ok)
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// The round with the least CPU per GB: background load only ever adds CPU time.
fn best(runs: &[Measured], kind: Kind) -> Option<&Measured> {
    runs.iter()
        .filter(|m| m.kind == kind)
        .min_by(|a, b| a.cpu_per_gb().total_cmp(&b.cpu_per_gb()))
}

fn print_full_speed(sc: &Scenario, runs: &[Measured]) -> bool {
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

fn print_real_time(sc: &Scenario, runs: &[Measured]) -> bool {
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
        (Some(n), Some(o)) => println!(
            "CPU-seconds per GB in real time, rtmp-recorder / nginx-rtmp = {:.2} (no target; \
             this is what a live deployment pays)",
            o.cpu_per_gb() / n.cpu_per_gb()
        ),
        (None, Some(_)) => {}
    }
    println!(
        "CPU % is of one core; `lag ms` is how far the slowest publisher fell behind real time \
         (large = the server or the machine could not keep up); RSS is the peak"
    );
    ok
}

/// Prints stream errors, bad files and server trouble; returns whether there were none.
fn report_trouble(m: &Measured) -> bool {
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
