//! Crash safety: `rtmp-recorder remux` is killed with SIGKILL at random points while draining a
//! queue of FLVs, over and over; after each kill `publish/` holds only complete MP4s (each
//! with its manifest), and a rerun finishes the job: exactly one correct MP4 per FLV, every FLV
//! in `archive/`, none lost, nothing in `failed/`.

use crate::support::{Turn, packets, remux, words};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use remux::*;

const RUNS: usize = 24;
const CHUNKS: u32 = 4;

/// xorshift64*: enough randomness for kill times, seeded from the clock (printed on failure).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn spawn(state: &Path) -> std::process::Child {
    remux_command(state, &["--log-level", "error"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawning rtmp-recorder")
}

/// Every MP4 in publish/ is whole (boxes tile the file, moov first) and has its manifest.
fn check_publish_is_consistent(state: &Path, context: &str) {
    // A kill before the stage created its folders leaves no publish/ at all.
    let Ok(entries) = std::fs::read_dir(state.join("publish")) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "mp4") {
            assert_eq!(
                top_level_boxes(&path),
                ["ftyp", "moov", "mdat"],
                "{context}: half MP4 {}",
                path.display()
            );
            assert!(
                path.with_extension("json").exists(),
                "{context}: MP4 without manifest {}",
                path.display()
            );
        }
    }
}

#[test]
fn sigkill_at_random_points_never_loses_or_corrupts() {
    let dir = Turn::shared().scratch();
    // Distinct chunks (different tones and sizes), so a mix-up would show.
    let mut sources: Vec<(String, PathBuf)> = Vec::new();
    for i in 0..CHUNKS {
        let flv = dir.path().join(format!("src{i}.flv"));
        encode(
            &flv,
            &lavfi_av(
                // Noise keeps the chunks large (~11 MB), so a drain lasts long enough for
                // kills to land in the middle of writing, not only at process start.
                &format!(
                    "testsrc2=size={}x{}:rate=30,noise=alls=30:allf=t+u",
                    480 + 32 * i,
                    270 + 18 * i
                ),
                &format!("sine=frequency={}:sample_rate=48000", 300 + 100 * i),
            ),
            &words("-t 3 -c:v libx264 -preset ultrafast -qp 10 -c:a aac"),
        );
        sources.push((chunk_name(i + 1), flv));
    }
    let expected: BTreeMap<String, _> = sources
        .iter()
        .map(|(name, flv)| (name.clone(), packets::by_stream(&packets::read(flv))))
        .collect();

    // How long an uninterrupted drain takes, to spread the kills over it: the fastest of three
    // (the first run pays for a cold page cache; kills timed by it would mostly land after the
    // end of warm runs).
    let q: Vec<(&str, &Path)> = sources
        .iter()
        .map(|(n, p)| (n.as_str(), p.as_path()))
        .collect();
    let mut full = Duration::MAX;
    for i in 0..3 {
        let probe = dir.path().join(format!("probe{i}"));
        queue(&probe, &q);
        let t = Instant::now();
        assert!(spawn(&probe).wait().unwrap().success());
        full = full.min(t.elapsed());
        std::fs::remove_dir_all(&probe).unwrap();
    }
    let full = full.max(Duration::from_millis(20));

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let mut kills_mid_run = 0;
    for run in 0..RUNS {
        let state = dir.path().join(format!("run{run}"));
        queue(&state, &q);
        // One to three kills, each at a random instant of a run, then a clean rerun.
        let kills = 1 + rng.next() % 3;
        for k in 0..kills {
            let mut child = spawn(&state);
            let wait = Duration::from_micros(rng.next() % (full.as_micros() as u64 * 9 / 10));
            std::thread::sleep(wait);
            let finished = child.try_wait().unwrap().is_some();
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
            if !finished {
                kills_mid_run += 1;
            }
            check_publish_is_consistent(&state, &format!("seed {seed} run {run} kill {k}"));
        }
        let out = remux(&state, &[]);
        assert!(
            out.status.success(),
            "seed {seed} run {run}: rerun failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_publish_is_consistent(&state, &format!("seed {seed} run {run} after rerun"));

        let listing = |sub: &str| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(state.join(sub))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert!(
            listing("remux").is_empty(),
            "seed {seed} run {run}: remux/ not drained"
        );
        assert!(
            listing("failed").is_empty(),
            "seed {seed} run {run}: failed/ not empty"
        );
        assert!(
            listing("tmp").is_empty(),
            "seed {seed} run {run}: tmp/ leftovers {:?}",
            listing("tmp")
        );
        let names: Vec<String> = sources.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(listing("archive"), names, "seed {seed} run {run}: FLV lost");
        let mut want_publish: Vec<String> = names
            .iter()
            .flat_map(|n| {
                let stem = n.trim_end_matches(".flv");
                [format!("{stem}.json"), format!("{stem}.mp4")]
            })
            .collect();
        want_publish.sort();
        assert_eq!(listing("publish"), want_publish, "seed {seed} run {run}");
        for (name, want) in &expected {
            let mp4 = published_mp4(&state, name);
            assert_eq!(
                &packets::by_stream(&packets::read(&mp4)),
                want,
                "seed {seed} run {run}: {} does not carry its FLV's packets",
                mp4.display()
            );
        }
        // Keep the disk use of the test small.
        std::fs::remove_dir_all(&state).unwrap();
    }
    eprintln!("{kills_mid_run} kills landed while remux was running (drain takes {full:?})");
    assert!(
        kills_mid_run >= RUNS / 2,
        "only {kills_mid_run} kills landed while remux was running"
    );
}
