//! A small HTTP/1.1 fault-injecting proxy (std threads) between the uploader and a real S3
//! server. It serves one request per connection (it forces `Connection: close`), so every
//! request can get its own fate: forwarded, answered with an injected error, cut in the middle
//! of its body, or swallowed (accepted and never answered).

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer `500 InternalError` without forwarding.
    Status500,
    /// Answer `503 SlowDown` without forwarding.
    SlowDown,
    /// Forward the head and half of the body, then close both sides.
    CutMidBody,
    /// Accept and never answer.
    Blackhole,
}

/// A fault and which requests it may hit.
#[derive(Debug, Clone, Copy)]
pub struct Planned {
    pub fault: Fault,
    /// Only requests whose body is at least this large.
    pub min_body: u64,
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    /// The fault applied, if any.
    pub fault: Option<Fault>,
    /// Upstream status for forwarded requests (0 if none was read).
    pub status: u16,
    /// Bytes of the upstream answer's body passed to the client.
    pub answer_body: u64,
}

pub struct Proxy {
    pub port: u16,
    plan: Arc<Mutex<VecDeque<Planned>>>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr, plan: Vec<Planned>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().unwrap().port();
        let plan = Arc::new(Mutex::new(VecDeque::from(plan)));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (plan, seen, stop) = (plan.clone(), seen.clone(), stop.clone());
            listener.set_nonblocking(true).unwrap();
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            let (plan, seen, stop) = (plan.clone(), seen.clone(), stop.clone());
                            thread::spawn(move || {
                                let _ = serve(client, upstream, &plan, &seen, &stop);
                            });
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        Proxy {
            port,
            plan,
            seen,
            stop,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pending(&self) -> usize {
        self.plan.lock().unwrap().len()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Requests answered so far.
    pub fn answered(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}

fn serve(
    mut client: TcpStream,
    upstream: SocketAddr,
    plan: &Mutex<VecDeque<Planned>>,
    seen: &Mutex<Vec<Seen>>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut body_len = 0u64;
    let mut expect_continue = false;
    let mut kept_headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            body_len = v.trim().parse().unwrap_or(0);
        }
        if lower.starts_with("expect:") && lower.contains("100-continue") {
            expect_continue = true;
        }
        if !lower.starts_with("connection:") {
            kept_headers.push(line.to_string());
        }
    }
    let fault = {
        let mut plan = plan.lock().unwrap();
        let idx = plan.iter().position(|p| body_len >= p.min_body);
        idx.and_then(|i| plan.remove(i)).map(|p| p.fault)
    };
    let mut record = Seen {
        method,
        target,
        fault,
        status: 0,
        answer_body: 0,
    };
    let early_body = buf[head_end..].to_vec();
    match fault {
        Some(Fault::Status500) | Some(Fault::SlowDown) => {
            if !expect_continue {
                // Consume the body so the client reads our answer rather than a reset.
                let mut left = body_len.saturating_sub(early_body.len() as u64);
                while left > 0 {
                    let n = client.read(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    left = left.saturating_sub(n as u64);
                }
            }
            let (status, code) = if fault == Some(Fault::SlowDown) {
                ("503 Slow Down", "SlowDown")
            } else {
                ("500 Internal Server Error", "InternalError")
            };
            let body = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            client.write_all(resp.as_bytes())?;
            let _ = client.shutdown(Shutdown::Both);
        }
        Some(Fault::Blackhole) => {
            client.set_read_timeout(Some(Duration::from_millis(200)))?;
            while !stop.load(Ordering::Relaxed) {
                match client.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(_) => {}
                    Err(e)
                        if e.kind() == std::io::ErrorKind::WouldBlock
                            || e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => break,
                }
            }
        }
        None | Some(Fault::CutMidBody) => {
            let mut up = TcpStream::connect(upstream)?;
            let mut new_head = format!("{request_line}\r\n");
            for h in &kept_headers {
                new_head.push_str(h);
                new_head.push_str("\r\n");
            }
            new_head.push_str("Connection: close\r\n\r\n");
            up.write_all(new_head.as_bytes())?;
            let limit = if fault == Some(Fault::CutMidBody) {
                body_len / 2
            } else {
                u64::MAX
            };
            let mut sent = 0u64;
            let first = &early_body[..early_body.len().min(limit as usize)];
            up.write_all(first)?;
            sent += first.len() as u64;
            // Upstream to client in a second thread, noting the status line.
            let mut up_read = up.try_clone()?;
            let mut client_write = client.try_clone()?;
            let answer = thread::spawn(move || {
                let mut status = 0u16;
                let mut b = [0u8; 65536];
                // The answer's head, until its end is seen; then body bytes are counted.
                let mut head: Option<Vec<u8>> = Some(Vec::new());
                let mut body = 0u64;
                loop {
                    match up_read.read(&mut b) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            match head.as_mut() {
                                Some(h) => {
                                    h.extend_from_slice(&b[..n]);
                                    if let Some(end) = find_head_end(h) {
                                        body += (h.len() - end) as u64;
                                        head = None;
                                    }
                                }
                                None => body += n as u64,
                            }
                            if status == 0 || status == 100 {
                                let text = String::from_utf8_lossy(&b[..n.min(64)]).into_owned();
                                if let Some(code) = text
                                    .strip_prefix("HTTP/1.1 ")
                                    .and_then(|r| r.get(..3))
                                    .and_then(|c| c.parse().ok())
                                {
                                    status = code;
                                }
                            }
                            if client_write.write_all(&b[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = client_write.shutdown(Shutdown::Both);
                (status, body)
            });
            loop {
                if sent >= limit {
                    break;
                }
                let n = match client.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let take = (n as u64).min(limit - sent) as usize;
                if up.write_all(&chunk[..take]).is_err() {
                    break;
                }
                sent += take as u64;
            }
            if fault == Some(Fault::CutMidBody) {
                let _ = up.shutdown(Shutdown::Both);
                let _ = client.shutdown(Shutdown::Both);
            }
            (record.status, record.answer_body) = answer.join().unwrap_or((0, 0));
        }
    }
    seen.lock().unwrap().push(record);
    Ok(())
}
