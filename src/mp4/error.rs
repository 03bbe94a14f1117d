//! What can go wrong laying out a movie.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum MovieError {
    #[error("no track has any sample")]
    Empty,
    #[error("encoding {what}: {source}")]
    Encode {
        what: &'static str,
        source: mp4_atom::Error,
    },
    #[error("track {track}: {why}")]
    Track { track: u32, why: &'static str },
}
