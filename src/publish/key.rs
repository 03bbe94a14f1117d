//! Object keys: a template such as `{prefix}/{app}/{stream}/{YYYY}/{MM}/{DD}/{file}` filled from a
//! chunk's name (`{node}` too: the ingest node that recorded it). Pure: text in, text out.

use crate::naming::ChunkName;

/// The layout the seed's bucket readers expect by default.
pub const DEFAULT_TEMPLATE: &str = "{prefix}/{app}/{stream}/{YYYY}/{MM}/{DD}/{file}";

const PLACEHOLDERS: [&str; 10] = [
    "prefix", "app", "stream", "node", "YYYY", "MM", "DD", "HH", "file", "stem",
];

/// A checked key template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyTemplate {
    text: String,
}

impl KeyTemplate {
    /// Checks that every `{...}` is a known placeholder and that `{file}` or `{stem}` appears
    /// (otherwise every chunk of a day would land on one key).
    pub fn parse(text: &str) -> Result<KeyTemplate, String> {
        let mut rest = text;
        let mut names_file = false;
        while let Some(open) = rest.find('{') {
            let after = &rest[open + 1..];
            let close = after
                .find('}')
                .ok_or_else(|| format!("key template {text:?}: unclosed '{{'"))?;
            let name = &after[..close];
            if !PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "key template {text:?}: unknown placeholder {{{name}}} (known: {})",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
                ));
            }
            names_file |= name == "file" || name == "stem";
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(format!("key template {text:?}: stray '}}'"));
        }
        if !names_file {
            return Err(format!(
                "key template {text:?} must contain {{file}} or {{stem}}, or chunks would overwrite each other"
            ));
        }
        Ok(KeyTemplate {
            text: text.to_string(),
        })
    }

    /// The part of every key of `app`/`stream` that comes before anything that varies per chunk
    /// (date, file): where to list a stream's objects. Ends with `/`, or is empty.
    pub fn stream_prefix(&self, prefix: &str, app: &str, stream: &str) -> String {
        let fixed = self
            .text
            .replace("{prefix}", prefix.trim_matches('/'))
            .replace("{app}", app)
            .replace("{stream}", stream);
        let upto = fixed.find('{').unwrap_or(fixed.len());
        let dirs = fixed[..upto].rfind('/').map_or("", |i| &fixed[..i]);
        let joined = dirs
            .split('/')
            .filter(|seg| !seg.is_empty())
            .collect::<Vec<_>>()
            .join("/");
        if joined.is_empty() {
            joined
        } else {
            joined + "/"
        }
    }

    /// The key for `file` (the MP4's or the manifest's file name) of chunk `name`. Empty path
    /// segments (an empty prefix) are dropped, so keys never start with or contain `//`.
    pub fn render(&self, prefix: &str, name: &ChunkName, file: &str) -> String {
        let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
        let s = &name.start;
        let filled = self
            .text
            .replace("{prefix}", prefix.trim_matches('/'))
            .replace("{app}", &name.app)
            .replace("{stream}", &name.stream)
            .replace("{node}", name.node.as_deref().unwrap_or_default())
            .replace("{YYYY}", &format!("{:04}", s.year))
            .replace("{MM}", &format!("{:02}", s.month))
            .replace("{DD}", &format!("{:02}", s.day))
            .replace("{HH}", &format!("{:02}", s.hour))
            .replace("{stem}", stem)
            .replace("{file}", file);
        filled
            .split('/')
            .filter(|seg| !seg.is_empty())
            .collect::<Vec<_>>()
            .join("/")
    }
}

/// The key of a file copied into `publish/` (or `remux/`) by hand under a name that is not a
/// chunk name: `{prefix}/{file}`. It cannot take a recorded chunk's key: a chunk's key ends in
/// its chunk name (every template holds `{file}` or `{stem}`) and, with the default template,
/// has more segments below the prefix; a hand-copied file's name is never a chunk name.
pub fn hand_copied(prefix: &str, file: &str) -> String {
    prefix
        .split('/')
        .chain(std::iter::once(file))
        .filter(|seg| !seg.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::utc::Civil;

    #[test]
    fn hand_copied_files_go_under_the_prefix() {
        assert_eq!(
            hand_copied("rec/node-a/", "talk.mp4"),
            "rec/node-a/talk.mp4"
        );
        assert_eq!(hand_copied("", "talk.json"), "talk.json");
    }

    #[test]
    fn a_streams_objects_are_listed_under_the_fixed_part_of_its_keys() {
        let t = KeyTemplate::parse(DEFAULT_TEMPLATE).unwrap();
        assert_eq!(t.stream_prefix("rec/", "live", "cam1"), "rec/live/cam1/");
        assert_eq!(t.stream_prefix("", "live", "cam1"), "live/cam1/");
        let t = KeyTemplate::parse("{YYYY}/{app}-{stream}/{file}").unwrap();
        assert_eq!(t.stream_prefix("p", "live", "cam1"), "");
        let t = KeyTemplate::parse("{prefix}/{app}/{stream}-{file}").unwrap();
        assert_eq!(t.stream_prefix("p", "live", "cam1"), "p/live/");
    }

    fn chunk() -> ChunkName {
        ChunkName::parse("20261126T032759.123Z_live_cam1_000007.mp4").unwrap()
    }

    #[test]
    fn default_layout() {
        let t = KeyTemplate::parse(DEFAULT_TEMPLATE).unwrap();
        let file = format!("{}.mp4", chunk().stem());
        assert_eq!(
            t.render("recordings/", &chunk(), &file),
            format!("recordings/live/cam1/2026/11/26/{file}")
        );
        assert_eq!(
            t.render("", &chunk(), &file),
            format!("live/cam1/2026/11/26/{file}")
        );
        assert_eq!(
            t.render("a/b", &chunk(), "x.json"),
            "a/b/live/cam1/2026/11/26/x.json"
        );
    }

    #[test]
    fn hour_and_stem() {
        let t = KeyTemplate::parse("{stream}/{YYYY}{MM}{DD}/{HH}/{stem}.bin").unwrap();
        let n = ChunkName::new(Civil::from_unix_millis(0), "a", "s", 1);
        assert_eq!(t.render("p", &n, "abc.mp4"), "s/19700101/00/abc.bin");
    }

    #[test]
    fn node_places_each_nodes_objects_apart() {
        let t = KeyTemplate::parse("{prefix}/{node}/{app}/{stream}/{file}").unwrap();
        let n = ChunkName::parse("20261126T032759.123Z_live_cam1_000007-i-0abc").unwrap();
        assert_eq!(t.render("p", &n, "x.mp4"), "p/i-0abc/live/cam1/x.mp4");
        assert_eq!(t.stream_prefix("p", "live", "cam1"), "p/");
    }

    #[test]
    fn rejects_bad_templates() {
        assert!(KeyTemplate::parse("{prefix}/{nope}/{file}").is_err());
        assert!(KeyTemplate::parse("{prefix}/{app}").is_err());
        assert!(KeyTemplate::parse("{prefix/{file}").is_err());
        assert!(KeyTemplate::parse("{file}}").is_err());
    }
}
