//! Whole sessions in memory. The peer is rml_rtmp's `ClientSession` (an independent client
//! implementation) or hand-built commands where a real client's exact sequence matters.

use crate::support::rtmp;

use bytes::Bytes;
use rml_rtmp::messages::{PeerBandwidthLimitType, RtmpMessage};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
    PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use rtmp::*;
use rtmp_recorder::rtmp::{Event, MediaKind, ServerConfig, ServerConnection};

struct Pair {
    server: ServerConnection,
    client: ClientSession,
    events: Vec<Event>,
    client_events: Vec<ClientSessionEvent>,
}

impl Pair {
    fn new() -> Pair {
        let server = handshaken(ServerConfig::default());
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some("rtmp://127.0.0.1/live".to_string());
        let (client, results) = ClientSession::new(config).unwrap();
        let mut pair = Pair {
            server,
            client,
            events: Vec::new(),
            client_events: Vec::new(),
        };
        pair.deliver(results);
        pair
    }

    /// Sends the client's outbound packets to the server and the server's replies back, until quiet.
    fn deliver(&mut self, results: Vec<ClientSessionResult>) {
        let mut pending = results;
        loop {
            for result in pending.drain(..) {
                match result {
                    ClientSessionResult::OutboundResponse(packet) => {
                        self.server.feed(&packet.bytes, &mut self.events).unwrap()
                    }
                    ClientSessionResult::RaisedEvent(event) => self.client_events.push(event),
                    ClientSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
            let out = self.server.take_output();
            if out.is_empty() {
                return;
            }
            pending = self.client.handle_input(&out).unwrap();
        }
    }

    fn send(&mut self, result: ClientSessionResult) {
        self.deliver(vec![result]);
    }
}

#[test]
fn client_session_connects_publishes_and_unpublishes() {
    let mut p = Pair::new();
    let r = p.client.request_connection("live".to_string()).unwrap();
    p.send(r);
    assert!(
        matches!(
            p.client_events.as_slice(),
            [ClientSessionEvent::ConnectionRequestAccepted]
        ),
        "{:?}",
        p.client_events
    );
    assert_eq!(
        p.events,
        vec![Event::Connected {
            app: "live".to_string(),
            tc_url: Some("rtmp://127.0.0.1/live".to_string())
        }]
    );

    let r = p
        .client
        .request_publishing("cam1?token=x".to_string(), PublishRequestType::Live)
        .unwrap();
    p.send(r);
    let Some(Event::PublishRequested {
        stream_id,
        name,
        publish_type,
    }) = p.events.last().cloned()
    else {
        panic!("{:?}", p.events)
    };
    assert_eq!(
        (name.as_str(), publish_type.as_str()),
        ("cam1?token=x", "live")
    );
    // Nothing is promised until the shell decides.
    assert_eq!(p.client_events.len(), 1);
    p.server.accept_publish(stream_id).unwrap();
    p.deliver(vec![]);
    assert!(
        matches!(
            p.client_events.last(),
            Some(ClientSessionEvent::PublishRequestAccepted)
        ),
        "{:?}",
        p.client_events
    );

    let mut metadata = StreamMetadata::new();
    metadata.video_width = Some(640);
    metadata.video_height = Some(360);
    let r = p.client.publish_metadata(&metadata).unwrap();
    p.send(r);
    let video = Bytes::from_static(&[0x17, 0x00, 0, 0, 0, 1, 0x64, 0, 0x1f]);
    let audio = Bytes::from_static(&[0xAF, 0x01, 0x21, 0x10]);
    let r = p
        .client
        .publish_video_data(video.clone(), RtmpTimestamp::new(0), false)
        .unwrap();
    p.send(r);
    let r = p
        .client
        .publish_audio_data(audio.clone(), RtmpTimestamp::new(21), false)
        .unwrap();
    p.send(r);
    let r = p
        .client
        .publish_video_data(video.clone(), RtmpTimestamp::new(33), false)
        .unwrap();
    p.send(r);
    let r = p.client.stop_publishing().unwrap();
    p.deliver(r);

    let tail = &p.events[2..];
    let Event::Metadata {
        stream_id: meta_stream,
        body,
    } = &tail[0]
    else {
        panic!("{tail:?}")
    };
    assert_eq!(*meta_stream, stream_id);
    // "@setDataFrame" is stripped: the body is an FLV script tag body.
    let values = rtmp_recorder::amf0::decode_all(body).unwrap();
    assert_eq!(values[0].as_str(), Some("onMetaData"));
    let props = values[1].properties().unwrap();
    assert_eq!(
        rtmp_recorder::amf0::get(props, "width").and_then(|v| v.as_f64()),
        Some(640.0)
    );
    assert_eq!(
        tail[1..].to_vec(),
        vec![
            Event::Media {
                stream_id,
                kind: MediaKind::Video,
                timestamp: 0,
                body: video.clone()
            },
            Event::Media {
                stream_id,
                kind: MediaKind::Audio,
                timestamp: 21,
                body: audio
            },
            Event::Media {
                stream_id,
                kind: MediaKind::Video,
                timestamp: 33,
                body: video
            },
            Event::Unpublished { stream_id },
        ]
    );
}

/// The commands FFmpeg/OBS send, hand-built, and the replies a strict client looks for.
#[test]
fn publisher_command_sequence_gets_every_reply() {
    let mut server = handshaken(ServerConfig::default());
    let mut replies = ReplyReader::default();
    let mut events = Vec::new();
    let connect = command(
        0,
        &[
            s("connect"),
            n(1.0),
            obj(&[
                ("app", s("live")),
                ("objectEncoding", n(3.0)),
                ("tcUrl", s("rtmp://h/live")),
            ]),
        ],
    );
    server.feed(&connect, &mut events).unwrap();
    let got = replies.read(&server.take_output());
    assert!(
        matches!(
            got[0].1,
            RtmpMessage::WindowAcknowledgement { size: 2_500_000 }
        ),
        "{got:?}"
    );
    assert!(matches!(
        got[1].1,
        RtmpMessage::SetPeerBandwidth {
            size: 2_500_000,
            limit_type: PeerBandwidthLimitType::Dynamic
        }
    ));
    assert!(matches!(got[2].1, RtmpMessage::SetChunkSize { size: 4096 }));
    let RtmpMessage::Amf0Command {
        command_name,
        transaction_id,
        additional_arguments,
        ..
    } = &got[3].1
    else {
        panic!()
    };
    assert_eq!((command_name.as_str(), *transaction_id), ("_result", 1.0));
    let Amf0Value::Object(info) = &additional_arguments[0] else {
        panic!()
    };
    assert_eq!(info.get("code"), Some(&s("NetConnection.Connect.Success")));
    assert_eq!(
        info.get("objectEncoding"),
        Some(&n(3.0)),
        "objectEncoding echoed"
    );

    let mut bytes = command(0, &[s("releaseStream"), n(2.0), Amf0Value::Null, s("key")]);
    bytes.extend(command(
        0,
        &[s("FCPublish"), n(3.0), Amf0Value::Null, s("key")],
    ));
    bytes.extend(command(0, &[s("createStream"), n(4.0), Amf0Value::Null]));
    bytes.extend(command(0, &[s("_checkbw"), n(5.0), Amf0Value::Null]));
    bytes.extend(command(0, &[s("someVendorThing"), n(0.0), Amf0Value::Null]));
    server.feed(&bytes, &mut events).unwrap();
    let got = replies.read(&server.take_output());
    let summary: Vec<_> = got
        .iter()
        .map(|(_, m)| match m {
            RtmpMessage::Amf0Command {
                command_name,
                transaction_id,
                additional_arguments,
                ..
            } => (
                command_name.clone(),
                *transaction_id,
                additional_arguments.first().cloned(),
            ),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        summary[0],
        ("_result".to_string(), 2.0, Some(Amf0Value::Undefined))
    );
    assert_eq!(summary[1].0, "onFCPublish");
    assert_eq!(
        summary[2],
        ("_result".to_string(), 3.0, Some(Amf0Value::Undefined))
    );
    assert_eq!(summary[3], ("_result".to_string(), 4.0, Some(n(1.0))));
    assert_eq!(summary[4].0, "_error");
    assert_eq!(summary[4].1, 5.0);
    assert_eq!(
        summary.len(),
        5,
        "no reply to a notification (transaction 0)"
    );

    server
        .feed(
            &command(
                1,
                &[s("publish"), n(6.0), Amf0Value::Null, s("key"), s("live")],
            ),
            &mut events,
        )
        .unwrap();
    assert!(
        server.take_output().is_empty(),
        "no answer before the shell decides"
    );
    server
        .reject_publish(1, "NetStream.Publish.BadName", "unknown stream key")
        .unwrap();
    let got = replies.read(&server.take_output());
    assert_eq!(got[0].0, 1, "onStatus on the publishing stream");
    assert_eq!(
        info_code(&got[0].1),
        Some((
            "onStatus".to_string(),
            "NetStream.Publish.BadName".to_string()
        ))
    );
    // A rejected stream's media goes nowhere, and accepting it now is a caller error.
    server
        .feed(&message(6, 0, 9, 1, b"\x17\x01data", 128), &mut events)
        .unwrap();
    assert!(server.accept_publish(1).is_err());

    // Publish again, accept, media, then FCUnpublish + deleteStream (FFmpeg's order): one Unpublished.
    server
        .feed(
            &command(
                1,
                &[s("publish"), n(7.0), Amf0Value::Null, s("key"), s("live")],
            ),
            &mut events,
        )
        .unwrap();
    server.accept_publish(1).unwrap();
    let got = replies.read(&server.take_output());
    assert!(got.iter().any(|(sid, m)| *sid == 1
        && info_code(m) == Some(("onStatus".into(), "NetStream.Publish.Start".into()))));
    let mut bytes = message(6, 0, 9, 1, b"\x17\x01data", 128);
    bytes.extend(command(
        0,
        &[s("FCUnpublish"), n(8.0), Amf0Value::Null, s("key")],
    ));
    bytes.extend(command(
        0,
        &[s("deleteStream"), n(9.0), Amf0Value::Null, n(1.0)],
    ));
    server.feed(&bytes, &mut events).unwrap();
    let kinds: Vec<_> = events
        .iter()
        .map(|e| match e {
            Event::Connected { .. } => "connected",
            Event::PublishRequested { .. } => "publish",
            Event::Media { .. } => "media",
            Event::Metadata { .. } => "metadata",
            Event::Unpublished { .. } => "unpublished",
        })
        .collect();
    assert_eq!(
        kinds,
        vec!["connected", "publish", "publish", "media", "unpublished"]
    );
}

#[test]
fn play_is_refused_and_amf3_variants_are_understood() {
    let mut server = handshaken(ServerConfig::default());
    let mut replies = ReplyReader::default();
    let mut events = Vec::new();
    // connect as an AMF3 command message (type 17: a format byte, then AMF0).
    let mut payload = vec![0u8];
    payload.extend(amf(&[s("connect"), n(1.0), obj(&[("app", s("app3"))])]));
    server
        .feed(&message(3, 0, 17, 0, &payload, 128), &mut events)
        .unwrap();
    assert_eq!(
        events,
        vec![Event::Connected {
            app: "app3".into(),
            tc_url: None
        }]
    );
    replies.read(&server.take_output());

    server
        .feed(
            &command(0, &[s("createStream"), n(2.0), Amf0Value::Null]),
            &mut events,
        )
        .unwrap();
    server
        .feed(
            &command(1, &[s("play"), n(0.0), Amf0Value::Null, s("x")]),
            &mut events,
        )
        .unwrap();
    let got = replies.read(&server.take_output());
    assert_eq!(
        info_code(&got[1].1),
        Some(("onStatus".to_string(), "NetStream.Play.Failed".to_string()))
    );

    // Metadata as a direct onMetaData data message and as type 15 with a format byte.
    server
        .feed(
            &command(1, &[s("publish"), n(3.0), Amf0Value::Null, s("k")]),
            &mut events,
        )
        .unwrap();
    server.accept_publish(1).unwrap();
    let meta = amf(&[s("onMetaData"), obj(&[("width", n(1280.0))])]);
    let mut amf3 = vec![0u8];
    amf3.extend_from_slice(&meta);
    let mut bytes = message(5, 0, 18, 1, &meta, 128);
    bytes.extend(message(5, 0, 15, 1, &amf3, 128));
    bytes.extend(message(
        5,
        0,
        18,
        1,
        &amf(&[s("onTextData"), obj(&[])]),
        128,
    ));
    server.feed(&bytes, &mut events).unwrap();
    let bodies: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::Metadata { body, .. } => Some(body.to_vec()),
            _ => None,
        })
        .collect();
    assert_eq!(bodies, vec![meta.clone(), meta]);
    // publish type defaults to "live" when omitted
    assert!(events.iter().any(
        |e| matches!(e, Event::PublishRequested { publish_type, .. } if publish_type == "live")
    ));
}

#[test]
fn aggregate_message_is_split_into_media() {
    let mut server = publishing_server(ServerConfig::default());
    let mut events = Vec::new();
    let mut agg = Vec::new();
    for (type_id, ts, body) in [
        (9u8, 1000u32, &b"\x17\x01v1"[..]),
        (8, 1010, b"\xaf\x01a"),
        (9, 1033, b"\x27\x01v2"),
    ] {
        agg.push(type_id);
        agg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        agg.extend_from_slice(&ts.to_be_bytes()[1..]);
        agg.push((ts >> 24) as u8);
        agg.extend_from_slice(&[0, 0, 0]);
        agg.extend_from_slice(body);
        agg.extend_from_slice(&(11 + body.len() as u32).to_be_bytes());
    }
    server
        .feed(&message(6, 5000, 22, 1, &agg, 128), &mut events)
        .unwrap();
    let got: Vec<_> = events
        .iter()
        .map(|e| match e {
            Event::Media {
                kind,
                timestamp,
                body,
                ..
            } => (*kind, *timestamp, body.to_vec()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (MediaKind::Video, 5000, b"\x17\x01v1".to_vec()),
            (MediaKind::Audio, 5010, b"\xaf\x01a".to_vec()),
            (MediaKind::Video, 5033, b"\x27\x01v2".to_vec()),
        ]
    );
}

/// A publish withdrawn in the same input that asked for it (FCUnpublish, closeStream or
/// deleteStream right behind it) is taken back: no PublishRequested for the shell to answer, no
/// Unpublished, nothing answered, and the session goes on (the same stream may publish again).
/// Withdrawn in a later input, after the answer, it is an ordinary Unpublished. (Found by the
/// rtmp_session fuzz target: accepting the withdrawn request failed the connection.)
#[test]
fn a_publish_withdrawn_before_it_was_answered_is_taken_back() {
    let withdrawals: [(&str, Vec<u8>); 3] = [
        (
            "FCUnpublish",
            command(1, &[s("FCUnpublish"), n(4.0), Amf0Value::Null, s("cam")]),
        ),
        (
            "closeStream",
            command(1, &[s("closeStream"), n(4.0), Amf0Value::Null]),
        ),
        (
            "deleteStream",
            command(0, &[s("deleteStream"), n(4.0), Amf0Value::Null, n(1.0)]),
        ),
    ];
    for (how, withdraw) in withdrawals {
        let mut server = handshaken(ServerConfig::default());
        let mut input = publish_bytes("cam");
        input.extend(&withdraw);
        let mut events = Vec::new();
        server.feed(&input, &mut events).unwrap();
        assert!(
            !events.iter().any(|e| matches!(
                e,
                Event::PublishRequested { .. } | Event::Unpublished { .. }
            )),
            "{how}: {events:?}"
        );
        assert!(
            server.accept_publish(1).is_err(),
            "{how}: nothing left to answer"
        );
        // Asked again, on a stream made again where deleteStream removed it.
        events.clear();
        let mut again = command(0, &[s("createStream"), n(5.0), Amf0Value::Null]);
        again.extend(command(
            1,
            &[s("publish"), n(6.0), Amf0Value::Null, s("cam"), s("live")],
        ));
        server.feed(&again, &mut events).unwrap();
        assert!(publish_requested(&events, 1), "{how}: {events:?}");
        server.accept_publish(1).unwrap();
        // Withdrawn after the answer: an ordinary end of publishing.
        events.clear();
        server.feed(&withdraw, &mut events).unwrap();
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Unpublished { stream_id: 1 })),
            "{how}: {events:?}"
        );
    }
}

/// A publish on stream 1 made without createStream, then createStream: the new stream gets
/// another id, and the publish is still there to accept. (Found by the rtmp_session fuzz target:
/// createStream handed out 1 again, which wiped the pending publish.)
#[test]
fn create_stream_never_hands_out_a_stream_a_publish_made() {
    let mut server = handshaken(ServerConfig::default());
    let mut input = command(
        0,
        &[
            s("connect"),
            n(1.0),
            obj(&[("app", s("live")), ("tcUrl", s("rtmp://127.0.0.1/live"))]),
        ],
    );
    input.extend(command(
        1,
        &[s("publish"), n(2.0), Amf0Value::Null, s("cam"), s("live")],
    ));
    input.extend(command(0, &[s("createStream"), n(3.0), Amf0Value::Null]));
    let mut events = Vec::new();
    server.feed(&input, &mut events).unwrap();
    let mut replies = ReplyReader::default();
    let created: Vec<f64> = replies
        .read(&server.take_output())
        .into_iter()
        .filter_map(|(_, m)| match m {
            RtmpMessage::Amf0Command {
                transaction_id: 3.0,
                additional_arguments,
                ..
            } => match additional_arguments.first() {
                Some(Amf0Value::Number(id)) => Some(*id),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(created, vec![2.0], "createStream's answer");
    assert!(publish_requested(&events, 1), "{events:?}");
    server.accept_publish(1).unwrap();
}
