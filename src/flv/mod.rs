//! FLV: tag reader, writer and the audio/video tag headers (legacy and enhanced RTMP).
//!
//! Everything here works on `Read`/`Write` and byte slices; no paths, no clocks. The pieces:
//! - [`tag`]: the file header, tag headers, tag types and the error type;
//! - [`reader`]: a streaming tag reader that tells a torn tail (a file cut mid-tag by a crash)
//!   apart from a clean end, and [`complete_prefix_len`] for crash salvage;
//! - [`writer`]: the tag writer ingest records chunks with;
//! - [`video`] / [`audio`]: the codec headers at the start of each tag body (legacy FLV and
//!   Enhanced RTMP FourCC headers), sharing [`modex`] for Enhanced RTMP's ModEx prefix;
//! - [`script`]: `onMetaData` script data on top of [`crate::amf0`].

pub mod audio;
mod modex;
pub mod reader;
pub mod script;
pub mod tag;
pub mod video;
pub mod writer;

pub use audio::{AudioCodec, AudioTag, parse_audio};
pub use reader::{CompletePrefix, FlvReader, TagInfo, complete_prefix, complete_prefix_len};
pub use script::{Amf0Value, Properties};
pub use tag::{FlvError, FlvHeader, TagHeader, TagType, tag_len};
pub use video::{VideoCodec, VideoPacket, VideoTag, parse_video};
pub use writer::FlvWriter;

#[cfg(test)]
pub(crate) mod tests;
