//! `GET /` and `GET /healthz`: 200 when ingest accepts publishers, the state directory is
//! writable and free disk is above `--min-free-disk`; 503 with the reasons otherwise. The body
//! is short JSON either way.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::IngestView;
use crate::observe::queues::Disk;
use crate::spool::StateDir;

pub async fn get(State(view): State<Arc<IngestView>>) -> Response {
    let checked = view.clone();
    let result = tokio::task::spawn_blocking(move || check(&checked)).await;
    let (reasons, disk) = match result {
        Ok(r) => r,
        Err(e) => (vec![format!("health check failed: {e}")], None),
    };
    let connections = view
        .stats
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    let live = view
        .stats
        .live_streams
        .load(std::sync::atomic::Ordering::Relaxed);
    let mut body = json!({
        "status": if reasons.is_empty() { "ok" } else { "unavailable" },
        "live_streams": live,
        "connections": connections,
    });
    if let Some(d) = disk {
        body["disk_available_bytes"] = d.available_bytes.into();
        body["disk_min_free_bytes"] = d.min_free_bytes.into();
    }
    if reasons.is_empty() {
        (StatusCode::OK, Json(body)).into_response()
    } else {
        body["reasons"] = reasons.into();
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// Every reason ingest is not healthy (none: healthy), and the disk when it could be read.
fn check(view: &IngestView) -> (Vec<String>, Option<Disk>) {
    let mut reasons = Vec::new();
    if !view.accepting() {
        reasons.push("ingest is not accepting publishers (starting or shutting down)".to_string());
    }
    let connections = view
        .stats
        .connections
        .load(std::sync::atomic::Ordering::Relaxed);
    if connections >= view.connections_limit {
        reasons.push(format!(
            "ingest refuses new connections: {connections} of --max-connections {} in use",
            view.connections_limit
        ));
    }
    if let Err(e) = probe_writable(&view.state) {
        reasons.push(format!(
            "state directory {} is not writable: {e:#}",
            view.state.root().display()
        ));
    }
    let disk = match Disk::read(&view.state, view.min_free) {
        Ok(d) => {
            if d.is_low() {
                reasons.push(format!(
                    "free disk {} bytes is below --min-free-disk {} ({} bytes)",
                    d.available_bytes, view.min_free, d.min_free_bytes
                ));
            }
            Some(d)
        }
        Err(e) => {
            reasons.push(format!("{e:#}"));
            None
        }
    };
    (reasons, disk)
}

/// Writes and removes a small file where ingest writes (a partial in `tmp/`, which every stage's
/// start removes should we die in between), and checks that `recording/` and `remux/` take new
/// entries.
fn probe_writable(state: &StateDir) -> anyhow::Result<()> {
    let probe = state.status().join("health-probe");
    crate::spool::write_atomically(&state.tmp(), &probe, b"ok\n")?;
    std::fs::remove_file(&probe)
        .map_err(|e| anyhow::anyhow!("removing {}: {e}", probe.display()))?;
    for dir in [state.recording(), state.remux_inbox()] {
        let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())?;
        // SAFETY: a NUL-terminated path that outlives the call.
        if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
            anyhow::bail!("{}: {}", dir.display(), std::io::Error::last_os_error());
        }
    }
    Ok(())
}
