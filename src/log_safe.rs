//! Text from a peer (app and stream names) as a log line may show it, pure. A name is chosen by
//! whoever connects: unescaped, a newline in it would start a forged log line on stderr, and a
//! megabyte of it would be a megabyte per refused publish. So control characters (and `\`, so
//! an escape in the name cannot pass for one of ours) are escaped and the text is cut short.

/// Characters of a name shown before it is cut.
pub const SHOWN_CHARS: usize = 64;

/// `text` with control characters and `\` escaped (`\n`, `\u{1b}`), at most [`SHOWN_CHARS`]
/// characters of it, then `...(N bytes)` with the whole length when it was longer.
pub fn shown(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(SHOWN_CHARS * 2) + 16);
    for (n, c) in text.chars().enumerate() {
        if n == SHOWN_CHARS {
            out.push_str(&format!("...({} bytes)", text.len()));
            break;
        }
        if c.is_control() || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_cannot_start_a_line() {
        let forged = "cam\n[2026-12-02T10:00:00Z INFO] publish started\r\u{1b}[2J\0";
        let s = shown(forged);
        assert!(!s.chars().any(char::is_control), "{s:?}");
        assert_eq!(
            s,
            "cam\\n[2026-12-02T10:00:00Z INFO] publish started\\r\\u{1b}[2J\\u{0}"
        );
        assert_eq!(shown("a\\nb"), "a\\\\nb");
        assert_eq!(shown("камера1"), "камера1");
    }

    #[test]
    fn long_names_are_cut_with_their_length() {
        let long = "x".repeat(1_000_000);
        let s = shown(&long);
        assert_eq!(s, format!("{}...(1000000 bytes)", "x".repeat(SHOWN_CHARS)));
        let exact = "y".repeat(SHOWN_CHARS);
        assert_eq!(shown(&exact), exact);
        assert_eq!(shown(""), "");
    }
}
