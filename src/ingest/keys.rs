//! Who may publish, and under which name a stream is recorded. The publish name in
//! `rtmp://host/<app>/<name>` is the stream key; with an allowed-keys file it is a secret that never
//! appears in logs, file names or object keys: the stream's label stands in for it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

/// The allowed-keys file, read once at start: lines `KEY` or `KEY LABEL`. A `#` starts a comment
/// only at the start of a word, so a key may contain `#` (`abc#def` is one key, not `abc`).
#[derive(Debug, Clone, Default)]
pub struct AllowedKeys {
    labels: HashMap<String, String>,
}

/// How a publish request is to be treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Record under this label.
    Allowed {
        label: String,
    },
    Denied,
}

impl AllowedKeys {
    pub fn load(path: &Path) -> Result<AllowedKeys> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading allowed keys from {}", path.display()))?;
        AllowedKeys::parse(&text)
            .with_context(|| format!("in allowed keys file {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<AllowedKeys> {
        let mut labels = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace().take_while(|w| !w.starts_with('#'));
            let Some(key) = words.next() else {
                continue;
            };
            let label = words
                .next()
                .map(str::to_string)
                .unwrap_or_else(|| hashed_label(key));
            if words.next().is_some() {
                bail!(
                    "line {}: expected `KEY` or `KEY LABEL`, found more words",
                    i + 1
                );
            }
            labels.insert(key.to_string(), label);
        }
        Ok(AllowedKeys { labels })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    fn check(&self, key: &str) -> Verdict {
        match self.labels.get(key) {
            Some(label) => Verdict::Allowed {
                label: label.clone(),
            },
            None => Verdict::Denied,
        }
    }
}

/// The publish policy: with an allowed-keys file only listed keys publish, under their label;
/// without one any name publishes under itself (nothing is secret then, as with nginx-rtmp).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    keys: Option<AllowedKeys>,
}

impl Policy {
    pub fn open() -> Policy {
        Policy { keys: None }
    }

    pub fn with_keys(keys: AllowedKeys) -> Policy {
        Policy { keys: Some(keys) }
    }

    pub fn keys_are_secret(&self) -> bool {
        self.keys.is_some()
    }

    /// Decides on a publish name as the client sent it (`?query` ignored).
    pub fn check(&self, publish_name: &str) -> Verdict {
        let key = strip_query(publish_name);
        match &self.keys {
            Some(keys) => keys.check(key),
            None if key.is_empty() => Verdict::Denied,
            None => Verdict::Allowed {
                label: key.to_string(),
            },
        }
    }

    /// What a log line may say about a publish name that was not allowed.
    pub fn loggable(&self, publish_name: &str) -> String {
        let key = strip_query(publish_name);
        if self.keys_are_secret() {
            redact(key)
        } else {
            key.to_string()
        }
    }
}

fn strip_query(name: &str) -> &str {
    name.split('?').next().unwrap_or(name)
}

/// `key-` and 8 hex digits of the key's SHA-256: stable, and says nothing about the key.
pub fn hashed_label(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("key-{hex}")
}

/// A key as logs may show it: its length and hashed label only.
pub fn redact(key: &str) -> String {
    format!("<{} chars, {}>", key.chars().count(), hashed_label(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_keys_labels_and_comments() {
        let keys = AllowedKeys::parse("# cams\nsecret1 cam1\n\n  secret2  # no label\n").unwrap();
        assert_eq!(keys.len(), 2);
        let policy = Policy::with_keys(keys);
        assert_eq!(
            policy.check("secret1"),
            Verdict::Allowed {
                label: "cam1".into()
            }
        );
        assert_eq!(
            policy.check("secret2?foo=bar"),
            Verdict::Allowed {
                label: hashed_label("secret2")
            }
        );
        assert_eq!(policy.check("guess"), Verdict::Denied);
        assert!(!policy.loggable("guess").contains("guess"));
        assert!(AllowedKeys::parse("a b c").is_err());
        // A `#` inside a key is part of it: cutting there would let `abc` publish.
        let policy = Policy::with_keys(AllowedKeys::parse("abc#defSECRET cam # note").unwrap());
        assert_eq!(policy.check("abc"), Verdict::Denied);
        assert_eq!(
            policy.check("abc#defSECRET"),
            Verdict::Allowed {
                label: "cam".into()
            }
        );
    }

    #[test]
    fn open_policy_records_under_the_name() {
        let policy = Policy::open();
        assert_eq!(
            policy.check("cam1?x=1"),
            Verdict::Allowed {
                label: "cam1".into()
            }
        );
        assert_eq!(policy.check(""), Verdict::Denied);
    }

    #[test]
    fn hashed_label_is_stable_and_short() {
        assert_eq!(hashed_label("x"), hashed_label("x"));
        assert_ne!(hashed_label("x"), hashed_label("y"));
        assert_eq!(hashed_label("x").len(), 12);
    }
}
