//! Which stages run: each holds an exclusive lock on `status/STAGE.lock` (its PID inside) for as
//! long as it runs. The kernel drops the lock when the process dies, however it dies, so a held
//! lock means a live stage and a stale file means nothing.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::spool::StateDir;

fn path(state: &StateDir, stage: &str) -> PathBuf {
    state.status().join(format!("{stage}.lock"))
}

/// Held while the stage runs; dropping it releases the lock.
#[derive(Debug)]
pub struct Running(#[allow(dead_code)] File);

/// Marks `stage` as running in this process. A second process of the same stage (two remux
/// runs) may run beside it, as the inbox locks allow; then only the first holds the mark.
pub fn hold(state: &StateDir, stage: &str) -> Result<Option<Running>> {
    let path = path(state, stage);
    std::fs::create_dir_all(state.status())
        .with_context(|| format!("creating {}", state.status().display()))?;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A reader (`holder`) takes the lock shared for a moment; wait that out before deciding
    // that another process of this stage runs.
    let mut tries = 0;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if tries < 20 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(TryLockError::WouldBlock) => return Ok(None),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
    }
    file.set_len(0)
        .and_then(|_| file.write_all(std::process::id().to_string().as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Some(Running(file)))
}

/// The PID of the process running `stage`, or `None` when none does.
pub fn holder(state: &StateDir, stage: &str) -> Option<u32> {
    let mut file = File::open(path(state, stage)).ok()?;
    match file.try_lock_shared() {
        Ok(()) => None,
        Err(TryLockError::WouldBlock) => {
            let mut text = String::new();
            file.read_to_string(&mut text).ok()?;
            // A holder that has not written its PID yet still runs.
            Some(text.trim().parse().unwrap_or(0))
        }
        Err(TryLockError::Error(_)) => None,
    }
}

/// [`hold`] for a stage's whole run: a failure only costs `rtmp-recorder status` its view.
pub fn mark(state: &StateDir, stage: &str) -> Option<Running> {
    hold(state, stage).unwrap_or_else(|e| {
        log::warn!("{e:#}; `rtmp-recorder status` will not see {stage} running");
        None
    })
}
