//! `rtmp-recorder token <app>/<stream> --valid-for 1h`: prints a publish URL carrying a signed,
//! expiring token (see `publish_token`), so operators never compute an HMAC by hand. It reads
//! the secret from the same file ingest does (`--secret`, else `$PUBLISH_SECRET_FILE`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::exit;
use crate::publish_token::Secret;
use crate::utc::Civil;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The stream the token admits, as `<app>/<stream>` (the stream name may hold `/`).
    pub stream: String,

    /// How long the token admits a publish (`30m`, `1h`, `7d`); a publish that started in time
    /// records on after it.
    #[arg(long, value_parser = crate::duration::parse, default_value = "1h")]
    pub valid_for: Duration,

    /// The file holding the token secret, as ingest's `--publish-secret`.
    #[arg(long, env = "PUBLISH_SECRET_FILE")]
    pub secret: PathBuf,

    /// The recorder's RTMP address the URL starts with.
    #[arg(
        long,
        env = "RTMP_PUBLISH_URL",
        default_value = "rtmp://127.0.0.1:1935"
    )]
    pub url: String,
}

/// Prints the URL on stdout (and when it expires on stderr); exit 2 on bad input.
pub fn main(args: &Args) -> ExitCode {
    let now_ms = crate::observe::unix_ms_now();
    match publish_url(args, now_ms / 1000) {
        Ok(url) => {
            println!("{url}");
            let expires =
                Civil::from_unix_millis((now_ms / 1000 + args.valid_for.as_secs()) as i64 * 1000);
            eprintln!("valid until {}", expires.rfc3339());
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("token: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}

fn publish_url(args: &Args, now_unix: u64) -> Result<String> {
    let Some((app, stream)) = args.stream.split_once('/') else {
        bail!(
            "{:?}: name the stream as <app>/<stream>, e.g. live/cam1",
            args.stream
        );
    };
    if app.is_empty() || stream.is_empty() || app.contains('?') || stream.contains('?') {
        bail!(
            "{:?}: app and stream must be non-empty and hold no `?`",
            args.stream
        );
    }
    if args.valid_for.is_zero() {
        bail!("--valid-for must be longer than 0 s");
    }
    let bytes = std::fs::read(&args.secret)
        .with_context(|| format!("reading the publish secret from {}", args.secret.display()))?;
    let secret = Secret::from_file_bytes(&bytes)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.secret.display()))?;
    let query = secret.sign(app, stream, now_unix + args.valid_for.as_secs());
    Ok(format!(
        "{}/{app}/{stream}?{query}",
        args.url.trim_end_matches('/')
    ))
}
