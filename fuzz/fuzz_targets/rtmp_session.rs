//! A publisher's bytes (after the handshake, or with it) through the server session (chunk reader,
//! commands, AMF0), every publish accepted, its media through the chunk splitter into FLV
//! chunks written in memory. Checks that every chunk reads back whole.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp_recorder::chunk::{Action, Message, SplitConfig, Splitter};
use rtmp_recorder::flv::{FlvReader, FlvWriter, TagType};
use rtmp_recorder::rtmp::{Event, MediaKind, ServerConfig, ServerConnection};

fuzz_target!(|data: &[u8]| {
    // The first byte picks how the input is split into reads: the session must not care.
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split).max(1) * 7;
    let mut events = Vec::new();
    // Split 0 (one input in 256): the input starts with the handshake, which is costly per run
    // (HMAC digests); every other input starts right after it.
    let mut server = if split == 0 {
        ServerConnection::new(ServerConfig::default())
    } else {
        ServerConnection::after_handshake(ServerConfig::default())
    };
    let piece = if split == 0 { 4096 } else { piece };

    let mut splitter = Splitter::new(SplitConfig::new(2_000, 1 << 20));
    let mut chunk: Option<FlvWriter<Vec<u8>>> = None;
    for bytes in data.chunks(piece) {
        if server.feed(bytes, &mut events).is_err() {
            break;
        }
        for event in events.drain(..) {
            let message_owner;
            let message = match &event {
                Event::PublishRequested { stream_id, .. } => {
                    server
                        .accept_publish(*stream_id)
                        .expect("a requested stream");
                    continue;
                }
                Event::Metadata { body, .. } => {
                    message_owner = body.clone();
                    Message::Metadata(&message_owner)
                }
                Event::Media {
                    kind,
                    timestamp,
                    body,
                    ..
                } => {
                    message_owner = body.clone();
                    match kind {
                        MediaKind::Audio => Message::Audio {
                            timestamp: *timestamp,
                            body: &message_owner,
                        },
                        MediaKind::Video => Message::Video {
                            timestamp: *timestamp,
                            body: &message_owner,
                        },
                    }
                }
                Event::Connected { .. } | Event::Unpublished { .. } => continue,
            };
            let tag_type = match message {
                Message::Metadata(_) => TagType::Script,
                Message::Audio { .. } => TagType::Audio,
                Message::Video { .. } => TagType::Video,
            };
            let body = match message {
                Message::Metadata(b)
                | Message::Audio { body: b, .. }
                | Message::Video { body: b, .. } => b,
            };
            match splitter.push(&message) {
                Action::Remember => {}
                Action::Write { timestamp } => {
                    let w = chunk.as_mut().expect("a write comes after a chunk start");
                    w.write_tag(tag_type, timestamp, body).unwrap();
                }
                Action::StartChunk { timestamp, .. } => {
                    if let Some(done) = chunk.take() {
                        reads_back(done.into_inner());
                    }
                    let mut w = FlvWriter::new(Vec::new(), true, true).unwrap();
                    for header in splitter.header_tags() {
                        w.write_tag(header.tag_type, 0, header.body).unwrap();
                    }
                    w.write_tag(tag_type, timestamp, body).unwrap();
                    chunk = Some(w);
                }
            }
        }
        let _ = server.take_output();
    }
    if let Some(done) = chunk.take() {
        reads_back(done.into_inner());
    }
});

/// A chunk the recorder writes is whole: every tag reads back, none is torn.
fn reads_back(flv: Vec<u8>) {
    let len = flv.len() as u64;
    let mut reader = FlvReader::new(std::io::Cursor::new(flv)).expect("our FLV header");
    while reader.next_tag().expect("our own tags").is_some() {}
    assert_eq!(reader.torn_tail(), None);
    assert_eq!(reader.position(), len);
}
