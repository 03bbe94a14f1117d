//! A clip planned and ready: its head (the clip's bytes up to its `mdat` payload) and the
//! chunks' byte ranges that follow, in order. Written to a file by `clip`, or served part by
//! part (any byte range of it) by `GET /clip`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};

use super::GapLine;
use super::chain::Cover;
use super::copy;
use super::fetch::{Fetch, Reader, read_head};
use crate::mp4::clip::{Piece, locate, plan};
use crate::mp4::{Window, read};

/// Contiguous ranges of one chunk are read as one, up to this much at a time.
const MAX_READ: u64 = 4 << 20;
/// Reads in flight from S3 (each at most [`MAX_READ`]); the output is written in order.
const S3_READS_IN_FLIGHT: usize = 8;

/// A clip ready to be written or served: its head (the clip's bytes up to its `mdat`
/// payload) and the source ranges that follow, in order. Only the chunks' heads have been
/// read so far.
pub struct Prepared {
    pub chunks: Vec<String>,
    pub gaps: Vec<GapLine>,
    pub duration_ms: i64,
    pub file_size: u64,
    /// Bytes read to plan it (the chunks' heads).
    pub head_read: u64,
    head: Arc<[u8]>,
    /// (chunk index, offset in its MP4, length), contiguous ranges merged.
    reads: Vec<(usize, u64, u64)>,
    fetches: Vec<Fetch>,
}

/// One stretch of a clip's bytes: from its head, or from a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Head { start: usize, end: usize },
    Source { chunk: usize, offset: u64, len: u64 },
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

pub(super) async fn plan_clip(
    cover: &Cover,
    reader: &Reader,
    from: i64,
    to: i64,
    chunks: Vec<String>,
    gaps: Vec<GapLine>,
) -> Result<Prepared> {
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
    let mut head_read = 0u64;
    for (c, fetch) in chain.iter().zip(&fetches) {
        let (head, read) = read_head(fetch, c)
            .await
            .with_context(|| format!("reading the head of {}", c.manifest.name))?;
        head_read += read;
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
    Ok(Prepared {
        chunks,
        gaps,
        duration_ms: to - from,
        file_size: layout.file_size,
        head_read,
        head: layout.head.into(),
        reads,
        fetches,
    })
}

impl Prepared {
    /// Writes the clip to `output` (atomically: a partial file renamed into place), fsynced.
    /// Returns the bytes read from the chunks, heads included.
    pub async fn write_file(self: &Arc<Self>, output: &Path) -> Result<u64> {
        let partial = output.with_extension("mp4.partial");
        let mut read_bytes = self.head_read;
        let written = async {
            if !self.reads_remote() {
                let files: Vec<(Arc<File>, PathBuf)> = self
                    .fetches
                    .iter()
                    .filter_map(|f| match f {
                        Fetch::File(file, path) => Some((Arc::clone(file), path.clone())),
                        Fetch::S3(..) => None,
                    })
                    .collect();
                let (partial, head, reads) =
                    (partial.clone(), Arc::clone(&self.head), self.reads.clone());
                read_bytes += tokio::task::spawn_blocking(move || {
                    copy::write(&partial, &head, &files, &reads)
                })
                .await
                .context("copying the clip: task panicked")??;
                return Ok(());
            }
            let mut out = Output::create(&partial).await?;
            out.write(self.head.to_vec()).await?;
            let parts = self.parts(self.head.len() as u64, self.file_size, MAX_READ);
            let mut bytes = Arc::clone(self).read_ahead(parts, S3_READS_IN_FLIGHT);
            while let Some(part) = bytes.recv().await {
                let part = part?;
                read_bytes += part.len() as u64;
                out.write(part).await?;
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
        Ok(read_bytes)
    }

    /// The bytes of `parts`, in order, read `in_flight` at a time ahead of the consumer by a
    /// task of their own (so a slow consumer does not hold a read open). The first failed read
    /// ends the sequence with its error; a consumer that drops the receiver stops the reads.
    pub fn read_ahead(
        self: Arc<Self>,
        parts: Vec<Part>,
        in_flight: usize,
    ) -> tokio::sync::mpsc::Receiver<Result<Vec<u8>>> {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        tokio::spawn(async move {
            let mut parts = parts.into_iter();
            let mut pending = VecDeque::new();
            loop {
                while pending.len() < in_flight.max(1) {
                    let Some(part) = parts.next() else { break };
                    let me = Arc::clone(&self);
                    pending.push_back(tokio::spawn(async move { me.read_part(part).await }));
                }
                let Some(next) = pending.pop_front() else {
                    break;
                };
                let item = match next.await {
                    Ok(r) => r,
                    Err(e) => Err(anyhow::anyhow!("a clip read panicked: {e}")),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
            for p in pending {
                p.abort();
            }
        });
        rx
    }

    /// The parts that make up bytes `start..end` of the clip, in order; none from a chunk is
    /// longer than `max_part` (so a server streaming them holds little at a time; the head, a
    /// few KiB per chunk, is one part).
    pub fn parts(&self, start: u64, end: u64, max_part: u64) -> Vec<Part> {
        parts_of(self.head.len() as u64, &self.reads, start, end, max_part)
    }

    /// The bytes of one part.
    pub async fn read_part(&self, part: Part) -> Result<Vec<u8>> {
        match part {
            Part::Head { start, end } => Ok(self.head[start..end].to_vec()),
            Part::Source { chunk, offset, len } => {
                self.fetches[chunk].clone().read(offset, len).await
            }
        }
    }

    /// Whether reads go to S3 (worth having several in flight) or to local files.
    pub fn reads_remote(&self) -> bool {
        self.fetches.iter().any(|f| matches!(f, Fetch::S3(..)))
    }
}

/// Pure part of [`Prepared::parts`]: the clip is `head_len` bytes of head, then `reads`.
fn parts_of(
    head_len: u64,
    reads: &[(usize, u64, u64)],
    start: u64,
    end: u64,
    max_part: u64,
) -> Vec<Part> {
    let mut out = Vec::new();
    if start < head_len {
        out.push(Part::Head {
            start: start as usize,
            end: end.min(head_len) as usize,
        });
    }
    let mut at = head_len;
    for &(chunk, offset, len) in reads {
        let (lo, hi) = (start.max(at), end.min(at + len));
        let mut pos = lo;
        while pos < hi {
            let n = (hi - pos).min(max_part.max(1));
            out.push(Part::Source {
                chunk,
                offset: offset + (pos - at),
                len: n,
            });
            pos += n;
        }
        at += len;
        if at >= end {
            break;
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A clip of 10 head bytes, then 100 bytes of chunk 0 at 1000, then 50 of chunk 1 at 20.
    const READS: &[(usize, u64, u64)] = &[(0, 1000, 100), (1, 20, 50)];

    fn bytes_of(parts: &[Part]) -> u64 {
        parts
            .iter()
            .map(|p| match *p {
                Part::Head { start, end } => (end - start) as u64,
                Part::Source { len, .. } => len,
            })
            .sum()
    }

    #[test]
    fn the_whole_clip_is_the_head_then_every_read() {
        let parts = parts_of(10, READS, 0, 160, 1 << 20);
        assert_eq!(
            parts,
            vec![
                Part::Head { start: 0, end: 10 },
                Part::Source {
                    chunk: 0,
                    offset: 1000,
                    len: 100
                },
                Part::Source {
                    chunk: 1,
                    offset: 20,
                    len: 50
                },
            ]
        );
    }

    #[test]
    fn a_range_maps_into_the_reads_it_overlaps() {
        // Bytes 105..125: the last 5 of chunk 0's read and the first 15 of chunk 1's.
        assert_eq!(
            parts_of(10, READS, 105, 125, 1 << 20),
            vec![
                Part::Source {
                    chunk: 0,
                    offset: 1095,
                    len: 5
                },
                Part::Source {
                    chunk: 1,
                    offset: 20,
                    len: 15
                },
            ]
        );
        assert_eq!(
            parts_of(10, READS, 3, 5, 1 << 20),
            vec![Part::Head { start: 3, end: 5 }]
        );
        assert!(parts_of(10, READS, 160, 160, 1 << 20).is_empty());
    }

    #[test]
    fn parts_are_split_to_the_limit_and_cover_every_byte_once() {
        for (start, end) in [(0, 160), (7, 131), (10, 110), (59, 60)] {
            let parts = parts_of(10, READS, start, end, 16);
            assert_eq!(bytes_of(&parts), end - start, "{start}..{end}");
            assert!(parts.iter().all(|p| match p {
                Part::Source { len, .. } => *len <= 16,
                Part::Head { .. } => true,
            }));
        }
    }
}
