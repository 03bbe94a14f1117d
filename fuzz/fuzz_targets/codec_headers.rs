//! The codec configuration parsers: sequence headers come from the publisher unchecked.
//! The first byte picks the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp_recorder::mp4::SampleEntry;
use rtmp_recorder::mp4::params;

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let entry = match which % 9 {
        0 => SampleEntry::avc(bytes),
        1 => SampleEntry::hevc(bytes),
        2 => SampleEntry::av1(bytes, 1280, 720),
        3 => SampleEntry::aac(bytes),
        4 => SampleEntry::mp3(bytes),
        5 => return drop(params::h264_dimensions(bytes)),
        6 => return drop(params::hevc_dimensions(bytes)),
        7 => return drop(params::av1_dimensions(bytes)),
        _ => return drop((params::aac_config(bytes), params::mp3_header(bytes))),
    };
    // An entry that parsed must describe itself and encode into a sample description.
    if let Ok(entry) = entry {
        let _ = entry.codec_string();
        let _ = (entry.timescale(), entry.frame_ticks(), entry.dimensions());
        let _ = entry.to_codec(1);
    }
});
