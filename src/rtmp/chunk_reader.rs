//! De-chunking state machine (RTMP 1.0 spec, section 5.3): chunk bytes in, whole messages out.
//!
//! Each chunk stream keeps its own header state and its own partial payload, so messages on
//! different chunk streams may interleave chunk by chunk (spec 5.3.2.2). Input may be split
//! anywhere. Memory is bounded: message lengths above the limit are refused before any payload
//! is buffered, payload buffers grow as bytes arrive (never beyond the declared length), the
//! number of chunk streams is capped, and so is the sum of all partial payloads.

use std::collections::HashMap;

use bytes::Bytes;

use super::error::ProtocolError;

/// Chunk size before the peer sends Set Chunk Size (spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Basic header (3) + type 0 message header (11) + extended timestamp (4).
const MAX_HEADER_LEN: usize = 18;
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// First allocation for a message payload; later growth doubles, capped at the declared length.
const INITIAL_PAYLOAD_CAPACITY: usize = 4096;

/// One reassembled RTMP message, as the chunk layer delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub csid: u32,
    pub stream_id: u32,
    pub type_id: u8,
    /// Absolute 32-bit timestamp (deltas already applied, wrapping as the spec's serial arithmetic).
    pub timestamp: u32,
    pub payload: Bytes,
}

#[derive(Debug, Default)]
struct ChunkStream {
    timestamp: u32,
    /// Added by a type 3 chunk that starts a new message; after a type 0 header it is the
    /// absolute timestamp itself (spec 5.3.1.2.4).
    delta: u32,
    length: u32,
    type_id: u8,
    stream_id: u32,
    /// The last type 0/1/2 header used an extended timestamp, so type 3 chunks repeat it.
    extended: bool,
    in_message: bool,
    payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Header,
    Payload { csid: u32, remaining: usize },
}

#[derive(Debug)]
pub struct ChunkReader {
    chunk_size: u32,
    max_message_size: u32,
    max_chunk_streams: usize,
    max_buffered: usize,
    streams: HashMap<u32, ChunkStream>,
    header: [u8; MAX_HEADER_LEN],
    header_len: usize,
    state: State,
    /// Sum of the capacities of all partial payload buffers.
    buffered: usize,
}

impl ChunkReader {
    /// `max_message_size` bounds one message; all partial messages together may hold at most
    /// twice that (a large keyframe can be in flight while small audio messages interleave).
    pub fn new(max_message_size: u32, max_chunk_streams: usize) -> ChunkReader {
        ChunkReader {
            chunk_size: DEFAULT_CHUNK_SIZE,
            max_message_size,
            max_chunk_streams,
            max_buffered: (max_message_size as usize).saturating_mul(2),
            streams: HashMap::new(),
            header: [0; MAX_HEADER_LEN],
            header_len: 0,
            state: State::Header,
            buffered: 0,
        }
    }

    /// Applies the peer's Set Chunk Size to the chunks that follow; the caller validates `size`.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.max(1);
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Abort Message (spec 5.4.2): forgets the partial message of `csid`.
    pub fn abort(&mut self, csid: u32) {
        if let Some(stream) = self.streams.get_mut(&csid) {
            self.buffered -= stream.payload.capacity();
            stream.payload = Vec::new();
            stream.in_message = false;
        }
    }

    /// Memory held for partial messages and headers.
    pub fn bytes_buffered(&self) -> usize {
        self.buffered + self.header_len
    }

    /// Consumes bytes from the front of `input` until one message is complete (returned) or the
    /// input is used up (`None`).
    pub fn read(&mut self, input: &mut &[u8]) -> Result<Option<RawMessage>, ProtocolError> {
        loop {
            match self.state {
                State::Header => {
                    if !self.fill_header(input)? {
                        return Ok(None);
                    }
                    if let Some(message) = self.apply_header()? {
                        return Ok(Some(message));
                    }
                }
                State::Payload { csid, remaining } => {
                    if input.is_empty() {
                        return Ok(None);
                    }
                    let n = remaining.min(input.len());
                    let (now, rest) = input.split_at(n);
                    *input = rest;
                    if let Some(message) = self.append_payload(csid, now)? {
                        self.state = State::Header;
                        return Ok(Some(message));
                    }
                    self.state = if n == remaining {
                        State::Header
                    } else {
                        State::Payload {
                            csid,
                            remaining: remaining - n,
                        }
                    };
                }
            }
        }
    }

    /// How many header bytes the chunk being read needs, as far as the bytes so far tell.
    fn header_needed(&self) -> Result<usize, ProtocolError> {
        let h = &self.header[..self.header_len];
        let Some(&first) = h.first() else {
            return Ok(1);
        };
        let basic = match first & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        if h.len() < basic {
            return Ok(basic);
        }
        let fmt = first >> 6;
        let message_header = [11, 7, 3, 0][fmt as usize];
        let fixed = basic + message_header;
        if h.len() < fixed {
            return Ok(fixed);
        }
        let extended = if fmt == 3 {
            let csid = basic_csid(h);
            match self.streams.get(&csid) {
                Some(stream) => stream.extended,
                None => return Err(ProtocolError::NoPreviousHeader { csid, fmt }),
            }
        } else {
            be24(&h[basic..basic + 3]) == EXTENDED_TIMESTAMP
        };
        Ok(fixed + if extended { 4 } else { 0 })
    }

    /// Moves header bytes from `input`; true once the whole chunk header is here.
    fn fill_header(&mut self, input: &mut &[u8]) -> Result<bool, ProtocolError> {
        loop {
            let needed = self.header_needed()?;
            if self.header_len >= needed {
                return Ok(true);
            }
            if input.is_empty() {
                return Ok(false);
            }
            let n = (needed - self.header_len).min(input.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&input[..n]);
            self.header_len += n;
            *input = &input[n..];
        }
    }

    /// Updates the chunk stream from the complete header and sets up payload reading. Returns a
    /// message at once when it has no payload.
    fn apply_header(&mut self) -> Result<Option<RawMessage>, ProtocolError> {
        let h = self.header;
        let len = self.header_len;
        self.header_len = 0;
        let fmt = h[0] >> 6;
        let csid = basic_csid(&h[..len]);
        let basic = match h[0] & 0x3F {
            0 => 2,
            1 => 3,
            _ => 1,
        };
        let m = &h[basic..len];
        let extended_value = (len - basic > [11, 7, 3, 0][fmt as usize])
            .then(|| u32::from_be_bytes([h[len - 4], h[len - 3], h[len - 2], h[len - 1]]));

        if !self.streams.contains_key(&csid) {
            if fmt != 0 {
                return Err(ProtocolError::NoPreviousHeader { csid, fmt });
            }
            if self.streams.len() >= self.max_chunk_streams {
                return Err(ProtocolError::TooManyChunkStreams {
                    csid,
                    max: self.max_chunk_streams,
                });
            }
            self.streams.insert(csid, ChunkStream::default());
        }
        let max = self.max_message_size;
        let stream = self.streams.get_mut(&csid).expect("inserted above");

        if fmt != 3 && stream.in_message {
            return Err(ProtocolError::HeaderInsideMessage {
                csid,
                fmt,
                received: stream.payload.len(),
                length: stream.length,
            });
        }
        let starts_message = !stream.in_message;
        if fmt != 3 {
            let field = be24(&m[0..3]);
            let value = extended_value.unwrap_or(field);
            stream.extended = extended_value.is_some();
            if fmt == 0 {
                stream.timestamp = value;
                stream.delta = value;
                stream.stream_id = u32::from_le_bytes([m[7], m[8], m[9], m[10]]);
            } else {
                stream.delta = value;
                stream.timestamp = stream.timestamp.wrapping_add(value);
            }
            if fmt <= 1 {
                stream.length = be24(&m[3..6]);
                stream.type_id = m[6];
            }
        } else if starts_message {
            stream.timestamp = stream.timestamp.wrapping_add(stream.delta);
        }

        if starts_message {
            if stream.length > max {
                return Err(ProtocolError::MessageTooLarge {
                    csid,
                    type_id: stream.type_id,
                    length: stream.length,
                    max,
                });
            }
            if stream.length == 0 {
                return Ok(Some(RawMessage {
                    csid,
                    stream_id: stream.stream_id,
                    type_id: stream.type_id,
                    timestamp: stream.timestamp,
                    payload: Bytes::new(),
                }));
            }
            stream.in_message = true;
        }
        let remaining =
            (stream.length as usize - stream.payload.len()).min(self.chunk_size as usize);
        self.state = State::Payload { csid, remaining };
        Ok(None)
    }

    fn append_payload(
        &mut self,
        csid: u32,
        bytes: &[u8],
    ) -> Result<Option<RawMessage>, ProtocolError> {
        let stream = self
            .streams
            .get_mut(&csid)
            .expect("payload state implies the chunk stream exists");
        let length = stream.length as usize;
        let needed = stream.payload.len() + bytes.len();
        let capacity = stream.payload.capacity();
        if needed > capacity {
            let target = needed
                .max(capacity * 2)
                .max(INITIAL_PAYLOAD_CAPACITY)
                .min(length);
            let growth = target - capacity;
            if self.buffered + growth > self.max_buffered {
                return Err(ProtocolError::TooMuchBuffered {
                    csid,
                    buffered: self.buffered + growth,
                    max: self.max_buffered,
                });
            }
            stream.payload.reserve_exact(target - stream.payload.len());
            self.buffered = self.buffered - capacity + stream.payload.capacity();
        }
        stream.payload.extend_from_slice(bytes);
        if stream.payload.len() < length {
            return Ok(None);
        }
        self.buffered -= stream.payload.capacity();
        stream.in_message = false;
        Ok(Some(RawMessage {
            csid,
            stream_id: stream.stream_id,
            type_id: stream.type_id,
            timestamp: stream.timestamp,
            payload: Bytes::from(std::mem::take(&mut stream.payload)),
        }))
    }
}

fn be24(b: &[u8]) -> u32 {
    u32::from_be_bytes([0, b[0], b[1], b[2]])
}

/// Chunk stream id from a complete basic header (spec 5.3.1.1).
fn basic_csid(h: &[u8]) -> u32 {
    match h[0] & 0x3F {
        0 => 64 + u32::from(h[1]),
        1 => 64 + u32::from(h[1]) + 256 * u32::from(h[2]),
        low => u32::from(low),
    }
}
