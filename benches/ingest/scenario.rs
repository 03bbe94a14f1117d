//! One measured run: a fresh server in its own scratch folder, the load tool against it as a
//! child process, then the server's CPU (from before the first client to idle after the last),
//! peak RSS, and the frames it recorded.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::recorded::{self, Recorded};
use crate::servers::{self, CpuTime, Kind, Server};
use crate::{Config, GB, Paths};

#[derive(Clone, Copy)]
pub enum Pace {
    FullSpeed,
    RealTime,
}

pub struct Scenario {
    pub name: &'static str,
    pub pace: Pace,
    pub copies: u32,
    pub repeat: u32,
    pub stagger_ms: u64,
    /// The FLV every publisher sends.
    pub input: PathBuf,
}

/// What the load tool reported (its `--json` line).
pub struct Load {
    pub bytes_sent: u64,
    pub wall_s: f64,
    pub client_cpu_s: f64,
    pub max_lag_ms: f64,
    pub failed: u64,
    /// (key, frames sent, error)
    pub streams: Vec<(String, u64, Option<String>)>,
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

pub struct Measured {
    pub kind: Kind,
    pub load: Load,
    pub server_cpu: CpuTime,
    /// Kernel worker threads over the same window (machine-wide; see `kernel_worker_cpu`).
    pub kworker_s: f64,
    /// nginx: `sync -f` of its record folder; ours: until `recording/` is empty (all fsynced
    /// and handed off).
    pub settle_s: f64,
    pub peak_rss: u64,
    pub recorded: Recorded,
    /// Set when the server died during the run or did not stop cleanly.
    pub server_trouble: Option<String>,
}

impl Measured {
    pub fn frames_sent(&self) -> u64 {
        self.load.streams.iter().map(|s| s.1).sum()
    }

    /// (lost, extra) over all streams: frames sent but not recorded, and recorded beyond sent.
    pub fn frame_diff(&self) -> (u64, u64) {
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

    pub fn cpu_per_gb(&self) -> f64 {
        self.server_cpu.total() / (self.load.bytes_sent as f64 / GB)
    }
}

pub fn run_scenario(
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
        .arg(&sc.input)
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
