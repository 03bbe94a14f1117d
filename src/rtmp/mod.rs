//! Our sans-IO RTMP server side: bytes in, events and reply bytes out. No sockets, no clocks.
//!
//! The chunk layer (RTMP 1.0 spec section 5.3), AMF0 (`crate::amf0`) and the command handling
//! are ours; `rml_rtmp` only does the handshake, each call guarded so a panic in it becomes a
//! [`ProtocolError`]. (`rml_rtmp`'s own session panics on interleaved
//! chunk streams and on crafted input, see `tests/rtmp_chunks.rs`.)
//!
//! Use: feed socket bytes to [`ServerConnection::feed`], write [`ServerConnection::take_output`]
//! back, act on each [`Event`]; answer `PublishRequested` with `accept_publish` or
//! `reject_publish`. On any error, close the connection.

pub mod amf;
pub mod chunk_reader;
pub mod chunk_writer;
mod deadline;
mod error;
mod handshake;
mod server;

pub use error::ProtocolError;
pub use server::{Event, MAX_PEER_CHUNK_SIZE, MediaKind, ServerConfig, ServerConnection};
