//! Real publishers against `ServerConnection` over a loopback TCP socket: Debian's ffmpeg
//! (librtmp-free native RTMP client) and, as a stricter client, GStreamer's rtmp2sink.

use crate::support::{Turn, rtmp};

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::Duration;

use rtmp::{Served, serve_one};
use rtmp_recorder::rtmp::{Event, MediaKind};

fn run_publisher(mut cmd: Command) -> (Served, std::process::Output) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let url = format!("rtmp://127.0.0.1:{port}/live/test");
    let child = cmd
        .arg_url(&url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("publisher must be installed (apt-get install ffmpeg gstreamer1.0-tools ...)");
    let served = serve_one(&listener, Duration::from_secs(30));
    let output = child.wait_with_output().unwrap();
    (served, output)
}

/// Command building with the URL in the place each tool expects it.
trait ArgUrl {
    fn arg_url(&mut self, url: &str) -> &mut Self;
}

impl ArgUrl for Command {
    fn arg_url(&mut self, url: &str) -> &mut Self {
        let args: Vec<String> = self
            .get_args()
            .map(|a| a.to_string_lossy().replace("URL", url))
            .collect();
        let program = self.get_program().to_owned();
        *self = Command::new(program);
        self.args(args)
    }
}

struct Summary {
    video_frames: Vec<u64>,
    video_sequence_headers: usize,
    keyframes: usize,
    audio: usize,
    audio_sequence_headers: usize,
    metadata: usize,
}

/// Checks the FLV tag bodies: legacy AVC (codec 7) and AAC (sound format 10).
fn summarize(events: &[Event]) -> Summary {
    let mut s = Summary {
        video_frames: vec![],
        video_sequence_headers: 0,
        keyframes: 0,
        audio: 0,
        audio_sequence_headers: 0,
        metadata: 0,
    };
    for e in events {
        match e {
            Event::Media {
                kind: MediaKind::Video,
                timestamp,
                body,
                stream_id,
            } => {
                assert_eq!(*stream_id, 1);
                assert_eq!(body[0] & 0x0F, 7, "AVC video expected");
                match body[1] {
                    0 => s.video_sequence_headers += 1,
                    1 => {
                        s.video_frames.push(*timestamp);
                        if body[0] >> 4 == 1 {
                            s.keyframes += 1;
                        }
                    }
                    _ => {}
                }
            }
            Event::Media {
                kind: MediaKind::Audio,
                body,
                ..
            } => {
                assert_eq!(body[0] >> 4, 10, "AAC audio expected");
                if body[1] == 0 {
                    s.audio_sequence_headers += 1;
                } else {
                    s.audio += 1;
                }
            }
            Event::Metadata { body, .. } => {
                // An FLV script tag body: AMF0 string "onMetaData" first.
                assert_eq!(&body[..13], b"\x02\x00\x0aonMetaData");
                s.metadata += 1;
            }
            _ => {}
        }
    }
    s
}

fn assert_publish_flow(served: &Served, output: &std::process::Output) -> Summary {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        served.error.is_none(),
        "protocol error {:?}; publisher said:\n{stderr}",
        served.error
    );
    assert!(
        output.status.success(),
        "publisher failed ({:?}):\n{stderr}",
        output.status
    );
    let events = &served.events;
    assert!(
        matches!(&events[0], Event::Connected { app, .. } if app == "live"),
        "{:?}",
        events.first()
    );
    assert!(
        events.iter().any(
            |e| matches!(e, Event::PublishRequested { stream_id: 1, name, .. } if name == "test")
        ),
        "no PublishRequested"
    );
    assert!(
        matches!(events.last(), Some(Event::Unpublished { stream_id: 1 })),
        "{:?}",
        events.last()
    );
    let s = summarize(events);
    assert!(s.metadata >= 1, "no metadata");
    assert_eq!(s.video_sequence_headers, 1);
    assert!(s.audio_sequence_headers >= 1);
    assert!(
        s.video_frames.windows(2).all(|w| w[0] < w[1]),
        "video timestamps not increasing: {:?}",
        s.video_frames
    );
    // 8 MiB message limit, 2x for interleaving; real streams stay far below.
    assert!(served.max_buffered < 1 << 20, "{}", served.max_buffered);
    s
}

#[test]
fn ffmpeg_publishes_h264_aac() {
    let _turn = Turn::shared();
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-loglevel", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args([
            "-t", "4", "-c:v", "libx264", "-bf", "2", "-g", "60", "-c:a", "aac", "-f", "flv", "URL",
        ]);
    let (served, output) = run_publisher(cmd);
    let s = assert_publish_flow(&served, &output);
    assert!(
        (115..=125).contains(&s.video_frames.len()),
        "{} video frames",
        s.video_frames.len()
    );
    assert_eq!(s.keyframes, 2, "GOP 60 over 120 frames");
    // 4 s of 48 kHz AAC = 187.5 frames of 1024 samples.
    assert!((180..=195).contains(&s.audio), "{} audio frames", s.audio);
    let last = *s.video_frames.last().unwrap();
    assert!(
        (3800..=4100).contains(&last),
        "last video timestamp {last} ms"
    );
    eprintln!(
        "ffmpeg: {} bytes in, max buffered {}",
        served.bytes_in, served.max_buffered
    );
}

#[test]
fn gstreamer_rtmp2sink_publishes_h264_aac() {
    let _turn = Turn::shared();
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.args(["-q", "-e"]).args(
        "videotestsrc num-buffers=120 ! video/x-raw,width=640,height=360,framerate=30/1 ! x264enc key-int-max=60 bframes=0 ! \
         h264parse ! flvmux name=m streamable=true ! rtmp2sink location=URL \
         audiotestsrc num-buffers=188 samplesperbuffer=1024 ! audio/x-raw,rate=48000 ! avenc_aac ! aacparse ! m."
            .split_whitespace(),
    );
    let (served, output) = run_publisher(cmd);
    let s = assert_publish_flow(&served, &output);
    assert_eq!(s.video_frames.len(), 120);
    assert!(s.keyframes >= 2, "{} keyframes", s.keyframes);
    eprintln!(
        "gstreamer: {} bytes in, max buffered {}",
        served.bytes_in, served.max_buffered
    );
}
