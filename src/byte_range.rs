//! The `Range` header of a request for one resource of known size (RFC 9110, section 14), read
//! strictly. Pure: the header's text and the size in, which bytes to send out.
//!
//! One `bytes=` range in any of its three forms (`a-b`, `a-`, `-n`) is honoured. A header that
//! does not parse, another unit, or several ranges at once are answered with the whole resource,
//! as the RFC allows: players ask for one range at a time, and multipart answers would only add
//! a way to make the server read the same bytes many times over.

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// 200 with every byte.
    Whole,
    /// 206 with bytes `start..end` (end exclusive, never past the size).
    Part { start: u64, end: u64 },
    /// 416: the range starts at or beyond the end.
    Unsatisfiable,
}

pub fn parse(header: Option<&str>, size: u64) -> Ranged {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.is_empty(), last.is_empty()) {
        // `-n`: the last n bytes.
        (true, false) => match number(last) {
            Some(0) => Ranged::Unsatisfiable,
            Some(_) if size == 0 => Ranged::Unsatisfiable,
            Some(n) => Ranged::Part {
                start: size.saturating_sub(n),
                end: size,
            },
            None => Ranged::Whole,
        },
        (false, _) => {
            let Some(start) = number(first) else {
                return Ranged::Whole;
            };
            let end = if last.is_empty() {
                size
            } else {
                match number(last) {
                    Some(l) if l >= start => l.saturating_add(1).min(size),
                    _ => return Ranged::Whole,
                }
            };
            if start >= size {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part { start, end }
            }
        }
        (true, true) => Ranged::Whole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_forms() {
        let part = |start, end| Ranged::Part { start, end };
        assert_eq!(parse(Some("bytes=0-99"), 1000), part(0, 100));
        assert_eq!(parse(Some("bytes=900-"), 1000), part(900, 1000));
        assert_eq!(parse(Some("bytes=-100"), 1000), part(900, 1000));
        // Past the end is cut to the end; a suffix longer than the file is all of it.
        assert_eq!(parse(Some("bytes=990-5000"), 1000), part(990, 1000));
        assert_eq!(parse(Some("bytes=-5000"), 1000), part(0, 1000));
        assert_eq!(parse(Some("bytes=0-"), 1000), part(0, 1000));
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse(Some("bytes=1000-"), 1000), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=1000-1200"), 1000), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 1000), Ranged::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-0"), 0), Ranged::Unsatisfiable);
        for ignored in [
            None,
            Some("items=0-1"),
            Some("bytes=5-2"),
            Some("bytes=0-1,5-6"),
            Some("bytes=x-"),
            Some("bytes=-"),
            Some("bytes=+1-2"),
            Some("bytes=99999999999999999999999-"),
        ] {
            assert_eq!(parse(ignored, 1000), Ranged::Whole, "{ignored:?}");
        }
    }
}
