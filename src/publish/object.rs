//! What the publish loop and every destination agree on: the object to create, what a verified
//! upload proved, and how a SHA-256 is written in manifests and logs.

use std::collections::BTreeMap;

/// The object to create.
#[derive(Debug, Clone)]
pub struct ObjectSpec {
    pub key: String,
    pub content_type: &'static str,
    /// User metadata; the store adds `sha256` itself from what it read.
    pub metadata: BTreeMap<String, String>,
    /// The SHA-256 the bytes must have, when it is known before they are read (the MP4's, from
    /// the manifest remux wrote): a large S3 upload then reads the file once, and bytes that do
    /// not match it are a conflict, never stored.
    pub known_sha256: Option<[u8; 32]>,
}

/// A verified object: the store holds exactly these bytes under the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub size: u64,
    pub sha256: [u8; 32],
    /// The object was already there with the same size and SHA-256 (an earlier run stored it).
    pub already_there: bool,
}

impl Stored {
    /// Our bytes, written by this run.
    pub fn written(size: u64, sha256: [u8; 32]) -> Stored {
        Stored {
            size,
            sha256,
            already_there: false,
        }
    }

    /// Our bytes, found under the key (an earlier run stored them).
    pub fn found(size: u64, sha256: [u8; 32]) -> Stored {
        Stored {
            size,
            sha256,
            already_there: true,
        }
    }
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Parses a 64-digit hex SHA-256 (as manifests carry it).
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    let bytes = text.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_round_trips() {
        let sha: [u8; 32] = std::array::from_fn(|i| (i * 7) as u8);
        assert_eq!(parse_sha256(&hex(&sha)), Some(sha));
        assert_eq!(parse_sha256("abc"), None);
        assert_eq!(parse_sha256(&"zz".repeat(32)), None);
    }
}
