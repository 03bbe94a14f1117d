use std::process::ExitCode;

use clap::Parser;

use rtmp_recorder::cli::{Cli, Command};
use rtmp_recorder::spool::{Mode, StateDir};
use rtmp_recorder::{
    clip, events, exit, ingest, logging, node, publish, remux, run, shutdown, status, token_command,
};

fn main() -> ExitCode {
    // SAFETY: the first thing main does; no other thread exists yet.
    unsafe { rtmp_recorder::systemd::take_passed() };
    let cli = Cli::parse();
    let stage = match &cli.command {
        Command::Ingest(_) => "ingest",
        Command::Remux { .. } => "remux",
        Command::Publish { .. } => "publish",
        Command::Deliver { .. } => "deliver",
        Command::Run(_) => "run",
        Command::Clip(_) => "clip",
        Command::Status(_) => "status",
        Command::Token(_) => "token",
    };
    logging::init(cli.log_level, stage);
    let state_dir = cli.state_dir();
    // status only reads, and its exit status is its answer.
    if let Command::Status(args) = &cli.command {
        return status::main(&state_dir, args);
    }
    // token needs no state directory: it signs with the secret file.
    if let Command::Token(args) = &cli.command {
        return token_command::main(args);
    }
    // A clip only reads: it must not create or tidy a state directory it may not own.
    let state = match &cli.command {
        Command::Clip(_) => Ok(StateDir::new(&state_dir)),
        _ => StateDir::open(&state_dir),
    };
    let state = match state {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e:#}: check that the state directory is writable (--state-dir)");
            return ExitCode::from(exit::USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            log::error!("starting the async runtime: {e}");
            return ExitCode::from(exit::RUNTIME);
        }
    };
    let result = runtime.block_on(async move {
        let (trigger, shutdown) = shutdown::channel();
        shutdown::on_signals(trigger)?;
        // Resolved once, before any stage starts, so ingest and publish of a `run` agree.
        let node = || node::resolve(cli.node_id.as_deref());
        match cli.command {
            Command::Ingest(args) => ingest::run(state, args, node().await?, shutdown).await,
            Command::Remux {
                watch,
                until_empty,
                args,
            } => remux::run(state, args, Mode::new(watch, until_empty), shutdown).await,
            Command::Publish {
                watch,
                until_empty,
                args,
            } => {
                let mode = Mode::new(watch, until_empty);
                publish::run(state, args, node().await?, mode, shutdown).await
            }
            Command::Deliver {
                watch,
                until_empty,
                args,
            } => events::deliver::run(state, args, Mode::new(watch, until_empty), shutdown).await,
            Command::Run(args) => run::run(state, *args, node().await?, shutdown).await,
            Command::Clip(args) => clip::run(state, args).await,
            Command::Status(_) | Command::Token(_) => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{stage} failed: {e:#}");
            exit::code_for(&e)
        }
    }
}
