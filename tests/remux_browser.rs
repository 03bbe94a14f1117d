//! A real browser plays our MP4: Debian's chromium, headless, loads a page with a muted autoplay
//! `<video>` of a remuxed chunk from the test's HTTP server, which honours Range requests as any
//! CDN or S3 does. After ~2 s of playback the page posts readyState, duration and currentTime
//! back; we assert it played, and that the browser fetched the file by ranges (answered 206).

use crate::support::{Turn, remux, words};

use std::path::{Path, PathBuf};
use std::time::Duration;

use remux::*;

const PAGE: &str = r#"<!doctype html>
<html><body>
<video id="v" src="/chunk.mp4" muted autoplay playsinline></video>
<script>
const v = document.getElementById('v');
function report(extra) {
  const r = {readyState: v.readyState, duration: v.duration, currentTime: v.currentTime,
             error: v.error ? v.error.code : 0, width: v.videoWidth, height: v.videoHeight, ...extra};
  fetch('/result', {method: 'POST', body: JSON.stringify(r)});
}
v.addEventListener('error', () => report({event: 'error'}));
v.addEventListener('playing', () => setTimeout(() => report({event: 'played'}), 2000), {once: true});
setTimeout(() => report({event: 'timeout'}), 20000);
</script>
</body></html>"#;

fn remuxed_chunk(dir: &Path) -> PathBuf {
    let flv = dir.join("in.flv");
    encode(
        &flv,
        &testsrc_av("640x360"),
        &words(
            "-t 5 -c:v libx264 -preset veryfast -profile:v high -bf 3 -pix_fmt yuv420p -c:a aac -ar 48000",
        ),
    );
    remux_one(dir, &flv).0
}

#[test]
fn chromium_plays_the_remuxed_chunk() {
    let dir = Turn::shared().scratch();
    let mp4 = remuxed_chunk(dir.path());
    let report = browser::chromium_report(PAGE, &mp4, Duration::from_secs(60));
    let r = &report.json;
    eprintln!("chromium reported: {r}");
    assert_eq!(r["event"], "played", "{r}");
    assert_eq!(r["error"], 0, "{r}");
    assert_eq!(r["readyState"], 4, "{r}");
    assert_eq!(r["width"], 640, "{r}");
    let duration = r["duration"].as_f64().unwrap();
    assert!((4.9..=5.2).contains(&duration), "duration {duration}: {r}");
    let t = r["currentTime"].as_f64().unwrap();
    assert!(t >= 1.0, "playback did not advance: {r}");
    let ranged: Vec<_> = report
        .requests
        .iter()
        .filter(|q| q.path == "/chunk.mp4" && q.range.is_some())
        .collect();
    eprintln!("requests: {:?}", report.requests);
    assert!(
        !ranged.is_empty() && ranged.iter().all(|q| q.status == 206),
        "the browser made no Range request answered 206: {:?}",
        report.requests
    );
}
