//! Free space on the file system that holds the state directory, and the `--min-free-disk`
//! watermark below which the recorder stops taking new work rather than fill the disk.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What `statvfs(3)` says about one file system, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    /// Bytes an unprivileged writer may still use (`f_bavail`): root's reserve does not count,
    /// since the service does not run as root.
    pub available: u64,
    pub total: u64,
}

impl DiskSpace {
    /// Reads the file system holding `path`.
    // statvfs's fields are `c_ulong`: u64 here, u32 on 32-bit targets.
    #[allow(clippy::unnecessary_cast)]
    pub fn of(path: &Path) -> io::Result<DiskSpace> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
        let mut out = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
        // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `out` points to
        // a `statvfs` the call fills (zeroed first, so it is initialised either way).
        let rc = unsafe { libc::statvfs(c_path.as_ptr(), out.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: zero-initialised above and filled by a successful statvfs.
        let s = unsafe { out.assume_init() };
        // The fields are c_ulong / fsblkcnt_t: u64 here, narrower on 32-bit targets.
        #[allow(clippy::unnecessary_cast)]
        let (block, available, total) = (s.f_frsize as u64, s.f_bavail as u64, s.f_blocks as u64);
        Ok(DiskSpace {
            available: available.saturating_mul(block),
            total: total.saturating_mul(block),
        })
    }
}

/// The smallest free space the recorder keeps: bytes (`2G`) or a share of the file system (`5%`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinFree {
    Bytes(u64),
    /// Hundredths of a percent, so `0.5%` is exact.
    Basis(u32),
}

impl MinFree {
    /// Parses `2G`, `500M`, `1073741824` or `5%`, `0.5%`.
    pub fn parse(text: &str) -> Result<MinFree, String> {
        let t = text.trim();
        let Some(pct) = t.strip_suffix('%') else {
            return crate::size::parse(t).map(MinFree::Bytes);
        };
        let pct = pct.trim();
        let (whole, frac) = pct.split_once('.').unwrap_or((pct, ""));
        let bad = || format!("{text:?}: not a percentage (e.g. 5% or 0.5%)");
        if whole.is_empty() || frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let whole: u32 = whole.parse().map_err(|_| bad())?;
        let frac: u32 = if frac.is_empty() {
            0
        } else {
            format!("{frac:0<2}").parse().map_err(|_| bad())?
        };
        let basis = whole
            .checked_mul(100)
            .and_then(|w| w.checked_add(frac))
            .filter(|b| *b <= 10_000)
            .ok_or_else(|| format!("{text:?}: a percentage must be at most 100%"))?;
        Ok(MinFree::Basis(basis))
    }

    /// The watermark in bytes on a file system of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            MinFree::Bytes(b) => b,
            MinFree::Basis(bp) => (total as u128 * bp as u128 / 10_000) as u64,
        }
    }

    /// True when `space` has less available than the watermark.
    pub fn is_below(self, space: DiskSpace) -> bool {
        space.available < self.bytes(space.total)
    }
}

impl std::fmt::Display for MinFree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinFree::Bytes(b) => write!(f, "{b} bytes"),
            MinFree::Basis(bp) if bp % 100 == 0 => write!(f, "{}%", bp / 100),
            MinFree::Basis(bp) => write!(f, "{}.{:02}%", bp / 100, bp % 100),
        }
    }
}

/// True when `err` says the file system or the user's quota has no room (ENOSPC, EDQUOT):
/// the write may work again once space is freed, so the input is not at fault.
pub fn is_full(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || err.kind() == io::ErrorKind::StorageFull
        || err.kind() == io::ErrorKind::QuotaExceeded
}

/// [`is_full`] for any I/O error in an error's chain.
pub fn is_full_anywhere(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<io::Error>())
        .any(is_full)
}

/// What an operator does about a full disk, for log lines.
pub fn advice(state_root: &Path) -> String {
    format!(
        "free space on the file system of {} (uploaded files in archive/ can go: lower --keep-uploaded-for \
         and --keep-flv-for, or raise --min-free-disk so ingest deletes them sooner), or grow the disk",
        state_root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bytes_and_percentages() {
        assert_eq!(MinFree::parse("2G"), Ok(MinFree::Bytes(2 << 30)));
        assert_eq!(MinFree::parse("4096"), Ok(MinFree::Bytes(4096)));
        assert_eq!(MinFree::parse("5%"), Ok(MinFree::Basis(500)));
        assert_eq!(MinFree::parse("0.5%"), Ok(MinFree::Basis(50)));
        assert_eq!(MinFree::parse(" 12.25% "), Ok(MinFree::Basis(1225)));
        for bad in ["%", "101%", "1.234%", "-1%", "x%", ".5%", "12Q"] {
            assert!(MinFree::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(MinFree::parse("0.5%").unwrap().to_string(), "0.50%");
        assert_eq!(MinFree::parse("5%").unwrap().to_string(), "5%");
    }

    #[test]
    fn watermark_against_space() {
        let space = DiskSpace {
            available: 9_000,
            total: 100_000,
        };
        assert!(MinFree::Basis(1000).is_below(space));
        assert!(!MinFree::Basis(900).is_below(space));
        assert!(MinFree::Bytes(9_001).is_below(space));
        assert!(!MinFree::Bytes(9_000).is_below(space));
    }

    #[test]
    fn reads_a_real_file_system() {
        let space = DiskSpace::of(Path::new("/")).unwrap();
        assert!(
            space.total > 0 && space.available <= space.total,
            "{space:?}"
        );
        assert!(DiskSpace::of(Path::new("/no/such/place")).is_err());
    }

    #[test]
    fn tells_a_full_disk_from_other_errors() {
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        assert!(is_full(&full));
        assert!(is_full(&io::Error::from_raw_os_error(libc::EDQUOT)));
        assert!(!is_full(&io::Error::from_raw_os_error(libc::EIO)));
        let wrapped = anyhow::Error::new(full).context("writing x.flv");
        assert!(is_full_anywhere(&wrapped));
        assert!(!is_full_anywhere(&anyhow::anyhow!("no space left")));
    }
}
