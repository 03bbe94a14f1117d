//! Shared by the remux tests: real encoders (Debian ffmpeg, and a static ffmpeg 9 for Enhanced
//! RTMP FLV), running the `rtmp-recorder remux` binary, and comparing an MP4's packets (read by
//! `support::packets`) with its FLV's and with ffmpeg's own remux.

pub mod browser;

use crate::support::{self, ensure_apt, packets};

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn ffmpeg() -> &'static str {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        ensure_apt("ffmpeg", "ffmpeg");
        ensure_apt("ffprobe", "ffmpeg");
    });
    "ffmpeg"
}

/// A static ffmpeg 9 (pip `imageio-ffmpeg`): its FLV muxer writes Enhanced RTMP headers.
pub fn ffmpeg9() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let find = || {
            Command::new("python3")
                .args([
                    "-c",
                    "import imageio_ffmpeg;print(imageio_ffmpeg.get_ffmpeg_exe())",
                ])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        };
        if let Some(p) = find() {
            return p;
        }
        let ok = Command::new("pip")
            .args(["install", "-q", "imageio-ffmpeg"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "pip install imageio-ffmpeg failed");
        find().expect("imageio_ffmpeg installed but no binary")
    })
    .clone()
}

/// Runs an encoder command line; panics with its stderr on failure.
pub fn run(bin: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Output {
    let bin = bin.as_ref();
    support::run_ok(Command::new(bin).args(args), &format!("{bin:?} {args:?}"))
}

/// Encodes a fixture with Debian ffmpeg: `args` go between the inputs and the output.
pub fn encode(out: &Path, inputs: &[impl AsRef<str>], args: &[&str]) {
    encode_with(ffmpeg().as_ref(), out, inputs, args)
}

/// [`encode`] into `dir/name`, the encoder's arguments as one string of words; returns the path.
pub fn encoded(dir: &Path, name: &str, inputs: &[impl AsRef<str>], args: &str) -> PathBuf {
    let out = dir.join(name);
    encode(&out, inputs, &super::words(args));
    out
}

pub fn encode_with(bin: &Path, out: &Path, inputs: &[impl AsRef<str>], args: &[&str]) {
    let mut all = vec!["-v", "error", "-y"];
    all.extend(inputs.iter().map(AsRef::as_ref));
    all.extend_from_slice(args);
    let o = out.to_str().expect("utf-8 path");
    all.push(o);
    run(bin, &all);
}

/// An FLV of `secs` seconds of 320x240 H.264 + AAC, as a camera might leave on a card.
pub fn small_flv(out: &Path, secs: u32) {
    let t = secs.to_string();
    let args = ["-t", &t, "-c:v", "libx264", "-c:a", "aac", "-f", "flv"];
    encode(out, &testsrc_av("320x240"), &args);
}

pub const VIDEO_720P: &[&str] = &["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"];
pub const SINE_48K: &[&str] = &["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"];
/// lavfi inputs: the `video` source (e.g. `testsrc2=...`), then the `audio` one (`sine=...`).
pub fn lavfi_av(video: &str, audio: &str) -> [String; 8] {
    ["-f", "lavfi", "-i", video, "-f", "lavfi", "-i", audio].map(String::from)
}

/// lavfi inputs: a test picture of `size` (e.g. `640x360`) at 30 fps with a 440 Hz tone at
/// 48 kHz.
pub fn testsrc_av(size: &str) -> [String; 8] {
    lavfi_av(
        &format!("testsrc2=size={size}:rate=30"),
        "sine=frequency=440:sample_rate=48000",
    )
}

/// Asserts our MP4 carries exactly the FLV's packets, with the FLV's timestamps (or all
/// shifted by one constant), and that ffmpeg's own remux agrees on the payloads.
pub fn assert_packet_identical(bin: &Path, flv: &Path, ours: &Path) {
    let src = packets::read_with(bin, flv);
    let got = packets::read_with(bin, ours);
    assert!(!src.is_empty(), "{} has no packets", flv.display());
    assert_eq!(
        packets::by_stream(&src),
        packets::by_stream(&got),
        "payloads differ: {} vs {}",
        flv.display(),
        ours.display()
    );
    assert_like_ffmpeg_remux(bin, flv, ours);
}

/// Our MP4 carries the packets `ffmpeg -c copy` puts into an MP4 (byte for byte), with the
/// FLV's timestamps, decodes cleanly and has its moov first.
pub fn assert_like_ffmpeg_remux(bin: &Path, flv: &Path, ours: &Path) {
    let src = packets::read_with(bin, flv);
    let got = packets::read_with(bin, ours);
    let reference = ours.with_extension("ffmpeg.mp4");
    encode_with(
        bin,
        &reference,
        &["-i", flv.to_str().unwrap()],
        &["-map", "0:v?", "-map", "0:a?", "-c", "copy"],
    );
    assert_eq!(
        packets::by_stream(&packets::read_with(bin, &reference)),
        packets::by_stream(&got),
        "payloads differ from ffmpeg's own remux"
    );
    let (ts, tg) = (packets::times(&src), packets::times(&got));
    let shift = {
        let a = ts.values().next().and_then(|v| v.first()).unwrap();
        let b = tg.values().next().and_then(|v| v.first()).unwrap();
        b.0 - a.0
    };
    assert_eq!(ts.len(), tg.len(), "stream count differs");
    for (stream, want) in &ts {
        let have = &tg[stream];
        assert_eq!(
            want.len(),
            have.len(),
            "stream {stream}: packet count differs"
        );
        for (i, (w, h)) in want.iter().zip(have).enumerate() {
            assert_eq!(
                (w.0 + shift, w.1 + shift),
                *h,
                "stream {stream} packet {i}: dts/pts differ (constant shift {shift} ms)"
            );
        }
    }
    assert_decodes_clean(bin, ours);
    assert_moov_first(ours);
}

/// `ffmpeg -v error -i FILE -f null -` prints nothing.
pub fn assert_decodes_clean(bin: &Path, file: &Path) {
    let out = run(
        bin,
        &[
            "-v",
            "error",
            "-i",
            file.to_str().unwrap(),
            "-f",
            "null",
            "-",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.trim().is_empty(),
        "decoding {} printed: {err}",
        file.display()
    );
}

/// Top-level box types, in order.
pub fn top_level_boxes(file: &Path) -> Vec<String> {
    let data = std::fs::read(file).unwrap();
    let mut at = 0usize;
    let mut kinds = Vec::new();
    while at + 8 <= data.len() {
        let size32 = u32::from_be_bytes(data[at..at + 4].try_into().unwrap()) as u64;
        kinds.push(String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned());
        let size = match size32 {
            1 => u64::from_be_bytes(data[at + 8..at + 16].try_into().unwrap()),
            0 => (data.len() - at) as u64,
            s => s,
        };
        assert!(size >= 8, "bad box size at {at}");
        at += size as usize;
    }
    assert_eq!(at, data.len(), "boxes do not tile the file");
    kinds
}

pub fn assert_moov_first(file: &Path) {
    let kinds = top_level_boxes(file);
    assert_eq!(kinds, ["ftyp", "moov", "mdat"], "{}", file.display());
}

/// A state directory with `flvs` (name, path) queued in `remux/`.
pub fn queue(state: &Path, flvs: &[(&str, &Path)]) {
    let inbox = state.join("remux");
    std::fs::create_dir_all(&inbox).unwrap();
    for (name, path) in flvs {
        std::fs::copy(path, inbox.join(name)).unwrap();
    }
}

/// `rtmp-recorder --state-dir STATE remux EXTRA...`, with no systemd variables.
pub fn remux_command(state: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(support::BIN);
    cmd.arg("--state-dir")
        .arg(state)
        .arg("remux")
        .args(extra)
        .env_remove("STATE_DIRECTORY")
        .env_remove("JOURNAL_STREAM");
    cmd
}

/// Runs `rtmp-recorder --state-dir STATE remux` to completion.
pub fn remux(state: &Path, extra: &[&str]) -> Output {
    remux_command(state, extra)
        .output()
        .expect("running rtmp-recorder")
}

/// Where remux publishes the MP4 of the chunk queued as `name`.
pub fn published_mp4(state: &Path, name: &str) -> PathBuf {
    state
        .join("publish")
        .join(format!("{}.mp4", name.trim_end_matches(".flv")))
}

/// The manifest published next to `mp4`.
pub fn manifest(mp4: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(mp4.with_extension("json")).unwrap()).unwrap()
}

/// Remuxes one FLV through a fresh state directory `dir/state`; checks the chunk moved on
/// (MP4 and manifest published, FLV archived) and returns the MP4 path and the log.
pub fn remux_one(dir: &Path, flv: &Path) -> (PathBuf, String) {
    let state = dir.join("state");
    let name = chunk_name(1);
    queue(&state, &[(&name, flv)]);
    let out = remux(&state, &[]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "remux failed: {log}");
    let mp4 = published_mp4(&state, &name);
    assert!(mp4.exists(), "no MP4 in publish/: {log}");
    assert!(mp4.with_extension("json").exists(), "no manifest");
    assert!(
        state.join("archive").join(&name).exists(),
        "FLV not archived"
    );
    assert!(
        !state.join("remux").join(&name).exists(),
        "FLV left in remux/"
    );
    (mp4, log)
}

/// `ffprobe -select_streams STREAMS -show_entries ENTRIES -of csv=p=0 FILE`'s output.
pub fn probe(file: &Path, streams: &str, entries: &str) -> String {
    let out = run(
        "ffprobe",
        &[
            "-v",
            "error",
            "-select_streams",
            streams,
            "-show_entries",
            entries,
            "-of",
            "csv=p=0",
            file.to_str().unwrap(),
        ],
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A chunk name of the form ingest writes.
pub fn chunk_name(seq: u32) -> String {
    format!("20261126T0300{:02}.000Z_live_cam1_{seq:06}.flv", seq % 60)
}
