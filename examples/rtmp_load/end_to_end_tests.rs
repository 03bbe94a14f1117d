//! The load tool against real parts: an ffmpeg-made FLV, ffprobe as the second opinion on frame
//! counts, and a real nginx-rtmp recording what we publish (`cargo test --example rtmp_load`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::flv_tags;
use crate::publisher::{self, Plan, Target};
use crate::source::Source;

/// A short H.264 + AAC FLV, as an encoder would publish it.
fn make_flv(dir: &Path, seconds: u32) -> PathBuf {
    let out = dir.join("in.flv");
    let status = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"])
        .args(["-t", &seconds.to_string()])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-g", "25"])
        .args(["-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv"])
        .arg(&out)
        .status()
        .expect("ffmpeg must be installed (apt-get install ffmpeg)");
    assert!(status.success(), "ffmpeg failed: {status}");
    out
}

fn ffprobe_packets(file: &Path) -> u64 {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_packets", "-show_entries"])
        .args(["stream=nb_read_packets", "-of", "csv=p=0"])
        .arg(file)
        .output()
        .expect("ffprobe must be installed");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().parse::<u64>().expect("ffprobe packet count"))
        .sum()
}

#[test]
fn frame_count_agrees_with_ffprobe() {
    let dir = tempfile::tempdir().unwrap();
    let flv = make_flv(dir.path(), 2);
    let data = std::fs::read(&flv).unwrap();
    let ours = flv_tags::count_media_frames(&data).unwrap();
    assert!(ours > 50, "2 s at 25 fps plus audio, got {ours}");
    assert_eq!(ours, ffprobe_packets(&flv));
    let source = Source::parse(data).unwrap();
    assert_eq!(source.frames_per_pass, ours);
    assert_eq!(source.metadata.video_width, Some(320));
    assert!(
        (1990..=2100).contains(&source.period_ms),
        "{}",
        source.period_ms
    );
}

#[test]
fn urls() {
    let t = Target::parse("rtmp://127.0.0.1:1936/live").unwrap();
    assert_eq!(
        (t.address.as_str(), t.app.as_str()),
        ("127.0.0.1:1936", "live")
    );
    let t = Target::parse("rtmp://example.org/live/").unwrap();
    assert_eq!(t.address, "example.org:1935");
    assert_eq!(t.tc_url, "rtmp://example.org/live");
    assert!(Target::parse("http://x/live").is_err());
    assert!(Target::parse("rtmp://x").is_err());
}

/// nginx-rtmp recording every stream to `rec/`, stopped by PID on drop.
struct Nginx {
    child: Child,
    port: u16,
    rec: PathBuf,
}

impl Nginx {
    fn start(dir: &Path) -> Nginx {
        use std::os::unix::fs::PermissionsExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let rec = dir.join("rec");
        std::fs::create_dir(&rec).unwrap();
        // Started as root, the worker runs as nobody and must reach and write the folder.
        for (p, mode) in [(dir, 0o755), (rec.as_path(), 0o777)] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let d = dir.display();
        let conf = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             worker_processes 1; error_log {d}/error.log; pid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             rtmp {{ access_log off; server {{ listen 127.0.0.1:{port}; chunk_size 4096;\n\
             application live {{ live on; record all; record_path {}; }} }} }}\n",
            rec.display()
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .expect("nginx must be installed (apt-get install nginx libnginx-mod-rtmp)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { child, port, rec }
    }

    fn recorded_frames(&self, key: &str) -> u64 {
        let data = std::fs::read(self.rec.join(format!("{key}.flv"))).unwrap();
        flv_tags::count_media_frames(&data).unwrap()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn plan(flv: &Path, repeat: u32, realtime: bool) -> Arc<Plan> {
    Arc::new(Plan {
        source: Arc::new(Source::parse(std::fs::read(flv).unwrap()).unwrap()),
        repeat,
        realtime,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_records_every_frame_we_publish() {
    let dir = tempfile::tempdir().unwrap();
    let flv = make_flv(dir.path(), 2);
    let nginx = Nginx::start(dir.path());
    let target = Arc::new(Target::parse(&format!("rtmp://127.0.0.1:{}/live", nginx.port)).unwrap());

    let full = plan(&flv, 3, false);
    let per_stream = full.source.frames_per_pass * 3;
    let tasks: Vec<_> = (0..3)
        .map(|i| {
            tokio::spawn(publisher::publish(
                target.clone(),
                format!("fs{i}"),
                full.clone(),
            ))
        })
        .collect();
    let realtime = plan(&flv, 1, true);
    let started = Instant::now();
    let rt = publisher::publish(target.clone(), "rt".into(), realtime.clone()).await;
    let rt_elapsed = started.elapsed();

    assert_eq!(rt.error, None);
    assert!(
        rt_elapsed >= Duration::from_millis(u64::from(realtime.source.period_ms) - 100),
        "real time must take the media's duration, took {rt_elapsed:?}"
    );
    assert_eq!(rt.frames_sent, realtime.source.frames_per_pass);
    assert_eq!(nginx.recorded_frames("rt"), rt.frames_sent);
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.error, None, "{}", r.key);
        assert_eq!(r.frames_sent, per_stream);
        assert!(r.bytes_sent > 3 * full.source.file_bytes * 9 / 10);
        assert_eq!(nginx.recorded_frames(&r.key), per_stream, "{}", r.key);
    }
}

#[tokio::test]
async fn failures_name_the_stream_and_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let flv = make_flv(dir.path(), 1);
    let nginx = Nginx::start(dir.path());
    let p = plan(&flv, 1, false);

    let wrong_app =
        Arc::new(Target::parse(&format!("rtmp://127.0.0.1:{}/nope", nginx.port)).unwrap());
    let r = publisher::publish(wrong_app, "k1".into(), p.clone()).await;
    let e = r.error.expect("nginx has no application `nope`");
    assert!(e.contains("k1") && e.contains("connect"), "{e}");
    assert_eq!(r.frames_sent, 0);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody = Arc::new(Target::parse(&format!("rtmp://127.0.0.1:{port}/live")).unwrap());
    let r = publisher::publish(nobody, "k2".into(), p).await;
    let e = r.error.expect("nothing listens there");
    assert!(e.contains("k2") && e.contains("connecting"), "{e}");
}
