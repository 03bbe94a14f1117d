//! ffmpeg publishes 26 s of 720p30 H.264 High (B-frames, 2 s GOP) + AAC into ingest with
//! `--chunk-duration 10s`: the chunks in `remux/` hold exactly the published packets, split at
//! the first keyframe after 10 s, each a self-contained FLV.

use crate::support::ingest::{self, ffmpeg_publish};

#[test]
fn ffmpeg_publish_is_chunked_losslessly() {
    ingest::chunks_exactly_what_was_published(ffmpeg_publish, "cam1");
}
