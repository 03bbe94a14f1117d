//! Who may publish, and under which name a stream is recorded. The publish name in
//! `rtmp://host/<app>/<name>` is the stream key; with an allowed-keys file it is a secret that never
//! appears in logs, file names or object keys: the stream's label stands in for it.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::log_safe::shown;
use crate::publish_token::{Secret, has_token, split_query};

/// The per-installation secret that labels unlabelled keys, in `secrets/label-key` of the state
/// directory (created at first start, mode 0600, never served: `/recordings/` serves only its
/// own folders). Without it a label would be a plain hash of the key, and a short key could be
/// found again from object keys by trying candidates; with it, a label says nothing about the
/// key to whoever does not hold this file.
#[derive(Clone)]
pub struct LabelKey(Vec<u8>);

impl std::fmt::Debug for LabelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LabelKey(..)")
    }
}

/// Bytes of a new label key.
const LABEL_KEY_BYTES: usize = 32;

impl LabelKey {
    pub fn new(bytes: Vec<u8>) -> LabelKey {
        LabelKey(bytes)
    }

    /// Reads `secrets/label-key` of the state directory, creating it (random, 0600, in a 0700
    /// folder) the first time.
    pub fn load_or_create(state_root: &Path) -> Result<LabelKey> {
        use std::io::{Read, Write};
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = state_root.join("secrets");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join("label-key");
        match std::fs::read(&path) {
            Ok(bytes) if bytes.len() >= LABEL_KEY_BYTES => return Ok(LabelKey(bytes)),
            Ok(_) => bail!(
                "{} holds fewer than {LABEL_KEY_BYTES} bytes; delete it to have a new one made \
                 (the labels of unlabelled keys change then)",
                path.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let mut bytes = vec![0u8; LABEL_KEY_BYTES];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut r| r.read_exact(&mut bytes))
            .context("reading /dev/urandom for a new label key")?;
        // create_new: two ingests starting at once must not end up with different keys.
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path);
        match created {
            Ok(mut f) => {
                f.write_all(&bytes)
                    .and_then(|_| f.sync_all())
                    .with_context(|| format!("writing {}", path.display()))?;
                crate::spool::fsync_dir(&dir)
                    .with_context(|| format!("fsync {}", dir.display()))?;
                log::info!(
                    "made a new label key in {} (it names unlabelled stream keys; keep it with the state)",
                    path.display()
                );
                Ok(LabelKey(bytes))
            }
            // Made by another ingest starting at the same moment: use it only once it is whole
            // (a short key would let anyone test guesses against labels).
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let bytes =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                if bytes.len() < LABEL_KEY_BYTES {
                    bail!(
                        "{} holds {} bytes, not the {LABEL_KEY_BYTES} of a label key: another                          ingest may be writing it; start again, or remove it if none is",
                        path.display(),
                        bytes.len()
                    );
                }
                Ok(LabelKey(bytes))
            }
            Err(e) => Err(e).with_context(|| format!("creating {}", path.display())),
        }
    }

    /// `key-` and 16 hex digits (64 bits) of HMAC-SHA256(label key, key). The length only has to
    /// keep labels of one installation apart (the HMAC hides the key whatever its length): with
    /// n keys the chance that two share a label is about n²/2⁶⁵, below 10⁻¹¹ for 10,000 keys.
    pub fn label(&self, key: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(key.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("key-{hex}")
    }

    /// A key as logs may show it: its length and label only.
    pub fn redact(&self, key: &str) -> String {
        format!("<{} chars, {}>", key.chars().count(), self.label(key))
    }
}

/// The allowed-keys file, read once at start: lines `KEY` or `KEY LABEL`. A `#` starts a comment
/// only at the start of a word, so a key may contain `#` (`abc#def` is one key, not `abc`).
#[derive(Debug, Clone)]
pub struct AllowedKeys {
    labels: HashMap<String, String>,
    label_key: LabelKey,
}

impl AllowedKeys {
    pub fn load(path: &Path, label_key: LabelKey) -> Result<AllowedKeys> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading allowed keys from {}", path.display()))?;
        AllowedKeys::parse(&text, label_key)
            .with_context(|| format!("in allowed keys file {}", path.display()))
    }

    pub fn parse(text: &str, label_key: LabelKey) -> Result<AllowedKeys> {
        let mut labels = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let mut words = line.split_whitespace().take_while(|w| !w.starts_with('#'));
            let Some(key) = words.next() else {
                continue;
            };
            let label = words
                .next()
                .map(str::to_string)
                .unwrap_or_else(|| label_key.label(key));
            if words.next().is_some() {
                bail!(
                    "line {}: expected `KEY` or `KEY LABEL`, found more words",
                    i + 1
                );
            }
            labels.insert(key.to_string(), label);
        }
        Ok(AllowedKeys { labels, label_key })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// How a publish request is to be treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Record under this label.
    Allowed { label: String },
    /// Nothing here admits it; the publish hook decides (its label, else the stream name).
    AskHook,
    /// Refused; the reason is told to the publisher and logged (it never holds the name).
    Denied { reason: String },
}

/// Who may publish, from `--allowed-apps`, `--allowed-keys`, `--publish-secret` and
/// `--publish-hook`. An app not in the allowed apps is refused whatever else it brings. Then any
/// one of the others admits: a listed key (under its label), a valid token (under the stream
/// name), the hook (under its label or the stream name). With none of them configured any
/// name publishes under itself (nothing is secret then, as with nginx-rtmp).
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub apps: Option<Vec<String>>,
    pub keys: Option<AllowedKeys>,
    pub tokens: Option<Secret>,
    pub hook: bool,
}

impl Policy {
    pub fn open() -> Policy {
        Policy::default()
    }

    #[cfg(test)]
    pub fn with_keys(keys: AllowedKeys) -> Policy {
        Policy {
            keys: Some(keys),
            ..Policy::default()
        }
    }

    /// Decides on `app` (query already removed) and a publish name as the client sent it
    /// (`stream?query`), at `now_unix` seconds (tokens expire).
    pub fn check(&self, app: &str, publish_name: &str, now_unix: u64) -> Verdict {
        let (stream, query) = split_query(publish_name);
        let denied = |reason: &str| Verdict::Denied {
            reason: reason.to_string(),
        };
        if stream.is_empty() {
            return denied("empty stream name");
        }
        if let Some(apps) = &self.apps
            && !apps.iter().any(|a| a == app)
        {
            return denied("app not allowed");
        }
        if let Some(label) = self.keys.as_ref().and_then(|k| k.labels.get(stream)) {
            return Verdict::Allowed {
                label: label.clone(),
            };
        }
        if let Some(secret) = &self.tokens
            && has_token(query)
        {
            return match secret.verify(app, stream, query, now_unix) {
                Ok(()) => Verdict::Allowed {
                    label: stream.to_string(),
                },
                Err(why) => Verdict::Denied {
                    reason: why.to_string(),
                },
            };
        }
        if self.hook {
            return Verdict::AskHook;
        }
        match (&self.keys, &self.tokens) {
            (None, None) => Verdict::Allowed {
                label: stream.to_string(),
            },
            (Some(_), None) => denied("stream key not allowed"),
            (None, Some(_)) => denied(&crate::publish_token::Refusal::Missing.to_string()),
            (Some(_), Some(_)) => denied("stream key not allowed and no publish token"),
        }
    }

    /// What a log line may say about a publish name that was not allowed: never its query;
    /// with secret keys, its length and label only; with a hook (which may admit names that
    /// are secret keys to it), its length only.
    pub fn loggable(&self, publish_name: &str) -> String {
        let (stream, _) = split_query(publish_name);
        match &self.keys {
            Some(keys) => keys.label_key.redact(stream),
            None if self.hook => format!("<{} chars>", stream.chars().count()),
            None => shown(stream),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label_key() -> LabelKey {
        LabelKey::new(vec![7; 32])
    }

    fn allowed(label: &str) -> Verdict {
        Verdict::Allowed {
            label: label.into(),
        }
    }

    fn denied(v: Verdict) -> String {
        match v {
            Verdict::Denied { reason } => reason,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn parses_keys_labels_and_comments() {
        let keys = AllowedKeys::parse(
            "# cams\nsecret1 cam1\n\n  secret2  # no label\n",
            label_key(),
        )
        .unwrap();
        assert_eq!(keys.len(), 2);
        let policy = Policy::with_keys(keys);
        assert_eq!(policy.check("live", "secret1", 0), allowed("cam1"));
        assert_eq!(
            policy.check("live", "secret2?foo=bar", 0),
            allowed(&label_key().label("secret2"))
        );
        assert_eq!(
            denied(policy.check("live", "guess", 0)),
            "stream key not allowed"
        );
        assert!(!policy.loggable("guess").contains("guess"));
        assert!(AllowedKeys::parse("a b c", label_key()).is_err());
        // A `#` inside a key is part of it: cutting there would let `abc` publish.
        let policy =
            Policy::with_keys(AllowedKeys::parse("abc#defSECRET cam # note", label_key()).unwrap());
        assert!(matches!(
            policy.check("live", "abc", 0),
            Verdict::Denied { .. }
        ));
        assert_eq!(policy.check("live", "abc#defSECRET", 0), allowed("cam"));
    }

    #[test]
    fn open_policy_records_under_the_name_and_logs_it_escaped() {
        let policy = Policy::open();
        assert_eq!(policy.check("live", "cam1?x=1", 0), allowed("cam1"));
        assert_eq!(denied(policy.check("live", "?x=1", 0)), "empty stream name");
        assert_eq!(policy.loggable("a\nb?token=SECRET"), "a\\nb");
    }

    #[test]
    fn labels_are_keyed_long_and_stable() {
        let k = label_key();
        assert_eq!(k.label("x"), k.label("x"));
        assert_ne!(k.label("x"), k.label("y"));
        assert_eq!(k.label("x").len(), 4 + 16);
        // Another installation labels the same key differently: no table of short keys'
        // labels works across installations.
        assert_ne!(LabelKey::new(vec![8; 32]).label("x"), k.label("x"));
        assert!(!k.redact("hunter2").contains("hunter2"));
    }

    #[test]
    fn apps_tokens_and_hook_combine() {
        let secret = Secret::from_file_bytes(b"0123456789abcdef-test").unwrap();
        let keys = AllowedKeys::parse("k3y lobby", label_key()).unwrap();
        let policy = Policy {
            apps: Some(vec!["live".into()]),
            keys: Some(keys),
            tokens: Some(secret.clone()),
            hook: false,
        };
        let token = secret.sign("live", "cam1", 100);
        assert_eq!(
            policy.check("live", &format!("cam1?{token}"), 50),
            allowed("cam1")
        );
        assert_eq!(policy.check("live", "k3y", 50), allowed("lobby"));
        assert_eq!(denied(policy.check("other", "k3y", 50)), "app not allowed");
        assert_eq!(
            denied(policy.check("live", &format!("cam1?{token}"), 100)),
            "token expired 0 s ago"
        );
        assert_eq!(
            denied(policy.check("live", &format!("cam2?{token}"), 50)),
            "bad signature"
        );
        assert_eq!(
            denied(policy.check("live", "cam1", 50)),
            "stream key not allowed and no publish token"
        );
        // The token signs the app: the same token under another (allowed) app is refused.
        let two_apps = Policy {
            apps: None,
            ..policy.clone()
        };
        assert_eq!(
            denied(two_apps.check("studio", &format!("cam1?{token}"), 50)),
            "bad signature"
        );
        let hooked = Policy {
            hook: true,
            ..two_apps
        };
        assert_eq!(hooked.check("live", "cam1", 50), Verdict::AskHook);
        assert_eq!(hooked.check("live", "k3y", 50), allowed("lobby"));
    }
}
