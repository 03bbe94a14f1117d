//! `rtmp-recorder clip <app>/<stream> --from T --to T -o FILE`: one faststart MP4 of a span of a
//! recorded stream, cut from its published chunks without re-encoding. The shell: it finds the
//! chunks through their manifests ([`sources`]), reads each MP4's head and then only the byte
//! ranges of the samples the clip needs; the cutting itself is `mp4::clip` (pure).
//!
//! Gaps are never hidden: a span not covered by one unbroken chain of chunks (a reconnect, a
//! lost chunk, before the recording began or after it ended) is refused with what is missing.

mod sources;

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::exit::{self, Coded};
use crate::mp4::clip::{Piece, locate, plan};
use crate::mp4::{Window, read};
use crate::publish::Destination;
use crate::spool::StateDir;
use crate::utc::Civil;
use sources::Chunk;

/// The chunks' boundaries may be this far apart (or overlap) and still count as one chain:
/// a chunk's duration is its decode span, which ends a frame before the next chunk starts.
const SEAM_TOLERANCE_MS: i64 = 250;
/// What the first read of a chunk takes; our heads are a few hundred KiB at most per hour.
const HEAD_GUESS: usize = 256 * 1024;
/// Contiguous ranges of one chunk are read as one, up to this much at a time.
const MAX_READ: u64 = 4 << 20;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The stream: `<app>/<stream>`, the stream's label as in its chunk names.
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
    /// Where the chunks were published: the same options as `publish` (default: where publish
    /// writes). Chunks still in the state directory (publish/, archive/) are found too.
    #[command(flatten)]
    pub publish: crate::publish::Args,
}

/// What a clip was made of, for the caller to print.
#[derive(Debug)]
pub struct Made {
    pub chunks: Vec<String>,
    pub bytes: u64,
    pub read: u64,
    pub duration_ms: i64,
}

pub async fn run(state: StateDir, args: Args) -> Result<()> {
    let made = tokio::task::spawn_blocking(move || clip(&state, &args))
        .await
        .context("clip task panicked")??;
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

fn usage(message: String) -> anyhow::Error {
    Coded::new(exit::USAGE, message).into()
}

fn clip(state: &StateDir, args: &Args) -> Result<Made> {
    let Some((app, stream)) = args.stream.split_once('/') else {
        return Err(usage(format!(
            "{:?}: name the stream as <app>/<stream>, e.g. live/cam1",
            args.stream
        )));
    };
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
    let mut roots = vec![state.publish_inbox(), state.archive()];
    match args.publish.destination(state)? {
        Destination::Dir(dir) => roots.push(dir),
        Destination::S3 { bucket, .. } => {
            return Err(usage(format!(
                "clips are read from the state directory and file:// destinations; reading \
                 s3://{bucket} is not implemented yet (download the chunks, or clip on the recorder)"
            )));
        }
    }
    let all = sources::find(&roots, app, stream)?;
    let chain = covering(&all, from, to).map_err(|why| {
        anyhow::anyhow!(
            "{app}/{stream} from {} to {}: {why} (looked in {})",
            args.from,
            args.to,
            roots
                .iter()
                .map(|r| r.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    write_clip(&chain, from, to, &args.output)
}

/// The chunks that cover `from..to` (Unix ms) as one unbroken chain, or why there are none.
fn covering(all: &[Chunk], from: i64, to: i64) -> Result<Vec<Chunk>, String> {
    let chosen: Vec<&Chunk> = all
        .iter()
        .filter(|c| c.end_ms() > from && c.start_ms < to)
        .collect();
    let (Some(first), Some(last)) = (chosen.first(), chosen.last()) else {
        return Err("nothing was recorded in that span".to_string());
    };
    if first.start_ms > from + SEAM_TOLERANCE_MS {
        return Err(format!(
            "the recording begins at {}, after the clip's start",
            first.manifest.utc_start
        ));
    }
    if last.end_ms() + SEAM_TOLERANCE_MS < to {
        return Err(format!(
            "the recording stops at {}, before the clip's end",
            Civil::from_unix_millis(last.end_ms()).rfc3339()
        ));
    }
    for pair in chosen.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let chained = b.manifest.previous.as_deref() == Some(a.manifest.name.as_str())
            && b.manifest.sequence == a.manifest.sequence + 1;
        if !chained {
            return Err(format!(
                "gap between {} and {}: they are not consecutive chunks of one session \
                 (a reconnect, or a chunk missing); clips never hide a gap",
                a.manifest.name, b.manifest.name
            ));
        }
    }
    Ok(chosen.into_iter().cloned().collect())
}

fn write_clip(chain: &[Chunk], from: i64, to: i64, output: &Path) -> Result<Made> {
    // Stream time: the chunks' offsets since their session began; the first chunk anchors the
    // wall clock to it.
    let anchor = &chain[0];
    let stream_ms = |utc: i64| anchor.manifest.stream_offset_ms as i64 + (utc - anchor.start_ms);
    let window = Window {
        from_ms: stream_ms(from),
        to_ms: stream_ms(to),
    };

    let mut files = Vec::with_capacity(chain.len());
    let mut movies = Vec::with_capacity(chain.len());
    let mut bases = Vec::with_capacity(chain.len());
    let mut base = 0u64;
    let mut read_bytes = 0u64;
    for c in chain {
        let file = File::open(&c.mp4).with_context(|| format!("opening {}", c.mp4.display()))?;
        let size = file
            .metadata()
            .with_context(|| format!("reading {}", c.mp4.display()))?
            .len();
        let head =
            read_head(&file, size).with_context(|| format!("reading {}", c.mp4.display()))?;
        read_bytes += head.len() as u64;
        movies.push(
            read::parse(&head)
                .with_context(|| format!("{} is not one of our MP4s", c.mp4.display()))?,
        );
        files.push(file);
        bases.push(base);
        base += size;
    }
    let pieces: Vec<Piece> = chain
        .iter()
        .zip(&movies)
        .zip(&bases)
        .map(|((c, movie), &base)| Piece {
            movie,
            offset_ms: c.manifest.stream_offset_ms as i64,
            base,
        })
        .collect();
    let movie = plan(&pieces, window)?;
    // Seconds since 1904 (the MP4 epoch) of the clip's start.
    let creation = (from / 1000 + 2_082_844_800).max(0) as u64;
    let layout = movie.layout(creation)?;

    let partial = output.with_extension("mp4.partial");
    let out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&partial)
        .with_context(|| format!("creating {}", partial.display()))?;
    let mut w = BufWriter::with_capacity(1 << 20, out);
    let written = (|| -> Result<()> {
        w.write_all(&layout.head)?;
        let mut buf = Vec::new();
        for (piece, offset, len) in coalesce(&bases, &layout.ranges) {
            buf.resize(len as usize, 0);
            files[piece]
                .read_exact_at(&mut buf, offset)
                .with_context(|| format!("reading {}", chain[piece].mp4.display()))?;
            read_bytes += len;
            w.write_all(&buf)?;
        }
        let out = w.into_inner().map_err(|e| e.into_error())?;
        out.sync_all()?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e.context(format!("writing {}", partial.display())));
    }
    std::fs::rename(&partial, output)
        .with_context(|| format!("renaming {} to {}", partial.display(), output.display()))?;
    Ok(Made {
        chunks: chain.iter().map(|c| c.manifest.name.clone()).collect(),
        bytes: layout.file_size,
        read: read_bytes,
        duration_ms: to - from,
    })
}

/// Reads a chunk's head: a first guess, then exactly what its box headers say it needs.
fn read_head(file: &File, size: u64) -> Result<Vec<u8>> {
    let mut want = HEAD_GUESS.min(size as usize);
    loop {
        let mut head = vec![0u8; want];
        file.read_exact_at(&mut head, 0)?;
        if let Some(len) = read::head_len(&head)? {
            head.truncate(len + 8);
            return Ok(head);
        }
        if want as u64 >= size {
            bail!("no mdat in {size} bytes");
        }
        want = (want * 4).min(size as usize);
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
