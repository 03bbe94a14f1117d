//! ingest's optional HTTP server (axum on hyper/tokio): `GET /` and `/healthz` (health),
//! `/metrics` (Prometheus), `/recordings/` (read-only browsing and Range downloads), `/clip`
//! (a span of a stream as one MP4, cut from its chunks as it is sent). It runs
//! inside ingest, on a socket systemd passes (`FileDescriptorName=http`) or on `--http-listen`;
//! without either there is no HTTP at all.

mod clip;
mod health;
mod metrics;
mod recordings;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use axum::Router;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::disk::MinFree;
use crate::ingest::status::Stats;
use crate::shutdown::Shutdown;
use crate::spool::StateDir;

/// What the endpoints read of the running ingest.
#[derive(Clone)]
pub struct IngestView {
    pub state: StateDir,
    pub stats: Arc<Stats>,
    /// True between the RTMP listeners being up and shutdown.
    pub accepting: Arc<AtomicBool>,
    pub connections_limit: u64,
    pub min_free: MinFree,
    /// Where publish writes: `/clip` reads the chunks there (and in the state directory).
    pub clips: Arc<crate::publish::Args>,
}

impl IngestView {
    fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }
}

/// Serves the endpoints on every listener until shutdown; returns their addresses.
pub fn serve(
    listeners: Vec<TcpListener>,
    view: IngestView,
    shutdown: Shutdown,
) -> Result<Vec<SocketAddr>> {
    let app = Router::new()
        .route("/", get(health::get))
        .route("/healthz", get(health::get))
        .route("/metrics", get(metrics::get))
        .route("/clip", get(clip::get))
        .route("/recordings", get(recordings::to_folder))
        .route("/recordings/", get(recordings::get))
        .route("/recordings/{*rest}", get(recordings::get))
        .with_state(Arc::new(view));
    let mut addrs = Vec::new();
    for listener in listeners {
        addrs.push(listener.local_addr().context("HTTP listener address")?);
        let app = app.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move { shutdown.requested().await })
                .await;
            if let Err(e) = served {
                log::error!(
                    "HTTP server stopped: {e}; health, metrics and recordings are off until ingest restarts"
                );
            }
        });
    }
    Ok(addrs)
}
