//! Memory mappings of the FLV, a window at a time, for the copy: it hands page-cache pages
//! straight to `writev`. Windows are unmapped as the copy moves on, so resident memory stays at
//! one window whatever the chunk size. Only the kernel reads through these mappings (`writev`):
//! if the file shrinks under us (it sits locked in our inbox, but a lock does not stop a
//! truncate), the pages past its end give `writev` EFAULT, an error, where a read of ours
//! would take SIGBUS.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

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
        // SAFETY: a fresh private read-only mapping of an open file at an address the kernel
        // picks; nothing in Rust refers to it but `self` (only the kernel reads it, see above).
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

    /// The address of byte `offset` of the mapping, for the kernel to read (`writev`); never
    /// dereferenced by us.
    pub fn at(&self, offset: u64) -> *const u8 {
        // Checked in release builds too: an address past the mapping would make writev read
        // whatever memory lies there.
        assert!(
            offset < self.len as u64,
            "offset {offset} outside a mapping of {} bytes",
            self.len
        );
        // SAFETY: offset is within the mapping (checked above).
        unsafe { (self.ptr as *const u8).add(offset as usize) }
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
