//! A person browses the recordings: headless Chromium opens ingest's `/recordings/` (HTML),
//! follows the links folder by folder to an MP4 that remux made from a real encode, and plays
//! it in the browser's own player; then seeks to the middle. The page reports readyState,
//! duration and currentTime; the requests show the MP4 fetched by Range requests answered 206.
//! The pages come through the browser harness (same origin as its report page), byte for byte.

use crate::support::{Turn, http, remux};

use std::fs;
use std::time::Duration;

use remux::browser;

const PAGE: &str = r#"<!doctype html>
<html><body>
<iframe id="f" src="/recordings/" width="800" height="600"></iframe>
<script>
const f = document.getElementById('f');
const visited = [];
let reported = false;
function report(r) {
  if (reported) return;
  reported = true;
  r.visited = visited;
  fetch('/result', {method: 'POST', body: JSON.stringify(r)});
}
function watch(v) {
  v.muted = true;
  v.play().catch(e => report({event: 'play-refused', error: String(e)}));
  v.addEventListener('error', () => report({event: 'error', code: v.error ? v.error.code : -1}));
  // The media document may have started playing before its frame's load event: poll.
  const t = setInterval(() => {
    if (v.currentTime < 1.0) return;
    clearInterval(t);
    const played = v.currentTime;
    v.addEventListener('seeked', () => setTimeout(() => report({
      event: 'played', readyState: v.readyState, duration: v.duration, playedTo: played,
      seekedTo: v.currentTime, width: v.videoWidth}), 500), {once: true});
    v.currentTime = v.duration / 2;
  }, 100);
}
f.addEventListener('load', () => {
  const doc = f.contentDocument;
  visited.push(f.contentWindow.location.pathname);
  const video = doc.querySelector('video');
  if (video) { watch(video); return; }
  const links = [...doc.querySelectorAll('a')];
  const mp4 = links.find(a => a.getAttribute('href').endsWith('.mp4'));
  const folder = links.find(a => a.getAttribute('href').endsWith('/') && a.textContent !== '../'
                                  && a.textContent !== 'publish/' && a.textContent !== 'archive/');
  const next = mp4 || folder;
  if (!next) { report({event: 'no-link', html: doc.body.innerHTML}); return; }
  next.click();
});
setTimeout(() => report({event: 'timeout'}), 40000);
</script>
</body></html>"#;

#[test]
fn chromium_browses_to_a_recording_and_plays_and_seeks_it() {
    let dir = Turn::shared().scratch();
    let (rec, http) = http::start_with_http(dir.path(), &[]);
    let flv = dir.path().join("in.flv");
    remux::encode(
        &flv,
        &remux::testsrc_av("640x360"),
        &[
            "-t", "8", "-c:v", "libx264", "-preset", "veryfast", "-g", "30", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-ar", "48000",
        ],
    );
    let (mp4, _) = remux::remux_one(dir.path(), &flv);
    let name = "20261202T100000.000Z_live_cam1_000001.mp4";
    let published = http::published_path(&rec.state, name);
    fs::create_dir_all(published.parent().unwrap()).unwrap();
    fs::copy(&mp4, &published).unwrap();

    let report = browser::chromium_report_via(PAGE, http, Duration::from_secs(90));
    let j = &report.json;
    assert_eq!(j["event"], "played", "{j}\n{:?}", report.requests);
    assert_eq!(j["readyState"], 4, "{j}");
    let duration = j["duration"].as_f64().unwrap();
    assert!((duration - 8.0).abs() < 0.2, "duration {duration}");
    assert!(j["playedTo"].as_f64().unwrap() > 0.5, "{j}");
    let seeked = j["seekedTo"].as_f64().unwrap();
    assert!(seeked >= duration / 2.0 - 0.1, "seeked to {seeked}");
    assert_eq!(j["width"], 640);
    let visited: Vec<&str> = j["visited"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(
        visited,
        [
            "/recordings/",
            "/recordings/published/",
            "/recordings/published/live/",
            "/recordings/published/live/cam1/",
            "/recordings/published/live/cam1/2026/",
            "/recordings/published/live/cam1/2026/12/",
            "/recordings/published/live/cam1/2026/12/02/",
            &format!("/recordings/published/live/cam1/2026/12/02/{name}"),
        ]
    );
    let ranged: Vec<_> = report
        .requests
        .iter()
        .filter(|r| r.path.ends_with(".mp4") && r.range.is_some())
        .collect();
    assert!(
        ranged.iter().any(|r| r.status == 206),
        "the browser made no Range request answered 206: {:?}",
        report.requests
    );
    drop(rec);
}
