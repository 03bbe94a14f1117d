//! Why an RTMP connection had to be dropped. Every variant names where the problem was (chunk
//! stream, message type, length, command) so a log line is enough to understand a bad client.

/// A protocol violation or unsupported input on one connection. The connection should be closed;
/// nothing else is affected.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProtocolError {
    #[error("RTMP handshake failed: {reason}")]
    Handshake { reason: String },

    #[error("no publish within {timeout:?} of connecting (handshake timeout)")]
    HandshakeTimeout { timeout: std::time::Duration },

    #[error("no data for {timeout:?}")]
    IdleTimeout { timeout: std::time::Duration },

    #[error(
        "the peer took none of our replies for {timeout:?} (write timeout); it stopped reading"
    )]
    WriteTimeout { timeout: std::time::Duration },

    #[error(
        "{count} publishes refused on this connection; closing it (at most {max} are answered)"
    )]
    TooManyRefusedPublishes { count: u32, max: u32 },

    #[error(
        "chunk stream {csid}: message type {type_id} declares {length} bytes, more than the limit of {max}"
    )]
    MessageTooLarge {
        csid: u32,
        type_id: u8,
        length: u32,
        max: u32,
    },

    #[error(
        "chunk stream {csid}: partial messages would hold {buffered} bytes, more than the limit of {max}"
    )]
    TooMuchBuffered {
        csid: u32,
        buffered: usize,
        max: usize,
    },

    #[error("chunk stream {csid}: would track more than {max} chunk streams")]
    TooManyChunkStreams { csid: u32, max: usize },

    #[error(
        "chunk stream {csid}: fmt {fmt} chunk header but no earlier message on this chunk stream"
    )]
    NoPreviousHeader { csid: u32, fmt: u8 },

    #[error(
        "chunk stream {csid}: fmt {fmt} header starts a new message while {received} of {length} bytes of the previous one are pending"
    )]
    HeaderInsideMessage {
        csid: u32,
        fmt: u8,
        received: usize,
        length: u32,
    },

    #[error("Set Chunk Size {size} refused (allowed 1..={max})")]
    InvalidChunkSize { size: u32, max: u32 },

    #[error(
        "chunk stream {csid}: protocol control message type {type_id} has {length} bytes, expected at least {expected}"
    )]
    ShortControlMessage {
        csid: u32,
        type_id: u8,
        length: usize,
        expected: usize,
    },

    #[error(
        "message stream {stream_id}: malformed {what} (type {type_id}, {length} bytes): {reason}"
    )]
    Malformed {
        stream_id: u32,
        type_id: u8,
        length: usize,
        what: &'static str,
        reason: String,
    },

    #[error("message stream {stream_id}: {reason}")]
    BadStreamState { stream_id: u32, reason: String },

    #[error("{what} panicked inside a dependency on this connection's input: {message}")]
    DependencyPanic { what: &'static str, message: String },
}

/// Runs `f` (a call into rml_rtmp) and turns a panic into a [`ProtocolError`], so one
/// connection's bytes can never unwind through the ingest process.
pub(crate) fn guard<T>(what: &'static str, f: impl FnOnce() -> T) -> Result<T, ProtocolError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        let message = if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "non-string panic payload".to_string()
        };
        ProtocolError::DependencyPanic { what, message }
    })
}
