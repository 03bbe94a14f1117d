//! One RTMP connection: a task that reads the socket, feeds our sans-IO `ServerConnection`,
//! answers the peer, and passes each accepted stream's messages to its recorder thread through a
//! bounded channel (a slow disk slows the publisher down through TCP, memory stays bounded).
//! Whatever ends the connection (EOF, timeout, bad bytes, shutdown, a panic), the recorders'
//! channels close and each finishes and hands on its open chunk.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::batch::Batch;
use crate::chunk::SplitConfig;
use crate::disk::MinFree;
use crate::ingest::hook::{Answer, Hook};
use crate::ingest::keys::{Policy, Verdict};
use crate::ingest::recorder::{Input, StreamRecorder};
use crate::ingest::status::{Stats, StreamCounters, human_bytes};
use crate::log_safe::shown;
use crate::naming::{NodeId, StreamNames};
use crate::pressure;
use crate::rtmp::{Event, MediaKind, ServerConfig, ServerConnection};
use crate::shutdown::Shutdown;
use crate::spool::StateDir;

/// What every connection shares.
pub struct Shared {
    pub state: StateDir,
    /// Where ingest's events go (nowhere without a hook configured).
    pub events: crate::events::Emitter,
    pub policy: Policy,
    /// Asked about publishes the policy leaves to it (`--publish-hook`).
    pub hook: Option<Hook>,
    pub split: SplitConfig,
    /// Limits and deadlines of every connection.
    pub rtmp: ServerConfig,
    pub stats: Arc<Stats>,
    /// Every stream being recorded, as its chunk names spell it: a second publisher on one is
    /// refused (two names that differ never map to one, see `naming`).
    pub live: Mutex<HashSet<StreamNames>>,
    /// Never sent on: every connection (through its `Arc<Shared>`) and every recorder thread
    /// holds a clone, so the receiver sees the channel close once all of them are done.
    pub alive: mpsc::Sender<()>,
    /// Below this much free disk, new publishes are refused.
    pub min_free: MinFree,
    /// This ingest node's identity, in every chunk name.
    pub node: NodeId,
    /// Each stream's last recording, which a publisher back within the grace continues.
    pub sessions: crate::ingest::sessions::Sessions,
}

/// Batches a recorder thread may have queued before the connection waits for it.
const RECORDER_QUEUE: usize = 8;
/// A batch goes to the recorder once it holds this many bytes (see `batch`)...
const BATCH_BYTES: usize = 256 * 1024;
/// ...or once its oldest message has waited this long, whether or not more input comes.
const BATCH_AGE: Duration = Duration::from_millis(100);
/// A deadline too far to add to an `Instant` (a huge `--idle-timeout`) is as good as never.
const FAR_FUTURE: Duration = Duration::from_secs(365 * 24 * 3600);
/// While a plain TCP connection publishes, the kernel wakes it only once this much has arrived
/// (`SO_RCVLOWAT`)...
const WAKE_BYTES: usize = 64 * 1024;
/// ...and what has arrived is read at least this often anyway, so a slow stream's bytes (audio
/// only, a command, the end of a stream) wait no longer than a batch would. Measured at real-time
/// pace (50 streams of 6 Mbps): a publisher sends each frame on its own, so a wakeup per frame
/// was most of ingest's CPU; this makes it one per 64 KiB, about a sixth as many.
const DRAIN_EVERY: Duration = Duration::from_millis(100);

struct Publishing {
    label: String,
    tx: mpsc::Sender<Vec<Input>>,
    batch: Batch<Input>,
    thread: std::thread::JoinHandle<()>,
    counters: Arc<StreamCounters>,
    _live: LiveGuard,
}

/// Removes a stream from the live set when its publishing ends, however it ends.
struct LiveGuard {
    shared: Arc<Shared>,
    key: StreamNames,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if let Ok(mut live) = self.shared.live.lock() {
            live.remove(&self.key);
        }
        self.shared
            .stats
            .stream_ended(self.key.app(), self.key.stream());
        Stats::sub(&self.shared.stats.live_streams, 1);
    }
}

/// Serves one connection: a TCP socket, or RTMPS's TLS stream over one. `tcp`: the plain TCP
/// socket `socket` reads from (not given for TLS, whose bytes rustls reads), so reads can be
/// batched (see `WAKE_BYTES`).
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut socket: S,
    tcp: Option<RawFd>,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: Shutdown,
) {
    let _counted = Counted::new(&shared.stats);
    let mut session = Session {
        conn: ServerConnection::new(shared.rtmp.clone()),
        shared: shared.clone(),
        peer,
        app: None,
        publishing: HashMap::new(),
        recorder_failed: Arc::new(tokio::sync::Notify::new()),
    };
    let result = session.run(&mut socket, tcp, &mut shutdown).await;
    if let Err(e) = &result {
        log::warn!(peer = peer.to_string().as_str(); "connection closed: {e:#}");
    } else {
        log::debug!(peer = peer.to_string().as_str(); "connection closed");
    }
    // Whatever happened, write what we owe the peer (an error status) before closing.
    // Flushed and shut down: over TLS, bytes the socket did not take yet sit in rustls and
    // would be dropped with it.
    let out = session.conn.take_output();
    if !out.is_empty() {
        let last_words = async {
            socket.write_all(&out).await?;
            socket.shutdown().await
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), last_words).await;
    }
    session.finish_all().await;
}

/// Counts a connection in `Stats::connections` for as long as it lives, so a connection that
/// panics is not counted forever.
struct Counted(Arc<Stats>);

impl Counted {
    fn new(stats: &Arc<Stats>) -> Counted {
        Stats::add(&stats.connections, 1);
        Counted(stats.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        Stats::sub(&self.0.connections, 1);
    }
}

struct Session {
    conn: ServerConnection,
    shared: Arc<Shared>,
    peer: SocketAddr,
    app: Option<String>,
    publishing: HashMap<u32, Publishing>,
    /// A recorder thread of this connection stopped on an error: the connection ends at once
    /// rather than at its next hand-over (the peer may send nothing more).
    recorder_failed: Arc<tokio::sync::Notify>,
}

impl Session {
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        socket: &mut S,
        tcp: Option<RawFd>,
        shutdown: &mut Shutdown,
    ) -> Result<()> {
        // The connection keeps its own deadlines (handshake, idle) and the batches their ages, on
        // the time we pass in: how long since it was accepted. We only sleep until the first
        // either asks for.
        let accepted = Instant::now();
        // Twice the wake mark, so one read takes what woke us and what came meanwhile.
        let mut buf = vec![0u8; 2 * WAKE_BYTES];
        let mut events = Vec::new();
        let recorder_failed = self.recorder_failed.clone();
        // Made once, not per read: each of these futures takes a lock to register and to
        // drop, and a timer entry is cheaper to move than to make.
        let mut write_shutdown = shutdown.clone();
        let mut stop = std::pin::pin!(shutdown.requested());
        let mut failed = std::pin::pin!(recorder_failed.notified());
        let mut sleep = std::pin::pin!(tokio::time::sleep_until(accepted + FAR_FUTURE));
        // Set once the connection publishes over plain TCP: reads wait for `WAKE_BYTES`.
        let mut batched_reads = false;
        let mut last_read = Duration::ZERO;
        loop {
            let mut due = self
                .publishing
                .values()
                .filter_map(|p| p.batch.poll_timeout())
                .fold(self.conn.poll_timeout(), Duration::min);
            if batched_reads {
                due = due.min(last_read + DRAIN_EVERY);
            }
            let wake = accepted
                .checked_add(due)
                .unwrap_or_else(|| Instant::now() + FAR_FUTURE);
            if sleep.deadline() != wake {
                sleep.as_mut().reset(wake);
            }
            let read = tokio::select! {
                r = socket.read(&mut buf) => Some(r),
                _ = &mut sleep => None,
                _ = &mut stop => return Ok(()),
                _ = &mut failed => {
                    bail!("a stream's recorder stopped (see the error above); closing the connection")
                }
            };
            let now = accepted.elapsed();
            let read = match (read, tcp) {
                (Some(read), _) => Some(read.context("reading from the socket")?),
                // Bytes below the wake mark are in the socket but were not announced: take them
                // before deadlines are judged, so a quiet stream is not mistaken for an idle one.
                (None, Some(fd)) if batched_reads => read_waiting(fd, &mut buf)?,
                (None, _) => None,
            };
            let Some(read) = read else {
                last_read = now;
                self.conn.handle_timeout(now)?;
                self.flush_aged(now).await?;
                continue;
            };
            if read == 0 {
                return Ok(());
            }
            last_read = now;
            Stats::add(&self.shared.stats.bytes_received, read as u64);
            if let Err(e) = self.conn.handle_input(now, &buf[..read], &mut events) {
                Stats::add(&self.shared.stats.protocol_errors, 1);
                // Events decoded before the bad bytes are still real frames: record them.
                for event in events.drain(..) {
                    self.handle(event, now).await?;
                }
                return Err(e).context("RTMP protocol error");
            }
            for event in events.drain(..) {
                self.handle(event, now).await?;
            }
            if let Some(fd) = tcp
                && !batched_reads
                && self.publishing.values().any(|p| {
                    let frames = |n: &std::sync::atomic::AtomicU64| {
                        n.load(std::sync::atomic::Ordering::Relaxed)
                    };
                    frames(&p.counters.video_frames) + frames(&p.counters.audio_frames) > 0
                })
            {
                // Only once media flows: before that, every command waits for its answer, and
                // the session's first frame (whose arrival dates its chunks) is read on arrival.
                set_wake_bytes(fd, WAKE_BYTES)
                    .context("setting the socket's wake mark (SO_RCVLOWAT)")?;
                batched_reads = true;
            }
            self.flush_aged(now).await?;
            let out = self.conn.take_output();
            if !out.is_empty()
                && !self
                    .write(socket, &out, accepted, &mut write_shutdown)
                    .await?
            {
                return Ok(());
            }
        }
    }

    /// Writes our replies under the connection's deadlines: a peer that stops reading is cut
    /// after `--write-timeout`, and shutdown does not wait for it. False if shutdown came first.
    async fn write<S: AsyncWrite + Unpin>(
        &mut self,
        socket: &mut S,
        out: &[u8],
        accepted: Instant,
        shutdown: &mut Shutdown,
    ) -> Result<bool> {
        self.conn.writing(accepted.elapsed());
        let mut write = std::pin::pin!(socket.write_all(out));
        loop {
            let wake = accepted
                .checked_add(self.conn.poll_timeout())
                .unwrap_or_else(|| Instant::now() + FAR_FUTURE);
            tokio::select! {
                written = &mut write => {
                    written.context("writing to the socket")?;
                    self.conn.written();
                    return Ok(true);
                }
                _ = tokio::time::sleep_until(wake) => {
                    self.conn.handle_timeout(accepted.elapsed())?;
                }
                _ = shutdown.requested() => return Ok(false),
            }
        }
    }

    /// `now`: when the input that made `event` arrived, on the connection's clock.
    async fn handle(&mut self, event: Event, now: Duration) -> Result<()> {
        match event {
            Event::Connected { app, .. } => {
                // `rtmp://h/live?token=SECRET/cam` connects to app `live?token=SECRET`: the
                // query is no part of the name and never reaches a file or a log line.
                let (app, _) = crate::publish_token::split_query(&app);
                log::debug!(peer = self.peer.to_string().as_str(), app = shown(app).as_str(); "connect");
                self.app = Some(app.to_string());
            }
            Event::PublishRequested {
                stream_id, name, ..
            } => {
                if let Some(reason) = self.disk_too_full().await {
                    self.refuse_for_disk(stream_id, &reason)?;
                } else {
                    self.publish(stream_id, &name).await?;
                }
            }
            Event::Metadata { stream_id, body } => {
                self.send(stream_id, Input::Metadata(body), now).await?
            }
            Event::Media {
                stream_id,
                kind,
                timestamp,
                body,
            } => {
                let input = match kind {
                    MediaKind::Audio => Input::Audio { timestamp, body },
                    MediaKind::Video => Input::Video { timestamp, body },
                };
                self.send(stream_id, input, now).await?;
            }
            Event::Unpublished { stream_id } => {
                if let Some(p) = self.publishing.remove(&stream_id) {
                    log::info!(stream = p.label.as_str(); "publisher stopped");
                    finish(p).await;
                }
            }
        }
        Ok(())
    }

    /// Why a new publish must be refused for lack of disk, after deleting uploaded files to
    /// make room; `None` when there is room.
    async fn disk_too_full(&self) -> Option<String> {
        let state = self.shared.state.clone();
        let min_free = self.shared.min_free;
        let swept = tokio::task::spawn_blocking(move || pressure::free_space(&state, min_free))
            .await
            .ok()?;
        match swept {
            Ok(freed) if freed.still_below => Some(format!(
                "recorder disk almost full: {} free, below the {} it keeps (--min-free-disk); try again later",
                freed
                    .space
                    .map_or_else(String::new, |s| human_bytes(s.available)),
                min_free
            )),
            Ok(_) => None,
            // Not knowing the free space is no reason to refuse a stream.
            Err(e) => {
                log::warn!("checking free disk before a publish: {e:#}");
                None
            }
        }
    }

    fn refuse_for_disk(&mut self, stream_id: u32, reason: &str) -> Result<()> {
        Stats::add(&self.shared.stats.rejected, 1);
        Stats::add(&self.shared.stats.refused_disk, 1);
        log::error!(
            peer = self.peer.to_string().as_str();
            "publish refused: {reason}. To fix: {}",
            crate::disk::advice(self.shared.state.root())
        );
        self.conn
            .reject_publish(stream_id, "NetStream.Publish.Rejected", reason)?;
        Ok(())
    }

    /// Refuses a publish with `NetStream.Publish.BadName`, before anything is recorded; `reason`
    /// is told to the publisher and logged (it holds no stream key, token or query).
    fn refuse(&mut self, stream_id: u32, app: &str, name: &str, reason: &str) -> Result<()> {
        Stats::add(&self.shared.stats.rejected, 1);
        log::warn!(
            peer = self.peer.to_string().as_str(),
            app = shown(app).as_str();
            "publish of {} refused: {reason}",
            self.shared.policy.loggable(name)
        );
        self.conn
            .reject_publish(stream_id, "NetStream.Publish.BadName", reason)?;
        Ok(())
    }

    async fn publish(&mut self, stream_id: u32, name: &str) -> Result<()> {
        let app = self.app.clone().unwrap_or_default();
        let peer = self.peer.to_string();
        let now_unix = crate::observe::unix_ms_now() / 1000;
        let label = match self.shared.policy.check(&app, name, now_unix) {
            Verdict::Allowed { label } => label,
            Verdict::Denied { reason } => return self.refuse(stream_id, &app, name, &reason),
            Verdict::AskHook => {
                let (stream, query) = crate::publish_token::split_query(name);
                // A name that cannot be recorded is refused without troubling the hook.
                if let Err(reason) = StreamNames::new(&app, stream) {
                    return self.refuse(stream_id, &app, name, &reason);
                }
                let hook = self.shared.hook.as_ref().context("no publish hook")?;
                match hook.ask(&app, stream, query, self.peer).await {
                    Answer::Admit { label } => label.unwrap_or_else(|| stream.to_string()),
                    Answer::Refuse { reason } => {
                        return self.refuse(stream_id, &app, name, &reason);
                    }
                }
            }
        };
        let key = match StreamNames::new(&app, &label) {
            Ok(names) => names,
            Err(reason) => return self.refuse(stream_id, &app, name, &reason),
        };
        let newly_live = self
            .shared
            .live
            .lock()
            .map(|mut live| live.insert(key.clone()))
            .unwrap_or(false);
        if !newly_live || self.publishing.contains_key(&stream_id) {
            Stats::add(&self.shared.stats.rejected, 1);
            log::warn!(
                peer = peer.as_str(),
                app = key.app(),
                stream = key.stream();
                "publish refused: this stream is already live; the running publisher is kept"
            );
            self.conn.reject_publish(
                stream_id,
                "NetStream.Publish.BadName",
                "stream is already being published",
            )?;
            return Ok(());
        }
        Stats::add(&self.shared.stats.live_streams, 1);
        let counters = self.shared.stats.stream_started(
            key.app(),
            key.stream(),
            crate::observe::unix_ms_now(),
        );
        let guard = LiveGuard {
            shared: self.shared.clone(),
            key: key.clone(),
        };
        let (tx, rx) = mpsc::channel(RECORDER_QUEUE);
        let recorder = StreamRecorder::new(&self.shared, key.clone(), counters.clone());
        let alive = self.shared.alive.clone();
        let failed = self.recorder_failed.clone();
        // Mapped names need no escaping (they hold no control character) and are bounded, and
        // in full they match the `STREAM=` field of the later stages' lines about the chunks.
        let (app, label) = (key.app().to_string(), key.stream().to_string());
        // Mapped names hold no NUL, which a thread name may not.
        let thread = std::thread::Builder::new()
            .name(format!("record {}", key.stream()))
            .spawn(move || record(recorder, rx, alive, failed))
            .context("starting a recorder thread")?;
        self.conn.accept_publish(stream_id)?;
        log::info!(peer = peer.as_str(), app = app.as_str(), stream = label.as_str(); "publish started");
        self.publishing.insert(
            stream_id,
            Publishing {
                label,
                tx,
                batch: Batch::new(BATCH_BYTES, BATCH_AGE),
                thread,
                counters,
                _live: guard,
            },
        );
        Ok(())
    }

    async fn send(&mut self, stream_id: u32, input: Input, now: Duration) -> Result<()> {
        // Media on a stream that is not publishing (refused, or never asked) is dropped: it was
        // never accepted, so it is not ours to record.
        let Some(p) = self.publishing.get_mut(&stream_id) else {
            if !matches!(input, Input::Metadata(_)) {
                Stats::add(&self.shared.stats.frames_dropped, 1);
            }
            return Ok(());
        };
        match &input {
            Input::Metadata(b) => Stats::add(&p.counters.bytes, b.len() as u64),
            Input::Audio { body, .. } => {
                Stats::add(&p.counters.bytes, body.len() as u64);
                Stats::add(&p.counters.audio_frames, 1);
            }
            Input::Video { body, .. } => {
                Stats::add(&p.counters.bytes, body.len() as u64);
                Stats::add(&p.counters.video_frames, 1);
            }
        }
        let bytes = match &input {
            Input::Metadata(b) | Input::Audio { body: b, .. } | Input::Video { body: b, .. } => {
                b.len()
            }
        };
        if let Some(full) = p.batch.push(now, input, bytes) {
            self.hand_over(stream_id, full).await?;
        }
        Ok(())
    }

    /// Hands batches whose oldest message has waited long enough by `now` to their recorders.
    async fn flush_aged(&mut self, now: Duration) -> Result<()> {
        let aged: Vec<(u32, Vec<Input>)> = self
            .publishing
            .iter_mut()
            .filter_map(|(id, p)| p.batch.handle_timeout(now).map(|b| (*id, b)))
            .collect();
        for (stream_id, batch) in aged {
            self.hand_over(stream_id, batch).await?;
        }
        Ok(())
    }

    async fn hand_over(&mut self, stream_id: u32, batch: Vec<Input>) -> Result<()> {
        let Some(p) = self.publishing.get_mut(&stream_id) else {
            return Ok(());
        };
        if p.tx.send(batch).await.is_err() {
            let label = p.label.clone();
            if let Some(p) = self.publishing.remove(&stream_id) {
                finish(p).await;
            }
            bail!(
                "stream {label}: its recorder stopped (see the error above); closing the connection"
            );
        }
        Ok(())
    }

    async fn finish_all(&mut self) {
        for (_, p) in self.publishing.drain() {
            log::info!(stream = p.label.as_str(); "publisher gone: finishing its chunk");
            finish(p).await;
        }
    }
}

/// Closes a stream's queue and waits for its recorder to hand on the open chunk.
async fn finish(p: Publishing) {
    let Publishing {
        tx,
        thread,
        mut batch,
        _live,
        ..
    } = p;
    let batch = batch.take();
    if !batch.is_empty() {
        // The recorder may have stopped already; then these are lost with its error logged.
        let _ = tx.send(batch).await;
    }
    drop(tx);
    let _ = tokio::task::spawn_blocking(move || thread.join()).await;
    drop(_live);
}

/// The recorder thread: writes until the queue closes or writing fails, then finishes the chunk
/// (by dropping the recorder).
fn record(
    mut recorder: StreamRecorder,
    mut rx: mpsc::Receiver<Vec<Input>>,
    _alive: mpsc::Sender<()>,
    failed: Arc<tokio::sync::Notify>,
) {
    // Here, on the recorder's thread: queueing an event writes a file.
    recorder.begin();
    while let Some(batch) = rx.blocking_recv() {
        for input in &batch {
            if let Err(e) = recorder.push(input) {
                log::error!(
                    stream = recorder.label();
                    "recording failed: {e:#}; the publisher is disconnected, what was recorded is handed on"
                );
                failed.notify_one();
                return;
            }
        }
    }
}

/// Asks the kernel to report `fd` readable only once `bytes` have arrived (or the peer closed,
/// or an error): fewer, larger reads.
fn set_wake_bytes(fd: RawFd, bytes: usize) -> std::io::Result<()> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    // SAFETY: `fd` is the connection's open socket; the option is a c_int read by the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVLOWAT,
            (&raw const value).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Reads what is in `fd`'s receive queue without waiting, below the wake mark too: `None` when
/// nothing is (tokio's own read waits for the readiness the mark holds back).
fn read_waiting(fd: RawFd, buf: &mut [u8]) -> Result<Option<usize>> {
    loop {
        // SAFETY: `fd` is the connection's open socket and `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = std::io::Error::last_os_error();
        match e.kind() {
            std::io::ErrorKind::WouldBlock => return Ok(None),
            std::io::ErrorKind::Interrupted => {}
            _ => return Err(e).context("reading from the socket"),
        }
    }
}
