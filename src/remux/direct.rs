//! Writing the MP4 with direct I/O (`O_DIRECT`): the samples are gathered from the mapped FLV
//! into one aligned buffer and go to the disk from there, so the kernel neither copies them
//! into the page cache nor has to write dirty pages back later. That is most of the CPU a copy
//! costs; what is left is one memcpy. (Reading each sample with `pread` instead measured
//! slower: one syscall per sample.) Filesystems without direct I/O (tmpfs) get the buffered
//! path instead (`copy::write_mp4_file`).

use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::copy::check_ranges;
use super::mapped::{Mapping, page_size};

/// Bytes gathered per write; a multiple of any logical block size.
const CHUNK: usize = 4 << 20;
/// Source bytes mapped at a time.
const WINDOW: u64 = 8 << 20;
/// Alignment direct I/O needs for buffers, offsets and lengths (covers 512 and 4096 blocks).
const ALIGN: usize = 4096;
/// The buffer is aligned to a huge page so the kernel can back it with huge pages: fewer
/// pages to pin per write, fewer TLB misses while gathering.
const BUF_ALIGN: usize = 2 << 20;

/// Creates `path` for writing; `true` if it is open for direct I/O.
pub fn create(path: &Path) -> io::Result<(File, bool)> {
    let direct = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path);
    match direct {
        Ok(f) => Ok((f, true)),
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok((File::create(path)?, false)),
        Err(e) => Err(e),
    }
}

/// A heap buffer aligned for direct I/O.
struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}

impl AlignedBuf {
    fn new() -> io::Result<AlignedBuf> {
        let layout = Layout::from_size_align(CHUNK, BUF_ALIGN).map_err(io::Error::other)?;
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { alloc::alloc(layout) };
        if ptr.is_null() {
            return Err(io::ErrorKind::OutOfMemory.into());
        }
        // SAFETY: advice on memory we own; failure only means small pages.
        unsafe {
            libc::madvise(ptr.cast(), CHUNK, libc::MADV_HUGEPAGE);
        }
        Ok(AlignedBuf { ptr, len: 0 })
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for CHUNK bytes, owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, CHUNK) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in new() with this very layout.
        unsafe {
            alloc::dealloc(
                self.ptr,
                Layout::from_size_align_unchecked(CHUNK, BUF_ALIGN),
            )
        }
    }
}

struct DirectWriter<'a> {
    out: &'a mut File,
    buf: AlignedBuf,
    total: u64,
}

impl DirectWriter<'_> {
    fn put(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let at = self.buf.len;
            let n = data.len().min(CHUNK - at);
            self.buf.as_mut()[at..at + n].copy_from_slice(&data[..n]);
            self.buf.len += n;
            self.total += n as u64;
            data = &data[n..];
            if self.buf.len == CHUNK {
                self.out.write_all(self.buf.as_mut())?;
                self.buf.len = 0;
            }
        }
        Ok(())
    }

    /// Writes the tail padded to the alignment, then cuts the file to its real length.
    fn finish(mut self) -> io::Result<u64> {
        let tail = self.buf.len;
        if tail > 0 {
            let padded = tail.div_ceil(ALIGN) * ALIGN;
            self.buf.as_mut()[tail..padded].fill(0);
            self.out.write_all(&self.buf.as_mut()[..padded])?;
            self.out.set_len(self.total)?;
        }
        Ok(self.total)
    }
}

/// Writes `head` and the `ranges` of `src` (`src_len` bytes, not shrinking while we read) to
/// `out`, a new file opened by [`create`] for direct I/O. Returns the bytes written.
pub fn write_mp4_direct(
    src: &File,
    src_len: u64,
    head: &[u8],
    ranges: &[(u64, u32)],
    out: &mut File,
) -> io::Result<u64> {
    check_ranges(src_len, ranges)?;
    let mut w = DirectWriter {
        out,
        buf: AlignedBuf::new()?,
        total: 0,
    };
    w.put(head)?;
    let page = page_size();
    let mut window: Option<(u64, u64, Mapping)> = None;
    for &(offset, len) in ranges {
        let (mut off, end) = (offset, offset + u64::from(len));
        while off < end {
            let inside = window
                .as_ref()
                .is_some_and(|(s, e, _)| off >= *s && off < *e);
            if !inside {
                drop(window.take()); // unmap before mapping the next window
                let s = off / page * page;
                let e = (s + WINDOW).min(src_len);
                window = Some((s, e, Mapping::new(src, s, (e - s) as usize, true)?));
            }
            let Some((s, e, map)) = window.as_ref() else {
                break;
            };
            let stop = end.min(*e);
            w.put(&map.bytes()[(off - s) as usize..(stop - s) as usize])?;
            off = stop;
        }
    }
    drop(window);
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_output_equals_the_gathered_ranges() {
        // Under target/ (a disk), not /tmp, which may be tmpfs without O_DIRECT.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let w = WINDOW;
        let size = w as usize * 2 + 777;
        let data: Vec<u8> = (0..size).map(|i| (i % 249) as u8).collect();
        let src_path = dir.path().join("src");
        std::fs::write(&src_path, &data).unwrap();
        let src = File::open(&src_path).unwrap();
        let mut ranges = vec![(1u64, 10u32), (w - 5, 4000), (w + 9000, CHUNK as u32 + 3)];
        ranges.extend((0..700u64).step_by(3).map(|i| (2 * w + 10 + i, 1)));
        ranges.push((size as u64 - 7, 7));
        let head = vec![7u8; 5000];
        let out_path = dir.path().join("out");
        let (mut out, direct) = create(&out_path).unwrap();
        let n = if direct {
            write_mp4_direct(&src, size as u64, &head, &ranges, &mut out).unwrap()
        } else {
            super::super::copy::write_mp4_file(&src, size as u64, &head, &ranges, &mut out).unwrap()
        };
        drop(out);
        let mut want = head.clone();
        for &(o, l) in &ranges {
            want.extend_from_slice(&data[o as usize..o as usize + l as usize]);
        }
        assert_eq!(n as usize, want.len());
        assert!(std::fs::read(&out_path).unwrap() == want);
        let (mut out, _) = create(&dir.path().join("bad")).unwrap();
        assert!(write_mp4_direct(&src, size as u64, b"", &[(size as u64, 1)], &mut out).is_err());
    }
}
