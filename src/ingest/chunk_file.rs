//! The open chunk's file, buffered in whole tags. `FlvWriter` hands over each tag in one
//! `write` call, and this buffer remembers where each one ends, so when the disk fills in the
//! middle of a flush the file can be cut back to the last tag that reached it whole
//! ([`ChunkFile::cut_to_complete_tags`]): the chunk stays a valid FLV and is handed on, and the
//! tags that did not fit are counted rather than torn. (`BufWriter` forgets how much of a failed
//! flush reached the file, which would leave only a re-read of the whole chunk to find the cut.)

use std::fs::File;
use std::io::{self, Seek, Write};

/// Bytes gathered before they go to the file in one write.
const CAPACITY: usize = 256 * 1024;

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
            buf: Vec::with_capacity(CAPACITY),
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
        let mut sent = 0;
        let result = loop {
            if sent == self.buf.len() {
                break Ok(());
            }
            match self.file.write(&self.buf[sent..]) {
                Ok(0) => break Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
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
        if result.is_err() && sent > whole_bytes {
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
        self.buf.extend_from_slice(data);
        self.ends.push(self.buf.len());
        if self.buf.len() >= CAPACITY {
            self.flush_buffer()?;
        }
        Ok(data.len())
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
}
