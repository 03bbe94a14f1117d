//! MP4 sample tables and the faststart writer; boxes are encoded with `mp4-atom`. Pure: the
//! caller pushes samples (where each payload lies in its source) and gets back the file head
//! (`ftyp`, `moov`, `mdat` header) plus the byte ranges to copy behind it.

mod boxes;
pub mod clip;
pub mod codec;
mod error;
#[cfg(test)]
mod fixtures;
pub mod movie;
pub mod params;
pub mod read;
mod track;

pub use codec::{CodecError, SampleEntry};
pub use error::MovieError;
pub use movie::{Layout, Movie, SampleIn, TrackSummary};
pub use track::Window;
