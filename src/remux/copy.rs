//! Pass 2 of the remux: writes the MP4 head, then the `mdat` body by copying the samples'
//! byte ranges out of the FLV. For files, the source is mapped a window at a time and the
//! ranges are handed to `writev` straight from the page cache (one copy of the payload, in the
//! kernel); the generic path reads large blocks and writes large batches. Either way memory
//! stays flat in the chunk size, and writeback is started as the output grows so the final
//! fsync has little left to wait for.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

use super::mapped::{Mapping, page_size};
use super::scan::ReadAt;

/// Size of the read block and of the write batch.
pub const BLOCK: usize = 2 << 20;

/// Writes `head` then the concatenation of `ranges` (offset, length; ascending, disjoint) of
/// `src` to `out`. Returns the bytes written.
pub fn write_mp4<R: ReadAt + ?Sized, W: Write>(
    src: &R,
    head: &[u8],
    ranges: &[(u64, u32)],
    out: &mut W,
) -> io::Result<u64> {
    let mut outbuf: Vec<u8> = Vec::with_capacity(BLOCK);
    outbuf.extend_from_slice(head);
    let mut written = 0u64;
    let mut block = vec![0u8; BLOCK];
    // The source bytes currently in `block`: [start, start + filled).
    let mut start = 0u64;
    let mut filled = 0usize;
    for &(offset, len) in ranges {
        let mut offset = offset;
        let mut left = len as usize;
        while left > 0 {
            if offset < start || offset >= start + filled as u64 {
                start = offset;
                filled = fill(src, &mut block, start)?;
                if filled == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("source ends before offset {offset}"),
                    ));
                }
            }
            let at = (offset - start) as usize;
            let n = left.min(filled - at);
            if outbuf.len() + n > BLOCK {
                out.write_all(&outbuf)?;
                written += outbuf.len() as u64;
                outbuf.clear();
            }
            if n >= BLOCK {
                out.write_all(&block[at..at + n])?;
                written += n as u64;
            } else {
                outbuf.extend_from_slice(&block[at..at + n]);
            }
            offset += n as u64;
            left -= n;
        }
    }
    out.write_all(&outbuf)?;
    written += outbuf.len() as u64;
    Ok(written)
}

/// An MP4 to write out: its `head`, then the `ranges` (offset, length; ascending, disjoint) of
/// `src`, a file of `src_len` bytes when it was scanned.
#[derive(Clone, Copy)]
pub struct Mp4Parts<'a> {
    pub src: &'a File,
    pub src_len: u64,
    pub head: &'a [u8],
    pub ranges: &'a [(u64, u32)],
}

impl Mp4Parts<'_> {
    /// Refuses ranges of which any runs past `src_len`, before a byte is written.
    pub(super) fn check(&self) -> io::Result<()> {
        let src_len = self.src_len;
        match self
            .ranges
            .iter()
            .find(|(o, l)| o + u64::from(*l) > src_len)
        {
            Some(&(o, l)) => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("range {o}+{l} runs past the end of the source ({src_len} bytes)"),
            )),
            None => Ok(()),
        }
    }
}

/// Start writeback of every this many output bytes while copying.
const WRITEBACK_EVERY: u64 = 16 << 20;
/// Bytes of the source mapped at a time: what bounds our resident memory.
const WINDOW: u64 = 8 << 20;
/// iovecs per `writev` (Linux's IOV_MAX).
const IOV_MAX: usize = 1024;

/// Writes `parts` to `out`. The source sits locked in our inbox, but should it shrink anyway
/// the kernel's read of the mapping fails with an error, never a SIGBUS here. The source is
/// mapped a window at a time and the ranges go to the kernel straight from the page cache with
/// `writev`, so the payload is copied once. Returns the bytes written.
pub fn write_mp4_file(parts: &Mp4Parts, out: &mut File) -> io::Result<u64> {
    parts.check()?;
    let Mp4Parts {
        src,
        src_len,
        head,
        ranges,
    } = *parts;
    out.write_all(head)?;
    let mut written = head.len() as u64;
    let mut flushed = 0u64;
    let page = page_size();
    let mut iov: Vec<libc::iovec> = Vec::with_capacity(IOV_MAX);
    let mut next = 0usize;
    let mut carry: Option<(u64, u64)> = None;
    while let Some((mut off, mut len)) = carry
        .take()
        .or_else(|| ranges.get(next).map(|&(o, l)| (o, u64::from(l))))
    {
        if len == 0 {
            next += 1;
            continue;
        }
        let wstart = off / page * page;
        let wend = (wstart + WINDOW).min(src_len);
        let map = match Mapping::new(src, wstart, (wend - wstart) as usize, true) {
            Ok(m) => m,
            // A filesystem that cannot map files: finish through user-space buffers.
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => {
                let mut rest = vec![(off, len as u32)];
                rest.extend_from_slice(ranges.get(next + 1..).unwrap_or(&[]));
                return Ok(written + write_mp4(src, &[], &rest, out)?);
            }
            Err(e) => return Err(e),
        };
        loop {
            let take = len.min(wend - off);
            iov.push(libc::iovec {
                iov_base: map.at(off - wstart) as *mut libc::c_void,
                iov_len: take as usize,
            });
            if iov.len() == IOV_MAX {
                written += writev_all(out, &mut iov)?;
            }
            if take < len {
                carry = Some((off + take, len - take));
                break;
            }
            next += 1;
            match ranges.get(next) {
                Some(&(o, l)) if o < wend => {
                    off = o;
                    len = u64::from(l);
                }
                _ => break,
            }
        }
        // The iovecs point into the mapping: write them out before it goes.
        written += writev_all(out, &mut iov)?;
        drop(map);
        if written - flushed >= WRITEBACK_EVERY {
            start_writeback(out, flushed, written - flushed);
            flushed = written;
        }
    }
    Ok(written)
}

/// Writes all of `iov` (clearing it), resuming after short writes. Returns the bytes written.
fn writev_all(out: &File, iov: &mut Vec<libc::iovec>) -> io::Result<u64> {
    let mut total = 0u64;
    let mut first = 0usize;
    while first < iov.len() {
        let n = vectored(|| {
            // SAFETY: every iovec points into a live mapping owned by the caller.
            unsafe {
                libc::writev(
                    out.as_raw_fd(),
                    iov[first..].as_ptr(),
                    (iov.len() - first) as libc::c_int,
                )
            }
        })?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        total += n as u64;
        advance(iov, &mut first, n);
    }
    iov.clear();
    Ok(total)
}

/// The byte count of a vectored read or write, made again while a signal interrupts it.
pub(super) fn vectored(mut call: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        match usize::try_from(call()) {
            Ok(n) => return Ok(n),
            Err(_) => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Moves past the `n` bytes a vectored read or write just did: whole entries from `first` on
/// are done, and the one it stopped inside now starts where it stopped.
pub(super) fn advance(iov: &mut [libc::iovec], first: &mut usize, mut n: usize) {
    while n > 0 && *first < iov.len() {
        let entry = &mut iov[*first];
        if n >= entry.iov_len {
            n -= entry.iov_len;
            *first += 1;
        } else {
            entry.iov_base = (entry.iov_base as usize + n) as *mut libc::c_void;
            entry.iov_len -= n;
            n = 0;
        }
    }
}

/// Asks the kernel to start writing `len` bytes at `offset` back now (no waiting).
fn start_writeback(out: &File, offset: u64, len: u64) {
    // SAFETY: a plain syscall on an open descriptor; failure only loses the head start.
    unsafe {
        libc::sync_file_range(
            out.as_raw_fd(),
            offset as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Reads as much of `buf` as the source holds from `offset`.
fn fill<R: ReadAt + ?Sized>(src: &R, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match src.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_copy_matches_buffered_copy() {
        let dir = tempfile::tempdir().unwrap();
        let size = WINDOW as usize * 2 + 999;
        let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
        let src_path = dir.path().join("src");
        std::fs::write(&src_path, &data).unwrap();
        let src = File::open(&src_path).unwrap();
        // Ranges inside one window, across the 8 MiB window edge, and more than IOV_MAX.
        let w = WINDOW;
        let mut ranges = vec![
            (3u64, 100u32),
            (200, 5000),
            (w - 10, 50),
            (w + 100, w as u32 + 10),
            (2 * w + 500, 499),
        ];
        ranges.extend((0..3000u64).map(|i| (6000 + i * 3, 2)));
        ranges.sort();
        ranges.dedup_by(|b, a| a.0 + u64::from(a.1) > b.0);
        let mut out = File::create(dir.path().join("out")).unwrap();
        let parts = Mp4Parts {
            src: &src,
            src_len: data.len() as u64,
            head: b"HEAD",
            ranges: &ranges,
        };
        let n = write_mp4_file(&parts, &mut out).unwrap();
        let mut want = Vec::new();
        write_mp4(data.as_slice(), b"HEAD", &ranges, &mut want).unwrap();
        assert_eq!(n as usize, want.len());
        assert!(std::fs::read(dir.path().join("out")).unwrap() == want);
        let mut out = File::create(dir.path().join("short")).unwrap();
        let past_end = [(size as u64 - 100, 200)];
        let past_end = Mp4Parts {
            head: b"",
            ranges: &past_end,
            ..parts
        };
        assert!(write_mp4_file(&past_end, &mut out).is_err());
    }

    #[test]
    fn copies_ranges_across_blocks() {
        let src: Vec<u8> = (0..(3 * BLOCK + 17)).map(|i| (i % 251) as u8).collect();
        let ranges = [
            (5u64, 10u32),
            (BLOCK as u64 - 3, 7),
            (BLOCK as u64 + 100, (BLOCK + 50) as u32),
            (3 * BLOCK as u64, 17),
        ];
        let mut out = Vec::new();
        let n = write_mp4(src.as_slice(), b"HEAD", &ranges, &mut out).unwrap();
        let mut want = b"HEAD".to_vec();
        for &(o, l) in &ranges {
            want.extend_from_slice(&src[o as usize..o as usize + l as usize]);
        }
        assert_eq!(n as usize, want.len());
        assert!(out == want);
        let short = [(3 * BLOCK as u64 + 10, 20u32)];
        assert!(write_mp4(src.as_slice(), b"", &short, &mut Vec::new()).is_err());
    }
}
