//! The systemd side of a stage: sockets passed by socket activation (`LISTEN_FDS`), and service
//! notifications (`READY=1`, `STATUS=`, `WATCHDOG=1`, `STOPPING=1`). Without systemd every call
//! here is a no-op, so the same binary runs by hand.

use std::net::TcpListener;
use std::os::fd::FromRawFd;
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

pub fn listeners() -> Result<Listeners> {
    let fds = sd_notify::listen_fds_with_names().context("reading LISTEN_FDS from systemd")?;
    let mut out = Listeners::default();
    for (fd, name) in fds {
        // SAFETY: systemd hands these fds to this process (LISTEN_PID matched) and nothing else
        // in the process owns them.
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
    // Child processes (none today) must not think the sockets are theirs.
    // SAFETY: removing variables before any thread reads them; called at startup.
    unsafe {
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    Ok(out)
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::debug!("sd_notify failed: {e}");
    }
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
