//! `rtmp-recorder clip <app>/<stream> --from T --to T -o FILE`: one faststart MP4 of a span of a
//! recorded stream, cut from its published chunks without re-encoding. The shell: it finds the
//! chunks through their manifests (on disk [`sources`], in S3 [`bucket`]), reads each MP4's head
//! and then only the byte ranges of the samples the clip needs (from S3 several at a time, with
//! publish's retry rules); the cutting itself is `mp4::clip` (pure).
//!
//! Gaps are never hidden: a span not covered by one unbroken chain of chunks (a reconnect, a
//! lost chunk, a hole between chunks: [`chain`]) is refused with what is missing, or, with
//! `--bridge-gaps`, cut across each gap with everything after it at its wall-clock place. Either way each gap is logged, and the one JSON line on stdout
//! lists them. A span before the recording began or after it ended is always refused.

mod bucket;
mod chain;
mod copy;
mod sources;

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};

use crate::exit::{self, Coded};
use crate::mp4::clip::{Piece, locate, plan};
use crate::mp4::{Window, read};
use crate::naming;
use crate::publish::Destination;
use crate::spool::StateDir;
use crate::utc::Civil;
use bucket::Bucket;
use chain::{Cover, Gap};
use sources::{Chunk, Location};

/// The first read of a chunk: the `ftyp` and the `moov`'s box header, which gives the rest.
const FIRST_READ: u64 = 4096;
/// Contiguous ranges of one chunk are read as one, up to this much at a time.
const MAX_READ: u64 = 4 << 20;
/// Reads in flight from S3 (each at most [`MAX_READ`]); the output is written in order.
const S3_READS_IN_FLIGHT: usize = 8;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream: `<app>/<stream>` as published (its label, with allowed keys; the stream name
    /// may hold `/`). It is found under the names its chunks are given (see `naming`).
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

/// What a clip was made of.
#[derive(Debug)]
pub struct Made {
    pub chunks: Vec<String>,
    pub bytes: u64,
    pub read: u64,
    pub duration_ms: i64,
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
#[derive(Debug, serde::Serialize)]
struct GapLine {
    #[serde(flatten)]
    gap: Gap,
    /// Where it begins in the clip, ms from `--from`.
    clip_at_ms: i64,
}

pub async fn run(state: StateDir, args: Args) -> Result<()> {
    let made = clip(&state, &args).await?;
    log::info!(
        "clip of {} ms from {} chunk(s) ({}): {} bytes written, {} read",
        made.duration_ms,
        made.chunks.len(),
        made.chunks.join(", "),
        made.bytes,
        made.read
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

/// Where the chunks' bytes come from.
enum Reader {
    Disk,
    S3(Arc<Bucket>),
}

async fn clip(state: &StateDir, args: &Args) -> Result<Made> {
    let Some((app, stream)) = args.stream.split_once('/') else {
        return Err(usage(format!(
            "{:?}: name the stream as <app>/<stream>, e.g. live/cam1",
            args.stream
        )));
    };
    // Chunk names (and object keys) hold the mapped names: `cam/1` is found as `cam%2F1`.
    let names = (
        naming::encode(app, naming::Part::App),
        naming::encode(stream, naming::Part::Stream),
    );
    let time = |what: &str, text: &str| {
        Civil::parse_rfc3339_millis(text).ok_or_else(|| {
            usage(format!(
                "--{what} {text:?} is not an RFC 3339 time (e.g. 2026-11-26T14:03:10Z)"
            ))
        })
    };
    let (from, to) = (time("from", &args.from)?, time("to", &args.to)?);
    if to <= from {
        return Err(usage(format!(
            "--to {} is not after --from {}",
            args.to, args.from
        )));
    }
    let (all, reader, looked) = match args.publish.destination(state)? {
        Destination::Dir(dir) => {
            let roots = vec![state.publish_inbox(), state.archive(), dir];
            let looked = roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let (app, stream) = (names.0.clone(), names.1.clone());
            let found = tokio::task::spawn_blocking(move || sources::find(&roots, &app, &stream))
                .await
                .context("finding chunks: task panicked")??;
            (found, Reader::Disk, looked)
        }
        Destination::S3 { bucket, prefix } => {
            let b = Bucket::connect(&args.publish, bucket, prefix).await?;
            let (found, looked) = b.find(&names.0, &names.1, from, to).await?;
            (found, Reader::S3(Arc::new(b)), looked)
        }
    };
    let cover = chain::covering(&all, from, to).map_err(|why| {
        anyhow::anyhow!(
            "{app}/{stream} from {} to {}: {why} (looked in {looked})",
            args.from,
            args.to
        )
    })?;
    let names = || {
        cover
            .chunks
            .iter()
            .map(|c| c.manifest.name.clone())
            .collect()
    };
    if !cover.gaps.is_empty() && !args.bridge_gaps {
        let gaps: Vec<String> = cover.gaps.iter().map(|(_, g)| g.to_string()).collect();
        print_summary(&Summary {
            output: None,
            from: &args.from,
            to: &args.to,
            refused: Some("gaps".into()),
            chunks: names(),
            gaps: gap_lines(&cover, from),
            bytes: None,
            read: None,
        });
        bail!(
            "{app}/{stream} from {} to {}: {}; clips never hide a gap: pass --bridge-gaps to \
             cut across them with nothing shown where nothing was recorded",
            args.from,
            args.to,
            gaps.join("; ")
        );
    }
    for (i, g) in &cover.gaps {
        log::warn!(
            "{app}/{stream}: bridging the {g}: nothing was recorded from {} ms to {} ms of \
             the clip (the last picture before stays), what follows keeps its place",
            cover.chunks[i - 1].end_ms() - from,
            cover.chunks[*i].start_ms - from
        );
    }
    let made = write_clip(&cover, &reader, from, to, &args.output).await?;
    print_summary(&Summary {
        output: Some(args.output.display().to_string()),
        from: &args.from,
        to: &args.to,
        refused: None,
        chunks: names(),
        gaps: gap_lines(&cover, from),
        bytes: Some(made.bytes),
        read: Some(made.read),
    });
    Ok(made)
}

/// Where one chunk's bytes are read from; cheap to clone into a task. A file is opened once.
#[derive(Clone)]
enum Fetch {
    File(Arc<File>, PathBuf),
    S3(Arc<Bucket>, String),
}

impl Fetch {
    async fn open(reader: &Reader, chunk: &Chunk) -> Result<Fetch> {
        Ok(match (reader, &chunk.location) {
            (Reader::Disk, Location::File(path)) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || {
                    let file =
                        File::open(&path).with_context(|| format!("opening {}", path.display()))?;
                    Ok::<_, anyhow::Error>(Fetch::File(Arc::new(file), path))
                })
                .await
                .context("opening a chunk: task panicked")??
            }
            (Reader::S3(bucket), Location::S3(key)) => Fetch::S3(Arc::clone(bucket), key.clone()),
            _ => bail!(
                "{}: found in one place, read from another",
                chunk.manifest.name
            ),
        })
    }

    /// `len` bytes at `offset`.
    async fn read(self, offset: u64, len: u64) -> Result<Vec<u8>> {
        match self {
            Fetch::File(file, path) => tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, offset)
                    .with_context(|| format!("reading {}", path.display()))?;
                Ok(buf)
            })
            .await
            .context("reading a chunk: task panicked")?,
            Fetch::S3(bucket, key) => bucket.read(&key, offset, len).await,
        }
    }
}

/// Reads a chunk's head (everything before the `mdat`): a small first read, then exactly what
/// its box headers say is missing. Returns the head and the bytes read.
async fn read_head(fetch: &Fetch, chunk: &Chunk) -> Result<(Vec<u8>, u64)> {
    let mut head = fetch.clone().read(0, FIRST_READ.min(chunk.size)).await?;
    let mut read_bytes = head.len() as u64;
    loop {
        match read::head_extent(&head)? {
            read::HeadExtent::Complete(n) => {
                head.truncate(n + 8);
                return Ok((head, read_bytes));
            }
            read::HeadExtent::Need(n) if (n as u64) <= chunk.size => {
                let have = head.len() as u64;
                let more = fetch.clone().read(have, n as u64 - have).await?;
                read_bytes += more.len() as u64;
                head.extend_from_slice(&more);
            }
            read::HeadExtent::Need(_) => {
                bail!(
                    "{}: no mdat in its {} bytes",
                    chunk.manifest.name,
                    chunk.size
                );
            }
        }
    }
}

/// Each chunk's place on the clip's timeline: the stream time of the chunk holding `from`
/// (the chunks' offsets since their session began). Wall clock and media time drift apart a
/// little over a stream, so within an unbroken run the offsets place the chunks; a run after a
/// gap starts at its wall-clock distance from the anchor (never before the run ahead ends).
fn offsets(cover: &Cover) -> Vec<i64> {
    let anchor = &cover.chunks[0];
    let mut out: Vec<i64> = Vec::with_capacity(cover.chunks.len());
    let mut run_start = anchor;
    let mut run_base = anchor.manifest.stream_offset_ms as i64;
    for (i, c) in cover.chunks.iter().enumerate() {
        if cover.gaps.iter().any(|(g, _)| *g == i) {
            let prev = &cover.chunks[i - 1];
            let prev_end = out[i - 1] + prev.manifest.duration_ms as i64;
            let wall = anchor.manifest.stream_offset_ms as i64 + (c.start_ms - anchor.start_ms);
            run_start = c;
            run_base = wall.max(prev_end);
        }
        out.push(
            run_base + c.manifest.stream_offset_ms as i64
                - run_start.manifest.stream_offset_ms as i64,
        );
    }
    out
}

async fn write_clip(
    cover: &Cover,
    reader: &Reader,
    from: i64,
    to: i64,
    output: &Path,
) -> Result<Made> {
    let chain = &cover.chunks;
    let anchor = &chain[0];
    let stream_ms = |utc: i64| anchor.manifest.stream_offset_ms as i64 + (utc - anchor.start_ms);
    let window = Window {
        from_ms: stream_ms(from),
        to_ms: stream_ms(to),
    };
    let offsets = offsets(cover);

    let mut fetches = Vec::with_capacity(chain.len());
    for c in chain {
        fetches.push(Fetch::open(reader, c).await?);
    }
    let mut movies = Vec::with_capacity(chain.len());
    let mut bases = Vec::with_capacity(chain.len());
    let mut base = 0u64;
    let mut read_bytes = 0u64;
    for (c, fetch) in chain.iter().zip(&fetches) {
        let (head, read) = read_head(fetch, c)
            .await
            .with_context(|| format!("reading the head of {}", c.manifest.name))?;
        read_bytes += read;
        movies.push(
            read::parse(&head)
                .with_context(|| format!("{} is not one of our MP4s", c.manifest.name))?,
        );
        bases.push(base);
        base += c.size;
    }
    let pieces: Vec<Piece> = (0..chain.len())
        .map(|i| Piece {
            movie: &movies[i],
            offset_ms: offsets[i],
            base: bases[i],
            after_gap: cover.gaps.iter().any(|(g, _)| *g == i),
        })
        .collect();
    let movie = plan(&pieces, window)?;
    // Seconds since 1904 (the MP4 epoch) of the clip's start.
    let creation = (from / 1000 + 2_082_844_800).max(0) as u64;
    let layout = movie.layout(creation)?;
    let reads = coalesce(&bases, &layout.ranges);

    let partial = output.with_extension("mp4.partial");
    let written = async {
        if let Reader::Disk = reader {
            let files: Vec<(Arc<File>, PathBuf)> = fetches
                .iter()
                .filter_map(|f| match f {
                    Fetch::File(file, path) => Some((Arc::clone(file), path.clone())),
                    Fetch::S3(..) => None,
                })
                .collect();
            let (partial, head) = (partial.clone(), layout.head.clone());
            read_bytes +=
                tokio::task::spawn_blocking(move || copy::write(&partial, &head, &files, &reads))
                    .await
                    .context("copying the clip: task panicked")??;
            return Ok(());
        }
        let mut out = Output::create(&partial).await?;
        out.write(layout.head.clone()).await?;
        // Reads run ahead, several at once; their bytes go out in order.
        let mut pending = VecDeque::new();
        let mut next = reads.iter();
        loop {
            while pending.len() < S3_READS_IN_FLIGHT {
                let Some(&(piece, offset, len)) = next.next() else {
                    break;
                };
                let read = fetches[piece].clone().read(offset, len);
                pending.push_back(tokio::spawn(read));
            }
            let Some(read) = pending.pop_front() else {
                break;
            };
            let bytes = read.await.context("reading a chunk: task panicked")??;
            read_bytes += bytes.len() as u64;
            out.write(bytes).await?;
        }
        out.finish().await
    };
    if let Err(e) = written.await {
        let _ = tokio::fs::remove_file(&partial).await;
        return Err(e.context(format!("writing {}", partial.display())));
    }
    tokio::fs::rename(&partial, output)
        .await
        .with_context(|| format!("renaming {} to {}", partial.display(), output.display()))?;
    Ok(Made {
        chunks: chain.iter().map(|c| c.manifest.name.clone()).collect(),
        bytes: layout.file_size,
        read: read_bytes,
        duration_ms: to - from,
    })
}

/// The clip's file, written off the async workers.
struct Output {
    file: Option<std::io::BufWriter<File>>,
}

impl Output {
    async fn create(path: &Path) -> Result<Output> {
        let path = path.to_path_buf();
        let file = tokio::task::spawn_blocking(move || {
            File::create(&path).with_context(|| format!("creating {}", path.display()))
        })
        .await
        .context("creating the clip: task panicked")??;
        Ok(Output {
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
        })
    }

    async fn write(&mut self, bytes: Vec<u8>) -> Result<()> {
        let mut file = self.file.take().context("clip output already closed")?;
        let file = tokio::task::spawn_blocking(move || file.write_all(&bytes).map(|()| file))
            .await
            .context("writing the clip: task panicked")??;
        self.file = Some(file);
        Ok(())
    }

    /// Flushes and fsyncs.
    async fn finish(mut self) -> Result<()> {
        let file = self.file.take().context("clip output already closed")?;
        tokio::task::spawn_blocking(move || -> Result<()> {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            Ok(())
        })
        .await
        .context("finishing the clip: task panicked")?
    }
}

/// The copy plan as reads: (piece, offset in its file, length), contiguous ranges of one piece
/// merged (a clip keeps both tracks of a span, so most of a chunk's span is one read).
fn coalesce(bases: &[u64], ranges: &[(u64, u32)]) -> Vec<(usize, u64, u64)> {
    let mut out: Vec<(usize, u64, u64)> = Vec::new();
    for &(address, len) in ranges {
        let (piece, offset) = locate(bases, address);
        match out.last_mut() {
            Some((p, o, l)) if *p == piece && *o + *l == offset && *l < MAX_READ => {
                *l += u64::from(len);
            }
            _ => out.push((piece, offset, u64::from(len))),
        }
    }
    out
}
