//! AMF0 decoding of untrusted bytes (command arguments, metadata). Whatever decodes must encode
//! and decode again to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp_recorder::amf0::{decode_all, encode_all};

fuzz_target!(|data: &[u8]| {
    let Ok(values) = decode_all(data) else {
        return;
    };
    let encoded = encode_all(&values);
    let again = decode_all(&encoded).expect("our own encoding decodes");
    assert_eq!(encode_all(&again), encoded);
});
