//! Writing the MP4 with direct I/O (`O_DIRECT`): the samples are gathered from the FLV into one
//! aligned buffer and go to the disk from there, so the kernel neither copies them into the
//! page cache nor has to write dirty pages back later. That is most of the CPU a copy costs;
//! what is left is one copy, which the kernel makes: one `preadv` per run of up to
//! [`IOV_MAX`] ranges scatters the samples into the buffer and the bytes between them into a
//! scratch buffer. (One `pread` per sample measured slower: a syscall per sample. Copying out
//! of a mapping instead costs the same, but a file truncated under us then kills the process
//! with SIGBUS; `preadv` returns short and we report it.) Filesystems without direct I/O
//! (tmpfs) get the buffered path instead (`copy::write_mp4_file`).

use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use std::os::fd::AsRawFd;

use super::copy::{Mp4Parts, advance, vectored};

/// Bytes gathered per write; a multiple of any logical block size.
const CHUNK: usize = 4 << 20;
/// Bytes between two ranges (tag headers, skipped tags) read into the scratch buffer within one
/// `preadv`; a larger gap ends the call and the next starts after it.
const MAX_GAP: usize = 64 << 10;
/// iovecs per `preadv` (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;
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
        // SAFETY: the layout has a non-zero size. Zeroed, so `as_mut` never makes a slice of
        // uninitialised bytes.
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
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
        // SAFETY: ptr is valid for CHUNK bytes, initialised (zeroed at allocation), owned by
        // self; the returned borrow keeps self borrowed mutably.
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
    /// Writes the full buffer out.
    fn flush_full(&mut self) -> io::Result<()> {
        self.out.write_all(self.buf.as_mut())?;
        self.buf.len = 0;
        Ok(())
    }

    fn put(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let at = self.buf.len;
            let n = data.len().min(CHUNK - at);
            self.buf.as_mut()[at..at + n].copy_from_slice(&data[..n]);
            self.buf.len += n;
            self.total += n as u64;
            data = &data[n..];
            if self.buf.len == CHUNK {
                self.flush_full()?;
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

/// Writes `parts` to `out`, a new file opened by [`create`] for direct I/O; a read that ends
/// early because the source shrank since its scan is an error. Returns the bytes written.
pub fn write_mp4_direct(parts: &Mp4Parts, out: &mut File) -> io::Result<u64> {
    parts.check()?;
    let Mp4Parts {
        src, head, ranges, ..
    } = *parts;
    let mut w = DirectWriter {
        out,
        buf: AlignedBuf::new()?,
        total: 0,
    };
    w.put(head)?;
    let mut scratch = vec![0u8; MAX_GAP];
    let mut next = 0usize;
    // The part of `ranges[next]` not yet read: (offset, length).
    let mut cur: Option<(u64, u64)> = None;
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(IOV_MAX);
    loop {
        if w.buf.len == CHUNK {
            w.flush_full()?;
        }
        // One preadv: consecutive ranges from `cur`, into the buffer's free space, the gaps
        // between them into `scratch`.
        let Some((start, _)) = cur.or_else(|| ranges.get(next).map(|&(o, l)| (o, u64::from(l))))
        else {
            break;
        };
        let mut pos = start;
        let mut room = CHUNK - w.buf.len;
        let mut at = w.buf.len;
        let mut gathered = 0usize;
        let buf = w.buf.as_mut().as_mut_ptr();
        iov.clear();
        while room > 0 && iov.len() + 2 <= IOV_MAX {
            let Some((off, len)) =
                cur.or_else(|| ranges.get(next).map(|&(o, l)| (o, u64::from(l))))
            else {
                break;
            };
            if off != pos {
                let gap = off.checked_sub(pos).filter(|g| *g <= MAX_GAP as u64);
                let Some(gap) = gap else { break };
                iov.push(libc::iovec {
                    iov_base: scratch.as_mut_ptr().cast(),
                    iov_len: gap as usize,
                });
            }
            let take = len.min(room as u64) as usize;
            iov.push(libc::iovec {
                // SAFETY: at + take <= CHUNK: the pointer stays inside the buffer.
                iov_base: unsafe { buf.add(at) }.cast(),
                iov_len: take,
            });
            at += take;
            room -= take;
            gathered += take;
            pos = off + take as u64;
            if (take as u64) < len {
                cur = Some((pos, len - take as u64));
            } else {
                cur = None;
                next += 1;
            }
        }
        preadv_all(src, &mut iov, start)?;
        w.buf.len += gathered;
        w.total += gathered as u64;
    }
    w.finish()
}

/// Reads the file from `offset` into `iov` (cleared), resuming after short reads; a read that
/// ends early (the file shrank under us) is an error, not a crash.
fn preadv_all(src: &File, iov: &mut [libc::iovec], mut offset: u64) -> io::Result<()> {
    let mut first = 0usize;
    while first < iov.len() {
        let count = (iov.len() - first) as libc::c_int;
        let n = vectored(|| {
            // SAFETY: every iovec points into a live buffer we own (the aligned buffer or the
            // scratch), inside its bounds, and nothing else touches them during the call.
            unsafe {
                libc::preadv(
                    src.as_raw_fd(),
                    iov[first..].as_ptr(),
                    count,
                    offset as libc::off_t,
                )
            }
        })?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the source ends at byte {offset}: it shrank while being remuxed"),
            ));
        }
        offset += n as u64;
        advance(iov, &mut first, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_output_equals_the_gathered_ranges() {
        // Under target/ (a disk), not /tmp, which may be tmpfs without O_DIRECT.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let w: u64 = 8 << 20;
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
        let parts = Mp4Parts {
            src: &src,
            src_len: size as u64,
            head: &head,
            ranges: &ranges,
        };
        let n = if direct {
            write_mp4_direct(&parts, &mut out).unwrap()
        } else {
            super::super::copy::write_mp4_file(&parts, &mut out).unwrap()
        };
        drop(out);
        let mut want = head.clone();
        for &(o, l) in &ranges {
            want.extend_from_slice(&data[o as usize..o as usize + l as usize]);
        }
        assert_eq!(n as usize, want.len());
        assert!(std::fs::read(&out_path).unwrap() == want);
        let (mut out, _) = create(&dir.path().join("bad")).unwrap();
        let past_end = Mp4Parts {
            head: b"",
            ranges: &[(size as u64, 1)],
            ..parts
        };
        assert!(write_mp4_direct(&past_end, &mut out).is_err());
    }

    /// The file shrinks after its length was read (someone truncated it in our inbox): both
    /// writers end with an error naming the short read, and the process lives on (a copy out
    /// of a mapping would take SIGBUS here).
    #[test]
    fn a_source_truncated_under_the_copy_is_an_error() {
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let claimed = 3 << 20;
        let src_path = dir.path().join("src");
        std::fs::write(&src_path, vec![5u8; claimed]).unwrap();
        let src = File::open(&src_path).unwrap();
        // Truncated to a page and a bit, after its length was taken.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&src_path)
            .unwrap()
            .set_len(5000)
            .unwrap();
        let ranges = [(100u64, 1000u32), (6000, 2 << 20)];
        let parts = Mp4Parts {
            src: &src,
            src_len: claimed as u64,
            head: b"h",
            ranges: &ranges,
        };
        let (mut out, direct) = create(&dir.path().join("out")).unwrap();
        if direct {
            let e = write_mp4_direct(&parts, &mut out).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        }
        let mut out = File::create(dir.path().join("out2")).unwrap();
        let e = super::super::copy::write_mp4_file(&parts, &mut out).unwrap_err();
        eprintln!("mapped copy of a truncated source: {e}");
    }
}
