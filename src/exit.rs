//! Exit codes that mean something to systemd and to an operator (see docs/ARCHITECTURE.md).

use std::fmt;
use std::process::ExitCode;

pub const RUNTIME: u8 = 1;
pub const USAGE: u8 = 2;
/// EX_DATAERR: the run set at least one input aside in `failed/` (see its `.reason`); the rest
/// was done. Not restarted by systemd (`RestartPreventExitStatus=65`): a rerun would not help.
pub const SET_ASIDE: u8 = 65;
/// EX_TEMPFAIL: try again later (the store is down after all retries).
pub const TEMPORARY: u8 = 75;
/// EX_NOPERM: needs an operator (access denied, no such bucket, bad credentials).
pub const PERMANENT: u8 = 77;

/// An error that carries the exit code the process should end with.
#[derive(Debug)]
pub struct Coded {
    pub code: u8,
    pub message: String,
}

impl Coded {
    pub fn new(code: u8, message: impl Into<String>) -> Coded {
        Coded {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Coded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Coded {}

/// The exit code for a stage's error: the `Coded` one in its chain, else [`RUNTIME`].
pub fn code_for(err: &anyhow::Error) -> ExitCode {
    let code = err
        .chain()
        .find_map(|e| e.downcast_ref::<Coded>())
        .map(|c| c.code)
        .unwrap_or(RUNTIME);
    ExitCode::from(code)
}
