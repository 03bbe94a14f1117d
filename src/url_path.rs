//! The path part of a URL under `/recordings/`, read strictly, and a URL's query. Pure: text
//! in, the names of the folders and file it names (or the query's pairs) out, or why not.
//!
//! A request path is split on `/` first and each segment percent-decoded after, so `%2f` can
//! never add a level. A segment is refused when, decoded, it is empty in the middle, `.` or `..`,
//! starts with `.` (hidden files, our partials), or holds `/`, `\`, NUL or any control character,
//! or is not UTF-8. What is left can only name an entry inside the folder it is joined to.

/// Why a request path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A `%` not followed by two hex digits.
    BadEscape,
    NotUtf8,
    /// A segment that could leave its folder or name something we never serve.
    BadSegment(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::BadEscape => f.write_str("a % escape that is not two hex digits"),
            Refusal::NotUtf8 => f.write_str("a path that is not UTF-8"),
            Refusal::BadSegment(s) => write!(f, "path segment {s:?} is not served"),
        }
    }
}

/// A request for a listing (the path ends in `/`) or for one file, as decoded segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub segments: Vec<String>,
    /// The path ended in `/` (or was empty): a folder listing is asked for.
    pub folder: bool,
}

/// Reads `raw`, the still-encoded path after `/recordings/`.
pub fn parse(raw: &str) -> Result<Request, Refusal> {
    let folder = raw.is_empty() || raw.ends_with('/');
    let trimmed = raw.strip_suffix('/').unwrap_or(raw);
    let mut segments = Vec::new();
    if !trimmed.is_empty() {
        for part in trimmed.split('/') {
            let decoded = String::from_utf8(percent_decode(part)?).map_err(|_| Refusal::NotUtf8)?;
            if !is_plain_name(&decoded) {
                return Err(Refusal::BadSegment(decoded));
            }
            segments.push(decoded);
        }
    }
    Ok(Request { segments, folder })
}

/// True for a name that stays inside its folder and is not hidden.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
}

/// The bytes `text` stands for, each `%XX` decoded; a `%` not followed by two hex digits is
/// refused.
pub fn percent_decode(text: &str) -> Result<Vec<u8>, Refusal> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(Refusal::BadEscape)?;
            let hi = (hex[0] as char).to_digit(16).ok_or(Refusal::BadEscape)?;
            let lo = (hex[1] as char).to_digit(16).ok_or(Refusal::BadEscape)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The `name=value` pairs of a query string (`+` is a space, as forms send it), decoded; a
/// pair without `=` has an empty value.
pub fn query_pairs(query: &str) -> Result<Vec<(String, String)>, Refusal> {
    let mut out = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            String::from_utf8(percent_decode(&s.replace('+', " "))?).map_err(|_| Refusal::NotUtf8)
        };
        out.push((decode(name)?, decode(value)?));
    }
    Ok(out)
}

/// Percent-encodes a name for use as one path segment of a link.
pub fn encode_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_pairs_decode_names_and_values() {
        let pairs =
            query_pairs("stream=live%2Fcam1&from=2026-11-26T14%3A03%3A10Z&to=a+b&flag").unwrap();
        let expect = [
            ("stream", "live/cam1"),
            ("from", "2026-11-26T14:03:10Z"),
            ("to", "a b"),
            ("flag", ""),
        ];
        assert_eq!(
            pairs,
            expect
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        );
        assert_eq!(query_pairs("a=%zz"), Err(Refusal::BadEscape));
        assert_eq!(query_pairs("a=%ff"), Err(Refusal::NotUtf8));
        assert!(query_pairs("").unwrap().is_empty());
    }

    #[test]
    fn plain_paths_are_read() {
        assert_eq!(
            parse("").unwrap(),
            Request {
                segments: vec![],
                folder: true
            }
        );
        let r = parse("archive/a%20b.mp4").unwrap();
        assert_eq!(r.segments, ["archive", "a b.mp4"]);
        assert!(!r.folder);
        assert!(parse("published/live/").unwrap().folder);
    }

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "..",
            "archive/../../etc/passwd",
            "archive/%2e%2e/x",
            "archive/%2E%2e%2Fetc",
            "archive/..%2f..%2fetc",
            "archive/%2fetc",
            "archive/..%5c..%5cetc",
            "archive/a\\b",
            "archive/%00x.mp4",
            "archive//x.mp4",
            "archive/./x.mp4",
            "archive/.hidden.mp4",
            "archive/%zz",
            "archive/%2",
            "archive/%ff",
        ] {
            assert!(parse(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn link_segments_are_percent_encoded() {
        assert_eq!(encode_segment("a b/<c>.mp4"), "a%20b%2F%3Cc%3E.mp4");
    }
}
