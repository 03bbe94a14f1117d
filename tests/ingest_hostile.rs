//! Hostile connections next to a real stream: bytes that crash a naive RTMP chunk reader
//! (interleaved chunk streams whose lengths disagree, a huge fmt0 message length), the largest
//! chunk size, a full 16 MiB message, an 8 MiB message without a publish, random garbage before
//! and after the handshake, and a handshake that never finishes. The real stream's chunks must
//! come out complete and exact, the process must stay up, and its peak memory must stay under
//! 200 MiB.

use crate::support::{Turn, ingest, rtmp};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ingest::*;

/// A small deterministic generator: the garbage is random-looking but the same every run.
struct XorShift(u64);

impl XorShift {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                self.0 as u8
            })
            .collect()
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connecting to ingest");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Client side of the plain RTMP handshake (C0 C1, S0 S1 S2, C2).
fn handshake(port: u16) -> TcpStream {
    let mut s = connect(port);
    let mut c0c1 = vec![3u8];
    c0c1.extend([0u8; 8]);
    c0c1.extend(XorShift(7).bytes(1528));
    s.write_all(&c0c1).expect("sending C0 C1");
    let mut s012 = vec![0u8; 1 + 1536 + 1536];
    s.read_exact(&mut s012).expect("reading S0 S1 S2");
    assert_eq!(s012[0], 3, "S0 version");
    s.write_all(&s012[1..1537]).expect("sending C2");
    s
}

/// A chunk basic header + fmt0 message header.
fn fmt0(csid: u8, ts: u32, len: u32, type_id: u8, stream_id: u32) -> Vec<u8> {
    let mut h = vec![csid & 0x3f];
    h.extend(&ts.to_be_bytes()[1..]);
    h.extend(&len.to_be_bytes()[1..]);
    h.push(type_id);
    h.extend(stream_id.to_le_bytes());
    h
}

/// Writes what it can; the server is free to hang up at any point.
fn send(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
}

/// Reads until the server closes the connection or `within` passes; true if it closed.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return true,
        }
    }
    false
}

fn amf_string(s: &str) -> Vec<u8> {
    let mut b = vec![2];
    b.extend((s.len() as u16).to_be_bytes());
    b.extend(s.as_bytes());
    b
}

/// An AMF0 `connect` command padded past one 128-byte chunk.
fn connect_command() -> Vec<u8> {
    let mut b = amf_string("connect");
    b.push(0);
    b.extend(1.0f64.to_be_bytes());
    b.push(3);
    for (k, v) in [
        ("app", "live"),
        ("tcUrl", "rtmp://127.0.0.1/live"),
        ("flashVer", &"x".repeat(200)),
    ] {
        b.extend((k.len() as u16).to_be_bytes());
        b.extend(k.as_bytes());
        b.extend(amf_string(v));
    }
    b.extend([0, 0, 9]);
    b
}

/// Message A (`connect`, 2+ chunks) on chunk stream 3 is split by a complete, shorter message
/// B (Window Acknowledgement Size) on chunk stream 4 -- legal RTMP that a reader with one shared
/// reassembly buffer underflows on. A correct server reassembles A and answers it. Then
/// continuations on chunk streams never opened. Returns whether `connect` was answered.
fn interleaved_chunk_streams(port: u16) -> bool {
    let mut s = handshake(port);
    let a = connect_command();
    let mut b = fmt0(3, 0, a.len() as u32, 20, 0);
    b.extend(&a[..128]);
    b.extend(fmt0(4, 0, 4, 5, 0));
    b.extend(2_500_000u32.to_be_bytes());
    for piece in a[128..].chunks(128) {
        b.push(0xc3);
        b.extend(piece);
    }
    send(&mut s, &b);
    let answered = rtmp::reply_contains(&mut s, b"_result", Duration::from_secs(3));
    send(&mut s, &[0xc9, 0x01, 0x02, 0x03, 0x8a, 0, 0, 1, 0, 0, 1]);
    closed_within(&mut s, Duration::from_secs(3));
    answered
}

/// A Set Chunk Size protocol control message (type 1 on chunk stream 2).
fn set_chunk_size(size: u32) -> Vec<u8> {
    let mut b = fmt0(2, 0, 4, 1, 0);
    b.extend(size.to_be_bytes());
    b
}

/// A fmt0 header announcing a command of 0xFFFFFF bytes, a little payload, and a hang-up.
fn huge_length_header(port: u16) {
    let mut s = handshake(port);
    let mut b = fmt0(3, 0, 0xff_ffff, 20, 0);
    b.extend(amf_string("connect"));
    b.extend(vec![0x05; 1000]);
    send(&mut s, &b);
}

/// The largest chunk size the protocol allows (2^31-1), then a message that uses it.
fn max_chunk_size(port: u16) {
    let mut s = handshake(port);
    let mut b = set_chunk_size(0x7fff_ffff);
    b.extend(fmt0(6, 0, 0xff_ffff, 9, 1));
    b.extend(vec![0x17; 65_536]);
    send(&mut s, &b);
}

/// A video message just under 8 MiB, sent whole in 64 KiB chunks, with no publish before it.
fn large_message_without_publish(port: u16) {
    let mut s = handshake(port);
    let mut b = set_chunk_size(65_536);
    let len = (8 << 20) - 16;
    b.extend(fmt0(6, 0, len as u32, 9, 1));
    let body = vec![0x27u8; len];
    for (i, piece) in body.chunks(65_536).enumerate() {
        if i > 0 {
            b.push(0xc6);
        }
        b.extend(piece);
    }
    send(&mut s, &b);
    closed_within(&mut s, Duration::from_secs(3));
}

/// A complete 16 MiB video message in 128-byte chunks.
fn sixteen_mib_message(port: u16) {
    let mut s = handshake(port);
    let len = 0xff_ffffusize;
    let mut b = fmt0(6, 0, len as u32, 9, 1);
    let mut sent = 0;
    while sent < len {
        let n = (len - sent).min(128);
        if sent > 0 {
            b.push(0xc6);
        }
        b.extend(std::iter::repeat_n(0x27u8, n));
        sent += n;
        if b.len() >= 1 << 20 {
            if s.write_all(&b).is_err() {
                return;
            }
            b.clear();
        }
    }
    send(&mut s, &b);
    closed_within(&mut s, Duration::from_secs(3));
}

fn garbage_without_handshake(port: u16) {
    let mut s = connect(port);
    send(&mut s, &XorShift(11).bytes(256 * 1024));
    closed_within(&mut s, Duration::from_secs(3));
}

fn garbage_after_handshake(port: u16) {
    let mut s = handshake(port);
    send(&mut s, &XorShift(13).bytes(256 * 1024));
    closed_within(&mut s, Duration::from_secs(3));
}

/// One hostile client, given the ingest port.
type Attack = fn(u16);

const ATTACKS: [(&str, Attack); 6] = [
    ("huge fmt0 length", huge_length_header),
    ("max chunk size", max_chunk_size),
    (
        "8 MiB message without publish",
        large_message_without_publish,
    ),
    ("16 MiB message", sixteen_mib_message),
    ("garbage without handshake", garbage_without_handshake),
    ("garbage after handshake", garbage_after_handshake),
];

#[test]
fn hostile_connections_do_not_disturb_a_recording() {
    let dir = Turn::shared().scratch();
    let mut rec = Recorder::start(dir.path(), &["--handshake-timeout", "2s"]);
    let secs = 16;
    let mut publisher = rec.publish_recording(dir.path(), "good", secs, (640, 360));

    // Stalls after C0 and half of C1: the server must drop it once the handshake times out.
    let mut stalled = connect(rec.port);
    send(&mut stalled, &[3u8; 700]);

    let port = rec.port;
    for round in 0..3 {
        let interleaved = std::thread::spawn(move || interleaved_chunk_streams(port));
        let threads: Vec<_> = ATTACKS
            .iter()
            .map(|&(name, attack)| (name, std::thread::spawn(move || attack(port))))
            .collect();
        let answered = interleaved
            .join()
            .unwrap_or_else(|_| panic!("attack interleaved (round {round}) panicked"));
        assert!(
            answered,
            "connect split by another chunk stream's message was not answered (round {round})"
        );
        for (name, t) in threads {
            // The attacks tolerate any server behaviour; a panic here is the harness's own.
            t.join()
                .unwrap_or_else(|_| panic!("attack {name} (round {round}) panicked"));
        }
        assert!(
            rec.exited().is_none(),
            "ingest exited during the attacks (round {round})"
        );
    }
    assert!(
        closed_within(&mut stalled, Duration::from_secs(5)),
        "a handshake that never finished was kept open past --handshake-timeout 2s"
    );

    publisher.wait_ok(Duration::from_secs(secs as u64 + 30));
    let chunks = rec.wait_chunks(2, Duration::from_secs(15));
    check_chunks_against_reference(&chunks, &publisher.reference, "live", "good");
    assert!(rec.exited().is_none(), "ingest exited");
    let peak = rec.peak_rss_kib();
    eprintln!("ingest peak RSS: {} MiB", peak / 1024);
    assert!(peak < 200 * 1024, "ingest peak RSS {} MiB", peak / 1024);
    // Nothing but the good stream was recorded.
    let all: Vec<String> = all_names(&rec.state)
        .into_iter()
        .filter(|n| n.ends_with(".flv"))
        .collect();
    assert_eq!(all.len(), 2, "files recorded: {all:?}");
}

/// The attack clients themselves work: against nginx-rtmp they complete the handshake, get the
/// interleaved `connect` answered, and deliver their bytes without the harness failing (nginx's own fate is not our concern).
#[test]
fn attack_clients_work_against_nginx_rtmp() {
    let dir = Turn::shared().scratch();
    let nginx = Nginx::start(dir.path(), None);
    let port = nginx.port;
    let answered = std::thread::spawn(move || interleaved_chunk_streams(port))
        .join()
        .expect("interleaved attack against nginx-rtmp");
    assert!(
        answered,
        "nginx-rtmp did not answer the interleaved connect"
    );
    for (name, attack) in ATTACKS {
        std::thread::spawn(move || attack(port))
            .join()
            .unwrap_or_else(|_| panic!("attack {name} failed against nginx-rtmp"));
    }
    drop(handshake(port));
}
