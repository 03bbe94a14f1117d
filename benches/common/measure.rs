//! Measuring a benchmark's contenders alike: each runs as a child process, and wait4's rusage
//! gives its CPU (user+sys, its own children included: a `sh -c 'tool && sync'` counts both)
//! and peak RSS. Shared by the remux and clip benchmarks.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub wall: f64,
    pub cpu: f64,
    pub rss_mib: f64,
}

/// Runs `cmd` as a child and measures it with wait4; panics if it fails.
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also yields its rusage
pub fn measure(cmd: &mut Command) -> Cost {
    let t = Instant::now();
    let child = cmd.spawn().expect("spawning benchmark child");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = t.elapsed().as_secs_f64();
    assert_eq!(r, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{cmd:?} failed with status {status}"
    );
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Cost {
        wall,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
        rss_mib: ru.ru_maxrss as f64 / 1024.0,
    }
}

/// The median of each measure on its own.
pub fn median(mut costs: Vec<Cost>) -> Cost {
    let mid = costs.len() / 2;
    let pick = |v: &mut Vec<Cost>, f: fn(&Cost) -> f64| {
        v.sort_by(|a, b| f(a).total_cmp(&f(b)));
        f(&v[mid])
    };
    Cost {
        wall: pick(&mut costs, |c| c.wall),
        cpu: pick(&mut costs, |c| c.cpu),
        rss_mib: pick(&mut costs, |c| c.rss_mib),
    }
}

/// Reads `path` through once, so every contender finds it in the page cache. Streamed: this
/// process must stay small, its children inherit its peak RSS until exec.
pub fn warm(path: &Path) {
    if let Ok(mut f) = std::fs::File::open(path) {
        let _ = std::io::copy(&mut f, &mut std::io::sink());
    }
}
