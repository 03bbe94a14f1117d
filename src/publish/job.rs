//! One MP4 of `publish/`, the local half: everything publish does in the state directory, as
//! plain blocking code that the queue runs with `spawn_blocking` (under `run` the async workers
//! also serve RTMP connections, so they never wait on a disk). Between [`examine`] and
//! [`archive`] the queue uploads the MP4 and then its manifest; only once the destination has
//! confirmed both does the MP4 leave the inbox, in this order: manifest into `archive/`
//! (written atomically), MP4 into `archive/` (renamed), the inbox's manifest removed. A crash
//! between any two steps leaves the MP4 in the inbox, and the next run uploads it again (the
//! store's conditional write makes that a no-op) or the sweep tidies the manifest left behind.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::key::{self, KeyTemplate};
use super::store::{ObjectSpec, Stored, hex, parse_sha256};
use crate::events::{Emitter, Event};
use crate::manifest::ChunkManifest;
use crate::naming::NodeId;
use crate::observe::record::{self, FailureKind, Stage};
use crate::spool::{self, ChunkName, Claim, StateDir};

/// What [`examine`] found for one inbox file.
pub enum Examined {
    /// Ready to upload: the MP4 is locked until [`archive`] or [`set_aside`].
    Upload(Box<Upload>),
    /// Not taken now (locked by another process, gone, or copied in by hand and still
    /// changing); try again later.
    Skipped(&'static str),
    /// Unusable (its manifest does not read): moved to `failed/` with the reason.
    Failed,
}

/// An MP4 on its way up: where its objects go and what they carry.
pub struct Upload {
    pub mp4: PathBuf,
    /// The lock on the MP4 (held until it leaves the inbox).
    lock: File,
    pub file_name: String,
    pub stem: String,
    pub stream: String,
    pub manifest: ChunkManifest,
    pub mp4_spec: ObjectSpec,
    pub json_spec: ObjectSpec,
}

/// Where publish's objects go, and how long a file copied in by hand must be left alone.
pub struct Keys<'a> {
    pub template: &'a KeyTemplate,
    pub prefix: &'a str,
    /// This node: what a chunk recorded before names carried a node is published as.
    pub node: &'a NodeId,
    pub quiet_for: Duration,
}

/// Locks an inbox MP4 and reads what its upload needs: its manifest (or what its name tells,
/// for an MP4 copied in by hand), its object keys and metadata.
pub fn examine(state: &StateDir, keys: &Keys, mp4: &Path, events: &Emitter) -> Result<Examined> {
    let Some(file_name) = mp4.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return Ok(Examined::Skipped("no file name"));
    };
    let lock = match spool::claim(mp4)? {
        Claim::Mine(lock) => lock,
        Claim::Taken => return Ok(Examined::Skipped("locked by another process")),
        Claim::Gone => return Ok(Examined::Skipped("gone")),
    };
    let json_path = mp4.with_extension("json");
    let has_manifest = json_path.exists();
    // Our stages rename complete files in; anything else must have stopped changing.
    if !has_manifest && spool::unmodified_for(mp4)? < keys.quiet_for {
        return Ok(Examined::Skipped("not quiet yet"));
    }
    let chunk = ChunkName::parse(&file_name).map(|mut c| {
        c.node.get_or_insert_with(|| keys.node.as_str().to_string());
        c
    });
    let stem = file_name
        .strip_suffix(".mp4")
        .unwrap_or(&file_name)
        .to_string();
    let json_name = format!("{stem}.json");
    // A chunk's objects go where the key template says; a file copied in by hand under
    // another name goes to `{prefix}/{file}` (see `key::hand_copied`).
    let (mp4_key, json_key) = match &chunk {
        Some(c) => (
            keys.template.render(keys.prefix, c, &file_name),
            keys.template.render(keys.prefix, c, &json_name),
        ),
        None => (
            key::hand_copied(keys.prefix, &file_name),
            key::hand_copied(keys.prefix, &json_name),
        ),
    };
    let mut manifest = if has_manifest {
        match read_manifest(&json_path) {
            Ok(m) => m,
            Err(e) => {
                set_aside(state, mp4, &format!("{e:#}"), events)?;
                return Ok(Examined::Failed);
            }
        }
    } else {
        ChunkManifest::from_name(&stem, chunk.as_ref())
    };
    manifest
        .node
        .get_or_insert_with(|| keys.node.as_str().to_string());
    let stream = chunk
        .as_ref()
        .map_or_else(|| manifest.stream.clone(), |c| c.stream.clone());
    let mut metadata = BTreeMap::new();
    metadata.insert("stream".to_string(), stream.clone());
    if !manifest.utc_start.is_empty() {
        metadata.insert("utc-start".to_string(), manifest.utc_start.clone());
    }
    metadata.insert(
        "duration".to_string(),
        format!("{:.3}", manifest.duration_ms as f64 / 1000.0),
    );
    let size = fs::metadata(mp4)
        .with_context(|| format!("stat {}", mp4.display()))?
        .len();
    // The SHA-256 remux computed as it wrote the MP4, when the manifest has it for this size.
    let known_sha256 = match (&manifest.sha256, manifest.mp4_bytes) {
        (Some(text), Some(bytes)) if bytes == size => parse_sha256(text),
        _ => None,
    };
    Ok(Examined::Upload(Box::new(Upload {
        mp4: mp4.to_path_buf(),
        lock,
        file_name,
        stem,
        stream,
        manifest,
        mp4_spec: ObjectSpec {
            key: mp4_key,
            content_type: "video/mp4",
            metadata: metadata.clone(),
            known_sha256,
        },
        json_spec: ObjectSpec {
            key: json_key,
            content_type: "application/json",
            metadata,
            known_sha256: None,
        },
    })))
}

impl Upload {
    /// The manifest as it is uploaded and archived: with the MP4's size and SHA-256 as the
    /// destination confirmed them.
    pub fn final_manifest(&mut self, stored: &Stored) -> Result<Vec<u8>> {
        self.manifest.mp4_bytes = Some(stored.size);
        self.manifest.sha256 = Some(hex(&stored.sha256));
        let mut json = serde_json::to_vec_pretty(&self.manifest).context("encoding manifest")?;
        json.push(b'\n');
        Ok(json)
    }
}

/// After the destination confirmed the MP4 and its manifest (`json`): both into `archive/`, in
/// the order the module comment gives.
pub fn archive(state: &StateDir, upload: Box<Upload>, json: &[u8]) -> Result<()> {
    record::done(state, Stage::Publish, &upload.mp4_spec.key);
    // Retention counts from the upload, not from when remux wrote the file.
    let _ = upload.lock.set_modified(SystemTime::now());
    let archive = state.archive();
    let json_name = format!("{}.json", upload.stem);
    spool::write_atomically(&state.tmp(), &archive.join(&json_name), json)?;
    spool::handoff(&upload.mp4, &archive)?;
    drop(upload.lock);
    remove_if_present(&upload.mp4.with_extension("json"))
}

/// Moves the MP4 (and its manifest) to `failed/` with the reason, after queueing the
/// `chunk.failed` event (a crash in between sets it aside again, with the same event).
pub fn set_aside(state: &StateDir, mp4: &Path, reason: &str, events: &Emitter) -> Result<()> {
    let (stream, chunk) = spool::log_labels(mp4);
    log::error!(stream = stream.as_str(), chunk = chunk.as_str();
        "{}: {reason}; moved to {}",
        mp4.display(),
        state.failed().display()
    );
    let file = mp4.file_name().map(|n| n.to_string_lossy().into_owned());
    events.emit(&Event::chunk_failed(
        "publish",
        &file.unwrap_or_default(),
        reason,
    ))?;
    state.fail(mp4, reason)?;
    record::failed(
        state,
        Stage::Publish,
        FailureKind::Rejected,
        &format!("{}: {reason}", mp4.display()),
    );
    let json = mp4.with_extension("json");
    if json.exists() {
        spool::handoff(&json, &state.failed())?;
    }
    Ok(())
}

/// Housekeeping: manifests whose MP4 was archived by a run that died before removing them,
/// and retention of archived files. Returns how many archived files retention deleted.
pub fn sweep(state: &StateDir, keep_uploaded_for: Duration) -> Result<usize> {
    let inbox = state.publish_inbox();
    let archive = state.archive();
    for json in spool::list_inbox(&inbox, "json")? {
        let mp4 = json.with_extension("mp4");
        let Some(name) = mp4.file_name() else {
            continue;
        };
        if !mp4.exists() && archive.join(name).exists() {
            let archived_json = json.file_name().map(|n| archive.join(n));
            if archived_json.is_some_and(|p| p.exists()) {
                remove_if_present(&json)?;
            } else {
                spool::handoff(&json, &archive)?;
            }
        }
    }
    spool::remove_older_than(&archive, keep_uploaded_for, |p| {
        !matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("mp4") | Some("json")
        )
    })
}

fn remove_if_present(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(dir) = path.parent() {
                spool::fsync_dir(dir).with_context(|| format!("fsync {}", dir.display()))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

fn read_manifest(path: &Path) -> Result<ChunkManifest> {
    let text = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text)
        .with_context(|| format!("{} is not a chunk manifest", path.display()))
}
