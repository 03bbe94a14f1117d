//! The publish stage: drains `publish/`, uploading each MP4 (and its manifest) to the destination.

use anyhow::Result;

use crate::spool::StateDir;

#[derive(Debug, Clone, clap::Args)]
#[group(id = "publish")]
pub struct Args {}

/// Drains the inbox; with `watch`, keeps uploading new files until shutdown.
pub async fn run(
    _state: StateDir,
    _args: Args,
    _watch: bool,
    _shutdown: crate::shutdown::Shutdown,
) -> Result<()> {
    anyhow::bail!("publish is not built yet")
}
