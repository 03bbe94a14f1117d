//! The server side of one RTMP connection: handshake, protocol control, the NetConnection and
//! NetStream commands a publisher sends (spec section 7), media and metadata. Bytes in, events
//! and reply bytes out; the caller owns the socket and decides whether a publish is allowed.

use std::collections::HashMap;
use std::time::Duration;

use crate::amf0::{self, Amf0Value};
use bytes::Bytes;

use super::amf::{self, Command, object, string};
use super::chunk_reader::{ChunkReader, RawMessage};
use super::chunk_writer::ChunkWriter;
use super::deadline::Deadlines;
use super::error::ProtocolError;
use super::handshake::Handshake;

/// Largest Set Chunk Size we accept from a peer; the spec allows up to 0x7FFFFFFF but nothing
/// real needs more than this, and the chunk size does not change memory use, only sanity.
pub const MAX_PEER_CHUNK_SIZE: u32 = 16 * 1024 * 1024;
/// How many createStream calls one connection may make.
const MAX_MESSAGE_STREAMS: usize = 16;

const CSID_PROTOCOL: u32 = 2;
const CSID_COMMAND: u32 = 3;

const SET_CHUNK_SIZE: u8 = 1;
const ABORT: u8 = 2;
const ACKNOWLEDGEMENT: u8 = 3;
const USER_CONTROL: u8 = 4;
const WINDOW_ACK_SIZE: u8 = 5;
const SET_PEER_BANDWIDTH: u8 = 6;
const AUDIO: u8 = 8;
const VIDEO: u8 = 9;
const DATA_AMF3: u8 = 15;
const COMMAND_AMF3: u8 = 17;
const DATA_AMF0: u8 = 18;
const COMMAND_AMF0: u8 = 20;
const AGGREGATE: u8 = 22;

const USER_STREAM_BEGIN: u16 = 0;
const USER_PING_REQUEST: u16 = 6;
const USER_PING_RESPONSE: u16 = 7;

/// Limits and the values we announce to the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Largest RTMP message accepted (a video frame); bigger declared lengths end the connection.
    pub max_message_size: u32,
    /// Chunk size we send with (announced with Set Chunk Size after `connect`).
    pub out_chunk_size: u32,
    /// Window Acknowledgement Size and Set Peer Bandwidth we announce.
    pub window_ack_size: u32,
    /// Chunk streams one connection may use.
    pub max_chunk_streams: usize,
    /// Connect to publish must fit in this.
    pub handshake_timeout: Duration,
    /// Once publishing, the peer may be silent at most this long.
    pub idle_timeout: Duration,
    /// Replies the peer has not taken after this long end the connection.
    pub write_timeout: Duration,
    /// Refused publishes after which the connection is closed (each refusal is a log line and
    /// a policy check; a peer has no honest reason to be refused this often).
    pub max_refused_publishes: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_message_size: 8 * 1024 * 1024,
            out_chunk_size: 4096,
            window_ack_size: 2_500_000,
            max_chunk_streams: 64,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            max_refused_publishes: 5,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Audio,
    Video,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Connected {
        app: String,
        tc_url: Option<String>,
    },
    /// The peer asked to publish; answer with `accept_publish` or `reject_publish`.
    PublishRequested {
        stream_id: u32,
        /// Raw publish name, may include a `?query`.
        name: String,
        publish_type: String,
    },
    /// AMF0 "onMetaData" string followed by the metadata value: an FLV script tag body.
    Metadata {
        stream_id: u32,
        body: Bytes,
    },
    /// The message payload as received: an FLV audio/video tag body (legacy or enhanced RTMP).
    Media {
        stream_id: u32,
        kind: MediaKind,
        /// Milliseconds, absolute, unwrapped to 64 bits per message stream.
        timestamp: u64,
        body: Bytes,
    },
    /// FCUnpublish, closeStream or deleteStream for a publishing stream.
    Unpublished {
        stream_id: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Publish {
    Idle,
    /// publish received, waiting for the caller's accept or reject. Media is already passed on,
    /// since a client may send it before our answer arrives.
    Requested,
    Publishing,
}

#[derive(Debug)]
struct MessageStream {
    publish: Publish,
    name: String,
    /// Last extended timestamp, to unwrap the 32-bit wrap.
    last_timestamp: Option<u64>,
}

impl MessageStream {
    fn new() -> Self {
        MessageStream {
            publish: Publish::Idle,
            name: String::new(),
            last_timestamp: None,
        }
    }

    fn is_publishing(&self) -> bool {
        self.publish != Publish::Idle
    }

    /// Picks the 64-bit value congruent to `ts` mod 2^32 nearest to the previous one, so a
    /// backwards jump of more than 2^31 counts as a wrap and slightly late messages right
    /// after a wrap stay before it.
    fn extend_timestamp(&mut self, ts: u32) -> u64 {
        const WRAP: u64 = 1 << 32;
        const HALF: u64 = 1 << 31;
        let value = match self.last_timestamp {
            None => u64::from(ts),
            Some(last) => {
                let mut candidate = (last & !(WRAP - 1)) | u64::from(ts);
                if candidate + HALF < last {
                    candidate += WRAP;
                } else if candidate > last + HALF && candidate >= WRAP {
                    candidate -= WRAP;
                }
                candidate
            }
        };
        self.last_timestamp = Some(value);
        value
    }
}

pub struct ServerConnection {
    config: ServerConfig,
    handshake: Handshake,
    reader: ChunkReader,
    writer: ChunkWriter,
    output: Vec<u8>,
    bytes_received: u64,
    last_ack_at: u64,
    /// The peer's Window Acknowledgement Size; until it sends one, our own.
    ack_window: u32,
    connected: bool,
    streams: HashMap<u32, MessageStream>,
    next_stream_id: u32,
    deadlines: Deadlines,
    refused_publishes: u32,
    /// After an error the connection is dead; further input gets the same error.
    failed: Option<ProtocolError>,
}

impl ServerConnection {
    pub fn new(config: ServerConfig) -> ServerConnection {
        ServerConnection {
            reader: ChunkReader::new(config.max_message_size, config.max_chunk_streams),
            ack_window: config.window_ack_size,
            deadlines: Deadlines::new(
                config.handshake_timeout,
                config.idle_timeout,
                config.write_timeout,
            ),
            refused_publishes: 0,
            config,
            handshake: Handshake::default(),
            writer: ChunkWriter::default(),
            output: Vec::new(),
            bytes_received: 0,
            last_ack_at: 0,
            connected: false,
            streams: HashMap::new(),
            next_stream_id: 1,
            failed: None,
        }
    }

    /// A connection whose handshake is behind it, for the fuzz targets: the handshake's HMAC
    /// digests would otherwise cost most of every run, and they fuzz it separately.
    #[cfg(fuzzing)]
    pub fn after_handshake(config: ServerConfig) -> ServerConnection {
        let mut connection = ServerConnection::new(config);
        connection.handshake = Handshake::completed();
        connection
    }

    /// Feeds bytes read from the socket at `now` (time since the connection was accepted):
    /// what a shell that keeps the deadlines calls.
    pub fn handle_input(
        &mut self,
        now: Duration,
        input: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        self.deadlines.input(now);
        self.feed(input, events)
    }

    /// When the shell must call [`Self::handle_timeout`], unless input comes first (time since
    /// the connection was accepted).
    pub fn poll_timeout(&self) -> Duration {
        self.deadlines.next()
    }

    /// The shell starts handing [`Self::take_output`]'s bytes to the socket at `now`; until
    /// [`Self::written`], the write deadline runs.
    pub fn writing(&mut self, now: Duration) {
        self.deadlines.writing(now);
    }

    /// The peer took everything the shell was writing.
    pub fn written(&mut self) {
        self.deadlines.written();
    }

    /// Ends the connection with a timeout error once `now` reached its deadline; before that, a
    /// call changes nothing (a shell may wake early).
    pub fn handle_timeout(&mut self, now: Duration) -> Result<(), ProtocolError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.deadlines.check(now);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    /// Feeds bytes read from the socket (split anywhere); appends the resulting events. Without
    /// a time: the deadlines count from the last [`Self::handle_input`].
    pub fn feed(&mut self, input: &[u8], events: &mut Vec<Event>) -> Result<(), ProtocolError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let result = self.feed_inner(input, events);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    fn feed_inner(
        &mut self,
        mut input: &[u8],
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        self.bytes_received += input.len() as u64;
        if !self.handshake.is_done() {
            self.handshake.feed(&mut input, &mut self.output)?;
        }
        while !input.is_empty() {
            match self.reader.read(&mut input)? {
                Some(message) => self.handle_message(message, events)?,
                None => break,
            }
        }
        if self.ack_window > 0
            && self.bytes_received - self.last_ack_at >= u64::from(self.ack_window)
        {
            self.last_ack_at = self.bytes_received;
            // The sequence number is the byte count so far, wrapping like every RTMP counter.
            let sequence = (self.bytes_received as u32).to_be_bytes();
            self.send_control(ACKNOWLEDGEMENT, &sequence);
        }
        Ok(())
    }

    /// Bytes to send to the peer; drains them.
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Answers a PublishRequested with onStatus NetStream.Publish.Start.
    pub fn accept_publish(&mut self, stream_id: u32) -> Result<(), ProtocolError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let stream = self.requested_stream(stream_id)?;
        stream.publish = Publish::Publishing;
        let name = stream.name.clone();
        self.deadlines.published();
        let mut begin = USER_STREAM_BEGIN.to_be_bytes().to_vec();
        begin.extend_from_slice(&stream_id.to_be_bytes());
        self.send_control(USER_CONTROL, &begin);
        self.send_on_status(
            stream_id,
            "status",
            "NetStream.Publish.Start",
            &format!("{name} is now published."),
        );
        Ok(())
    }

    /// Answers a PublishRequested with onStatus at level error, e.g. code
    /// "NetStream.Publish.BadName". Media for the stream is dropped from then on.
    pub fn reject_publish(
        &mut self,
        stream_id: u32,
        code: &str,
        description: &str,
    ) -> Result<(), ProtocolError> {
        // A failed connection answers nothing more: its last words are already queued.
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let stream = self.requested_stream(stream_id)?;
        stream.publish = Publish::Idle;
        self.send_on_status(stream_id, "error", code, description);
        self.count_refusal()
    }

    /// Counts a refused publish; the one that reaches the cap fails the connection (its
    /// refusal is still in the output, for the shell to send before closing).
    fn count_refusal(&mut self) -> Result<(), ProtocolError> {
        self.refused_publishes = self.refused_publishes.saturating_add(1);
        let max = self.config.max_refused_publishes;
        if self.refused_publishes < max {
            return Ok(());
        }
        let error = ProtocolError::TooManyRefusedPublishes {
            count: self.refused_publishes,
            max,
        };
        self.failed = Some(error.clone());
        Err(error)
    }

    pub fn is_handshake_done(&self) -> bool {
        self.handshake.is_done()
    }

    /// Memory held for partial messages (and chunk headers), for bounding.
    pub fn bytes_buffered(&self) -> usize {
        self.reader.bytes_buffered()
    }

    fn requested_stream(&mut self, stream_id: u32) -> Result<&mut MessageStream, ProtocolError> {
        match self.streams.get_mut(&stream_id) {
            Some(stream) if stream.publish != Publish::Idle => Ok(stream),
            _ => Err(ProtocolError::BadStreamState {
                stream_id,
                reason: "accept/reject for a stream that has no pending publish".to_string(),
            }),
        }
    }

    fn handle_message(
        &mut self,
        message: RawMessage,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        let p = &message.payload;
        match message.type_id {
            SET_CHUNK_SIZE => {
                let size = control_u32(&message)? & 0x7FFF_FFFF;
                if size == 0 || size > MAX_PEER_CHUNK_SIZE {
                    return Err(ProtocolError::InvalidChunkSize {
                        size,
                        max: MAX_PEER_CHUNK_SIZE,
                    });
                }
                self.reader.set_chunk_size(size);
            }
            ABORT => {
                let csid = control_u32(&message)?;
                self.reader.abort(csid);
            }
            WINDOW_ACK_SIZE => self.ack_window = control_u32(&message)?,
            ACKNOWLEDGEMENT | SET_PEER_BANDWIDTH => {}
            USER_CONTROL
                if p.len() >= 6 && u16::from_be_bytes([p[0], p[1]]) == USER_PING_REQUEST =>
            {
                let mut reply = USER_PING_RESPONSE.to_be_bytes().to_vec();
                reply.extend_from_slice(&p[2..6]);
                self.send_control(USER_CONTROL, &reply);
            }
            AUDIO | VIDEO => self.handle_media(&message, events),
            AGGREGATE => self.handle_aggregate(&message, events),
            DATA_AMF0 => self.handle_data(message.stream_id, message.payload.clone(), events),
            DATA_AMF3 => {
                // AMF0 values after a format byte are what encoders send as "AMF3" data.
                let body = if p.first() == Some(&0) {
                    p.slice(1..)
                } else {
                    p.clone()
                };
                self.handle_data(message.stream_id, body, events);
            }
            COMMAND_AMF0 | COMMAND_AMF3 => {
                let body = if message.type_id == COMMAND_AMF3 && p.first() == Some(&0) {
                    &p[1..]
                } else {
                    &p[..]
                };
                let command = amf::decode_command(body).map_err(|e| ProtocolError::Malformed {
                    stream_id: message.stream_id,
                    type_id: message.type_id,
                    length: p.len(),
                    what: "command",
                    reason: e.to_string(),
                })?;
                self.handle_command(message.stream_id, command, events)?;
            }
            // Shared objects and anything unknown: not needed for ingest, ignored.
            _ => {}
        }
        Ok(())
    }

    fn handle_media(&mut self, message: &RawMessage, events: &mut Vec<Event>) {
        let Some(stream) = self.streams.get_mut(&message.stream_id) else {
            return;
        };
        // An empty audio/video message carries nothing an FLV tag could hold.
        if !stream.is_publishing() || message.payload.is_empty() {
            return;
        }
        let kind = if message.type_id == AUDIO {
            MediaKind::Audio
        } else {
            MediaKind::Video
        };
        events.push(Event::Media {
            stream_id: message.stream_id,
            kind,
            timestamp: stream.extend_timestamp(message.timestamp),
            body: message.payload.clone(),
        });
    }

    /// Aggregate message (spec 7.1.6): FLV-style tags back to back, each followed by a
    /// back-pointer; sub-message timestamps are offsets from the first one.
    fn handle_aggregate(&mut self, message: &RawMessage, events: &mut Vec<Event>) {
        let p = &message.payload;
        let mut pos = 0;
        let mut first_ts = None;
        while p.len() - pos >= 11 {
            let h = &p[pos..pos + 11];
            let type_id = h[0];
            let size = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
            let ts = u32::from_be_bytes([h[7], h[4], h[5], h[6]]);
            let body_start = pos + 11;
            if p.len() - body_start < size {
                break;
            }
            let base = *first_ts.get_or_insert(ts);
            let sub = RawMessage {
                csid: message.csid,
                stream_id: message.stream_id,
                type_id,
                timestamp: message.timestamp.wrapping_add(ts.wrapping_sub(base)),
                payload: p.slice(body_start..body_start + size),
            };
            match type_id {
                AUDIO | VIDEO => self.handle_media(&sub, events),
                DATA_AMF0 => self.handle_data(sub.stream_id, sub.payload, events),
                _ => {}
            }
            pos = (body_start + size + 4).min(p.len());
        }
    }

    /// `@setDataFrame` + `onMetaData` or a bare `onMetaData` becomes a Metadata event; other
    /// data messages (and bodies that are not valid AMF0) are dropped.
    fn handle_data(&mut self, stream_id: u32, body: Bytes, events: &mut Vec<Event>) {
        if !self
            .streams
            .get(&stream_id)
            .is_some_and(MessageStream::is_publishing)
        {
            return;
        }
        let Some((first, used)) = amf::leading_string(&body) else {
            return;
        };
        let body = if first == "@setDataFrame" {
            body.slice(used..)
        } else {
            body
        };
        match amf::leading_string(&body) {
            Some((name, _)) if name == "onMetaData" && amf0::decode_all(&body).is_ok() => {
                events.push(Event::Metadata { stream_id, body });
            }
            _ => {}
        }
    }

    fn handle_command(
        &mut self,
        stream_id: u32,
        command: Command,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        let txn = command.transaction_id;
        match command.name.as_str() {
            "connect" => self.handle_connect(&command, events),
            "releaseStream" => self.send_empty_result(txn),
            "FCPublish" => {
                let name = command.string_arg(0).unwrap_or_default().to_string();
                self.send_command(
                    0,
                    &[
                        string("onFCPublish"),
                        Amf0Value::Number(0.0),
                        Amf0Value::Null,
                        object(&[
                            ("code", string("NetStream.Publish.Start")),
                            ("description", string(&name)),
                        ]),
                    ],
                );
                self.send_empty_result(txn);
            }
            "createStream" => {
                if self.streams.len() >= MAX_MESSAGE_STREAMS {
                    self.send_error(
                        txn,
                        "NetConnection.Call.Failed",
                        "too many streams on this connection",
                    );
                } else {
                    let id = self.free_stream_id();
                    self.streams.insert(id, MessageStream::new());
                    self.send_result(txn, Amf0Value::Number(f64::from(id)));
                }
            }
            "publish" => return self.handle_publish(stream_id, &command, events),
            "FCUnpublish" => {
                let name = command.string_arg(0).unwrap_or_default();
                let found = self
                    .streams
                    .iter()
                    .filter(|(_, s)| s.is_publishing() && s.name == name)
                    .map(|(id, _)| *id)
                    .min();
                if let Some(id) = found {
                    self.unpublish(id, events);
                }
                self.send_empty_result(txn);
            }
            "closeStream" => self.unpublish(stream_id, events),
            "deleteStream" => {
                if let Some(id) = command
                    .number_arg(0)
                    .filter(|n| *n >= 0.0 && *n <= f64::from(u32::MAX))
                {
                    let id = id as u32;
                    self.unpublish(id, events);
                    self.streams.remove(&id);
                }
            }
            "play" => {
                self.send_on_status(
                    stream_id,
                    "error",
                    "NetStream.Play.Failed",
                    "this server only accepts publishing",
                );
            }
            // Replies to calls we never make, and notifications that need no answer.
            "_result" | "_error" | "onStatus" | "onBWDone" => {}
            other => {
                if txn != 0.0 {
                    let description = format!("unsupported command {other}");
                    self.send_error(txn, "NetConnection.Call.Failed", &description);
                }
            }
        }
        Ok(())
    }

    fn handle_connect(&mut self, command: &Command, events: &mut Vec<Event>) {
        let app = command.object_string("app").unwrap_or_default().to_string();
        let tc_url = command.object_string("tcUrl").map(str::to_string);
        let object_encoding = command.object_number("objectEncoding").unwrap_or(0.0);
        if !self.connected {
            self.connected = true;
            let window = self.config.window_ack_size.to_be_bytes();
            self.send_control(WINDOW_ACK_SIZE, &window);
            let mut bandwidth = window.to_vec();
            bandwidth.push(2); // dynamic limit type
            self.send_control(SET_PEER_BANDWIDTH, &bandwidth);
            let chunk_size = self.config.out_chunk_size.clamp(1, 0x7FFF_FFFF);
            self.send_control(SET_CHUNK_SIZE, &chunk_size.to_be_bytes());
            self.writer.set_chunk_size(chunk_size);
        }
        self.send_command(
            0,
            &[
                string("_result"),
                Amf0Value::Number(command.transaction_id),
                object(&[
                    ("fmsVer", string("FMS/3,0,1,123")),
                    ("capabilities", Amf0Value::Number(31.0)),
                ]),
                object(&[
                    ("level", string("status")),
                    ("code", string("NetConnection.Connect.Success")),
                    ("description", string("Connection succeeded.")),
                    ("objectEncoding", Amf0Value::Number(object_encoding)),
                ]),
            ],
        );
        events.push(Event::Connected { app, tc_url });
    }

    /// A publish the connection refuses itself counts against the cap as the shell's do.
    fn handle_publish(
        &mut self,
        stream_id: u32,
        command: &Command,
        events: &mut Vec<Event>,
    ) -> Result<(), ProtocolError> {
        let name = command.string_arg(0).unwrap_or_default().to_string();
        let publish_type = command.string_arg(1).unwrap_or("live").to_string();
        if stream_id == 0 {
            return self.refuse_publish_request(0, "publish needs a stream from createStream");
        }
        if !self.streams.contains_key(&stream_id) && self.streams.len() < MAX_MESSAGE_STREAMS {
            self.streams.insert(stream_id, MessageStream::new());
        }
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return self.refuse_publish_request(stream_id, "unknown stream");
        };
        if stream.is_publishing() {
            return self.refuse_publish_request(stream_id, "stream is already publishing");
        }
        stream.publish = Publish::Requested;
        stream.name = name.clone();
        events.push(Event::PublishRequested {
            stream_id,
            name,
            publish_type,
        });
        Ok(())
    }

    fn refuse_publish_request(
        &mut self,
        stream_id: u32,
        description: &str,
    ) -> Result<(), ProtocolError> {
        self.send_on_status(stream_id, "error", "NetStream.Publish.BadName", description);
        self.count_refusal()
    }

    /// The next stream id no stream holds. A publish may make its stream without createStream
    /// (some clients do), so the id createStream would give next can be taken already, and
    /// handing it out again would wipe that stream's publish.
    fn free_stream_id(&mut self) -> u32 {
        loop {
            let id = self.next_stream_id;
            self.next_stream_id = self.next_stream_id.checked_add(1).unwrap_or(1);
            if id != 0 && !self.streams.contains_key(&id) {
                return id;
            }
        }
    }

    fn unpublish(&mut self, stream_id: u32, events: &mut Vec<Event>) {
        let Some(stream) = self.streams.get_mut(&stream_id) else {
            return;
        };
        if !stream.is_publishing() {
            return;
        }
        let was = std::mem::replace(&mut stream.publish, Publish::Idle);
        // A publish withdrawn in the same input that asked for it (publish, then closeStream
        // or deleteStream) was never answered: its request is taken back, so the shell neither
        // answers it (accept would find no pending publish) nor records anything.
        let unanswered = events.iter().position(
            |e| matches!(e, Event::PublishRequested { stream_id: id, .. } if *id == stream_id),
        );
        match (was, unanswered) {
            (Publish::Requested, Some(at)) => {
                events.remove(at);
            }
            _ => events.push(Event::Unpublished { stream_id }),
        }
    }

    fn send_control(&mut self, type_id: u8, payload: &[u8]) {
        self.writer
            .write(&mut self.output, CSID_PROTOCOL, 0, type_id, 0, payload);
    }

    fn send_command(&mut self, stream_id: u32, values: &[Amf0Value]) {
        let payload = amf::encode(values);
        self.writer.write(
            &mut self.output,
            CSID_COMMAND,
            0,
            COMMAND_AMF0,
            stream_id,
            &payload,
        );
    }

    /// `_result` for call `txn` with no command object and `value` as its information.
    fn send_result(&mut self, txn: f64, value: Amf0Value) {
        self.send_command(
            0,
            &[
                string("_result"),
                Amf0Value::Number(txn),
                Amf0Value::Null,
                value,
            ],
        );
    }

    /// An empty `_result`, sent only when the caller asked for one (a non-zero transaction id).
    fn send_empty_result(&mut self, txn: f64) {
        if txn != 0.0 {
            self.send_result(txn, Amf0Value::Undefined);
        }
    }

    fn send_error(&mut self, txn: f64, code: &str, description: &str) {
        self.send_command(
            0,
            &[
                string("_error"),
                Amf0Value::Number(txn),
                Amf0Value::Null,
                object(&[
                    ("level", string("error")),
                    ("code", string(code)),
                    ("description", string(description)),
                ]),
            ],
        );
    }

    fn send_on_status(&mut self, stream_id: u32, level: &str, code: &str, description: &str) {
        self.send_command(
            stream_id,
            &[
                string("onStatus"),
                Amf0Value::Number(0.0),
                Amf0Value::Null,
                object(&[
                    ("level", string(level)),
                    ("code", string(code)),
                    ("description", string(description)),
                ]),
            ],
        );
    }
}

/// The 4-byte big-endian value that Set Chunk Size, Abort and Window Ack Size carry.
fn control_u32(message: &RawMessage) -> Result<u32, ProtocolError> {
    let p = &message.payload;
    if p.len() < 4 {
        return Err(ProtocolError::ShortControlMessage {
            csid: message.csid,
            type_id: message.type_id,
            length: p.len(),
            expected: 4,
        });
    }
    Ok(u32::from_be_bytes([p[0], p[1], p[2], p[3]]))
}
