//! The state directory's naming rules, pure: chunk names
//! (`{UTC start}_{app}_{stream}_{seq}-{node}`), the reversible mapping from a stream's (app,
//! stream) and the node's id to the parts of those names, and the names of partial files in
//! `tmp/`. `spool` does the I/O with these names; pure modules
//! (publish's object keys, remux's manifest) use them without touching the disk.
//!
//! The mapping ([`encode`]) keeps what is safe and readable and percent-encodes the rest, so
//! two different streams never share a name and [`decode`] gives the original back:
//! - kept: ASCII letters and digits, `-`, `.` (not first), and Unicode letters and digits
//!   (`камера1` stays `камера1`); `_` in the stream, but not in the app (it separates app and
//!   stream in a chunk name);
//! - `%XX` for every UTF-8 byte of anything else: `%` itself, `/`, `\`, space, `?`, `#`,
//!   control characters (NUL too), punctuation, combining marks, a leading `.`.
//!
//! `cam/1` → `cam%2F1`, `cam 1` → `cam%201`, `cam-1` → `cam-1`, `cam_1` → `cam_1` (app `a_b` →
//! `a%5Fb`), `..` → `%2E.`. Names written before this rule (every unsafe character replaced by
//! `-`) hold no `%`, so they parse and decode as they are.

use crate::utc::Civil;

/// Which part of a chunk name a text becomes: the app may not hold `_`, the stream may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    App,
    Stream,
}

/// The name part of `raw` (see the module comment). Empty stays empty: [`StreamNames::new`]
/// refuses it.
pub fn encode(raw: &str, part: Part) -> String {
    let mut out = String::with_capacity(raw.len());
    for (i, c) in raw.char_indices() {
        let keep = c.is_ascii_alphanumeric()
            || c == '-'
            || (c == '.' && i > 0)
            || (c == '_' && part == Part::Stream)
            || (!c.is_ascii() && c.is_alphanumeric());
        if keep {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out
}

/// The text a name part was made from; `None` for a `%` not followed by two hex digits or
/// escapes that are not UTF-8 (no name we write).
pub fn decode(part: &str) -> Option<String> {
    String::from_utf8(crate::url_path::percent_decode(part).ok()?).ok()
}

/// At most this many bytes of mapped app: it is in every file name and log line of its streams.
pub const MAX_APP_BYTES: usize = 64;

/// At most this many bytes of mapped node id: it is in every chunk name, so it takes its share
/// of the 255 bytes of a file name from the stream's. An EC2 instance id is 19 bytes.
pub const MAX_NODE_BYTES: usize = 32;

/// What a chunk's file name holds besides app and stream, at its longest: the UTC start (20),
/// two `_` separators and one more before the sequence, a sequence of up to 10 digits (u32),
/// `-` and the node id, and the longest suffix a stage adds: `.json` and then `.PID.partial`
/// (PID up to 10 digits) of `spool::write_atomically`'s temporary file (`.flv.reason` in
/// `failed/` is shorter).
const FIXED_BYTES: usize =
    20 + 3 + 10 + 1 + MAX_NODE_BYTES + ".json".len() + 1 + 10 + ".partial".len();

/// At most this many bytes of mapped app and stream together, so every file named after a
/// chunk fits the 255 bytes of a file name (ext4, xfs, btrfs all stop there).
pub const MAX_NAME_BYTES: usize = 255 - FIXED_BYTES;

/// The (app, stream) of a stream as its chunk names spell them: mapped by [`encode`], neither
/// empty, short enough for every file named after them. The live-stream check, the recorder,
/// status and logs all use this form, so two streams that differ never meet in one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamNames {
    app: String,
    stream: String,
}

impl StreamNames {
    /// Maps `app` and `stream` (as published, query already removed); the error says why they
    /// cannot name files, in words a publisher is shown.
    pub fn new(app: &str, stream: &str) -> Result<StreamNames, String> {
        if app.is_empty() {
            return Err("empty app name".to_string());
        }
        if stream.is_empty() {
            return Err("empty stream name".to_string());
        }
        let app = encode(app, Part::App);
        let stream = encode(stream, Part::Stream);
        if app.len() > MAX_APP_BYTES {
            return Err(format!(
                "app name too long: {} bytes as a file name, at most {MAX_APP_BYTES}",
                app.len()
            ));
        }
        if app.len() + stream.len() > MAX_NAME_BYTES {
            return Err(format!(
                "stream name too long: app and stream take {} bytes as a file name, at most {MAX_NAME_BYTES}",
                app.len() + stream.len()
            ));
        }
        Ok(StreamNames { app, stream })
    }

    pub fn app(&self) -> &str {
        &self.app
    }

    pub fn stream(&self) -> &str {
        &self.stream
    }
}

/// The ingest node's identity as chunk names spell it: mapped like an app (no `_`, so it
/// cannot be mistaken for part of a stream), not empty, at most [`MAX_NODE_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeId(String);

impl NodeId {
    /// Maps `raw` (`--node-id`, a hostname, an instance id); the error says why it cannot be one.
    pub fn new(raw: &str) -> Result<NodeId, String> {
        if raw.is_empty() {
            return Err("empty node id".to_string());
        }
        let mapped = encode(raw, Part::App);
        if mapped.len() > MAX_NODE_BYTES {
            return Err(format!(
                "node id {raw:?} too long: {} bytes as a file name, at most {MAX_NODE_BYTES}",
                mapped.len()
            ));
        }
        Ok(NodeId(mapped))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The parts of a chunk's file name: `{UTC start}_{app}_{stream}_{seq}-{node}`. `app`, `stream`
/// and `node` are name parts (mapped by [`encode`]); [`decode`] gives the published names back.
/// Names written before nodes had ids end at the sequence (`node` is `None`); they parse as
/// they are. The node makes the names of two ingest nodes differ even for the same stream
/// started in the same millisecond, so their objects and manifest chains never meet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkName {
    pub start: Civil,
    pub app: String,
    pub stream: String,
    pub seq: u32,
    pub node: Option<String>,
}

impl ChunkName {
    /// The chunk `seq` of the stream published as `app`/`stream`, in the form without a node.
    pub fn new(start: Civil, app: &str, stream: &str, seq: u32) -> ChunkName {
        ChunkName {
            start,
            app: encode(app, Part::App),
            stream: encode(stream, Part::Stream),
            seq,
            node: None,
        }
    }

    /// The chunk `seq` that `node` records of a stream whose names are mapped already.
    pub fn of(start: Civil, names: &StreamNames, seq: u32, node: &NodeId) -> ChunkName {
        ChunkName {
            start,
            app: names.app.clone(),
            stream: names.stream.clone(),
            seq,
            node: Some(node.0.clone()),
        }
    }

    /// The name without extension, shared by the FLV, its MP4 and its manifest.
    pub fn stem(&self) -> String {
        let mut stem = format!(
            "{}_{}_{}_{:06}",
            self.start.compact(),
            self.app,
            self.stream,
            self.seq
        );
        if let Some(node) = &self.node {
            stem.push('-');
            stem.push_str(node);
        }
        stem
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
        let (stream, last) = rest.rsplit_once('_')?;
        // The node never holds `_`, so the last `_` is the one before the sequence.
        let (seq, node) = match last.split_once('-') {
            Some((seq, node)) if !node.is_empty() => (seq, Some(node.to_string())),
            Some(_) => return None,
            None => (last, None),
        };
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
            node,
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
    fn chunk_names_carry_their_node_and_old_names_parse_without_one() {
        let names = StreamNames::new("live", "cam_000001-x").unwrap();
        let node = NodeId::new("ip-10-0-0-7.ec2.internal").unwrap();
        let n = ChunkName::of(civil(), &names, 7, &node);
        let stem = n.stem();
        assert!(
            stem.ends_with("_live_cam_000001-x_000007-ip-10-0-0-7.ec2.internal"),
            "{stem}"
        );
        assert_eq!(ChunkName::parse(&format!("{stem}.json")), Some(n.clone()));
        // Two nodes never share a name, even for one stream in one millisecond.
        let other = ChunkName::of(civil(), &names, 7, &NodeId::new("i-0abc").unwrap());
        assert_ne!(other.stem(), stem);
        let old = ChunkName::parse("20261126T032759.123Z_live_cam1_000002.mp4").unwrap();
        assert_eq!((old.seq, old.node), (2, None));
        assert_eq!(
            ChunkName::parse("20261126T032759.123Z_live_cam1_000002-.mp4"),
            None
        );
        assert_eq!(
            ChunkName::parse("20261126T032759.123Z_live_cam1_0002-a.mp4"),
            None
        );
        assert_eq!(NodeId::new("a_b").unwrap().as_str(), "a%5Fb");
        assert!(NodeId::new("").is_err());
        assert!(NodeId::new(&"n".repeat(MAX_NODE_BYTES + 1)).is_err());
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
    fn chunk_name_maps_separators_and_paths_reversibly() {
        let n = ChunkName::new(civil(), "my_app", "../../etc/passwd?x=1", 1);
        assert_eq!(n.app, "my%5Fapp");
        assert_eq!(n.stream, "%2E.%2F..%2Fetc%2Fpasswd%3Fx%3D1");
        assert_eq!(ChunkName::parse(&n.stem()), Some(n.clone()));
        assert_eq!(decode(&n.app).as_deref(), Some("my_app"));
        assert_eq!(decode(&n.stream).as_deref(), Some("../../etc/passwd?x=1"));
        let dots = ChunkName::new(civil(), "..", ".", 1);
        assert_eq!((dots.app.as_str(), dots.stream.as_str()), ("%2E.", "%2E"));
    }

    #[test]
    fn names_that_differ_map_to_names_that_differ() {
        let raw = [
            "cam/1",
            "cam 1",
            "cam-1",
            "cam_1",
            "cam%2F1",
            "cam-2F1",
            "cam\\1",
            "cam?1",
            "cam#1",
            "cam\n1",
            "cam\0x",
            "камера1",
            "машина1",
            "e\u{301}",
            "\u{e9}",
            ".cam",
            "-cam",
            "",
        ];
        for part in [Part::App, Part::Stream] {
            let mapped: Vec<String> = raw.iter().map(|r| encode(r, part)).collect();
            let distinct: std::collections::HashSet<&String> = mapped.iter().collect();
            assert_eq!(distinct.len(), raw.len(), "{part:?}: {mapped:?}");
            for (r, m) in raw.iter().zip(&mapped) {
                assert_eq!(decode(m).as_deref(), Some(*r), "{part:?} {m}");
                assert!(
                    !m.contains(['/', '\\', '\n', '\0', ' ', '?', '#'])
                        && !m.starts_with('.')
                        && (part == Part::Stream || !m.contains('_')),
                    "{m:?} is not safe in a file name"
                );
            }
        }
        assert_eq!(encode("камера1", Part::Stream), "камера1");
        assert_eq!(encode("cam/1", Part::Stream), "cam%2F1");
        assert_eq!(encode("a_b", Part::App), "a%5Fb");
        assert_eq!(encode("e\u{301}", Part::Stream), "e%CC%81");
        // A chunk of each parses back to its parts, with the separators where they were.
        for r in raw.iter().filter(|r| !r.is_empty()) {
            let n = ChunkName::new(civil(), r, r, 3);
            assert_eq!(ChunkName::parse(&format!("{}.mp4", n.stem())), Some(n));
        }
    }

    #[test]
    fn names_of_the_old_rule_still_parse_and_decode_as_they_are() {
        let old = ChunkName::parse("20261126T032759.123Z_live_------1_000002.flv").unwrap();
        assert_eq!((old.app.as_str(), old.stream.as_str()), ("live", "------1"));
        assert_eq!(decode(&old.stream).as_deref(), Some("------1"));
        assert_eq!(decode("bad%2"), None);
        assert_eq!(decode("bad%zz"), None);
        assert_eq!(decode("%FF"), None);
    }

    #[test]
    fn stream_names_are_capped_to_fit_every_file_name() {
        let longest = StreamNames::new("a", &"s".repeat(MAX_NAME_BYTES - 1)).unwrap();
        let node = NodeId::new(&"n".repeat(MAX_NODE_BYTES)).unwrap();
        let name = ChunkName::of(civil(), &longest, u32::MAX, &node);
        let file = partial_name(&format!("{}.json", name.stem()), u32::MAX);
        assert!(file.len() <= 255, "{} bytes", file.len());
        assert!(format!("{}.flv.reason", name.stem()).len() <= 255);

        let err = StreamNames::new("live", &"x".repeat(300)).unwrap_err();
        assert!(err.contains("too long") && err.contains("304"), "{err}");
        // Mapped bytes count: 83 Cyrillic letters are 166 bytes.
        assert_eq!(MAX_NAME_BYTES, 165);
        assert!(StreamNames::new("a", &"ж".repeat(82)).is_ok());
        assert!(StreamNames::new("a", &"ж".repeat(83)).is_err());
        // A space is 3 bytes once mapped.
        assert!(StreamNames::new("a", &" ".repeat(55)).is_err());
        assert!(
            StreamNames::new(&"a".repeat(65), "s")
                .unwrap_err()
                .contains("app name")
        );
        assert!(StreamNames::new("", "s").unwrap_err().contains("empty app"));
        assert!(
            StreamNames::new("a", "")
                .unwrap_err()
                .contains("empty stream")
        );
        let nul = StreamNames::new("live", "cam\0x").unwrap();
        assert_eq!(nul.stream(), "cam%00x");
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
