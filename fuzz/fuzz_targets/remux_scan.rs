//! Remux of any FLV: pass 1 (scan into sample tables), the MP4 layout, pass 2 (copy), then
//! the written MP4 read back by the clip reader. Whatever remux accepts it must write as an MP4
//! whose head parses and whose size is what the layout promised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtmp_recorder::mp4::read;
use rtmp_recorder::remux::copy::write_mp4;
use rtmp_recorder::remux::scan::scan;

fuzz_target!(|data: &[u8]| {
    let Ok(scanned) = scan(data, data.len() as u64) else {
        return;
    };
    let Ok(layout) = scanned.movie.layout(0) else {
        return;
    };
    let mut mp4 = Vec::new();
    let written =
        write_mp4(data, &layout.head, &layout.ranges, &mut mp4).expect("ranges lie in the source");
    assert_eq!(written, layout.file_size);
    assert_eq!(mp4.len() as u64, layout.file_size);
    let stored = read::parse(&mp4).expect("our own MP4 head parses");
    let samples: usize = stored.tracks.iter().map(|t| t.samples.len()).sum();
    // Tracks without samples are left out of the file.
    let summaries: Vec<_> = scanned
        .movie
        .summaries()
        .into_iter()
        .filter(|t| t.frames > 0)
        .collect();
    assert_eq!(stored.tracks.len(), summaries.len());
    for s in stored.tracks.iter().flat_map(|t| &t.samples) {
        assert!(s.offset + u64::from(s.size) <= mp4.len() as u64);
    }
    assert_eq!(
        samples as u64,
        summaries.iter().map(|t| t.frames).sum::<u64>()
    );
});
