//! The RTMP chunk stream alone: any bytes, any chunk size, any read boundaries. The reader must
//! return messages or an error, never panic, and never hold more than its bound.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp_recorder::rtmp::chunk_reader::ChunkReader;

const MAX_MESSAGE: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&[size_hi, size_lo, split], data)) = data.split_first_chunk::<3>() else {
        return;
    };
    let mut reader = ChunkReader::new(MAX_MESSAGE, 8);
    reader.set_chunk_size(u32::from(u16::from_be_bytes([size_hi, size_lo])));
    for mut piece in data.chunks(usize::from(split).max(1)) {
        loop {
            match reader.read(&mut piece) {
                Ok(Some(message)) => {
                    assert!(message.payload.len() <= MAX_MESSAGE as usize);
                }
                Ok(None) => break,
                Err(_) => return,
            }
            assert!(reader.bytes_buffered() <= 2 * MAX_MESSAGE as usize + 64);
        }
    }
});
