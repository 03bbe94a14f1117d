//! The S3 destination (AWS, MinIO, R2, Ceph, ...). Every object is written with
//! `If-None-Match: *` and checked with a HEAD first and after, so a retry after a crash or a lost
//! response never creates a second copy and never replaces a different object. Small files go up
//! in one PUT carrying their SHA-256; large ones in parts, each carrying its CRC32C, and a failed
//! multipart upload is aborted so no parts are left behind.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ObjectCannedAcl,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::backoff::Backoff;
use super::fault::{Fault, classify};
use super::object::{ObjectSpec, Stored, hex};

/// Settings of the S3 destination.
#[derive(Debug, Clone)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// A non-AWS endpoint (MinIO, R2, Ceph); path-style addressing is used with it.
    pub endpoint: Option<String>,
    pub public_acl: bool,
    /// How long a request may wait for the server before it counts as lost.
    pub io_timeout: Duration,
    pub part_size: u64,
    pub multipart_threshold: u64,
    pub part_concurrency: usize,
}

pub struct S3Store {
    client: Client,
    cfg: S3Config,
    /// Set once HeadBucket has shown the bucket exists (or could not tell, on a 403).
    bucket_checked: AtomicBool,
}

/// S3 limits: parts are 5 MiB to 5 GiB, at most 10,000 of them.
const MIN_PART: u64 = 5 << 20;
const MAX_PARTS: u64 = 10_000;
/// Tries of one part before the whole upload is given back to the caller's backoff.
const PART_TRIES: u32 = 4;

impl S3Store {
    /// Builds the client from the default credential chain (environment, profile, IMDSv2).
    pub async fn connect(cfg: S3Config) -> S3Store {
        let shared = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(cfg.region.clone()))
            .load()
            .await;
        // A large part on a slow link needs longer than a request without a body.
        let attempt = cfg
            .io_timeout
            .saturating_mul(10)
            .max(Duration::from_secs(60));
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(cfg.io_timeout.min(Duration::from_secs(10)))
            .read_timeout(cfg.io_timeout)
            .operation_attempt_timeout(attempt)
            .build();
        let mut builder = aws_sdk_s3::config::Builder::from(&shared)
            // We send our own checksum on every write; S3-compatible stores reject the SDK's
            // default CRC32 trailers, and we verify the SHA-256 ourselves.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            // Retries are ours (backoff with jitter, deadline, logging).
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(endpoint) = &cfg.endpoint {
            builder = builder.endpoint_url(endpoint).force_path_style(true);
        }
        S3Store {
            client: Client::from_conf(builder.build()),
            cfg,
            bucket_checked: AtomicBool::new(false),
        }
    }

    /// Some S3-compatible stores create a missing bucket on the first PUT; a typo in the bucket
    /// name must not silently scatter recordings, so the bucket is checked once first.
    async fn check_bucket(&self, key: &str) -> Result<(), Fault> {
        if self.bucket_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        let url = self.url(key);
        match self
            .client
            .head_bucket()
            .bucket(&self.cfg.bucket)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(404) => {
                return Err(Fault::Permanent(format!(
                    "HeadBucket for {url}: NoSuchBucket (HTTP 404): bucket {:?} does not exist",
                    self.cfg.bucket
                )));
            }
            // Upload-only credentials may not allow HeadBucket; the writes will tell.
            Err(e) if status_of(&e) == Some(403) => {}
            Err(e) => return Err(sdk_fault("HeadBucket", &url, e)),
        }
        self.bucket_checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Every key under `prefix` with its size (ListObjectsV2, all pages).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, Fault> {
        let url = self.url(prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.cfg.bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| sdk_fault("ListObjectsV2", &url, e))?;
            for o in page.contents() {
                if let Some(key) = o.key() {
                    out.push((key.to_string(), o.size().unwrap_or(0).max(0) as u64));
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    /// `len` bytes of `key` from `offset` (a ranged GET), or the whole object with `None`.
    pub async fn get(&self, key: &str, range: Option<(u64, u64)>) -> Result<Vec<u8>, Fault> {
        let url = self.url(key);
        let mut req = self.client.get_object().bucket(&self.cfg.bucket).key(key);
        if let Some((offset, len)) = range {
            req = req.range(format!("bytes={offset}-{}", offset + len - 1));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| sdk_fault("GetObject", &url, e))?;
        let body = resp
            .body
            .collect()
            .await
            .map_err(|e| Fault::Transient(format!("GetObject {url}: reading the body: {e}")))?
            .into_bytes()
            .to_vec();
        if let Some((offset, len)) = range
            && body.len() as u64 != len
        {
            return Err(Fault::Transient(format!(
                "GetObject {url} bytes {offset}+{len}: got {} bytes",
                body.len()
            )));
        }
        Ok(body)
    }

    pub fn bucket(&self) -> &str {
        &self.cfg.bucket
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.cfg.bucket)
    }

    /// Uploads the file at `path`. `spec.known_sha256` lets a large file be read only once;
    /// the upload is not completed if the bytes sent do not match it.
    pub async fn put_file(&self, path: &Path, spec: &ObjectSpec) -> Result<Stored, Fault> {
        self.check_bucket(&spec.key).await?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| Fault::Transient(format!("stat {}: {e}", path.display())))?
            .len();
        if size < self.cfg.multipart_threshold {
            let p = path.to_path_buf();
            let bytes = tokio::task::spawn_blocking(move || std::fs::read(&p))
                .await
                .map_err(|e| Fault::Transient(format!("read task: {e}")))?
                .map_err(|e| Fault::Transient(format!("reading {}: {e}", path.display())))?;
            self.put_small(bytes, spec).await
        } else {
            self.put_multipart(path, size, spec).await
        }
    }

    /// One PUT with `x-amz-checksum-sha256`; the store rejects the body if it does not match.
    pub async fn put_bytes(&self, bytes: Vec<u8>, spec: &ObjectSpec) -> Result<Stored, Fault> {
        self.check_bucket(&spec.key).await?;
        self.put_small(bytes, spec).await
    }

    async fn put_small(&self, bytes: Vec<u8>, spec: &ObjectSpec) -> Result<Stored, Fault> {
        let size = bytes.len() as u64;
        let (bytes, sha256) = tokio::task::spawn_blocking(move || {
            let sha: [u8; 32] = Sha256::digest(&bytes).into();
            (bytes, sha)
        })
        .await
        .map_err(|e| Fault::Transient(format!("hash task: {e}")))?;
        let url = self.url(&spec.key);
        if let Some(expected) = spec.known_sha256
            && expected != sha256
        {
            return Err(Fault::Conflict(format!(
                "sha256 {} differs from the manifest's {}; not uploading it to {url}",
                hex(&sha256),
                hex(&expected)
            )));
        }
        if self.existing(&spec.key, size, &sha256).await? == Existing::Same {
            return Ok(Stored::found(size, sha256));
        }
        let sent_b64 = B64.encode(sha256);
        let result = self
            .client
            .put_object()
            .bucket(&self.cfg.bucket)
            .key(&spec.key)
            .content_type(spec.content_type)
            .content_length(size as i64)
            .set_metadata(Some(metadata_with_sha(spec, &sha256)))
            .set_acl(self.acl())
            .checksum_sha256(&sent_b64)
            .if_none_match("*")
            .body(ByteStream::from(bytes))
            .customize()
            // The signed x-amz-checksum-sha256 header already binds the body: hashing it a
            // second time for the signature would only cost CPU.
            .disable_payload_signing()
            .send()
            .await;
        match result {
            Ok(out) => {
                if let Some(echo) = out.checksum_sha256()
                    && echo != sent_b64
                {
                    return Err(Fault::Transient(format!(
                        "PUT {url}: store reports sha256 {echo}, we sent {sent_b64}"
                    )));
                }
            }
            Err(e) if status_of(&e) == Some(412) => {
                // Someone (an earlier run whose response was lost) created it meanwhile.
                return self.after_412("PUT", &spec.key, size, &sha256).await;
            }
            Err(e) => return Err(sdk_fault("PUT", &url, e)),
        }
        self.verify(&spec.key, size, &sha256).await?;
        Ok(Stored::written(size, sha256))
    }

    fn acl(&self) -> Option<ObjectCannedAcl> {
        self.cfg.public_acl.then_some(ObjectCannedAcl::PublicRead)
    }

    /// What the key holds now. A different object under the key is a conflict: we never
    /// replace it.
    async fn existing(&self, key: &str, size: u64, sha256: &[u8; 32]) -> Result<Existing, Fault> {
        let url = self.url(key);
        match self
            .client
            .head_object()
            .bucket(&self.cfg.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(head) => {
                let have_size = head.content_length().unwrap_or(-1);
                let have_sha = head
                    .metadata()
                    .and_then(|m| m.get("sha256"))
                    .map(String::as_str)
                    .unwrap_or("(none)");
                if have_size == size as i64 && have_sha == hex(sha256) {
                    Ok(Existing::Same)
                } else {
                    Err(Fault::Conflict(format!(
                        "{url} already exists with different content ({have_size} bytes, sha256 {have_sha}; ours: {size} bytes, sha256 {}); not overwriting it",
                        hex(sha256)
                    )))
                }
            }
            Err(e) if status_of(&e) == Some(404) => Ok(Existing::Absent),
            // HEAD needs s3:GetObject, which upload-only policies (like the seed's) lack. The
            // conditional write still protects the key; the write itself reports bad
            // credentials with a proper error code, which a HEAD cannot.
            Err(e) if status_of(&e) == Some(403) => Ok(Existing::Unknown),
            Err(e) => Err(sdk_fault("HEAD", &url, e)),
        }
    }

    /// After `If-None-Match: *` was refused: is the object there ours?
    async fn after_412(
        &self,
        op: &str,
        key: &str,
        size: u64,
        sha256: &[u8; 32],
    ) -> Result<Stored, Fault> {
        let url = self.url(key);
        match self.existing(key, size, sha256).await? {
            Existing::Same => Ok(Stored::found(size, *sha256)),
            Existing::Absent => Err(Fault::Transient(format!(
                "{op} {url}: 412 Precondition Failed but HEAD finds no object"
            ))),
            Existing::Unknown => Err(Fault::Permanent(format!(
                "{op} {url}: an object already exists and HEAD is denied (403), so it cannot be compared; grant s3:GetObject"
            ))),
        }
    }

    /// After a write: the store must show the object with our size and SHA-256.
    async fn verify(&self, key: &str, size: u64, sha256: &[u8; 32]) -> Result<(), Fault> {
        match self.existing(key, size, sha256).await {
            Ok(Existing::Same) => Ok(()),
            Ok(Existing::Unknown) => {
                let (stream, chunk) = key_labels(key);
                log::warn!(stream = stream.as_str(), chunk = chunk.as_str();
                    "{}: HEAD is denied (403), so only the store's checksum confirmation verifies this upload; grant s3:GetObject",
                    self.url(key)
                );
                Ok(())
            }
            Ok(Existing::Absent) => Err(Fault::Transient(format!(
                "{}: written but HEAD does not find it yet",
                self.url(key)
            ))),
            Err(Fault::Conflict(m)) => Err(Fault::Transient(format!("after upload: {m}"))),
            Err(e) => Err(e),
        }
    }

    async fn put_multipart(
        &self,
        path: &Path,
        size: u64,
        spec: &ObjectSpec,
    ) -> Result<Stored, Fault> {
        let url = self.url(&spec.key);
        let part_size = self
            .cfg
            .part_size
            .max(MIN_PART)
            .max(size.div_ceil(MAX_PARTS));
        // The object's SHA-256 goes into its metadata, which S3 fixes when the upload is
        // created, so it must be known before the first part. If the manifest brings it, the
        // upload pass hashes what it sends and refuses to complete on a mismatch: one read.
        // Otherwise a first pass computes it along with each part's CRC32C, and the upload
        // pass checks each part it sends against that CRC, so what goes up is what was hashed.
        let (sha256, part_check) = match spec.known_sha256 {
            Some(sha) => (sha, PartCheck::Sha256(sha)),
            None => {
                let p = path.to_path_buf();
                let (sha, crcs) = tokio::task::spawn_blocking(move || prehash(&p, part_size))
                    .await
                    .map_err(|e| Fault::Transient(format!("hash task: {e}")))??;
                (sha, PartCheck::Crcs(crcs))
            }
        };
        if self.existing(&spec.key, size, &sha256).await? == Existing::Same {
            return Ok(Stored::found(size, sha256));
        }
        self.abort_stale(&spec.key).await?;
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(&spec.key)
            .content_type(spec.content_type)
            .set_metadata(Some(metadata_with_sha(spec, &sha256)))
            .set_acl(self.acl())
            .checksum_algorithm(ChecksumAlgorithm::Crc32C)
            .send()
            .await
            .map_err(|e| sdk_fault("CreateMultipartUpload", &url, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        if upload_id.is_empty() {
            return Err(Fault::Transient(format!(
                "CreateMultipartUpload {url}: no upload id in the answer"
            )));
        }
        let parts = self
            .upload_parts(path, &spec.key, &upload_id, part_size, size, part_check)
            .await;
        let parts = match parts {
            Ok(parts) => parts,
            Err(fault) => {
                self.abort(&spec.key, &upload_id).await;
                return Err(fault);
            }
        };
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(&spec.key)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .if_none_match("*")
            .send()
            .await;
        match done {
            Ok(_) => {}
            Err(e) if status_of(&e) == Some(412) => {
                self.abort(&spec.key, &upload_id).await;
                return self
                    .after_412("CompleteMultipartUpload", &spec.key, size, &sha256)
                    .await;
            }
            Err(e) => {
                let fault = sdk_fault("CompleteMultipartUpload", &url, e);
                // If the answer was lost after the store completed it, the next attempt's HEAD
                // sees the object; if not, this frees the parts.
                self.abort(&spec.key, &upload_id).await;
                return Err(fault);
            }
        }
        self.verify(&spec.key, size, &sha256).await?;
        Ok(Stored::written(size, sha256))
    }

    async fn upload_parts(
        &self,
        path: &Path,
        key: &str,
        upload_id: &str,
        part_size: u64,
        size: u64,
        check: PartCheck,
    ) -> Result<Vec<CompletedPart>, Fault> {
        let file = Arc::new(
            File::open(path)
                .map_err(|e| Fault::Transient(format!("opening {}: {e}", path.display())))?,
        );
        let count = size.div_ceil(part_size) as usize;
        let (expected_sha, crcs) = match check {
            PartCheck::Sha256(sha) => (Some(sha), None),
            PartCheck::Crcs(crcs) => (None, Some(crcs)),
        };
        let mut hasher = expected_sha.map(|_| Sha256::new());
        let slots = Arc::new(Semaphore::new(self.cfg.part_concurrency.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut parts = Vec::with_capacity(count);
        for index in 0..count {
            let permit = Arc::clone(&slots)
                .acquire_owned()
                .await
                .map_err(|e| Fault::Transient(format!("part scheduler: {e}")))?;
            // Collect finished parts as we go, and stop early once one has failed for good.
            while let Some(joined) = tasks.try_join_next() {
                parts.push(part_result(joined).inspect_err(|_| tasks.abort_all())?);
            }
            let offset = index as u64 * part_size;
            let len = part_size.min(size - offset);
            // Parts are read (and hashed) in order here; only sending is concurrent.
            let (f, h) = (Arc::clone(&file), hasher.take());
            let (bytes, crc, h) = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; len as usize];
                f.read_exact_at(&mut buf, offset)?;
                let crc = crc32c(&buf);
                let h = h.map(|mut h| {
                    h.update(&buf);
                    h
                });
                Ok::<_, std::io::Error>((buf, crc, h))
            })
            .await
            .map_err(|e| Fault::Transient(format!("read task: {e}")))?
            .map_err(|e| {
                tasks.abort_all();
                Fault::Transient(format!(
                    "reading {} at offset {offset}: {e}",
                    path.display()
                ))
            })?;
            hasher = h;
            if let Some(expected) = crcs.as_ref().and_then(|c| c.get(index))
                && *expected != crc
            {
                tasks.abort_all();
                return Err(Fault::Transient(format!(
                    "{} changed while it was being uploaded (part {} at offset {offset})",
                    path.display(),
                    index + 1
                )));
            }
            let job = PartJob {
                client: self.client.clone(),
                bucket: self.cfg.bucket.clone(),
                key: key.to_string(),
                upload_id: upload_id.to_string(),
                body: bytes::Bytes::from(bytes),
                number: index as i32 + 1,
                crc,
                io_timeout: self.cfg.io_timeout,
            };
            tasks.spawn(async move {
                let r = job.run().await;
                drop(permit);
                r
            });
        }
        while let Some(joined) = tasks.join_next().await {
            parts.push(part_result(joined).inspect_err(|_| tasks.abort_all())?);
        }
        if let (Some(h), Some(expected)) = (hasher, expected_sha) {
            let sent: [u8; 32] = h.finalize().into();
            if sent != expected {
                return Err(Fault::Conflict(format!(
                    "{} has sha256 {}, but its manifest says {}; not completing the upload",
                    path.display(),
                    hex(&sent),
                    hex(&expected)
                )));
            }
        }
        parts.sort_by_key(|p| p.part_number());
        if parts.len() != count {
            return Err(Fault::Transient(format!(
                "{}: {} of {count} parts uploaded",
                self.url(key),
                parts.len()
            )));
        }
        Ok(parts)
    }

    /// Best effort: frees an upload's parts. If the store is unreachable now, the next attempt
    /// for this key lists and aborts it ([`S3Store::abort_stale`]).
    async fn abort(&self, key: &str, upload_id: &str) {
        let r = self
            .client
            .abort_multipart_upload()
            .bucket(&self.cfg.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = r {
            let (stream, chunk) = key_labels(key);
            log::warn!(stream = stream.as_str(), chunk = chunk.as_str();
                "could not abort multipart upload {upload_id} of {}: {}",
                self.url(key),
                chain(&e)
            );
        }
    }

    /// Aborts multipart uploads left for `key` by an earlier run that was killed mid-way. Only
    /// this key's uploads are touched; we are the only writer of our keys.
    pub async fn abort_stale(&self, key: &str) -> Result<(), Fault> {
        let url = self.url(key);
        let listed = self
            .client
            .list_multipart_uploads()
            .bucket(&self.cfg.bucket)
            .prefix(key)
            .send()
            .await;
        let listed = match listed {
            Ok(l) => l,
            Err(e) if matches!(status_of(&e), Some(501) | Some(405)) => {
                log::debug!("{url}: the store cannot list multipart uploads; nothing to abort");
                return Ok(());
            }
            Err(e) => {
                let fault = sdk_fault("ListMultipartUploads", &url, e);
                if let Fault::Permanent(m) = &fault
                    && m.contains("NotImplemented")
                {
                    return Ok(());
                }
                return Err(fault);
            }
        };
        for upload in listed.uploads() {
            if upload.key() != Some(key) {
                continue;
            }
            if let Some(id) = upload.upload_id() {
                let (stream, chunk) = key_labels(key);
                log::info!(stream = stream.as_str(), chunk = chunk.as_str();
                    "aborting stale multipart upload {id} of {url}");
                self.client
                    .abort_multipart_upload()
                    .bucket(&self.cfg.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(|e| sdk_fault("AbortMultipartUpload", &url, e))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Existing {
    /// The key holds exactly our bytes.
    Same,
    Absent,
    /// HEAD is not allowed; only a conditional write can tell.
    Unknown,
}

/// Everything one part upload needs, owned, so parts run as concurrent tasks.
struct PartJob {
    client: Client,
    bucket: String,
    key: String,
    upload_id: String,
    body: bytes::Bytes,
    number: i32,
    crc: u32,
    io_timeout: Duration,
}

/// How the bytes sent are tied to the SHA-256 in the object's metadata.
enum PartCheck {
    /// Known from the manifest: hash while sending, compare before completing.
    Sha256([u8; 32]),
    /// From a first pass: each part's CRC32C must match what that pass saw.
    Crcs(Vec<u32>),
}

impl PartJob {
    async fn run(self) -> Result<CompletedPart, Fault> {
        let (crc, body) = (self.crc, self.body.clone());
        let sent = B64.encode(crc.to_be_bytes());
        let url = format!("s3://{}/{} part {}", self.bucket, self.key, self.number);
        let mut backoff = Backoff::new(
            Duration::from_millis(200),
            self.io_timeout.min(Duration::from_secs(5)),
            u64::from(crc),
        );
        loop {
            let r = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(&self.upload_id)
                .part_number(self.number)
                .content_length(body.len() as i64)
                .checksum_crc32_c(&sent)
                .body(ByteStream::from(body.clone()))
                .customize()
                .disable_payload_signing()
                .send()
                .await;
            let fault = match r {
                Ok(out) => {
                    if let Some(echo) = out.checksum_crc32_c()
                        && echo != sent
                    {
                        Fault::Transient(format!(
                            "UploadPart {url}: store reports crc32c {echo}, we sent {sent}"
                        ))
                    } else {
                        return Ok(CompletedPart::builder()
                            .part_number(self.number)
                            .set_e_tag(out.e_tag().map(str::to_string))
                            .checksum_crc32_c(&sent)
                            .build());
                    }
                }
                Err(e) => sdk_fault("UploadPart", &url, e),
            };
            if !matches!(fault, Fault::Transient(_)) || backoff.attempts() + 1 >= PART_TRIES {
                return Err(fault);
            }
            log::debug!("{fault}; retrying the part");
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }
}

fn part_result(
    joined: Result<Result<CompletedPart, Fault>, tokio::task::JoinError>,
) -> Result<CompletedPart, Fault> {
    joined.map_err(|e| Fault::Transient(format!("part task: {e}")))?
}

fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32
}

/// Reads the file once: its SHA-256 and the CRC32C of each `part_size` part.
fn prehash(path: &Path, part_size: u64) -> Result<([u8; 32], Vec<u32>), Fault> {
    use std::io::Read;
    let mut f = File::open(path)
        .map_err(|e| Fault::Transient(format!("opening {}: {e}", path.display())))?;
    let mut sha = Sha256::new();
    let mut crcs = Vec::new();
    let mut buf = vec![0u8; part_size as usize];
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match f.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Fault::Transient(format!("reading {}: {e}", path.display())));
                }
            }
        }
        if filled == 0 {
            break;
        }
        sha.update(&buf[..filled]);
        crcs.push(crc32c(&buf[..filled]));
        if filled < buf.len() {
            break;
        }
    }
    Ok((sha.finalize().into(), crcs))
}

fn metadata_with_sha(spec: &ObjectSpec, sha256: &[u8; 32]) -> HashMap<String, String> {
    let mut m: BTreeMap<String, String> = spec.metadata.clone();
    m.insert("sha256".into(), hex(sha256));
    m.into_iter().collect()
}

fn status_of<E, R>(e: &SdkError<E, R>) -> Option<u16>
where
    R: HasStatus,
{
    match e {
        SdkError::ServiceError(se) => Some(se.raw().status_u16()),
        SdkError::ResponseError(re) => Some(re.raw().status_u16()),
        _ => None,
    }
}

trait HasStatus {
    fn status_u16(&self) -> u16;
}

impl HasStatus for aws_sdk_s3::config::http::HttpResponse {
    fn status_u16(&self) -> u16 {
        self.status().as_u16()
    }
}

/// Turns an SDK error into a [`Fault`] whose message names the operation, the object and the
/// cause (error code and HTTP status), e.g.
/// `PUT s3://b/k: AccessDenied (HTTP 403): Access Denied`.
fn sdk_fault<E>(
    op: &str,
    url: &str,
    err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Fault
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code();
            let detail = se
                .err()
                .message()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            let msg = format!(
                "{op} {url}: {} (HTTP {status}){detail}",
                code.unwrap_or("no error code")
            );
            classify(code, status, msg)
        }
        SdkError::TimeoutError(_) => Fault::Transient(format!("{op} {url}: timed out")),
        SdkError::ConstructionFailure(_) => {
            Fault::Permanent(format!("{op} {url}: {}", chain(&err)))
        }
        _ => {
            let text = chain(&err);
            // Missing credentials show up as a dispatch failure, but no retry will find them.
            if text.contains("no credentials found") || text.contains("CredentialsNotLoaded") {
                Fault::Permanent(format!("{op} {url}: no AWS credentials: {text}"))
            } else {
                Fault::Transient(format!("{op} {url}: {text}"))
            }
        }
    }
}

/// An error and its causes on one line (`a: b: c`), without the SDK's debug dump.
fn chain(err: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = next {
        let text = e.to_string().replace('\n', " ");
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// `STREAM=` and `CHUNK=` for a line about an object: its key ends in the chunk's file name
/// under the default key template (`{file}`).
fn key_labels(key: &str) -> (String, String) {
    crate::spool::log_labels(std::path::Path::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_known_value() {
        // RFC 3720 test vector: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn prehash_splits_parts() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        let data: Vec<u8> = (0..25u32).map(|i| i as u8).collect();
        std::fs::write(&p, &data).unwrap();
        let (sha, crcs) = prehash(&p, 10).unwrap();
        assert_eq!(sha, <[u8; 32]>::from(Sha256::digest(&data)));
        assert_eq!(
            crcs,
            vec![
                crc32c(&data[..10]),
                crc32c(&data[10..20]),
                crc32c(&data[20..])
            ]
        );
    }
}
