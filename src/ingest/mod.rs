//! The ingest stage: an RTMP server that records every published stream into FLV chunks in
//! `recording/` and hands each finished chunk to `remux/`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::spool::StateDir;

#[derive(Debug, Clone, clap::Args)]
#[group(id = "ingest")]
pub struct Args {
    /// Address to listen on when systemd passes no socket (repeatable).
    #[arg(
        long = "listen",
        env = "RTMP_LISTEN",
        value_delimiter = ',',
        default_value = "0.0.0.0:1935"
    )]
    pub listen: Vec<SocketAddr>,

    /// Target chunk length in media time (`10s`, `5m`). A chunk ends at the first keyframe at or
    /// after it. Default: $CHUNK_DURATION_MINUTES minutes, else 5m.
    #[arg(long, env = "CHUNK_DURATION", value_parser = crate::duration::parse)]
    pub chunk_duration: Option<Duration>,

    /// The seed's variable: chunk length in whole minutes.
    #[arg(long, env = "CHUNK_DURATION_MINUTES", hide = true)]
    pub chunk_duration_minutes: Option<u64>,

    /// Split at the next keyframe once a chunk reaches this size (seed: record_max_size 1000M).
    #[arg(long, env = "MAX_CHUNK_SIZE", value_parser = crate::cli::parse_size, default_value = "1000M")]
    pub max_chunk_size: u64,

    /// File of allowed stream keys, one per line: `KEY` or `KEY LABEL`. Unset: any key may publish.
    #[arg(long, env = "ALLOWED_KEYS_FILE")]
    pub allowed_keys: Option<PathBuf>,

    /// A connection that has not finished the RTMP handshake and publish in this time is closed.
    #[arg(long, env = "HANDSHAKE_TIMEOUT", value_parser = crate::duration::parse, default_value = "10s")]
    pub handshake_timeout: Duration,

    /// A connection that sends nothing for this long is closed (its chunk is finished).
    #[arg(long, env = "IDLE_TIMEOUT", value_parser = crate::duration::parse, default_value = "30s")]
    pub idle_timeout: Duration,

    /// At most this many connections at once; more are refused.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 256)]
    pub max_connections: usize,
}

impl Args {
    pub fn chunk_duration(&self) -> Duration {
        self.chunk_duration
            .or(self
                .chunk_duration_minutes
                .map(|m| Duration::from_secs(m * 60)))
            .unwrap_or(Duration::from_secs(300))
    }
}

/// Runs the ingest stage until shutdown.
pub async fn run(
    _state: StateDir,
    _args: Args,
    _shutdown: crate::shutdown::Shutdown,
) -> Result<()> {
    anyhow::bail!("ingest is not built yet")
}
