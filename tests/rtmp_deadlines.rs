//! The connection's deadlines on bytes and a fake clock: the time passed in is all it knows, so
//! the handshake and idle timeouts are tested to the millisecond without waiting.

use crate::support::rtmp;

use std::time::Duration;

use rtmp::*;
use rtmp_recorder::rtmp::{Event, ProtocolError, ServerConfig, ServerConnection};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> ServerConfig {
    ServerConfig {
        handshake_timeout: ms(10_000),
        idle_timeout: ms(30_000),
        ..ServerConfig::default()
    }
}

/// A video message on stream 1 (an AVC keyframe NALU; content does not matter here).
fn video(ts: u32) -> Vec<u8> {
    message(6, ts, 9, 1, &[0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65], 128)
}

/// A handshaken connection whose peer asked, at `at`, to publish `name`; and the events so far.
fn asked_to_publish(name: &str, at: u64) -> (ServerConnection, Vec<Event>) {
    let mut server = handshaken(config());
    let mut events = Vec::new();
    server
        .handle_input(ms(at), &publish_bytes(name), &mut events)
        .unwrap();
    (server, events)
}

/// `at` is the next deadline, and when it comes the connection fails with an error that
/// `expected` accepts.
fn fails_at(server: &mut ServerConnection, at: u64, expected: fn(&ProtocolError) -> bool) {
    assert_eq!(server.poll_timeout(), ms(at));
    let e = server.handle_timeout(ms(at)).unwrap_err();
    assert!(expected(&e), "{e:?}");
}

fn handshake_timeout(e: &ProtocolError) -> bool {
    matches!(e, ProtocolError::HandshakeTimeout { .. })
}

#[test]
fn connect_to_publish_must_fit_the_handshake_timeout() {
    let mut server = handshaken(config());
    assert_eq!(server.poll_timeout(), ms(10_000));
    // A trickle of bytes does not extend the deadline: the peer is connected, not publishing.
    let mut events = Vec::new();
    for (i, byte) in publish_bytes("cam").iter().enumerate().take(50) {
        server
            .handle_input(ms(100 * i as u64), &[*byte], &mut events)
            .unwrap();
        assert_eq!(server.poll_timeout(), ms(10_000));
    }
    // Waking early changes nothing.
    server.handle_timeout(ms(9_999)).unwrap();
    assert_eq!(
        server.handle_timeout(ms(10_000)),
        Err(ProtocolError::HandshakeTimeout {
            timeout: ms(10_000)
        })
    );
    // The connection is dead: input gets the same error.
    assert!(matches!(
        server.handle_input(ms(10_001), &video(0), &mut events),
        Err(ProtocolError::HandshakeTimeout { .. })
    ));
}

#[test]
fn a_stalled_handshake_times_out() {
    let mut server = ServerConnection::new(config());
    let mut events = Vec::new();
    // Part of C0+C1, then nothing.
    let mut c0c1 = vec![3u8];
    c0c1.extend([0u8; 699]);
    server.handle_input(ms(5), &c0c1, &mut events).unwrap();
    assert!(!server.is_handshake_done());
    fails_at(&mut server, 10_000, handshake_timeout);
}

#[test]
fn a_refused_publisher_keeps_the_handshake_deadline() {
    let (mut server, mut events) = asked_to_publish("nope", 1_000);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::PublishRequested { .. }))
    );
    server
        .reject_publish(1, "NetStream.Publish.BadName", "not allowed")
        .unwrap();
    server
        .handle_input(ms(9_000), &video(0), &mut events)
        .unwrap();
    fails_at(&mut server, 10_000, handshake_timeout);
}

#[test]
fn once_publishing_each_silence_may_last_the_idle_timeout() {
    let (mut server, mut events) = asked_to_publish("cam", 2_000);
    server.accept_publish(1).unwrap();
    // Publishing: the handshake deadline no longer applies, silence is measured from the last input.
    assert_eq!(server.poll_timeout(), ms(32_000));
    server.handle_timeout(ms(10_000)).unwrap();
    for t in [5_000u64, 20_000, 45_000] {
        server
            .handle_input(ms(t), &video(t as u32), &mut events)
            .unwrap();
        assert_eq!(server.poll_timeout(), ms(t + 30_000));
    }
    assert!(
        events
            .iter()
            .filter(|e| matches!(e, Event::Media { .. }))
            .count()
            == 3,
        "{events:?}"
    );
    server.handle_timeout(ms(74_999)).unwrap();
    assert_eq!(
        server.handle_timeout(ms(75_000)),
        Err(ProtocolError::IdleTimeout {
            timeout: ms(30_000)
        })
    );
}

/// While the shell writes our replies, the peer must take them within the write timeout,
/// whatever the idle and handshake deadlines say; a finished write stops that clock.
#[test]
fn replies_the_peer_does_not_take_end_the_connection_after_the_write_timeout() {
    let config = ServerConfig {
        write_timeout: ms(3_000),
        ..config()
    };
    let mut server = publishing_server(config.clone());
    let mut events = Vec::new();
    server
        .handle_input(ms(1_000), &video(0), &mut events)
        .unwrap();
    assert_eq!(server.poll_timeout(), ms(31_000));
    // A write that completes in time: the idle deadline is back in charge.
    server.writing(ms(2_000));
    assert_eq!(server.poll_timeout(), ms(5_000));
    server.handle_timeout(ms(4_999)).unwrap();
    server.written();
    assert_eq!(server.poll_timeout(), ms(31_000));
    server.handle_timeout(ms(5_000)).unwrap();
    // A write the peer never drains, even while it keeps sending.
    server.writing(ms(6_000));
    server.writing(ms(7_000)); // a second call does not move the start
    server
        .handle_input(ms(8_000), &video(40), &mut events)
        .unwrap();
    assert_eq!(server.poll_timeout(), ms(9_000));
    assert_eq!(
        server.handle_timeout(ms(9_000)),
        Err(ProtocolError::WriteTimeout { timeout: ms(3_000) })
    );
    // Before the handshake too: the write deadline comes first when it is earlier.
    let mut fresh = ServerConnection::new(config);
    fresh.writing(ms(100));
    fails_at(&mut fresh, 3_100, |e| {
        matches!(e, ProtocolError::WriteTimeout { .. })
    });
}

/// Refusals by the shell (`reject_publish`) and by the connection itself (publish on stream
/// 0) count alike; the fifth fails the connection, with its refusal still queued for the peer.
#[test]
fn the_fifth_refused_publish_closes_the_connection() {
    let cases: [(&str, bool); 2] = [("refused by the shell", true), ("on stream 0", false)];
    for (what, by_shell) in cases {
        let (mut server, mut events) = asked_to_publish("first", 0);
        let mut result = Ok(());
        for attempt in 1..=5 {
            let stream = if by_shell { 1 } else { 0 };
            let null = rml_rtmp::rml_amf0::Amf0Value::Null;
            let bytes = command(stream, &[s("publish"), n(4.0), null, s("k"), s("live")]);
            // The first publish of the case is already in `events` for the shell.
            if attempt > 1 || !by_shell {
                result = server.handle_input(ms(attempt), &bytes, &mut events);
            }
            if by_shell {
                let requested = events
                    .drain(..)
                    .any(|e| matches!(e, Event::PublishRequested { .. }));
                assert!(requested, "{what}: attempt {attempt} reached the shell");
                result = server.reject_publish(1, "NetStream.Publish.BadName", "no");
            }
            if attempt < 5 {
                assert_eq!(result, Ok(()), "{what}: attempt {attempt}");
            }
        }
        assert_eq!(
            result,
            Err(ProtocolError::TooManyRefusedPublishes { count: 5, max: 5 }),
            "{what}"
        );
        let replies = ReplyReader::default().read(&server.take_output());
        let refusals = replies
            .iter()
            .filter(|(_, m)| {
                info_code(m).is_some_and(|(_, code)| code == "NetStream.Publish.BadName")
            })
            .count();
        assert_eq!(refusals, 5, "{what}: every refusal is answered");
        assert!(
            server.handle_input(ms(10), &video(0), &mut events).is_err(),
            "{what}"
        );
    }
}
