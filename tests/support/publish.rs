//! Shared parts of the publish tests: real S3 servers (s3s-fs, moto) on free 127.0.0.1 ports,
//! stopped by PID; a fault-injecting HTTP proxy; chunk fixtures; running the real binary.
//!
//! Setup (also done by .ci/run):
//!   cargo install s3s-fs --version 0.14.1 --features binary --locked
//!   pip install 'moto[server]' awscli
//! A missing tool fails the test with that hint; nothing is skipped.

pub mod proxy;
use crate::support;
use support::{free_port, require_tool};

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use rtmp_recorder::manifest::ChunkManifest;
use rtmp_recorder::spool::{ChunkName, StateDir};
use rtmp_recorder::utc::Civil;

pub const AK: &str = "rtmprecorderkey";
pub const SK: &str = "rtmprecordersecret";

/// A server process stopped by its PID when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// s3s-fs (checks SigV4 and checksums) serving `root` on `port` (0: a free one).
pub fn s3s_fs(root: &Path, port: u16) -> Server {
    let bin = require_tool(
        "s3s-fs",
        "cargo install s3s-fs --version 0.14.1 --features binary --locked",
    );
    std::fs::create_dir_all(root).unwrap();
    let port = if port == 0 { free_port() } else { port };
    let mut cmd = Command::new(bin);
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", AK, "--secret-key", SK])
        .arg(root);
    serve(cmd, port, "s3s-fs")
}

/// Starts the server `cmd` (its output dropped) and waits until it listens on `port`.
fn serve(mut cmd: Command, port: u16, what: &str) -> Server {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {what}: {e}"));
    support::wait_for_port(port, &mut child, Duration::from_secs(30), what, String::new);
    Server { child, port }
}

/// moto's S3 server (in-memory; supports ACLs and ListMultipartUploads).
pub fn moto() -> Server {
    let bin = require_tool("moto_server", "pip install 'moto[server]'");
    let port = free_port();
    let mut cmd = Command::new(bin);
    cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
    serve(cmd, port, "moto_server")
}

/// An s3s-fs server storing under `dir/s3`, a client for it, and `bucket` created.
pub async fn s3s_with_bucket(dir: &Path, bucket: &str) -> (Server, Client) {
    let server = s3s_fs(&dir.join("s3"), 0);
    let c = client(&server.endpoint());
    create_bucket(&c, bucket).await;
    (server, c)
}

pub fn client(endpoint: &str) -> Client {
    let conf = aws_sdk_s3::config::Builder::new()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-west-2"))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(Credentials::new(AK, SK, None, None, "test"))
        .build();
    Client::from_conf(conf)
}

pub async fn create_bucket(c: &Client, bucket: &str) {
    use aws_sdk_s3::types::{BucketLocationConstraint, CreateBucketConfiguration};
    c.create_bucket()
        .bucket(bucket)
        .create_bucket_configuration(
            CreateBucketConfiguration::builder()
                .location_constraint(BucketLocationConstraint::UsWest2)
                .build(),
        )
        .send()
        .await
        .expect("creating bucket");
}

/// Every key in the bucket, sorted.
pub async fn list_keys(c: &Client, bucket: &str) -> Vec<String> {
    let pages = c
        .list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send()
        .try_collect()
        .await
        .expect("listing objects");
    let mut keys: Vec<String> = pages
        .iter()
        .flat_map(|page| page.contents())
        .filter_map(|o| o.key().map(str::to_string))
        .collect();
    keys.sort();
    keys
}

pub struct Fetched {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub metadata: std::collections::HashMap<String, String>,
}

pub async fn get(c: &Client, bucket: &str, key: &str) -> Fetched {
    let out = c
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {key}: {e:?}"));
    let content_type = out.content_type().map(str::to_string);
    let metadata = out.metadata().cloned().unwrap_or_default();
    let bytes = out.body.collect().await.unwrap().into_bytes().to_vec();
    Fetched {
        bytes,
        content_type,
        metadata,
    }
}

/// A chunk name at a fixed date: 2026-11-26T03:27:59.123Z plus `seq` minutes.
pub fn chunk_name(stream: &str, seq: u32) -> ChunkName {
    ChunkName::new(
        Civil::from_unix_millis(1_795_663_679_123 + i64::from(seq) * 60_000),
        "live",
        stream,
        seq,
    )
}

/// Deterministic pseudo-random bytes (for pure-transfer tests, where content does not matter).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Puts `bytes` into `publish/` as `NAME.mp4` the way remux does (via tmp + rename), with no
/// manifest. Returns the file name.
pub fn queue_mp4(state: &StateDir, name: &ChunkName, bytes: &[u8]) -> String {
    let file = format!("{}.mp4", name.stem());
    let tmp = state.tmp().join(&file);
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, state.publish_inbox().join(&file)).unwrap();
    file
}

/// The manifest remux writes beside `name`'s MP4 (no tracks, offset 0; publish fills in the
/// size and hash unless they are given).
pub fn manifest_for(name: &ChunkName, duration_ms: u64) -> ChunkManifest {
    ChunkManifest {
        app: "live".into(),
        node: None,
        duration_ms,
        ..ChunkManifest::from_name(&name.stem(), Some(name))
    }
}

/// Puts `manifest` into `publish/` as `NAME.json`, as remux leaves it beside the MP4.
pub fn queue_manifest(state: &StateDir, manifest: &ChunkManifest) {
    std::fs::write(
        state
            .publish_inbox()
            .join(format!("{}.json", manifest.name)),
        serde_json::to_vec(manifest).unwrap(),
    )
    .unwrap();
}

/// A real 2-second H.264/AAC faststart MP4 made by ffmpeg.
pub fn real_mp4(dir: &Path) -> Vec<u8> {
    let out = dir.join("fixture.mp4");
    let inputs = support::remux::lavfi_av(
        "testsrc=duration=2:size=320x240:rate=25",
        "sine=frequency=440:duration=2",
    );
    let args = "-c:v libx264 -preset ultrafast -c:a aac -movflags +faststart";
    support::remux::encode(&out, &inputs, &support::words(args));
    std::fs::read(out).unwrap()
}

/// The publish command with a hermetic AWS environment (no profile files, no IMDS).
pub fn publish_cmd(state: &Path, endpoint: &str, bucket: &str) -> Command {
    let mut cmd = Command::new(support::BIN);
    cmd.arg("--state-dir")
        .arg(state)
        .args(["--log-level", "debug", "publish"])
        .args(["--destination", &format!("s3://{bucket}/rec")])
        .args(["--endpoint-url", endpoint])
        .args(["--upload-quiet-for", "0"]);
    hermetic_aws_env(&mut cmd);
    cmd
}

/// Clears `cmd`'s environment but PATH and gives it our test credentials, with no AWS profile
/// files and no instance metadata service.
pub fn hermetic_aws_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("AWS_ACCESS_KEY_ID", AK)
        .env("AWS_SECRET_ACCESS_KEY", SK)
        .env("AWS_CONFIG_FILE", "/nonexistent")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        .env("AWS_EC2_METADATA_DISABLED", "true")
}

pub fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("running rtmp-recorder");
    eprintln!(
        "--- rtmp-recorder exited {:?}\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Publish's inbox is empty and each of `names` left it for archive/ with every one of `exts`.
pub fn assert_archived<'a>(
    state: &StateDir,
    names: impl IntoIterator<Item = &'a ChunkName>,
    exts: &[&str],
) {
    for name in names {
        for ext in exts {
            let file = state.archive().join(format!("{}.{ext}", name.stem()));
            assert!(file.exists(), "{} not archived", file.display());
        }
    }
    assert_eq!(files_in(&state.publish_inbox()), Vec::<String>::new());
}

pub fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}
