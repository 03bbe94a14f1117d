//! MP4 sample tables and the faststart writer; boxes are encoded with `mp4-atom`. Pure: the
//! caller pushes samples (where each payload lies in its source) and gets back the file head
//! (`ftyp`, `moov`, `mdat` header) plus the byte ranges to copy behind it.

mod boxes;
pub mod clip;
pub mod codec;
#[cfg(test)]
mod fixtures;
pub mod movie;
pub mod params;
pub mod read;

pub use codec::{CodecError, SampleEntry};
pub use movie::{Layout, Movie, MovieError, SampleIn, TrackSummary, Window};
