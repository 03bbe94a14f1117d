//! The state directory: its folders and the handoff every stage relies on (write elsewhere,
//! fsync, `rename()` into the next inbox, fsync the directory). See `docs/ARCHITECTURE.md` for
//! the contract; this module is its only implementation. The names it writes and reads follow
//! the pure rules in `naming`.

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use crate::naming;
// Chunk names are pure rules; callers that do I/O with them find them here too.
pub use crate::naming::{ChunkName, log_labels};

/// The default when neither `--state-dir` nor `$STATE_DIRECTORY` is set.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/rtmp-recorder";

/// How a stage works through its inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Take what can be taken now, then exit; files not takeable yet stay queued.
    Drain,
    /// Drain, but exit only once the inbox is empty, looking again every [`LINGER`] at what could
    /// not be taken yet (not quiet yet, locked by another process, not a chunk). For `.path`
    /// units (`DirectoryNotEmpty=`): they start a stage again at once when it exits with its
    /// folder not empty, and give up (failed) after a few such starts.
    UntilEmpty,
    /// Keep taking new files until shutdown.
    Watch,
}

impl Mode {
    pub fn new(watch: bool, until_empty: bool) -> Mode {
        match (watch, until_empty) {
            (true, _) => Mode::Watch,
            (false, true) => Mode::UntilEmpty,
            (false, false) => Mode::Drain,
        }
    }
}

/// How often a stage in [`Mode::UntilEmpty`] looks again at files it could not take.
pub const LINGER: Duration = Duration::from_secs(5);

/// What a stage said about the files left in its inbox, so that each distinct set is said
/// once. A clone is a handle on the same record, for the blocking task that looks.
#[derive(Debug, Clone, Default)]
pub struct Leftovers(Arc<Mutex<Vec<String>>>);

impl Leftovers {
    /// Whether a stage in `mode` must stay for files left in `inbox`: only in
    /// [`Mode::UntilEmpty`], while the inbox holds anything ([`leftovers`] says what). Blocking.
    pub fn linger(&self, mode: Mode, inbox: &Path) -> Result<bool> {
        if mode != Mode::UntilEmpty {
            return Ok(false);
        }
        let mut said = self.0.lock().unwrap_or_else(|e| e.into_inner());
        Ok(leftovers(inbox, &mut said)?.is_some())
    }
}

/// In [`Mode::UntilEmpty`]: what is left in `inbox` after a drain, said once per distinct set
/// (log and `STATUS=`). `None` when the inbox is empty and the stage may exit.
pub fn leftovers(inbox: &Path, said: &mut Vec<String>) -> Result<Option<Vec<String>>> {
    let left = entries(inbox)?;
    if left.is_empty() {
        return Ok(None);
    }
    if *said != left {
        let shown: Vec<&str> = left.iter().take(5).map(String::as_str).collect();
        let more = left.len().saturating_sub(shown.len());
        let text = format!(
            "{} holds {} file(s) not taken yet ({}{}): not quiet yet, locked by another process, or not a chunk; looking again every {}s (move foreign files away)",
            inbox.display(),
            left.len(),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            },
            LINGER.as_secs()
        );
        log::warn!("{text}");
        crate::systemd::status(&format!("waiting: {text}"));
        *said = left.clone();
    }
    Ok(Some(left))
}

/// The shared state directory and its fixed folders.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// The fixed folders, each once: its getter, its name, and whether every stage creates it
/// at start (`open`) or only the stage that uses it.
macro_rules! state_folders {
    ($($(#[doc = $doc:literal])* $getter:ident => $name:literal, $at_open:literal;)*) => {
        impl StateDir {
            $(
                $(#[doc = $doc])*
                pub fn $getter(&self) -> PathBuf {
                    self.root.join($name)
                }
            )*

            /// The folders `open` creates.
            fn created_at_open(&self) -> Vec<PathBuf> {
                let mut out = Vec::new();
                $(if $at_open {
                    out.push(self.$getter());
                })*
                out
            }
        }
    };
}

state_folders! {
    /// Chunks being written; only ingest writes here.
    recording => "recording", true;
    /// Finished FLV chunks waiting for remux.
    remux_inbox => "remux", true;
    /// Finished MP4s (and their manifests) waiting for publish.
    publish_inbox => "publish", true;
    /// FLVs after their MP4 exists, MP4s after a verified upload; retention deletes them.
    archive => "archive", true;
    /// Inputs a stage could not process, each with `NAME.reason` beside it.
    failed => "failed", true;
    /// Work in progress of remux and publish; never an inbox.
    tmp => "tmp", true;
    /// What stages leave for `rtmp-recorder status` and `/metrics` (see `observe`).
    status => "status", true;
    /// Events waiting for delivery to the hooks (see `events`); one file each, renamed in.
    events => "events", true;
    /// Each stream's last publish as ingest left it, for reconnect continuity (`reconnect`).
    sessions => "sessions", true;
    /// Where `run` publishes when no S3 destination is configured.
    published => "published", false;
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> StateDir {
        StateDir { root: root.into() }
    }

    /// Creates every folder of the layout and removes partial files left in `tmp/` by writers
    /// that died; every stage calls this before touching anything.
    pub fn open(root: impl Into<PathBuf>) -> Result<StateDir> {
        let dir = StateDir::new(root);
        for sub in dir.created_at_open() {
            fs::create_dir_all(&sub)
                .with_context(|| format!("creating state folder {}", sub.display()))?;
        }
        let removed = clear_stale_partials(&dir.tmp())?;
        if removed > 0 {
            log::info!("removed {removed} partial file(s) left in tmp/ by writers that died");
        }
        Ok(dir)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Moves an input a stage could not process to `failed/`, with `NAME.reason` beside it.
    pub fn fail(&self, path: &Path, reason: &str) -> Result<PathBuf> {
        let name = path
            .file_name()
            .with_context(|| format!("{} has no file name", path.display()))?;
        let mut reason_name = name.to_os_string();
        reason_name.push(".reason");
        let reason_path = self.failed().join(reason_name);
        write_atomically(&self.tmp(), &reason_path, format!("{reason}\n").as_bytes())?;
        handoff(path, &self.failed())
    }
}

/// Flushes a directory entry change (create, rename) to disk.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Hands a complete file on: fsync it, `rename()` it into `dest_dir`, fsync both directories.
/// Returns the new path. Both folders must be on one filesystem (they are: one state dir).
pub fn handoff(path: &Path, dest_dir: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?;
    let dest = dest_dir.join(name);
    File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("fsync {}", path.display()))?;
    fs::rename(path, &dest)
        .with_context(|| format!("moving {} to {}", path.display(), dest_dir.display()))?;
    fsync_dir(dest_dir).with_context(|| format!("fsync {}", dest_dir.display()))?;
    if let Some(parent) = path.parent() {
        fsync_dir(parent).with_context(|| format!("fsync {}", parent.display()))?;
    }
    Ok(dest)
}

/// Writes `bytes` to `dest` so that `dest` is either absent/old or complete: through a temporary
/// file in `tmp_dir` (same filesystem), fsynced, renamed.
pub fn write_atomically(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let name = dest
        .file_name()
        .with_context(|| format!("{} has no file name", dest.display()))?;
    let tmp = tmp_dir.join(naming::partial_name(
        &name.to_string_lossy(),
        std::process::id(),
    ));
    let written = File::create(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))
        .and_then(|mut f| {
            f.write_all(bytes)
                .and_then(|_| f.sync_all())
                .with_context(|| format!("writing {}", tmp.display()))
        })
        .and_then(|()| {
            fs::rename(&tmp, dest).with_context(|| format!("renaming into {}", dest.display()))
        });
    if let Err(e) = written {
        // A full disk must not also keep the bytes that did fit.
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Some(parent) = dest.parent() {
        fsync_dir(parent).with_context(|| format!("fsync {}", parent.display()))?;
    }
    Ok(())
}

/// Reads the JSON file `path` that `write_atomically` wrote: `None` when there is none, an
/// error naming the file (as `what`) when it cannot be read or is not one.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<Option<T>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .with_context(|| format!("{} is not {what}", path.display()))
}

/// Removes the partial files `write_atomically` left in `tmp_dir` when its process died. A
/// partial whose writer's PID is alive may be a write in progress of another stage (under `run`
/// all stages share one PID) and stays. Returns how many were removed.
pub fn clear_stale_partials(tmp_dir: &Path) -> Result<usize> {
    let entries = match fs::read_dir(tmp_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e).with_context(|| format!("listing {}", tmp_dir.display())),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", tmp_dir.display()))?;
        let name = entry.file_name();
        let Some((_, pid)) = name.to_str().and_then(naming::parse_partial) else {
            continue;
        };
        if Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            // Harmless to leave: tmp/ is never an inbox. Say so rather than stop the stage.
            Err(e) => log::warn!("could not remove stale {}: {e}", entry.path().display()),
        }
    }
    Ok(removed)
}

/// Opens `path` and takes an exclusive lock without waiting. `Ok(None)`: someone else holds it.
pub fn try_lock(path: &Path) -> Result<Option<File>> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    match f.try_lock() {
        Ok(()) => Ok(Some(f)),
        Err(TryLockError::WouldBlock) => Ok(None),
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// What reaching for an inbox file came to.
pub enum Claim {
    /// Ours: the open file, exclusively locked.
    Mine(File),
    /// Another worker holds it.
    Taken,
    /// It left the inbox (the previous holder moved it on) before we could open it.
    Gone,
}

/// [`try_lock`] for a file in an inbox, which another worker may hold or move on at any moment:
/// neither is an error.
pub fn claim(path: &Path) -> Result<Claim> {
    match try_lock(path) {
        Ok(Some(f)) => Ok(Claim::Mine(f)),
        Ok(None) => Ok(Claim::Taken),
        Err(_) if !path.exists() => Ok(Claim::Gone),
        Err(e) => Err(e),
    }
}

/// The files in an inbox with extension `ext`, oldest name first (names sort by time). Hidden
/// files and folders are skipped.
pub fn list_inbox(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in dir_entries(dir)? {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !name.ends_with(&format!(".{ext}")) {
            continue;
        }
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// The names in `dir` (every kind of entry, as `DirectoryNotEmpty=` counts them), sorted; empty
/// when it does not exist.
pub fn entries(dir: &Path) -> Result<Vec<String>> {
    let mut out: Vec<String> = dir_entries(dir)?
        .iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    Ok(out)
}

/// The entries of `dir`; none when it does not exist.
fn dir_entries(dir: &Path) -> Result<Vec<fs::DirEntry>> {
    let listing = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    listing
        .map(|e| e.with_context(|| format!("listing {}", dir.display())))
        .collect()
}

/// How long ago `path` was last modified (zero if its clock is in the future).
pub fn unmodified_for(path: &Path) -> Result<Duration> {
    let mtime = fs::metadata(path)
        .and_then(|m| m.modified())
        .with_context(|| format!("stat {}", path.display()))?;
    Ok(SystemTime::now()
        .duration_since(mtime)
        .unwrap_or(Duration::ZERO))
}

/// Deletes files in `dir` older than `age` (by mtime). Returns how many were removed.
pub fn remove_older_than(dir: &Path, age: Duration, keep: impl Fn(&Path) -> bool) -> Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if !path.is_file() || keep(&path) {
            continue;
        }
        if unmodified_for(&path)? >= age {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
impl StateDir {
    /// A state directory in a fresh temporary folder, removed when the `TempDir` drops.
    pub fn temporary() -> (tempfile::TempDir, StateDir) {
        let tmp = tempfile::tempdir().unwrap();
        let state = StateDir::open(tmp.path()).unwrap();
        (tmp, state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_leftovers() {
        assert_eq!(Mode::new(true, true), Mode::Watch);
        assert_eq!(Mode::new(false, true), Mode::UntilEmpty);
        assert_eq!(Mode::new(false, false), Mode::Drain);
        let tmp = tempfile::tempdir().unwrap();
        let mut said = Vec::new();
        assert_eq!(
            leftovers(&tmp.path().join("missing"), &mut said).unwrap(),
            None
        );
        assert_eq!(leftovers(tmp.path(), &mut said).unwrap(), None);
        // Any entry counts, as for DirectoryNotEmpty=: dot files and folders too.
        fs::write(tmp.path().join(".hidden"), b"x").unwrap();
        fs::create_dir(tmp.path().join("sub")).unwrap();
        let left = leftovers(tmp.path(), &mut said).unwrap();
        assert_eq!(left, Some(vec![".hidden".to_string(), "sub".to_string()]));
        assert_eq!(said, [".hidden", "sub"]);
    }

    #[test]
    fn handoff_moves_and_lock_excludes() {
        let (_tmp, state) = StateDir::temporary();
        let src = state.recording().join("a.flv");
        fs::write(&src, b"FLV").unwrap();
        let held = try_lock(&src).unwrap().expect("first lock");
        assert!(try_lock(&src).unwrap().is_none(), "second lock must fail");
        drop(held);
        let dest = handoff(&src, &state.remux_inbox()).unwrap();
        assert!(!src.exists());
        assert_eq!(fs::read(&dest).unwrap(), b"FLV");
        assert_eq!(
            list_inbox(&state.remux_inbox(), "flv").unwrap(),
            vec![dest.clone()]
        );
        let failed = state.fail(&dest, "not an FLV").unwrap();
        assert!(failed.exists());
        let reason = fs::read_to_string(state.failed().join("a.flv.reason")).unwrap();
        assert_eq!(reason, "not an FLV\n");
    }

    #[test]
    fn open_clears_partials_of_dead_writers_only() {
        let (tmp, state) = StateDir::temporary();
        // Above any pid_max Linux allows (2^22), so never a live process.
        let dead = naming::partial_name("a.json", 4_000_000_000);
        let live = naming::partial_name("b.json", std::process::id());
        for name in [&dead, &live, &"remux-x.mp4".to_string()] {
            fs::write(state.tmp().join(name), b"x").unwrap();
        }
        StateDir::open(tmp.path()).unwrap();
        let mut left: Vec<String> = fs::read_dir(state.tmp())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, vec![live, "remux-x.mp4".to_string()]);
    }
}
