//! The remux stage: drains `remux/`, turning each finished FLV chunk into a faststart MP4 in
//! `publish/`.

use std::time::Duration;

use anyhow::Result;

use crate::spool::StateDir;

#[derive(Debug, Clone, clap::Args)]
#[group(id = "remux")]
pub struct Args {
    /// A file copied into `remux/` by hand is only taken once unmodified this long.
    #[arg(long = "quiet-seconds", env = "QUIET_SECONDS", value_parser = crate::duration::parse, default_value = "60")]
    pub quiet: Duration,

    /// Delete archived FLVs older than this once their MP4 exists (0: keep them).
    #[arg(long = "keep-flv-for", env = "FLV_MAX_AGE_SECONDS", value_parser = crate::duration::parse, default_value = "0")]
    pub keep_flv_for: Duration,
}

/// Drains the inbox; with `watch`, keeps remuxing new chunks until shutdown.
pub async fn run(
    _state: StateDir,
    _args: Args,
    _watch: bool,
    _shutdown: crate::shutdown::Shutdown,
) -> Result<()> {
    anyhow::bail!("remux is not built yet")
}
