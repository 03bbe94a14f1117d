//! `GET /recordings/`: read-only browsing of the finished recordings, HTML for a person and JSON
//! for scripts (by `Accept`), files with Range support (206, `Content-Range`, 416) so an MP4
//! plays and seeks in a browser.
//!
//! Served are the folders that hold finished files a person wants: `published/` (where `run`
//! publishes without S3), `publish/` (MP4s waiting for upload, complete since they are renamed
//! in) and `archive/` (uploaded MP4s until retention, remuxed FLVs), and in them only `.mp4`,
//! `.flv` and `.json` files and folders. Never `recording/` (chunks being written), `remux/`,
//! `tmp/`, `failed/`, hidden files (partials) or symbolic links: a link is neither listed nor
//! followed, wherever it is on the path, so nothing outside these folders can be reached.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Redirect, Response};
use serde::Serialize;
use tower_http::services::ServeFile;

use super::IngestView;
use crate::escape;
use crate::url_path::{self, encode_segment};

const PREFIX: &str = "/recordings/";

/// The folders of the state directory that are served, and what each holds.
const FOLDERS: &[(&str, &str)] = &[
    (
        "published",
        "published by run to its default file:// destination",
    ),
    ("publish", "finished MP4s waiting for upload"),
    (
        "archive",
        "uploaded MP4s (until retention) and remuxed FLVs",
    ),
];

const EXTENSIONS: &[&str] = &["mp4", "flv", "json"];

#[derive(Debug, Serialize)]
struct Entry {
    name: String,
    /// `folder` or `file`.
    kind: &'static str,
    /// Link to it, percent-encoded.
    href: String,
    size: Option<u64>,
    modified_unix_ms: Option<u64>,
    description: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Listing {
    path: String,
    entries: Vec<Entry>,
}

pub async fn to_folder() -> Redirect {
    Redirect::permanent(PREFIX)
}

pub async fn get(State(view): State<Arc<IngestView>>, request: Request) -> Response {
    let raw = request.uri().path().to_string();
    let rest = raw.strip_prefix(PREFIX).unwrap_or("");
    let wanted = match url_path::parse(rest) {
        Ok(w) => w,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &format!("{raw}: {e}")),
    };
    let json = wants_json(request.headers());
    let root = view.state.root().to_path_buf();
    let Some((first, below)) = wanted.segments.split_first() else {
        return top_listing(&root, json).await;
    };
    if !FOLDERS.iter().any(|(name, _)| *name == first.as_str()) {
        return refuse(
            StatusCode::NOT_FOUND,
            &format!("{raw}: not a recordings folder"),
        );
    }
    let folder = root.join(first);
    let below = below.to_vec();
    let resolved = tokio::task::spawn_blocking(move || resolve(&folder, &below)).await;
    let (path, is_dir) = match resolved {
        Ok(Some(found)) => found,
        _ => return refuse(StatusCode::NOT_FOUND, &format!("{raw}: no such recording")),
    };
    match (is_dir, wanted.folder) {
        (true, true) => folder_listing(path, raw, json).await,
        (true, false) => Redirect::permanent(&format!("{raw}/")).into_response(),
        (false, true) => refuse(StatusCode::NOT_FOUND, &format!("{raw}: not a folder")),
        (false, false) if served_file_name(&path) => {
            match ServeFile::new(&path).try_call(request).await {
                Ok(response) => response.map(Body::new),
                Err(e) => refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &format!("reading {}: {e}", path.display()),
                ),
            }
        }
        (false, false) => refuse(StatusCode::NOT_FOUND, &format!("{raw}: not a recording")),
    }
}

/// Walks `segments` down from `folder` without following any symbolic link: `(path, is a
/// folder)`, or `None` when something on the way is missing, a link, or not a folder.
fn resolve(folder: &Path, segments: &[String]) -> Option<(PathBuf, bool)> {
    let mut path = folder.to_path_buf();
    let mut meta = std::fs::symlink_metadata(&path).ok()?;
    for segment in segments {
        if !meta.is_dir() {
            return None;
        }
        path.push(segment);
        meta = std::fs::symlink_metadata(&path).ok()?;
    }
    if meta.file_type().is_symlink() {
        return None;
    }
    if meta.is_dir() {
        Some((path, true))
    } else if meta.is_file() {
        Some((path, false))
    } else {
        None
    }
}

fn served_file_name(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    url_path::is_plain_name(name)
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EXTENSIONS.contains(&e))
}

async fn top_listing(root: &Path, json: bool) -> Response {
    let root = root.to_path_buf();
    let entries = tokio::task::spawn_blocking(move || {
        FOLDERS
            .iter()
            .filter(|(name, _)| {
                std::fs::symlink_metadata(root.join(name)).is_ok_and(|m| m.is_dir())
            })
            .map(|(name, description)| Entry {
                name: name.to_string(),
                kind: "folder",
                href: format!("{PREFIX}{name}/"),
                size: None,
                modified_unix_ms: None,
                description: Some(description),
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    render(
        Listing {
            path: PREFIX.to_string(),
            entries,
        },
        json,
    )
}

async fn folder_listing(dir: PathBuf, raw: String, json: bool) -> Response {
    let base = raw.clone();
    let listed = tokio::task::spawn_blocking(move || list(&dir, &base)).await;
    match listed {
        Ok(Ok(entries)) => render(Listing { path: raw, entries }, json),
        Ok(Err(e)) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &format!("{e:#}")),
        Err(e) => refuse(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// The folders and served files in `dir`, by name; links, hidden and other files left out.
fn list(dir: &Path, base: &str) -> anyhow::Result<Vec<Entry>> {
    let mut out = Vec::new();
    let listing =
        std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("listing {}: {e}", dir.display()))?;
    for entry in listing.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        // DirEntry::file_type does not follow links: a link is neither folder nor file here.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !url_path::is_plain_name(&name) {
            continue;
        }
        let meta = entry.metadata().ok();
        let modified_unix_ms = meta
            .as_ref()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64);
        if kind.is_dir() {
            out.push(Entry {
                href: format!("{base}{}/", encode_segment(&name)),
                name,
                kind: "folder",
                size: None,
                modified_unix_ms,
                description: None,
            });
        } else if kind.is_file() && served_file_name(&dir.join(&name)) {
            out.push(Entry {
                href: format!("{base}{}", encode_segment(&name)),
                name,
                kind: "file",
                size: meta.map(|m| m.len()),
                modified_unix_ms,
                description: None,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// JSON when the client asks for it and not for HTML (a browser's `Accept` names HTML first).
fn wants_json(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.contains("application/json") && !accept.contains("text/html")
}

fn render(listing: Listing, json: bool) -> Response {
    if json {
        return Json(listing).into_response();
    }
    let title = escape::html(&listing.path);
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>\n<h1>{title}</h1>\n<table>\n<tr><th>name</th><th>size</th><th></th></tr>\n"
    );
    if listing.path != PREFIX {
        html.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in &listing.entries {
        let shown = if e.kind == "folder" {
            format!("{}/", e.name)
        } else {
            e.name.clone()
        };
        html.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td></tr>\n",
            escape::html(&e.href),
            escape::html(&shown),
            e.size.map(|s| s.to_string()).unwrap_or_default(),
            escape::html(e.description.unwrap_or("")),
        ));
    }
    html.push_str("</table>\n</body></html>\n");
    Html(html).into_response()
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, format!("{why}\n")).into_response()
}
