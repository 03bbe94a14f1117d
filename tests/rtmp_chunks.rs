//! The chunk layer through a whole `ServerConnection`: interleaving, timestamps, protocol
//! control messages, limits. Inputs are hand-built per the RTMP 1.0 spec, section 5.3/5.4.

use crate::support::rtmp;

use rml_rtmp::messages::{RtmpMessage, UserControlEventType};
use rml_rtmp::sessions::{ServerSession, ServerSessionConfig};
use rtmp::*;
use rtmp_recorder::rtmp::{Event, MediaKind, ProtocolError, ServerConfig};

fn media(events: &[Event]) -> Vec<(MediaKind, u64, Vec<u8>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Media {
                kind,
                timestamp,
                body,
                ..
            } => Some((*kind, *timestamp, body.to_vec())),
            _ => None,
        })
        .collect()
}

/// A 300-byte video message on chunk stream 6 with audio messages on chunk stream 4 between its
/// chunks (allowed by spec 5.3.2.2; what OBS/ffmpeg do when audio is due mid-frame).
fn interleaved_bytes(video: &[u8]) -> Vec<u8> {
    let mut bytes = chunk0(6, 100, 300, 9, 1, &video[..128]);
    bytes.extend(chunk0(4, 90, 4, 8, 1, b"aud1"));
    bytes.extend(chunk3(6, None, &video[128..256]));
    bytes.extend(chunk1(4, 21, 4, 8, b"aud2"));
    bytes.extend(chunk3(6, None, &video[256..]));
    bytes
}

#[test]
fn interleaved_chunk_streams_are_reassembled_separately() {
    let video: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let mut server = publishing_server(ServerConfig::default());
    let mut events = Vec::new();
    server
        .feed(&interleaved_bytes(&video), &mut events)
        .unwrap();
    assert_eq!(
        media(&events),
        vec![
            (MediaKind::Audio, 90, b"aud1".to_vec()),
            (MediaKind::Audio, 111, b"aud2".to_vec()),
            (MediaKind::Video, 100, video.clone()),
        ]
    );
    assert_eq!(server.bytes_buffered(), 0);
}

/// Why the chunk layer is ours: rml_rtmp 0.8's ServerSession shares one payload buffer across
/// chunk streams and panics on the same, spec-conforming bytes.
#[test]
fn rml_rtmp_server_session_panics_on_interleaved_chunks() {
    let video: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let mut input = publish_bytes("test");
    input.extend(interleaved_bytes(&video));
    let outcome = std::panic::catch_unwind(move || {
        let (mut session, _) = ServerSession::new(ServerSessionConfig::new()).unwrap();
        session.handle_input(&input).map(|_| ())
    });
    assert!(
        outcome.is_err(),
        "rml_rtmp handled interleaved chunks; its replacement may be reconsidered: {outcome:?}"
    );
}

#[test]
fn timestamps_unwrap_to_64_bits_per_message_stream() {
    let mut server = publishing_server(ServerConfig::default());
    let mut events = Vec::new();
    let mut bytes = chunk0(6, 0xFFFF_FF00, 1, 9, 1, b"a"); // extended timestamp
    bytes.extend(chunk1(6, 0x80, 1, 9, b"b")); // 0xFFFF_FF80
    bytes.extend(chunk1(6, 0x100, 1, 9, b"c")); // wraps to 0x80
    bytes.extend(chunk0(4, 0xFFFF_FFF0, 1, 8, 1, b"d")); // late audio from before the wrap
    bytes.extend(chunk1(6, 0x7FFF_0000, 1, 9, b"e")); // big forward step, same epoch
    bytes.extend(chunk1(6, 0x7000_0000, 1, 9, b"f")); // 0xEFFF_0080
    bytes.extend(chunk1(6, 0x2000_0000, 1, 9, b"g")); // wraps again
    server.feed(&bytes, &mut events).unwrap();
    let ts: Vec<u64> = media(&events).iter().map(|m| m.1).collect();
    assert_eq!(
        ts,
        vec![
            0xFFFF_FF00,
            0xFFFF_FF80,
            0x1_0000_0080,
            0xFFFF_FFF0,
            0x1_7FFF_0080,
            0x1_EFFF_0080,
            0x2_0FFF_0080
        ]
    );
}

#[test]
fn set_chunk_size_from_peer_applies_mid_stream() {
    let mut server = publishing_server(ServerConfig::default());
    let mut events = Vec::new();
    let frame = vec![0x17u8; 3000];
    let mut bytes = message(6, 0, 9, 1, &frame, 128);
    bytes.extend(message(2, 0, 1, 0, &4096u32.to_be_bytes(), 128));
    bytes.extend(chunk0(6, 33, 3000, 9, 1, &frame)); // one chunk now
    server.feed(&bytes, &mut events).unwrap();
    let m = media(&events);
    assert_eq!(m.len(), 2);
    assert!(m.iter().all(|(_, _, body)| body == &frame));

    for bad in [0u32, 16 * 1024 * 1024 + 1] {
        let mut server = publishing_server(ServerConfig::default());
        let err = server
            .feed(&message(2, 0, 1, 0, &bad.to_be_bytes(), 128), &mut events)
            .unwrap_err();
        assert!(
            matches!(err, ProtocolError::InvalidChunkSize { size, .. } if size == bad),
            "{err}"
        );
        // A dead connection keeps refusing.
        assert_eq!(server.feed(b"x", &mut events).unwrap_err(), err);
    }
}

#[test]
fn abort_message_drops_the_partial_message() {
    let mut server = publishing_server(ServerConfig::default());
    let mut events = Vec::new();
    let mut bytes = chunk0(6, 0, 300, 9, 1, &[1; 128]);
    bytes.extend(message(2, 0, 2, 0, &6u32.to_be_bytes(), 128));
    bytes.extend(chunk0(6, 40, 3, 9, 1, b"new"));
    server.feed(&bytes, &mut events).unwrap();
    assert_eq!(
        media(&events),
        vec![(MediaKind::Video, 40, b"new".to_vec())]
    );
}

#[test]
fn huge_message_length_is_refused_without_allocating() {
    let mut server = publishing_server(ServerConfig::default());
    let mut events = Vec::new();
    // 16 MiB - 1 (the largest 24-bit length) against the 8 MiB default.
    let err = server
        .feed(&chunk0(6, 0, 0xFF_FFFF, 9, 1, &[0; 64]), &mut events)
        .unwrap_err();
    assert_eq!(
        err,
        ProtocolError::MessageTooLarge {
            csid: 6,
            type_id: 9,
            length: 0xFF_FFFF,
            max: 8 << 20
        }
    );
    assert_eq!(server.bytes_buffered(), 0);

    // A legal 8 MiB message arriving slowly holds only what has arrived (plus growth slack).
    let mut server = publishing_server(ServerConfig::default());
    server
        .feed(&chunk0(6, 0, 8 << 20, 9, 1, &[0; 128]), &mut events)
        .unwrap();
    assert!(
        server.bytes_buffered() < 8192,
        "{}",
        server.bytes_buffered()
    );
}

#[test]
fn byte_at_a_time_equals_one_feed() {
    let video: Vec<u8> = (0..300u32).map(|i| (i % 251) as u8).collect();
    let (_, handshake) = handshaken_with_bytes(ServerConfig::default());
    let mut session = publish_bytes("test");
    session.extend(interleaved_bytes(&video));
    session.extend(message(2, 0, 1, 0, &1000u32.to_be_bytes(), 128));
    session.extend(message(6, 0x0123_4567, 9, 1, &vec![9; 2500], 1000));

    let run = |split: usize| {
        let mut server = rtmp_recorder::rtmp::ServerConnection::new(ServerConfig::default());
        let mut events = Vec::new();
        let mut all = handshake.clone();
        all.extend_from_slice(&session);
        let mut out = 0;
        for piece in all.chunks(split) {
            server.feed(piece, &mut events).unwrap();
            out += server.take_output().len();
            // accept as soon as asked, like the ingest shell
            if let Some(Event::PublishRequested { stream_id, .. }) = events.last() {
                server.accept_publish(*stream_id).unwrap();
            }
        }
        (events, out)
    };
    let (whole, _) = run(usize::MAX);
    let (single, _) = run(1);
    let (odd, _) = run(7);
    assert_eq!(media(&whole).len(), 4);
    assert_eq!(single, whole);
    assert_eq!(odd, whole);
}

#[test]
fn ping_is_answered_and_bytes_acknowledged() {
    let config = ServerConfig {
        window_ack_size: 5000,
        ..ServerConfig::default()
    };
    let mut server = publishing_server(config);
    let mut replies = ReplyReader::default();
    let mut events = Vec::new();
    let mut ping = 6u16.to_be_bytes().to_vec();
    ping.extend_from_slice(&1234u32.to_be_bytes());
    server
        .feed(&message(2, 0, 4, 0, &ping, 128), &mut events)
        .unwrap();
    // The server's earlier output (connect replies) set the chunk size the reader needs.
    let got = replies.read(&server.take_output());
    assert!(
        got.iter().any(|(_, m)| matches!(m, RtmpMessage::UserControl { event_type: UserControlEventType::PingResponse, timestamp: Some(t), .. } if t.value == 1234)),
        "{got:?}"
    );

    // Peer asks for an ack every 3000 bytes; we have received more than that already.
    server
        .feed(
            &message(2, 0, 5, 0, &3000u32.to_be_bytes(), 128),
            &mut events,
        )
        .unwrap();
    server
        .feed(&message(6, 0, 9, 1, &vec![0; 3500], 128), &mut events)
        .unwrap();
    let got = replies.read(&server.take_output());
    assert!(got.iter().any(|(_, m)| matches!(m, RtmpMessage::Acknowledgement { sequence_number } if *sequence_number > 3000)), "{got:?}");
}
