//! Finding a stream's chunks: the manifests (`NAME.json`, each beside its `NAME.mp4`) under the
//! folders a clip reads from: the state directory's `publish/` and `archive/`, and a `file://`
//! destination with whatever folders its key template made.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::manifest::ChunkManifest;
use crate::naming::ChunkName;
use crate::utc::Civil;

/// Key templates nest a few folders (`{prefix}/{app}/{stream}/{YYYY}/{MM}/{DD}`); deeper trees
/// are not ours.
const MAX_DEPTH: usize = 12;

/// Where a chunk's MP4 is.
#[derive(Debug, Clone)]
pub enum Location {
    File(PathBuf),
    /// A key in the destination bucket.
    S3(String),
}

/// One published chunk.
#[derive(Debug, Clone)]
pub struct Chunk {
    pub manifest: ChunkManifest,
    pub location: Location,
    /// Bytes of the MP4.
    pub size: u64,
    /// `manifest.utc_start` in Unix ms.
    pub start_ms: i64,
}

impl Chunk {
    pub fn end_ms(&self) -> i64 {
        self.start_ms + self.manifest.duration_ms as i64
    }
}

/// Every chunk of `app`/`stream` under `roots` (missing roots are skipped), oldest first, each
/// name once.
pub fn find(roots: &[PathBuf], app: &str, stream: &str) -> Result<Vec<Chunk>> {
    let mut found: Vec<Chunk> = Vec::new();
    for root in roots {
        walk(root, 0, &mut |json| {
            let Some(name) = json.file_name().and_then(|n| n.to_str()) else {
                return Ok(());
            };
            let Some(chunk) = ChunkName::parse(name) else {
                return Ok(());
            };
            let mp4 = json.with_extension("mp4");
            if chunk.app != app || chunk.stream != stream || !mp4.is_file() {
                return Ok(());
            }
            let text =
                std::fs::read(json).with_context(|| format!("reading {}", json.display()))?;
            let size = std::fs::metadata(&mp4)
                .with_context(|| format!("reading {}", mp4.display()))?
                .len();
            found.push(chunk_of(
                &text,
                &json.display().to_string(),
                Location::File(mp4),
                size,
            )?);
            Ok(())
        })?;
    }
    found.sort_by(|a, b| (a.start_ms, &a.manifest.name).cmp(&(b.start_ms, &b.manifest.name)));
    found.dedup_by(|a, b| a.manifest.name == b.manifest.name);
    Ok(found)
}

/// A chunk from its manifest's bytes (`what` names where they came from).
pub fn chunk_of(manifest: &[u8], what: &str, location: Location, size: u64) -> Result<Chunk> {
    let manifest: ChunkManifest = serde_json::from_slice(manifest)
        .with_context(|| format!("{what} is not a chunk manifest"))?;
    let start_ms = Civil::parse_rfc3339_millis(&manifest.utc_start)
        .with_context(|| format!("{what}: utc_start {:?} is not RFC 3339", manifest.utc_start))?;
    Ok(Chunk {
        manifest,
        location,
        size,
        start_ms,
    })
}

fn walk(dir: &Path, depth: usize, visit: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let path = entry.path();
        let kind = entry
            .file_type()
            .with_context(|| format!("reading {}", path.display()))?;
        if kind.is_dir() && depth < MAX_DEPTH {
            walk(&path, depth + 1, visit)?;
        } else if kind.is_file() && path.extension().is_some_and(|e| e == "json") {
            visit(&path)?;
        }
    }
    Ok(())
}
