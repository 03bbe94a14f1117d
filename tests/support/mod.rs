//! The tests' one support tree. Here: the binary under test (`BIN`), free ports on 127.0.0.1,
//! waiting without blind sleeps, running a tool and keeping its output, SHA-256 hex, finding or
//! installing tools, and the machine's turn (`Turn`: which tests may run beside which). Below, by
//! concern: `flv` (the one FLV reader), `packets` (the one packet-hash reader), `ingest` (the
//! recorder, nginx-rtmp, ffmpeg and GStreamer publishers, chunk checks), `remux` (encodes, MP4
//! comparisons and layout, Chromium in `remux::browser`), `publish` (s3s-fs, moto, the S3 client,
//! manifests, the fault proxy in `publish::proxy`), `http` (a plain HTTP/1.1 client and the
//! Prometheus parser), `rtmp` (hand-built RTMP bytes and a reader for their replies) and
//! `rtmp_cut` (a proxy that cuts a publisher off with a reset and counts the frames it passed).

/// The binary under test, built by cargo for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_rtmp-recorder");

pub mod clock;
pub mod flv;
pub mod http;
pub mod ingest;
pub mod packets;
pub mod publish;
pub mod remux;
pub mod rtmp;
pub mod rtmp_cut;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    l.local_addr().expect("local_addr").port()
}

/// Polls `cond` every 50 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// True once something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_open(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Waits until `child` (called `what`) accepts TCP on 127.0.0.1:`port`; panics if it exits
/// first or `timeout` passes. `context` (e.g. the child's log) is appended to the panic.
pub fn wait_for_port(
    port: u16,
    child: &mut Child,
    timeout: Duration,
    what: &str,
    context: impl Fn() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !port_open(port) {
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "{what} exited ({status}) before listening on 127.0.0.1:{port}\n{}",
                context()
            );
        }
        assert!(
            Instant::now() < deadline,
            "{what} not listening on 127.0.0.1:{port} after {timeout:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A test's scratch directory, removed when dropped, holding the test's [`Turn`] until then:
/// `let dir = Turn::shared().scratch();` opens most tests.
pub struct Scratch {
    dir: tempfile::TempDir,
    _turn: Turn,
}

impl std::ops::Deref for Scratch {
    type Target = tempfile::TempDir;
    fn deref(&self) -> &tempfile::TempDir {
        &self.dir
    }
}

/// Waits until the `stage` process `pid` has started its work: it then holds
/// `STATE/status/STAGE.lock` with its PID inside (what `rtmp-recorder status` reads too).
pub fn wait_stage_started(state: &Path, stage: &str, pid: u32) {
    let lock = state.join("status").join(format!("{stage}.lock"));
    wait_until(
        Duration::from_secs(20),
        &format!(
            "{stage} (pid {pid}) to write its PID into {}",
            lock.display()
        ),
        || std::fs::read_to_string(&lock).is_ok_and(|t| t.trim() == pid.to_string()),
    );
}

/// An argument list written as one line (`words("-c:v libx264 -g 60")`), so a command line reads
/// as one.
pub fn words(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

/// A finished command's stdout (shown on our stderr, for the test's log) once it has exited
/// with `code`.
pub fn stdout_with_code(out: &Output, code: i32) -> String {
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    assert_eq!(out.status.code(), Some(code), "{text}");
    text
}

/// Panics, naming `what` and showing `text`, unless `text` contains every one of `wants`.
pub fn assert_contains_all(text: &str, wants: &[&str], what: &str) {
    let missing: Vec<&str> = wants
        .iter()
        .copied()
        .filter(|w| !text.contains(w))
        .collect();
    assert!(missing.is_empty(), "{what} lacks {missing:?}:\n{text}");
}

/// Runs `cmd` (stdin from /dev/null) to completion; panics with `what` and its stderr unless
/// it succeeds.
pub fn run_ok(cmd: &mut Command, what: &str) -> Output {
    let out = run_to_end(cmd, what);
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` (stdin from /dev/null) to completion; panics if `what`, which must fail,
/// succeeds.
pub fn run_fails(cmd: &mut Command, what: &str) -> Output {
    let out = run_to_end(cmd, what);
    assert!(!out.status.success(), "{what} succeeded");
    out
}

fn run_to_end(cmd: &mut Command, what: &str) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e}"))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Finds `name` on PATH or in ~/.cargo/bin; panics with how to install it.
pub fn require_tool(name: &str, install: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    for d in dirs {
        let p = d.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is required by this test but is not installed; install it with: {install}");
}

/// Makes sure a Debian tool is installed (installs the package if it is missing).
pub fn ensure_apt(tool: &str, package: &str) {
    if Command::new("which")
        .arg(tool)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return;
    }
    let ok = Command::new("apt-get")
        .args(["install", "-y", package])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "could not install {package} (needed for {tool})");
}

/// Makes sure a Python module is importable by `python3` (pip-installs `package` if it is not).
pub fn ensure_pip_module(module: &str, package: &str) {
    let present = |m: &str| {
        Command::new("python3")
            .args(["-c", &format!("import {m}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if present(module) {
        return;
    }
    // Debian 12 marks its Python as externally managed; a pyenv one is not.
    for extra in [&["--break-system-packages"][..], &[]] {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "-q"])
            .args(extra)
            .arg(package)
            .status();
        if present(module) {
            return;
        }
    }
    panic!("could not install {package} with pip (python module {module})");
}

/// HMAC-SHA256 of `message` in hex, made by `openssl dgst` (not the code under test); `macopt`
/// gives the key as openssl takes it (`key:SECRET`, `hexkey:HEX`).
pub fn openssl_hmac(macopt: &str, message: &str) -> String {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-mac", "HMAC", "-macopt", macopt])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("running openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(message.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl dgst -mac HMAC failed");
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit(' ').next().unwrap().to_string()
}

/// Every file below `dir`, recursively (none if it does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The machine's share a test takes. All tests run in one process and any two may run at once;
/// a test that encodes 720p in real time twice over, measures wall time, boots a container or
/// fills a disk would be starved, or would starve its neighbour, and fail for that alone. Such a
/// test takes its turn [`Turn::alone`]; every other test that runs outside tools takes
/// [`Turn::shared`], so it waits while one runs alone (pure tests on bytes take no turn).
/// Held until dropped; most tests open with `let dir = Turn::shared().scratch();`.
pub struct Turn {
    _shared: Option<RwLockReadGuard<'static, ()>>,
    _alone: Option<RwLockWriteGuard<'static, ()>>,
}

static MACHINE: RwLock<()> = RwLock::new(());

impl Turn {
    /// Beside other shared tests. A failed test before it poisons nothing that matters here.
    pub fn shared() -> Turn {
        Turn {
            _shared: Some(MACHINE.read().unwrap_or_else(|e| e.into_inner())),
            _alone: None,
        }
    }

    /// This turn with a fresh scratch directory, both held until the [`Scratch`] is dropped.
    pub fn scratch(self) -> Scratch {
        Scratch {
            dir: tempfile::TempDir::new().expect("creating a scratch directory"),
            _turn: self,
        }
    }

    /// Alone: waits for the running tests to end, and new ones wait for this one (on Linux std's
    /// RwLock queues readers behind a waiting writer, so a run of shared tests cannot starve it).
    pub fn alone() -> Turn {
        Turn {
            _shared: None,
            _alone: Some(MACHINE.write().unwrap_or_else(|e| e.into_inner())),
        }
    }
}
