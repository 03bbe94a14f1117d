//! An RTMP connection the test can cut off: a TCP proxy (std threads) between one publisher and
//! ingest that forwards both ways and reads the publisher's bytes with the crate's chunk reader,
//! counting the audio and video frames it has passed on whole. `cut` stops forwarding, lets
//! ingest read what it was given, then resets both sides (RST, as a network failure or an
//! encoder's crash looks to a server), and says exactly which frames ingest got.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use rtmp_recorder::rtmp::chunk_reader::ChunkReader;

/// C0 + C1 + C2: the publisher's handshake, before its chunk stream.
const HANDSHAKE: usize = 1 + 1536 + 1536;

/// Frames (not sequence headers) the proxy passed on whole.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Passed {
    pub video: usize,
    pub audio: usize,
}

pub struct CutProxy {
    pub port: u16,
    cutting: Arc<AtomicBool>,
    passed: Arc<Mutex<Passed>>,
    sockets: Arc<Mutex<Option<(TcpStream, TcpStream)>>>,
}

impl CutProxy {
    /// Accepts one publisher on a fresh port and connects it to `upstream`.
    pub fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("cut proxy bind");
        let port = listener.local_addr().unwrap().port();
        let cutting = Arc::new(AtomicBool::new(false));
        let passed = Arc::new(Mutex::new(Passed::default()));
        let sockets = Arc::new(Mutex::new(None));
        let (c, p, s) = (cutting.clone(), passed.clone(), sockets.clone());
        thread::spawn(move || {
            let Ok((client, _)) = listener.accept() else {
                return;
            };
            let server = TcpStream::connect(upstream).expect("cut proxy: connecting to ingest");
            *s.lock().unwrap() = Some((client.try_clone().unwrap(), server.try_clone().unwrap()));
            let (back_from, back_to) = (server.try_clone().unwrap(), client.try_clone().unwrap());
            thread::spawn(move || copy_back(back_from, back_to));
            forward(client, server, &c, &p);
        });
        CutProxy {
            port,
            cutting,
            passed,
            sockets,
        }
    }

    pub fn url(&self, app: &str, key: &str) -> String {
        format!("rtmp://127.0.0.1:{}/{app}/{key}", self.port)
    }

    pub fn passed(&self) -> Passed {
        *self.passed.lock().unwrap()
    }

    /// Stops forwarding, gives ingest `settle` to read what it already has, then resets both
    /// connections. Returns the frames ingest was given whole.
    pub fn cut(&self, settle: Duration) -> Passed {
        self.cutting.store(true, Ordering::SeqCst);
        // The forwarder checks the flag before each write; one in progress ends first.
        thread::sleep(Duration::from_millis(50));
        let passed = self.passed();
        thread::sleep(settle);
        if let Some((client, server)) = self.sockets.lock().unwrap().take() {
            for s in [&server, &client] {
                reset(s);
            }
        }
        passed
    }
}

/// Aborts the connection of `s` with an RST, whoever else holds its descriptor: connecting a
/// TCP socket to `AF_UNSPEC` disconnects it, and an established one is reset (Linux
/// `tcp_disconnect`), where a close would wait for the last descriptor and send a FIN.
fn reset(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let unspec = libc::sockaddr {
        sa_family: libc::AF_UNSPEC as libc::sa_family_t,
        sa_data: [0; 14],
    };
    // SAFETY: a valid socket descriptor and a `sockaddr` of the size passed.
    let rc = unsafe {
        libc::connect(
            s.as_raw_fd(),
            &unspec,
            std::mem::size_of::<libc::sockaddr>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "disconnecting: {}", std::io::Error::last_os_error());
}

/// Publisher to ingest, counting whole frames, until the cut.
fn forward(
    mut client: TcpStream,
    mut server: TcpStream,
    cutting: &AtomicBool,
    passed: &Mutex<Passed>,
) {
    let mut reader = ChunkReader::new(16 << 20, 64);
    let mut skip = HANDSHAKE;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cutting.load(Ordering::SeqCst) {
            break;
        }
        if server.write_all(&buf[..n]).is_err() {
            break;
        }
        let from = skip.min(n);
        skip -= from;
        let mut input = &buf[from..n];
        while let Ok(Some(m)) = reader.read(&mut input) {
            match m.type_id {
                1 if m.payload.len() >= 4 => {
                    let size = u32::from_be_bytes(m.payload[..4].try_into().unwrap()) & 0x7fff_ffff;
                    reader.set_chunk_size(size);
                }
                // AVC and AAC packets whose second byte is 0 are sequence headers, not frames.
                8 | 9 if m.payload.len() >= 2 && m.payload[1] != 0 => {
                    let mut p = passed.lock().unwrap();
                    if m.type_id == 9 {
                        p.video += 1;
                    } else {
                        p.audio += 1;
                    }
                }
                _ => {}
            }
        }
    }
    // The publisher may end on its own (a close is then what it sent, and passes on as one).
    if !cutting.load(Ordering::SeqCst) {
        let _ = server.shutdown(Shutdown::Write);
    }
}

/// Ingest's replies to the publisher.
fn copy_back(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
}
