//! The tests' one packet reader: every audio and video packet of a file as ffmpeg's demuxer
//! delivers it (`-copyts -c copy -f framehash`), with its stream (video 0, audio 1), times in
//! ms, size and SHA-256, whatever the container. Recordings, references, MP4s and clips are
//! compared through it, never through the crate's own readers.

use std::collections::BTreeMap;
use std::path::Path;

use crate::support::remux;

/// One packet as ffmpeg's demuxer delivers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub stream: u32,
    pub dts_ms: i64,
    pub pts_ms: i64,
    pub size: u64,
    pub hash: String,
}

/// Packets of `file` via `ffmpeg -copyts -c copy -f framehash` (timestamps in ms).
pub fn read_with(bin: &Path, file: &Path) -> Vec<Packet> {
    let f = file.to_str().expect("utf-8 path");
    let out = remux::run(
        bin,
        &[
            "-v",
            "error",
            "-copyts",
            "-i",
            f,
            "-map",
            "0:v?",
            "-map",
            "0:a?",
            "-c",
            "copy",
            "-f",
            "framehash",
            "-hash",
            "sha256",
            "-",
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut tb: BTreeMap<u32, (i64, i64)> = BTreeMap::new();
    let mut packets = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#tb ") {
            let (idx, frac) = rest.split_once(':').expect("#tb line");
            let (num, den) = frac.trim().split_once('/').expect("timebase");
            tb.insert(
                idx.trim().parse().unwrap(),
                (num.parse().unwrap(), den.parse().unwrap()),
            );
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split(',').map(str::trim).collect();
        assert!(cols.len() >= 6, "framehash line {line}");
        let stream: u32 = cols[0].parse().unwrap();
        let (num, den) = tb[&stream];
        let ms = |v: &str| {
            let t: i64 = v.parse().unwrap();
            // Round to the nearest millisecond.
            let scaled = t * num * 1000;
            (scaled + scaled.signum() * den / 2) / den
        };
        packets.push(Packet {
            stream,
            dts_ms: ms(cols[1]),
            pts_ms: ms(cols[2]),
            size: cols[4].parse().unwrap(),
            hash: cols[5].to_string(),
        });
    }
    packets
}

/// [`read_with`] Debian's ffmpeg.
pub fn read(file: &Path) -> Vec<Packet> {
    read_with(Path::new(remux::ffmpeg()), file)
}

/// Per stream: the (size, hash) sequence. Interleaving of audio and video may differ between a
/// chunked recording and its reference, but each stream's packet sequence must not.
pub fn by_stream(p: &[Packet]) -> BTreeMap<u32, Vec<(u64, String)>> {
    let mut m: BTreeMap<u32, Vec<(u64, String)>> = BTreeMap::new();
    for x in p {
        m.entry(x.stream)
            .or_default()
            .push((x.size, x.hash.clone()));
    }
    m
}

/// Per stream: the (dts, pts) sequence in ms.
pub fn times(p: &[Packet]) -> BTreeMap<u32, Vec<(i64, i64)>> {
    let mut m: BTreeMap<u32, Vec<(i64, i64)>> = BTreeMap::new();
    for x in p {
        m.entry(x.stream).or_default().push((x.dts_ms, x.pts_ms));
    }
    m
}
