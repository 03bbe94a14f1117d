//! The ingest stage: an RTMP server that records every published stream into FLV chunks in
//! `recording/` and hands each finished chunk to `remux/`.

pub mod admission;
mod chunk_file;
mod connection;
pub mod hook;
pub mod keys;
mod metadata;
pub mod recorder;
mod rtmps;
pub mod salvage;
pub mod sessions;
pub mod status;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::chunk::SplitConfig;
use crate::disk::MinFree;
use crate::naming::NodeId;
use crate::pressure;
use crate::rtmp::ServerConfig;
use crate::shutdown::Shutdown;
use crate::spool::StateDir;
use crate::systemd;
use connection::Shared;
use keys::{AllowedKeys, LabelKey, Policy};
use status::{Stats, human_bytes};

#[derive(Debug, Clone, clap::Args)]
#[group(id = "ingest")]
pub struct Args {
    /// Address to listen on when systemd passes no socket (repeatable).
    #[arg(
        long = "listen",
        env = "RTMP_LISTEN",
        value_delimiter = ',',
        default_value = "0.0.0.0:1935"
    )]
    pub listen: Vec<SocketAddr>,

    /// Target chunk length in media time (`10s`, `5m`). A chunk ends at the first keyframe at or
    /// after it. Default: $CHUNK_DURATION_MINUTES minutes, else 5m.
    #[arg(long, env = "CHUNK_DURATION", value_parser = crate::duration::parse)]
    pub chunk_duration: Option<Duration>,

    /// The seed's variable: chunk length in whole minutes.
    #[arg(long, env = "CHUNK_DURATION_MINUTES", hide = true)]
    pub chunk_duration_minutes: Option<u64>,

    /// Split at the next keyframe once a chunk reaches this size (seed: record_max_size 1000M).
    #[arg(long, env = "MAX_CHUNK_SIZE", value_parser = crate::size::parse, default_value = "1000M")]
    pub max_chunk_size: u64,

    /// Split at the next keyframe once a chunk holds this many frames (audio and video). Twice
    /// this, or twice --max-chunk-size, splits at the next frame even without a keyframe (the
    /// chunk's manifest then says `starts_without_keyframe`), which bounds the remux's memory.
    #[arg(long, env = "MAX_CHUNK_FRAMES", default_value_t = crate::chunk::DEFAULT_MAX_FRAMES)]
    pub max_chunk_frames: u64,

    /// A peer that does not take our replies within this time is disconnected (a publisher
    /// that stops reading would otherwise hold its connection forever).
    #[arg(long, env = "WRITE_TIMEOUT", value_parser = crate::duration::parse, default_value = "10s")]
    pub write_timeout: Duration,

    /// At most this many connections at once from one IP address; more are refused at accept.
    #[arg(long, env = "MAX_CONNECTIONS_PER_IP", default_value_t = 16)]
    pub max_connections_per_ip: usize,

    /// File of allowed stream keys, one per line: `KEY` or `KEY LABEL`. Unset: any key may publish
    /// (unless --publish-secret or --publish-hook is given).
    #[arg(long, env = "ALLOWED_KEYS_FILE")]
    pub allowed_keys: Option<PathBuf>,

    /// Apps that may be published to (comma-separated, e.g. `live,studio`); others are refused
    /// whatever key or token they bring. Unset: any app.
    #[arg(long, env = "ALLOWED_APPS", value_delimiter = ',')]
    pub allowed_apps: Vec<String>,

    /// File holding the secret of signed publish tokens: a publisher admitted by a token appends
    /// `?exp=UNIX&sig=HEX` to the stream name (see `rtmp-recorder token`). At least 16 bytes.
    #[arg(long, env = "PUBLISH_SECRET_FILE")]
    pub publish_secret: Option<PathBuf>,

    /// Ask this http:// URL (POST, JSON) about every publish no key or token admits; a 2xx
    /// answer admits, anything else or no answer refuses.
    #[arg(long, env = "PUBLISH_HOOK_URL")]
    pub publish_hook: Option<String>,

    /// How long the publish hook may take before the publish is refused.
    #[arg(long, env = "PUBLISH_HOOK_TIMEOUT", value_parser = crate::duration::parse, default_value = "3s")]
    pub publish_hook_timeout: Duration,

    /// A connection that has not finished the RTMP handshake and publish in this time is closed.
    #[arg(long, env = "HANDSHAKE_TIMEOUT", value_parser = crate::duration::parse, default_value = "10s")]
    pub handshake_timeout: Duration,

    /// A connection that sends nothing for this long is closed (its chunk is finished).
    #[arg(long, env = "IDLE_TIMEOUT", value_parser = crate::duration::parse, default_value = "30s")]
    pub idle_timeout: Duration,

    /// At most this many connections at once; more are refused.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 256)]
    pub max_connections: usize,

    /// Below this much free disk (bytes like `2G`, or a share like `5%`) ingest refuses new
    /// publishes and health reports 503; live streams keep recording.
    #[arg(long, env = "MIN_FREE_DISK", value_parser = crate::disk::MinFree::parse, default_value = "512M")]
    pub min_free_disk: crate::disk::MinFree,

    /// Serve health, metrics and the recordings over HTTP on this address (repeatable), when
    /// systemd passes no HTTP socket. Off unless given.
    #[arg(long, env = "HTTP_LISTEN", value_delimiter = ',')]
    pub http_listen: Vec<SocketAddr>,

    /// End chunks at multiples of --chunk-duration on the UTC clock (at the first keyframe at
    /// or after :00, :05, ... for 5m), so the chunks of every stream line up; the first chunk of
    /// a stream is shorter. Default: each chunk lasts --chunk-duration of media time.
    #[arg(
        long,
        env = "ALIGN_CHUNKS",
        default_value = "false",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = crate::publish::parse_flag
    )]
    pub align_chunks: bool,

    /// A publisher that publishes the same stream again within this time of its last frame
    /// continues the recording: the sequence goes on and the next chunk's manifest records
    /// the gap. Also across an ingest restart. 0 turns it off (every publish starts at 1).
    #[arg(long, env = "RECONNECT_GRACE", value_parser = crate::duration::parse, default_value = "30s")]
    pub reconnect_grace: Duration,

    /// Where publish writes, for `GET /clip`: `run` passes its own publish options; the `ingest`
    /// stage alone reads them from the environment it shares with the publish unit.
    #[arg(skip)]
    pub clips: Option<Arc<crate::publish::Args>>,
    /// Where events go: `run` passes its own; the `ingest` stage alone reads the hooks'
    /// variables from the environment it shares with the deliver unit.
    #[arg(skip)]
    pub events: Option<crate::events::Emitter>,
    /// Accept RTMPS (RTMP over TLS) on this address (repeatable), when systemd passes no
    /// socket. Needs --tls-cert and --tls-key. Off unless given.
    #[arg(
        long = "tls-listen",
        env = "TLS_LISTEN",
        value_delimiter = ',',
        requires_all = ["tls_cert", "tls_key"]
    )]
    pub tls_listen: Vec<SocketAddr>,

    /// RTMPS certificate chain, PEM, end-entity certificate first (certbot's fullchain.pem).
    /// Read again when it changes: a renewed certificate is served without a restart.
    #[arg(long, env = "TLS_CERT_FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// RTMPS private key, PEM (certbot's privkey.pem); read again when it changes.
    #[arg(long, env = "TLS_KEY_FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl Args {
    pub fn chunk_duration(&self) -> Duration {
        self.chunk_duration
            .or(self
                .chunk_duration_minutes
                .map(|m| Duration::from_secs(m * 60)))
            .unwrap_or(Duration::from_secs(300))
    }
}

/// How long shutdown waits for open chunks to be finished before giving up on them (salvage
/// picks up whatever is left at the next start).
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the ingest stage until shutdown. `node` (the global `--node-id`, resolved by main) ends
/// every chunk name.
pub async fn run(state: StateDir, args: Args, node: NodeId, mut shutdown: Shutdown) -> Result<()> {
    let _running = crate::observe::running::mark(&state, "ingest");
    let events = match args.events.clone() {
        Some(e) => e,
        None => crate::events::Emitter::from_env(&state)?,
    };
    let salvage_state = state.clone();
    let salvage_events = events.clone();
    let salvaged =
        tokio::task::spawn_blocking(move || salvage::salvage(&salvage_state, &salvage_events))
            .await
            .context("salvage task")??;
    if !salvaged.is_empty() {
        log::warn!(
            "handed {} chunk(s) left by a crashed ingest to remux",
            salvaged.len()
        );
    }
    // The records of publishes a crash cut end where salvage found their open chunk ends.
    let sessions = sessions::Sessions::new(&state, args.reconnect_grace);
    let recovering = sessions.clone();
    let recovering_events = events.clone();
    let completed = tokio::task::spawn_blocking(move || {
        let now = i64::try_from(crate::observe::unix_ms_now()).unwrap_or(i64::MAX);
        recovering.recover(&salvaged, now, &recovering_events)
    })
    .await
    .context("session records task")??;
    if completed > 0 {
        log::warn!(
            "{completed} stream(s) were publishing when ingest stopped without finishing them; \
             their publishers may continue within --reconnect-grace"
        );
    }

    let (policy, hook) = policy(&state, &args)
        .await
        .map_err(|e| crate::exit::Coded::new(crate::exit::USAGE, format!("{e:#}")))?;

    let passed = systemd::listeners()?;
    let activated = passed.any();
    // A bad certificate, then HTTP and RTMPS: each fails the start before RTMP accepts anyone.
    let stats = Arc::new(Stats::default());
    let tls = rtmps_config(&passed.rtmps, activated, &args, &stats).await?;
    let http =
        systemd::passed_or_bound(passed.http, &args.http_listen, "HTTP", "--http-listen").await?;
    let tls_listeners = match &tls {
        Some(_) => {
            systemd::passed_or_bound(passed.rtmps, &args.tls_listen, "RTMPS", "--tls-listen")
                .await?
        }
        None => Vec::new(),
    };
    let listeners = systemd::passed_or_bound(passed.rtmp, &args.listen, "RTMP", "--listen").await?;
    let target = args.chunk_duration();
    let accepting = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let shared = Arc::new(Shared {
        state,
        events,
        policy,
        hook,
        split: SplitConfig {
            max_frames: args.max_chunk_frames.max(1),
            align_to_clock: args.align_chunks,
            ..SplitConfig::new(target.as_millis() as u64, args.max_chunk_size)
        },
        node: node.clone(),
        sessions,
        rtmp: ServerConfig {
            handshake_timeout: args.handshake_timeout,
            idle_timeout: args.idle_timeout,
            write_timeout: args.write_timeout,
            ..ServerConfig::default()
        },
        stats: stats.clone(),
        live: Mutex::new(Default::default()),
        alive,
        min_free: args.min_free_disk,
    });
    let slots = Arc::new(Semaphore::new(args.max_connections));
    let per_ip = admission::PerIp::new(args.max_connections_per_ip.max(1));
    let refusals = Arc::new(Mutex::new(Refusals::new()));
    let mut addrs = Vec::new();
    let tagged = listeners
        .into_iter()
        .map(|l| (l, None))
        .chain(tls_listeners.into_iter().map(|l| (l, tls.clone())));
    for (listener, tls) in tagged {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        addrs.push(match tls {
            Some(_) => format!("{addr} (RTMPS)"),
            None => addr,
        });
        tokio::spawn(accept_loop(
            listener,
            shared.clone(),
            Admit {
                slots: slots.clone(),
                per_ip: per_ip.clone(),
                refusals: refusals.clone(),
            },
            tls,
            shutdown.clone(),
        ));
    }
    let listening = format!(
        "listening on {}; chunks of {}{}; node {node}",
        addrs.join(", "),
        crate::duration::format(target),
        if args.align_chunks {
            " aligned to the clock"
        } else {
            ""
        }
    );
    accepting.store(true, std::sync::atomic::Ordering::Relaxed);
    if !http.is_empty() {
        let view = crate::http::IngestView {
            state: shared.state.clone(),
            stats: shared.stats.clone(),
            accepting: accepting.clone(),
            connections_limit: args.max_connections as u64,
            min_free: args.min_free_disk,
            clips: Arc::new(clip_source(args.clips.as_deref())?),
        };
        for addr in crate::http::serve(http, view, shutdown.clone())? {
            log::info!("serving /healthz, /metrics, /recordings/ and /clip on http://{addr}/");
        }
    }
    log::info!("{listening}");
    systemd::ready(&listening);
    tokio::spawn(report_status(
        shared.state.clone(),
        shared.stats.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(watch_disk(
        shared.state.clone(),
        args.min_free_disk,
        shutdown.clone(),
    ));

    shutdown.requested().await;
    accepting.store(false, std::sync::atomic::Ordering::Relaxed);
    let open = shared
        .stats
        .live_streams
        .load(std::sync::atomic::Ordering::Relaxed);
    systemd::stopping(&format!("finishing {open} open chunk(s)"));
    log::info!("shutting down: finishing {open} open chunk(s)");
    // Accept loops and connections see the same shutdown signal; connections close their
    // recorders' queues and the recorder threads hand their chunks on. Each holds a clone of
    // `alive`, so the channel closes when the last of them is done.
    let stats = shared.stats.clone();
    drop(shared);
    if tokio::time::timeout(FINISH_TIMEOUT, all_done.recv())
        .await
        .is_err()
    {
        log::error!(
            "some chunks were not finished within {FINISH_TIMEOUT:?}; the next start salvages them"
        );
    }
    log::info!("ingest stopped: {}", stats.status_line());
    Ok(())
}

/// Who may publish: the allowed apps, keys (labelled with the installation's label key),
/// the token secret and the hook, each read once at start.
async fn policy(state: &StateDir, args: &Args) -> Result<(Policy, Option<hook::Hook>)> {
    let mut policy = Policy::open();
    if !args.allowed_apps.is_empty() {
        policy.apps = Some(args.allowed_apps.clone());
        log::info!("publishing only to app(s) {}", args.allowed_apps.join(", "));
    }
    if let Some(path) = &args.allowed_keys {
        let (root, file) = (state.root().to_path_buf(), path.clone());
        let keys = tokio::task::spawn_blocking(move || {
            AllowedKeys::load(&file, LabelKey::load_or_create(&root)?)
        })
        .await
        .context("allowed keys task")??;
        log::info!(
            "{} allowed stream key(s) loaded from {}",
            keys.len(),
            path.display()
        );
        policy.keys = Some(keys);
    }
    if let Some(path) = &args.publish_secret {
        let file = path.clone();
        let bytes = tokio::task::spawn_blocking(move || std::fs::read(&file))
            .await
            .context("publish secret task")?
            .with_context(|| format!("reading the publish secret from {}", path.display()))?;
        let secret = crate::publish_token::Secret::from_file_bytes(&bytes)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        log::info!(
            "signed publish tokens admitted (secret from {})",
            path.display()
        );
        policy.tokens = Some(secret);
    }
    let hook = match &args.publish_hook {
        Some(url) => {
            let hook = hook::Hook::new(url, args.publish_hook_timeout)?;
            log::info!(
                "publishes no key or token admits are asked of {} (timeout {})",
                hook.url(),
                crate::duration::format(args.publish_hook_timeout)
            );
            policy.hook = true;
            Some(hook)
        }
        None => None,
    };
    Ok((policy, hook))
}

/// A person waits on `GET /clip`: a store that does not answer gives 502 after this long,
/// not after publish's `--retry-for` (10 minutes by default).
const CLIP_RETRY_FOR: Duration = Duration::from_secs(15);

/// Where `GET /clip` reads: `run`'s publish options, else the environment's.
fn clip_source(given: Option<&crate::publish::Args>) -> Result<crate::publish::Args> {
    let mut args = match given {
        Some(a) => a.clone(),
        None => crate::publish::Args::from_env()?,
    };
    args.retry_for = args.retry_for.min(CLIP_RETRY_FOR);
    Ok(args)
}

/// RTMPS's certificate, when there is an RTMPS listener: a passed `rtmps` socket, or
/// `--tls-listen` without socket activation (under systemd the service has no network of its
/// own, so it listens only on sockets systemd passes).
async fn rtmps_config(
    passed: &[std::net::TcpListener],
    activated: bool,
    args: &Args,
    stats: &Arc<Stats>,
) -> Result<Option<Arc<rtmps::Rtmps>>> {
    if activated && !args.tls_listen.is_empty() {
        log::warn!(
            "--tls-listen (TLS_LISTEN) is ignored: systemd passes the sockets. To serve RTMPS \
             enable rtmp-recorder-rtmps.socket (its ListenStream= sets the address)"
        );
    }
    let wanted = !passed.is_empty() || (!activated && !args.tls_listen.is_empty());
    if !wanted {
        return Ok(None);
    }
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Err(crate::exit::Coded::new(
            crate::exit::USAGE,
            "systemd passes an RTMPS socket (rtmps) but no certificate is configured: set \
             TLS_CERT_FILE and TLS_KEY_FILE (--tls-cert, --tls-key), or disable \
             rtmp-recorder-rtmps.socket",
        )
        .into());
    };
    rtmps::Rtmps::load(cert.clone(), key.clone(), stats.clone())
        .await
        .map(Some)
}

/// What decides whether an accepted connection gets served (shared by every listener).
#[derive(Clone)]
struct Admit {
    slots: Arc<Semaphore>,
    per_ip: Arc<admission::PerIp>,
    refusals: Arc<Mutex<Refusals>>,
}

/// Refusals at accept, each kind logged once per [`admission::LOG_EVERY`].
struct Refusals {
    since: std::time::Instant,
    total: crate::quieted::Quieted,
    per_ip: crate::quieted::Quieted,
}

impl Refusals {
    fn new() -> Refusals {
        Refusals {
            since: std::time::Instant::now(),
            total: crate::quieted::Quieted::new(admission::LOG_EVERY),
            per_ip: crate::quieted::Quieted::new(admission::LOG_EVERY),
        }
    }
}

impl Admit {
    /// The connection's slots, or `None` (refused, logged once per burst).
    fn admit(
        &self,
        peer: SocketAddr,
    ) -> Option<(tokio::sync::OwnedSemaphorePermit, admission::IpSlot)> {
        let Some(ip_slot) = self.per_ip.admit(peer.ip()) else {
            self.refused(peer, true);
            return None;
        };
        let Ok(permit) = self.slots.clone().try_acquire_owned() else {
            self.refused(peer, false);
            return None;
        };
        Some((permit, ip_slot))
    }

    fn refused(&self, peer: SocketAddr, per_ip: bool) {
        let mut refusals = self.refusals.lock().unwrap_or_else(|e| e.into_inner());
        let now = refusals.since.elapsed();
        let quieted = if per_ip {
            &mut refusals.per_ip
        } else {
            &mut refusals.total
        };
        let Some(left_out) = quieted.note(now) else {
            return;
        };
        let (limit, option) = if per_ip {
            ("its address's connections", "--max-connections-per-ip")
        } else {
            ("all connections", "--max-connections")
        };
        log::warn!(
            peer = peer.to_string().as_str();
            "refusing a connection from {peer}: {limit} reached {option}; {left_out} more refused \
             since the last such line (logged at most every {:?}). If these are real publishers, \
             raise {option}",
            admission::LOG_EVERY
        );
    }
}

/// Accepts connections until shutdown, each its own task; with `tls`, each speaks RTMPS. Plain
/// and TLS connections share `admit`'s limits (--max-connections, --max-connections-per-ip).
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    admit: Admit,
    tls: Option<Arc<rtmps::Rtmps>>,
    mut shutdown: Shutdown,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.requested() => return,
        };
        let (socket, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(slots) = admit.admit(peer) else {
            // Dropping the socket closes it: the peer sees the refusal at once.
            continue;
        };
        let _ = socket.set_nodelay(true);
        let shared = shared.clone();
        let shutdown = shutdown.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    let stream = tls.wrap(socket, peer).await;
                    connection::serve(stream, None, peer, shared, shutdown).await;
                }
                None => {
                    let fd = std::os::fd::AsRawFd::as_raw_fd(&socket);
                    connection::serve(socket, Some(fd), peer, shared, shutdown).await
                }
            }
            drop(slots);
        });
    }
}

/// Every [`pressure::CHECK_EVERY`]: below the watermark, deletes uploaded files to get above
/// it, and says once per episode when that is not enough.
async fn watch_disk(state: StateDir, min_free: MinFree, shutdown: Shutdown) {
    let mut warned = false;
    while !shutdown.is_requested() {
        let sweep_state = state.clone();
        let swept =
            tokio::task::spawn_blocking(move || pressure::free_space(&sweep_state, min_free)).await;
        match swept {
            Ok(Ok(freed)) if freed.still_below => {
                if !warned {
                    log::warn!(
                        "free disk {} is below --min-free-disk {min_free} and nothing uploaded is left to delete: \
                         new publishes are refused, live streams keep recording. To fix: {}",
                        freed
                            .space
                            .map_or_else(String::new, |s| human_bytes(s.available)),
                        crate::disk::advice(state.root())
                    );
                    warned = true;
                }
            }
            Ok(Ok(freed)) => {
                if warned || freed.files > 0 {
                    log::info!(
                        "free disk is above --min-free-disk {min_free} again ({} file(s), {} of uploaded recordings deleted)",
                        freed.files,
                        human_bytes(freed.bytes)
                    );
                }
                warned = false;
            }
            Ok(Err(e)) => log::warn!("disk pressure sweep: {e:#}"),
            Err(e) => log::warn!("disk pressure sweep task: {e}"),
        }
        tokio::time::sleep(pressure::CHECK_EVERY).await;
    }
}

/// Keeps systemd's STATUS= line and the live snapshot (`status/live.json`) current, and feeds
/// the watchdog.
async fn report_status(state: StateDir, stats: Arc<Stats>, shutdown: Shutdown) {
    let watchdog = systemd::watchdog_interval();
    let period = watchdog
        .map(|w| w.min(Duration::from_secs(2)))
        .unwrap_or(Duration::from_secs(2));
    let mut tick = tokio::time::interval(period);
    while !shutdown.is_requested() {
        tick.tick().await;
        systemd::status(&stats.status_line());
        let snapshot = stats.snapshot(std::process::id(), crate::observe::unix_ms_now());
        let state = state.clone();
        let written =
            tokio::task::spawn_blocking(move || crate::observe::live::write(&state, &snapshot))
                .await;
        if let Ok(Err(e)) = written {
            log::warn!("{e:#}; `rtmp-recorder status` shows an old live snapshot");
        }
        if watchdog.is_some() {
            systemd::watchdog();
        }
    }
}
