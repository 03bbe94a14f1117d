//! Text escaped for the formats we write it into, pure: HTML (the recordings listing) and
//! Prometheus label values (`/metrics`). Both take names a publisher chose.

/// Escapes text for HTML element content and quoted attribute values.
pub fn html(text: &str) -> String {
    replacing(text, |c| match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        '\'' => Some("&#39;"),
        _ => None,
    })
}

/// Escapes a label value of the Prometheus text format (inside double quotes).
pub fn prometheus_label(text: &str) -> String {
    replacing(text, |c| match c {
        '\\' => Some("\\\\"),
        '"' => Some("\\\""),
        '\n' => Some("\\n"),
        _ => None,
    })
}

fn replacing(text: &str, replacement: impl Fn(char) -> Option<&'static str>) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match replacement(c) {
            Some(r) => out.push_str(r),
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_special_characters_are_escaped() {
        assert_eq!(
            html("<a href=\"x\">&'камера"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;камера"
        );
    }

    #[test]
    fn prometheus_label_values_are_escaped() {
        assert_eq!(prometheus_label("a\\b\"c\nd'"), "a\\\\b\\\"c\\nd'");
    }
}
