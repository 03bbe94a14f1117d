//! Upload throughput of `rtmp-recorder publish` against `aws s3 cp`, both to the same local
//! s3s-fs in the same run, with the same random-bytes file (pure transfer). Prints MB/s, wall
//! and CPU seconds (user+sys of the uploader process) for both, and the ratio.
//!
//! Needs: `cargo install s3s-fs --version 0.14.1 --features binary --locked`, `pip install awscli`.
//! Size: BENCH_MB (default 256), rounds: BENCH_ROUNDS (default 3, best of).

// The integration tests' support tree; a bench uses a small part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rtmp_recorder::spool::StateDir;
use support::publish::*;
use support::require_tool;

fn children_cpu() -> Duration {
    // SAFETY: getrusage only writes into the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

struct Sample {
    wall: Duration,
    cpu: Duration,
}

fn measure(mut cmd: Command) -> Sample {
    let cpu0 = children_cpu();
    let t0 = Instant::now();
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .expect("running uploader");
    let wall = t0.elapsed();
    assert!(status.success(), "uploader failed: {status}");
    Sample {
        wall,
        cpu: children_cpu() - cpu0,
    }
}

fn main() {
    let mb: usize = std::env::var("BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let rounds: u32 = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let aws = require_tool("aws", "pip install awscli");
    let tmp = tempfile::tempdir().unwrap();
    let server = s3s_fs(&tmp.path().join("s3"), 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(create_bucket(&client(&server.endpoint()), "bench"));
    let bytes = random_bytes(mb << 20, 42);
    let state = StateDir::open(tmp.path().join("state")).unwrap();

    let mut ours: Option<Sample> = None;
    let mut theirs: Option<Sample> = None;
    for round in 0..rounds {
        // Ours: one chunk in the inbox, drained by the real binary.
        let name = chunk_name("bench", round + 1);
        let file = queue_mp4(&state, &name, &bytes);
        let _ = std::fs::read(state.publish_inbox().join(&file)); // warm the page cache
        let s = measure(publish_cmd(state.root(), &server.endpoint(), "bench"));
        assert!(
            state.archive().join(&file).exists(),
            "our upload did not finish"
        );
        if ours.as_ref().is_none_or(|b| s.wall < b.wall) {
            ours = Some(s);
        }
        // aws s3 cp of the same bytes (the archived copy, still in the page cache).
        let mut cmd = Command::new(&aws);
        cmd.args(["s3", "cp", "--only-show-errors", "--no-progress"])
            .arg(state.archive().join(&file))
            .arg(format!("s3://bench/aws/{file}"))
            .args(["--endpoint-url", &server.endpoint()])
            .env("AWS_ACCESS_KEY_ID", AK)
            .env("AWS_SECRET_ACCESS_KEY", SK)
            .env("AWS_DEFAULT_REGION", "us-west-2")
            .env("AWS_CONFIG_FILE", "/nonexistent")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        let s = measure(cmd);
        if theirs.as_ref().is_none_or(|b| s.wall < b.wall) {
            theirs = Some(s);
        }
    }
    let (ours, theirs) = (ours.unwrap(), theirs.unwrap());
    let rate = |s: &Sample| mb as f64 / s.wall.as_secs_f64();
    println!("publish upload of {mb} MiB to local s3s-fs, best of {rounds}:");
    for (who, s) in [("rtmp-recorder publish", &ours), ("aws s3 cp", &theirs)] {
        println!(
            "  {who:<22} {:>8.1} MB/s  wall {:>6.2} s  cpu {:>6.2} s",
            rate(s),
            s.wall.as_secs_f64(),
            s.cpu.as_secs_f64()
        );
    }
    println!(
        "  ratio (ours / aws): {:.2}x throughput, {:.2}x CPU",
        rate(&ours) / rate(&theirs),
        ours.cpu.as_secs_f64() / theirs.cpu.as_secs_f64()
    );
}
