//! What every destination offers the publish loop: put a file or a small blob under a key,
//! without ever overwriting a different object, and say how it went.

use std::collections::BTreeMap;
use std::path::Path;

use super::fault::Fault;
use super::local::DirStore;
use super::s3::S3Store;

/// The object to create.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub key: String,
    pub content_type: &'static str,
    /// User metadata; the store adds `sha256` itself from what it read.
    pub metadata: BTreeMap<String, String>,
}

/// A verified object: the store holds exactly these bytes under the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub sha256: [u8; 32],
    /// The object was already there with the same size and SHA-256 (an earlier run stored it).
    pub already_there: bool,
}

pub enum Store {
    S3(Box<S3Store>),
    Dir(DirStore),
}

impl Store {
    /// Uploads the file at `path`; its SHA-256 is computed from the bytes read for the upload.
    /// `known_sha256` (from the manifest, if remux filled it) lets S3 multipart uploads read
    /// the file once; a file whose bytes do not match it is a conflict.
    pub async fn put_file(
        &self,
        path: &Path,
        spec: &ObjectSpec,
        known_sha256: Option<[u8; 32]>,
    ) -> Result<Stored, Fault> {
        match self {
            Store::S3(s3) => s3.put_file(path, spec, known_sha256).await,
            Store::Dir(dir) => {
                let (dir, path, spec) = (dir.clone(), path.to_path_buf(), spec.clone());
                let stored = tokio::task::spawn_blocking(move || dir.put_file(&path, &spec))
                    .await
                    .map_err(|e| Fault::Transient(format!("copy task failed: {e}")))??;
                match known_sha256 {
                    Some(sha) if sha != stored.sha256 => Err(Fault::Conflict(format!(
                        "sha256 {} differs from the manifest's {}",
                        hex(&stored.sha256),
                        hex(&sha)
                    ))),
                    _ => Ok(stored),
                }
            }
        }
    }

    /// Uploads a small in-memory object (the manifest).
    pub async fn put_bytes(&self, bytes: Vec<u8>, spec: &ObjectSpec) -> Result<Stored, Fault> {
        match self {
            Store::S3(s3) => s3.put_bytes(bytes, spec).await,
            Store::Dir(dir) => {
                let (dir, spec) = (dir.clone(), spec.clone());
                tokio::task::spawn_blocking(move || dir.put_bytes(&bytes, &spec))
                    .await
                    .map_err(|e| Fault::Transient(format!("copy task failed: {e}")))?
            }
        }
    }

    /// Where `key` lives, for log lines.
    pub fn url(&self, key: &str) -> String {
        match self {
            Store::S3(s3) => format!("s3://{}/{key}", s3.bucket()),
            Store::Dir(dir) => dir.root().join(key).display().to_string(),
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Parses a 64-digit hex SHA-256 (as manifests carry it).
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_round_trips() {
        let sha: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(parse_sha256(&hex(&sha)), Some(sha));
        assert_eq!(parse_sha256("abc"), None);
        assert_eq!(parse_sha256(&"zz".repeat(32)), None);
    }
}
