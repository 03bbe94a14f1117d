//! End to end through `rtmp-recorder run`: ffmpeg publishes 30 s with 10 s chunks, and every
//! chunk arrives in a real S3 server (s3s-fs, which checks SigV4 and checksums) as an MP4 carrying
//! exactly the published packets, with a manifest chain a consumer can check for gaps. The test
//! measures, per chunk, the time from the chunk's close (the last write of its FLV) to its object
//! being listed in the bucket, and holds every chunk to [`CLOSE_TO_VISIBLE`].

use crate::support::{
    self, Turn, free_port, ingest, packets, port_open, publish, sha256_hex, wait_until,
};

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use ingest::{PublishOpts, ffmpeg_publish};
use publish::{client, create_bucket, get, hermetic_aws_env, list_keys, s3s_fs};
use rtmp_recorder::manifest::ChunkManifest;

const BUCKET: &str = "recordings";
/// The bound the README quotes for chunk close to object visible. Typical runs take well under
/// half a second (two 200 ms inbox polls, the remux, the upload, our 20 ms listing loop); the
/// margin is for a loaded 2-core CI machine that also encodes the stream.
const CLOSE_TO_VISIBLE: Duration = Duration::from_secs(3);

#[test]
fn ffmpeg_to_s3_through_run() {
    let dir = Turn::alone().scratch();
    let state = dir.path().join("state");
    let store = s3s_fs(&dir.path().join("s3"), 0);
    let endpoint = store.endpoint();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = client(&endpoint);
    rt.block_on(create_bucket(&s3, BUCKET));

    let port = free_port();
    let log = dir.path().join("run.log");
    let mut recorder = hermetic_aws_env(
        Command::new(support::BIN)
            .arg("--state-dir")
            .arg(&state)
            .args(["run", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--chunk-duration", "10s"])
            .args(["--destination", &format!("s3://{BUCKET}/e2e")])
            .args(["--endpoint-url", &endpoint]),
    )
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(&log).unwrap())
    .stderr(std::fs::File::create(&log).unwrap())
    .spawn()
    .expect("starting rtmp-recorder run");
    let show = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until(Duration::from_secs(15), "run listening", || port_open(port));

    let mut opts = PublishOpts::new(dir.path(), "cam");
    opts.width = 640;
    opts.height = 360;
    let url = format!("rtmp://127.0.0.1:{port}/live/cam");
    let mut publisher = ffmpeg_publish(&url, 30, &opts);

    // Note when each MP4 becomes listed. A chunk's close is its FLV's last write before the
    // rename into remux/: the mtime of the FLV that remux later archives.
    let mut visible: BTreeMap<String, SystemTime> = BTreeMap::new();
    let mut publisher_done = false;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let keys = rt.block_on(list_keys(&s3, BUCKET));
        for key in &keys {
            if let Some(stem) = key.rsplit('/').next().and_then(|f| f.strip_suffix(".mp4")) {
                visible
                    .entry(stem.to_string())
                    .or_insert_with(SystemTime::now);
            }
        }
        // Each manifest is uploaded right after its MP4.
        let manifests = keys.iter().filter(|k| k.ends_with(".json")).count();
        if !publisher_done && !publisher.running() {
            publisher.wait_ok(Duration::from_secs(5));
            publisher_done = true;
        }
        // Stages are read in the order files move through them, so a chunk moving on between
        // two reads is counted twice (no break yet), never missed (a break one chunk early).
        let pending = ["recording", "remux"]
            .iter()
            .map(|d| ingest::files_with_ext(&state.join(d), "flv").len())
            .sum::<usize>();
        let archived = ingest::files_with_ext(&state.join("archive"), "flv").len();
        if publisher_done
            && pending == 0
            && archived > 0
            && visible.len() == archived
            && manifests == archived
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "objects did not all appear\n{}",
            show()
        );
        assert!(
            recorder.try_wait().unwrap().is_none(),
            "run exited\n{}",
            show()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        visible.len(),
        3,
        "30 s at 10 s chunks: 3 chunks\n{}",
        show()
    );

    let mut worst = Duration::ZERO;
    let mut best = Duration::MAX;
    for (stem, seen) in &visible {
        let flv = state.join("archive").join(format!("{stem}.flv"));
        let closed = std::fs::metadata(&flv)
            .and_then(|m| m.modified())
            .unwrap_or_else(|e| panic!("{}: {e}", flv.display()));
        let latency = seen.duration_since(closed).unwrap_or(Duration::ZERO);
        eprintln!("chunk {stem}: closed -> object visible in {latency:?}");
        worst = worst.max(latency);
        best = best.min(latency);
    }
    eprintln!(
        "chunk close -> object visible: {best:?} to {worst:?} (the replaced stack needs ~75 s)"
    );
    assert!(
        worst < CLOSE_TO_VISIBLE,
        "a chunk took {worst:?} to reach the bucket (bound {CLOSE_TO_VISIBLE:?})\n{}",
        show()
    );

    // Every object is the MP4 its manifest describes, and the manifests chain without a gap.
    let keys = rt.block_on(list_keys(&s3, BUCKET));
    let mut previous: Option<String> = None;
    let mut ours = Vec::new();
    for (i, stem) in visible.keys().enumerate() {
        let mp4_key = keys
            .iter()
            .find(|k| k.ends_with(&format!("/{stem}.mp4")))
            .unwrap();
        let json_key = keys.iter().find(|k| k.ends_with(&format!("/{stem}.json")));
        let json_key = json_key.unwrap_or_else(|| panic!("no manifest for {stem} in {keys:?}"));
        assert!(mp4_key.starts_with("e2e/live/cam/"), "{mp4_key}");
        let mp4 = rt.block_on(get(&s3, BUCKET, mp4_key));
        assert_eq!(mp4.content_type.as_deref(), Some("video/mp4"));
        let manifest: ChunkManifest =
            serde_json::from_slice(&rt.block_on(get(&s3, BUCKET, json_key)).bytes).unwrap();
        assert_eq!(
            manifest.sha256.as_deref(),
            Some(sha256_hex(&mp4.bytes).as_str())
        );
        assert_eq!(manifest.mp4_bytes, Some(mp4.bytes.len() as u64));
        assert_eq!(manifest.sequence, i as u32 + 1);
        assert_eq!(
            manifest.previous.as_deref().filter(|p| !p.is_empty()),
            previous.as_deref()
        );
        previous = Some(stem.clone());
        let path = dir.path().join(format!("{stem}.mp4"));
        std::fs::write(&path, &mp4.bytes).unwrap();
        ours.push(path);
    }

    // The uploaded MP4s, in order, carry exactly the packets ffmpeg published, per stream (an
    // MP4 interleaves audio and video differently from the FLV it came from).
    let got: Vec<_> = ours.iter().flat_map(|p| packets::read(p)).collect();
    let want = packets::read(&opts.reference);
    assert_eq!(
        got.len(),
        want.len(),
        "packet count differs from the published stream"
    );
    assert!(
        packets::by_stream(&got) == packets::by_stream(&want),
        "uploaded packets differ from the published ones"
    );

    ingest::signal(recorder.id(), libc::SIGTERM);
    let status = ingest::wait_child(&mut recorder, Duration::from_secs(30), "run", &log);
    assert!(
        status.success(),
        "run did not exit cleanly on SIGTERM\n{}",
        show()
    );
    assert!(ingest::files_with_ext(&state.join("publish"), "mp4").is_empty());
}
