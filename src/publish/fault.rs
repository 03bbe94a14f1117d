//! How an upload failed decides what happens next: wait and retry, stop and call an operator,
//! or set this one file aside.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Worth retrying: 5xx, SlowDown, timeouts, cut connections, the store being down.
    Transient(String),
    /// Needs an operator (credentials, bucket, permissions); every file would fail the same way.
    Permanent(String),
    /// Only this file cannot be published (e.g. a different object already holds its key).
    Conflict(String),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Transient(m) | Fault::Permanent(m) | Fault::Conflict(m) => f.write_str(m),
        }
    }
}

/// S3 error codes that no retry will fix.
pub fn is_permanent_code(code: &str) -> bool {
    matches!(
        code,
        "NoSuchBucket"
            | "AccessDenied"
            | "InvalidAccessKeyId"
            | "SignatureDoesNotMatch"
            | "InvalidBucketName"
            | "AllAccessDisabled"
            | "AccountProblem"
            | "NotSignedUp"
            | "InvalidToken"
            | "AuthorizationHeaderMalformed"
            | "InvalidRequest"
            | "MethodNotAllowed"
            | "NotImplemented"
            | "PermanentRedirect"
    )
}

/// Classifies a service error by its code and HTTP status.
pub fn classify(code: Option<&str>, status: u16, message: String) -> Fault {
    match code {
        Some(c) if is_permanent_code(c) => Fault::Permanent(message),
        Some("SlowDown" | "RequestTimeout" | "InternalError" | "ServiceUnavailable") => {
            Fault::Transient(message)
        }
        Some("BadDigest" | "XAmzContentSHA256Mismatch" | "IncompleteBody" | "ExpiredToken") => {
            Fault::Transient(message)
        }
        _ if status >= 500 || status == 429 || status == 408 => Fault::Transient(message),
        // A HEAD has no body, so its 403 carries no code.
        _ if status == 401 || status == 403 => Fault::Permanent(message),
        _ if (400..500).contains(&status) => Fault::Permanent(message),
        _ => Fault::Transient(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses() {
        let p = |c: Option<&str>, s| matches!(classify(c, s, String::new()), Fault::Permanent(_));
        assert!(p(Some("NoSuchBucket"), 404));
        assert!(p(Some("SignatureDoesNotMatch"), 403));
        assert!(p(None, 403));
        assert!(!p(Some("SlowDown"), 503));
        assert!(!p(None, 500));
        assert!(!p(Some("RequestTimeout"), 400));
        assert!(!p(Some("BadDigest"), 400));
    }
}
