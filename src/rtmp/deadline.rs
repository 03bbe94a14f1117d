//! A connection's deadlines, sans-IO: the shell passes the time in and asks when to wake, in the
//! shape of quinn-proto's and str0m's `handle_timeout(now)` / `poll_timeout()`. Time is how long
//! since the connection was accepted, so nothing here reads a clock and a test passes any value.

use std::time::Duration;

use super::error::ProtocolError;

/// Until a stream publishes, everything from connect to publish must fit in `handshake` (a
/// trickle of bytes does not extend it); from then on the peer may be silent `idle` at a time.
/// Whenever the shell is writing our replies, the peer must take them within `write` (a peer that
/// stops reading would otherwise block that write, and its connection, forever).
#[derive(Debug, Clone)]
pub(super) struct Deadlines {
    handshake: Duration,
    idle: Duration,
    write: Duration,
    ever_published: bool,
    last_input: Duration,
    /// When the write in progress began; `None` while nothing waits to be sent.
    writing_since: Option<Duration>,
}

impl Deadlines {
    pub(super) fn new(handshake: Duration, idle: Duration, write: Duration) -> Deadlines {
        Deadlines {
            handshake,
            idle,
            write,
            ever_published: false,
            last_input: Duration::ZERO,
            writing_since: None,
        }
    }

    pub(super) fn writing(&mut self, now: Duration) {
        self.writing_since.get_or_insert(now);
    }

    pub(super) fn written(&mut self) {
        self.writing_since = None;
    }

    fn write_deadline(&self) -> Option<Duration> {
        self.writing_since
            .map(|since| since.saturating_add(self.write))
    }

    pub(super) fn input(&mut self, now: Duration) {
        self.last_input = self.last_input.max(now);
    }

    pub(super) fn published(&mut self) {
        self.ever_published = true;
    }

    /// When the connection expires unless input comes first (or the write in progress ends).
    pub(super) fn next(&self) -> Duration {
        let read = self.read_deadline();
        self.write_deadline().map_or(read, |w| w.min(read))
    }

    fn read_deadline(&self) -> Duration {
        if self.ever_published {
            self.last_input.saturating_add(self.idle)
        } else {
            self.handshake
        }
    }

    /// The error that ends the connection, once `now` reached its deadline.
    pub(super) fn check(&self, now: Duration) -> Result<(), ProtocolError> {
        if self.write_deadline().is_some_and(|w| now >= w) {
            Err(ProtocolError::WriteTimeout {
                timeout: self.write,
            })
        } else if now < self.read_deadline() {
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
