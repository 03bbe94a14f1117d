//! Chunking of the messages we send (spec 5.3): a type 0 header, then type 3 continuation chunks.
//! Our replies are few and small, so no header compression across messages is attempted.

use super::chunk_reader::DEFAULT_CHUNK_SIZE;

const EXTENDED_TIMESTAMP: u32 = 0xFF_FFFF;

#[derive(Debug)]
pub struct ChunkWriter {
    chunk_size: u32,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        ChunkWriter {
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

impl ChunkWriter {
    /// Call after the Set Chunk Size message announcing `size` has been written.
    pub fn set_chunk_size(&mut self, size: u32) {
        self.chunk_size = size.max(1);
    }

    pub fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    /// Appends `payload` as one message on chunk stream `csid` (2..=65599).
    pub fn write(
        &self,
        out: &mut Vec<u8>,
        csid: u32,
        timestamp: u32,
        type_id: u8,
        stream_id: u32,
        payload: &[u8],
    ) {
        let extended = timestamp >= EXTENDED_TIMESTAMP;
        let mut chunks = payload.chunks(self.chunk_size as usize);
        basic_header(out, 0, csid);
        let field = if extended {
            EXTENDED_TIMESTAMP
        } else {
            timestamp
        };
        out.extend_from_slice(&field.to_be_bytes()[1..]);
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
        out.push(type_id);
        out.extend_from_slice(&stream_id.to_le_bytes());
        if extended {
            out.extend_from_slice(&timestamp.to_be_bytes());
        }
        if let Some(first) = chunks.next() {
            out.extend_from_slice(first);
        }
        for chunk in chunks {
            basic_header(out, 3, csid);
            if extended {
                out.extend_from_slice(&timestamp.to_be_bytes());
            }
            out.extend_from_slice(chunk);
        }
    }
}

fn basic_header(out: &mut Vec<u8>, fmt: u8, csid: u32) {
    let fmt = fmt << 6;
    match csid {
        2..=63 => out.push(fmt | csid as u8),
        64..=319 => out.extend_from_slice(&[fmt, (csid - 64) as u8]),
        _ => {
            let rest = csid.saturating_sub(64);
            out.extend_from_slice(&[fmt | 1, (rest & 0xFF) as u8, ((rest >> 8) & 0xFF) as u8]);
        }
    }
}
