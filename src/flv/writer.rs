//! FLV writer: the file header, then tags, each followed by its PreviousTagSize.

use std::io::{self, Write};

use super::tag::{FlvHeader, MAX_DATA_SIZE, TAG_HEADER_LEN, TagHeader, TagType};

/// Writes an FLV stream. Each tag goes out in one `write_all` (header, body, size), so a
/// crash leaves at most one torn tag at the end, which [`super::complete_prefix_len`] cuts.
#[derive(Debug)]
pub struct FlvWriter<W: Write> {
    inner: W,
    bytes_written: u64,
    scratch: Vec<u8>,
}

impl<W: Write> FlvWriter<W> {
    /// Writes the 9-byte header and PreviousTagSize0.
    pub fn new(mut inner: W, has_audio: bool, has_video: bool) -> io::Result<Self> {
        let head = FlvHeader {
            has_audio,
            has_video,
        }
        .encode();
        inner.write_all(&head)?;
        Ok(FlvWriter {
            inner,
            bytes_written: head.len() as u64,
            scratch: Vec::new(),
        })
    }

    /// Writes one tag. A body over 16 MiB - 1 is `InvalidInput` (FLV cannot frame it).
    pub fn write_tag(&mut self, tag_type: TagType, timestamp: u32, body: &[u8]) -> io::Result<()> {
        let data_size = u32::try_from(body.len())
            .ok()
            .filter(|&n| n <= MAX_DATA_SIZE)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("FLV tag body of {} bytes exceeds 16 MiB", body.len()),
                )
            })?;
        let header = TagHeader {
            tag_type,
            data_size,
            timestamp,
            filtered: false,
        };
        self.scratch.clear();
        self.scratch.extend_from_slice(&header.encode());
        self.scratch.extend_from_slice(body);
        self.scratch
            .extend_from_slice(&(data_size + TAG_HEADER_LEN as u32).to_be_bytes());
        self.inner.write_all(&self.scratch)?;
        self.bytes_written += self.scratch.len() as u64;
        Ok(())
    }

    /// Bytes written so far, header included: the file size once flushed.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}
