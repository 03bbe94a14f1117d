//! The publish stage: drains `publish/`, uploading each MP4 and then its manifest to S3 or a
//! directory, and moves both to `archive/` only once the destination has confirmed them.
//! `watch` keeps it running. Retention deletes archived files after `--keep-uploaded-for`.

mod backoff;
mod destination;
mod fault;
mod job;
mod key;
mod local;
mod object;
mod queue;
mod s3;
mod store;

use std::time::Duration;

use anyhow::{Context, Result};

use crate::naming::NodeId;
use crate::spool::{Mode, StateDir};

pub use backoff::Backoff;
pub use destination::Destination;
pub use fault::Fault;
pub use key::{DEFAULT_TEMPLATE, KeyTemplate};
pub use s3::{S3Config, S3Store};
pub use store::{ObjectSpec, Store, Stored};

#[derive(Debug, Clone, clap::Args)]
#[group(id = "publish")]
pub struct Args {
    /// Where to publish: s3://bucket/prefix or file:///dir. Default: s3://$S3_BUCKET/$S3_PREFIX
    /// when S3_BUCKET is set, else file://<state-dir>/published.
    #[arg(long, env = "DESTINATION")]
    pub destination: Option<String>,

    /// S3 bucket (seed variable), used when --destination is not given.
    #[arg(long, env = "S3_BUCKET")]
    pub s3_bucket: Option<String>,

    /// Key prefix in the bucket (seed variable); a prefix in --destination wins.
    #[arg(long, env = "S3_PREFIX", default_value = "")]
    pub s3_prefix: String,

    /// AWS region of the bucket.
    #[arg(long, env = "AWS_REGION", default_value = "us-west-2")]
    pub aws_region: String,

    /// S3-compatible endpoint (MinIO, R2, Ceph); uses path-style addressing.
    /// Also read from $S3_ENDPOINT_URL.
    #[arg(long, env = "AWS_ENDPOINT_URL_S3")]
    pub endpoint_url: Option<String>,

    /// Give uploaded objects the canned ACL public-read (true/1/yes).
    #[arg(long, env = "PUBLIC_ACL", default_value = "false", value_parser = parse_flag)]
    pub public_acl: bool,

    /// In watch mode, how often to sweep the inbox and run retention even when nothing changed.
    #[arg(long, env = "SYNC_INTERVAL_SECONDS", default_value = "10", value_parser = crate::duration::parse)]
    pub sync_interval: Duration,

    /// Object key layout; placeholders {prefix} {app} {stream} {YYYY} {MM} {DD} {HH} {file} {stem}.
    #[arg(long, env = "PUBLISH_KEY_TEMPLATE", default_value = key::DEFAULT_TEMPLATE)]
    pub key_template: String,

    /// Without --watch: how long to keep retrying while the store is unreachable before exiting
    /// with 75 (files stay queued). With --watch there is no limit.
    #[arg(long, env = "PUBLISH_RETRY_FOR", default_value = "10m", value_parser = crate::duration::parse)]
    pub retry_for: Duration,

    /// Longest wait between two tries (exponential backoff with jitter up to this).
    #[arg(long, env = "PUBLISH_BACKOFF_CAP", default_value = "60s", value_parser = crate::duration::parse)]
    pub backoff_cap: Duration,

    /// Delete archived (uploaded and verified) MP4s and manifests older than this.
    #[arg(long, env = "PUBLISH_KEEP_UPLOADED_FOR", default_value = "1d", value_parser = crate::duration::parse)]
    pub keep_uploaded_for: Duration,

    /// A request that gets no answer for this long is abandoned and retried.
    #[arg(long, env = "PUBLISH_IO_TIMEOUT", default_value = "30s", value_parser = crate::duration::parse)]
    pub upload_timeout: Duration,

    /// An MP4 without a manifest (copied in by hand) is published once unmodified this long.
    #[arg(long, env = "PUBLISH_QUIET_SECONDS", default_value = "60", value_parser = crate::duration::parse)]
    pub upload_quiet_for: Duration,

    /// Files this large or larger are uploaded in parts.
    #[arg(long, env = "PUBLISH_MULTIPART_THRESHOLD", default_value = "16M", value_parser = crate::size::parse)]
    pub multipart_threshold: u64,

    /// Size of one part of a multipart upload (at least 5M).
    #[arg(long, env = "PUBLISH_PART_SIZE", default_value = "8M", value_parser = crate::size::parse)]
    pub part_size: u64,

    /// Parts uploaded at the same time.
    #[arg(long, env = "PUBLISH_PART_CONCURRENCY", default_value = "4")]
    pub part_concurrency: usize,

    /// Where events go: `run` passes its own; the `publish` stage alone reads the hooks'
    /// variables from the environment.
    #[arg(skip)]
    pub events: Option<crate::events::Emitter>,
}

pub(crate) fn parse_flag(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" | "" => Ok(false),
        _ => Err(format!("{text:?}: expected true/false, 1/0 or yes/no")),
    }
}

impl Args {
    /// The options as the environment alone gives them (`DESTINATION`, `S3_BUCKET`, ...), for
    /// a stage that does not take publish's flags but must find what it publishes.
    pub fn from_env() -> Result<Args> {
        crate::cli::args_from_env("publish's settings")
    }

    /// The destination these options name (see `--destination`).
    pub fn destination(&self, state: &StateDir) -> Result<Destination> {
        if let Some(text) = self.destination.as_deref().filter(|t| !t.is_empty()) {
            let mut d = Destination::parse(text)
                .map_err(|e| crate::exit::Coded::new(crate::exit::USAGE, e))?;
            if let Destination::S3 { prefix, .. } = &mut d
                && prefix.is_empty()
            {
                *prefix = self.s3_prefix.trim_matches('/').to_string();
            }
            return Ok(d);
        }
        if let Some(bucket) = self.s3_bucket.as_deref().filter(|b| !b.is_empty()) {
            return Ok(Destination::S3 {
                bucket: bucket.to_string(),
                prefix: self.s3_prefix.trim_matches('/').to_string(),
            });
        }
        Ok(Destination::Dir(state.published()))
    }

    pub fn endpoint(&self) -> Option<String> {
        self.endpoint_url
            .clone()
            .or_else(|| std::env::var("S3_ENDPOINT_URL").ok())
            .filter(|e| !e.is_empty())
    }
}

/// Drains the inbox; in `Mode::Watch`, keeps uploading new files until shutdown. `node` (the
/// global `--node-id`, resolved by main) is the `{node}` of chunks whose name has none
/// (recorded before names carried one) and the `node` of their manifests.
pub async fn run(
    state: StateDir,
    args: Args,
    node: NodeId,
    mode: Mode,
    shutdown: crate::shutdown::Shutdown,
) -> Result<()> {
    let _running = crate::observe::running::mark(&state, "publish");
    let events = match args.events.clone() {
        Some(e) => e,
        None => crate::events::Emitter::from_env(&state)?,
    };
    let watch = mode == Mode::Watch;
    let template = KeyTemplate::parse(&args.key_template)
        .map_err(|e| crate::exit::Coded::new(crate::exit::USAGE, e))?;
    let destination = args.destination(&state)?;
    let (store, prefix) = match &destination {
        Destination::S3 { bucket, prefix } => {
            let cfg = S3Config {
                bucket: bucket.clone(),
                region: args.aws_region.clone(),
                endpoint: args.endpoint(),
                public_acl: args.public_acl,
                io_timeout: args.upload_timeout,
                part_size: args.part_size,
                multipart_threshold: args.multipart_threshold,
                part_concurrency: args.part_concurrency,
            };
            (
                Store::S3(Box::new(S3Store::connect(cfg).await)),
                prefix.clone(),
            )
        }
        Destination::Dir(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating destination {}", dir.display()))?;
            (Store::Dir(local::DirStore::new(dir.clone())), String::new())
        }
    };
    log::info!(
        "publishing {} to {destination}{}",
        state.publish_inbox().display(),
        if watch { " (watching)" } else { "" }
    );
    let queue = queue::Queue {
        state,
        events,
        store,
        template,
        prefix,
        node,
        retry_for: (!watch).then_some(args.retry_for),
        backoff_cap: args.backoff_cap,
        keep_uploaded_for: args.keep_uploaded_for,
        quiet_for: args.upload_quiet_for,
    };
    queue.run(mode, args.sync_interval, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        args: Args,
    }

    #[test]
    fn flags_and_destination_defaults() {
        assert_eq!(parse_flag("YES"), Ok(true));
        assert_eq!(parse_flag("0"), Ok(false));
        assert!(parse_flag("maybe").is_err());
        let state = StateDir::new("/s");
        let cases = [
            (["--s3-bucket", "b", "--s3-prefix", "/p/"], ("b", "p")),
            (["--destination", "s3://c", "--s3-prefix", "q"], ("c", "q")),
        ];
        for (flags, (bucket, prefix)) in cases {
            let t = T::parse_from(std::iter::once("x").chain(flags));
            let want = Destination::S3 {
                bucket: bucket.into(),
                prefix: prefix.into(),
            };
            assert_eq!(t.args.destination(&state).unwrap(), want, "{flags:?}");
        }
    }
}
