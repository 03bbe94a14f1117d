//! Hostile input: random and mutated-valid byte streams, fed in random splits. The connection
//! may refuse them (an error), but must never panic, and the memory it holds for partial
//! messages must stay under its bound after every feed.

use crate::support::rtmp;

use rtmp::*;
use rtmp_recorder::rtmp::{ServerConfig, ServerConnection};

/// Small limits so the bounds are reachable by random input.
fn config() -> ServerConfig {
    ServerConfig {
        max_message_size: 64 * 1024,
        max_chunk_streams: 16,
        ..ServerConfig::default()
    }
}

/// Two times the message limit (all partial messages together) plus one chunk header.
const BOUND: usize = 2 * 64 * 1024 + 18;

/// Feeds `input` in random pieces; stops at the first error like the ingest shell would.
fn feed_randomly(server: &mut ServerConnection, input: &[u8], rng: &mut Rng) -> bool {
    let mut events = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(3000));
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        let result = server.feed(piece, &mut events);
        assert!(
            server.bytes_buffered() <= BOUND,
            "{} bytes buffered",
            server.bytes_buffered()
        );
        let _ = server.take_output();
        for e in &events {
            if let rtmp_recorder::rtmp::Event::PublishRequested { stream_id, .. } = e {
                let _ = server.accept_publish(*stream_id);
            }
        }
        events.clear();
        if result.is_err() {
            return false;
        }
    }
    true
}

/// A server past the handshake, replaying one recorded client handshake (cheaper than a new one).
fn after_handshake(handshake: &[u8]) -> ServerConnection {
    let mut server = ServerConnection::new(config());
    server.feed(handshake, &mut Vec::new()).unwrap();
    assert!(server.is_handshake_done());
    server
}

fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next() as u8).collect()
}

/// A valid publishing session with interleaving, control messages and metadata.
fn valid_session() -> Vec<u8> {
    let mut v = publish_bytes("test");
    v.extend(message(
        5,
        0,
        18,
        1,
        &amf(&[
            s("@setDataFrame"),
            s("onMetaData"),
            obj(&[("width", n(640.0))]),
        ]),
        128,
    ));
    v.extend(chunk0(6, 100, 300, 9, 1, &[0x17; 128]));
    v.extend(chunk0(4, 90, 4, 8, 1, b"\xaf\x01ab"));
    v.extend(chunk3(6, None, &[0x01; 128]));
    v.extend(chunk1(4, 21, 4, 8, b"\xaf\x01cd"));
    v.extend(chunk3(6, None, &[0x02; 44]));
    v.extend(message(2, 0, 1, 0, &1000u32.to_be_bytes(), 128));
    v.extend(message(6, 0x00FF_FFFF, 9, 1, &[0x27; 2500], 1000));
    v.extend(message(2, 0, 4, 0, &[0, 6, 0, 0, 0, 9], 1000));
    v.extend(command(
        0,
        &[
            s("FCUnpublish"),
            n(8.0),
            rml_rtmp::rml_amf0::Amf0Value::Null,
            s("test"),
        ],
    ));
    v
}

#[test]
fn random_bytes_from_the_first_byte() {
    let mut rng = Rng(0x5EED_0001);
    for i in 0..1000 {
        let len = rng.below(6000);
        let mut input = random_bytes(&mut rng, len);
        if i % 2 == 0 && !input.is_empty() {
            input[0] = 3; // get past C0 into C1/C2 and beyond
        }
        feed_randomly(&mut ServerConnection::new(config()), &input, &mut rng);
    }
}

#[test]
fn handshake_then_garbage() {
    let mut rng = Rng(0x5EED_0002);
    let mut refused = 0;
    let (_, handshake) = handshaken_with_bytes(config());
    for _ in 0..1000 {
        let mut server = after_handshake(&handshake);
        let len = rng.below(20_000);
        let mut input = random_bytes(&mut rng, len);
        // Bias towards small chunk stream ids and short lengths half the time, to get deeper.
        if rng.below(2) == 0 {
            for b in input.iter_mut().step_by(7) {
                *b &= 0xC7;
            }
        }
        if !feed_randomly(&mut server, &input, &mut rng) {
            refused += 1;
        }
    }
    assert!(
        refused > 300,
        "garbage should mostly be refused, was refused {refused} times"
    );
}

#[test]
fn mutated_valid_sessions() {
    let valid = valid_session();
    let (_, handshake) = handshaken_with_bytes(config());
    // The unmutated session runs clean.
    assert!(feed_randomly(
        &mut handshaken(config()),
        &valid,
        &mut Rng(1)
    ));
    let mut rng = Rng(0x5EED_0003);
    let mut completed = 0;
    for _ in 0..2000 {
        let mut input = valid.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(input.len());
            match rng.below(4) {
                0 => input[at] = rng.next() as u8,
                1 => input[at] ^= 1 << rng.below(8),
                2 => input.insert(at, rng.next() as u8),
                _ => {
                    input.remove(at);
                }
            }
        }
        let mut server = after_handshake(&handshake);
        if feed_randomly(&mut server, &input, &mut rng) {
            completed += 1;
        }
    }
    // Some mutations only touch payload bytes, so a fair number of sessions still complete.
    assert!(completed > 100, "{completed}");
    // The raw handshake bytes mutated: refused or accepted, never a panic.
    for _ in 0..300 {
        let mut input = handshake.clone();
        let at = rng.below(input.len());
        input[at] ^= 1 << rng.below(8);
        input.extend_from_slice(&valid);
        feed_randomly(&mut ServerConnection::new(config()), &input, &mut rng);
    }
}

#[test]
fn huge_lengths_and_many_chunk_streams_stay_bounded() {
    let mut rng = Rng(7);
    // Largest 24-bit length on every chunk stream we may use, then payload trickling in.
    let mut server = handshaken(ServerConfig::default());
    let mut input = Vec::new();
    for csid in 3..40 {
        input.extend(chunk0(csid, 0, 0xFF_FFFF, 9, 1, &[]));
    }
    assert!(!feed_randomly(&mut server, &input, &mut rng));
    assert_eq!(server.bytes_buffered(), 0);

    // Legal lengths on many chunk streams: the total cap stops them, not the allocator.
    let mut server = handshaken(config());
    let mut input = message(2, 0, 1, 0, &60_000u32.to_be_bytes(), 128);
    for csid in 3..19 {
        input.extend(chunk0(csid, 0, 64 * 1024, 9, 1, &vec![0; 60_000]));
    }
    assert!(!feed_randomly(&mut server, &input, &mut rng));
}
