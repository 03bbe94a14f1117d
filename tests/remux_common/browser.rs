//! A real browser on an MP4: Debian's chromium, headless, loads a page from a small HTTP server
//! run by the test, which serves the MP4 with Range requests honoured (as any CDN or S3 does).
//! The page POSTs a JSON report to `/result`; the server records every request it answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// One request the server answered: path, the Range header if any, and the status sent.
#[derive(Debug, Clone)]
pub struct Served {
    pub path: String,
    pub range: Option<String>,
    pub status: u16,
}

/// What the page reported, and every request made to get there.
pub struct Report {
    pub json: serde_json::Value,
    pub requests: Vec<Served>,
}

/// Loads `page` (HTML, served at `/`, with the MP4 at `/chunk.mp4`) in headless chromium and
/// returns the first report the page POSTs to `/result`; panics after `timeout`.
pub fn chromium_report(page: &'static str, mp4: &Path, timeout: Duration) -> Report {
    crate::support::ensure_apt("chromium", "chromium");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let served = mp4.to_path_buf();
    let server_log = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (mp4, tx, log) = (served.clone(), tx.clone(), Arc::clone(&server_log));
            std::thread::spawn(move || serve(stream, page, &mp4, &tx, &log));
        }
    });

    let profile = tempfile::tempdir().unwrap();
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
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromium");
    let result = rx.recv_timeout(timeout);
    let _ = chromium.kill();
    let _ = chromium.wait();
    let result = result.expect("the page never reported back");
    let requests = log.lock().unwrap().clone();
    Report {
        json: serde_json::from_str(&result).unwrap(),
        requests,
    }
}

/// Serves one connection: `/` is the page, `/chunk.mp4` the file (with Range), POST
/// `/result` hands its body to `results`.
fn serve(
    mut stream: TcpStream,
    page: &str,
    mp4: &Path,
    results: &mpsc::Sender<String>,
    log: &Mutex<Vec<Served>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).unwrap_or(0) == 0 {
        return;
    }
    let mut range_header = None;
    let mut range: Option<(u64, Option<u64>)> = None;
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            range_header = Some(v.trim().to_string());
            let (a, b) = v.trim().split_once('-').unwrap_or((v.trim(), ""));
            range = a.parse().ok().map(|a| (a, b.parse().ok()));
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let reply = |stream: &mut TcpStream, status: u16, kind: &str, extra: &str, body: &[u8]| {
        let reason = match status {
            200 => "OK",
            206 => "Partial Content",
            416 => "Range Not Satisfiable",
            _ => "Not Found",
        };
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nAccept-Ranges: bytes\r\n{extra}Connection: close\r\n\r\n",
            body.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
        log.lock().unwrap().push(Served {
            path: path.clone(),
            range: range_header.clone(),
            status,
        });
    };
    match path.as_str() {
        "/" => reply(&mut stream, 200, "text/html", "", page.as_bytes()),
        "/chunk.mp4" => {
            let data = std::fs::read(mp4).unwrap();
            let total = data.len() as u64;
            match range {
                Some((start, end)) if start < total => {
                    let end = end.unwrap_or(total - 1).min(total - 1);
                    let extra = format!("Content-Range: bytes {start}-{end}/{total}\r\n");
                    let body = &data[start as usize..=end as usize];
                    reply(&mut stream, 206, "video/mp4", &extra, body);
                }
                Some(_) => reply(&mut stream, 416, "text/plain", "", b""),
                None => reply(&mut stream, 200, "video/mp4", "", &data),
            }
        }
        "/result" => {
            let mut body = vec![0u8; content_length];
            let _ = reader.read_exact(&mut body);
            let _ = results.send(String::from_utf8_lossy(&body).into_owned());
            reply(&mut stream, 200, "text/plain", "", b"ok");
        }
        _ => reply(&mut stream, 404, "text/plain", "", b""),
    }
}
