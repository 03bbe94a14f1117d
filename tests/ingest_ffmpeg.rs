//! ffmpeg publishes 26 s of 720p30 H.264 High (B-frames, 2 s GOP) + AAC into ingest with
//! `--chunk-duration 10s`: the chunks in `remux/` hold exactly the published packets, split at
//! the first keyframe after 10 s, each a self-contained FLV.

use crate::support::{Turn, ingest};

use std::time::Duration;

use ingest::*;

#[test]
fn ffmpeg_publish_is_chunked_losslessly() {
    let dir = Turn::alone().scratch();
    let rec = Recorder::start(dir.path(), &[]);
    let secs = 26;
    let mut publisher = ffmpeg_publish(
        &rec.url("live", "cam1"),
        secs,
        &PublishOpts::new(dir.path(), "ffmpeg"),
    );
    publisher.wait_ok(Duration::from_secs(secs as u64 + 30));

    // 0-10 s, 10-20 s, 20-26 s; the last closes when the publisher disconnects.
    let chunks = rec.wait_chunks(3, Duration::from_secs(15));
    check_chunks_against_reference(&chunks, &publisher.reference, "live", "cam1");
    for c in &chunks {
        assert_eq!(decode_errors(c), "", "{} decodes cleanly", c.display());
    }
}
