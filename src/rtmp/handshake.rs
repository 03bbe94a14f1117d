//! Server side of the RTMP handshake (C0/C1/C2 in, S0/S1/S2 out) through
//! `rml_rtmp::handshake`, fed no more than the handshake needs so its internal buffer stays
//! bounded, and with panics turned into errors.

use rml_rtmp::handshake::{Handshake as RmlHandshake, HandshakeProcessResult, PeerType};

use super::error::{ProtocolError, guard};

/// C0 (1 byte) + C1 (1536) + C2 (1536).
const CLIENT_HANDSHAKE_LEN: usize = 1 + 1536 + 1536;

pub struct Handshake {
    inner: RmlHandshake,
    consumed: usize,
    done: bool,
}

impl Default for Handshake {
    fn default() -> Self {
        Handshake {
            inner: RmlHandshake::new(PeerType::Server),
            consumed: 0,
            done: false,
        }
    }
}

impl Handshake {
    #[cfg(fuzzing)]
    pub fn completed() -> Handshake {
        Handshake {
            done: true,
            ..Handshake::default()
        }
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Takes handshake bytes from the front of `input`, appends our replies to `output`. Bytes
    /// after C2 stay in `input`.
    pub fn feed(&mut self, input: &mut &[u8], output: &mut Vec<u8>) -> Result<(), ProtocolError> {
        if self.done || input.is_empty() {
            return Ok(());
        }
        let n = (CLIENT_HANDSHAKE_LEN - self.consumed).min(input.len());
        let (now, rest) = input.split_at(n);
        *input = rest;
        self.consumed += n;
        let inner = &mut self.inner;
        let result = guard("RTMP handshake", || inner.process_bytes(now))?.map_err(|e| {
            ProtocolError::Handshake {
                reason: format!("{e:?} after {} bytes", self.consumed),
            }
        })?;
        match result {
            HandshakeProcessResult::InProgress { response_bytes } => {
                output.extend_from_slice(&response_bytes)
            }
            HandshakeProcessResult::Completed {
                response_bytes,
                remaining_bytes,
            } => {
                output.extend_from_slice(&response_bytes);
                self.done = true;
                if !remaining_bytes.is_empty() {
                    return Err(ProtocolError::Handshake {
                        reason: format!(
                            "{} unexpected bytes left inside the handshake",
                            remaining_bytes.len()
                        ),
                    });
                }
            }
        }
        if self.consumed == CLIENT_HANDSHAKE_LEN && !self.done {
            return Err(ProtocolError::Handshake {
                reason: "C2 received but the handshake did not complete".into(),
            });
        }
        Ok(())
    }
}
