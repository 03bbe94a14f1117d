//! GStreamer (x264enc, flvmux, rtmp2sink) publishes 26 s of 720p30 H.264 High + AAC into ingest with
//! `--chunk-duration 10s`: the chunks in `remux/` hold exactly the published packets, split at
//! the first keyframe after 10 s, each a self-contained FLV.

use crate::support::ingest::{self, gst_publish};

#[test]
fn gstreamer_publish_is_chunked_losslessly() {
    ingest::chunks_exactly_what_was_published(gst_publish, "gst-cam");
}
