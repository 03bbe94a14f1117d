//! The two servers under test, run as child processes on a free 127.0.0.1 port with their own
//! scratch directory: nginx-rtmp (Debian's libnginx-mod-rtmp, `record all`, the replaced system's
//! settings) and our `rtmp-recorder ingest`. Also reads their CPU time and peak RSS from /proc,
//! summed over the server's process tree (nginx's master and worker).

use std::collections::HashMap;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

const NGINX_RTMP_MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Ours,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx-rtmp",
            Kind::Ours => "rtmp-recorder",
        }
    }
}

pub struct Server {
    pub kind: Kind,
    pub port: u16,
    /// Where finished and in-progress recordings end up (walked to count frames).
    pub record_dirs: Vec<PathBuf>,
    /// Our in-progress folder; empty once every chunk has been handed off.
    pub recording_dir: Option<PathBuf>,
    pub log: PathBuf,
    child: Option<Child>,
}

pub fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").context("binding a probe socket")?;
    Ok(l.local_addr()?.port())
}

impl Server {
    pub fn start_nginx(dir: &Path) -> Result<Server> {
        let port = free_port()?;
        let rec = dir.join("rec");
        fs::create_dir_all(&rec).with_context(|| format!("creating {}", rec.display()))?;
        // The worker drops to `nobody` when nginx starts as root; it must be able to write here.
        set_mode(&rec, 0o777)?;
        let conf = dir.join("nginx.conf");
        let d = dir.display();
        // Mirrors the replaced system's recorder settings; interval 10s matches our chunks.
        let text = format!(
            "load_module {NGINX_RTMP_MODULE};\n\
             worker_processes 1;\n\
             worker_rlimit_nofile 10000;\n\
             error_log {d}/error.log info;\n\
             pid {d}/nginx.pid;\n\
             events {{ worker_connections 4096; }}\n\
             rtmp {{\n\
               access_log {d}/access.log;\n\
               server {{\n\
                 listen 127.0.0.1:{port};\n\
                 chunk_size 4096;\n\
                 application live {{\n\
                   live on;\n\
                   record all;\n\
                   record_path {rec};\n\
                   record_unique on;\n\
                   record_append off;\n\
                   record_interval 10s;\n\
                   record_max_size 1000M;\n\
                 }}\n\
               }}\n\
             }}\n",
            rec = rec.display(),
        );
        fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
        let log = dir.join("nginx.out");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?)
            .spawn()
            .context("starting nginx (apt-get install nginx libnginx-mod-rtmp)")?;
        let mut s = Server {
            kind: Kind::Nginx,
            port,
            record_dirs: vec![rec],
            recording_dir: None,
            log: dir.join("error.log"),
            child: Some(child),
        };
        s.wait_listening()?;
        Ok(s)
    }

    pub fn start_ours(binary: &Path, dir: &Path) -> Result<Server> {
        let port = free_port()?;
        let state = dir.join("state");
        fs::create_dir_all(&state).with_context(|| format!("creating {}", state.display()))?;
        let log = dir.join("ingest.log");
        let child = Command::new(binary)
            .arg("--state-dir")
            .arg(&state)
            .args(["ingest", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--chunk-duration", "10s"])
            // Every load connection comes from 127.0.0.1: the default of 16 per address would
            // refuse the 17th stream (nginx-rtmp has no such limit), and the capacity search
            // goes past the default of 256 in all (nginx-rtmp is given 4096 too).
            .args(["--max-connections-per-ip", "4096"])
            .args(["--max-connections", "4096"])
            .stdin(Stdio::null())
            .stdout(log_file(&log)?)
            .stderr(log_file(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut s = Server {
            kind: Kind::Ours,
            port,
            record_dirs: ["remux", "recording", "failed"]
                .iter()
                .map(|d| state.join(d))
                .collect(),
            recording_dir: Some(state.join("recording")),
            log,
            child: Some(child),
        };
        s.wait_listening()?;
        Ok(s)
    }

    pub fn url(&self) -> String {
        format!("rtmp://127.0.0.1:{}/live", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    fn wait_listening(&mut self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "{} exited at start ({status}); log {}:\n{}",
                    self.kind.name(),
                    self.log.display(),
                    tail(&self.log, 15)
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} is not listening on port {} after {START_TIMEOUT:?}",
                    self.kind.name(),
                    self.port
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// CPU time of the server and all its descendants (threads included) so far.
    pub fn cpu(&self) -> CpuTime {
        let (user, system) = process_tree(self.pid())
            .iter()
            .filter_map(|p| proc_stat(*p))
            .fold((0, 0), |(u, s), p| (u + p.user_ticks, s + p.system_ticks));
        let hz = clock_ticks_per_second();
        CpuTime {
            user: user as f64 / hz,
            system: system as f64 / hz,
        }
    }

    /// Sum of the peak resident set (VmHWM) of the server's processes, in bytes.
    pub fn peak_rss(&self) -> u64 {
        process_tree(self.pid())
            .iter()
            .filter_map(|p| fs::read_to_string(format!("/proc/{p}/status")).ok())
            .filter_map(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            })
            .sum::<u64>()
            * 1024
    }

    /// SIGTERM, then SIGKILL if it has not exited in time. Err says how it did not end cleanly.
    pub fn stop(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Err("had already exited".into());
        };
        // SAFETY: plain kill(2) on the pid of a child we spawned and have not reaped.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) if status.success() => return Ok(()),
                Ok(Some(status)) => return Err(format!("ended with {status} on SIGTERM")),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "killed: still running {STOP_TIMEOUT:?} after SIGTERM"
                    ));
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

fn log_file(path: &Path) -> Result<fs::File> {
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// The last `lines` lines of a log file, for error messages.
pub fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Seconds of CPU in user and kernel mode.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CpuTime {
    pub user: f64,
    pub system: f64,
}

impl CpuTime {
    pub fn total(self) -> f64 {
        self.user + self.system
    }

    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }
}

struct ProcStat {
    comm: String,
    ppid: u32,
    /// utime + cutime, stime + cstime (reaped children count too).
    user_ticks: u64,
    system_ticks: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields resume after the last ')'.
    let close = text.rfind(')')?;
    let comm = text[text.find('(')? + 1..close].to_string();
    let rest = &text[close + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        comm,
        ppid: num(1)? as u32,
        user_ticks: num(11)? + num(13)?,
        system_ticks: num(12)? + num(14)?,
    })
}

/// CPU seconds of all kernel worker threads so far. Page writeback of files nobody fsyncs runs
/// there (not in the writer), so a fair comparison with a server that fsyncs looks at it too.
/// Machine-wide: it also counts other processes' writeback and kernel work.
pub fn kernel_worker_cpu() -> f64 {
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0.0;
    };
    let ticks: u64 = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(proc_stat)
        .filter(|s| s.comm.starts_with("kworker"))
        .map(|s| s.user_ticks + s.system_ticks)
        .sum();
    ticks as f64 / clock_ticks_per_second()
}

fn process_tree(root: u32) -> Vec<u32> {
    if root == 0 {
        return Vec::new();
    }
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for e in entries.flatten() {
            if let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                && let Some(s) = proc_stat(pid)
            {
                children.entry(s.ppid).or_default().push(pid);
            }
        }
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        if let Some(c) = children.get(&tree[i]) {
            tree.extend(c);
        }
        i += 1;
    }
    tree
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}
