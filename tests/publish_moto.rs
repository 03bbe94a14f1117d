//! Publish against moto's S3 server: canned ACLs, and crash safety under kill -9 (moto lists
//! multipart uploads, so leftovers are visible; a recording proxy in front of it counts the
//! writes it accepted, so a duplicate upload is visible too). Fixtures are random bytes named like chunks
//! (pure transfer; content does not matter here).

use crate::support::{Turn, publish, sha256_hex};

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{Grant, MultipartUpload};
use publish::proxy::{Proxy, Seen};
use publish::*;
use rtmp_recorder::spool::StateDir;

const BUCKET: &str = "recordings";

fn key_for(name: &rtmp_recorder::spool::ChunkName, ext: &str) -> String {
    format!("rec/live/{}/2026/11/26/{}.{ext}", name.stream, name.stem())
}

/// moto with the bucket made, and a state directory in `tmp`.
async fn moto_and_state(tmp: &Path) -> (Server, Client, StateDir) {
    let server = moto();
    let c = client(&server.endpoint());
    create_bucket(&c, BUCKET).await;
    let state = StateDir::open(tmp.join("state")).unwrap();
    (server, c, state)
}

async fn grants(c: &Client, key: &str) -> Vec<Grant> {
    let acl = c
        .get_object_acl()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap();
    acl.grants().to_vec()
}

async fn open_uploads(c: &Client) -> Vec<MultipartUpload> {
    let open = c
        .list_multipart_uploads()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    open.uploads().to_vec()
}

/// Per object key, the writes the store accepted (answered 2xx): PUTs of a whole object and
/// CompleteMultipartUploads. Part uploads, HEADs and aborts write no object.
fn accepted_writes(seen: &[Seen]) -> BTreeMap<String, usize> {
    let mut writes = BTreeMap::new();
    for s in seen.iter().filter(|s| (200..300).contains(&s.status)) {
        let (path, query) = s.target.split_once('?').unwrap_or((&s.target, ""));
        let of_an_upload = query.split('&').any(|q| q.starts_with("uploadId="));
        let object_write = match s.method.as_str() {
            "PUT" => !of_an_upload && !query.split('&').any(|q| q.starts_with("acl")),
            "POST" => of_an_upload,
            _ => false,
        };
        if object_write {
            let key = path.strip_prefix(&format!("/{BUCKET}/")).unwrap_or(path);
            *writes.entry(key.to_string()).or_default() += 1;
        }
    }
    writes
}

async fn assert_public_read(c: &Client, key: &str) {
    let grants = grants(c, key).await;
    let public = grants.iter().any(|g| {
        g.grantee()
            .and_then(|gr| gr.uri())
            .is_some_and(|u| u.ends_with("/global/AllUsers"))
            && g.permission().map(|p| p.as_str()) == Some("READ")
    });
    assert!(public, "{key} lacks the public-read grant: {grants:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn public_acl_and_metadata_on_small_and_multipart() {
    let tmp = Turn::shared().scratch();
    let (server, c, state) = moto_and_state(tmp.path()).await;
    let small = chunk_name("cam1", 1);
    let small_bytes = random_bytes(123_456, 1);
    queue_mp4(&state, &small, &small_bytes);
    let big = chunk_name("cam1", 2);
    let big_bytes = random_bytes(18 << 20, 2);
    queue_mp4(&state, &big, &big_bytes);

    let mut cmd = publish_cmd(state.root(), &server.endpoint(), BUCKET);
    cmd.env("PUBLIC_ACL", "yes");
    assert_eq!(run(cmd).status.code(), Some(0));
    for (name, bytes) in [(&small, &small_bytes), (&big, &big_bytes)] {
        let key = key_for(name, "mp4");
        let got = get(&c, BUCKET, &key).await;
        assert_eq!(sha256_hex(&got.bytes), sha256_hex(bytes));
        assert_eq!(got.content_type.as_deref(), Some("video/mp4"));
        assert_eq!(got.metadata.get("sha256"), Some(&sha256_hex(bytes)));
        assert_eq!(got.metadata.get("stream").map(String::as_str), Some("cam1"));
        assert_public_read(&c, &key).await;
        assert_public_read(&c, &key_for(name, "json")).await;
    }
    // Without PUBLIC_ACL, objects stay private.
    let third = chunk_name("cam1", 3);
    queue_mp4(&state, &third, &random_bytes(1000, 3));
    assert_eq!(
        run(publish_cmd(state.root(), &server.endpoint(), BUCKET))
            .status
            .code(),
        Some(0)
    );
    assert!(
        !grants(&c, &key_for(&third, "mp4"))
            .await
            .iter()
            .any(|g| g.grantee().and_then(|gr| gr.uri()).is_some()),
        "private object has a group grant"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_at_random_points_then_rerun_leaves_every_object_once() {
    let tmp = Turn::shared().scratch();
    let (server, c, state) = moto_and_state(tmp.path()).await;
    // Every run of publish talks to moto through this proxy, which notes each request and the
    // status moto answered (also when the client was killed before reading it).
    let proxy = Proxy::start(server.addr(), Vec::new());
    let mut rng = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("kill -9 test seed {rng}");
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut files = Vec::new();
    let mut killed_while_busy = 0;
    let mut left_open = std::collections::HashSet::new();
    for round in 0..22u32 {
        // Each round queues new multipart-sized work, so every kill lands on an upload.
        let name = chunk_name("cam1", round + 1);
        let bytes = random_bytes((16 << 20) + (next() % (6 << 20)) as usize, next());
        queue_mp4(&state, &name, &bytes);
        files.push((name, bytes));
        let log = std::fs::File::create(tmp.path().join(format!("run{round}.log"))).unwrap();
        let mut cmd = publish_cmd(state.root(), &proxy.endpoint(), BUCKET);
        cmd.args(["--part-size", "5M"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        let mut child = cmd.spawn().unwrap();
        if round % 2 == 0 {
            // Every other run is killed while a multipart upload is open on the server.
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline {
                if !open_uploads(&c).await.is_empty() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(next() % 30)).await;
        } else {
            // The others are killed after a random number of answered requests (1 to 6: from
            // the first HEAD into the parts), then up to 30 ms more, so kills land anywhere in
            // the exchange. (A random wall-clock delay instead let a fast machine finish first:
            // CI once saw 14 of 22 kills land mid-work.)
            let answered = proxy.answered() + 1 + (next() % 6) as usize;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while std::time::Instant::now() < deadline
                && proxy.answered() < answered
                && child.try_wait().unwrap().is_none()
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            tokio::time::sleep(Duration::from_millis(next() % 30)).await;
        }
        if child.try_wait().unwrap().is_none() {
            killed_while_busy += 1;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        left_open.extend(
            open_uploads(&c)
                .await
                .iter()
                .filter_map(|u| u.upload_id().map(str::to_string)),
        );
    }
    eprintln!("{killed_while_busy} of 22 runs were killed mid-work");
    assert!(killed_while_busy >= 18, "too few kills landed mid-work");
    let out = run(publish_cmd(state.root(), &proxy.endpoint(), BUCKET));
    assert_eq!(out.status.code(), Some(0));
    // Each upload a kill left open was found and aborted by a later run.
    let stale_aborted: usize = (0..22)
        .map(|r| std::fs::read_to_string(tmp.path().join(format!("run{r}.log"))).unwrap())
        .chain([String::from_utf8_lossy(&out.stderr).into_owned()])
        .map(|log| log.matches("aborting stale multipart upload").count())
        .sum();
    eprintln!(
        "{} multipart uploads left open by kills, {stale_aborted} aborted as stale",
        left_open.len()
    );
    // (A kill can also land after CompleteMultipartUpload was sent; the store then finishes
    // it by itself, so the two counts need not be equal.)
    assert!(
        left_open.len() >= 2,
        "too few kills landed inside a multipart upload"
    );
    assert!(
        stale_aborted >= 2,
        "stale uploads were not aborted by later runs"
    );

    let mut expected: Vec<String> = files
        .iter()
        .flat_map(|(n, _)| [key_for(n, "mp4"), key_for(n, "json")])
        .collect();
    expected.sort();
    assert_eq!(list_keys(&c, BUCKET).await, expected);
    // No duplicates: the store accepted exactly one write per object over all 23 runs, however
    // the kills fell (a rerun finds an object a killed run completed, and leaves it).
    let writes = accepted_writes(&proxy.seen());
    let once: BTreeMap<String, usize> = expected.iter().map(|k| (k.clone(), 1)).collect();
    assert_eq!(writes, once, "accepted writes per key");
    for (name, bytes) in &files {
        let got = get(&c, BUCKET, &key_for(name, "mp4")).await;
        assert_eq!(sha256_hex(&got.bytes), sha256_hex(bytes), "{}", name.stem());
    }
    let uploads = open_uploads(&c).await;
    assert!(
        uploads.is_empty(),
        "leftover multipart uploads: {uploads:?}"
    );
    assert_eq!(files_in(&state.publish_inbox()), Vec::<String>::new());
    assert_eq!(files_in(&state.failed()), Vec::<String>::new());
}
