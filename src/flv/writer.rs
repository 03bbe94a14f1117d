//! FLV writer: the file header, then tags, each followed by its PreviousTagSize.

use std::io::{self, IoSlice, Write};

use super::tag::{FlvHeader, MAX_DATA_SIZE, TAG_HEADER_LEN, TagHeader, TagType};

/// Writes an FLV stream. Each tag goes out in one vectored write (header, body, size), so a
/// crash leaves at most one torn tag at the end, which [`super::complete_prefix_len`] cuts.
/// Vectored rather than gathered into one buffer: at real-time pace that copy of every body
/// was a quarter of ingest's instructions (callgrind, 10 streams of 6 Mbps).
#[derive(Debug)]
pub struct FlvWriter<W: Write> {
    inner: W,
    bytes_written: u64,
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
        let head = header.encode();
        let size = (data_size + TAG_HEADER_LEN as u32).to_be_bytes();
        let mut parts = [IoSlice::new(&head), IoSlice::new(body), IoSlice::new(&size)];
        write_all_vectored(&mut self.inner, &mut parts)?;
        self.bytes_written += (head.len() + body.len() + size.len()) as u64;
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

/// `Write::write_all_vectored` (unstable): a writer may take only part of the slices per call.
fn write_all_vectored<W: Write>(w: &mut W, mut parts: &mut [IoSlice<'_>]) -> io::Result<()> {
    IoSlice::advance_slices(&mut parts, 0);
    while !parts.is_empty() {
        match w.write_vectored(parts) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => IoSlice::advance_slices(&mut parts, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
