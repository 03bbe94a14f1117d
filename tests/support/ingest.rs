//! Shared harness for the ingest integration tests: starts the recorder (and nginx-rtmp as a
//! reference server), publishes real streams with ffmpeg and GStreamer while keeping a reference
//! copy of exactly the published packets, and checks chunks with ffprobe, `support::packets` and
//! `support::flv`, so the checks never depend on the code under test.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The chunk length every publish test records with.
pub const CHUNK: Duration = Duration::from_secs(10);
/// Keyframe interval of the published streams (`-g 60` at 30 fps).
pub const GOP: Duration = Duration::from_secs(2);
/// How far a live source's timestamps stray from the nominal frame times.
pub const JITTER_MS: i64 = 50;

// ---------------------------------------------------------------------------------------------
// Waiting without blind sleeps

use crate::support::flv::{Amf, Flv};
use crate::support::free_port;
use crate::support::packets::{self, Packet};
use crate::support::{self, wait_until, words};

/// Waits for a child to exit; kills it and panics (showing `log`) after `timeout`.
pub fn wait_child(child: &mut Child, timeout: Duration, what: &str, log: &Path) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} (pid {}) did not exit within {timeout:?}\n{}",
                child.id(),
                show_log(log)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: plain kill(2) on a child this harness started and has not reaped yet.
    let rc = unsafe { libc::kill(pid as libc::pid_t, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// The last lines of a log file, for failure messages.
pub fn show_log(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"));
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(150);
    format!(
        "---- {} (last {} lines) ----\n{}\n---- end ----",
        path.display(),
        lines.len() - from,
        lines[from..].join("\n")
    )
}

/// Kills a harness child that still runs; while a test panics, shows its log too.
fn stop_and_report(child: &mut Option<Child>, log: &Path) {
    if let Some(mut child) = child.take() {
        let _ = child.kill();
        let _ = child.wait();
    }
    if std::thread::panicking() {
        eprintln!("{}", show_log(log));
    }
}

pub fn log_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap_or_else(|e| panic!("opening log {}: {e}", path.display()))
}

/// `*.EXT` files directly in `dir`, sorted by name (chunk names sort by time).
pub fn files_with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == ext) && p.is_file())
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort();
    out
}

/// Every file name below `dir`, recursively (for "the key never appears" checks).
pub fn all_names(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.file_name().to_string_lossy().into_owned());
            if e.path().is_dir() {
                out.extend(all_names(&e.path()));
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The recorder under test

/// A running `rtmp-recorder ingest`, killed on drop; its stderr is shown if the test panics.
pub struct Recorder {
    child: Option<Child>,
    pub port: u16,
    pub state: PathBuf,
    pub log: PathBuf,
}

/// `rtmp-recorder [global] --state-dir STATE run --listen 127.0.0.1:PORT [run_args]` publishing
/// to `file://PUBLISHED`, its output in `log`; returns once it listens.
pub fn start_run_to_files(
    state: &Path,
    published: &Path,
    port: u16,
    log: &Path,
    global: &[&str],
    run_args: &[&str],
) -> Child {
    let mut cmd = Command::new(support::BIN);
    clean_env(&mut cmd);
    let mut run = cmd
        .arg("--state-dir")
        .arg(state)
        .args(global)
        .args(["run", "--listen", &format!("127.0.0.1:{port}")])
        .args(run_args)
        .arg("--destination")
        .arg(format!("file://{}", published.display()))
        .stdin(Stdio::null())
        .stdout(log_file(log))
        .stderr(log_file(log))
        .spawn()
        .expect("starting rtmp-recorder run");
    support::wait_for_port(port, &mut run, Duration::from_secs(30), "run", || {
        show_log(log)
    });
    run
}

/// Removes variables the recorder reads so the caller's environment cannot change a test.
pub fn clean_env(cmd: &mut Command) {
    for var in [
        "NOTIFY_SOCKET",
        "LISTEN_FDS",
        "LISTEN_PID",
        "LISTEN_FDNAMES",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "STATE_DIRECTORY",
        "RECORDINGS_DIR",
        "RTMP_RECORDER_STATE_DIR",
        "RTMP_RECORDER_LOG",
        "RTMP_LISTEN",
        "CHUNK_DURATION",
        "CHUNK_DURATION_MINUTES",
        "ALIGN_CHUNKS",
        "RECONNECT_GRACE",
        "NODE_ID",
        "MAX_CHUNK_SIZE",
        "MAX_CHUNK_FRAMES",
        "WRITE_TIMEOUT",
        "MAX_CONNECTIONS_PER_IP",
        // Publish's destination: ingest reads it for GET /clip.
        "DESTINATION",
        "S3_BUCKET",
        "S3_PREFIX",
        "AWS_ENDPOINT_URL_S3",
        "ALLOWED_KEYS_FILE",
        "ALLOWED_APPS",
        "PUBLISH_SECRET_FILE",
        "PUBLISH_HOOK_URL",
        "PUBLISH_HOOK_TIMEOUT",
        "RTMP_PUBLISH_URL",
        "HANDSHAKE_TIMEOUT",
        "IDLE_TIMEOUT",
        "MAX_CONNECTIONS",
        "MIN_FREE_DISK",
        "HTTP_LISTEN",
        "TLS_LISTEN",
        "TLS_CERT_FILE",
        "TLS_KEY_FILE",
        "JOURNAL_STREAM",
    ] {
        cmd.env_remove(var);
    }
}

impl Recorder {
    /// Starts `ingest` with its state in `dir/state` and its log in `dir/recorder.log` (appended,
    /// so a restart keeps the first run's lines), listening on a fresh port, with
    /// `--chunk-duration 10s` and `extra` ingest arguments. Returns once the port accepts TCP.
    pub fn start(dir: &Path, extra: &[&str]) -> Recorder {
        Recorder::start_on(dir, free_port(), extra)
    }

    pub fn start_on(dir: &Path, port: u16, extra: &[&str]) -> Recorder {
        Recorder::start_with_env(dir, port, extra, &[])
    }

    /// [`Recorder::start_on`] with `env` set in ingest's environment (the hook variables are
    /// read from there only).
    pub fn start_with_env(dir: &Path, port: u16, extra: &[&str], env: &[(&str, &str)]) -> Recorder {
        let state = dir.join("state");
        let log = dir.join("recorder.log");
        let mut cmd = Command::new(support::BIN);
        clean_env(&mut cmd);
        cmd.envs(env.iter().copied());
        cmd.arg("--state-dir")
            .arg(&state)
            .args(["--log-level", "debug", "ingest", "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["--chunk-duration", "10s"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log));
        let child = cmd.spawn().expect("spawning rtmp-recorder");
        let mut rec = Recorder {
            child: Some(child),
            port,
            state,
            log,
        };
        rec.wait_listening();
        rec
    }

    fn wait_listening(&mut self) {
        let (port, log) = (self.port, self.log.clone());
        support::wait_for_port(
            port,
            self.child_mut(),
            Duration::from_secs(15),
            "rtmp-recorder",
            || show_log(&log),
        );
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("recorder already stopped")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("recorder already stopped").id()
    }

    pub fn url(&self, app: &str, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{key}", self.port)
    }

    pub fn recording(&self) -> PathBuf {
        self.state.join("recording")
    }

    pub fn remux(&self) -> PathBuf {
        self.state.join("remux")
    }

    /// Finished chunks in `remux/`, oldest first.
    pub fn chunks(&self) -> Vec<PathBuf> {
        files_with_ext(&self.remux(), "flv")
    }

    /// Chunks still being written in `recording/`.
    /// ffmpeg publishing `secs` seconds of `width`x`height` to live/`name` (its files `NAME.*`
    /// in `dir`), returned once a chunk of it is being recorded.
    pub fn publish_recording(
        &self,
        dir: &Path,
        name: &str,
        secs: u32,
        (width, height): (u32, u32),
    ) -> Publisher {
        let opts = PublishOpts {
            width,
            height,
            ..PublishOpts::new(dir, name)
        };
        let publisher = ffmpeg_publish(&self.url("live", name), secs, &opts);
        let infix = format!("_live_{name}_");
        wait_until(
            Duration::from_secs(10),
            &format!("{name} recording"),
            || {
                let open = self.open_chunks();
                open.iter().any(|p| p.to_string_lossy().contains(&infix))
            },
        );
        publisher
    }

    pub fn open_chunks(&self) -> Vec<PathBuf> {
        files_with_ext(&self.recording(), "flv")
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// None while running.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child_mut().try_wait().expect("try_wait")
    }

    /// Peak resident memory (`VmHWM`) in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// Waits until every chunk is closed: `recording/` empty and `n` chunks in `remux/`.
    pub fn wait_chunks(&self, n: usize, timeout: Duration) -> Vec<PathBuf> {
        let deadline = Instant::now() + timeout;
        loop {
            let done = self.chunks();
            if done.len() >= n && self.open_chunks().is_empty() {
                assert_eq!(
                    done.len(),
                    n,
                    "expected {n} chunks in remux/, found {done:?}\n{}",
                    show_log(&self.log)
                );
                return done;
            }
            if Instant::now() >= deadline {
                panic!(
                    "after {timeout:?}: remux/ holds {:?}, recording/ holds {:?}; expected {n} \
                     finished chunks\n{}",
                    done,
                    self.open_chunks(),
                    show_log(&self.log)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        signal(self.pid(), libc::SIGTERM);
        let log = self.log.clone();
        let status = wait_child(
            self.child_mut(),
            timeout,
            "rtmp-recorder after SIGTERM",
            &log,
        );
        self.child = None;
        status
    }

    /// SIGKILL, reaped.
    pub fn kill9(&mut self) {
        signal(self.pid(), libc::SIGKILL);
        let _ = self.child_mut().wait();
        self.child = None;
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        stop_and_report(&mut self.child, &self.log);
    }
}

// ---------------------------------------------------------------------------------------------
// nginx-rtmp, the reference server the harness was proven against

/// nginx with the RTMP module recording every publish into `dir/nginx-rec/`.
pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    pub record_dir: PathBuf,
    pub log: PathBuf,
}

impl Nginx {
    /// `record_interval`: e.g. `Some("10s")` to split like the recorder does.
    pub fn start(dir: &Path, record_interval: Option<&str>) -> Nginx {
        let port = free_port();
        let prefix = dir.join("nginx");
        let record_dir = dir.join("nginx-rec");
        fs::create_dir_all(prefix.join("logs")).expect("nginx prefix");
        fs::create_dir_all(&record_dir).expect("nginx record dir");
        let log = dir.join("nginx.log");
        let interval = record_interval
            .map(|i| format!("record_interval {i};"))
            .unwrap_or_default();
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             master_process off;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ server {{ listen 127.0.0.1:{port}; application live {{\n\
               live on; record all; record_path {rec}; record_unique on; {interval}\n\
             }} }} }}\n",
            rec = record_dir.display()
        );
        let conf_path = prefix.join("nginx.conf");
        fs::write(&conf_path, conf).expect("writing nginx.conf");
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&conf_path)
            .arg("-g")
            .arg(format!(
                "daemon off; pid {}; error_log {} info;",
                prefix.join("nginx.pid").display(),
                log.display()
            ))
            .stdin(Stdio::null())
            .stdout(log_file(&log))
            .stderr(log_file(&log))
            .spawn()
            .expect("spawning nginx");
        let mut n = Nginx {
            child: Some(child),
            port,
            record_dir,
            log,
        };
        let log = n.log.clone();
        if let Some(child) = n.child.as_mut() {
            support::wait_for_port(port, child, Duration::from_secs(10), "nginx", || {
                show_log(&log)
            });
        }
        n
    }

    pub fn url(&self, app: &str, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{key}", self.port)
    }

    /// Graceful stop (SIGQUIT): every recording is closed when this returns.
    pub fn stop(&mut self) -> Vec<PathBuf> {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), libc::SIGQUIT);
            wait_child(&mut child, Duration::from_secs(10), "nginx", &self.log);
        }
        files_with_ext(&self.record_dir, "flv")
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        stop_and_report(&mut self.child, &self.log);
    }
}

// ---------------------------------------------------------------------------------------------
// Publishers

/// What a publisher sends.
#[derive(Debug, Clone)]
pub struct PublishOpts {
    pub width: u32,
    pub height: u32,
    /// Where the reference FLV (exactly the published packets) is written.
    pub reference: PathBuf,
    /// The publisher's stderr.
    pub log: PathBuf,
}

impl PublishOpts {
    /// 720p, reference and log named `NAME.ref.flv` and `NAME.log` in `dir`.
    pub fn new(dir: &Path, name: &str) -> PublishOpts {
        PublishOpts {
            width: 1280,
            height: 720,
            reference: dir.join(format!("{name}.ref.flv")),
            log: dir.join(format!("{name}.log")),
        }
    }
}

/// A running publisher (ffmpeg or gst-launch), killed on drop.
pub struct Publisher {
    child: Option<Child>,
    pub reference: PathBuf,
    pub log: PathBuf,
    what: &'static str,
}

impl Publisher {
    /// Starts `cmd` with its output in `opts.log`; `what` names it in failures.
    fn spawn(cmd: &mut Command, opts: &PublishOpts, what: &'static str) -> Publisher {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log_file(&opts.log))
            .stderr(log_file(&opts.log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawning the {what}: {e}"));
        Publisher {
            child: Some(child),
            reference: opts.reference.clone(),
            log: opts.log.clone(),
            what,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("publisher already reaped").id()
    }

    /// Waits for the publisher to finish; panics (with its log) after `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("publisher already reaped");
        wait_child(&mut child, timeout, self.what, &self.log)
    }

    /// Waits and requires a clean exit.
    pub fn wait_ok(&mut self, timeout: Duration) {
        let status = self.wait(timeout);
        assert!(
            status.success(),
            "{} failed ({status})\n{}",
            self.what,
            show_log(&self.log)
        );
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().expect("try_wait").is_none(),
            None => false,
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", show_log(&self.log));
        }
    }
}

/// ffmpeg publishing `secs` seconds of testsrc2 (H.264 High, B-frames, 2 s GOP) + AAC 48 kHz in
/// real time to `url`; the tee muxer writes the same FLV packets to `opts.reference`.
pub fn ffmpeg_publish(url: &str, secs: u32, opts: &PublishOpts) -> Publisher {
    let outputs = [url.to_string(), opts.reference.display().to_string()];
    let codecs = "-profile:v high -bf 2 -g 60 -keyint_min 60 -ac 2 -b:a 128k";
    ffmpeg_tee(&outputs, secs, opts, codecs)
}

/// ffmpeg encoding `secs` seconds of testsrc2 (`opts.width`x`opts.height`, 30 fps, H.264) and
/// a 48 kHz AAC sine in real time, with the encoder options `codecs` (GOP, profile, channels,
/// bitrate), and sending the same FLV packets to each of `outputs` (RTMP URLs or files) with
/// the tee muxer.
pub fn ffmpeg_tee(outputs: &[String], secs: u32, opts: &PublishOpts, codecs: &str) -> Publisher {
    let tee = outputs
        .iter()
        .map(|o| format!("[f=flv:onfail=abort]{o}"))
        .collect::<Vec<_>>()
        .join("|");
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-hide_banner", "-nostdin", "-loglevel", "warning", "-y"])
        .args(["-re", "-f", "lavfi", "-i"])
        .arg(format!(
            "testsrc2=size={}x{}:rate=30",
            opts.width, opts.height
        ))
        .args(words(
            "-re -f lavfi -i sine=frequency=440:sample_rate=48000",
        ))
        .args(["-t", &secs.to_string(), "-map", "0:v", "-map", "1:a"])
        .args(words(
            "-c:v libx264 -preset veryfast -pix_fmt yuv420p -sc_threshold 0",
        ))
        .args(words("-c:a aac -ar 48000"))
        .args(words(codecs))
        // Encoders must put SPS/PPS and the AAC config in extradata: the tee muxer does not
        // tell them that FLV needs it.
        .args(["-flags", "+global_header", "-f", "tee"])
        .arg(tee);
    Publisher::spawn(&mut cmd, opts, "ffmpeg publisher")
}

/// gst-launch publishing `secs` seconds (videotestsrc + x264enc High with B-frames, 2 s GOP,
/// audiotestsrc + AAC 48 kHz, live) with `rtmp2sink`; a `tee` after `flvmux` writes the same FLV
/// to `opts.reference`.
pub fn gst_publish(url: &str, secs: u32, opts: &PublishOpts) -> Publisher {
    gst_publish_with(url, "", secs, opts)
}

/// [`gst_publish`] with more `rtmp2sink` properties (`sink_props`, e.g.
/// `tls-validation-flags=0` for an `rtmps://` server with a self-signed certificate).
pub fn gst_publish_with(url: &str, sink_props: &str, secs: u32, opts: &PublishOpts) -> Publisher {
    let video_buffers = secs * 30;
    // audiotestsrc sends 1024 samples per buffer.
    let audio_buffers = (secs * 48_000).div_ceil(1024);
    let pipeline = format!(
        "flvmux name=m streamable=true ! tee name=t \
           t. ! queue ! rtmp2sink location={url} {sink_props} \
           t. ! queue ! filesink location={reference} \
         videotestsrc is-live=true num-buffers={video_buffers} \
           ! video/x-raw,width={w},height={h},framerate=30/1,format=I420 \
           ! x264enc bframes=2 key-int-max=60 speed-preset=veryfast \
               option-string=scenecut=0:min-keyint=60 \
           ! video/x-h264,profile=high ! h264parse ! queue ! m. \
         audiotestsrc is-live=true num-buffers={audio_buffers} samplesperbuffer=1024 \
           ! audio/x-raw,rate=48000,channels=2 ! audioconvert ! avenc_aac ! aacparse \
           ! queue ! m.",
        reference = opts.reference.display(),
        w = opts.width,
        h = opts.height,
    );
    let mut cmd = Command::new("gst-launch-1.0");
    cmd.arg("-e").args(pipeline.split_whitespace());
    Publisher::spawn(&mut cmd, opts, "gst-launch publisher")
}

// ---------------------------------------------------------------------------------------------
// ffprobe / ffmpeg checks

fn run_capture(cmd: &mut Command, what: &str) -> (String, String) {
    let out = support::run_ok(cmd, what);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (stdout, stderr)
}

/// Packets ffprobe reads from `file`: (video, audio).
pub fn count_packets(file: &Path) -> (u64, u64) {
    let (out, _) = run_capture(
        Command::new("ffprobe")
            .args(["-v", "error", "-count_packets", "-show_entries"])
            .args(["stream=codec_type,nb_read_packets", "-of", "csv=p=0"])
            .arg(file),
        &format!("ffprobe -count_packets {}", file.display()),
    );
    let (mut v, mut a) = (0, 0);
    for line in out.lines() {
        let mut parts = line.split(',');
        let kind = parts.next().unwrap_or("");
        let n: u64 = parts
            .next()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        match kind {
            "video" => v += n,
            "audio" => a += n,
            _ => {}
        }
    }
    (v, a)
}

/// Decodes every frame of `file`; returns ffmpeg's error output (empty: clean).
pub fn decode_errors(file: &Path) -> String {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-i"])
        .arg(file)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("running ffmpeg decode");
    // The null muxer's complaint about frame timestamps that round to the same tick (GStreamer's
    // millisecond timestamps at 30 fps) is about muxing the decoded frames, not decoding.
    let mut err: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| {
            !l.contains("non monotonically increasing dts to muxer")
                && !l.trim_start().starts_with("Last message repeated")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    if !out.status.success() {
        err.push_str(&format!("\nffmpeg exit status {}", out.status));
    }
    err
}

/// Container duration ffprobe reports, in seconds.
pub fn probe_duration(file: &Path) -> f64 {
    let (out, _) = run_capture(
        Command::new("ffprobe")
            .args(words("-v error -show_entries format=duration -of csv=p=0"))
            .arg(file),
        &format!("ffprobe duration {}", file.display()),
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe duration of {}: {out:?}", file.display()))
}

/// How a publisher is started: ffmpeg's or GStreamer's (`ffmpeg_publish`, `gst_publish`).
pub type Publish = fn(&str, u32, &PublishOpts) -> Publisher;

/// `publish` sends 26 s of 720p30 to `live/KEY` of a fresh ingest with 10 s chunks: the three
/// chunks (0-10 s, 10-20 s, 20-26 s, the last closed when the publisher disconnects) hold
/// exactly its reference packets and decode cleanly. Runs alone: real-time 720p.
pub fn chunks_exactly_what_was_published(publish: Publish, key: &str) {
    let dir = support::Turn::alone().scratch();
    let rec = Recorder::start(dir.path(), &[]);
    let secs = 26;
    let mut publisher = publish(
        &rec.url("live", key),
        secs,
        &PublishOpts::new(dir.path(), key),
    );
    publisher.wait_ok(Duration::from_secs(u64::from(secs) + 30));
    let chunks = rec.wait_chunks(3, Duration::from_secs(15));
    check_chunks_against_reference(&chunks, &publisher.reference, "live", key);
    for c in &chunks {
        assert_eq!(decode_errors(c), "", "{} decodes cleanly", c.display());
    }
}

// ---------------------------------------------------------------------------------------------
// Chunk checks against a reference

/// Checks the chunk layout every file in `remux/` must have: FLV header with audio and video,
/// `onMetaData`, the AVC then the AAC sequence header, then the first media frame at timestamp
/// 0 (a video keyframe, except that chunk 1 may open with audio as long as its first video
/// frame is a keyframe), and no torn tail.
pub fn check_chunk_layout(flv: &Flv, first: bool) {
    let p = flv.path.display();
    assert_eq!(
        flv.trailing, 0,
        "{p}: {} bytes after the last tag",
        flv.trailing
    );
    assert_eq!(
        flv.flags & 0x05,
        0x05,
        "{p}: FLV header flags {:#x}",
        flv.flags
    );
    let t = &flv.tags;
    assert!(t.len() >= 4, "{p}: only {} tags", t.len());
    assert!(
        t[0].is_script() && t[0].script().0 == "onMetaData",
        "{p}: first tag is not onMetaData: {:?}",
        t[0].kind
    );
    assert!(
        t[1].is_video_seq_header(),
        "{p}: tag 2 is not the AVC sequence header"
    );
    assert!(
        t[2].is_aac_seq_header(),
        "{p}: tag 3 is not the AAC sequence header"
    );
    assert!(t[3].is_media(), "{p}: tag 4 is not a media frame");
    assert_eq!(
        t[3].ts, 0,
        "{p}: first media frame at {} ms, not 0",
        t[3].ts
    );
    if !first {
        assert!(
            t[3].is_keyframe(),
            "{p}: first media frame is not a video keyframe"
        );
    }
    let first_video = flv
        .video()
        .next()
        .unwrap_or_else(|| panic!("{p}: no video"));
    assert!(
        first_video.is_keyframe(),
        "{p}: first video frame is not a keyframe"
    );
    // Rebasing must not wrap an early audio packet to a huge timestamp.
    let max_ts = flv.media().map(|t| t.ts).max().unwrap_or(0);
    assert!(max_ts < 3_600_000, "{p}: media timestamp {max_ts} ms");
}

/// Which timestamp a splitting rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Dts,
    Pts,
}

#[derive(Debug, Clone, Copy)]
pub struct VideoFrame {
    pub dts: i64,
    pub pts: i64,
    pub key: bool,
}

impl VideoFrame {
    pub fn at(&self, clock: Clock) -> i64 {
        match clock {
            Clock::Dts => self.dts,
            Clock::Pts => self.pts,
        }
    }
}

/// The video frames of a file in order, with both clocks.
pub fn video_timeline(flv: &Flv) -> Vec<VideoFrame> {
    flv.video()
        .map(|t| VideoFrame {
            dts: t.ts as i64,
            pts: t.ts as i64 + t.composition_time() as i64,
            key: t.is_keyframe(),
        })
        .collect()
}

/// Indices of the video frames that open each chunk under the splitting rule: a chunk ends at
/// the first video keyframe at least `target` after the chunk's start (`first_start` for the
/// first chunk, its opening keyframe for the others), read on `clock`.
pub fn chunk_starts(
    timeline: &[VideoFrame],
    clock: Clock,
    first_start: i64,
    target: Duration,
) -> Vec<usize> {
    let target = target.as_millis() as i64;
    let mut starts = vec![0];
    let mut start = first_start;
    for (i, f) in timeline.iter().enumerate().skip(1) {
        if f.key && f.at(clock) >= start + target {
            starts.push(i);
            start = f.at(clock);
        }
    }
    starts
}

/// One reading of the splitting rule, and where it splits a reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub clock: Clock,
    /// Where the first chunk starts on `clock`.
    pub first_start: i64,
    /// Index of each chunk's first video frame.
    pub starts: Vec<usize>,
}

impl Reading {
    /// Each finished chunk's length: from its start to the next chunk's opening keyframe.
    pub fn durations(&self, timeline: &[VideoFrame]) -> Vec<i64> {
        self.starts
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let from = if i == 0 {
                    self.first_start
                } else {
                    timeline[w[0]].at(self.clock)
                };
                timeline[w[1]].at(self.clock) - from
            })
            .collect()
    }
}

/// The readings of the splitting rule a correct recorder may implement: "media time" as DTS or
/// PTS, and the first chunk measured from its first frame of any kind or its first video frame.
/// They agree for ffmpeg's streams; GStreamer's DTS run slightly behind its PTS.
pub fn candidate_chunk_starts(reference: &Flv, target: Duration) -> Vec<Reading> {
    let timeline = video_timeline(reference);
    let Some(first_video) = timeline.first().copied() else {
        return Vec::new();
    };
    let first_media_dts = reference.media().map(|t| t.ts as i64).min().unwrap_or(0);
    let mut out = Vec::new();
    for (clock, first_any) in [
        (Clock::Dts, first_media_dts),
        (Clock::Pts, first_media_dts.min(first_video.pts)),
    ] {
        for first_start in [first_any, first_video.at(clock)] {
            let reading = Reading {
                clock,
                first_start,
                starts: chunk_starts(&timeline, clock, first_start, target),
            };
            if !out.contains(&reading) {
                out.push(reading);
            }
        }
    }
    out
}

/// Where a chunk series was split, as read against its reference.
#[derive(Debug)]
pub struct Splits {
    /// The reading of the splitting rule that matched.
    pub reading: Reading,
    /// Index of each chunk's first video frame in the reference.
    pub starts: Vec<usize>,
    pub timeline: Vec<VideoFrame>,
}

/// The media side of a chunk series against the publisher's reference: split points follow the
/// rule, every chunk has the layout, durations are in [10 s, 10 s + GOP), packet counts summed
/// over the chunks equal the reference's, and each stream's packets (size and SHA-256, in
/// order) equal the reference's.
pub fn check_chunks_media(chunks: &[PathBuf], reference: &Path) -> Splits {
    let ref_flv = Flv::read(reference);
    let timeline = video_timeline(&ref_flv);
    let flvs: Vec<Flv> = chunks.iter().map(|c| Flv::read(c)).collect();

    // Where the recorder split, in reference video frames, must be where the rule splits.
    let mut starts = Vec::new();
    let mut seen = 0;
    for f in &flvs {
        starts.push(seen);
        seen += f.video().count();
    }
    assert_eq!(
        seen,
        timeline.len(),
        "video frames in chunks {chunks:?} vs the reference"
    );
    let candidates = candidate_chunk_starts(&ref_flv, CHUNK);
    let matching: Vec<&Reading> = candidates.iter().filter(|r| r.starts == starts).collect();
    assert!(
        !matching.is_empty(),
        "chunks {chunks:?} open at reference video frames {starts:?}; the splitting rule gives \
         one of {candidates:?}"
    );
    // Each finished chunk lasts [10 s, 10 s + GOP) by the reference's clock. Live sources'
    // timestamps jitter by a few ms, and a keyframe due at 10 s that lands at 9.998 s rightly
    // moves the split to the one at ~12 s.
    let (lo, hi) = (CHUNK.as_millis() as i64, (CHUNK + GOP).as_millis() as i64);
    let reading = matching
        .iter()
        .find(|r| {
            r.durations(&timeline)
                .iter()
                .all(|d| (lo..hi + JITTER_MS).contains(d))
        })
        .map(|r| (*r).clone())
        .unwrap_or_else(|| {
            let seen: Vec<_> = matching
                .iter()
                .map(|r| (r.clock, r.durations(&timeline)))
                .collect();
            panic!(
                "chunks {chunks:?}: durations (ms) {seen:?} outside [{lo}, {hi}) \
                 (+{JITTER_MS} ms jitter)"
            )
        });

    let (mut v_sum, mut a_sum) = (0u64, 0u64);
    let mut hashes: Vec<Packet> = Vec::new();
    for (i, (path, flv)) in chunks.iter().zip(&flvs).enumerate() {
        check_chunk_layout(flv, i == 0);
        let (v, a) = count_packets(path);
        v_sum += v;
        a_sum += a;
        hashes.extend(packets::read(path));
    }
    assert_eq!(
        (v_sum, a_sum),
        count_packets(reference),
        "packets (video, audio) summed over chunks vs the reference"
    );
    let got = packets::by_stream(&hashes);
    let want = packets::by_stream(&packets::read(reference));
    for (stream, want_list) in &want {
        let got_list = got.get(stream).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(k) =
            (0..want_list.len().max(got_list.len())).find(|&k| want_list.get(k) != got_list.get(k))
        {
            panic!(
                "stream {stream}: packet {k} differs (chunks {:?}, reference {:?}); {} vs {} \
                 packets",
                got_list.get(k),
                want_list.get(k),
                got_list.len(),
                want_list.len()
            );
        }
    }
    assert_eq!(got.len(), want.len(), "streams in chunks vs reference");
    eprintln!(
        "{} chunks match the reference ({v_sum} video, {a_sum} audio packets), split at video \
         frames {starts:?}, durations {:?} ms by {:?}",
        chunks.len(),
        reading.durations(&timeline),
        reading.clock
    );
    Splits {
        reading,
        starts,
        timeline,
    }
}

/// The chunks' packets, stream by stream, are the first packets of the reference: nothing lost
/// or changed up to where the stream was cut.
pub fn assert_prefix_of_reference(chunks: &[PathBuf], reference: &Path) {
    let mut hashes = Vec::new();
    for c in chunks {
        hashes.extend(packets::read(c));
    }
    let got = packets::by_stream(&hashes);
    let want: BTreeMap<u32, Vec<(u64, String)>> = packets::by_stream(&packets::read(reference));
    assert_eq!(got.len(), 2, "chunks hold {} streams", got.len());
    for (stream, list) in &got {
        let reference_list = &want[stream];
        assert!(
            list.len() <= reference_list.len(),
            "stream {stream}: {} packets recorded, the publisher sent {}",
            list.len(),
            reference_list.len()
        );
        if let Some(k) = (0..list.len()).find(|&k| list[k] != reference_list[k]) {
            panic!("stream {stream}: packet {k} differs from the reference");
        }
    }
}

/// Everything the publish tests check of chunks recorded from one publish: the media checks
/// against the reference, then names and the metadata chain.
pub fn check_chunks_against_reference(
    chunks: &[PathBuf],
    reference: &Path,
    app: &str,
    label: &str,
) {
    let splits = check_chunks_media(chunks, reference);
    let mut prev_stem = String::new();
    for (i, path) in chunks.iter().enumerate() {
        let seq = i + 1;
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let stem = name.strip_suffix(".flv").expect(".flv name").to_string();
        check_chunk_name(&stem, app, label, seq);
        let meta = Flv::read(path)
            .metadata()
            .unwrap_or_else(|| panic!("{name}: no onMetaData"));
        assert_eq!(
            meta.get("rtmpRecorderSequence"),
            Some(&Amf::Number(seq as f64)),
            "{name}: rtmpRecorderSequence"
        );
        assert_eq!(
            meta.get("rtmpRecorderPrevious"),
            Some(&Amf::Str(prev_stem.clone())),
            "{name}: rtmpRecorderPrevious"
        );
        match meta.get("rtmpRecorderUtcStart") {
            Some(Amf::Str(s)) => {
                assert!(
                    s.len() >= 20 && s.as_bytes()[4] == b'-' && s.contains('T') && s.ends_with('Z'),
                    "{name}: rtmpRecorderUtcStart {s:?} is not RFC 3339 UTC"
                );
                // The same instant as the name's start: 2026-11-26T03:27:59.123Z is
                // 20261126T032759.123Z.
                let compact: String = s.chars().filter(|c| *c != '-' && *c != ':').collect();
                assert_eq!(
                    compact,
                    stem[..20],
                    "{name}: rtmpRecorderUtcStart {s:?} vs the name's start"
                );
            }
            other => panic!("{name}: rtmpRecorderUtcStart is {other:?}"),
        }
        // The chunk's place in the stream, by the reference's own clock (either reading of
        // "stream start" is within 150 ms).
        let t = &splits.timeline;
        let clock = splits.reading.clock;
        let expect = (t[splits.starts[i]].at(clock) - t[0].at(clock)) as f64;
        match meta.get("rtmpRecorderStreamOffsetMs") {
            Some(Amf::Number(ms)) => assert!(
                (ms - expect).abs() <= 150.0,
                "{name}: rtmpRecorderStreamOffsetMs {ms}, the reference says ~{expect}"
            ),
            other => panic!("{name}: rtmpRecorderStreamOffsetMs is {other:?}"),
        }
        prev_stem = stem;
    }
}

/// `{UTC start}_{app}_{label}_{seq:06}-{node}` with a plausible fixed-width UTC start (the node
/// holds no `_`).
pub fn check_chunk_name(stem: &str, app: &str, label: &str, seq: usize) {
    let tail = format!("_{app}_{label}_{seq:06}");
    // The node follows the sequence after a `-` and holds no `_`.
    let name = stem;
    let (stem, node) = name
        .rfind('_')
        .and_then(|last| name[last..].find('-').map(|dash| last + dash))
        .map_or((name, ""), |dash| (&name[..dash], &name[dash + 1..]));
    assert!(
        !node.is_empty(),
        "chunk {name:?} does not end with -{{node}}"
    );
    assert!(
        stem.ends_with(&tail),
        "chunk {stem:?} does not end with {tail:?}"
    );
    let start = &stem[..stem.len() - tail.len()];
    // e.g. 20261126T032759.123Z
    assert!(
        start.len() == 20
            && start.as_bytes()[8] == b'T'
            && start.ends_with('Z')
            && start[..8].bytes().all(|b| b.is_ascii_digit()),
        "chunk {stem:?}: start {start:?} is not a compact UTC time"
    );
}
