//! Publish against a real s3s-fs server (SigV4 and checksums checked), directly and through a
//! fault-injecting proxy. Fixtures: a real ffmpeg-made MP4 where content matters (the small
//! upload with its manifest); random bytes named like chunks for pure-transfer tests.

use crate::support::{Turn, free_port, publish, sha256_hex, words};

use std::time::{Duration, Instant};

use publish::proxy::{Fault, Planned, Proxy};
use publish::*;
use rtmp_recorder::manifest::ChunkManifest;
use rtmp_recorder::spool::StateDir;

const BUCKET: &str = "recordings";

fn key_for(name: &rtmp_recorder::spool::ChunkName, ext: &str) -> String {
    format!("rec/live/{}/2026/11/26/{}.{ext}", name.stream, name.stem())
}

/// Checks that every file arrived once, byte for byte, with its manifest, and left the inbox.
async fn assert_published(
    c: &aws_sdk_s3::Client,
    state: &StateDir,
    files: &[(rtmp_recorder::spool::ChunkName, Vec<u8>)],
) {
    let mut expected: Vec<String> = files
        .iter()
        .flat_map(|(n, _)| [key_for(n, "mp4"), key_for(n, "json")])
        .collect();
    expected.sort();
    assert_eq!(
        list_keys(c, BUCKET).await,
        expected,
        "exactly the expected objects"
    );
    for (name, bytes) in files {
        let got = get(c, BUCKET, &key_for(name, "mp4")).await;
        assert_eq!(got.bytes.len(), bytes.len());
        assert_eq!(sha256_hex(&got.bytes), sha256_hex(bytes), "{}", name.stem());
        assert_eq!(got.content_type.as_deref(), Some("video/mp4"));
        assert_eq!(got.metadata.get("sha256"), Some(&sha256_hex(bytes)));
        assert_eq!(got.metadata.get("stream"), Some(&name.stream));
        assert_eq!(got.metadata.get("utc-start"), Some(&name.start.rfc3339()));
        let m = get(c, BUCKET, &key_for(name, "json")).await;
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        let manifest: ChunkManifest = serde_json::from_slice(&m.bytes).unwrap();
        assert_eq!(manifest.sha256.as_deref(), Some(sha256_hex(bytes).as_str()));
        assert_eq!(manifest.mp4_bytes, Some(bytes.len() as u64));
    }
    assert_archived(state, files.iter().map(|(n, _)| n), &["mp4", "json"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn small_and_multipart_arrive_intact() {
    let tmp = Turn::shared().scratch();
    let (server, c) = s3s_with_bucket(tmp.path(), BUCKET).await;
    let state = StateDir::open(tmp.path().join("state")).unwrap();

    // A real MP4 with the manifest remux would have written.
    let mp4 = real_mp4(tmp.path());
    let small = chunk_name("cam1", 1);
    queue_manifest(&state, &manifest_for(&small, 2000));
    queue_mp4(&state, &small, &mp4);
    // A multipart-sized one without a manifest (as if copied in by hand).
    let big = chunk_name("cam2", 2);
    let big_bytes = random_bytes(21 << 20, 7);
    queue_mp4(&state, &big, &big_bytes);

    // More parts than upload slots, so parts finish while others are still being scheduled.
    let mut cmd = publish_cmd(state.root(), &server.endpoint(), BUCKET);
    cmd.args(["--part-size", "5M", "--part-concurrency", "2"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0));
    let files = vec![(small.clone(), mp4), (big, big_bytes)];
    assert_published(&c, &state, &files).await;
    let got = get(&c, BUCKET, &key_for(&small, "mp4")).await;
    assert_eq!(
        got.metadata.get("duration").map(String::as_str),
        Some("2.000")
    );

    // A second run finds nothing to do and changes nothing.
    let out = run(publish_cmd(state.root(), &server.endpoint(), BUCKET));
    assert_eq!(out.status.code(), Some(0));
    assert_published(&c, &state, &files).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn injected_faults_are_retried_and_every_file_lands_once() {
    let tmp = Turn::shared().scratch();
    let (server, c) = s3s_with_bucket(tmp.path(), BUCKET).await;
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let mut files = Vec::new();
    for seq in 1..=3u32 {
        let name = chunk_name("cam1", seq);
        let bytes = random_bytes(if seq == 2 { 20 << 20 } else { 300_000 }, u64::from(seq));
        queue_mp4(&state, &name, &bytes);
        files.push((name, bytes));
    }
    let any = |fault| Planned { fault, min_body: 0 };
    let part = |fault| Planned {
        fault,
        min_body: 4 << 20,
    };
    let body = |fault| Planned {
        fault,
        min_body: 200_000,
    };
    let plan = vec![
        any(Fault::Status500),
        any(Fault::SlowDown),
        body(Fault::Status500),
        body(Fault::CutMidBody),
        part(Fault::CutMidBody),
        any(Fault::Status500),
        part(Fault::SlowDown),
        part(Fault::CutMidBody),
        any(Fault::Blackhole),
        part(Fault::Blackhole),
        part(Fault::Status500),
        any(Fault::SlowDown),
    ];
    let proxy = Proxy::start(server.addr(), plan);
    let mut cmd = publish_cmd(state.root(), &proxy.endpoint(), BUCKET);
    cmd.args(words("--upload-timeout 2s --backoff-cap 1s --retry-for 2m"));
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(proxy.pending(), 0, "every planned fault was injected");
    assert_published(&c, &state, &files).await;
    // Exactly one successful object-creating request per object: nothing was written twice.
    let seen = proxy.seen();
    for (name, _) in &files {
        for ext in ["mp4", "json"] {
            let path = format!("/{BUCKET}/{}", key_for(name, ext));
            let creates = seen
                .iter()
                .filter(|s| s.status == 200 && s.fault.is_none())
                .filter(|s| {
                    let (p, q) = s.target.split_once('?').unwrap_or((&s.target, ""));
                    p == path
                        && ((s.method == "PUT" && !q.contains("partNumber"))
                            || (s.method == "POST" && q.contains("uploadId")))
                })
                .count();
            assert_eq!(creates, 1, "{path} created {creates} times");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn store_down_then_back_within_the_retry_window() {
    let tmp = Turn::shared().scratch();
    let root = tmp.path().join("s3");
    let mut server = s3s_fs(&root, 0);
    let port = server.port;
    let endpoint = server.endpoint();
    create_bucket(&client(&endpoint), BUCKET).await;
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let mut files = Vec::new();
    for seq in 1..=2u32 {
        let name = chunk_name("cam1", seq);
        let bytes = random_bytes(
            if seq == 1 { 17 << 20 } else { 100_000 },
            u64::from(seq) + 10,
        );
        queue_mp4(&state, &name, &bytes);
        files.push((name, bytes));
    }
    server.stop();
    let mut cmd = publish_cmd(state.root(), &endpoint, BUCKET);
    cmd.args(words("--upload-timeout 2s --backoff-cap 5s --retry-for 3m"));
    let started = Instant::now();
    let child = std::thread::spawn(move || run(cmd));
    // The store is down for a minute, as in the outage, then comes back on its port.
    const OUTAGE: Duration = Duration::from_secs(60);
    std::thread::sleep(OUTAGE);
    let server = s3s_fs(&root, port);
    let out = child.join().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(started.elapsed() >= OUTAGE);
    assert_published(&client(&server.endpoint()), &state, &files).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn store_down_past_the_retry_window_exits_75_and_keeps_files() {
    let tmp = Turn::shared().scratch();
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let name = chunk_name("cam1", 1);
    let file = queue_mp4(&state, &name, &random_bytes(1000, 1));
    // Nothing listens on this port.
    let endpoint = format!("http://127.0.0.1:{}", free_port());
    let mut cmd = publish_cmd(state.root(), &endpoint, BUCKET);
    cmd.args(["--retry-for", "3s", "--backoff-cap", "1s"]);
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(75));
    assert_eq!(files_in(&state.publish_inbox()), vec![file]);
    assert_eq!(files_in(&state.archive()), Vec::<String>::new());
}

async fn assert_permanent(endpoint_bucket: &str, secret: &str, expect_in_log: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let server = s3s_fs(&tmp.path().join("s3"), 0);
    create_bucket(&client(&server.endpoint()), BUCKET).await;
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let name = chunk_name("cam1", 1);
    let file = queue_mp4(&state, &name, &random_bytes(1000, 1));
    let mut cmd = publish_cmd(state.root(), &server.endpoint(), endpoint_bucket);
    cmd.env("AWS_SECRET_ACCESS_KEY", secret);
    let started = Instant::now();
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(77));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "no long retries"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains(expect_in_log))
        .unwrap_or_else(|| panic!("no log line with {expect_in_log:?}"));
    assert!(
        line.contains(&format!("s3://{endpoint_bucket}/rec/live/cam1/")),
        "{line}"
    );
    assert_eq!(files_in(&state.publish_inbox()), vec![file]);
    assert_eq!(files_in(&state.failed()), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_credentials_exit_77_and_keep_files() {
    let _turn = Turn::shared();
    assert_permanent(BUCKET, "not-the-secret", "SignatureDoesNotMatch").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_bucket_exits_77_and_keeps_files() {
    let _turn = Turn::shared();
    assert_permanent("no-such-bucket", SK, "NoSuchBucket").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_different_object_at_the_key_is_never_overwritten() {
    let tmp = Turn::shared().scratch();
    let (server, c) = s3s_with_bucket(tmp.path(), BUCKET).await;
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let name = chunk_name("cam1", 1);
    let file = queue_mp4(&state, &name, &random_bytes(5000, 1));
    let squatter = b"someone else's object".to_vec();
    c.put_object()
        .bucket(BUCKET)
        .key(key_for(&name, "mp4"))
        .body(squatter.clone().into())
        .send()
        .await
        .unwrap();
    let out = run(publish_cmd(state.root(), &server.endpoint(), BUCKET));
    // 65: a file was set aside (the rest, here nothing, is done).
    assert_eq!(out.status.code(), Some(65));
    assert_eq!(
        get(&c, BUCKET, &key_for(&name, "mp4")).await.bytes,
        squatter
    );
    assert_eq!(
        files_in(&state.failed()),
        vec![file.clone(), format!("{file}.reason")]
    );
    let reason = std::fs::read_to_string(state.failed().join(format!("{file}.reason"))).unwrap();
    assert!(reason.contains("different content"), "{reason}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_sha256_is_checked_against_the_bytes_sent() {
    let tmp = Turn::shared().scratch();
    let (server, c) = s3s_with_bucket(tmp.path(), BUCKET).await;
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let manifest_for = |name: &rtmp_recorder::spool::ChunkName, bytes: &[u8], sha: String| {
        let m = ChunkManifest {
            mp4_bytes: Some(bytes.len() as u64),
            sha256: Some(sha),
            ..publish::manifest_for(name, 1000)
        };
        queue_manifest(&state, &m);
    };
    // Right hash, multipart: uploaded in one read of the file.
    let good = chunk_name("cam1", 1);
    let good_bytes = random_bytes(18 << 20, 1);
    manifest_for(&good, &good_bytes, sha256_hex(&good_bytes));
    queue_mp4(&state, &good, &good_bytes);
    // Wrong hash (the file is not what remux wrote), multipart and small.
    let mut bad = Vec::new();
    for (seq, len) in [(2u32, 18usize << 20), (3, 4000)] {
        let name = chunk_name("cam1", seq);
        let bytes = random_bytes(len, u64::from(seq));
        manifest_for(&name, &bytes, sha256_hex(b"something else"));
        bad.push(queue_mp4(&state, &name, &bytes));
    }
    let out = run(publish_cmd(state.root(), &server.endpoint(), BUCKET));
    // 65: the mismatched files were set aside, the good one published.
    assert_eq!(out.status.code(), Some(65));
    let got = get(&c, BUCKET, &key_for(&good, "mp4")).await;
    assert_eq!(sha256_hex(&got.bytes), sha256_hex(&good_bytes));
    assert_eq!(
        list_keys(&c, BUCKET).await,
        vec![key_for(&good, "json"), key_for(&good, "mp4")],
        "nothing of the mismatched files was stored"
    );
    for file in &bad {
        let reason = std::fs::read_to_string(state.failed().join(format!("{file}.reason")))
            .unwrap_or_else(|_| panic!("{file} not in failed/"));
        assert!(reason.contains("manifest"), "{reason}");
    }
    assert_eq!(files_in(&state.publish_inbox()), Vec::<String>::new());
}

#[test]
fn no_credentials_at_all_exit_77_and_keep_files() {
    let tmp = Turn::shared().scratch();
    let state = StateDir::open(tmp.path().join("state")).unwrap();
    let file = queue_mp4(&state, &chunk_name("cam1", 1), &random_bytes(1000, 1));
    let server = s3s_fs(&tmp.path().join("s3"), 0);
    let mut cmd = publish_cmd(state.root(), &server.endpoint(), BUCKET);
    cmd.env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY");
    let out = run(cmd);
    assert_eq!(out.status.code(), Some(77));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no AWS credentials"));
    assert_eq!(files_in(&state.publish_inbox()), vec![file]);
}
