//! A real browser plays our MP4: Debian's chromium, headless, loads a page from a tiny HTTP
//! server in this test (Range requests honoured, as any CDN or S3 does) with a muted autoplay
//! `<video>` of a remuxed chunk. After ~2 s of playback the page posts readyState, duration and
//! currentTime back to the server; we assert it played, and that the browser fetched the MP4 with
//! Range requests answered 206 (as it does from a CDN or S3).

mod remux_common;
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use remux_common::*;

const PAGE: &str = r#"<!doctype html>
<html><body>
<video id="v" src="/chunk.mp4" muted autoplay playsinline></video>
<script>
const v = document.getElementById('v');
function report(extra) {
  const r = {readyState: v.readyState, duration: v.duration, currentTime: v.currentTime,
             error: v.error ? v.error.code : 0, width: v.videoWidth, height: v.videoHeight, ...extra};
  fetch('/result', {method: 'POST', body: JSON.stringify(r)});
}
v.addEventListener('error', () => report({event: 'error'}));
v.addEventListener('playing', () => setTimeout(() => report({event: 'played'}), 2000), {once: true});
setTimeout(() => report({event: 'timeout'}), 20000);
</script>
</body></html>"#;

/// A request for the MP4: its `Range:` header, if any, and the status it was answered with.
#[derive(Debug, Clone)]
struct Fetch {
    range: Option<String>,
    status: u16,
}

/// Serves one connection: `/` is the page, `/chunk.mp4` the file (with Range, each request
/// noted in `fetches`), POST `/result` hands its body to `results`.
fn serve(
    mut stream: TcpStream,
    mp4: &Path,
    results: &mpsc::Sender<String>,
    fetches: &Mutex<Vec<Fetch>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).unwrap_or(0) == 0 {
        return;
    }
    let mut range: Option<(u64, Option<u64>)> = None;
    let mut range_header = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("range:") {
            range_header = Some(line.trim().to_string());
        }
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            let (a, b) = v.trim().split_once('-').unwrap_or((v.trim(), ""));
            range = a.parse().ok().map(|a| (a, b.parse().ok()));
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let reply = |stream: &mut TcpStream, status: &str, kind: &str, extra: &str, body: &[u8]| {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    };
    match path.as_str() {
        "/" => reply(&mut stream, "200 OK", "text/html", "", PAGE.as_bytes()),
        "/chunk.mp4" => {
            let data = std::fs::read(mp4).unwrap();
            let total = data.len() as u64;
            let status = match range {
                Some((start, _)) if start < total => 206,
                Some(_) => 416,
                None => 200,
            };
            fetches.lock().unwrap().push(Fetch {
                range: range_header,
                status,
            });
            match range {
                Some((start, end)) if start < total => {
                    let end = end.unwrap_or(total - 1).min(total - 1);
                    let extra = format!("Content-Range: bytes {start}-{end}/{total}\r\n");
                    let body = &data[start as usize..=end as usize];
                    reply(
                        &mut stream,
                        "206 Partial Content",
                        "video/mp4",
                        &extra,
                        body,
                    );
                }
                Some(_) => reply(
                    &mut stream,
                    "416 Range Not Satisfiable",
                    "text/plain",
                    "",
                    b"",
                ),
                None => reply(&mut stream, "200 OK", "video/mp4", "", &data),
            }
        }
        "/result" => {
            let mut body = vec![0u8; content_length];
            let _ = reader.read_exact(&mut body);
            let _ = results.send(String::from_utf8_lossy(&body).into_owned());
            reply(&mut stream, "200 OK", "text/plain", "", b"ok");
        }
        _ => reply(&mut stream, "404 Not Found", "text/plain", "", b""),
    }
}

fn remuxed_chunk(dir: &Path) -> PathBuf {
    let flv = dir.join("in.flv");
    encode(
        &flv,
        AV_640X360,
        &[
            "-t",
            "5",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "high",
            "-bf",
            "3",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            "-ar",
            "48000",
        ],
    );
    remux_one(dir, &flv).0
}

#[test]
fn chromium_plays_the_remuxed_chunk() {
    ensure_apt("chromium", "chromium");
    let dir = tempfile::tempdir().unwrap();
    let mp4 = remuxed_chunk(dir.path());

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let fetches = Arc::new(Mutex::new(Vec::new()));
    let served = mp4.clone();
    let noted = fetches.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (mp4, tx, noted) = (served.clone(), tx.clone(), noted.clone());
            std::thread::spawn(move || serve(stream, &mp4, &tx, &noted));
        }
    });

    let profile = dir.path().join("profile");
    let mut chromium = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let result = rx.recv_timeout(Duration::from_secs(60));
    let _ = chromium.kill();
    let _ = chromium.wait();
    let result = result.expect("the page never reported back");
    let r: serde_json::Value = serde_json::from_str(&result).unwrap();
    eprintln!("chromium reported: {r}");
    assert_eq!(r["event"], "played", "{r}");
    assert_eq!(r["error"], 0, "{r}");
    assert_eq!(r["readyState"], 4, "{r}");
    assert_eq!(r["width"], 640, "{r}");
    let duration = r["duration"].as_f64().unwrap();
    assert!((4.9..=5.2).contains(&duration), "duration {duration}: {r}");
    let t = r["currentTime"].as_f64().unwrap();
    assert!(t >= 1.0, "playback did not advance: {r}");
    let fetches = fetches.lock().unwrap().clone();
    eprintln!("MP4 requests: {fetches:?}");
    assert!(
        fetches.iter().any(|f| f.range.is_some() && f.status == 206),
        "the browser never fetched the MP4 with a Range request answered 206: {fetches:?}"
    );
}
