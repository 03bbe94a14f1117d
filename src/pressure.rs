//! Retention under disk pressure: while free space is below `--min-free-disk`, delete files in
//! `archive/` that are already uploaded, oldest first, until it is not. Nothing else is ever
//! deleted to make room.
//!
//! What counts as uploaded (the handoff order of docs/ARCHITECTURE.md makes these exact):
//! - `archive/NAME.mp4` (and its `NAME.json`): publish moves an MP4 there only after a
//!   verified upload, and stamps it with the upload time.
//! - `archive/NAME.flv` when no `NAME.mp4` waits in `publish/` or lies in `failed/`: remux
//!   archives an FLV only after its MP4 is in `publish/`, and an MP4 leaves `publish/` only for
//!   `archive/` (uploaded) or `failed/` (not). `publish/` is looked at before `failed/`, so an MP4
//!   moving between them is seen in one or the other.
//!
//! Ingest runs this sweep: it is the process that is up while the disk fills (under systemd
//! remux and publish run only while their inbox holds files, so they may not be running for
//! hours) and the one that refuses publishes below the watermark, so it frees space right before
//! deciding (and every [`CHECK_EVERY`] while it runs).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::disk::{DiskSpace, MinFree};
use crate::spool::StateDir;

/// How often ingest looks at free space while it runs.
pub const CHECK_EVERY: Duration = Duration::from_secs(5);

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Freed {
    pub files: usize,
    pub bytes: u64,
    /// Free space after the sweep, and whether it is still below the watermark.
    pub space: Option<DiskSpace>,
    pub still_below: bool,
}

/// Deletes uploaded files, oldest first, while free space is below `min_free`.
pub fn free_space(state: &StateDir, min_free: MinFree) -> Result<Freed> {
    let root = state.root();
    let mut space =
        DiskSpace::of(root).with_context(|| format!("reading free space of {}", root.display()))?;
    let mut freed = Freed::default();
    if !min_free.is_below(space) {
        freed.space = Some(space);
        return Ok(freed);
    }
    for (_, path) in uploaded_oldest_first(state)? {
        let companions = companion_manifest(&path);
        for file in std::iter::once(path).chain(companions) {
            let len = fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(&file) {
                Ok(()) => {
                    freed.bytes += len;
                    freed.files += 1;
                    log::info!(file = file.display().to_string().as_str();
                        "disk below --min-free-disk: deleted uploaded {}", file.display());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("removing {}", file.display())),
            }
        }
        space = DiskSpace::of(root)
            .with_context(|| format!("reading free space of {}", root.display()))?;
        if !min_free.is_below(space) {
            break;
        }
    }
    freed.space = Some(space);
    freed.still_below = min_free.is_below(space);
    Ok(freed)
}

/// `archive/NAME.json` beside an archived MP4: the manifest goes with its video.
fn companion_manifest(path: &Path) -> Option<PathBuf> {
    (path.extension()? == "mp4").then(|| path.with_extension("json"))
}

/// The archived files that are uploaded, with their mtime, oldest first.
fn uploaded_oldest_first(state: &StateDir) -> Result<Vec<(SystemTime, PathBuf)>> {
    let archive = state.archive();
    let listing =
        fs::read_dir(&archive).with_context(|| format!("listing {}", archive.display()))?;
    let mut out = Vec::new();
    for entry in listing {
        let entry = entry.with_context(|| format!("listing {}", archive.display()))?;
        let path = entry.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let uploaded = match name.rsplit_once('.') {
            Some((_, "mp4")) => true,
            Some((stem, "flv")) => {
                let mp4 = format!("{stem}.mp4");
                !state.publish_inbox().join(&mp4).exists() && !state.failed().join(&mp4).exists()
            }
            _ => false,
        };
        if uploaded {
            let mtime = entry
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            out.push((mtime, path));
        }
    }
    out.sort();
    Ok(out)
}
