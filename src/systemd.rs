//! The systemd side of a stage: sockets passed by socket activation (`LISTEN_FDS`), and service
//! notifications (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`). Without systemd every call
//! here is a no-op, so the same binary runs by hand.

use std::net::TcpListener;
use std::os::fd::{FromRawFd, RawFd};
use std::time::Duration;

use anyhow::{Context, Result};
use sd_notify::NotifyState;

/// The `FileDescriptorName=` of the HTTP socket unit; every other passed socket is RTMP
/// (`rtmp`, or unnamed as systemd-socket-activate passes them without `--fdname`), but for
/// the RTMPS one.
pub const HTTP_FD_NAME: &str = "http";
/// The `FileDescriptorName=` of the RTMPS (RTMP over TLS) socket unit.
pub const RTMPS_FD_NAME: &str = "rtmps";

/// TCP listeners passed by systemd (`.socket` units), sorted by `LISTEN_FDNAMES`. All empty
/// without socket activation.
#[derive(Debug, Default)]
pub struct Listeners {
    pub rtmp: Vec<TcpListener>,
    pub http: Vec<TcpListener>,
    pub rtmps: Vec<TcpListener>,
}

impl Listeners {
    /// Whether systemd passed any socket (the process is socket-activated).
    pub fn any(&self) -> bool {
        !(self.rtmp.is_empty() && self.http.is_empty() && self.rtmps.is_empty())
    }
}

/// The sockets systemd passed (`LISTEN_FDS`, `LISTEN_FDNAMES`): not read yet, read by
/// [`take_passed`], or handed out by [`listeners`] (once: two owners would close each fd twice).
enum Passed {
    NotRead,
    Read(Result<Vec<(RawFd, String)>, String>),
    HandedOut,
}

static PASSED: std::sync::Mutex<Passed> = std::sync::Mutex::new(Passed::NotRead);

fn read_passed() -> Result<Vec<(RawFd, String)>, String> {
    sd_notify::listen_fds_with_names()
        .map(|fds| fds.collect())
        .map_err(|e| e.to_string())
}

/// Reads the sockets systemd passed and removes its variables from the environment, so child
/// processes (none today) do not think the sockets are theirs. Call it from `main` before any
/// thread exists: changing the environment while another thread may read it is undefined.
///
/// # Safety
/// No other thread may exist (nor read or write the environment) during the call.
pub unsafe fn take_passed() {
    let mut passed = PASSED.lock().unwrap_or_else(|e| e.into_inner());
    if matches!(*passed, Passed::NotRead) {
        *passed = Passed::Read(read_passed());
    }
    // SAFETY: the caller guarantees the process is still single-threaded.
    unsafe {
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDNAMES");
    }
}

/// The passed sockets, sorted; empty on every call after the first.
pub fn listeners() -> Result<Listeners> {
    let fds = {
        let mut passed = PASSED.lock().unwrap_or_else(|e| e.into_inner());
        // Without `take_passed` (the library used on its own) the variables are read here
        // and left in place.
        match std::mem::replace(&mut *passed, Passed::HandedOut) {
            Passed::NotRead => read_passed(),
            Passed::Read(fds) => fds,
            Passed::HandedOut => Ok(Vec::new()),
        }
    }
    .map_err(|e| anyhow::anyhow!("reading LISTEN_FDS from systemd: {e}"))?;
    let mut out = Listeners::default();
    for (fd, name) in fds {
        // SAFETY: systemd hands these fds to this process (LISTEN_PID matched), nothing else
        // in the process owns them, and `PASSED` hands each out once.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        listener.set_nonblocking(true).with_context(|| {
            format!("socket fd {fd} ({name}) from systemd is not a usable TCP listener")
        })?;
        if name == HTTP_FD_NAME {
            out.http.push(listener);
        } else if name == RTMPS_FD_NAME {
            out.rtmps.push(listener);
        } else {
            out.rtmp.push(listener);
        }
    }
    Ok(out)
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::debug!("sd_notify failed: {e}");
    }
}

/// The sockets systemd passed for one kind of listener (`what`: RTMP, RTMPS, HTTP), else our
/// own, bound on `addrs` (the addresses `option` gave).
pub async fn passed_or_bound(
    passed: Vec<TcpListener>,
    addrs: &[std::net::SocketAddr],
    what: &str,
    option: &str,
) -> Result<Vec<tokio::net::TcpListener>> {
    if !passed.is_empty() {
        return passed
            .into_iter()
            .map(|l| {
                tokio::net::TcpListener::from_std(l)
                    .with_context(|| format!("{what}: using the socket passed by systemd"))
            })
            .collect();
    }
    let mut out = Vec::new();
    for addr in addrs {
        let l = tokio::net::TcpListener::bind(addr).await.with_context(|| {
            format!("{what}: listening on {addr} (is another server there? change {option})")
        })?;
        out.push(l);
    }
    Ok(out)
}

pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn status(status: &str) {
    notify(&[NotifyState::Status(status)]);
}

pub fn stopping(status: &str) {
    notify(&[NotifyState::Stopping, NotifyState::Status(status)]);
}

pub fn watchdog() {
    notify(&[NotifyState::Watchdog]);
}

/// How often to send `WATCHDOG=1`: half of `WatchdogSec=`, or `None` when it is not set.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().map(|d| d / 2)
}
