//! A clip's chunks in S3: listed under the fixed part of the stream's object keys, their
//! manifests fetched, their MP4s read by range. Every request is retried as publish retries
//! (transient faults with capped backoff for `--retry-for`; permanent ones end the run, exit 77).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::sources::{Chunk, Location, chunk_of};
use crate::exit::{self, Coded};
use crate::naming::ChunkName;
use crate::publish::{Backoff, Fault, KeyTemplate, S3Config, S3Store};

pub struct Bucket {
    store: S3Store,
    template: KeyTemplate,
    prefix: String,
    retry_for: Duration,
    backoff_cap: Duration,
}

/// An MP4 listed in the bucket.
struct Listed {
    start_ms: i64,
    key: String,
    size: u64,
}

impl Bucket {
    pub async fn connect(
        args: &crate::publish::Args,
        bucket: String,
        prefix: String,
    ) -> Result<Bucket> {
        let template =
            KeyTemplate::parse(&args.key_template).map_err(|e| Coded::new(exit::USAGE, e))?;
        let cfg = S3Config {
            bucket,
            region: args.aws_region.clone(),
            endpoint: args.endpoint(),
            public_acl: false,
            io_timeout: args.upload_timeout,
            part_size: args.part_size,
            multipart_threshold: args.multipart_threshold,
            part_concurrency: args.part_concurrency,
        };
        Ok(Bucket {
            store: S3Store::connect(cfg).await,
            template,
            prefix,
            retry_for: args.retry_for,
            backoff_cap: args.backoff_cap,
        })
    }

    /// The chunks of `app`/`stream` that may hold `from..to` (Unix ms): the last one starting at
    /// or before `from` and every one starting before `to`, with their manifests; and where it
    /// looked, for messages.
    pub async fn find(
        &self,
        app: &str,
        stream: &str,
        from: i64,
        to: i64,
    ) -> Result<(Vec<Chunk>, String)> {
        let under = self.template.stream_prefix(&self.prefix, app, stream);
        let looked = format!("s3://{}/{under}", self.store.bucket());
        let keys = self
            .retry(&format!("listing {looked}"), || self.store.list(&under))
            .await?;
        let json: std::collections::HashSet<&str> = keys
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| k.ends_with(".json"))
            .collect();
        let mut mp4s: Vec<Listed> =
            keys.iter()
                .filter_map(|(key, size)| {
                    let file = key.rsplit('/').next()?;
                    let name = ChunkName::parse(file.strip_suffix(".mp4")?)?;
                    // A chunk counts once its manifest is there too (publish uploads it second).
                    let manifest = format!("{}.json", key.strip_suffix(".mp4")?);
                    (name.app == app && name.stream == stream && json.contains(manifest.as_str()))
                        .then(|| Listed {
                            start_ms: name.start.to_unix_millis(),
                            key: key.clone(),
                            size: *size,
                        })
                })
                .collect();
        mp4s.sort_by(|a, b| (a.start_ms, &a.key).cmp(&(b.start_ms, &b.key)));
        let first = mp4s.iter().rposition(|m| m.start_ms <= from).unwrap_or(0);
        let mut chunks = Vec::new();
        for m in mp4s[first..].iter().take_while(|m| m.start_ms < to) {
            let manifest_key = format!("{}.json", m.key.trim_end_matches(".mp4"));
            let url = format!("s3://{}/{manifest_key}", self.store.bucket());
            let bytes = self
                .retry(&format!("reading {url}"), || {
                    self.store.get(&manifest_key, None)
                })
                .await?;
            chunks.push(chunk_of(&bytes, &url, Location::S3(m.key.clone()), m.size)?);
        }
        Ok((chunks, looked))
    }

    /// `len` bytes of `key` at `offset`.
    pub async fn read(&self, key: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let what = format!("reading s3://{}/{key}", self.store.bucket());
        self.retry(&what, || self.store.get(key, Some((offset, len))))
            .await
    }

    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Fault>>,
    {
        let started = Instant::now();
        let mut backoff = Backoff::new(
            Duration::from_millis(250),
            self.backoff_cap,
            u64::from(std::process::id()),
        );
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Fault::Permanent(m) | Fault::Conflict(m)) => {
                    return Err(Coded::new(exit::PERMANENT, format!("{what}: {m}")).into());
                }
                Err(Fault::Transient(m)) => {
                    if started.elapsed() >= self.retry_for {
                        return Err(Coded::new(
                            exit::TEMPORARY,
                            format!(
                                "{what}: gave up after {}: {m}",
                                crate::duration::format(self.retry_for)
                            ),
                        )
                        .into());
                    }
                    let delay = backoff.next_delay();
                    log::warn!(
                        "{what}: {m}; retry {} in {:.1}s",
                        backoff.attempts(),
                        delay.as_secs_f64()
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }
}
