//! What a server recorded: walks every FLV file it wrote and counts media frames per stream
//! (audio and video tags that are not sequence headers), so frames lost = sent - recorded.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use crate::flv_tags;
use crate::servers::Kind;

#[derive(Debug, Default)]
pub struct Recorded {
    pub frames_per_stream: BTreeMap<String, u64>,
    pub files: usize,
    pub bytes: u64,
    /// Files that end in a partial tag (a writer that stopped mid-tag).
    pub torn_files: usize,
    /// Files that could not be read or are not FLV, with the reason.
    pub bad_files: Vec<String>,
}

impl Recorded {
    pub fn total_frames(&self) -> u64 {
        self.frames_per_stream.values().sum()
    }

    pub fn frames(&self, key: &str) -> u64 {
        self.frames_per_stream.get(key).copied().unwrap_or(0)
    }
}

pub fn count(kind: Kind, dirs: &[PathBuf]) -> Recorded {
    let mut r = Recorded::default();
    for dir in dirs {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().and_then(|x| x.to_str()) != Some("flv") {
                continue;
            }
            let Some(stream) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| stream_of(kind, s))
            else {
                r.bad_files
                    .push(format!("{}: name names no stream", path.display()));
                continue;
            };
            let data = match fs::read(&path) {
                Ok(d) => d,
                Err(e) => {
                    r.bad_files.push(format!("{}: {e}", path.display()));
                    continue;
                }
            };
            match flv_tags::parse(&data) {
                Ok(tags) => {
                    let frames = tags.tags.iter().filter(|t| t.is_media_frame()).count() as u64;
                    *r.frames_per_stream.entry(stream).or_default() += frames;
                    r.files += 1;
                    r.bytes += data.len() as u64;
                    if tags.torn_tail_bytes > 0 {
                        r.torn_files += 1;
                    }
                }
                Err(e) => r.bad_files.push(format!("{}: {e}", path.display())),
            }
        }
    }
    r
}

/// The stream key a recording belongs to, from its file name.
fn stream_of(kind: Kind, stem: &str) -> Option<String> {
    match kind {
        // record_unique on: `{key}-{unix seconds}`.
        Kind::Nginx => stem.rsplit_once('-').map(|(key, _)| key.to_string()),
        // `{UTC start}_{app}_{stream}_{seq}`; app never holds '_', the stream label may.
        Kind::Ours => {
            let parts: Vec<&str> = stem.split('_').collect();
            (parts.len() >= 4).then(|| parts[2..parts.len() - 1].join("_"))
        }
    }
}
