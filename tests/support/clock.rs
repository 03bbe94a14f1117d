//! The publisher of the clock and node tests (`ingest_aligned.rs`, `run_two_nodes.rs`): one
//! ffmpeg encode with a keyframe every second, sent in real time to every RTMP URL given at once
//! (the tee muxer: one encode, one connection per URL, the same packets on each).

use std::path::Path;

use super::ingest::{PublishOpts, Publisher, ffmpeg_tee};

/// Keyframe interval of [`publish_to_all`]'s streams (`-g 30` at 30 fps).
pub const GOP_MS: i64 = 1_000;

/// ffmpeg publishing `secs` of 320x240 testsrc2 at 30 fps (H.264, a keyframe each second) with
/// 48 kHz AAC, `-re`, to every URL in `urls`; its output goes to `NAME.log` in `dir`. Killed
/// on drop.
pub fn publish_to_all(urls: &[String], secs: u32, dir: &Path, name: &str) -> Publisher {
    let opts = PublishOpts {
        width: 320,
        height: 240,
        ..PublishOpts::new(dir, name)
    };
    ffmpeg_tee(urls, secs, &opts, "-g 30 -keyint_min 30 -b:a 64k")
}
