//! `GET /metrics`: the Prometheus text format. ingest's own counters come from memory; remux's
//! and publish's from their records in `status/` (they are separate processes under systemd);
//! queues, `failed/` and disk from the state directory at the moment of the scrape.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Result;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::IngestView;
use crate::observe::live::LiveStream;
use crate::observe::queues::{self, Disk};
use crate::observe::record::{self, Stage};
use crate::observe::unix_ms_now;
use crate::prometheus::{Exposition, Kind};

/// What a per-stream family reads of a live stream.
type StreamValue = fn(&LiveStream) -> f64;

const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub async fn get(State(view): State<Arc<IngestView>>) -> Response {
    match tokio::task::spawn_blocking(move || render(&view)).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("reading the state directory: {e:#}\n"),
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

fn render(view: &IngestView) -> Result<String> {
    let now = unix_ms_now();
    let live = view.stats.snapshot(std::process::id(), now);
    let queues = queues::read(&view.state)?;
    let remux = record::read(&view.state, Stage::Remux).unwrap_or_default();
    let publish = record::read(&view.state, Stage::Publish).unwrap_or_default();
    let deliver = record::read(&view.state, Stage::Deliver).unwrap_or_default();
    let disk = Disk::read(&view.state, view.min_free)?;

    let mut e = Exposition::new();
    let n = |v: u64| v as f64;
    e.single(
        "rtmp_recorder_live_streams",
        Kind::Gauge,
        "Streams being recorded now.",
        live.streams.len() as f64,
    );
    e.single(
        "rtmp_recorder_connections",
        Kind::Gauge,
        "Open RTMP connections.",
        n(live.connections),
    );

    // Per live stream, labelled `app` and `stream`; frames also by `kind`.
    let per_stream: [(&str, Kind, &str, StreamValue); 2] = [
        (
            "rtmp_recorder_stream_received_bytes_total",
            Kind::Counter,
            "Payload bytes received per live stream (audio, video and metadata messages) since it began publishing.",
            |s| s.bytes as f64,
        ),
        (
            "rtmp_recorder_stream_started_seconds",
            Kind::Gauge,
            "When each live stream began publishing (Unix time).",
            |s| s.started_unix_ms as f64 / 1000.0,
        ),
    ];
    for (name, kind, help, value) in per_stream {
        e.family(name, kind, help);
        for s in &live.streams {
            e.sample(name, &[("app", &s.app), ("stream", &s.stream)], value(s));
        }
    }
    let name = "rtmp_recorder_stream_received_frames_total";
    e.family(
        name,
        Kind::Counter,
        "Audio and video frames received per live stream since it began publishing.",
    );
    for s in &live.streams {
        for (kind, frames) in [("video", s.video_frames), ("audio", s.audio_frames)] {
            let labels = [
                ("app", s.app.as_str()),
                ("stream", &s.stream),
                ("kind", kind),
            ];
            e.sample(name, &labels, n(frames));
        }
    }

    e.single(
        "rtmp_recorder_received_bytes_total",
        Kind::Counter,
        "Bytes read from RTMP connections since ingest started.",
        n(live.bytes_received),
    );
    e.single(
        "rtmp_recorder_chunks_closed_total",
        Kind::Counter,
        "Chunks finished and handed to remux since ingest started.",
        n(live.chunks_closed),
    );
    e.single(
        "rtmp_recorder_frames_dropped_total",
        Kind::Counter,
        "Messages received but not recorded since ingest started (before a stream's first frame, on a stream not publishing, script data other than metadata, lost to a full disk).",
        n(live.frames_dropped),
    );
    e.single(
        "rtmp_recorder_publishes_rejected_total",
        Kind::Counter,
        "Publish requests refused since ingest started (unknown key, stream already live).",
        n(live.rejected),
    );
    e.single(
        "rtmp_recorder_tls_handshake_failures_total",
        Kind::Counter,
        "RTMPS connections whose TLS handshake failed since ingest started (plain RTMP on the RTMPS port, clients that do not trust the certificate, scanners).",
        n(view.stats.tls_handshake_failures.load(Ordering::Relaxed)),
    );
    let not_after = view.stats.tls_not_after.load(Ordering::Relaxed);
    if not_after > 0 {
        e.single(
            "rtmp_recorder_tls_certificate_expiry_timestamp_seconds",
            Kind::Gauge,
            "When the RTMPS certificate being served expires (its notAfter, Unix time).",
            n(not_after),
        );
    }

    let name = "rtmp_recorder_queue_depth";
    e.family(
        name,
        Kind::Gauge,
        "Files waiting in a stage's inbox: FLVs in remux/, MP4s in publish/.",
    )
    .sample(name, &[("stage", "remux")], n(queues.remux))
    .sample(name, &[("stage", "publish")], n(queues.publish));
    let name = "rtmp_recorder_oldest_unpublished_chunk_age_seconds";
    e.family(
        name,
        Kind::Gauge,
        "Age of the oldest chunk in remux/ or publish/, from its start; 0 when both are empty.",
    )
    .sample(
        name,
        &[],
        queues
            .oldest_unpublished_unix_ms
            .map(|t| now.saturating_sub(t) as f64 / 1000.0)
            .unwrap_or(0.0),
    );

    e.single(
        "rtmp_recorder_remuxes_total",
        Kind::Counter,
        "Chunks remuxed into MP4s (all runs).",
        n(remux.done),
    );
    e.single(
        "rtmp_recorder_uploads_total",
        Kind::Counter,
        "MP4s uploaded and verified (all runs).",
        n(publish.done),
    );
    let name = "rtmp_recorder_upload_failures_total";
    e.family(
        name,
        Kind::Counter,
        "Failed upload attempts by kind (all runs): transient (retried), permanent (needs an operator), rejected (set aside in failed/).",
    );
    for kind in ["transient", "permanent", "rejected"] {
        let count = publish.failures.get(kind).copied().unwrap_or(0);
        e.sample(name, &[("kind", kind)], n(count));
    }
    if let Some(last) = &publish.last_done {
        e.single(
            "rtmp_recorder_last_upload_seconds",
            Kind::Gauge,
            "When the last upload was verified (Unix time).",
            last.at_unix_ms as f64 / 1000.0,
        );
    }

    e.single(
        "rtmp_recorder_events_queue_depth",
        Kind::Gauge,
        "Events in events/ waiting for delivery to the hooks.",
        n(queues.events),
    );
    e.single(
        "rtmp_recorder_events_delivered_total",
        Kind::Counter,
        "Events every configured hook confirmed (all runs).",
        n(deliver.done),
    );
    e.single(
        "rtmp_recorder_event_delivery_failures_total",
        Kind::Counter,
        "Failed event delivery attempts (all runs): a hook command that did not exit 0, a webhook that did not answer 2xx in time.",
        n(deliver.failures.values().sum()),
    );
    e.single(
        "rtmp_recorder_failed_files",
        Kind::Gauge,
        "Inputs set aside in failed/ (each with a .reason file).",
        queues.failed.len() as f64,
    );
    e.single(
        "rtmp_recorder_disk_free_bytes",
        Kind::Gauge,
        "Free bytes on the state directory's file system (for an unprivileged writer).",
        n(disk.available_bytes),
    );
    e.single(
        "rtmp_recorder_disk_size_bytes",
        Kind::Gauge,
        "Size of the state directory's file system.",
        n(disk.total_bytes),
    );
    e.single(
        "rtmp_recorder_disk_min_free_bytes",
        Kind::Gauge,
        "The --min-free-disk watermark in bytes.",
        n(disk.min_free_bytes),
    );
    Ok(e.finish())
}
