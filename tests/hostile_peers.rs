//! Hostile peers against a real ingest, each ending in a refusal or a bounded cost while a good
//! ffmpeg stream records packet-exact beside them: connections past the per-IP limit, a peer
//! that stops reading (cut after `--write-timeout`, and SIGTERM does not wait for it), repeated
//! refused publishes, oversized metadata and sequence headers, a flood of codec-configuration
//! changes, and a stream of one keyframe and then only inter frames (cut at the hard caps; the
//! remux of the largest chunk the caps allow is measured); and, with the same hand-built client,
//! a publisher that pauses, whose last chunks must not wait for more input. Hostile clients
//! speak RTMP from hand-built chunks, each from its own loopback address (127.0.0.N), so the
//! per-IP limit of one does not touch the others.

use crate::support::flv::Flv;
use crate::support::{self, Turn, ingest, rtmp, wait_until, words};
use tempfile::TempDir;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ingest::*;
use rml_rtmp::rml_amf0::Amf0Value;
use rtmp::{amf, command, message, n, obj, publish_bytes, s};

/// A TCP connection to `port` from `source` (a 127.0.0.N address); `rcvbuf` shrinks the
/// receive buffer before connecting, so a peer that does not read fills up fast.
fn connect_from(source: Ipv4Addr, port: u16, rcvbuf: Option<i32>) -> std::io::Result<TcpStream> {
    // SAFETY: plain socket calls on a descriptor we create and hand to TcpStream, which owns
    // it from then on; the sockaddr structs live across the calls that read them.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let stream = TcpStream::from_raw_fd(fd);
        if let Some(size) = rcvbuf {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                (&size as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            );
        }
        let addr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(ip).to_be(),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let local = addr(source, 0);
        if libc::bind(fd, (&local as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        let remote = addr(Ipv4Addr::LOCALHOST, port);
        if libc::connect(fd, (&remote as *const libc::sockaddr_in).cast(), len) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        Ok(stream)
    }
}

fn peer(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, n)
}

/// Client side of the plain RTMP handshake (C0 C1, S0 S1 S2, C2); false if the server closed.
fn handshake(s: &mut TcpStream) -> bool {
    let mut c0c1 = vec![3u8];
    c0c1.extend([0u8; 1536]);
    if s.write_all(&c0c1).is_err() {
        return false;
    }
    let mut s012 = vec![0u8; 1 + 1536 + 1536];
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = 0;
    while got < s012.len() && Instant::now() < deadline {
        match s.read(&mut s012[got..]) {
            Ok(0) => return false,
            Ok(k) => got += k,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return false,
        }
    }
    got == s012.len() && s.write_all(&s012[1..1537]).is_ok()
}

/// What the server sends until it closes the connection or `within` passes: (bytes, closed).
fn read_until_closed(s: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    let mut buf = [0u8; 65536];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (seen, true),
            Ok(k) => seen.extend_from_slice(&buf[..k]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return (seen, true),
        }
    }
    (seen, false)
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| w == &needle)
        .count()
}

/// Handshake, connect, createStream and publish `name` on stream 1; panics unless it starts.
fn publishing(source: Ipv4Addr, port: u16, name: &str) -> TcpStream {
    let mut c = connect_from(source, port, None).expect("connecting");
    assert!(handshake(&mut c), "{name}: handshake");
    c.write_all(&publish_bytes(name)).unwrap();
    assert!(
        rtmp::reply_contains(&mut c, b"NetStream.Publish.Start", Duration::from_secs(5)),
        "{name}: publish not started"
    );
    c
}

/// The bodies a real encoder sends: the AVC sequence header and a keyframe (ffmpeg's x264 at
/// 320x240), read from a one-frame FLV with the tests' own tag walker.
struct Avc {
    config: Vec<u8>,
    keyframe: Vec<u8>,
}

fn avc(dir: &Path) -> Avc {
    let flv = dir.join("one-frame.flv");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=320x240:rate=30")
        .args(words("-frames:v 1 -c:v libx264 -preset ultrafast -f flv"))
        .arg(&flv)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "ffmpeg could not encode the one-frame FLV");
    let flv = Flv::read(&flv);
    let config = flv
        .tags
        .iter()
        .find(|t| t.is_video_seq_header())
        .expect("a sequence header")
        .data
        .clone();
    let keyframe = flv.video().next().expect("a keyframe").data.clone();
    Avc { config, keyframe }
}

/// An AVC inter frame of one tiny NAL unit: the remux copies payloads, it never decodes them.
const INTER: [u8; 11] = [0x27, 1, 0, 0, 0, 0, 0, 0, 2, 0x41, 0x9a];

fn video(ts: u32, body: &[u8]) -> Vec<u8> {
    message(6, ts, 9, 1, body, 128)
}

fn metadata(props: &[(&str, Amf0Value)]) -> Vec<u8> {
    let body = amf(&[s("@setDataFrame"), s("onMetaData"), obj(props)]);
    message(5, 0, 18, 1, &body, 128)
}

/// Finished chunks of stream `label` in `dir`, oldest first.
fn chunks_of(dir: &Path, label: &str) -> Vec<PathBuf> {
    files_with_ext(dir, "flv")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .and_then(|f| f.to_str())
                .is_some_and(|f| f.contains(&format!("_live_{label}_")))
        })
        .collect()
}

fn video_frames(chunks: &[PathBuf]) -> usize {
    chunks.iter().map(|c| Flv::read(c).video().count()).sum()
}

/// 16 connections from one address are served, the 17th and every one after it refused at
/// accept, with one log line for the burst; another address is not affected.
fn per_ip_limit(rec: &Recorder) {
    let held: Vec<TcpStream> = (0..16)
        .map(|i| {
            let mut c = connect_from(peer(2), rec.port, None).expect("connecting");
            assert!(
                handshake(&mut c),
                "connection {} of 16 was not served",
                i + 1
            );
            c
        })
        .collect();
    for i in 0..40 {
        // The kernel completes the TCP handshake; ingest then closes the socket unserved.
        if let Ok(mut c) = connect_from(peer(2), rec.port, None) {
            assert!(
                !handshake(&mut c),
                "connection {} from 127.0.0.2 was served",
                17 + i
            );
        }
    }
    let mut other = connect_from(peer(3), rec.port, None).expect("connecting");
    assert!(handshake(&mut other), "another address was refused");
    let lines = rec
        .log_text()
        .lines()
        .filter(|l| l.contains("refusing a connection from 127.0.0.2"))
        .count();
    assert_eq!(lines, 1, "one log line for the burst of 40 refusals");
    drop(held);
}

/// The fifth refused publish on one connection is answered, then the connection is closed.
fn refused_publishes(rec: &Recorder) {
    let mut c = connect_from(peer(5), rec.port, None).expect("connecting");
    assert!(handshake(&mut c));
    let mut bytes = publish_bytes("wrong-key");
    for txn in 0..10 {
        bytes.extend(command(
            1,
            &[
                s("publish"),
                n(10.0 + f64::from(txn)),
                Amf0Value::Null,
                s("wrong-key"),
                s("live"),
            ],
        ));
    }
    let _ = c.write_all(&bytes);
    let (replies, closed) = read_until_closed(&mut c, Duration::from_secs(5));
    assert!(closed, "the connection stayed open after the refusals");
    assert_eq!(
        count(&replies, b"NetStream.Publish.BadName"),
        5,
        "refusals answered"
    );
    assert!(
        rec.log_text()
            .contains("5 publishes refused on this connection")
    );
}

/// Metadata over 64 KiB is dropped (the chunk keeps the earlier metadata); a sequence header
/// over 1 MiB ends the session, and what was recorded before it is handed on whole.
fn oversized_headers(rec: &Recorder, avc: &Avc) {
    let mut c = publishing(peer(6), rec.port, "meta");
    let mut b = metadata(&[("small", n(1.0))]);
    // AMF0 strings hold at most 64 KiB: three of 40 KiB make the 120 KiB metadata.
    let big = s(&"x".repeat(40 * 1024));
    b.extend(metadata(&[
        ("big", big.clone()),
        ("big2", big.clone()),
        ("big3", big),
    ]));
    b.extend(video(0, &avc.config));
    b.extend(video(0, &avc.keyframe));
    for i in 1..10 {
        b.extend(video(i * 33, &INTER));
    }
    c.write_all(&b).unwrap();
    let unpublish = command(0, &[s("FCUnpublish"), n(20.0), Amf0Value::Null, s("meta")]);
    c.write_all(&unpublish).unwrap();
    drop(c);

    let mut c = publishing(peer(6), rec.port, "bigseq");
    let mut b = video(0, &avc.config);
    b.extend(video(0, &avc.keyframe));
    for i in 1..10 {
        b.extend(video(i * 33, &INTER));
    }
    let mut huge = avc.config.clone();
    huge.extend(vec![0u8; 1 << 20]);
    b.extend(video(330, &huge));
    let _ = c.write_all(&b);
    let (_, closed) = read_until_closed(&mut c, Duration::from_secs(5));
    assert!(closed, "a 1 MiB sequence header did not end the session");

    wait_until(Duration::from_secs(10), "both chunks handed on", || {
        chunks_of(&rec.remux(), "meta").len() == 1 && chunks_of(&rec.remux(), "bigseq").len() == 1
    });
    let meta = Flv::read(&chunks_of(&rec.remux(), "meta")[0]);
    let fields = meta.metadata().expect("metadata in the chunk");
    assert!(
        fields.contains_key("small") && !fields.contains_key("big"),
        "{fields:?}"
    );
    assert_eq!(meta.video().count(), 10);
    let bigseq = Flv::read(&chunks_of(&rec.remux(), "bigseq")[0]);
    assert_eq!(
        bigseq.video().count(),
        10,
        "frames before the oversized header kept"
    );
    assert!(bigseq.tags.iter().all(|t| t.data.len() < 1 << 20));
    let wants = [
        "bytes dropped: over the 65536 byte cap",
        "over the 1048576 byte cap",
    ];
    support::assert_contains_all(
        &rec.log_text(),
        &wants,
        "the log (metadata warning, sequence header error)",
    );
}

/// 500 codec-configuration changes, one before every frame, sent as fast as the socket takes
/// them: a burst of chunks, not one per change, and every frame recorded.
fn config_flood(rec: &Recorder, avc: &Avc) {
    let mut c = publishing(peer(7), rec.port, "flood");
    let mut other = avc.config.clone();
    // The AVC level byte (configuration record byte 3, after the 5-byte tag header).
    other[8] ^= 1;
    let mut b = video(0, &avc.config);
    b.extend(video(0, &avc.keyframe));
    for i in 1..=500u32 {
        let config = if i % 2 == 1 { &other } else { &avc.config };
        b.extend(video(i * 33, config));
        b.extend(video(i * 33, &INTER));
    }
    let started = Instant::now();
    c.write_all(&b).unwrap();
    c.write_all(&command(
        0,
        &[s("FCUnpublish"), n(20.0), Amf0Value::Null, s("flood")],
    ))
    .unwrap();
    drop(c);
    wait_until(
        Duration::from_secs(10),
        "the flood's chunks handed on",
        || {
            video_frames(&chunks_of(&rec.remux(), "flood")) == 501
                && rec
                    .open_chunks()
                    .iter()
                    .all(|p| !p.to_string_lossy().contains("_flood_"))
        },
    );
    let chunks = chunks_of(&rec.remux(), "flood").len();
    let paced = 1 + 30 + (started.elapsed().as_secs() / 2) as usize + 1;
    eprintln!(
        "500 configuration changes in {:?}: {chunks} chunks",
        started.elapsed()
    );
    assert!(
        chunks <= paced,
        "{chunks} chunks for 500 changes (at most {paced})"
    );
}

/// A peer that stops reading while it makes us answer (pings): once its buffers are full our
/// write blocks; the connection is cut after the write timeout, or, with a long one, SIGTERM
/// ends the process without waiting for it.
fn stuck_reader(rec: &Recorder, source: Ipv4Addr) -> Instant {
    let mut c = connect_from(source, rec.port, Some(4096)).expect("connecting");
    assert!(handshake(&mut c));
    c.write_all(&publish_bytes("stuck")).unwrap();
    c.set_write_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut ping = Vec::new();
    for t in 0..1000u32 {
        let mut payload = vec![0, 6];
        payload.extend(t.to_be_bytes());
        ping.extend(message(2, 0, 4, 0, &payload, 128));
    }
    let give_up = Instant::now() + Duration::from_secs(20);
    loop {
        match c.write(&ping) {
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("the server closed the reader before it was stuck: {e}"),
        }
        assert!(Instant::now() < give_up, "the server never stopped reading");
    }
    // Kept open (never read) until the caller's check is done.
    std::mem::forget(c);
    Instant::now()
}

#[test]
fn hostile_peers_beside_a_good_stream() {
    let dir = Turn::alone().scratch();
    let keys = dir.path().join("keys");
    std::fs::write(
        &keys,
        "good good\nmeta meta\nbigseq bigseq\nflood flood\nstuck stuck\n",
    )
    .unwrap();
    let mut rec = Recorder::start(
        dir.path(),
        &[
            "--allowed-keys",
            keys.to_str().unwrap(),
            "--write-timeout",
            "2s",
            "--max-connections-per-ip",
            "16",
        ],
    );
    let avc = avc(dir.path());
    let secs = 8;
    let mut publisher = rec.publish_recording(dir.path(), "good", secs, (320, 240));

    let stuck_at = stuck_reader(&rec, peer(4));
    wait_until(Duration::from_secs(8), "the stuck reader cut", || {
        rec.log_text().contains("write timeout")
    });
    // Our write blocked before the peer's buffers filled, so the cut comes within the 2 s
    // timeout of that moment; a deadline several times longer would miss this bound.
    let cut_after = stuck_at.elapsed();
    eprintln!("stuck reader cut {cut_after:?} after its writes blocked");
    assert!(
        cut_after < Duration::from_secs(5),
        "cut {cut_after:?} after the peer stopped reading, with --write-timeout 2s"
    );
    per_ip_limit(&rec);
    refused_publishes(&rec);
    oversized_headers(&rec, &avc);
    config_flood(&rec, &avc);

    publisher.wait_ok(Duration::from_secs(secs as u64 + 30));
    wait_until(Duration::from_secs(10), "the good chunk handed on", || {
        !chunks_of(&rec.remux(), "good").is_empty() && rec.open_chunks().is_empty()
    });
    check_chunks_against_reference(
        &chunks_of(&rec.remux(), "good"),
        &publisher.reference,
        "live",
        "good",
    );
    assert!(rec.exited().is_none(), "ingest exited");
    let status = rec.terminate(Duration::from_secs(10));
    assert!(status.success(), "ingest exited {status}");
}

/// With a write timeout far away, a stuck reader does not hold up SIGTERM, and the chunk of a
/// stream publishing beside it is handed on.
#[test]
fn sigterm_does_not_wait_for_a_peer_that_stopped_reading() {
    let dir = Turn::alone().scratch();
    let mut rec = Recorder::start(dir.path(), &["--write-timeout", "10m"]);
    let avc = avc(dir.path());
    let mut c = publishing(peer(8), rec.port, "beside");
    let mut b = video(0, &avc.config);
    b.extend(video(0, &avc.keyframe));
    c.write_all(&b).unwrap();
    // Frames as a live source sends them, until the recorder has the chunk open (a connection
    // hands its batch over once it is 100 ms old, at the next input).
    let mut sent = 1usize;
    let give_up = Instant::now() + Duration::from_secs(5);
    while rec.open_chunks().is_empty() {
        assert!(Instant::now() < give_up, "the chunk never opened");
        c.write_all(&video(sent as u32 * 33, &INTER)).unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    let live = rec.state.join("status/live.json");
    let snapshot = |key: &str| {
        std::fs::read(&live)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v[key].as_u64())
    };
    // A NUL in a stream name: the connection is answered and, once it ends, no longer counted
    // (a thread name with a NUL made the spawn panic, and the count leaked with it).
    let mut nul = connect_from(peer(11), rec.port, None).expect("connecting");
    assert!(handshake(&mut nul));
    nul.write_all(&publish_bytes("nul\0name")).unwrap();
    assert!(
        rtmp::reply_contains(&mut nul, b"NetStream.Publish.", Duration::from_secs(5)),
        "a NUL in the name got no answer"
    );
    wait_until(Duration::from_secs(5), "both connections counted", || {
        snapshot("connections") == Some(2)
    });
    drop(nul);
    wait_until(
        Duration::from_secs(5),
        "the NUL-named connection uncounted",
        || snapshot("connections") == Some(1),
    );
    // Every frame sent has reached ingest (its live counters, which count the sequence header
    // too) before the signal.
    wait_until(Duration::from_secs(5), "every frame received", || {
        std::fs::read(&live)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v["streams"][0]["video_frames"].as_u64() == Some(sent as u64 + 1))
    });
    stuck_reader(&rec, peer(9));
    let started = Instant::now();
    let status = rec.terminate(Duration::from_secs(20));
    let took = started.elapsed();
    eprintln!("SIGTERM with a stuck reader: exited in {took:?}");
    assert!(status.success(), "ingest exited {status}");
    assert!(took < Duration::from_secs(5), "shutdown took {took:?}");
    assert!(!rec.log_text().contains("were not finished"));
    let chunks = chunks_of(&rec.remux(), "beside");
    assert_eq!(
        video_frames(&chunks),
        sent,
        "the stream beside it recorded whole"
    );
}

/// Remuxes every chunk in `state`'s inbox; returns the remux's peak RSS in MiB, measured by
/// GNU time so this large test process does not leak into it.
fn remux_measured(state: &Path, report: &Path) -> f64 {
    support::ensure_apt("/usr/bin/time", "time");
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(report)
        .arg(support::BIN)
        .arg("--state-dir")
        .arg(state)
        .args(["remux", "--log-level", "warn"])
        .env_remove("JOURNAL_STREAM")
        .env_remove("STATE_DIRECTORY")
        .status()
        .unwrap();
    assert!(status.success(), "remux failed ({status})");
    let kib: f64 = std::fs::read_to_string(report)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kib / 1024.0
}

fn manifests(state: &Path) -> Vec<serde_json::Value> {
    files_with_ext(&state.join("publish"), "json")
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

/// One keyframe, then only inter frames: the soft frame cap never finds a split point, the
/// hard cap (twice it) splits at inter frames, and those chunks' manifests say so. Then the
/// largest chunk the default caps allow (800,000 frames) through remux, its peak RSS measured.
#[test]
fn one_keyframe_then_inter_frames_is_cut_at_the_hard_caps() {
    let _turn = Turn::alone();
    // (--max-chunk-frames, inter frames sent, frames per chunk)
    let cases: [(Option<&str>, u32, &[usize]); 2] = [
        (Some("100"), 450, &[200, 200, 51]),
        (None, 800_010, &[800_000, 11]),
    ];
    let dir = TempDir::new().unwrap();
    let avc = avc(dir.path());
    for (i, (max_frames, inter, want)) in cases.into_iter().enumerate() {
        let case = dir.path().join(format!("case{i}"));
        std::fs::create_dir_all(&case).unwrap();
        let extra: Vec<&str> = max_frames.map_or(vec![], |m| vec!["--max-chunk-frames", m]);
        let mut rec = Recorder::start(&case, &extra);
        let mut c = publishing(peer(10), rec.port, "nokey");
        let mut b = video(0, &avc.config);
        b.extend(video(0, &avc.keyframe));
        for f in 1..=inter {
            b.extend(video(f, &INTER));
            if b.len() >= 1 << 20 {
                c.write_all(&b).unwrap();
                b.clear();
            }
        }
        b.extend(command(
            0,
            &[s("FCUnpublish"), n(20.0), Amf0Value::Null, s("nokey")],
        ));
        c.write_all(&b).unwrap();
        let chunks = rec.wait_chunks(want.len(), Duration::from_secs(60));
        let frames: Vec<usize> = chunks
            .iter()
            .map(|c| Flv::read(c).video().count())
            .collect();
        assert_eq!(frames, want, "case {i}: frames per chunk");
        for (k, c) in chunks.iter().enumerate() {
            let first = Flv::read(c).video().next().unwrap().is_keyframe();
            assert_eq!(first, k == 0, "case {i}: chunk {k} starts on a keyframe?");
        }
        drop(c);
        rec.terminate(Duration::from_secs(10));

        let peak = remux_measured(&rec.state, &case.join("rusage"));
        let size = chunks
            .iter()
            .map(|c| {
                std::fs::metadata(rec.state.join("archive").join(c.file_name().unwrap()))
                    .map_or(0, |m| m.len())
            })
            .max()
            .unwrap_or(0);
        eprintln!(
            "case {i}: remux of {} chunks (largest {} frames, {} MB): peak RSS {peak:.1} MiB",
            want.len(),
            want[0],
            size >> 20
        );
        assert!(peak < 100.0, "case {i}: remux peak RSS {peak:.1} MiB");
        let mut flags: Vec<(u64, bool, u64)> = manifests(&rec.state)
            .iter()
            .map(|m| {
                (
                    m["sequence"].as_u64().unwrap(),
                    m.get("starts_without_keyframe") == Some(&serde_json::Value::Bool(true)),
                    m["video"]["frames"].as_u64().unwrap(),
                )
            })
            .collect();
        flags.sort();
        let expected: Vec<(u64, bool, u64)> = want
            .iter()
            .enumerate()
            .map(|(k, f)| (k as u64 + 1, k > 0, *f as u64))
            .collect();
        assert_eq!(
            flags, expected,
            "case {i}: (sequence, starts_without_keyframe, frames)"
        );
    }
}

/// A publisher that sends three GOPs at once and then pauses, the connection still open: the
/// two chunks its keyframes ended are handed on to `remux/` within the batch age (100 ms) plus
/// the recorder's fsync, not when more input or the idle timeout comes (30 s by default). The
/// batch that held those keyframes was far below 256 KiB, so only its age could send it on.
#[test]
fn a_pause_does_not_hold_back_the_chunks_before_it() {
    let dir = Turn::shared().scratch();
    let avc = avc(dir.path());
    let rec = Recorder::start(dir.path(), &[]);
    let mut c = publishing(peer(11), rec.port, "pause");
    // Keyframes at 0, 10 s and 20 s of media time (chunks of 10 s), 29 inter frames after each.
    let mut b = video(0, &avc.config);
    for gop in 0..3u32 {
        b.extend(video(gop * 10_000, &avc.keyframe));
        for f in 1..30u32 {
            b.extend(video(gop * 10_000 + f * 33, &INTER));
        }
    }
    assert!(b.len() < 128 * 1024, "all of it fits one batch");
    c.write_all(&b).unwrap();
    let sent = Instant::now();
    support::wait_until(Duration::from_secs(5), "two chunks in remux/", || {
        rec.chunks().len() >= 2
    });
    let chunks = rec.chunks();
    eprintln!(
        "two chunks handed on {} ms after the last bytes were sent",
        sent.elapsed().as_millis()
    );
    assert_eq!(video_frames(&chunks), 60, "both whole GOPs in the chunks");
    assert_eq!(
        rec.open_chunks().len(),
        1,
        "the third GOP's chunk still open"
    );
    // The peer is still connected and silent: nothing but the batch's age moved those frames.
    // (Replies may still be unread; the connection is open once a read times out.)
    let mut probe = [0u8; 4096];
    loop {
        match c.read(&mut probe) {
            Ok(0) => panic!("ingest closed the connection"),
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
            Err(e) => panic!("the connection failed: {e}"),
        }
    }
}
