//! RTMPS: TLS in front of the same RTMP sessions as the plain port. The certificate and key are
//! read at start and again whenever either file changes (device, inode, size, mtime or ctime
//! differ: certbot's renewal swaps symlinks, `cp` rewrites in place), checked at each new TLS
//! connection, so a renewed certificate is served to the next connection without a restart. A
//! changed pair that is not usable is refused once, logged with the reason, and the previous one
//! keeps being served. A renewal replaces the two files one after the other, so a pair changed
//! within the last [`SETTLE`] that does not fit together yet is only noted at debug and read
//! again by the next connection: no error line for a renewal that goes right.
//!
//! The served certificate's expiry is logged at start and at each change, and again at most
//! once a day from [`EXPIRY_WARNING`] before it (an error once it has expired); `/metrics`
//! exports it and counts failed handshakes.
//!
//! The handshake runs inside the RTMP session's own clock: [`TlsStream`] does it on the
//! session's first read, so the TLS handshake counts against `--handshake-timeout` like the
//! RTMP one, and a connection slot held by a silent TLS client is freed at the same deadline.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::status::Stats;
use crate::quieted::Quieted;
use crate::tls_identity::{self, Culprit, Identity};

/// How long after a change the files may still be half-way through a renewal.
const SETTLE: Duration = Duration::from_secs(2);
/// From this long before the certificate expires, a warning each day (certbot renews 30 days
/// ahead, so a certificate this close to its end means renewal is failing).
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);
/// How often the expiry warning repeats.
const EXPIRY_REPEAT: Duration = Duration::from_secs(24 * 3600);

/// The certificate and key files, and what is served from them.
pub struct Rtmps {
    cert: PathBuf,
    key: PathBuf,
    current: tokio::sync::Mutex<Current>,
    /// Since when, and when a warning about failed handshakes is due.
    failures: Mutex<(Instant, Quieted)>,
    stats: Arc<Stats>,
}

struct Current {
    acceptor: TlsAcceptor,
    fingerprint: String,
    /// The files as they were when the served identity was read from them.
    serving: Stamp,
    /// The files as they were when they last could not be used: not read or logged again
    /// until they change.
    refused: Option<Stamp>,
    not_after: Option<i64>,
    /// When the expiry was last warned about.
    expiry_warned: Option<Instant>,
}

/// What to say about a certificate expiring at `not_after` (Unix seconds) at `now`: an error
/// once it has expired, a warning within [`EXPIRY_WARNING`] of it, else nothing.
fn expiry_notice(not_after: i64, now: i64) -> Option<(log::Level, String)> {
    let left = not_after - now;
    if left <= 0 {
        Some((
            log::Level::Error,
            format!(
                "RTMPS: the served certificate expired {} ago: clients that check dates refuse                  it. To fix: renew it (certbot renew) and put the new files in place; they are                  read at the next connection",
                days_or_hours(left.unsigned_abs())
            ),
        ))
    } else if left < EXPIRY_WARNING.as_secs() as i64 {
        Some((
            log::Level::Warn,
            format!(
                "RTMPS: the served certificate expires in {}: renewal seems to be failing.                  To fix: renew it (certbot renew) and put the new files in place; they are                  read at the next connection",
                days_or_hours(left.unsigned_abs())
            ),
        ))
    } else {
        None
    }
}

/// `13 days`, `5 hours`: how far an expiry is, as a person reads it.
fn days_or_hours(secs: u64) -> String {
    match secs / 3600 {
        h if h >= 48 => format!("{} days", h / 24),
        h => format!("{h} hours"),
    }
}

impl Current {
    /// Logs the expiry notice if one is due and was not given within [`EXPIRY_REPEAT`]
    /// (`force`: a new certificate is served, say it now).
    fn tell_expiry(&mut self, force: bool) {
        let Some(not_after) = self.not_after else {
            return;
        };
        let recent = self
            .expiry_warned
            .is_some_and(|at| at.elapsed() < EXPIRY_REPEAT);
        if recent && !force {
            return;
        }
        let now = crate::observe::unix_ms_now() / 1000;
        if let Some((level, text)) = expiry_notice(not_after, now as i64) {
            log::log!(level, "{text}");
            self.expiry_warned = Some(Instant::now());
        }
    }
}

/// What tells a changed file from the same one: device and inode (a symlink swapped to a new
/// target, a file renamed over), size and both times (rewritten in place).
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

/// Both files; `Err` holds why one could not be looked at (it is then compared as that text).
type Stamp = (Result<FileStamp, String>, Result<FileStamp, String>);

fn file_stamp(path: &Path) -> Result<FileStamp, String> {
    let m = std::fs::metadata(path).map_err(|e| e.to_string())?;
    Ok(FileStamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    (file_stamp(cert), file_stamp(key))
}

impl FileStamp {
    /// When the file last changed (written, or renamed into place).
    fn changed(&self) -> SystemTime {
        let (secs, nanos) = self.mtime.max(self.ctime);
        let since_epoch = Duration::new(secs.max(0) as u64, nanos.clamp(0, 999_999_999) as u32);
        SystemTime::UNIX_EPOCH + since_epoch
    }
}

/// Whether either file changed less than [`SETTLE`] before `now`.
fn settling(stamp: &Stamp, now: SystemTime) -> bool {
    [&stamp.0, &stamp.1].into_iter().flatten().any(|f| {
        now.duration_since(f.changed())
            .map_or(true, |age| age < SETTLE)
    })
}

/// Reads both files and builds the identity; the error names the file at fault and the problem.
fn read_identity(cert: &Path, key: &Path) -> Result<Identity, String> {
    let cert_pem = std::fs::read(cert)
        .map_err(|e| format!("reading the TLS certificate {}: {e}", cert.display()))?;
    let key_pem =
        std::fs::read(key).map_err(|e| format!("reading the TLS key {}: {e}", key.display()))?;
    tls_identity::from_pem(&cert_pem, &key_pem).map_err(|e| match e.culprit {
        Culprit::Certificate => format!("TLS certificate {}: {e}", cert.display()),
        Culprit::Key => format!("TLS key {}: {e}", key.display()),
        Culprit::Pair => format!(
            "TLS certificate {} and key {}: {e}",
            cert.display(),
            key.display()
        ),
    })
}

/// The stamp taken before reading, so a file changed while it was read is read again next time.
fn stamp_and_read(cert: &Path, key: &Path) -> (Stamp, Result<Identity, String>) {
    let before = stamp(cert, key);
    (before, read_identity(cert, key))
}

impl Rtmps {
    /// Reads the pair at start; a pair that is not usable is a configuration error (exit 2)
    /// naming the file and the problem.
    pub async fn load(cert: PathBuf, key: PathBuf, stats: Arc<Stats>) -> Result<Arc<Rtmps>> {
        let (c, k) = (cert.clone(), key.clone());
        let (serving, identity) = tokio::task::spawn_blocking(move || stamp_and_read(&c, &k))
            .await
            .context("TLS certificate task")?;
        let identity = identity.map_err(|e| {
            crate::exit::Coded::new(
                crate::exit::USAGE,
                format!("{e}; RTMPS needs a PEM certificate chain and its private key (--tls-cert, --tls-key)"),
            )
        })?;
        log::info!(
            "RTMPS: serving the certificate in {} ({} in the chain, SHA-256 fingerprint {}, \
             valid until {}); it is read again when the files change",
            cert.display(),
            identity.chain_len,
            identity.fingerprint,
            valid_until(identity.not_after)
        );
        stats.set_tls_not_after(identity.not_after);
        let mut current = Current {
            acceptor: TlsAcceptor::from(identity.config),
            fingerprint: identity.fingerprint,
            serving,
            refused: None,
            not_after: identity.not_after,
            expiry_warned: None,
        };
        current.tell_expiry(true);
        Ok(Arc::new(Rtmps {
            cert,
            key,
            current: tokio::sync::Mutex::new(current),
            failures: Mutex::new((Instant::now(), Quieted::new(WARN_EVERY))),
            stats,
        }))
    }

    /// Wraps an accepted connection; its TLS handshake runs on the session's first read.
    pub async fn wrap(self: &Arc<Self>, socket: TcpStream, peer: SocketAddr) -> TlsStream {
        let acceptor = self.acceptor().await;
        TlsStream {
            state: State::Handshaking(Box::new(acceptor.accept(socket))),
            peer,
            rtmps: self.clone(),
        }
    }

    /// The acceptor for a new connection: the files read again first if they changed.
    async fn acceptor(&self) -> TlsAcceptor {
        let mut current = self.current.lock().await;
        let (cert, key) = (self.cert.clone(), self.key.clone());
        let now = tokio::task::spawn_blocking(move || stamp(&cert, &key)).await;
        let Ok(now) = now else {
            return current.acceptor.clone();
        };
        current.tell_expiry(false);
        if now == current.serving || current.refused.as_ref() == Some(&now) {
            return current.acceptor.clone();
        }
        let (cert, key) = (self.cert.clone(), self.key.clone());
        let read = tokio::task::spawn_blocking(move || stamp_and_read(&cert, &key)).await;
        let Ok((stamp, read)) = read else {
            return current.acceptor.clone();
        };
        match read {
            Ok(identity) => {
                log::info!(
                    "RTMPS: the certificate files changed: new connections get the certificate \
                     with SHA-256 fingerprint {}, valid until {} (was {})",
                    identity.fingerprint,
                    valid_until(identity.not_after),
                    current.fingerprint
                );
                self.stats.set_tls_not_after(identity.not_after);
                *current = Current {
                    acceptor: TlsAcceptor::from(identity.config),
                    fingerprint: identity.fingerprint,
                    serving: stamp,
                    refused: None,
                    not_after: identity.not_after,
                    expiry_warned: None,
                };
                current.tell_expiry(true);
            }
            Err(e) if settling(&stamp, SystemTime::now()) => {
                log::debug!(
                    "RTMPS: the certificate files are changing ({e}); the previous certificate \
                     is served until they are both in place"
                );
            }
            Err(e) => {
                log::error!(
                    "RTMPS: the changed certificate files are not usable: {e}. New connections \
                     keep getting the previous certificate (SHA-256 fingerprint {}). To fix: \
                     put a PEM certificate chain and its private key in place; they are read \
                     again at the next connection",
                    current.fingerprint
                );
                current.refused = Some(stamp);
            }
        }
        current.acceptor.clone()
    }

    fn handshake_failed(&self, peer: SocketAddr, e: &io::Error) {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            // A load balancer's TCP health check connects and closes, every few seconds: no
            // failure to count or warn about.
            log::debug!(
                peer = peer.to_string().as_str();
                "RTMPS: closed before its TLS handshake finished (a TCP health check, or a client that gave up)"
            );
            return;
        }
        Stats::add(&self.stats.tls_handshake_failures, 1);
        log::debug!(peer = peer.to_string().as_str(); "RTMPS: TLS handshake failed: {e}");
        let due = self
            .failures
            .lock()
            .map(|mut f| {
                let since = f.0.elapsed();
                warning_due(&mut f.1, since)
            })
            .unwrap_or(None);
        if let Some(count) = due {
            log::warn!(
                peer = peer.to_string().as_str();
                "RTMPS: TLS handshake failed: {e} ({count} failed handshake(s) since the last \
                 such line; the others are logged at debug). A plain rtmp:// client on the \
                 RTMPS port, a client that does not trust the certificate, or a scanner"
            );
        }
    }
}

/// `2126-11-08T17:20:19.000Z`, or why there is no date.
fn valid_until(not_after: Option<i64>) -> String {
    not_after.map_or_else(
        || "an unreadable date".to_string(),
        |t| crate::utc::Civil::from_unix_millis(t.saturating_mul(1000)).rfc3339(),
    )
}

/// At most one warning per [`WARN_EVERY`] about failed handshakes, counting the rest: anyone
/// can open connections that fail, and each must not cost a warning line.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// `Some(failures the warning covers)`, this one included, when a warning is due at `now`.
fn warning_due(quieted: &mut Quieted, now: Duration) -> Option<u64> {
    quieted.note(now).map(|left_out| left_out + 1)
}

/// A TLS connection whose handshake happens on its first read or write. A failed handshake is
/// logged here (rate-limited; the TLS layer is the one that can say what went wrong), after
/// rustls has sent the peer its alert, and then reads as the end of the stream: the RTMP
/// session sees a peer that left before saying anything, and closes.
pub struct TlsStream {
    state: State,
    peer: SocketAddr,
    rtmps: Arc<Rtmps>,
}

enum State {
    Handshaking(Box<tokio_rustls::Accept<TcpStream>>),
    Open(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    Failed,
}

impl TlsStream {
    /// Drives the handshake; `Ready(Ok(true))` once open, `Ready(Ok(false))` once failed.
    fn poll_open(&mut self, cx: &mut Context<'_>) -> Poll<bool> {
        if let State::Handshaking(accept) = &mut self.state {
            match ready!(Pin::new(&mut **accept).poll(cx)) {
                Ok(stream) => self.state = State::Open(Box::new(stream)),
                Err(e) => {
                    self.rtmps.handshake_failed(self.peer, &e);
                    self.state = State::Failed;
                }
            }
        }
        Poll::Ready(matches!(self.state, State::Open(_)))
    }
}

impl AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !ready!(this.poll_open(cx)) {
            return Poll::Ready(Ok(()));
        }
        let State::Open(stream) = &mut this.state else {
            return Poll::Ready(Ok(()));
        };
        // rustls keeps what a write could not hand to the socket (a full send buffer) until
        // the next write or flush; the session only writes when it has something to say, so
        // every read pushes the rest out (and registers for writability when it cannot).
        if let Poll::Ready(Err(e)) = Pin::new(&mut **stream).poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut **stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !ready!(this.poll_open(cx)) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let State::Open(stream) = &mut this.state else {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        };
        let written = ready!(Pin::new(&mut **stream).poll_write(cx, buf))?;
        // See poll_read: get the records on their way now if the socket takes them.
        if let Poll::Ready(Err(e)) = Pin::new(&mut **stream).poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Open(stream) => Pin::new(&mut **stream).poll_flush(cx),
            _ => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().state {
            State::Open(stream) => Pin::new(&mut **stream).poll_shutdown(cx),
            _ => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_handshakes_warn_once_a_minute_with_their_count() {
        let mut log = Quieted::new(WARN_EVERY);
        let at = Duration::from_secs;
        assert_eq!(warning_due(&mut log, at(0)), Some(1));
        for s in 1..60 {
            assert_eq!(warning_due(&mut log, at(s)), None);
        }
        assert_eq!(warning_due(&mut log, at(60)), Some(60));
        assert_eq!(warning_due(&mut log, at(61)), None);
        assert_eq!(warning_due(&mut log, at(200)), Some(2));
    }

    #[test]
    fn expiry_is_an_error_once_past_and_a_warning_within_two_weeks() {
        let day = 24 * 3600;
        let cases: [(i64, Option<log::Level>, &str); 5] = [
            (-3 * day, Some(log::Level::Error), "expired 3 days ago"),
            (0, Some(log::Level::Error), "expired"),
            (13 * day, Some(log::Level::Warn), "expires in 13 days"),
            (14 * day - 1, Some(log::Level::Warn), "expires in"),
            (14 * day, None, ""),
        ];
        let now = 1_800_000_000;
        for (left, level, words) in cases {
            let notice = expiry_notice(now + left, now);
            assert_eq!(notice.as_ref().map(|n| n.0), level, "{left} s left");
            if let Some((_, text)) = notice {
                assert!(text.contains(words), "{left} s left: {text}");
            }
        }
    }
}
