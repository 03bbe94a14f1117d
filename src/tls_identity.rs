//! The identity RTMPS serves: a rustls server configuration made from the PEM bytes of a
//! certificate chain and its private key (what certbot writes as `fullchain.pem` and
//! `privkey.pem`). The caller reads the files; this only judges their bytes, so every way a pair
//! can be wrong is an error that says which of the two files is at fault and why.
//!
//! The crypto provider is aws-lc-rs: the rustls that aws-sdk-s3 builds already uses it, so RTMPS
//! adds no second TLS or crypto library to the binary.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

/// A usable certificate and key, ready to serve.
#[derive(Debug, Clone)]
pub struct Identity {
    pub config: Arc<ServerConfig>,
    /// SHA-256 of the end-entity certificate, as `openssl x509 -noout -fingerprint -sha256`
    /// prints it (`AB:CD:...`), so an operator can tell which certificate is being served.
    pub fingerprint: String,
    /// Certificates in the chain, the end-entity one included.
    pub chain_len: usize,
    /// When the end-entity certificate expires (its `notAfter`, Unix seconds); `None` when its
    /// validity could not be read (rustls serves it anyway: clients judge dates).
    pub not_after: Option<i64>,
}

/// Which of the two files is at fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Culprit {
    Certificate,
    Key,
    /// Each file is fine on its own, but they do not belong together.
    Pair,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct IdentityError {
    pub culprit: Culprit,
    pub reason: String,
}

impl IdentityError {
    fn new(culprit: Culprit, reason: impl Into<String>) -> IdentityError {
        IdentityError {
            culprit,
            reason: reason.into(),
        }
    }
}

/// Builds the server configuration from a PEM certificate chain (end-entity certificate first,
/// as in `fullchain.pem`) and a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Identity, IdentityError> {
    let chain = certificates(cert_pem)?;
    let key = private_key(key_pem)?;
    let fingerprint = fingerprint(&chain[0]);
    let not_after = not_after(&chain[0]);
    let chain_len = chain.len();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| IdentityError::new(Culprit::Pair, format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(judge)?;
    Ok(Identity {
        config: Arc::new(config),
        fingerprint,
        chain_len,
        not_after,
    })
}

fn certificates(cert_pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let mut chain = Vec::new();
    for (i, cert) in CertificateDer::pem_slice_iter(cert_pem).enumerate() {
        let cert = cert.map_err(|e| {
            IdentityError::new(
                Culprit::Certificate,
                format!(
                    "certificate {} of the chain is not valid PEM: {}",
                    i + 1,
                    pem_reason(&e)
                ),
            )
        })?;
        chain.push(cert);
    }
    if chain.is_empty() {
        let hint = if looks_like_key(cert_pem) {
            " (it holds a private key: are the certificate and key files swapped?)"
        } else {
            ""
        };
        return Err(IdentityError::new(
            Culprit::Certificate,
            format!("no `-----BEGIN CERTIFICATE-----` block in it{hint}"),
        ));
    }
    Ok(chain)
}

fn private_key(key_pem: &[u8]) -> Result<PrivateKeyDer<'static>, IdentityError> {
    PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| {
        let reason = match e {
            pem::Error::NoItemsFound => {
                let hint = if CertificateDer::pem_slice_iter(key_pem).next().is_some() {
                    " (it holds a certificate: are the certificate and key files swapped?)"
                } else {
                    ""
                };
                format!(
                    "no private key in it: expected a `-----BEGIN PRIVATE KEY-----`, \
                     `RSA PRIVATE KEY` or `EC PRIVATE KEY` block{hint}"
                )
            }
            other => format!("the private key is not valid PEM: {}", pem_reason(&other)),
        };
        IdentityError::new(Culprit::Key, reason)
    })
}

fn looks_like_key(pem: &[u8]) -> bool {
    PrivateKeyDer::from_pem_slice(pem).is_ok()
}

/// pem::Error's text, without echoing file contents at length.
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a block has no `-----END ...-----` line".into(),
        pem::Error::IllegalSectionStart { .. } => "a `-----BEGIN` line is malformed".into(),
        pem::Error::Base64Decode(_) => "a block's body is not base64".into(),
        other => other.to_string(),
    }
}

/// Sorts rustls's complaint about a pair to the file it concerns.
fn judge(e: rustls::Error) -> IdentityError {
    use rustls::{Error, InconsistentKeys};
    match e {
        Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => IdentityError::new(
            Culprit::Pair,
            "the private key does not belong to the certificate (the first one in the chain)",
        ),
        Error::InvalidCertificate(reason) => IdentityError::new(
            Culprit::Certificate,
            format!("the first certificate of the chain cannot be used: {reason:?}"),
        ),
        Error::NoCertificatesPresented => {
            IdentityError::new(Culprit::Certificate, "the chain is empty")
        }
        other => IdentityError::new(
            Culprit::Key,
            format!("the private key cannot be used: {other}"),
        ),
    }
}

/// `AB:CD:...`, upper-case hex of the SHA-256 of the DER certificate.
pub fn fingerprint(cert: &[u8]) -> String {
    Sha256::digest(cert)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The `notAfter` of a DER certificate, in Unix seconds: Certificate ::= SEQUENCE {
/// tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer, validity
/// SEQUENCE { notBefore, notAfter }, ... }, ... } (RFC 5280 4.1). Only the path to that field is
/// walked; anything unexpected on it is `None`.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = der_item(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der_item(cert)? else {
        return None;
    };
    let (tag, _, after_version) = der_item(tbs)?;
    let serial = if tag == 0xa0 { after_version } else { tbs };
    let (_, _, rest) = der_item(serial)?;
    let (_, _, rest) = der_item(rest)?; // signature algorithm
    let (_, _, rest) = der_item(rest)?; // issuer
    let (0x30, validity, _) = der_item(rest)? else {
        return None;
    };
    let (_, _, rest) = der_item(validity)?; // notBefore
    let (tag, time, _) = der_item(rest)?;
    der_time(tag, time)
}

/// One DER item at the start of `der`: its tag, its contents and what follows it.
fn der_item(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// UTCTime (`YYMMDDHHMMSSZ`, years 1950-2049 as RFC 5280 4.1.2.5.1 says) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`), in Unix seconds.
fn der_time(tag: u8, text: &[u8]) -> Option<i64> {
    let digits = |from: usize, len: usize| -> Option<u32> {
        let part = text.get(from..from + len)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    let (year, at) = match tag {
        0x17 => {
            let yy = i64::from(digits(0, 2)?);
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        0x18 => (i64::from(digits(0, 4)?), 4),
        _ => return None,
    };
    if text.len() != at + 11 || text[at + 10] != b'Z' {
        return None;
    }
    let civil = crate::utc::Civil {
        year,
        month: digits(at, 2)?,
        day: digits(at + 2, 2)?,
        hour: digits(at + 4, 2)?,
        minute: digits(at + 6, 2)?,
        second: digits(at + 8, 2)?,
        millis: 0,
    };
    let valid = (1..=12).contains(&civil.month)
        && (1..=31).contains(&civil.day)
        && civil.hour < 24
        && civil.minute < 60
        && civil.second < 61;
    valid.then(|| civil.to_unix_millis() / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test-only keys: a self-signed P-256 pair made once with `openssl req -x509 -newkey ec
    // -pkeyopt ec_paramgen_curve:P-256 -nodes -days 36500 -subj /CN=unit`, and a second key
    // (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
    const CERT: &str = include_str!("../tests/fixtures/tls/unit-cert.pem");
    const KEY: &str = include_str!("../tests/fixtures/tls/unit-key.pem");
    const OTHER_KEY: &str = include_str!("../tests/fixtures/tls/unit-other-key.pem");
    /// `openssl x509 -in unit-cert.pem -noout -fingerprint -sha256`
    const FINGERPRINT: &str = include_str!("../tests/fixtures/tls/unit-cert.sha256");
    /// `openssl x509 -in unit-cert.pem -noout -enddate -dateopt iso_8601`
    const ENDDATE: &str = include_str!("../tests/fixtures/tls/unit-cert.enddate");

    #[test]
    fn a_matching_pair_is_served_with_its_fingerprint() {
        let id = from_pem(CERT.as_bytes(), KEY.as_bytes()).unwrap();
        assert_eq!(id.chain_len, 1);
        let want = FINGERPRINT.trim().rsplit('=').next().unwrap();
        assert_eq!(id.fingerprint, want);
    }

    #[test]
    fn the_expiry_is_the_one_openssl_reads() {
        let id = from_pem(CERT.as_bytes(), KEY.as_bytes()).unwrap();
        // `notAfter=2126-11-08 17:20:19Z`
        let (_, when) = ENDDATE.trim().split_once('=').unwrap();
        let want = crate::utc::Civil::parse_rfc3339_millis(when).unwrap() / 1000;
        assert_eq!(id.not_after, Some(want), "{when}");
    }

    #[test]
    fn der_times_in_both_forms_and_nothing_else() {
        let cases: [(u8, &str, Option<i64>); 8] = [
            (0x17, "491231235959Z", Some(2_524_607_999)),
            (0x17, "500101000000Z", Some(-631_152_000)),
            (0x18, "20500101000000Z", Some(2_524_608_000)),
            (0x18, "19700101000000Z", Some(0)),
            (0x17, "4912312359Z", None),
            (0x17, "491231235959+0100", None),
            (0x18, "2050130100000Z", None),
            (0x04, "20500101000000Z", None),
        ];
        for (tag, text, want) in cases {
            assert_eq!(der_time(tag, text.as_bytes()), want, "{tag:#x} {text}");
        }
        assert_eq!(not_after(b""), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_as_a_pair() {
        let e = from_pem(CERT.as_bytes(), OTHER_KEY.as_bytes()).unwrap_err();
        assert_eq!(e.culprit, Culprit::Pair, "{e}");
        assert!(e.reason.contains("does not belong"), "{e}");
    }

    #[test]
    fn garbage_names_the_file_at_fault() {
        let e = from_pem(b"garbage", KEY.as_bytes()).unwrap_err();
        assert_eq!(e.culprit, Culprit::Certificate, "{e}");
        let e = from_pem(CERT.as_bytes(), b"garbage").unwrap_err();
        assert_eq!(e.culprit, Culprit::Key, "{e}");
        let e = from_pem(b"", b"").unwrap_err();
        assert_eq!(e.culprit, Culprit::Certificate, "{e}");
    }

    #[test]
    fn a_broken_block_is_refused() {
        let broken = "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n";
        let e = from_pem(broken.as_bytes(), KEY.as_bytes()).unwrap_err();
        assert_eq!(e.culprit, Culprit::Certificate, "{e}");
        let cut = &CERT[..CERT.len() / 2];
        let e = from_pem(cut.as_bytes(), KEY.as_bytes()).unwrap_err();
        assert_eq!(e.culprit, Culprit::Certificate, "{e}");
        let bad_der = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let e = from_pem(bad_der.as_bytes(), KEY.as_bytes()).unwrap_err();
        assert_eq!(e.culprit, Culprit::Certificate, "{e}");
    }

    #[test]
    fn swapped_files_are_named_as_such() {
        let e = from_pem(KEY.as_bytes(), CERT.as_bytes()).unwrap_err();
        assert_eq!(e.culprit, Culprit::Certificate);
        assert!(e.reason.contains("swapped"), "{e}");
    }
}
