//! Shared helpers for the `rtmp_*` tests: a client handshake, hand-built chunks (RTMP 1.0 spec
//! section 5.3.1) and a decoder for the server's replies (rml_rtmp's, independent of ours).

use rml_rtmp::chunk_io::ChunkDeserializer;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::messages::RtmpMessage;
use rml_rtmp::rml_amf0::{self, Amf0Value};
use rtmp_recorder::rtmp::{Event, ServerConfig, ServerConnection};

/// Runs a client handshake against a new server; returns the server ready for chunks.
pub fn handshaken(config: ServerConfig) -> ServerConnection {
    let (server, _) = handshaken_with_bytes(config);
    server
}

/// Like `handshaken`, also returning the client's handshake bytes (C0+C1+C2).
pub fn handshaken_with_bytes(config: ServerConfig) -> (ServerConnection, Vec<u8>) {
    let mut server = ServerConnection::new(config);
    let mut client = Handshake::new(PeerType::Client);
    let c0c1 = client.generate_outbound_p0_and_p1().unwrap();
    let mut events = Vec::new();
    server.feed(&c0c1, &mut events).unwrap();
    let s0s1s2 = server.take_output();
    assert_eq!(s0s1s2.len(), 1 + 1536 + 1536);
    let c2 = match client.process_bytes(&s0s1s2).unwrap() {
        HandshakeProcessResult::Completed { response_bytes, .. } => response_bytes,
        other => panic!("client handshake not complete: {other:?}"),
    };
    assert!(!server.is_handshake_done());
    server.feed(&c2, &mut events).unwrap();
    assert!(server.is_handshake_done());
    assert!(events.is_empty());
    let mut all = c0c1;
    all.extend_from_slice(&c2);
    (server, all)
}

pub fn basic(fmt: u8, csid: u32) -> Vec<u8> {
    let f = fmt << 6;
    match csid {
        2..=63 => vec![f | csid as u8],
        64..=319 => vec![f, (csid - 64) as u8],
        _ => vec![f | 1, ((csid - 64) & 0xFF) as u8, ((csid - 64) >> 8) as u8],
    }
}

fn ts_field(ts: u32) -> (Vec<u8>, Vec<u8>) {
    if ts >= 0xFF_FFFF {
        (vec![0xFF; 3], ts.to_be_bytes().to_vec())
    } else {
        (ts.to_be_bytes()[1..].to_vec(), vec![])
    }
}

pub fn chunk0(csid: u32, ts: u32, len: u32, type_id: u8, stream_id: u32, data: &[u8]) -> Vec<u8> {
    let (field, ext) = ts_field(ts);
    let mut v = basic(0, csid);
    v.extend(field);
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend_from_slice(&stream_id.to_le_bytes());
    v.extend(ext);
    v.extend_from_slice(data);
    v
}

pub fn chunk1(csid: u32, delta: u32, len: u32, type_id: u8, data: &[u8]) -> Vec<u8> {
    let (field, ext) = ts_field(delta);
    let mut v = basic(1, csid);
    v.extend(field);
    v.extend_from_slice(&len.to_be_bytes()[1..]);
    v.push(type_id);
    v.extend(ext);
    v.extend_from_slice(data);
    v
}

pub fn chunk3(csid: u32, ext: Option<u32>, data: &[u8]) -> Vec<u8> {
    let mut v = basic(3, csid);
    if let Some(e) = ext {
        v.extend_from_slice(&e.to_be_bytes());
    }
    v.extend_from_slice(data);
    v
}

/// A whole message as a type 0 chunk plus type 3 continuations of `chunk_size`.
pub fn message(
    csid: u32,
    ts: u32,
    type_id: u8,
    stream_id: u32,
    payload: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    let ext = (ts >= 0xFF_FFFF).then_some(ts);
    let mut parts = payload.chunks(chunk_size);
    let mut v = chunk0(
        csid,
        ts,
        payload.len() as u32,
        type_id,
        stream_id,
        parts.next().unwrap_or(&[]),
    );
    for part in parts {
        v.extend(chunk3(csid, ext, part));
    }
    v
}

pub fn amf(values: &[Amf0Value]) -> Vec<u8> {
    rml_amf0::serialize(&values.to_vec()).unwrap()
}

pub fn s(v: &str) -> Amf0Value {
    Amf0Value::Utf8String(v.to_string())
}

pub fn n(v: f64) -> Amf0Value {
    Amf0Value::Number(v)
}

pub fn obj(pairs: &[(&str, Amf0Value)]) -> Amf0Value {
    Amf0Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    )
}

/// An AMF0 command message (type 20) on chunk stream 3.
pub fn command(stream_id: u32, values: &[Amf0Value]) -> Vec<u8> {
    message(3, 0, 20, stream_id, &amf(values), 128)
}

/// connect, createStream and publish "name" on stream 1, as hand-built chunks.
pub fn publish_bytes(name: &str) -> Vec<u8> {
    let mut v = command(
        0,
        &[
            s("connect"),
            n(1.0),
            obj(&[
                ("app", s("live")),
                ("tcUrl", s("rtmp://127.0.0.1/live")),
                ("objectEncoding", n(0.0)),
            ]),
        ],
    );
    v.extend(command(0, &[s("createStream"), n(2.0), Amf0Value::Null]));
    v.extend(command(
        1,
        &[s("publish"), n(3.0), Amf0Value::Null, s(name), s("live")],
    ));
    v
}

/// Handshake, connect, createStream, publish, accept: a server that forwards media on stream 1.
pub fn publishing_server(config: ServerConfig) -> ServerConnection {
    let mut server = handshaken(config);
    let mut events = Vec::new();
    server.feed(&publish_bytes("test"), &mut events).unwrap();
    assert!(publish_requested(&events, 1), "{events:?}");
    server.accept_publish(1).unwrap();
    server.take_output();
    server
}

/// Whether `events` ask the shell to answer a publish on `stream_id`.
pub fn publish_requested(events: &[Event], stream_id: u32) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::PublishRequested { stream_id: id, .. } if *id == stream_id))
}

/// Decodes what the server sent, as a client would (rml_rtmp's deserializer).
pub struct ReplyReader {
    chunks: ChunkDeserializer,
}

impl Default for ReplyReader {
    fn default() -> Self {
        ReplyReader {
            chunks: ChunkDeserializer::new(),
        }
    }
}

impl ReplyReader {
    /// `(message stream id, message)` for every reply in `bytes`.
    pub fn read(&mut self, bytes: &[u8]) -> Vec<(u32, RtmpMessage)> {
        let mut out = Vec::new();
        let mut input = bytes;
        while let Some(payload) = self.chunks.get_next_message(input).unwrap() {
            input = &[];
            let msg = payload.to_rtmp_message().unwrap();
            if let RtmpMessage::SetChunkSize { size } = msg {
                self.chunks.set_max_chunk_size(size as usize).unwrap();
            }
            out.push((payload.message_stream_id, msg));
        }
        out
    }
}

/// The `code` of an onStatus / _result info object in a command reply.
pub fn info_code(msg: &RtmpMessage) -> Option<(String, String)> {
    if let RtmpMessage::Amf0Command {
        command_name,
        additional_arguments,
        ..
    } = msg
    {
        for arg in additional_arguments {
            if let Amf0Value::Object(props) = arg
                && let Some(Amf0Value::Utf8String(code)) = props.get("code")
            {
                return Some((command_name.clone(), code.clone()));
            }
        }
    }
    None
}

/// Deterministic xorshift64* so the hostile-input tests replay exactly.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What one real client connection produced.
pub struct Served {
    pub events: Vec<Event>,
    pub error: Option<rtmp_recorder::rtmp::ProtocolError>,
    pub max_buffered: usize,
    pub bytes_in: usize,
}

/// Accepts one connection on `listener` and drives a `ServerConnection` with blocking socket I/O
/// until the peer closes, accepting every publish. Waits at most `timeout` for the peer.
pub fn serve_one(listener: &std::net::TcpListener, timeout: std::time::Duration) -> Served {
    use std::io::{ErrorKind, Read, Write};
    let deadline = std::time::Instant::now() + timeout;
    listener.set_nonblocking(true).unwrap();
    let mut sock = loop {
        match listener.accept() {
            Ok((sock, _)) => break sock,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no client connected within {timeout:?}"
                );
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    sock.set_nonblocking(false).unwrap();
    sock.set_read_timeout(Some(timeout)).unwrap();
    let mut conn = ServerConnection::new(ServerConfig::default());
    let mut served = Served {
        events: Vec::new(),
        error: None,
        max_buffered: 0,
        bytes_in: 0,
    };
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read from client: {e}"),
        };
        served.bytes_in += n;
        let start = served.events.len();
        if let Err(e) = conn.feed(&buf[..n], &mut served.events) {
            served.error = Some(e);
            break;
        }
        for event in &served.events[start..] {
            if let Event::PublishRequested { stream_id, .. } = event {
                conn.accept_publish(*stream_id).unwrap();
            }
        }
        served.max_buffered = served.max_buffered.max(conn.bytes_buffered());
        let out = conn.take_output();
        if !out.is_empty() && sock.write_all(&out).is_err() {
            break;
        }
    }
    served
}

/// Reads a hand-built client's socket until `needle` shows up (true), or the connection ends or
/// `within` passes (false). The socket needs a read timeout, so a silent peer cannot hold it.
pub fn reply_contains(
    s: &mut std::net::TcpStream,
    needle: &[u8],
    within: std::time::Duration,
) -> bool {
    let deadline = std::time::Instant::now() + within;
    let mut seen: Vec<u8> = Vec::new();
    let mut buf = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        match std::io::Read::read(s, &mut buf) {
            Ok(0) => return false,
            Ok(n) => {
                seen.extend(&buf[..n]);
                if seen.windows(needle.len()).any(|w| w == needle) {
                    return true;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return false,
        }
    }
    false
}
