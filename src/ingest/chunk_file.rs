//! The open chunk's file, written in whole tags. `FlvWriter` hands over each tag in one
//! (vectored) `write` call, and this file remembers where each buffered one ends, so when the
//! disk fills in the middle of a write the file can be cut back to the last tag that reached it
//! whole ([`ChunkFile::cut_to_complete_tags`]): the chunk stays a valid FLV and is handed on, and
//! the tags that did not fit are counted rather than torn. (`BufWriter` forgets how much of a
//! failed flush reached the file, which would leave only a re-read of the whole chunk to find
//! the cut.)
//!
//! Small tags (audio, small video frames) are gathered in a buffer; a large one goes to the file
//! at once, in one `writev` together with what is buffered, so its bytes are never copied in
//! user space. Measured at real-time pace (callgrind, 10 streams of 6 Mbps): the copy into the
//! buffer was a quarter of ingest's instructions, and the 256 KiB buffer per stream most of its
//! memory.

use std::fs::File;
use std::io::{self, IoSlice, Seek, Write};

/// Bytes gathered before they go to the file in one write.
const CAPACITY: usize = 64 * 1024;
/// A tag this large is written at once rather than copied into the buffer: one more syscall
/// costs less than copying it.
const DIRECT: usize = 8 * 1024;
/// Slices in one `writev`: the buffer and a tag's parts (FlvWriter: header, body, size).
const MAX_PARTS: usize = 8;

pub struct ChunkFile {
    file: File,
    buf: Vec<u8>,
    /// End offsets (within `buf`) of the writes buffered, one per tag (the first write of a
    /// chunk is the FLV file header).
    ends: Vec<usize>,
    /// Bytes on disk, every one of them part of a whole write.
    on_disk: u64,
    /// Writes (tags) on disk.
    writes_on_disk: u64,
}

impl ChunkFile {
    pub fn new(file: File) -> ChunkFile {
        ChunkFile {
            file,
            buf: Vec::new(),
            ends: Vec::new(),
            on_disk: 0,
            writes_on_disk: 0,
        }
    }

    /// Writes (file header and tags) accepted so far, on disk or buffered.
    pub fn writes(&self) -> u64 {
        self.writes_on_disk + self.ends.len() as u64
    }

    /// Writes known to be on disk whole.
    pub fn writes_on_disk(&self) -> u64 {
        self.writes_on_disk
    }

    /// After a failed write or flush: drops what is still buffered and truncates the file to
    /// the last whole write that reached it. Returns how many writes (tags) were dropped.
    pub fn cut_to_complete_tags(&mut self) -> io::Result<u64> {
        let dropped = self.ends.len() as u64;
        self.buf.clear();
        self.ends.clear();
        self.file.set_len(self.on_disk)?;
        self.file.seek(io::SeekFrom::Start(self.on_disk))?;
        Ok(dropped)
    }

    /// The file, once everything is flushed.
    pub fn into_file(mut self) -> io::Result<File> {
        self.flush()?;
        Ok(self.file)
    }

    fn flush_buffer(&mut self) -> io::Result<()> {
        self.write_through(&[])
    }

    /// Writes the buffer, then `unit` (one tag in parts, or nothing), in one vectored write per
    /// try. On an error, whole writes that reached the file count as on disk; the rest,
    /// `unit` included, stay buffered for `cut_to_complete_tags` or a retry.
    fn write_through(&mut self, unit: &[IoSlice<'_>]) -> io::Result<()> {
        debug_assert!(unit.len() < MAX_PARTS);
        let unit_len: usize = unit.iter().map(|p| p.len()).sum();
        let total = self.buf.len() + unit_len;
        let mut sent = 0;
        let result = loop {
            if sent == total {
                break Ok(());
            }
            let mut slices = [IoSlice::new(&[]); MAX_PARTS];
            slices[0] = IoSlice::new(&self.buf);
            slices[1..=unit.len()].copy_from_slice(unit);
            let mut rest = &mut slices[..=unit.len()];
            IoSlice::advance_slices(&mut rest, sent);
            match self.file.write_vectored(rest) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        if result.is_ok() {
            self.on_disk += total as u64;
            self.writes_on_disk += self.ends.len() as u64 + u64::from(unit_len > 0);
            self.buf.clear();
            self.ends.clear();
            return Ok(());
        }
        // Rare (a full disk): the unit joins the buffer, so the accounting below treats it
        // like any other buffered write.
        if unit_len > 0 {
            for part in unit.iter() {
                self.buf.extend_from_slice(part);
            }
            self.ends.push(self.buf.len());
        }
        // Whole writes that made it count as on disk, even when a later one failed; the bytes
        // of a torn one stay in the file until `cut_to_complete_tags` removes them.
        let whole = self.ends.partition_point(|&end| end <= sent);
        let whole_bytes = if whole == 0 { 0 } else { self.ends[whole - 1] };
        self.on_disk += whole_bytes as u64;
        self.writes_on_disk += whole as u64;
        self.buf.drain(..whole_bytes);
        self.ends.drain(..whole);
        for end in &mut self.ends {
            *end -= whole_bytes;
        }
        if sent > whole_bytes {
            // Part of the next write reached the file: it must not be counted, and must not
            // be written twice if the flush is tried again. Cutting it now keeps the file whole.
            self.file.set_len(self.on_disk)?;
            // The file position is past the cut; put it back for a later retry.
            self.file.seek(io::SeekFrom::Start(self.on_disk))?;
        }
        result
    }
}

impl Write for ChunkFile {
    /// Takes the whole of `data` as one unit (FlvWriter writes one tag per call).
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(data)])
    }

    /// Takes all of `parts` as one unit: one tag, whole or not at all.
    fn write_vectored(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if parts.len() < MAX_PARTS && (len >= DIRECT || self.buf.len() + len > CAPACITY) {
            self.write_through(parts)?;
        } else {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(CAPACITY);
            }
            for part in parts {
                self.buf.extend_from_slice(part);
            }
            self.ends.push(self.buf.len());
            if self.buf.len() >= CAPACITY {
                self.flush_buffer()?;
            }
        }
        Ok(len)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.flush_buffer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn counts_whole_writes_and_keeps_the_buffer_until_flushed() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.flv");
        let mut f = ChunkFile::new(File::create(&path).unwrap());
        f.write_all(b"head").unwrap();
        f.write_all(&[7u8; CAPACITY]).unwrap();
        // The big write pushed the buffer out.
        assert_eq!((f.writes(), f.writes_on_disk()), (2, 2));
        f.write_all(b"tail").unwrap();
        assert_eq!((f.writes(), f.writes_on_disk()), (3, 2));
        // A cut drops what is buffered and keeps the file at its last whole write.
        assert_eq!(f.cut_to_complete_tags().unwrap(), 1);
        let mut bytes = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes.len(), 4 + CAPACITY);
        f.write_all(b"more").unwrap();
        f.into_file().unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 8 + CAPACITY);
    }

    #[test]
    fn large_and_small_tags_reach_the_file_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c.flv");
        let mut f = ChunkFile::new(File::create(&path).unwrap());
        let mut expected = Vec::new();
        for i in 0..40u8 {
            // Sizes around DIRECT and CAPACITY, so tags take both ways to the file.
            let body = vec![i; [10, DIRECT - 1, DIRECT, 3 * DIRECT, CAPACITY - 5][i as usize % 5]];
            let parts = [
                IoSlice::new(b"head"),
                IoSlice::new(&body),
                IoSlice::new(b"size"),
            ];
            assert_eq!(f.write_vectored(&parts).unwrap(), body.len() + 8);
            expected.extend_from_slice(b"head");
            expected.extend_from_slice(&body);
            expected.extend_from_slice(b"size");
        }
        assert_eq!(f.writes(), 40);
        f.into_file().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }
}
