//! One FLV chunk through the remux: lock it, scan it (pass 1), write the MP4 into `tmp/`
//! (pass 2), then commit in the order the state-directory contract fixes: manifest into
//! `publish/`, MP4 into `publish/`, FLV into `archive/`. A crash at any point leaves either the
//! old state or the new one; a rerun redoes the work and writes the same bytes.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::blocks::BlockFile;
use super::copy::{Mp4Parts, write_mp4_file};
use super::direct;
use super::manifest;
use super::scan::{self, ScanError};
use crate::events::{Emitter, Event};
use crate::naming::ChunkName;
use crate::spool::{self, Claim, StateDir};

/// Prefix of this stage's files in `tmp/` (leftovers are removed at stage start).
pub const TMP_PREFIX: &str = "remux-";

/// Seconds from the MP4 epoch (1904-01-01) to the Unix epoch.
const MP4_EPOCH_OFFSET: i64 = 2_082_844_800;

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The MP4 is in `publish/`, the FLV in `archive/`.
    Done { mp4: PathBuf },
    /// Not taken now (locked by another worker, not quiet yet, gone); try again later.
    Skipped(&'static str),
    /// Unusable input: moved to `failed/` with a reason.
    Failed(String),
}

/// Remuxes `flv` (a file in `remux/`). An input set aside in `failed/` queues a `chunk.failed`
/// event first (a crash in between sets it aside again, with the same event).
pub fn remux_one(
    state: &StateDir,
    flv: &Path,
    quiet: Duration,
    events: &Emitter,
) -> Result<Outcome> {
    let file_name = flv
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} has no file name", flv.display()))?;
    let stem = file_name
        .strip_suffix(".flv")
        .unwrap_or(&file_name)
        .to_string();
    let name = ChunkName::parse(&file_name);
    let stream = name.as_ref().map_or(String::new(), |n| n.stream.clone());
    if !flv.exists() {
        return Ok(Outcome::Skipped("gone"));
    }
    // Names of our own form were renamed in complete; anything else may still be copied in.
    if name.is_none() && spool::unmodified_for(flv)? < quiet {
        return Ok(Outcome::Skipped("not quiet yet"));
    }
    let file = match spool::claim(flv)? {
        Claim::Mine(f) => f,
        Claim::Taken => return Ok(Outcome::Skipped("locked by another worker")),
        Claim::Gone => return Ok(Outcome::Skipped("gone")),
    };
    // The previous holder may have moved the file on between our listing and our lock.
    if !same_file(&file, flv) {
        return Ok(Outcome::Skipped("gone"));
    }
    let len = file
        .metadata()
        .with_context(|| format!("stat {}", flv.display()))?
        .len();

    let scanned = match scan::scan(&BlockFile::new(&file, len), len) {
        Ok(s) => s,
        Err(ScanError::Unusable(why)) => {
            events.emit(&Event::chunk_failed("remux", &file_name, &why))?;
            state.fail(flv, &why)?;
            log::warn!(stream = stream.as_str(), chunk = stem.as_str(); "moved to failed/: {why}");
            return Ok(Outcome::Failed(why));
        }
        Err(e) => return Err(e).with_context(|| format!("scanning {}", flv.display())),
    };
    if let Some(at) = scanned.torn_at {
        log::warn!(stream = stream.as_str(), chunk = stem.as_str(), offset = at;
            "the FLV ends inside a tag (torn tail): remuxing the {at} bytes before it");
    }
    if let Some(at) = scanned.framing_lost_at {
        log::warn!(stream = stream.as_str(), chunk = stem.as_str(), offset = at;
            "unknown tag type: FLV framing lost, remuxing the {at} bytes before it");
    }
    if scanned.repaired > 0 {
        log::warn!(stream = stream.as_str(), chunk = stem.as_str(), repaired = scanned.repaired;
            "repaired {} non-monotonic or jumping timestamps", scanned.repaired);
    }
    if scanned.config_changes > 0 {
        log::info!(stream = stream.as_str(), chunk = stem.as_str(), changes = scanned.config_changes;
            "codec configuration changed mid-chunk: extra sample descriptions written");
    }

    let creation = name.as_ref().map_or(0, |n| {
        (n.start.to_unix_millis().div_euclid(1000) + MP4_EPOCH_OFFSET).max(0) as u64
    });
    let layout = match scanned.movie.layout(creation) {
        Ok(l) => l,
        Err(e) => {
            let why = format!("cannot lay out the MP4: {e}");
            events.emit(&Event::chunk_failed("remux", &file_name, &why))?;
            state.fail(flv, &why)?;
            log::warn!(stream = stream.as_str(), chunk = stem.as_str(); "moved to failed/: {why}");
            return Ok(Outcome::Failed(why));
        }
    };

    let tmp = state.tmp().join(format!("{TMP_PREFIX}{stem}.mp4"));
    let tracks = scanned.movie.summaries();
    let m = manifest::build(&stem, name.as_ref(), scanned.metadata.as_ref(), &tracks);
    let publish = state.publish_inbox();
    let mp4 = publish.join(format!("{stem}.mp4"));
    let written = write_and_queue(&file, flv, len, &layout, &tmp, &m, &mp4);
    let written = match written {
        Ok(n) => n,
        Err(e) => {
            // Nothing of this attempt stays: a full disk gets its space back, the FLV stays
            // in remux/ untouched and is tried again later.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    spool::fsync_dir(&publish).with_context(|| format!("fsync {}", publish.display()))?;
    spool::handoff(flv, &state.archive())?;
    drop(file);

    log::info!(stream = stream.as_str(), chunk = stem.as_str(), bytes = written, duration_ms = m.duration_ms,
        video_frames = m.video.as_ref().map_or(0, |v| v.frames),
        audio_frames = m.audio.as_ref().map_or(0, |a| a.frames),
        dropped = scanned.dropped; "remuxed");
    Ok(Outcome::Done { mp4 })
}

/// Pass 2 and the first two commit steps: the MP4 written and fsynced in `tmp/`, the manifest
/// into `publish/`, the MP4 renamed after it. Returns the MP4's size.
fn write_and_queue(
    file: &File,
    flv: &Path,
    len: u64,
    layout: &crate::mp4::movie::Layout,
    tmp: &Path,
    m: &crate::manifest::ChunkManifest,
    mp4: &Path,
) -> Result<u64> {
    let (mut out, direct) =
        direct::create(tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let parts = Mp4Parts {
        src: file,
        src_len: len,
        head: &layout.head,
        ranges: &layout.ranges,
    };
    let written = if direct {
        direct::write_mp4_direct(&parts, &mut out)
    } else {
        write_mp4_file(&parts, &mut out)
    }
    .with_context(|| format!("writing {} from {}", tmp.display(), flv.display()))?;
    out.sync_all()
        .with_context(|| format!("fsync {}", tmp.display()))?;
    drop(out);
    anyhow::ensure!(
        written == layout.file_size,
        "{}: wrote {written} bytes, expected {}",
        tmp.display(),
        layout.file_size
    );
    let json = serde_json::to_vec_pretty(m).context("encoding the manifest")?;
    let publish = mp4.parent().unwrap_or(Path::new("."));
    let stem = m.name.as_str();
    spool::write_atomically(
        tmp.parent().unwrap_or(Path::new(".")),
        &publish.join(format!("{stem}.json")),
        &json,
    )?;
    fs::rename(tmp, mp4)
        .with_context(|| format!("moving {} to {}", tmp.display(), mp4.display()))?;
    Ok(written)
}

fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}
