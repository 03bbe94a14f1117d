//! `run`: ingest, remux and publish in one process, for development and machines without
//! systemd. The stages still talk only through the state directory, exactly as under systemd.

use anyhow::Result;

use crate::cli::RunArgs;
use crate::shutdown::Shutdown;
use crate::spool::{Mode, StateDir};

pub async fn run(state: StateDir, args: RunArgs, shutdown: Shutdown) -> Result<()> {
    let ingest = tokio::spawn(crate::ingest::run(
        state.clone(),
        args.ingest,
        shutdown.clone(),
    ));
    let remux = tokio::spawn(crate::remux::run(
        state.clone(),
        args.remux,
        Mode::Watch,
        shutdown.clone(),
    ));
    let publish = tokio::spawn(crate::publish::run(
        state,
        args.publish,
        Mode::Watch,
        shutdown,
    ));
    let (i, r, p) = tokio::join!(ingest, remux, publish);
    i??;
    r??;
    p??;
    Ok(())
}
