//! Writing a clip whose chunks are files on disk: the head, then each sample range copied by
//! the kernel (`copy_file_range`), so the media never passes through this process's memory,
//! and file systems that share extents (XFS, Btrfs) need not copy the data at all. Where the
//! kernel cannot (another file system, an old kernel), the range is read and written instead.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

/// Writes `head` and then `reads` ((source index, offset, length), in order) out of `sources`
/// to `out`, and fsyncs it. Returns the bytes copied from the sources.
pub fn write(
    out: &Path,
    head: &[u8],
    sources: &[(Arc<File>, PathBuf)],
    reads: &[(usize, u64, u64)],
) -> Result<u64> {
    let mut file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    file.write_all(head)?;
    let mut copied = 0u64;
    for &(source, offset, len) in reads {
        let (src, path) = &sources[source];
        let done = kernel_copy(src, offset, &file, len)
            .with_context(|| format!("copying from {}", path.display()))?;
        if done < len {
            // The kernel copies nothing between these files: the rest the plain way.
            let mut buf = vec![0u8; (len - done) as usize];
            src.read_exact_at(&mut buf, offset + done)
                .with_context(|| format!("reading {}", path.display()))?;
            file.write_all(&buf)?;
        }
        copied += len;
    }
    file.sync_all()?;
    Ok(copied)
}

/// Copies up to `len` bytes at `offset` of `src` to `dst`'s position; returns how many the
/// kernel copied (fewer, 0 even, where it cannot copy between these files).
fn kernel_copy(src: &File, offset: u64, dst: &File, len: u64) -> Result<u64> {
    let mut from = offset as libc::loff_t;
    let mut done = 0u64;
    while done < len {
        let want = (len - done).min(1 << 30) as usize;
        // SAFETY: both descriptors are open for the call; `from` is ours; a null output
        // offset means dst's file position, which the call advances.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut from,
                dst.as_raw_fd(),
                std::ptr::null_mut(),
                want,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP) => Ok(done),
                _ => Err(e.into()),
            };
        }
        if n == 0 {
            bail!("the file ends before byte {}", offset + len);
        }
        done += n as u64;
    }
    Ok(done)
}
