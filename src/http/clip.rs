//! `GET /clip?stream=<app>/<stream>&from=<RFC 3339>&to=<RFC 3339>[&bridge_gaps=1]`: the clip
//! `rtmp-recorder clip` would write, byte for byte, cut from where publish writes (and the state
//! directory) and streamed as it is read. Its size is known once the chunks' heads are read, so
//! it answers Range requests (a browser seeks in it as in any MP4) by reading only the chunks'
//! bytes the range covers.
//!
//! Answers: 200/206 with the MP4; 400 for a malformed request; 404 when no recording covers the
//! span; 409 with JSON naming the gaps when there are gaps and `bridge_gaps` was not asked;
//! 416 for a range past the end; 502 when the chunks cannot be read.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};

use super::IngestView;
use crate::byte_range::{self, Ranged};
use crate::clip::{self, Prepared, Refused};
use crate::url_path;

/// The most one read brings into memory; a response holds a few of these at a time.
const PART_BYTES: u64 = 1 << 20;
/// Reads in flight per response when the chunks are in S3 (local files are read one at a time:
/// the disk is faster than the socket).
const S3_PARTS_IN_FLIGHT: usize = 4;

pub async fn get(State(view): State<Arc<IngestView>>, request: Request) -> Response {
    let query = request.uri().query().unwrap_or("");
    let pairs = match url_path::query_pairs(query) {
        Ok(p) => p,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("query: {e}")),
    };
    let param = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let (Some(stream), Some(from), Some(to)) = (param("stream"), param("from"), param("to")) else {
        return text(
            StatusCode::BAD_REQUEST,
            "name the span: /clip?stream=live/cam1&from=2026-11-26T14:03:10Z&to=2026-11-26T14:07:45Z \
             (add &bridge_gaps=1 to cut across gaps)"
                .into(),
        );
    };
    let bridge_gaps = match param("bridge_gaps") {
        None | Some("0" | "false" | "no") => false,
        Some("" | "1" | "true" | "yes") => true,
        Some(other) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("bridge_gaps={other:?}: say 1 or 0"),
            );
        }
    };
    let wanted = match clip::Request::parse(stream, from, to, bridge_gaps) {
        Ok(r) => r,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e:#}")),
    };
    let prepared = match clip::prepare(&view.state, &view.clips, &wanted).await {
        Ok(p) => Arc::new(p),
        Err(e) => return refusal(e),
    };
    let size = prepared.file_size;
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok());
    let (status, start, end) = match byte_range::parse(range, size) {
        Ranged::Whole => (StatusCode::OK, 0, size),
        Ranged::Part { start, end } => (StatusCode::PARTIAL_CONTENT, start, end),
        Ranged::Unsatisfiable => {
            let mut r = text(
                StatusCode::RANGE_NOT_SATISFIABLE,
                format!("the clip has {size} bytes"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    log::info!(
        "serving a clip of {}/{} from {from} to {to}: bytes {start}..{end} of {size}, from {} chunk(s), {} gap(s) bridged",
        wanted.app,
        wanted.stream,
        prepared.chunks.len(),
        prepared.gaps.len()
    );
    let mut response = Response::new(body(Arc::clone(&prepared), start, end));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    let mut set = |name: header::HeaderName, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set(header::CONTENT_TYPE, "video/mp4".into());
    set(header::CONTENT_LENGTH, (end - start).to_string());
    set(header::ACCEPT_RANGES, "bytes".into());
    set(
        header::CONTENT_DISPOSITION,
        format!(
            "inline; filename=\"{}\"",
            file_name(&wanted.app, &wanted.stream, from)
        ),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            header::CONTENT_RANGE,
            format!("bytes {start}-{}/{size}", end - 1),
        );
    }
    set(
        header::HeaderName::from_static("x-clip-chunks"),
        prepared
            .chunks
            .iter()
            .map(|c| url_path::encode_segment(c))
            .collect::<Vec<_>>()
            .join(","),
    );
    set(
        header::HeaderName::from_static("x-clip-gaps"),
        prepared.gaps.len().to_string(),
    );
    response
}

/// The body: bytes `start..end` of the clip, read part by part as the client takes them. A
/// client that goes away stops the reading; a read that fails ends the body early, which the
/// client sees as a short response (its length was promised).
fn body(prepared: Arc<Prepared>, start: u64, end: u64) -> Body {
    let in_flight = if prepared.reads_remote() {
        S3_PARTS_IN_FLIGHT
    } else {
        1
    };
    let parts = prepared.parts(start, end, PART_BYTES);
    let rx = prepared.read_ahead(parts, in_flight);
    Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move {
        let item = rx.recv().await?.map_err(|e| {
            log::warn!("a clip response ends early: {e:#}");
            std::io::Error::other(format!("{e:#}"))
        });
        Some((item, rx))
    }))
}

fn refusal(e: anyhow::Error) -> Response {
    match e.downcast_ref::<Refused>() {
        Some(Refused::NotCovered(m)) => text(StatusCode::NOT_FOUND, m.clone()),
        Some(Refused::Gaps {
            chunks,
            gaps,
            message,
        }) => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "refused": "gaps",
                "message": message,
                "chunks": chunks,
                "gaps": gaps,
            })),
        )
            .into_response(),
        None => {
            log::warn!("a clip could not be cut: {e:#}");
            text(
                StatusCode::BAD_GATEWAY,
                format!("the chunks could not be read: {e:#}"),
            )
        }
    }
}

fn text(status: StatusCode, message: String) -> Response {
    (status, format!("{message}\n")).into_response()
}

/// A download name from the stream and start: only characters every file system takes.
fn file_name(app: &str, stream: &str, from: &str) -> String {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect()
    };
    format!("{}_{}_{}.mp4", safe(app), safe(stream), safe(from))
}
