//! The publisher of the clock and node tests (`ingest_aligned.rs`, `run_two_nodes.rs`): one
//! ffmpeg encode with a keyframe every second, sent in real time to every RTMP URL given at once
//! (the tee muxer: one encode, one connection per URL, the same packets on each).

use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Keyframe interval of [`publish_to_all`]'s streams (`-g 30` at 30 fps).
pub const GOP_MS: i64 = 1_000;

/// ffmpeg publishing `secs` of 320x240 testsrc2 at 30 fps (H.264) with 48 kHz AAC, `-re`, to
/// every URL in `urls`; its stderr goes to `log`.
pub fn publish_to_all(urls: &[String], secs: u32, log: &Path) -> Child {
    let tee = urls
        .iter()
        .map(|u| format!("[f=flv:onfail=abort]{u}"))
        .collect::<Vec<_>>()
        .join("|");
    Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-loglevel", "warning"])
        .args(["-re", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"])
        .args([
            "-re",
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
        ])
        .args(["-t", &secs.to_string(), "-map", "0:v", "-map", "1:a"])
        .args([
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        ])
        .args(["-g", "30", "-keyint_min", "30", "-sc_threshold", "0"])
        .args(["-c:a", "aac", "-ar", "48000", "-b:a", "64k"])
        // The tee muxer does not tell the encoders FLV needs SPS/PPS and the AAC config in
        // extradata.
        .args(["-flags", "+global_header", "-f", "tee", &tee])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).expect("creating the publisher's log"))
        .spawn()
        .expect("spawning ffmpeg (apt install ffmpeg)")
}
