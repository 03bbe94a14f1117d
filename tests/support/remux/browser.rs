//! A real browser on an MP4: Debian's chromium, headless, loads a page from a small HTTP server
//! run by the test, which serves the MP4 with Range requests honoured (as any CDN or S3 does), or
//! passes every other path on to a server under test (same origin, so the page can look into
//! what that server answered). The page POSTs a JSON report to `/result`; the server records
//! every request it answered, with the status the answer carried.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
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
    run_chromium(page, Backend::File(mp4.to_path_buf()), timeout)
}

/// Loads `page` (served at `/`) in headless chromium; every path but `/` and `/result` is
/// passed on to the HTTP server on 127.0.0.1:`upstream`. Returns the first report.
pub fn chromium_report_via(page: &'static str, upstream: u16, timeout: Duration) -> Report {
    run_chromium(page, Backend::Upstream(upstream), timeout)
}

/// What answers the paths other than the page and `/result`.
#[derive(Clone)]
enum Backend {
    /// `/chunk.mp4` is this file.
    File(std::path::PathBuf),
    /// Everything goes to this port.
    Upstream(u16),
}

fn run_chromium(page: &'static str, backend: Backend, timeout: Duration) -> Report {
    crate::support::ensure_apt("chromium", "chromium");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let server_log = Arc::clone(&log);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (backend, tx, log) = (backend.clone(), tx.clone(), Arc::clone(&server_log));
            std::thread::spawn(move || serve(stream, page, &backend, &tx, &log));
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
    backend: &Backend,
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
    let mut head_lines = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        head_lines.push(line.clone());
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
    match (path.as_str(), backend) {
        ("/", _) => reply(&mut stream, 200, "text/html", "", page.as_bytes()),
        ("/result", _) => {
            let mut body = vec![0u8; content_length];
            let _ = reader.read_exact(&mut body);
            let _ = results.send(String::from_utf8_lossy(&body).into_owned());
            reply(&mut stream, 200, "text/plain", "", b"ok");
        }
        (_, Backend::Upstream(port)) => {
            let status = pass_on(&mut stream, *port, &request, &head_lines);
            log.lock().unwrap().push(Served {
                path: path.clone(),
                range: range_header.clone(),
                status,
            });
        }
        ("/chunk.mp4", Backend::File(mp4)) => {
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
        _ => reply(&mut stream, 404, "text/plain", "", b""),
    }
}

/// Sends a GET as the browser made it (one request per connection) to 127.0.0.1:`port` and
/// copies the answer back byte for byte; returns the answer's status.
fn pass_on(client: &mut TcpStream, port: u16, request_line: &str, head: &[String]) -> u16 {
    let mut upstream = TcpStream::connect(("127.0.0.1", port)).expect("connecting upstream");
    let mut out = request_line.to_string();
    for line in head {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    upstream.write_all(out.as_bytes()).unwrap();
    let mut answer = Vec::new();
    let _ = upstream.read_to_end(&mut answer);
    let status = String::from_utf8_lossy(&answer[..answer.len().min(16)])
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let _ = client.write_all(&answer);
    let _ = client.shutdown(Shutdown::Both);
    status
}
