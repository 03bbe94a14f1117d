//! A connection's deadlines, sans-IO: the shell passes the time in and asks when to wake, in the
//! shape of quinn-proto's and str0m's `handle_timeout(now)` / `poll_timeout()`. Time is how long
//! since the connection was accepted, so nothing here reads a clock and a test passes any value.

use std::time::Duration;

use super::error::ProtocolError;

/// Until a stream publishes, everything from connect to publish must fit in `handshake` (a
/// trickle of bytes does not extend it); from then on the peer may be silent `idle` at a time.
#[derive(Debug, Clone)]
pub(super) struct Deadlines {
    handshake: Duration,
    idle: Duration,
    ever_published: bool,
    last_input: Duration,
}

impl Deadlines {
    pub(super) fn new(handshake: Duration, idle: Duration) -> Deadlines {
        Deadlines {
            handshake,
            idle,
            ever_published: false,
            last_input: Duration::ZERO,
        }
    }

    pub(super) fn input(&mut self, now: Duration) {
        self.last_input = self.last_input.max(now);
    }

    pub(super) fn published(&mut self) {
        self.ever_published = true;
    }

    /// When the connection expires unless input comes first.
    pub(super) fn next(&self) -> Duration {
        if self.ever_published {
            self.last_input.saturating_add(self.idle)
        } else {
            self.handshake
        }
    }

    /// The error that ends the connection, once `now` reached its deadline.
    pub(super) fn check(&self, now: Duration) -> Result<(), ProtocolError> {
        if now < self.next() {
            Ok(())
        } else if self.ever_published {
            Err(ProtocolError::IdleTimeout { timeout: self.idle })
        } else {
            Err(ProtocolError::HandshakeTimeout {
                timeout: self.handshake,
            })
        }
    }
}
