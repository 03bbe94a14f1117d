//! Pass 2 of the remux: writes the MP4 head, then the `mdat` body by copying the samples'
//! byte ranges out of the FLV. The ranges ascend through the source, so the source is read
//! once, front to back, in large blocks; output goes out in large writes. Memory: two blocks.

use std::io::{self, Write};

use super::scan::ReadAt;

/// Size of the read block and of the write batch.
pub const BLOCK: usize = 2 << 20;

/// Writes `head` then the concatenation of `ranges` (offset, length; ascending, disjoint) of
/// `src` to `out`. Returns the bytes written.
pub fn write_mp4<R: ReadAt + ?Sized, W: Write>(
    src: &R,
    head: &[u8],
    ranges: &[(u64, u32)],
    out: &mut W,
) -> io::Result<u64> {
    let mut outbuf: Vec<u8> = Vec::with_capacity(BLOCK);
    outbuf.extend_from_slice(head);
    let mut written = 0u64;
    let mut block = vec![0u8; BLOCK];
    // The source bytes currently in `block`: [start, start + filled).
    let mut start = 0u64;
    let mut filled = 0usize;
    for &(offset, len) in ranges {
        let mut offset = offset;
        let mut left = len as usize;
        while left > 0 {
            if offset < start || offset >= start + filled as u64 {
                start = offset;
                filled = fill(src, &mut block, start)?;
                if filled == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("source ends before offset {offset}"),
                    ));
                }
            }
            let at = (offset - start) as usize;
            let n = left.min(filled - at);
            if outbuf.len() + n > BLOCK {
                out.write_all(&outbuf)?;
                written += outbuf.len() as u64;
                outbuf.clear();
            }
            if n >= BLOCK {
                out.write_all(&block[at..at + n])?;
                written += n as u64;
            } else {
                outbuf.extend_from_slice(&block[at..at + n]);
            }
            offset += n as u64;
            left -= n;
        }
    }
    out.write_all(&outbuf)?;
    written += outbuf.len() as u64;
    Ok(written)
}

/// Reads as much of `buf` as the source holds from `offset`.
fn fill<R: ReadAt + ?Sized>(src: &R, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match src.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_ranges_across_blocks() {
        let src: Vec<u8> = (0..(3 * BLOCK + 17)).map(|i| (i % 251) as u8).collect();
        let ranges = [
            (5u64, 10u32),
            (BLOCK as u64 - 3, 7),
            (BLOCK as u64 + 100, (BLOCK + 50) as u32),
            (3 * BLOCK as u64, 17),
        ];
        let mut out = Vec::new();
        let n = write_mp4(src.as_slice(), b"HEAD", &ranges, &mut out).unwrap();
        let mut want = b"HEAD".to_vec();
        for &(o, l) in &ranges {
            want.extend_from_slice(&src[o as usize..o as usize + l as usize]);
        }
        assert_eq!(n as usize, want.len());
        assert!(out == want);
        let short = [(3 * BLOCK as u64 + 10, 20u32)];
        assert!(write_mp4(src.as_slice(), b"", &short, &mut Vec::new()).is_err());
    }
}
