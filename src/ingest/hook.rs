//! The publish hook (`--publish-hook URL`), like nginx-rtmp's `on_publish`: before a publish is
//! accepted that no allowed key or token admits, ingest POSTs a small JSON to the URL and
//! admits on a 2xx answer. Anything else (another status, no connection, no answer within
//! `--publish-hook-timeout`) refuses: the hook fails closed.
//!
//! Request (`Content-Type: application/json`):
//! `{"app": "live", "stream": "cam1", "peer": "192.0.2.7:50412", "params": {"user": "ann"}}`:
//! app and stream as published (query removed), the publisher's address, and the parameters
//! of the stream name's query except `sig` (a token's signature is no business of the hook's).
//! A 2xx answer may carry `{"label": "NAME"}`: the stream is then recorded as NAME instead of
//! its stream name (so a hook can admit secret keys without them naming files).
//!
//! Plain `http://` only: the hook is meant to run beside the recorder (localhost or a private
//! network). Each call is its own connection, awaited by the publishing connection's task
//! alone, so a slow hook delays that publisher (up to the timeout) and nobody else.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;

use crate::http_post::Target;

/// A hook answer larger than this is not read (it only has to hold a label).
const MAX_ANSWER_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Hook {
    target: Target,
    timeout: Duration,
}

/// What the hook decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Admitted; under this label when the hook gave one.
    Admit { label: Option<String> },
    /// Refused, and why (for the log and the publisher).
    Refuse { reason: String },
}

impl Hook {
    pub fn new(url: &str, timeout: Duration) -> Result<Hook> {
        Ok(Hook {
            target: Target::parse("--publish-hook", url)?,
            timeout,
        })
    }

    pub fn url(&self) -> String {
        self.target.uri().to_string()
    }

    /// Asks the hook about a publish; never waits longer than the timeout.
    pub async fn ask(&self, app: &str, stream: &str, query: &str, peer: SocketAddr) -> Answer {
        let params: serde_json::Map<String, serde_json::Value> = query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| p.split_once('=').unwrap_or((p, "")))
            .filter(|(name, _)| *name != "sig")
            .map(|(n, v)| (n.to_string(), serde_json::Value::from(v)))
            .collect();
        let body = serde_json::json!({
            "app": app,
            "stream": stream,
            "peer": peer.to_string(),
            "params": params,
        });
        match tokio::time::timeout(self.timeout, self.post(body.to_string())).await {
            Err(_) => Answer::Refuse {
                reason: format!(
                    "publish hook did not answer within {}",
                    crate::duration::format(self.timeout)
                ),
            },
            Ok(Err(e)) => {
                // The details (the hook's address) are for the operator, not the publisher.
                log::warn!(
                    "publish hook {} failed: {e:#}; publishes it is asked about are refused until it answers",
                    self.target.uri()
                );
                Answer::Refuse {
                    reason: "publish hook failed".to_string(),
                }
            }
            Ok(Ok(answer)) => answer,
        }
    }

    async fn post(&self, body: String) -> Result<Answer> {
        let (status, bytes) = self
            .target
            .post_json(Bytes::from(body), MAX_ANSWER_BYTES)
            .await?;
        if !status.is_success() {
            return Ok(Answer::Refuse {
                reason: format!("publish hook answered {status}"),
            });
        }
        Ok(Answer::Admit {
            label: label_of(&bytes),
        })
    }
}

/// The `label` of a JSON answer; none for other answers (an empty body, text).
fn label_of(answer: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(answer).ok()?;
    let label = value.get("label")?.as_str()?;
    (!label.is_empty()).then(|| label.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls() {
        assert!(Hook::new("http://127.0.0.1:8080/auth", Duration::from_secs(3)).is_ok());
        assert!(Hook::new("https://auth.example/", Duration::from_secs(3)).is_err());
        assert!(Hook::new("not a url", Duration::from_secs(3)).is_err());
    }

    #[test]
    fn labels_come_from_a_json_answer_only() {
        assert_eq!(label_of(br#"{"label":"lobby"}"#).as_deref(), Some("lobby"));
        assert_eq!(label_of(br#"{"label":""}"#), None);
        assert_eq!(label_of(br#"{"label":7}"#), None);
        assert_eq!(label_of(b"OK"), None);
        assert_eq!(label_of(b""), None);
    }
}
