//! Signed, expiring publish tokens, pure (the caller reads the clock and the secret file).
//!
//! A publisher appends `?exp=<unix seconds>&sig=<hex>` to the stream name, where `sig` is the
//! lowercase hex HMAC-SHA256 of `<app>/<stream>:<exp>` under the installation's secret: the
//! shape of nginx's `secure_link`, so scripts written for it work unchanged. The token signs the
//! app as well as the stream, so it admits one stream of one app, until `exp`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Secrets shorter than this are refused at start: a short secret can be guessed offline from
/// one token.
pub const MIN_SECRET_BYTES: usize = 16;

/// The secret tokens are signed with.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

impl Secret {
    /// The secret from its file's bytes, a trailing newline (as editors leave) dropped.
    pub fn from_file_bytes(bytes: &[u8]) -> Result<Secret, String> {
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        if trimmed.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the publish secret holds {} bytes; use at least {MIN_SECRET_BYTES} random ones \
                 (e.g. `head -c 32 /dev/urandom | base64 > FILE`)",
                trimmed.len()
            ));
        }
        Ok(Secret(trimmed.to_vec()))
    }

    fn mac(&self, app: &str, stream: &str, exp: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(format!("{app}/{stream}:{exp}").as_bytes());
        mac
    }

    /// The query a publisher appends to `stream`: `exp=..&sig=..`.
    pub fn sign(&self, app: &str, stream: &str, exp: u64) -> String {
        let exp = exp.to_string();
        let sig = self.mac(app, stream, &exp).finalize().into_bytes();
        let hex: String = sig.iter().map(|b| format!("{b:02x}")).collect();
        format!("exp={exp}&sig={hex}")
    }

    /// Whether the token in `query` (the stream name's part after `?`) admits `app`/`stream`
    /// at `now_unix` seconds. Other query parameters are ignored.
    pub fn verify(
        &self,
        app: &str,
        stream: &str,
        query: &str,
        now_unix: u64,
    ) -> Result<(), Refusal> {
        let token = Token::find(query)?.ok_or(Refusal::Missing)?;
        let sig = hex_decode(token.sig).ok_or(Refusal::Malformed("sig is not 64 hex digits"))?;
        let exp: u64 = token
            .exp
            .parse()
            .ok()
            .filter(|_| token.exp.bytes().all(|b| b.is_ascii_digit()))
            .ok_or(Refusal::Malformed("exp is not unix seconds"))?;
        // The signature first: an expired token's reason is only told to its holder.
        self.mac(app, stream, token.exp)
            .verify_slice(&sig)
            .map_err(|_| Refusal::BadSignature)?;
        if now_unix >= exp {
            return Err(Refusal::Expired {
                ago_secs: now_unix - exp,
            });
        }
        Ok(())
    }
}

/// Why a token does not admit a publish; the text is what the publisher is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed(&'static str),
    BadSignature,
    Expired { ago_secs: u64 },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing => {
                f.write_str("no publish token (make one with `rtmp-recorder token`)")
            }
            Refusal::Malformed(why) => write!(f, "malformed token: {why}"),
            Refusal::BadSignature => f.write_str("bad signature"),
            Refusal::Expired { ago_secs } => write!(f, "token expired {ago_secs} s ago"),
        }
    }
}

/// `exp` and `sig` of a query, as sent.
struct Token<'a> {
    exp: &'a str,
    sig: &'a str,
}

impl<'a> Token<'a> {
    /// `None` when the query holds neither; an error when it holds one, or one twice.
    fn find(query: &'a str) -> Result<Option<Token<'a>>, Refusal> {
        let (mut exp, mut sig) = (None, None);
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                "exp" => &mut exp,
                "sig" => &mut sig,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(Refusal::Malformed("exp or sig given twice"));
            }
        }
        match (exp, sig) {
            (None, None) => Ok(None),
            (Some(exp), Some(sig)) => Ok(Some(Token { exp, sig })),
            _ => Err(Refusal::Malformed("exp and sig go together")),
        }
    }
}

/// Whether `query` carries a token at all (`exp` or `sig`).
pub fn has_token(query: &str) -> bool {
    !matches!(Token::find(query), Ok(None))
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    // from_str_radix alone would take a `+`: only hex digits make a signature.
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Splits a name as a client sent it into the name and its query (`cam?a=1` → `cam`, `a=1`).
pub fn split_query(name: &str) -> (&str, &str) {
    name.split_once('?').unwrap_or((name, ""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret() -> Secret {
        Secret::from_file_bytes(b"0123456789abcdef-test-secret\n").unwrap()
    }

    #[test]
    fn signs_like_nginx_secure_link() {
        // The same computation by an independent tool:
        // printf 'live/cam1:1800000000' | openssl dgst -sha256 -hmac 0123456789abcdef-test-secret
        let query = secret().sign("live", "cam1", 1_800_000_000);
        assert_eq!(
            query,
            "exp=1800000000&sig=ec04f6f20c05010b050d1a4f9c3c8c99d504143c09ece97c459de1dc7f84f301"
        );
    }

    #[test]
    fn verifies_good_and_refuses_altered_expired_and_foreign_tokens() {
        let s = secret();
        let q = s.sign("live", "cam1", 1000);
        assert_eq!(s.verify("live", "cam1", &q, 999), Ok(()));
        assert_eq!(s.verify("live", "cam1", &format!("x=1&{q}&y"), 0), Ok(()));
        assert_eq!(
            s.verify("live", "cam1", &q, 1000),
            Err(Refusal::Expired { ago_secs: 0 })
        );
        assert_eq!(s.verify("live", "cam2", &q, 0), Err(Refusal::BadSignature));
        assert_eq!(s.verify("other", "cam1", &q, 0), Err(Refusal::BadSignature));
        let later = q.replace("exp=1000", "exp=9000");
        assert_eq!(
            s.verify("live", "cam1", &later, 0),
            Err(Refusal::BadSignature)
        );
        let flipped = format!("{}0", &q[..q.len() - 1]);
        let flipped = if flipped == q {
            format!("{}1", &q[..q.len() - 1])
        } else {
            flipped
        };
        assert_eq!(
            s.verify("live", "cam1", &flipped, 0),
            Err(Refusal::BadSignature)
        );
        let other = Secret::from_file_bytes(b"another-secret-of-16+").unwrap();
        assert_eq!(
            other.verify("live", "cam1", &q, 0),
            Err(Refusal::BadSignature)
        );
        assert_eq!(s.verify("live", "cam1", "", 0), Err(Refusal::Missing));
        assert!(matches!(
            s.verify("live", "cam1", "exp=5", 0),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            s.verify("live", "cam1", &format!("{q}&exp=1"), 0),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            s.verify("live", "cam1", "exp=+5&sig=00", 0),
            Err(Refusal::Malformed(_))
        ));
        assert!(has_token("a=1&sig=2") && !has_token("a=1"));
    }

    #[test]
    fn short_secrets_are_refused_and_not_shown() {
        assert!(Secret::from_file_bytes(b"short\n").is_err());
        assert_eq!(format!("{:?}", secret()), "Secret(<28 bytes>)");
    }

    #[test]
    fn query_split() {
        assert_eq!(split_query("cam?exp=1&sig=2"), ("cam", "exp=1&sig=2"));
        assert_eq!(split_query("cam"), ("cam", ""));
        assert_eq!(split_query("live?token=SECRET"), ("live", "token=SECRET"));
    }
}
