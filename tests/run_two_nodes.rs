//! Two ingest nodes, one bucket: two `rtmp-recorder run` processes with distinct `--node-id`
//! upload into the same prefix of one real S3 server (s3s-fs) with the default key template
//! (no `{node}` in it). One ffmpeg per stream name publishes the same stream to both nodes at
//! once (the tee muxer: one encode, two RTMP connections), so both record `live/cam1` and
//! `live/cam2` from the same instant with the same timestamps, cut by `--align-chunks` at the
//! same clock times: the closest two nodes can come to naming the same object. Every chunk each
//! node recorded is in the bucket as an MP4 and a manifest, nothing was overwritten or set
//! aside, and each node's manifest chain is whole and resolves within that node's objects.
//! A node id too long for the file names it ends stops the start (exit 2) with the reason.

use crate::support::clock::{GOP_MS, publish_to_all};
use crate::support::ingest::{self, Publisher, files_with_ext};
use crate::support::publish::{client, create_bucket, get, hermetic_aws_env, list_keys, s3s_fs};
use crate::support::{self, Turn, port_open, sha256_hex, wait_until};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rtmp_recorder::manifest::ChunkManifest;
use rtmp_recorder::naming::ChunkName;

const BUCKET: &str = "recordings";
const NODES: [&str; 2] = ["node-a", "node-b"];
const STREAMS: [&str; 2] = ["cam1", "cam2"];

struct Node {
    id: &'static str,
    port: u16,
    state: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {}:\n{}", self.id, ingest::show_log(&self.log));
        }
    }
}

fn start_node(dir: &Path, id: &'static str, endpoint: &str) -> Node {
    let port = support::free_port();
    let state = dir.join(id);
    let log = dir.join(format!("{id}.log"));
    let child = hermetic_aws_env(
        Command::new(env!("CARGO_BIN_EXE_rtmp-recorder"))
            .arg("--state-dir")
            .arg(&state)
            .args(["--node-id", id])
            .args(["run", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--chunk-duration", "4s", "--align-chunks"])
            .args(["--destination", &format!("s3://{BUCKET}/rec")])
            .args(["--endpoint-url", endpoint]),
    )
    .stdin(Stdio::null())
    .stdout(ingest::log_file(&log))
    .stderr(ingest::log_file(&log))
    .spawn()
    .expect("starting rtmp-recorder run");
    Node {
        id,
        port,
        state,
        log,
        child,
    }
}

/// Files in the folders a chunk passes through before it is uploaded.
fn queued(state: &Path) -> usize {
    ["recording", "remux", "publish"]
        .iter()
        .map(|d| support::files_under(&state.join(d)).len())
        .sum()
}

#[test]
fn two_nodes_record_the_same_streams_into_one_bucket() {
    let dir = Turn::alone().scratch();
    let store = s3s_fs(&dir.path().join("s3"), 0);
    let endpoint = store.endpoint();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = client(&endpoint);
    rt.block_on(create_bucket(&s3, BUCKET));

    let mut nodes: Vec<Node> = NODES
        .iter()
        .map(|id| start_node(dir.path(), id, &endpoint))
        .collect();
    for n in &nodes {
        wait_until(Duration::from_secs(15), "run listening", || {
            port_open(n.port)
        });
    }
    let mut publishers: Vec<Publisher> = STREAMS
        .iter()
        .map(|stream| {
            let urls: Vec<String> = nodes
                .iter()
                .map(|n| format!("rtmp://127.0.0.1:{}/live/{stream}", n.port))
                .collect();
            publish_to_all(&urls, 13, dir.path(), stream)
        })
        .collect();
    for publisher in &mut publishers {
        publisher.wait_ok(Duration::from_secs(60));
    }

    // Everything recorded is uploaded once nothing is queued on either node.
    let deadline = Instant::now() + Duration::from_secs(60);
    while nodes.iter().any(|n| queued(&n.state) > 0) {
        assert!(Instant::now() < deadline, "chunks still queued after 60 s");
        for n in &mut nodes {
            assert!(n.child.try_wait().unwrap().is_none(), "{} exited", n.id);
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    let keys = rt.block_on(list_keys(&s3, BUCKET));
    let mp4_keys: Vec<&String> = keys.iter().filter(|k| k.ends_with(".mp4")).collect();
    let json_keys: Vec<&String> = keys.iter().filter(|k| k.ends_with(".json")).collect();
    let mut recorded = 0;
    // (node, stream) -> manifests; stem -> (node of the manifest).
    let mut chains: BTreeMap<(String, String), Vec<ChunkManifest>> = BTreeMap::new();
    let mut node_of: HashMap<String, String> = HashMap::new();
    for n in &nodes {
        assert!(
            support::files_under(&n.state.join("failed")).is_empty(),
            "{}: failed/ holds {:?}",
            n.id,
            support::files_under(&n.state.join("failed"))
        );
        let flvs = files_with_ext(&n.state.join("archive"), "flv");
        assert!(flvs.len() >= 2 * STREAMS.len(), "{}: {flvs:?}", n.id);
        recorded += flvs.len();
        for flv in flvs {
            let stem = flv.file_stem().unwrap().to_string_lossy().into_owned();
            assert!(stem.ends_with(&format!("-{}", n.id)), "{stem}");
            let find = |ext: &str| {
                keys.iter()
                    .find(|k| k.ends_with(&format!("/{stem}.{ext}")))
                    .unwrap_or_else(|| panic!("{stem}.{ext} of {} not in {keys:?}", n.id))
                    .clone()
            };
            let (mp4_key, json_key) = (find("mp4"), find("json"));
            // The default layout: no node in the key, only in the name.
            assert!(mp4_key.starts_with("rec/live/cam"), "{mp4_key}");
            let mp4 = rt.block_on(get(&s3, BUCKET, &mp4_key)).bytes;
            let manifest: ChunkManifest =
                serde_json::from_slice(&rt.block_on(get(&s3, BUCKET, &json_key)).bytes).unwrap();
            // The object is the MP4 this node uploaded: its manifest names it and its node.
            assert_eq!(manifest.name, stem);
            assert_eq!(manifest.node.as_deref(), Some(n.id));
            assert_eq!(manifest.sha256.as_deref(), Some(sha256_hex(&mp4).as_str()));
            assert_eq!(manifest.mp4_bytes, Some(mp4.len() as u64));
            let local = std::fs::read(n.state.join("archive").join(format!("{stem}.mp4")));
            assert_eq!(local.ok().as_deref(), Some(mp4.as_slice()), "{stem}");
            node_of.insert(stem.clone(), n.id.to_string());
            chains
                .entry((n.id.to_string(), manifest.stream.clone()))
                .or_default()
                .push(manifest);
        }
    }
    assert_eq!(
        mp4_keys.len(),
        recorded,
        "one MP4 per chunk recorded: {keys:?}"
    );
    assert_eq!(
        json_keys.len(),
        recorded,
        "one manifest per chunk: {keys:?}"
    );
    assert_eq!(
        chains.len(),
        NODES.len() * STREAMS.len(),
        "{:?}",
        chains.keys()
    );

    for ((node, stream), chain) in &mut chains {
        chain.sort_by_key(|m| m.sequence);
        let names: Vec<&str> = chain.iter().map(|m| m.name.as_str()).collect();
        eprintln!("{node} {stream}: {names:?}");
        for (i, m) in chain.iter().enumerate() {
            assert_eq!(m.sequence, i as u32 + 1, "{node} {stream}: {names:?}");
            match i {
                0 => assert_eq!(m.previous, None),
                _ => {
                    let previous = m.previous.as_deref().unwrap();
                    assert_eq!(previous, chain[i - 1].name);
                    assert_eq!(node_of.get(previous), Some(node), "{previous}");
                    // Aligned: every boundary within one GOP after a multiple of 4 s.
                    let start = ChunkName::parse(&m.name).unwrap().start.to_unix_millis();
                    assert!(start % 4_000 < GOP_MS, "{node} {stream}: {names:?}");
                }
            }
        }
    }
    // How close the two nodes came: chunks of the same stream and sequence whose starts are
    // within 250 ms (often the same millisecond: names that differ only in the node; on a
    // loaded machine the two first frames' arrivals have fallen 1 to 70 ms apart).
    let key = |m: &ChunkManifest| {
        let n = ChunkName::parse(&m.name).unwrap();
        (n.app, n.stream, n.seq, n.start.to_unix_millis())
    };
    let a: Vec<_> = chains
        .iter()
        .filter(|((n, _), _)| n == "node-a")
        .flat_map(|(_, c)| c.iter().map(key))
        .collect();
    let (mut close, mut same) = (0, 0);
    for m in chains
        .iter()
        .filter(|((n, _), _)| n == "node-b")
        .flat_map(|(_, c)| c.iter())
    {
        let (app, stream, seq, start) = key(m);
        let twin = a
            .iter()
            .filter(|(aa, s, q, _)| (aa, s, q) == (&app, &stream, &seq))
            .map(|t| (t.3 - start).abs())
            .min();
        close += usize::from(twin.is_some_and(|d| d <= 250));
        same += usize::from(twin == Some(0));
    }
    eprintln!(
        "{recorded} chunks in the bucket; {close} of node-b's start within 250 ms of node-a's chunk of the same stream and sequence, {same} in the same millisecond (names that differ only in the node)"
    );
    // The scenario this test exists for: the nodes' chunks of one stream are this close.
    assert!(
        close > 0,
        "no chunk of node-b starts near node-a's of the same stream and sequence: the test did not bring them close"
    );

    for n in &mut nodes {
        ingest::signal(n.child.id(), libc::SIGTERM);
        let status = ingest::wait_child(&mut n.child, Duration::from_secs(30), n.id, &n.log);
        assert!(status.success(), "{} did not exit cleanly", n.id);
    }
}

#[test]
fn a_node_id_too_long_for_file_names_stops_the_start() {
    let dir = Turn::shared().scratch();
    let out = hermetic_aws_env(
        Command::new(env!("CARGO_BIN_EXE_rtmp-recorder"))
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .args(["--node-id", &"n".repeat(33)])
            .args(["ingest", "--listen", "127.0.0.1:0"]),
    )
    .stdin(Stdio::null())
    .output()
    .expect("running rtmp-recorder ingest");
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.contains("--node-id (NODE_ID)") && log.contains("at most 32"),
        "{log}"
    );
}
