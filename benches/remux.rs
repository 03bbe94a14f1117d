//! Remux cost against the tools it replaces, on one 5-minute 6 Mbps H.264+AAC FLV (~225 MB,
//! encoded once and cached under target/): our `rtmp-recorder remux`, `ffmpeg -c copy` (+ fsync),
//! `ffmpeg -c copy -movflags +faststart` (+ fsync) and `cp` (+ fsync). Each runs as a child
//! process; wall time, CPU (user+sys) and peak RSS come from wait4's rusage.
//!
//! `cargo bench --bench remux`. Targets: CPU <= 1/3 of ffmpeg -c copy, wall <= 1.5x cp+fsync,
//! peak RSS <= 32 MiB.

#[path = "common/measure.rs"]
mod measure;
// The integration tests' support tree, for its fixture encoder; a bench uses a small part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use measure::{Cost, measure, median, warm};

const RUNS: usize = 5;

fn fixture(target: &Path) -> PathBuf {
    let flv = target.join("bench-remux-5min-6mbps.flv");
    if flv.exists() {
        return flv;
    }
    eprintln!(
        "encoding the 5-minute fixture once (cached at {})",
        flv.display()
    );
    let tmp = flv.with_extension("partial.flv");
    let args = "-t 300 -c:v libx264 -preset ultrafast \
        -b:v 6M -minrate 6M -maxrate 6M -bufsize 12M -x264-params nal-hrd=cbr -g 60 \
        -c:a aac -b:a 128k -f flv";
    support::remux::encode(
        &tmp,
        &support::remux::testsrc_av("640x360"),
        &support::words(args),
    );
    std::fs::rename(&tmp, &flv).unwrap();
    flv
}

fn main() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_rtmp-recorder"));
    let target = bin
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let flv = fixture(&target);
    let size = std::fs::metadata(&flv).unwrap().len();
    let work = target.join("bench-remux-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let name = "20261126T030000.000Z_live_bench_000001";
    let out = work.join("out.mp4");
    let sh = |script: String| {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        c
    };
    let f = flv.display();
    let o = out.display();

    let mut results: Vec<(&str, Cost)> = Vec::new();
    let mut runs: [Vec<Cost>; 4] = Default::default();
    for _ in 0..RUNS {
        // Ours: a fresh state dir with the chunk queued (the copy is not timed).
        let state = work.join("state");
        let _ = std::fs::remove_dir_all(&state);
        std::fs::create_dir_all(state.join("remux")).unwrap();
        let queued = state.join("remux").join(format!("{name}.flv"));
        std::fs::copy(&flv, &queued).unwrap();
        // Ingest hands chunks on fsynced; so does this setup (not timed).
        std::fs::File::open(&queued).unwrap().sync_all().unwrap();
        // Warm the page cache for every contender alike.
        warm(&state.join("remux").join(format!("{name}.flv")));
        runs[0].push(measure(
            Command::new(&bin)
                .arg("--state-dir")
                .arg(&state)
                .args(["remux", "--log-level", "warn"])
                .env_remove("JOURNAL_STREAM"),
        ));
        warm(&flv);
        let _ = std::fs::remove_file(&out);
        runs[1].push(measure(&mut sh(format!(
            "ffmpeg -v error -y -i {f} -c copy {o} && sync {o}"
        ))));
        let _ = std::fs::remove_file(&out);
        runs[2].push(measure(&mut sh(format!(
            "ffmpeg -v error -y -i {f} -c copy -movflags +faststart {o} && sync {o}"
        ))));
        let _ = std::fs::remove_file(&out);
        runs[3].push(measure(&mut sh(format!("cp {f} {o} && sync {o}"))));
        let _ = std::fs::remove_file(&out);
        std::thread::sleep(Duration::from_millis(200));
    }
    for (label, r) in [
        "rtmp-recorder remux",
        "ffmpeg -c copy + fsync",
        "ffmpeg -c copy +faststart + fsync",
        "cp + fsync",
    ]
    .into_iter()
    .zip(runs)
    {
        results.push((label, median(r)));
    }

    println!(
        "remux benchmark: {} ({:.0} MB), median of {RUNS} runs",
        flv.display(),
        size as f64 / 1e6
    );
    println!(
        "{:<36} {:>9} {:>9} {:>12}",
        "", "wall s", "CPU s", "peak RSS MiB"
    );
    for (label, c) in &results {
        println!(
            "{label:<36} {:>9.3} {:>9.3} {:>12.1}",
            c.wall, c.cpu, c.rss_mib
        );
    }
    let ours = results[0].1;
    let ffmpeg = results[1].1;
    let cp = results[3].1;
    let cpu_ratio = ours.cpu / ffmpeg.cpu;
    let wall_ratio = ours.wall / cp.wall;
    let verdict = |ok: bool| if ok { "ok" } else { "MISSED" };
    println!(
        "CPU ours / ffmpeg -c copy: {cpu_ratio:.3} (target <= 0.333) {}",
        verdict(cpu_ratio <= 1.0 / 3.0)
    );
    println!(
        "wall ours / cp+fsync:      {wall_ratio:.3} (target <= 1.5) {}",
        verdict(wall_ratio <= 1.5)
    );
    println!(
        "peak RSS ours:             {:.1} MiB (target <= 32) {}",
        ours.rss_mib,
        verdict(ours.rss_mib <= 32.0)
    );
    let _ = std::fs::remove_dir_all(&work);
}
