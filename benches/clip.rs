//! A 60-minute clip out of twelve 5-minute chunks, three ways in the same run: our `clip` from
//! a `file://` destination, our `clip` from S3 (s3s-fs behind the tests' counting proxy), and
//! what a user would do instead: `ffmpeg -f concat -ss -to -c copy` over the chunks (+ fsync,
//! as our clip fsyncs its output), plain and `+faststart`. Each runs as a child process (wall,
//! CPU user+sys with its children, peak RSS from wait4); bytes read are what our clip reports
//! (local: its stdout line), what the proxy passed (S3), and the chunks ffmpeg must read through.
//!
//! The chunks come from a real recording: ffmpeg encodes 60 minutes of testsrc2 at 426x240
//! (x264 ultrafast, 1.5 Mbps CBR, 2 s GOP) with AAC 128 kbps into an FLV, and publishes it
//! (`-c copy`) at full speed into `rtmp-recorder run` with 5-minute chunks. Full speed squeezes the wall clock, so the
//! manifests' `utc_start` are set to the first one's plus their stream offset, as a real-time
//! recording has them. The encode and the chunks are cached under target/ (a few minutes the first time).
//!
//! `cargo bench --bench clip`. Rounds: BENCH_ROUNDS (default 3, median).

#[path = "common/measure.rs"]
mod measure;
// The integration tests' support tree; a bench uses a small part of it.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use measure::{Cost, measure, median, warm};
use rtmp_recorder::manifest::ChunkManifest;
use rtmp_recorder::naming::ChunkName;
use rtmp_recorder::publish::{DEFAULT_TEMPLATE, KeyTemplate};
use rtmp_recorder::utc::Civil;
use support::BIN;
use support::publish::proxy::Proxy;
use support::publish::{client, create_bucket, hermetic_aws_env, s3s_fs};

const CHUNKS: usize = 12;
const MINUTES: u64 = 60;
const BUCKET: &str = "bench";

/// A cached chunk: its MP4 (the manifest beside it) and the manifest.
struct Chunk {
    mp4: PathBuf,
    manifest: ChunkManifest,
}

fn main() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let target = Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf();
    let cache = target.join("bench-clip-60min");
    let published = cache.join("published");
    if !cache.join("done").exists() {
        record(&cache);
    }
    let chunks = load(&published);
    assert_eq!(
        chunks.len(),
        CHUNKS,
        "cached chunks in {}",
        published.display()
    );
    let input: u64 = chunks
        .iter()
        .map(|c| std::fs::metadata(&c.mp4).unwrap().len())
        .sum();
    let start = Civil::parse_rfc3339_millis(&chunks[0].manifest.utc_start).unwrap();
    let (from, to) = (start, start + MINUTES as i64 * 60_000);
    let (from_s, to_s) = (
        Civil::from_unix_millis(from).rfc3339(),
        Civil::from_unix_millis(to).rfc3339(),
    );

    let work = target.join("bench-clip-work");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let out = work.join("clip.mp4");
    let log = work.join("clip.json");

    // The same chunks in s3s-fs under the default key template, behind the counting proxy.
    let store = s3s_fs(&work.join("s3"), 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = client(&store.endpoint());
    rt.block_on(create_bucket(&s3, BUCKET));
    let template = KeyTemplate::parse(DEFAULT_TEMPLATE).unwrap();
    for c in &chunks {
        let name = ChunkName::parse(&c.manifest.name).unwrap();
        for ext in ["mp4", "json"] {
            let key = template.render("rec", &name, &format!("{}.{ext}", c.manifest.name));
            let body = aws_sdk_s3::primitives::ByteStream::from_path(c.mp4.with_extension(ext));
            let body = rt.block_on(body).unwrap();
            rt.block_on(s3.put_object().bucket(BUCKET).key(&key).body(body).send())
                .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
        }
    }
    let proxy = Proxy::start(store.addr(), Vec::new());

    let list = work.join("concat.txt");
    let lines: String = chunks
        .iter()
        .map(|c| format!("file '{}'\n", c.mp4.display()))
        .collect();
    std::fs::write(&list, lines).unwrap();
    let secs = MINUTES * 60;
    let ffmpeg = |faststart: &str| {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "ffmpeg -v error -y -f concat -safe 0 -ss 0 -to {secs} -i {} -c copy {faststart} {o} && sync {o}",
            list.display(),
            o = out.display()
        ));
        c
    };
    let ours = |destination: &[&str], s3: bool| {
        let mut c = Command::new(BIN);
        if s3 {
            hermetic_aws_env(&mut c);
        }
        c.arg("--state-dir")
            .arg(work.join("no-state"))
            .args(["clip", "live/bench", "--from", &from_s, "--to", &to_s, "-o"])
            .arg(&out)
            .args(destination)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .env_remove("JOURNAL_STREAM");
        c
    };
    let local = format!("file://{}", published.display());
    let endpoint = proxy.endpoint();
    let s3_args = [
        "--destination",
        &format!("s3://{BUCKET}/rec"),
        "--endpoint-url",
        &endpoint,
    ];

    let labels = [
        "rtmp-recorder clip (local)",
        "rtmp-recorder clip (S3, s3s-fs)",
        "ffmpeg concat -ss -to -c copy + fsync",
        "ffmpeg ... -movflags +faststart + fsync",
    ];
    let mut costs: [Vec<Cost>; 4] = Default::default();
    let mut read = [0u64; 4];
    let mut written = [0u64; 4];
    read[2] = input;
    read[3] = input;
    for round in 0..rounds {
        eprintln!("round {} of {rounds}", round + 1);
        for c in &chunks {
            warm(&c.mp4);
        }
        for (i, cost) in costs.iter_mut().enumerate() {
            let _ = std::fs::remove_file(&out);
            let seen_before: u64 = proxy.seen().iter().map(|r| r.answer_body).sum();
            cost.push(measure(&mut match i {
                0 => ours(&["--destination", &local], false),
                1 => ours(&s3_args, true),
                2 => ffmpeg(""),
                _ => ffmpeg("-movflags +faststart"),
            }));
            written[i] = std::fs::metadata(&out).unwrap().len();
            match i {
                0 => read[0] = bytes_read(&log),
                1 => {
                    let seen: u64 = proxy.seen().iter().map(|r| r.answer_body).sum();
                    read[1] = seen - seen_before;
                }
                _ => {}
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    let mbps = input as f64 * 8.0 / (secs as f64) / 1e6;
    println!(
        "clip benchmark: {MINUTES}-minute clip out of {CHUNKS} 5-minute chunks ({:.0} MB, {mbps:.2} Mbps), median of {rounds} runs",
        input as f64 / 1e6
    );
    println!(
        "  {BIN} --state-dir X clip live/bench --from {from_s} --to {to_s} -o clip.mp4 --destination ..."
    );
    println!(
        "{:<40} {:>8} {:>8} {:>13} {:>10} {:>11}",
        "", "wall s", "CPU s", "peak RSS MiB", "read MB", "written MB"
    );
    for (i, label) in labels.iter().enumerate() {
        let c = median(std::mem::take(&mut costs[i]));
        println!(
            "{label:<40} {:>8.3} {:>8.3} {:>13.1} {:>10.1} {:>11.1}",
            c.wall,
            c.cpu,
            c.rss_mib,
            read[i] as f64 / 1e6,
            written[i] as f64 / 1e6
        );
    }
    println!(
        "(ffmpeg's bytes read: the chunks it must read through; ours: from clip's stdout line, or passed by the proxy)"
    );
}

/// The bytes read that the clip's stdout line (in `file`) gives.
fn bytes_read(file: &Path) -> u64 {
    let text = std::fs::read_to_string(file).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap_or("")).unwrap();
    line["read"]
        .as_u64()
        .unwrap_or_else(|| panic!("no bytes read in the clip's line: {text}"))
}

/// Every chunk under `published`, by sequence.
fn load(published: &Path) -> Vec<Chunk> {
    let mut out: Vec<Chunk> = support::files_under(published)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|json| Chunk {
            manifest: serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap(),
            mp4: json.with_extension("mp4"),
        })
        .collect();
    out.sort_by_key(|c| c.manifest.sequence);
    out
}

/// Records the chunks into `cache`/published: ffmpeg encodes and publishes at full speed
/// into `run`, then the manifests get real-time wall clocks.
fn record(cache: &Path) {
    eprintln!(
        "recording {MINUTES} minutes into {} chunks once (cached in {})",
        CHUNKS,
        cache.display()
    );
    std::fs::create_dir_all(cache).unwrap();
    for d in ["state", "published.partial", "published"] {
        let _ = std::fs::remove_dir_all(cache.join(d));
    }
    let port = support::free_port();
    let state = cache.join("state");
    let partial = cache.join("published.partial");
    let run_log = cache.join("run.log");
    let mut run = Command::new(BIN)
        .arg("--state-dir")
        .arg(&state)
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--chunk-duration", "5m", "--log-level", "warn"])
        .arg("--destination")
        .arg(format!("file://{}", partial.display()))
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&run_log).unwrap())
        .spawn()
        .expect("starting rtmp-recorder run");
    support::wait_for_port(port, &mut run, Duration::from_secs(30), "run", String::new);
    let source = encode(&cache.parent().unwrap().join("bench-clip-60min.flv"));
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(&source)
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://127.0.0.1:{port}/live/bench"))
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ffmpeg failed to publish {}", source.display());
    support::wait_until(Duration::from_secs(600), "every chunk published", || {
        ["recording", "remux", "publish"]
            .iter()
            .all(|d| std::fs::read_dir(state.join(d)).map_or(0, |e| e.count()) == 0)
            && load(&partial).len() >= CHUNKS
    });
    // SAFETY: kill sends a signal to the child we started.
    unsafe { libc::kill(run.id() as libc::pid_t, libc::SIGTERM) };
    let status = run.wait().unwrap();
    assert!(status.success(), "run exited {status}");

    let chunks = load(&partial);
    assert_eq!(
        chunks.len(),
        CHUNKS,
        "chunks recorded; see {}",
        run_log.display()
    );
    let start = Civil::parse_rfc3339_millis(&chunks[0].manifest.utc_start).unwrap();
    for c in chunks {
        let mut m = c.manifest;
        m.utc_start = Civil::from_unix_millis(start + m.stream_offset_ms as i64).rfc3339();
        let json = c.mp4.with_extension("json");
        std::fs::write(&json, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    }
    std::fs::rename(&partial, cache.join("published")).unwrap();
    let _ = std::fs::remove_dir_all(&state);
    std::fs::write(cache.join("done"), b"").unwrap();
}

/// The encode, cached at `flv`: testsrc2 426x240 30 fps, x264 ultrafast 1.5 Mbps CBR with a
/// 2 s GOP, AAC 128 kbps 48 kHz.
fn encode(flv: &Path) -> PathBuf {
    if flv.exists() {
        return flv.to_path_buf();
    }
    let partial = flv.with_extension("partial.flv");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=426x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &(MINUTES * 60).to_string()])
        .args([
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-pix_fmt",
            "yuv420p",
        ])
        .args(["-b:v", "1500k", "-minrate", "1500k", "-maxrate", "1500k"])
        .args(["-bufsize", "3000k", "-x264-params", "nal-hrd=cbr"])
        .args(["-g", "60", "-keyint_min", "60", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-b:a", "128k", "-ar", "48000", "-f", "flv"])
        .arg(&partial)
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "ffmpeg failed to encode {} (is it installed?)",
        partial.display()
    );
    std::fs::rename(&partial, flv).unwrap();
    flv.to_path_buf()
}
