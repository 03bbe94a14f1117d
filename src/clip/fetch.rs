//! Reading a chunk's bytes, from a file or from S3: the head (everything before its `mdat`)
//! first, then whatever ranges the clip needs.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use super::bucket::Bucket;
use super::sources::{Chunk, Location};
use crate::mp4::read;

/// The first read of a chunk: the `ftyp` and the `moov`'s box header, which gives the rest.
const FIRST_READ: u64 = 4096;

/// Where the chunks' bytes come from.
pub enum Reader {
    Disk,
    S3(Arc<Bucket>),
}

/// Where one chunk's bytes are read from; cheap to clone into a task. A file is opened once.
#[derive(Clone)]
pub enum Fetch {
    File(Arc<File>, PathBuf),
    S3(Arc<Bucket>, String),
}

impl Fetch {
    pub async fn open(reader: &Reader, chunk: &Chunk) -> Result<Fetch> {
        Ok(match (reader, &chunk.location) {
            (Reader::Disk, Location::File(path)) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let file =
                        File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                    Ok::<_, anyhow::Error>(Fetch::File(Arc::new(file), path))
                })
                .await
                .context("opening a chunk: task panicked")??
            }
            (Reader::S3(bucket), Location::S3(key)) => Fetch::S3(Arc::clone(bucket), key.clone()),
            _ => bail!(
                "{}: found in one place, read from another",
                chunk.manifest.name
            ),
        })
    }

    /// `len` bytes at `offset`.
    pub async fn read(self, offset: u64, len: u64) -> Result<Vec<u8>> {
        match self {
            Fetch::File(file, path) => tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, offset)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(buf)
            })
            .await
            .context("reading a chunk: task panicked")?,
            Fetch::S3(bucket, key) => bucket.read(&key, offset, len).await,
        }
    }
}

/// Reads a chunk's head (everything before the `mdat`): a small first read, then exactly what
/// its box headers say is missing. Returns the head and the bytes read.
pub async fn read_head(fetch: &Fetch, chunk: &Chunk) -> Result<(Vec<u8>, u64)> {
    let mut head = fetch.clone().read(0, FIRST_READ.min(chunk.size)).await?;
    let mut read_bytes = head.len() as u64;
    loop {
        match read::head_extent(&head)? {
            read::HeadExtent::Complete(n) => {
                head.truncate(n + 8);
                return Ok((head, read_bytes));
            }
            read::HeadExtent::Need(n) if (n as u64) <= chunk.size => {
                let have = head.len() as u64;
                let more = fetch.clone().read(have, n as u64 - have).await?;
                read_bytes += more.len() as u64;
                head.extend_from_slice(&more);
            }
            read::HeadExtent::Need(_) => {
                bail!(
                    "{}: no mdat in its {} bytes",
                    chunk.manifest.name,
                    chunk.size
                );
            }
        }
    }
}
