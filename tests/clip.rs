//! `rtmp-recorder clip` on real recorded chunks: ffmpeg publishes 14 s into `run` with 4 s
//! chunks published to a `file://` destination; clips inside one chunk, across two and across
//! three carry exactly the source packets of their span (from the keyframe before `--from`), show
//! their first frame at `--from` (the very picture the source shows there), last `--to - --from`
//! within a frame, and read little more than they write. Spans the recording does not cover
//! without a break (before it began, across a missing chunk) are refused, saying why. The same
//! chunks in a real S3 server (s3s-fs), behind a proxy that counts the bytes it passes and answers
//! some requests with 503 SlowDown and 500: the clip is byte for byte the one cut from disk, and
//! what it fetched is the clip plus the chunks' heads and manifests, within a few percent.

use crate::support::{self, Turn, flv, free_port, http, ingest, publish, remux, wait_until};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use ingest::{PublishOpts, ffmpeg_publish, files_with_ext};
use publish::proxy::{Fault, Planned, Proxy};
use publish::{client, create_bucket, hermetic_aws_env, s3s_fs};
use rtmp_recorder::manifest::ChunkManifest;
use rtmp_recorder::naming::ChunkName;
use rtmp_recorder::publish::{DEFAULT_TEMPLATE, KeyTemplate};
use rtmp_recorder::utc::Civil;

/// One frame at 30 fps, in ms.
const FRAME_MS: i64 = 34;

/// A published chunk: its manifest and MP4.
struct Chunk {
    manifest: ChunkManifest,
    mp4: PathBuf,
    start_ms: i64,
}

/// One packet as ffprobe reads it.
#[derive(Debug, Clone)]
struct Packet {
    video: bool,
    pts_ms: i64,
    dts_ms: i64,
    key: bool,
    hash: String,
}

fn packets(file: &Path) -> Vec<Packet> {
    let out = support::run_ok(
        Command::new("ffprobe")
            .args(["-v", "error", "-show_data_hash", "sha256", "-of", "json"])
            .args([
                "-show_entries",
                "packet=codec_type,pts_time,dts_time,flags,data_hash",
            ])
            .arg(file),
        "ffprobe packets",
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ms = |v: &serde_json::Value| {
        let secs: f64 = v
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{}: a packet without a time: {v}", file.display()));
        (secs * 1000.0).round() as i64
    };
    json["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Packet {
            video: p["codec_type"] == "video",
            pts_ms: ms(&p["pts_time"]),
            dts_ms: ms(&p["dts_time"]),
            key: p["flags"].as_str().unwrap().starts_with('K'),
            hash: p["data_hash"].as_str().unwrap().to_string(),
        })
        .collect()
}

/// Records 14 s of ffmpeg's publishing into `run` with 4 s chunks.
fn record(dir: &Path) -> Vec<Chunk> {
    let chunks = record_with(dir, "4s", |url| {
        let mut opts = PublishOpts::new(dir, "cam");
        opts.width = 640;
        opts.height = 360;
        ffmpeg_publish(url, 14, &opts).wait_ok(Duration::from_secs(60));
    });
    assert_eq!(chunks.len(), 4, "14 s at 4 s chunks");
    chunks
}

/// Starts `run` with `chunk_duration` chunks published to a `file://` destination, has
/// `publish` publish to its RTMP URL (returning when done), waits until every chunk is
/// published, stops `run` and returns the published chunks, oldest first.
fn record_with(dir: &Path, chunk_duration: &str, publish: impl FnOnce(&str)) -> Vec<Chunk> {
    let port = free_port();
    let log = dir.join("run.log");
    let published = dir.join("published");
    let mut run = ingest::start_run_to_files(
        &dir.join("state"),
        &published,
        port,
        &log,
        &[],
        &["--chunk-duration", chunk_duration],
    );
    publish(&format!("rtmp://127.0.0.1:{port}/live/cam1"));
    let state = dir.join("state");
    wait_until(Duration::from_secs(30), "every chunk published", || {
        let pending: usize = ["recording", "remux", "publish"]
            .iter()
            .map(|d| std::fs::read_dir(state.join(d)).map_or(0, |e| e.count()))
            .sum();
        pending == 0 && !files_with_ext(&state.join("archive"), "flv").is_empty()
    });
    ingest::signal(run.id(), libc::SIGTERM);
    ingest::wait_child(&mut run, Duration::from_secs(30), "run", &log);

    let mut chunks: Vec<Chunk> = support::files_under(&published)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|json| {
            let manifest: ChunkManifest =
                serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
            let start_ms = Civil::parse_rfc3339_millis(&manifest.utc_start).unwrap();
            Chunk {
                manifest,
                mp4: json.with_extension("mp4"),
                start_ms,
            }
        })
        .collect();
    chunks.sort_by_key(|c| c.manifest.sequence);
    chunks
}

/// Every packet of the chunks on the stream's timeline (each chunk's offset added).
fn stream_packets(chunks: &[Chunk]) -> Vec<Packet> {
    chunks
        .iter()
        .flat_map(|c| {
            let offset = c.manifest.stream_offset_ms as i64;
            packets(&c.mp4).into_iter().map(move |mut p| {
                p.pts_ms += offset;
                p.dts_ms += offset;
                p
            })
        })
        .collect()
}

/// The hashes of the source packets of one kind a clip of `f..t` (stream time) must carry:
/// video from the keyframe at or before `f` through the last frame presented before `t`,
/// audio from the frame playing at `f` through the last one starting before `t`.
fn span_hashes(source: &[Packet], video: bool, f: i64, t: i64) -> Vec<String> {
    let kind: Vec<&Packet> = source.iter().filter(|p| p.video == video).collect();
    let last = kind
        .iter()
        .rposition(|p| if video { p.pts_ms < t } else { p.dts_ms < t })
        .unwrap();
    let first = kind[..=last]
        .iter()
        .rposition(|p| p.dts_ms <= f && (p.key || !video))
        .unwrap();
    kind[first..=last].iter().map(|p| p.hash.clone()).collect()
}

/// The hashes of `file`'s packets of one kind, in order.
fn hashes(file: &Path, video: bool) -> Vec<String> {
    packets(file)
        .into_iter()
        .filter(|p| p.video == video)
        .map(|p| p.hash)
        .collect()
}

fn rfc3339(ms: i64) -> String {
    Civil::from_unix_millis(ms).rfc3339()
}

fn clip(dir: &Path, destination: &Path, from: i64, to: i64, out: &Path) -> Output {
    let mut cmd = Command::new(support::BIN);
    ingest::clean_env(&mut cmd);
    clip_args(&mut cmd, dir, from, to, out)
        .arg("--destination")
        .arg(format!("file://{}", destination.display()))
        .output()
        .expect("running rtmp-recorder clip")
}

fn clip_args<'a>(
    cmd: &'a mut Command,
    dir: &Path,
    from: i64,
    to: i64,
    out: &Path,
) -> &'a mut Command {
    cmd.arg("--state-dir")
        .arg(dir.join("no-state"))
        .args([
            "clip",
            "live/cam1",
            "--from",
            &rfc3339(from),
            "--to",
            &rfc3339(to),
        ])
        .arg("-o")
        .arg(out)
        .stdin(Stdio::null())
}

/// Bytes before the `mdat` of an MP4.
fn head_len(file: &Path) -> u64 {
    let data = std::fs::read(file).unwrap();
    let mut at = 0usize;
    while &data[at + 4..at + 8] != b"mdat" {
        at += u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    }
    at as u64
}

/// Every picture ffmpeg decodes from `file`: (pts in ms, MD5), in presentation order.
fn pictures(file: &Path) -> Vec<(i64, String)> {
    let out = support::run_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(file)
            .args(["-map", "0:v", "-f", "framemd5", "-"]),
        "ffmpeg framemd5",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let timebase: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("#tb 0: "))
        .and_then(|tb| tb.trim().split_once('/'))
        .map(|(n, d)| n.parse::<f64>().unwrap() / d.parse::<f64>().unwrap())
        .expect("framemd5 time base");
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let c: Vec<&str> = l.split(',').map(str::trim).collect();
            let pts: f64 = c[2].parse().unwrap();
            ((pts * timebase * 1000.0).round() as i64, c[5].to_string())
        })
        .collect()
}

#[test]
fn clips_of_recorded_chunks_are_exact_and_gaps_are_refused() {
    let dir = Turn::shared().scratch();
    let chunks = record(dir.path());
    let published = dir.path().join("published");
    // Source packets on the stream's timeline.
    let source = stream_packets(&chunks);

    let cases = [
        ("inside one chunk", 1, 500, 1, 3_000),
        ("across two chunks", 0, 2_500, 1, 2_000),
        ("across three chunks", 0, 1_500, 2, 1_000),
    ];
    for (name, first, from_in, last, to_in) in cases {
        let from = chunks[first].start_ms + from_in;
        let to = chunks[last].start_ms + to_in;
        let out = dir.path().join(format!("{}.mp4", name.replace(' ', "-")));
        let o = clip(dir.path(), &published, from, to, &out);
        let log = String::from_utf8_lossy(&o.stderr).into_owned();
        assert!(o.status.success(), "{name}: clip failed: {log}");
        assert_eq!(
            ingest::decode_errors(&out),
            "",
            "{name}: the clip does not decode cleanly"
        );

        // Exactly the source packets of the span, in order, per kind. Wall clock and media
        // time drift apart a little over a stream; the chunk holding --from ties them.
        let anchor = chunks[first].start_ms - chunks[first].manifest.stream_offset_ms as i64;
        let (f, t) = (from - anchor, to - anchor);
        for video in [true, false] {
            let kind = if video { "video" } else { "audio" };
            assert_eq!(
                hashes(&out, video),
                span_hashes(&source, video, f, t),
                "{name}: {kind} packets"
            );
        }

        // Its duration is the span; its first picture is the source's at --from.
        let duration = ingest::probe_duration(&out);
        let span = (to - from) as f64 / 1000.0;
        assert!(
            (duration - span).abs() * 1000.0 <= FRAME_MS as f64,
            "{name}: duration {duration} s, span {span} s"
        );
        // The picture shown at --from is the last one presented at or before it; the clip
        // opens with it within one frame. (Debian's ffmpeg 5.1 decoder lets through the
        // picture just before a B-frame clip's first, though the demuxer marks its packet
        // for discarding.)
        let source_chunk = &chunks[first];
        let at = f - source_chunk.manifest.stream_offset_ms as i64;
        let shown = pictures(&source_chunk.mp4);
        let k = shown.iter().rposition(|(pts, _)| *pts <= at).unwrap();
        let opening = &pictures(&out)[0].1;
        assert!(
            shown[k.saturating_sub(1)..(k + 2).min(shown.len())]
                .iter()
                .any(|(_, md5)| md5 == opening),
            "{name}: the clip opens with a picture the source does not show at {at} ms: clip {:?}, source {:?}",
            &pictures(&out)[..3],
            &shown[k.saturating_sub(3)..(k + 4).min(shown.len())]
        );

        // It read the heads and the samples it kept, little more.
        let heads: u64 = chunks[first..=last].iter().map(|c| head_len(&c.mp4)).sum();
        let written = std::fs::metadata(&out).unwrap().len();
        let read = summary(&o)["read"].as_u64().unwrap();
        assert!(
            read as f64 <= (written + heads) as f64 * 1.03,
            "{name}: read {read} bytes for a {written}-byte clip ({heads} in heads)"
        );
        eprintln!("{name}: {span} s, {written} bytes written, {read} read ({heads} heads)");
    }

    // Before the recording began: refused, saying so.
    let o = clip(
        dir.path(),
        &published,
        chunks[0].start_ms - 5_000,
        chunks[0].start_ms + 1_000,
        &dir.path().join("early.mp4"),
    );
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{log}");
    assert!(log.contains("the recording begins at"), "{log}");

    // A missing chunk: the span across it is refused, naming the two chunks around the gap.
    let broken = dir.path().join("broken");
    for c in [&chunks[0], &chunks[2]] {
        std::fs::create_dir_all(&broken).unwrap();
        for ext in ["mp4", "json"] {
            let src = c.mp4.with_extension(ext);
            std::fs::copy(&src, broken.join(src.file_name().unwrap())).unwrap();
        }
    }
    let o = clip(
        dir.path(),
        &broken,
        chunks[0].start_ms + 1_000,
        chunks[2].start_ms + 1_000,
        &dir.path().join("gap.mp4"),
    );
    let log = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{log}");
    assert!(
        log.contains("gap between") && log.contains(&chunks[0].manifest.name),
        "{log}"
    );
    assert!(log.contains("--bridge-gaps"), "{log}");
    assert!(!dir.path().join("gap.mp4").exists());
    let line = summary(&o);
    assert_eq!(line["refused"], "gaps", "{line}");
    assert_eq!(line["gaps"].as_array().unwrap().len(), 1, "{line}");

    bridged_gap(dir.path(), &broken, &chunks);
    clips_over_http(dir.path(), &broken, &chunks);
    clips_from_s3(dir.path(), &chunks);
}

/// `GET /clip` on ingest's HTTP server, whose default destination (its state directory's
/// `published/`) holds the chunks with the second one missing: across the gap it answers 409
/// naming it; with `bridge_gaps=1` it sends exactly the bytes `clip --bridge-gaps` wrote for the
/// same span, whole and in ranges (what a seeking browser asks); a span before the recording is
/// 404, a range past the end 416, a request without a span 400.
fn clips_over_http(dir: &Path, broken: &Path, chunks: &[Chunk]) {
    let http_dir = dir.join("http");
    std::fs::create_dir_all(&http_dir).unwrap();
    let (rec, port) = http::start_with_http(&http_dir, &[]);
    let published = rec.state.join("published/live/cam1");
    std::fs::create_dir_all(&published).unwrap();
    for file in std::fs::read_dir(broken).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, published.join(file.file_name().unwrap())).unwrap();
    }
    let (a, c) = (&chunks[0], &chunks[2]);
    let span = |from: i64, to: i64| {
        format!(
            "/clip?stream=live%2Fcam1&from={}&to={}",
            rfc3339(from).replace(':', "%3A"),
            rfc3339(to)
        )
    };
    let across = span(a.start_ms + 1_000, c.start_ms + 1_000);

    let refused = http::get(port, &across, &[]);
    assert_eq!(refused.status, 409, "{}", refused.text());
    let json = refused.json();
    assert_eq!(json["refused"], "gaps", "{json}");
    assert_eq!(json["gaps"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["gaps"][0]["after"], a.manifest.name.as_str(), "{json}");

    // The same span `bridged_gap` cut with the command: the same bytes.
    let expected = std::fs::read(dir.join("bridged.mp4")).unwrap();
    let whole = http::get(port, &format!("{across}&bridge_gaps=1"), &[]);
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert_eq!(whole.header("content-type"), "video/mp4");
    assert_eq!(whole.header("accept-ranges"), "bytes");
    assert_eq!(whole.header("x-clip-gaps"), "1");
    assert_eq!(
        whole.header("x-clip-chunks"),
        format!("{},{}", a.manifest.name, c.manifest.name)
    );
    assert_eq!(
        whole.header("content-length"),
        expected.len().to_string().as_str()
    );
    assert!(
        whole.body == expected,
        "the served clip differs from the command's"
    );

    let n = expected.len();
    // From inside the head into the samples, a suffix, an open end.
    for (range, start, end) in [
        ("bytes=100-2000099".to_string(), 100, 2_000_100.min(n)),
        ("bytes=-70000".to_string(), n - 70_000, n),
        (format!("bytes={}-", n / 2), n / 2, n),
    ] {
        let part = http::get(
            port,
            &format!("{across}&bridge_gaps=1"),
            &[("Range", &range)],
        );
        assert_eq!(part.status, 206, "{range}: {}", part.text());
        assert_eq!(
            part.header("content-range"),
            format!("bytes {start}-{}/{n}", end - 1),
            "{range}"
        );
        assert!(part.body == expected[start..end], "{range}: wrong bytes");
    }
    let past = http::get(
        port,
        &format!("{across}&bridge_gaps=1"),
        &[("Range", &format!("bytes={n}-"))],
    );
    assert_eq!(past.status, 416, "{}", past.text());
    assert_eq!(past.header("content-range"), format!("bytes */{n}"));

    let early = http::get(port, &span(a.start_ms - 5_000, a.start_ms + 1_000), &[]);
    assert_eq!(early.status, 404, "{}", early.text());
    assert!(
        early.text().contains("the recording begins at"),
        "{}",
        early.text()
    );
    let bare = http::get(port, "/clip?stream=live/cam1", &[]);
    assert_eq!(bare.status, 400, "{}", bare.text());
    assert!(bare.text().contains("from="), "{}", bare.text());
    drop(rec);
}

/// The JSON line `clip` prints on stdout.
fn summary(o: &Output) -> serde_json::Value {
    let out = String::from_utf8_lossy(&o.stdout);
    let line = out.lines().last().unwrap_or_else(|| {
        panic!(
            "clip printed no summary line; stderr: {}",
            String::from_utf8_lossy(&o.stderr)
        )
    });
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?} is not JSON: {e}"))
}

/// Across the missing second chunk with `--bridge-gaps`: the clip holds exactly the source
/// packets of the first and third chunks in the span, every packet of the third at its
/// wall-clock offset from `--from` (ffprobe, 1 ms), decodes without a message, lasts the span,
/// and the gap is said on stderr and in the stdout line.
fn bridged_gap(dir: &Path, broken: &Path, chunks: &[Chunk]) {
    let (a, c) = (&chunks[0], &chunks[2]);
    let (from, to) = (a.start_ms + 1_000, c.start_ms + 1_000);
    let out = dir.join("bridged.mp4");
    let mut cmd = Command::new(support::BIN);
    ingest::clean_env(&mut cmd);
    let o = clip_args(&mut cmd, dir, from, to, &out)
        .arg("--bridge-gaps")
        .arg("--destination")
        .arg(format!("file://{}", broken.display()))
        .output()
        .expect("running rtmp-recorder clip");
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "bridging failed: {log}");
    assert!(
        log.contains("bridging the gap between") && log.contains("1 chunk(s) missing"),
        "{log}"
    );
    let line = summary(&o);
    let gaps = line["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{line}");
    let hole = c.start_ms - (a.start_ms + a.manifest.duration_ms as i64);
    assert_eq!(gaps[0]["after"], a.manifest.name.as_str(), "{line}");
    assert_eq!(gaps[0]["before"], c.manifest.name.as_str(), "{line}");
    assert_eq!(gaps[0]["ms"], hole, "{line}");
    assert_eq!(
        gaps[0]["clip_at_ms"],
        a.start_ms + a.manifest.duration_ms as i64 - from,
        "{line}"
    );
    assert_eq!(ingest::decode_errors(&out), "", "the bridged clip");
    let duration = ingest::probe_duration(&out);
    let span = (to - from) as f64 / 1000.0;
    assert!(
        (duration - span).abs() * 1000.0 <= FRAME_MS as f64,
        "bridged: duration {duration} s, span {span} s"
    );

    let got = packets(&out);
    for video in [true, false] {
        // From the first chunk: from the keyframe (video) or frame (audio) at or before
        // --from to its end; from the third: through the last frame presented before --to.
        let f = from - a.start_ms;
        let before: Vec<Packet> = packets(&a.mp4)
            .into_iter()
            .filter(|p| p.video == video)
            .collect();
        let first = before
            .iter()
            .rposition(|p| p.dts_ms <= f && (p.key || !video))
            .unwrap();
        let t = to - c.start_ms;
        let mut after: Vec<Packet> = packets(&c.mp4)
            .into_iter()
            .filter(|p| p.video == video)
            .collect();
        let last = after
            .iter()
            .rposition(|p| if video { p.pts_ms < t } else { p.dts_ms < t })
            .unwrap();
        after.truncate(last + 1);
        let mine: Vec<&Packet> = got.iter().filter(|p| p.video == video).collect();
        let want: Vec<&str> = before[first..]
            .iter()
            .chain(&after)
            .map(|p| p.hash.as_str())
            .collect();
        let have: Vec<&str> = mine.iter().map(|p| p.hash.as_str()).collect();
        let kind = if video { "video" } else { "audio" };
        let differ = have.iter().zip(&want).position(|(h, w)| h != w);
        assert!(
            have == want,
            "bridged: {} {kind} packets, {} wanted ({} from the chunk before the gap); the first to differ: {differ:?}; times there: {:?}",
            have.len(),
            want.len(),
            before.len() - first,
            differ.map(|i| &mine[i.saturating_sub(2)..(i + 3).min(mine.len())])
        );
        // After the gap, each packet sits at its wall-clock offset from --from.
        let tail = &mine[mine.len() - after.len()..];
        for (p, s) in tail.iter().zip(&after) {
            let at = c.start_ms - from;
            assert!(
                (p.pts_ms - (at + s.pts_ms)).abs() <= 1 && (p.dts_ms - (at + s.dts_ms)).abs() <= 1,
                "bridged: {kind} packet at pts {} / dts {} ms in the clip, {} / {} ms after the gap's end (at {at} ms)",
                p.pts_ms,
                p.dts_ms,
                s.pts_ms,
                s.dts_ms
            );
        }
        eprintln!(
            "bridged: {} {kind} packets, {} after a {hole} ms gap, the first of them at {} ms",
            mine.len(),
            after.len(),
            tail[0].pts_ms
        );
    }
}

/// The chunks uploaded under the default key template into s3s-fs; a clip across three read
/// through a counting proxy that injects a SlowDown and a 500.
fn clips_from_s3(dir: &Path, chunks: &[Chunk]) {
    const BUCKET: &str = "recordings";
    let store = s3s_fs(&dir.join("s3"), 0);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = client(&store.endpoint());
    rt.block_on(create_bucket(&s3, BUCKET));
    let template = KeyTemplate::parse(DEFAULT_TEMPLATE).unwrap();
    for c in chunks {
        let name = ChunkName::parse(&c.manifest.name).unwrap();
        for ext in ["mp4", "json"] {
            let key = template.render("rec", &name, &format!("{}.{ext}", c.manifest.name));
            let body = std::fs::read(c.mp4.with_extension(ext)).unwrap();
            rt.block_on(
                s3.put_object()
                    .bucket(BUCKET)
                    .key(&key)
                    .body(body.into())
                    .send(),
            )
            .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
        }
    }
    let proxy = Proxy::start(
        store.addr(),
        vec![
            Planned {
                fault: Fault::SlowDown,
                min_body: 0,
            },
            Planned {
                fault: Fault::Status500,
                min_body: 0,
            },
        ],
    );
    let (from, to) = (chunks[0].start_ms + 1_500, chunks[2].start_ms + 1_000);
    let out = dir.join("from-s3.mp4");
    let mut cmd = Command::new(support::BIN);
    hermetic_aws_env(&mut cmd);
    let o = clip_args(&mut cmd, dir, from, to, &out)
        .args(["--destination", &format!("s3://{BUCKET}/rec")])
        .args(["--endpoint-url", &proxy.endpoint()])
        .output()
        .expect("running rtmp-recorder clip");
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "clip from S3 failed: {log}");
    assert_eq!(proxy.pending(), 0, "the injected faults were not all met");
    assert!(log.contains("SlowDown") && log.contains("retry"), "{log}");

    let local = dir.join("across-three-chunks.mp4");
    assert!(
        std::fs::read(&out).unwrap() == std::fs::read(&local).unwrap(),
        "the clip from S3 differs from the one cut from disk"
    );
    let seen = proxy.seen();
    let fetched: u64 = seen.iter().map(|r| r.answer_body).sum();
    let heads: u64 = chunks[..3].iter().map(|c| head_len(&c.mp4)).sum();
    let manifests: u64 = chunks
        .iter()
        .map(|c| {
            std::fs::metadata(c.mp4.with_extension("json"))
                .unwrap()
                .len()
        })
        .sum();
    let listing: u64 = seen
        .iter()
        .filter(|r| r.target.contains("list-type=2"))
        .map(|r| r.answer_body)
        .sum();
    let written = std::fs::metadata(&out).unwrap().len();
    let wanted = written + heads + manifests + listing;
    eprintln!(
        "from S3: {written}-byte clip, {fetched} bytes fetched in {} requests ({heads} in heads, {manifests} manifests, {listing} listing)",
        seen.len()
    );
    assert!(
        fetched as f64 <= wanted as f64 * 1.03,
        "fetched {fetched} bytes for a {written}-byte clip"
    );
    assert!(summary(&o)["read"].as_u64().unwrap() <= fetched);
}

/// A real publisher whose picture size changes mid-stream: two ffmpeg encodes (640x360, then
/// 320x240, 3 s each, B-frames, AAC) spliced into one FLV (the second's AVC sequence header
/// before its first keyframe), published by ffmpeg `-re -c copy`. Ingest cuts a chunk at the
/// change; a clip across it carries exactly the chunks' packets and decodes without a message,
/// in both sizes. (Headless Chromium 156 stops such a clip with MEDIA_ERR_DECODE at the change:
/// see the README's Clips.)
#[test]
fn a_clip_across_a_resolution_change_is_exact_and_decodes() {
    let dir = Turn::shared().scratch();
    let mut spliced: Option<(Vec<u8>, Vec<flv::Tag>)> = None;
    for size in ["640x360", "320x240"] {
        let flv = dir.path().join(format!("{size}.flv"));
        remux::encode(
            &flv,
            &remux::testsrc_av(size),
            &[
                "-t", "3", "-c:v", "libx264", "-preset", "veryfast", "-bf", "2", "-g", "30",
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-ar", "48000", "-ac", "2",
            ],
        );
        let (header, tags) = flv::split(&flv);
        spliced = Some(match spliced {
            None => (header, tags),
            Some((header, mut all)) => {
                // The second part follows the first a frame after its last tag; its
                // onMetaData is dropped, its sequence headers kept.
                let end = all.iter().map(|t| t.ts).max().unwrap() + 34;
                all.extend(tags.into_iter().filter(|t| t.kind != 18).map(|mut t| {
                    t.ts += end;
                    t
                }));
                (header, all)
            }
        });
    }
    let (header, tags) = spliced.unwrap();
    let source = dir.path().join("spliced.flv");
    std::fs::write(&source, flv::join(&header, &tags)).unwrap();

    let chunks = record_with(dir.path(), "60s", |url| {
        support::run_ok(
            Command::new("ffmpeg")
                .args(["-v", "error", "-re", "-i"])
                .arg(&source)
                .args(["-c", "copy", "-f", "flv", url]),
            "ffmpeg publishing the spliced FLV",
        );
    });
    let sizes: Vec<(Option<u32>, Option<u32>)> = chunks
        .iter()
        .map(|c| {
            let v = c.manifest.video.as_ref().unwrap();
            (v.width, v.height)
        })
        .collect();
    assert_eq!(
        sizes,
        vec![(Some(640), Some(360)), (Some(320), Some(240))],
        "ingest cuts one chunk per picture size"
    );

    let (from, to) = (chunks[0].start_ms + 1_500, chunks[1].start_ms + 1_500);
    let out = dir.path().join("resized.mp4");
    let o = clip(dir.path(), &dir.path().join("published"), from, to, &out);
    assert!(
        o.status.success(),
        "clip failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        ingest::decode_errors(&out),
        "",
        "the clip across the change"
    );
    let stream = stream_packets(&chunks);
    let anchor = chunks[0].start_ms - chunks[0].manifest.stream_offset_ms as i64;
    for video in [true, false] {
        assert_eq!(
            hashes(&out, video),
            span_hashes(&stream, video, from - anchor, to - anchor),
            "{} packets",
            if video { "video" } else { "audio" }
        );
    }
    // ffmpeg decodes both sizes, the first then the second.
    let text = remux::probe(&out, "v", "frame=width,height");
    let mut decoded: Vec<&str> = text
        .lines()
        .map(|l| l.trim_end_matches(','))
        .filter(|l| !l.is_empty())
        .collect();
    decoded.dedup();
    assert_eq!(decoded, vec!["640,360", "320,240"], "decoded picture sizes");
}
