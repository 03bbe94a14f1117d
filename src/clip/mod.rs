//! `rtmp-recorder clip <app>/<stream> --from T --to T -o FILE`: one faststart MP4 of a span of a
//! recorded stream, cut from its published chunks without re-encoding. The shell: it finds the
//! chunks through their manifests (on disk [`sources`], in S3 [`bucket`]), reads each MP4's head
//! and then only the byte ranges of the samples the clip needs (from S3 several at a time, with
//! publish's retry rules); the cutting itself is `mp4::clip` (pure).
//!
//! Gaps are never hidden: a span not covered by one unbroken chain of chunks (a reconnect, a
//! lost chunk, a hole between chunks: [`chain`]) is refused with what is missing, or, with
//! `--bridge-gaps`, cut across each gap with everything after it at its wall-clock place.
//! Either way each gap is logged, and the one JSON line on stdout lists them. A span before the
//! recording began or after it ended is always refused.
//!
//! [`prepare`] finds the chunks and plans the clip ([`Prepared`]); `clip` writes it to a file,
//! `GET /clip` (in `http`) serves any byte range of it.

mod bucket;
mod chain;
mod copy;
mod fetch;
mod prepared;
mod sources;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};

use crate::exit::{self, Coded};
use crate::naming;
use crate::publish::Destination;
use crate::spool::StateDir;
use crate::utc::Civil;
use bucket::Bucket;
use chain::{Cover, Gap};
use fetch::Reader;
use prepared::plan_clip;
pub use prepared::{Part, Prepared};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream: `<app>/<stream>` as published (`live/cam/1`); it is mapped as ingest maps
    /// names for chunk names.
    pub stream: String,
    /// Start of the clip, UTC RFC 3339 (e.g. 2026-11-26T14:03:10Z).
    #[arg(long)]
    pub from: String,
    /// End of the clip (exclusive), UTC RFC 3339.
    #[arg(long)]
    pub to: String,
    /// The MP4 to write (replaced atomically).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Cut across gaps in the recording (a missing chunk, a reconnect) instead of refusing:
    /// what follows a gap keeps its wall-clock place in the clip.
    #[arg(long)]
    pub bridge_gaps: bool,
    /// Where the chunks were published: the same options as `publish` (default: where publish
    /// writes). With a directory, chunks still in the state directory are found too.
    #[command(flatten)]
    pub publish: crate::publish::Args,
}

/// The line `clip` prints on stdout, for scripts: what it wrote (or that it refused) and every
/// gap in the span.
#[derive(Debug, serde::Serialize)]
struct Summary<'a> {
    /// The clip written, `None` when refused.
    output: Option<String>,
    from: &'a str,
    to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refused: Option<String>,
    chunks: Vec<String>,
    gaps: Vec<GapLine>,
    /// Bytes written, and bytes read from the chunks (heads and samples).
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    read: Option<u64>,
}

/// A gap as the stdout line gives it: where it lies in the clip, too.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GapLine {
    #[serde(flatten)]
    gap: Gap,
    /// Where it begins in the clip, ms from `--from`.
    clip_at_ms: i64,
}

pub async fn run(state: StateDir, args: Args) -> Result<()> {
    let request = Request::parse(&args.stream, &args.from, &args.to, args.bridge_gaps)?;
    let prepared = match prepare(&state, &args.publish, &request).await {
        Ok(p) => p,
        Err(e) => {
            if let Some(Refused::Gaps { chunks, gaps, .. }) = e.downcast_ref::<Refused>() {
                print_summary(&Summary {
                    output: None,
                    from: &args.from,
                    to: &args.to,
                    refused: Some("gaps".into()),
                    chunks: chunks.clone(),
                    gaps: gaps.clone(),
                    bytes: None,
                    read: None,
                });
            }
            return Err(e);
        }
    };
    let prepared = Arc::new(prepared);
    let read = prepared.write_file(&args.output).await?;
    print_summary(&Summary {
        output: Some(args.output.display().to_string()),
        from: &args.from,
        to: &args.to,
        refused: None,
        chunks: prepared.chunks.clone(),
        gaps: prepared.gaps.clone(),
        bytes: Some(prepared.file_size),
        read: Some(read),
    });
    log::info!(
        "clip of {} ms from {} chunk(s) ({}): {} bytes written, {read} read",
        prepared.duration_ms,
        prepared.chunks.len(),
        prepared.chunks.join(", "),
        prepared.file_size
    );
    Ok(())
}

fn print_summary(summary: &Summary) {
    // A summary that cannot be encoded is a bug; the log has said everything already.
    if let Ok(line) = serde_json::to_string(summary) {
        println!("{line}");
    }
}

fn gap_lines(cover: &Cover, from: i64) -> Vec<GapLine> {
    cover
        .gaps
        .iter()
        .map(|(i, g)| GapLine {
            gap: g.clone(),
            clip_at_ms: cover.chunks[i - 1].end_ms() - from,
        })
        .collect()
}

fn usage(message: String) -> anyhow::Error {
    Coded::new(exit::USAGE, message).into()
}

/// A span of one stream to cut, times in Unix ms.
#[derive(Debug, Clone)]
pub struct Request {
    pub app: String,
    pub stream: String,
    pub from: i64,
    pub to: i64,
    pub bridge_gaps: bool,
}

impl Request {
    /// From `<app>/<stream>` and two RFC 3339 times; a usage error (exit 2) says what is wrong.
    pub fn parse(stream: &str, from: &str, to: &str, bridge_gaps: bool) -> Result<Request> {
        let Some((app, name)) = stream
            .split_once('/')
            .filter(|(a, n)| !a.is_empty() && !n.is_empty())
        else {
            return Err(usage(format!(
                "{stream:?}: name the stream as <app>/<stream>, e.g. live/cam1"
            )));
        };
        let time = |what: &str, text: &str| {
            Civil::parse_rfc3339_millis(text).ok_or_else(|| {
                usage(format!(
                    "{what} {text:?} is not an RFC 3339 time (e.g. 2026-11-26T14:03:10Z)"
                ))
            })
        };
        let (from_ms, to_ms) = (time("from", from)?, time("to", to)?);
        if to_ms <= from_ms {
            return Err(usage(format!("to {to} is not after from {from}")));
        }
        Ok(Request {
            app: app.to_string(),
            stream: name.to_string(),
            from: from_ms,
            to: to_ms,
            bridge_gaps,
        })
    }

    fn describe(&self) -> String {
        format!(
            "{}/{} from {} to {}",
            self.app,
            self.stream,
            Civil::from_unix_millis(self.from).rfc3339(),
            Civil::from_unix_millis(self.to).rfc3339()
        )
    }
}

/// Why a span is not cut, beyond failing to read: typed, so HTTP can answer 404 or 409.
#[derive(Debug)]
pub enum Refused {
    /// No unbroken recording covers the span (nothing recorded, or it begins or ends inside).
    NotCovered(String),
    /// Gaps inside the span, and bridging them was not asked for.
    Gaps {
        chunks: Vec<String>,
        gaps: Vec<GapLine>,
        message: String,
    },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NotCovered(m) | Refused::Gaps { message: m, .. } => f.write_str(m),
        }
    }
}

impl std::error::Error for Refused {}

/// Finds the chunks of `request`'s span (where `publish` publishes, and the state directory),
/// reads their heads and plans the clip.
pub async fn prepare(
    state: &StateDir,
    publish: &crate::publish::Args,
    request: &Request,
) -> Result<Prepared> {
    let Request {
        app,
        stream,
        from,
        to,
        ..
    } = request;
    let (from, to) = (*from, *to);
    // Chunk names (and object keys) hold the mapped names: `cam/1` is found as `cam%2F1`.
    let (app, stream) = (
        &naming::encode(app, naming::Part::App),
        &naming::encode(stream, naming::Part::Stream),
    );
    let (all, reader, looked) = match publish.destination(state)? {
        Destination::Dir(dir) => {
            let roots = vec![state.publish_inbox(), state.archive(), dir];
            let looked = roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let (app, stream) = (app.to_string(), stream.to_string());
            let found = tokio::task::spawn_blocking(move || sources::find(&roots, &app, &stream))
                .await
                .context("finding chunks: task panicked")??;
            (found, Reader::Disk, looked)
        }
        Destination::S3 { bucket, prefix } => {
            let b = Bucket::connect(publish, bucket, prefix).await?;
            let (found, looked) = b.find(app, stream, from, to).await?;
            (found, Reader::S3(Arc::new(b)), looked)
        }
    };
    let cover = chain::covering(&all, from, to).map_err(|why| {
        Refused::NotCovered(format!(
            "{}: {why} (looked in {looked})",
            request.describe()
        ))
    })?;
    let chunks: Vec<String> = cover
        .chunks
        .iter()
        .map(|c| c.manifest.name.clone())
        .collect();
    let gaps = gap_lines(&cover, from);
    if !cover.gaps.is_empty() && !request.bridge_gaps {
        let said: Vec<String> = cover.gaps.iter().map(|(_, g)| g.to_string()).collect();
        return Err(Refused::Gaps {
            chunks,
            gaps,
            message: format!(
                "{}: {}; clips never hide a gap: pass --bridge-gaps (bridge_gaps=1 over HTTP) \
                 to cut across them with nothing shown where nothing was recorded",
                request.describe(),
                said.join("; ")
            ),
        }
        .into());
    }
    for (i, g) in &cover.gaps {
        log::warn!(
            "{app}/{stream}: bridging the {g}: nothing was recorded from {} ms to {} ms of \
             the clip (the last picture before stays), what follows keeps its place",
            cover.chunks[i - 1].end_ms() - from,
            cover.chunks[*i].start_ms - from
        );
    }
    plan_clip(&cover, &reader, from, to, chunks, gaps).await
}
