//! What every destination offers the publish loop: put a file or a small blob under a key,
//! without ever overwriting a different object, and say how it went.

use std::path::Path;

use super::fault::Fault;
use super::local::DirStore;
// The publish loop names these through the store it drives.
pub use super::object::{ObjectSpec, Stored, hex, parse_sha256};
use super::s3::S3Store;

pub enum Store {
    S3(Box<S3Store>),
    Dir(DirStore),
}

impl Store {
    /// Uploads the file at `path`; its SHA-256 is computed from the bytes read for the upload
    /// and checked against `spec.known_sha256`.
    pub async fn put_file(&self, path: &Path, spec: &ObjectSpec) -> Result<Stored, Fault> {
        match self {
            Store::S3(s3) => s3.put_file(path, spec).await,
            Store::Dir(dir) => {
                let (dir, path, spec) = (dir.clone(), path.to_path_buf(), spec.clone());
                tokio::task::spawn_blocking(move || dir.put_file(&path, &spec))
                    .await
                    .map_err(|e| Fault::Transient(format!("copy task failed: {e}")))?
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
