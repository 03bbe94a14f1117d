//! De-chunking state machine (RTMP 1.0 spec, section 5.3): chunk bytes in, whole messages out.
//!
//! Each chunk stream keeps its own header state and its own partial payload, so messages on
//! different chunk streams may interleave chunk by chunk (spec 5.3.2.2). Input may be split
//! anywhere. Memory is bounded: message lengths above the limit are refused before any payload
//! is buffered, payload buffers grow as bytes arrive (never beyond the declared length), the
//! number of chunk streams is capped, and so is the sum of all partial payloads.
//!
//! A payload buffer is sized, at most, for the bytes already in hand: the chunk being read and
//! the input after it (bytes that have arrived, whichever chunk stream they belong to). A frame
//! that arrives in one read is thus allocated once, at its length, rather than grown by doubling
//! from 4 KiB (at real-time pace that regrowth was a sixth of ingest's instructions), while a
//! peer that declares 8 MiB and sends 10 bytes still costs no more than 4 KiB.

use bytes::Bytes;

use super::error::ProtocolError;

/// Chunk size before the peer sends Set Chunk Size (spec 5.4.1).
pub const DEFAULT_CHUNK_SIZE: u32 = 128;
/// Basic header (3) + type 0 message header (11) + extended timestamp (4).
const MAX_HEADER_LEN: usize = 18;
const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;
/// Smallest allocation for a message payload; growth doubles at least, capped at the declared
/// length.
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
    /// By chunk stream id, looked up by a scan: a publisher uses a handful (at most
    /// `max_chunk_streams`), and a scan of those is cheaper than hashing the id.
    streams: Vec<(u32, ChunkStream)>,
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
            streams: Vec::new(),
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
        if let Some(stream) = self.stream_mut(csid) {
            let freed = std::mem::take(&mut stream.payload).capacity();
            stream.in_message = false;
            self.buffered -= freed;
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
                    if let Some(message) = self.append_payload(csid, now, rest.len())? {
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
            match self.stream(csid) {
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

        if self.stream(csid).is_none() {
            if fmt != 0 {
                return Err(ProtocolError::NoPreviousHeader { csid, fmt });
            }
            if self.streams.len() >= self.max_chunk_streams {
                return Err(ProtocolError::TooManyChunkStreams {
                    csid,
                    max: self.max_chunk_streams,
                });
            }
            self.streams.push((csid, ChunkStream::default()));
        }
        let max = self.max_message_size;
        let chunk_size = self.chunk_size;
        let stream = self.stream_mut(csid).expect("inserted above");

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
        let remaining = (stream.length as usize - stream.payload.len()).min(chunk_size as usize);
        self.state = State::Payload { csid, remaining };
        Ok(None)
    }

    fn index(&self, csid: u32) -> Option<usize> {
        self.streams.iter().position(|(id, _)| *id == csid)
    }

    fn stream(&self, csid: u32) -> Option<&ChunkStream> {
        self.index(csid).map(|i| &self.streams[i].1)
    }

    fn stream_mut(&mut self, csid: u32) -> Option<&mut ChunkStream> {
        self.index(csid).map(|i| &mut self.streams[i].1)
    }

    /// `arrived`: input bytes in hand after `bytes` (see the module comment on sizing).
    fn append_payload(
        &mut self,
        csid: u32,
        bytes: &[u8],
        arrived: usize,
    ) -> Result<Option<RawMessage>, ProtocolError> {
        let i = self
            .index(csid)
            .expect("payload state implies the chunk stream exists");
        // Through the field, not `stream_mut`, so `self.buffered` stays usable beside it.
        let stream = &mut self.streams[i].1;
        let (buffered, max_buffered) = (self.buffered, self.max_buffered);
        let length = stream.length as usize;
        let needed = stream.payload.len() + bytes.len();
        let capacity = stream.payload.capacity();
        if needed > capacity {
            let least = needed
                .max(capacity * 2)
                .max(INITIAL_PAYLOAD_CAPACITY)
                .min(length);
            let in_hand = needed.saturating_add(arrived).min(length).max(least);
            // The bytes in hand may belong to other chunk streams: never let them be the reason
            // the total is refused.
            let target = if buffered + (in_hand - capacity) <= max_buffered {
                in_hand
            } else {
                least
            };
            let growth = target - capacity;
            if buffered + growth > max_buffered {
                return Err(ProtocolError::TooMuchBuffered {
                    csid,
                    buffered: buffered + growth,
                    max: max_buffered,
                });
            }
            stream.payload.reserve_exact(target - stream.payload.len());
            self.buffered = buffered - capacity + stream.payload.capacity();
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

#[cfg(test)]
mod tests {
    //! Hand-built chunks following the RTMP 1.0 spec, section 5.3.1.
    use super::*;

    fn basic(fmt: u8, csid: u32) -> Vec<u8> {
        let f = fmt << 6;
        match csid {
            2..=63 => vec![f | csid as u8],
            64..=319 => vec![f, (csid - 64) as u8],
            _ => vec![f | 1, ((csid - 64) & 0xFF) as u8, ((csid - 64) >> 8) as u8],
        }
    }

    fn ts_field(ts: u32) -> ([u8; 3], Option<[u8; 4]>) {
        if ts >= 0xFF_FFFF {
            ([0xFF; 3], Some(ts.to_be_bytes()))
        } else {
            let b = ts.to_be_bytes();
            ([b[1], b[2], b[3]], None)
        }
    }

    fn fmt0(csid: u32, ts: u32, len: u32, type_id: u8, stream_id: u32, data: &[u8]) -> Vec<u8> {
        let mut v = basic(0, csid);
        let (field, ext) = ts_field(ts);
        v.extend_from_slice(&field);
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v.push(type_id);
        v.extend_from_slice(&stream_id.to_le_bytes());
        if let Some(e) = ext {
            v.extend_from_slice(&e);
        }
        v.extend_from_slice(data);
        v
    }

    fn fmt1(csid: u32, delta: u32, len: u32, type_id: u8, data: &[u8]) -> Vec<u8> {
        let mut v = basic(1, csid);
        let (field, ext) = ts_field(delta);
        v.extend_from_slice(&field);
        v.extend_from_slice(&len.to_be_bytes()[1..]);
        v.push(type_id);
        if let Some(e) = ext {
            v.extend_from_slice(&e);
        }
        v.extend_from_slice(data);
        v
    }

    fn fmt2(csid: u32, delta: u32, data: &[u8]) -> Vec<u8> {
        let mut v = basic(2, csid);
        let (field, ext) = ts_field(delta);
        v.extend_from_slice(&field);
        if let Some(e) = ext {
            v.extend_from_slice(&e);
        }
        v.extend_from_slice(data);
        v
    }

    fn fmt3(csid: u32, ext: Option<u32>, data: &[u8]) -> Vec<u8> {
        let mut v = basic(3, csid);
        if let Some(e) = ext {
            v.extend_from_slice(&e.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    fn read_all(
        reader: &mut ChunkReader,
        mut input: &[u8],
    ) -> Result<Vec<RawMessage>, ProtocolError> {
        let mut out = Vec::new();
        while let Some(m) = reader.read(&mut input)? {
            out.push(m);
        }
        assert!(input.is_empty());
        Ok(out)
    }

    fn reader() -> ChunkReader {
        ChunkReader::new(1 << 20, 8)
    }

    #[test]
    fn four_formats_and_timestamp_deltas() {
        let mut bytes = fmt0(4, 1000, 3, 9, 1, b"abc");
        bytes.extend(fmt1(4, 33, 2, 8, b"de")); // new length and type, delta 33
        bytes.extend(fmt2(4, 20, b"fg")); // same length/type, delta 20
        bytes.extend(fmt3(4, None, b"hi")); // everything repeated, delta 20 again
        let msgs = read_all(&mut reader(), &bytes).unwrap();
        let summary: Vec<_> = msgs
            .iter()
            .map(|m| (m.timestamp, m.type_id, m.stream_id, m.payload.to_vec()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (1000, 9, 1, b"abc".to_vec()),
                (1033, 8, 1, b"de".to_vec()),
                (1053, 8, 1, b"fg".to_vec()),
                (1073, 8, 1, b"hi".to_vec()),
            ]
        );
    }

    #[test]
    fn type3_after_type0_uses_the_absolute_timestamp_as_delta() {
        // Spec 5.3.1.2.4: a type 3 chunk following a type 0 has the type 0 timestamp as delta.
        let mut bytes = fmt0(5, 40, 1, 8, 1, b"a");
        bytes.extend(fmt3(5, None, b"b"));
        let msgs = read_all(&mut reader(), &bytes).unwrap();
        assert_eq!(
            msgs.iter().map(|m| m.timestamp).collect::<Vec<_>>(),
            vec![40, 80]
        );
    }

    #[test]
    fn two_and_three_byte_basic_headers() {
        let mut bytes = fmt0(64, 1, 1, 9, 1, b"x");
        bytes.extend(fmt0(319, 2, 1, 9, 1, b"y"));
        bytes.extend(fmt0(320, 3, 1, 9, 1, b"z"));
        bytes.extend(fmt0(65599, 4, 1, 9, 1, b"w"));
        let msgs = read_all(&mut reader(), &bytes).unwrap();
        assert_eq!(
            msgs.iter().map(|m| m.csid).collect::<Vec<_>>(),
            vec![64, 319, 320, 65599]
        );
        assert_eq!(msgs[3].payload.as_ref(), b"w");
        // The 3-byte form is little-endian: csid 320 is 64 + 256.
        assert_eq!(basic(0, 320), vec![1, 0, 1]);
    }

    #[test]
    fn extended_timestamp_is_repeated_in_type3_chunks() {
        let payload: Vec<u8> = (0..200u8).collect();
        let ts = 0x0100_0000;
        let mut bytes = fmt0(6, ts, 200, 9, 1, &payload[..128]);
        bytes.extend(fmt3(6, Some(ts), &payload[128..]));
        // The next message on the same chunk stream, type 3 again, extended field again.
        bytes.extend(fmt3(6, Some(ts), &payload[..128]));
        bytes.extend(fmt3(6, Some(ts), &payload[128..]));
        let msgs = read_all(&mut reader(), &bytes).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].payload.to_vec(), payload);
        assert_eq!(msgs[0].timestamp, ts);
        assert_eq!(msgs[1].timestamp, ts.wrapping_mul(2));
        assert_eq!(msgs[1].payload.to_vec(), payload);
    }

    #[test]
    fn extended_delta_in_type1_header() {
        let mut bytes = fmt0(4, 10, 1, 9, 1, b"a");
        bytes.extend(fmt1(4, 0x0200_0000, 1, 9, b"b"));
        let msgs = read_all(&mut reader(), &bytes).unwrap();
        assert_eq!(msgs[1].timestamp, 0x0200_000A);
    }

    #[test]
    fn interleaved_chunk_streams_keep_separate_payloads() {
        let video: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        let mut bytes = fmt0(6, 0, 300, 9, 1, &video[..128]);
        bytes.extend(fmt0(4, 0, 10, 8, 1, b"AAAAAAAAAA"));
        bytes.extend(fmt3(6, None, &video[128..256]));
        bytes.extend(fmt2(4, 23, b"BBBBBBBBBB"));
        bytes.extend(fmt3(6, None, &video[256..]));
        let msgs = read_all(&mut reader(), &bytes).unwrap();
        assert_eq!(msgs.len(), 3);
        assert_eq!(
            (msgs[0].csid, msgs[0].payload.as_ref()),
            (4, &b"AAAAAAAAAA"[..])
        );
        assert_eq!((msgs[1].csid, msgs[1].timestamp), (4, 23));
        assert_eq!(
            (msgs[2].csid, msgs[2].type_id, msgs[2].payload.to_vec()),
            (6, 9, video)
        );
    }

    #[test]
    fn chunk_size_change_applies_to_following_chunks() {
        let data = vec![7u8; 1000];
        let mut r = reader();
        let first = fmt0(4, 0, 200, 9, 1, &data[..128]);
        let mut rest = fmt3(4, None, &data[..72]);
        assert!(read_all(&mut r, &first).unwrap().is_empty());
        assert_eq!(read_all(&mut r, &rest).unwrap().len(), 1);
        r.set_chunk_size(1000);
        rest = fmt0(4, 0, 1000, 9, 1, &data);
        let msgs = read_all(&mut r, &rest).unwrap();
        assert_eq!(msgs[0].payload.len(), 1000);
    }

    #[test]
    fn abort_drops_the_partial_message() {
        let mut r = reader();
        read_all(&mut r, &fmt0(4, 0, 300, 9, 1, &[1; 128])).unwrap();
        assert!(r.bytes_buffered() >= 128);
        let err = read_all(&mut r, &fmt0(4, 0, 5, 9, 1, b"hello")).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::HeaderInsideMessage {
                    csid: 4,
                    received: 128,
                    length: 300,
                    ..
                }
            ),
            "{err}"
        );

        let mut r = reader();
        read_all(&mut r, &fmt0(4, 0, 300, 9, 1, &[1; 128])).unwrap();
        r.abort(4);
        assert_eq!(r.bytes_buffered(), 0);
        let msgs = read_all(&mut r, &fmt0(4, 0, 5, 9, 1, b"hello")).unwrap();
        assert_eq!(msgs[0].payload.as_ref(), b"hello");
    }

    #[test]
    fn oversize_message_is_refused_before_buffering() {
        let mut r = ChunkReader::new(8 << 20, 8);
        let err = read_all(&mut r, &fmt0(4, 0, 0xFF_FFFF, 9, 1, &[])).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::MessageTooLarge {
                csid: 4,
                type_id: 9,
                length: 0xFF_FFFF,
                max: 8 << 20
            }
        );
        assert!(err.to_string().contains("chunk stream 4"), "{err}");
        assert_eq!(r.bytes_buffered(), 0);
    }

    #[test]
    fn buffer_grows_with_arriving_bytes_not_declared_length() {
        let mut r = ChunkReader::new(8 << 20, 8);
        read_all(&mut r, &fmt0(4, 0, 8 << 20, 9, 1, &[0; 128])).unwrap();
        assert!(
            r.bytes_buffered() <= INITIAL_PAYLOAD_CAPACITY + MAX_HEADER_LEN,
            "{}",
            r.bytes_buffered()
        );
    }

    #[test]
    fn buffer_is_sized_once_for_the_bytes_in_hand() {
        let mut r = ChunkReader::new(8 << 20, 8);
        r.set_chunk_size(4000);
        let mut bytes = fmt0(4, 0, 100_000, 9, 1, &[1; 4000]);
        bytes.extend(fmt3(4, None, &[2; 4000]));
        bytes.extend(fmt3(4, None, &[3; 4000]));
        read_all(&mut r, &bytes).unwrap();
        // 12,000 payload bytes and the two 1-byte headers between them were in hand: one
        // allocation for those, where doubling from 4 KiB would have reached 16 KiB.
        assert_eq!(r.bytes_buffered(), 12_002);
    }

    #[test]
    fn bounds_chunk_streams_and_total_buffer() {
        let mut r = ChunkReader::new(1000, 2);
        read_all(&mut r, &fmt0(4, 0, 1, 9, 1, b"a")).unwrap();
        read_all(&mut r, &fmt0(5, 0, 1, 9, 1, b"a")).unwrap();
        let err = read_all(&mut r, &fmt0(6, 0, 1, 9, 1, b"a")).unwrap_err();
        assert_eq!(err, ProtocolError::TooManyChunkStreams { csid: 6, max: 2 });

        // Partial messages on several chunk streams together are capped at twice the message limit.
        let mut r = ChunkReader::new(1000, 8);
        r.set_chunk_size(500);
        read_all(&mut r, &fmt0(4, 0, 1000, 9, 1, &[0; 500])).unwrap();
        read_all(&mut r, &fmt0(5, 0, 1000, 9, 1, &[0; 500])).unwrap();
        assert_eq!(r.bytes_buffered(), 2000);
        let err = read_all(&mut r, &fmt0(6, 0, 1000, 9, 1, &[0; 500])).unwrap_err();
        assert!(
            matches!(
                err,
                ProtocolError::TooMuchBuffered {
                    csid: 6,
                    max: 2000,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn header_needs_a_previous_message() {
        let err = read_all(&mut reader(), &fmt3(9, None, b"")).unwrap_err();
        assert_eq!(err, ProtocolError::NoPreviousHeader { csid: 9, fmt: 3 });
        let err = read_all(&mut reader(), &fmt1(9, 0, 1, 9, b"a")).unwrap_err();
        assert_eq!(err, ProtocolError::NoPreviousHeader { csid: 9, fmt: 1 });
    }

    #[test]
    fn zero_length_message() {
        let msgs = read_all(&mut reader(), &fmt0(4, 5, 0, 8, 1, &[])).unwrap();
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].payload.is_empty());
    }

    #[test]
    fn byte_at_a_time_equals_whole() {
        let payload: Vec<u8> = (0..500u32).map(|i| (i * 7) as u8).collect();
        let ts = 0xFFFF_FF00;
        let mut bytes = fmt0(6, ts, 500, 9, 1, &payload[..128]);
        bytes.extend(fmt0(300, 7, 3, 8, 1, b"abc"));
        bytes.extend(fmt3(6, Some(ts), &payload[128..256]));
        bytes.extend(fmt1(300, 300, 2, 8, b"de"));
        bytes.extend(fmt3(6, Some(ts), &payload[256..384]));
        bytes.extend(fmt3(6, Some(ts), &payload[384..]));
        bytes.extend(fmt2(300, 5, b"fg"));
        let whole = read_all(&mut reader(), &bytes).unwrap();
        assert_eq!(whole.len(), 4);
        let mut r = reader();
        let mut single = Vec::new();
        for b in &bytes {
            single.extend(read_all(&mut r, std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(single, whole);
        assert_eq!(whole[2].payload.to_vec(), payload);
    }
}
