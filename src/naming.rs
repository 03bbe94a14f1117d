//! The state directory's naming rules, pure: chunk names (`{UTC start}_{app}_{stream}_{seq}`)
//! and the names of partial files in `tmp/`. `spool` does the I/O with these names; pure
//! modules (publish's object keys, remux's manifest) use them without touching the disk.

use crate::utc::Civil;

/// The parts of a chunk's file name: `{UTC start}_{app}_{stream}_{seq}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkName {
    pub start: Civil,
    pub app: String,
    pub stream: String,
    pub seq: u32,
}

impl ChunkName {
    pub fn new(start: Civil, app: &str, stream: &str, seq: u32) -> ChunkName {
        ChunkName {
            start,
            app: sanitize(app, false),
            stream: sanitize(stream, true),
            seq,
        }
    }

    /// The name without extension, shared by the FLV, its MP4 and its manifest.
    pub fn stem(&self) -> String {
        format!(
            "{}_{}_{}_{:06}",
            self.start.compact(),
            self.app,
            self.stream,
            self.seq
        )
    }

    /// Parses a stem (or a file name, whose extension is ignored).
    pub fn parse(name: &str) -> Option<ChunkName> {
        let stem = match name.rsplit_once('.') {
            Some((stem, "flv" | "mp4" | "json")) => stem,
            _ => name,
        };
        let start = Civil::parse_compact(stem.get(..20)?)?;
        let rest = stem.get(20..)?.strip_prefix('_')?;
        let (app, rest) = rest.split_once('_')?;
        let (stream, seq) = rest.rsplit_once('_')?;
        if app.is_empty() || stream.is_empty() || seq.len() < 6 {
            return None;
        }
        if !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(ChunkName {
            start,
            app: app.to_string(),
            stream: stream.to_string(),
            seq: seq.parse().ok()?,
        })
    }
}

/// The stream label and chunk stem of an inbox file, for the `STREAM=` and `CHUNK=` fields every
/// log line about a chunk carries, so `journalctl STREAM=cam1` follows one stream through all
/// stages. A file not named like a chunk gives its stem and an empty stream.
pub fn log_labels(path: &std::path::Path) -> (String, String) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stream = ChunkName::parse(&name)
        .map(|c| c.stream)
        .unwrap_or_default();
    let stem = match name.rsplit_once('.') {
        Some((stem, _)) => stem.to_string(),
        None => name,
    };
    (stream, stem)
}

/// Keeps names portable and parseable: `app` never holds `_` (the separator), neither holds `/`.
fn sanitize(s: &str, allow_underscore: bool) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || (allow_underscore && c == '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // "." and ".." are not names; an empty app or stream would break parsing.
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        "-".to_string()
    } else {
        cleaned
    }
}

/// The temporary name `spool::write_atomically` writes `file_name` under, in `tmp/`, before
/// renaming it into place. The writer's PID tells a cleanup whether the writer is still alive.
pub fn partial_name(file_name: &str, pid: u32) -> String {
    format!("{file_name}.{pid}.partial")
}

/// The file name and writer PID of a name made by [`partial_name`]; `None` for other names.
pub fn parse_partial(name: &str) -> Option<(&str, u32)> {
    let (file_name, pid) = name.strip_suffix(".partial")?.rsplit_once('.')?;
    if file_name.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((file_name, pid.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn civil() -> Civil {
        Civil::from_unix_millis(1_795_000_000_123)
    }

    #[test]
    fn chunk_name_round_trips() {
        let n = ChunkName::new(civil(), "live", "cam_1", 7);
        let stem = n.stem();
        assert!(stem.ends_with("_live_cam_1_000007"), "{stem}");
        assert_eq!(ChunkName::parse(&stem), Some(n.clone()));
        assert_eq!(ChunkName::parse(&format!("{stem}.flv")), Some(n.clone()));
        assert_eq!(ChunkName::parse(&format!("{stem}.mp4")), Some(n));
    }

    #[test]
    fn chunk_name_sanitizes_separators_and_paths() {
        let n = ChunkName::new(civil(), "my_app", "../../etc/passwd?x=1", 1);
        assert_eq!(n.app, "my-app");
        assert!(!n.stream.contains('/'));
        assert_eq!(ChunkName::parse(&n.stem()), Some(n.clone()));
        let dots = ChunkName::new(civil(), "..", "..", 1);
        assert_eq!(dots.app, "-");
        assert_eq!(dots.stream, "-");
    }

    #[test]
    fn chunk_names_sort_by_time() {
        let a = ChunkName::new(Civil::from_unix_millis(1_000), "z", "z", 9).stem();
        let b = ChunkName::new(Civil::from_unix_millis(2_000), "a", "a", 1).stem();
        assert!(a < b);
    }

    #[test]
    fn rejects_foreign_names() {
        assert_eq!(ChunkName::parse("video.flv"), None);
        assert_eq!(ChunkName::parse("20261126T032759.123Z_live.flv"), None);
        assert_eq!(
            ChunkName::parse("20261126T032759.123Z_live_cam_x1.flv"),
            None
        );
    }

    #[test]
    fn partial_names_round_trip() {
        let name = partial_name("20261126T032759.123Z_live_cam1_000001.json", 4242);
        assert_eq!(
            parse_partial(&name),
            Some(("20261126T032759.123Z_live_cam1_000001.json", 4242))
        );
        assert_eq!(parse_partial("a.json"), None);
        assert_eq!(parse_partial("a.json.partial"), None);
        assert_eq!(parse_partial("a.x1.partial"), None);
        assert_eq!(parse_partial(".1.partial"), None);
    }

    #[test]
    fn log_labels_of_chunks_and_other_names() {
        let name = ChunkName::new(civil(), "live", "cam_1", 7);
        let path = std::path::PathBuf::from(format!("/s/publish/{}.mp4", name.stem()));
        assert_eq!(log_labels(&path), ("cam_1".to_string(), name.stem()));
        assert_eq!(
            log_labels(std::path::Path::new("/s/remux/notes.txt")),
            (String::new(), "notes".to_string())
        );
    }
}
