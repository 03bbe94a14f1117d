//! Command line: `rtmp-recorder [--state-dir DIR] <ingest|remux|publish|run>`. Every option also
//! reads an environment variable, and the seed deployment's variable names work unchanged, so an
//! existing `.env` keeps working. Each stage owns its own `Args`; this file only assembles them.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::spool::DEFAULT_STATE_DIR;

#[derive(Debug, Parser)]
#[command(name = "rtmp-recorder", version, about, propagate_version = true)]
pub struct Cli {
    /// State directory shared by all stages (inboxes, archive, failed).
    /// Default: $STATE_DIRECTORY (systemd), else $RECORDINGS_DIR (seed), else /var/lib/rtmp-recorder.
    #[arg(long, global = true, env = "RTMP_RECORDER_STATE_DIR")]
    pub state_dir: Option<PathBuf>,

    /// This node's identity in chunk names, manifests and the key template's {node} (ingest,
    /// publish, run). Default: on EC2 the instance id, else the hostname.
    #[arg(long, global = true, env = "NODE_ID")]
    pub node_id: Option<String>,

    /// Log level: error, warn, info, debug, trace.
    #[arg(long, global = true, env = "RTMP_RECORDER_LOG", default_value = "info")]
    pub log_level: log::LevelFilter,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Accept RTMP publishers and record their streams into FLV chunks.
    Ingest(crate::ingest::Args),
    /// Turn finished FLV chunks into faststart MP4s.
    Remux {
        /// Keep running and remux new chunks as they arrive (default: drain the inbox and exit).
        #[arg(long)]
        watch: bool,
        /// Drain mode: exit only once the inbox is empty (see `UntilEmpty`).
        #[arg(long, env = "RTMP_RECORDER_UNTIL_EMPTY", conflicts_with = "watch")]
        until_empty: bool,
        #[command(flatten)]
        args: crate::remux::Args,
    },
    /// Upload finished MP4s to S3 or a directory.
    Publish {
        /// Keep running and upload new files as they arrive (default: drain the inbox and exit).
        #[arg(long)]
        watch: bool,
        /// Drain mode: exit only once the inbox is empty (see `UntilEmpty`).
        #[arg(long, env = "RTMP_RECORDER_UNTIL_EMPTY", conflicts_with = "watch")]
        until_empty: bool,
        #[command(flatten)]
        args: crate::publish::Args,
    },
    /// Deliver the queued events to the hooks (--hook-command, --webhook).
    Deliver {
        /// Keep running and deliver new events as they arrive (default: drain the queue and exit).
        #[arg(long)]
        watch: bool,
        /// Drain mode: exit only once the queue is empty (see `UntilEmpty`).
        #[arg(long, env = "RTMP_RECORDER_UNTIL_EMPTY", conflicts_with = "watch")]
        until_empty: bool,
        #[command(flatten)]
        args: crate::events::Args,
    },
    /// Run ingest, remux and publish (and deliver, with a hook) in one process (no systemd needed).
    /// Boxed: all three stages' options together dwarf the other commands'.
    Run(Box<RunArgs>),
    /// Cut one MP4 of a span of a recorded stream out of its chunks, without re-encoding.
    Clip(crate::clip::Args),
    /// Show how every stage is doing; exit 0 when all is well, 1 when something needs attention.
    Status(crate::status::Args),
    /// Print a publish URL with a signed token that admits one stream until it expires.
    Token(crate::token_command::Args),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub ingest: crate::ingest::Args,
    #[command(flatten)]
    pub remux: crate::remux::Args,
    #[command(flatten)]
    pub publish: crate::publish::Args,
    #[command(flatten)]
    pub events: crate::events::Args,
}

/// A stage's options as the environment alone gives them (defaults for the rest), for a stage
/// that does not take those flags but must agree with the one that does; `what` names them in
/// the error (exit 2).
pub fn args_from_env<A: clap::Args + clap::FromArgMatches>(what: &str) -> anyhow::Result<A> {
    let command = A::augment_args(clap::Command::new("rtmp-recorder"));
    command
        .try_get_matches_from(["rtmp-recorder"])
        .and_then(|m| A::from_arg_matches(&m))
        .map_err(|e| {
            crate::exit::Coded::new(
                crate::exit::USAGE,
                format!("reading {what} from the environment: {e}"),
            )
            .into()
        })
}

impl Cli {
    /// `--state-dir`, else systemd's `$STATE_DIRECTORY` (first entry), else the seed's
    /// `$RECORDINGS_DIR`, else the default.
    pub fn state_dir(&self) -> PathBuf {
        if let Some(dir) = &self.state_dir {
            return dir.clone();
        }
        for var in ["STATE_DIRECTORY", "RECORDINGS_DIR"] {
            if let Some(v) = std::env::var_os(var).filter(|v| !v.is_empty()) {
                // systemd passes a colon-separated list when several are configured.
                let v = v.to_string_lossy();
                return PathBuf::from(v.split(':').next().unwrap_or(&v));
            }
        }
        PathBuf::from(DEFAULT_STATE_DIR)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
