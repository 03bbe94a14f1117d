//! `run`: ingest, remux and publish in one process, for development and machines without
//! systemd, and deliver when a hook is configured. The stages still talk only through the
//! state directory, exactly as under systemd.
//!
//! The stages fail as one: when any of them ends with an error (ingest cannot bind its port,
//! publish has a bad key template), the others are told to stop as on SIGTERM, so the process
//! exits at once with that stage's error and exit code instead of half-running until a signal.

use std::collections::HashMap;

use anyhow::{Result, anyhow};
use tokio::task::JoinSet;

use crate::cli::RunArgs;
use crate::naming::NodeId;
use crate::shutdown::{self, Shutdown};
use crate::spool::{Mode, StateDir};

pub async fn run(
    state: StateDir,
    mut args: RunArgs,
    node: NodeId,
    mut signals: Shutdown,
) -> Result<()> {
    // /clip reads where this run publishes.
    args.ingest.clips = Some(std::sync::Arc::new(args.publish.clone()));
    // Every stage writes events when a hook is configured; deliver hands them on.
    let hooks = args.events.sinks.any();
    let events = crate::events::Emitter::new(&state, hooks);
    args.ingest.events = Some(events.clone());
    args.remux.events = Some(events.clone());
    args.publish.events = Some(events);
    // The stages watch our own signal, so a failing stage can stop its siblings; SIGTERM is
    // passed on to it.
    let (stop, stages_shutdown) = shutdown::channel();
    let mut stages = JoinSet::new();
    let mut names = HashMap::new();
    let ingest = crate::ingest::run(
        state.clone(),
        args.ingest,
        node.clone(),
        stages_shutdown.clone(),
    );
    names.insert(stages.spawn(ingest).id(), "ingest");
    let remux = crate::remux::run(
        state.clone(),
        args.remux,
        Mode::Watch,
        stages_shutdown.clone(),
    );
    names.insert(stages.spawn(remux).id(), "remux");
    if hooks {
        let deliver = crate::events::deliver::run(
            state.clone(),
            args.events,
            Mode::Watch,
            stages_shutdown.clone(),
        );
        names.insert(stages.spawn(deliver).id(), "deliver");
    }
    let publish = crate::publish::run(state, args.publish, node, Mode::Watch, stages_shutdown);
    names.insert(stages.spawn(publish).id(), "publish");

    let mut first_error = None;
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = signals.requested(), if !stopping => {
                stopping = true;
                stop.trigger();
            }
            joined = stages.join_next_with_id() => {
                let Some(joined) = joined else { break };
                let (stage, result) = match joined {
                    Ok((id, result)) => (names[&id], result),
                    Err(e) => (names[&e.id()], Err(anyhow!("the task panicked: {e}"))),
                };
                if let Err(e) = result {
                    if !stopping {
                        // The error itself is logged once, by main, with the exit code it maps to.
                        log::error!("{stage} failed; stopping the other stages");
                    }
                    stopping = true;
                    stop.trigger();
                    first_error.get_or_insert(e.context(format!("{stage} stage")));
                }
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
