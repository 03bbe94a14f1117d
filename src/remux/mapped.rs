//! Reading the FLV through memory mappings, a window at a time: the scan touches only the
//! pages holding tag headers (no `pread` per tag), and the copy hands page-cache pages straight
//! to `writev`. Windows are unmapped as the reader moves on, so resident memory stays at one
//! window whatever the chunk size. The file must not shrink while mapped: it sits locked in
//! our inbox, where nobody writes.

use std::cell::RefCell;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use super::scan::ReadAt;

/// Bytes mapped at a time for the scan.
const SCAN_WINDOW: u64 = 16 << 20;

/// A read-only mapping of part of a file, unmapped on drop.
pub struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Mapping {
    /// Maps `len` bytes at `offset` (a multiple of the page size); `populate` prefaults them
    /// all at once (for ranges that will be read whole).
    pub fn new(file: &File, offset: u64, len: usize, populate: bool) -> io::Result<Mapping> {
        let flags = libc::MAP_PRIVATE | if populate { libc::MAP_POPULATE } else { 0 };
        // SAFETY: a fresh private read-only mapping of an open file; callers keep the range
        // inside the file.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len.max(1),
                libc::PROT_READ,
                flags,
                file.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping { ptr, len })
    }

    pub fn at(&self, offset: u64) -> *const u8 {
        debug_assert!((offset as usize) < self.len);
        // SAFETY: offset is within the mapping.
        unsafe { (self.ptr as *const u8).add(offset as usize) }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is readable for len bytes while self lives.
        unsafe { std::slice::from_raw_parts(self.ptr as *const u8, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are what mmap returned (len.max(1) rounds to the same pages).
        unsafe {
            libc::munmap(self.ptr, self.len.max(1));
        }
    }
}

pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).max(4096) as u64
}

/// A file of known length read through a sliding mapped window.
pub struct MappedFile<'a> {
    file: &'a File,
    len: u64,
    page: u64,
    window: RefCell<Option<(u64, Mapping)>>,
}

impl<'a> MappedFile<'a> {
    pub fn new(file: &'a File, len: u64) -> MappedFile<'a> {
        MappedFile {
            file,
            len,
            page: page_size(),
            window: RefCell::new(None),
        }
    }
}

impl ReadAt for MappedFile<'_> {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let mut window = self.window.borrow_mut();
        let inside = |w: &Option<(u64, Mapping)>| {
            w.as_ref()
                .is_some_and(|(start, m)| offset >= *start && offset < start + m.len as u64)
        };
        if !inside(&window) {
            *window = None;
            let start = offset / self.page * self.page;
            let len = SCAN_WINDOW.min(self.len - start) as usize;
            *window = Some((start, Mapping::new(self.file, start, len, false)?));
        }
        let Some((start, map)) = window.as_ref() else {
            return Ok(0);
        };
        let at = (offset - start) as usize;
        let bytes = map.bytes();
        let n = buf.len().min(bytes.len() - at);
        buf[..n].copy_from_slice(&bytes[at..at + n]);
        Ok(n)
    }
}
