//! The FLV reader and the tag body parsers on any file: hand-copied FLVs and salvaged chunks
//! reach them.
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use rtmp_recorder::flv::{
    FlvReader, TagType, complete_prefix_len, parse_audio, parse_video, script,
};

fuzz_target!(|data: &[u8]| {
    let complete = complete_prefix_len(Cursor::new(data));
    let Ok(mut reader) = FlvReader::new(Cursor::new(data)) else {
        return;
    };
    let mut end = reader.position();
    loop {
        match reader.next_tag() {
            Ok(Some(tag)) => {
                let body = reader.body();
                match tag.header.tag_type {
                    TagType::Video => drop(parse_video(body)),
                    TagType::Audio => drop(parse_audio(body)),
                    TagType::Script => drop(script::decode_metadata(body)),
                }
                assert!(tag.end_offset() <= data.len() as u64);
                end = tag.end_offset();
            }
            Ok(None) => break,
            Err(_) => return,
        }
    }
    // What a salvage keeps never reaches past the tags the reader returned.
    if let Ok(n) = complete {
        assert!(
            n <= end,
            "salvage keeps {n} bytes, the reader ended at {end}"
        );
    }
});
