//! The FLV as the scan reads it: with `pread`, through one cached block. The scan reads each
//! tag's header and the first bytes of its body, so most reads are small and many fall in the
//! block the previous one loaded (audio tags, small frames). A read past the file's end, even if
//! the file shrank after we took its length, is a short read and becomes the scan's error;
//! reading through a mapping instead would take SIGBUS there.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::scan::ReadAt;

/// Bytes loaded per `pread`: a page's worth of small tags; a frame larger than this costs one
/// call for its header, as a page fault did through a mapping.
const BLOCK: usize = 4096;

/// A file of known length read a block at a time.
pub struct BlockFile<'a> {
    file: &'a File,
    len: u64,
    /// The cached block: its offset in the file and the bytes read there.
    block: RefCell<(u64, Vec<u8>)>,
}

impl<'a> BlockFile<'a> {
    pub fn new(file: &'a File, len: u64) -> BlockFile<'a> {
        BlockFile {
            file,
            len,
            block: RefCell::new((0, Vec::with_capacity(BLOCK))),
        }
    }
}

impl ReadAt for BlockFile<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min((self.len - offset) as usize);
        // Large reads (a whole sequence header) go straight into the caller's buffer.
        if want > BLOCK {
            return FileExt::read_at(self.file, &mut buf[..want], offset);
        }
        let mut block = self.block.borrow_mut();
        let (start, data) = &mut *block;
        let cached = offset >= *start && offset + want as u64 <= *start + data.len() as u64;
        if !cached {
            data.resize(BLOCK.min((self.len - offset) as usize), 0);
            let n = FileExt::read_at(self.file, data, offset)?;
            data.truncate(n);
            *start = offset;
        }
        let at = (offset - *start) as usize;
        let n = want.min(data.len().saturating_sub(at));
        buf[..n].copy_from_slice(&data[at..at + n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_equal_the_file_and_a_shrunk_file_reads_short() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i % 251) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &data).unwrap();
        let reader = BlockFile::new(&file, data.len() as u64);
        for (offset, len) in [(0, 11), (11, 5), (4090, 20), (5000, 9000), (19_990, 50)] {
            let mut buf = vec![0u8; len];
            let n = reader.read_at(&mut buf, offset as u64).unwrap();
            let end = (offset + len).min(data.len());
            assert_eq!(&buf[..n], &data[offset..end], "{offset}+{len}");
            assert_eq!(n, end - offset);
        }
        // Cut to 6000 bytes after the length was taken: reads past it come back empty.
        file.set_len(6000).unwrap();
        let reader = BlockFile::new(&file, data.len() as u64);
        let mut buf = [0u8; 16];
        assert_eq!(reader.read_at(&mut buf, 12_000).unwrap(), 0);
        assert_eq!(reader.read_at(&mut buf, 5990).unwrap(), 10);
    }
}
