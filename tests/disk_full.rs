//! A disk that fills, on a small tmpfs each test mounts (tests run as root): ingest keeps a
//! live ffmpeg stream connected, hands on the cut chunk whole, refuses new publishes with the
//! reason, and resumes recording by itself when space returns; remux and publish leave their
//! inputs untouched and succeed once there is room; below `--min-free-disk`, ingest deletes
//! uploaded files oldest first and never anything that is not uploaded.

use crate::support::flv::Flv;
use crate::support::{self, Turn, ingest, packets, remux, sha256_hex, wait_until};

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use ingest::{PublishOpts, Recorder, ffmpeg_publish, files_with_ext, show_log};

const MIB: u64 = 1 << 20;

/// A tmpfs of `size` mounted at `at`, unmounted on drop.
struct TmpFs {
    at: PathBuf,
}

impl TmpFs {
    fn mount(at: &Path, size: u64) -> TmpFs {
        fs::create_dir_all(at).unwrap();
        support::run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}")])
                .arg("tmpfs")
                .arg(at),
            "mounting a tmpfs (the tests run as root)",
        );
        TmpFs {
            at: at.to_path_buf(),
        }
    }

    /// Bytes free, as `df` reads them.
    fn available(&self) -> u64 {
        let out = support::run_ok(
            Command::new("df")
                .args(["-B1", "--output=avail"])
                .arg(&self.at),
            "df",
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the available bytes")
    }
}

impl Drop for TmpFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).status();
    }
}

/// Writes `path` until the file system refuses (ENOSPC), or `limit` bytes. Returns the size.
fn fill(path: &Path, limit: u64) -> u64 {
    let mut f = File::create(path).unwrap();
    let mut written = 0u64;
    for block in [MIB as usize, 4096] {
        let data = vec![0xa5u8; block];
        while written < limit {
            let n = (limit - written).min(block as u64) as usize;
            match f.write(&data[..n]) {
                Ok(0) => break,
                Ok(k) => written += k as u64,
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
    }
    written
}

/// The entries of `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v = ingest::all_names(dir);
    v.sort();
    v
}

fn seq_of(chunk: &Path) -> u32 {
    let name = chunk.file_name().unwrap().to_string_lossy().into_owned();
    rtmp_recorder::naming::ChunkName::parse(&name)
        .unwrap_or_else(|| panic!("{name} is not a chunk name"))
        .seq
}

fn small(dir: &Path, name: &str) -> PublishOpts {
    PublishOpts {
        width: 640,
        height: 360,
        ..PublishOpts::new(dir, name)
    }
}

#[test]
fn ingest_outlives_a_full_disk_refuses_new_publishes_and_resumes_by_itself() {
    let dir = Turn::alone().scratch();
    let _fs = TmpFs::mount(&dir.path().join("state"), 64 * MIB);
    let rec = Recorder::start(dir.path(), &["--min-free-disk", "16M"]);
    let mut cam = ffmpeg_publish(&rec.url("live", "cam"), 40, &small(dir.path(), "cam"));

    // Once the first chunk holds frames of both streams on disk, fill the disk. (A large
    // frame reaches the file at once, small ones in 64 KiB: past 150 kB, both are there.)
    wait_until(Duration::from_secs(30), "the first chunk on disk", || {
        rec.open_chunks()
            .first()
            .is_some_and(|c| fs::metadata(c).is_ok_and(|m| m.len() > 150_000))
    });
    let filler = rec.state.join("filler");
    fill(&filler, u64::MAX);
    wait_until(
        Duration::from_secs(30),
        "ingest to hit the full disk",
        || rec.log_text().contains("disk full:"),
    );
    // The chunk it was writing is handed on, cut at its last whole tag.
    wait_until(Duration::from_secs(10), "the cut chunk in remux/", || {
        !rec.chunks().is_empty()
    });

    // Below the watermark, a new publisher is told why.
    let mut late = ffmpeg_publish(&rec.url("live", "late"), 3, &small(dir.path(), "late"));
    let status = late.wait(Duration::from_secs(30));
    assert!(!status.success(), "the late publisher must be refused");
    assert!(
        late.log_text().contains("recorder disk almost full"),
        "ffmpeg shows the reason:\n{}",
        late.log_text()
    );
    assert!(
        rec.log_text()
            .contains("publish refused: recorder disk almost full")
    );
    assert!(cam.running(), "the live publisher stays connected");

    // Space returns: recording goes on by itself, the publisher never reconnected.
    fs::remove_file(&filler).unwrap();
    wait_until(Duration::from_secs(30), "recording to resume", || {
        rec.log_text().contains("recording resumed at a keyframe")
    });
    cam.wait_ok(Duration::from_secs(60));
    wait_until(Duration::from_secs(30), "every chunk handed on", || {
        rec.open_chunks().is_empty()
    });
    let log = rec.log_text();
    assert!(
        log.contains("To fix: free space on the file system of"),
        "{}",
        show_log(&rec.log)
    );
    for line in log
        .lines()
        .filter(|l| l.contains("resumed") || l.contains("disk full:"))
    {
        eprintln!("{line}");
    }

    let chunks = rec.chunks();
    assert!(chunks.len() >= 2, "{chunks:?}");
    // Every chunk is a whole FLV: it parses to its last tag, nothing torn.
    for c in &chunks {
        let flv = Flv::read(c);
        assert_eq!(flv.trailing, 0, "{} ends in a torn tag", c.display());
        assert!(
            flv.media().next().is_some(),
            "{} holds no frame",
            c.display()
        );
    }
    // The chunk after the outage skips a sequence number: the gap shows.
    let seqs: Vec<u32> = chunks.iter().map(|c| seq_of(c)).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");
    assert!(
        seqs.windows(2).any(|w| w[1] > w[0] + 1),
        "no gap in {seqs:?}"
    );

    // Per stream, the recording is the reference with one run missing (the outage): every
    // packet recorded was sent, byte for byte, in order.
    let mut hashes = Vec::new();
    for c in &chunks {
        hashes.extend(packets::read(c));
    }
    let got = packets::by_stream(&hashes);
    let sent: BTreeMap<u32, Vec<(u64, String)>> =
        packets::by_stream(&packets::read(&cam.reference));
    for (stream, list) in &got {
        let reference = &sent[stream];
        let head = list
            .iter()
            .zip(reference)
            .take_while(|(a, b)| a == b)
            .count();
        let tail = &list[head..];
        assert_eq!(
            tail,
            &reference[reference.len() - tail.len()..],
            "stream {stream}: after the first {head} packets, the rest is not the end of what was sent"
        );
        assert!(
            head > 0 && !tail.is_empty(),
            "stream {stream}: {head} + {}",
            tail.len()
        );
        assert!(
            list.len() < reference.len(),
            "stream {stream}: nothing was dropped?"
        );
    }

    // Each chunk remuxes into a complete MP4 carrying exactly its packets.
    drop(rec);
    let out = remux::remux(&dir.path().join("state"), &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ffmpeg = Path::new(remux::ffmpeg());
    for c in &chunks {
        let name = c.file_name().unwrap().to_string_lossy().into_owned();
        let archived = dir.path().join("state/archive").join(&name);
        let mp4 = remux::published_mp4(&dir.path().join("state"), &name);
        remux::assert_packet_identical(ffmpeg, &archived, &mp4);
    }
}

#[test]
fn remux_and_publish_leave_their_inputs_alone_on_a_full_disk() {
    let dir = Turn::alone().scratch();
    let state_dir = dir.path().join("state");
    let disk = TmpFs::mount(&state_dir, 16 * MIB);
    let flv = dir.path().join("chunk.flv");
    remux::small_flv(&flv, 2);
    let name = remux::chunk_name(1);
    remux::queue(&state_dir, &[(name.as_str(), flv.as_path())]);
    let queued = state_dir.join("remux").join(&name);
    let before = sha256_hex(&fs::read(&queued).unwrap());

    let filler = state_dir.join("filler");
    fill(&filler, u64::MAX);
    let out = remux::remux(&state_dir, &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("disk full while remuxing"), "{err}");
    assert!(err.contains("To fix:"), "{err}");
    assert_eq!(
        sha256_hex(&fs::read(&queued).unwrap()),
        before,
        "the FLV is untouched"
    );
    assert_eq!(names(&state_dir.join("tmp")), Vec::<String>::new());
    assert_eq!(names(&state_dir.join("publish")), Vec::<String>::new());

    fs::remove_file(&filler).unwrap();
    let out = remux::remux(&state_dir, &[]);
    assert_eq!(out.status.code(), Some(0));
    let mp4 = remux::published_mp4(&state_dir, &name);
    remux::assert_packet_identical(
        Path::new(remux::ffmpeg()),
        &state_dir.join("archive").join(&name),
        &mp4,
    );
    let mp4_sha = sha256_hex(&fs::read(&mp4).unwrap());

    // publish to a directory on the same full disk: the MP4 stays queued, nothing half-written.
    let leave = disk.available().saturating_sub(64 * 1024);
    fill(&filler, leave);
    let publish = || {
        let mut cmd = Command::new(support::BIN);
        cmd.arg("--state-dir")
            .arg(&state_dir)
            .args(["publish", "--retry-for", "2s", "--backoff-cap", "1s"])
            .env_remove("S3_BUCKET")
            .env_remove("DESTINATION");
        cmd.output().unwrap()
    };
    let out = publish();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert_eq!(
        sha256_hex(&fs::read(&mp4).unwrap()),
        mp4_sha,
        "the MP4 is untouched"
    );
    let published = files_with_ext(&state_dir.join("published"), "mp4");
    assert!(published.is_empty(), "{published:?}");
    assert_eq!(names(&state_dir.join("tmp")), Vec::<String>::new());

    fs::remove_file(&filler).unwrap();
    let out = publish();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        state_dir
            .join("archive")
            .join(mp4.file_name().unwrap())
            .exists()
    );
}

/// Writes `len` bytes to `path` and dates it `age` ago.
fn aged_file(path: &Path, len: u64, age: Duration) {
    fs::write(path, vec![7u8; len as usize]).unwrap();
    File::options()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now() - age))
        .unwrap();
}

#[test]
fn below_the_watermark_uploaded_files_go_oldest_first_and_nothing_else() {
    let dir = Turn::alone().scratch();
    let state_dir = dir.path().join("state");
    let disk = TmpFs::mount(&state_dir, 48 * MIB);
    for sub in ["recording", "remux", "publish", "archive", "failed", "tmp"] {
        fs::create_dir_all(state_dir.join(sub)).unwrap();
    }
    let at = |p: &str| state_dir.join(p);
    let min = |m: u64| Duration::from_secs(m * 60);
    // Not uploaded: an FLV whose MP4 waits in publish/, one whose MP4 was set aside; both older
    // than everything else, so an age-only rule would take them first.
    aged_file(&at("archive/k1.flv"), 2 * MIB, min(100));
    aged_file(&at("publish/k1.mp4"), 2 * MIB, min(100));
    aged_file(&at("archive/k2.flv"), 2 * MIB, min(90));
    aged_file(&at("failed/k2.mp4"), 2 * MIB, min(90));
    aged_file(&at("remux/r.flv"), 2 * MIB, min(95));
    // Uploaded: archived MP4s (with manifests), FLVs whose MP4 is gone after its upload.
    aged_file(&at("archive/u1.mp4"), 2 * MIB, min(50));
    aged_file(&at("archive/u1.json"), 100, min(50));
    aged_file(&at("archive/u2.flv"), 2 * MIB, min(40));
    aged_file(&at("archive/u3.mp4"), 2 * MIB, min(30));
    aged_file(&at("archive/u3.json"), 100, min(30));
    aged_file(&at("archive/u4.flv"), 2 * MIB, min(20));
    aged_file(&at("archive/u5.mp4"), 2 * MIB, min(10));
    // Leave 9 MiB free under a 12 MiB watermark: two 2 MiB deletions are needed, and enough.
    let filler = at("filler");
    let leave = disk.available() - 9 * MIB;
    assert_eq!(fill(&filler, leave), leave);

    let rec = Recorder::start(dir.path(), &["--min-free-disk", "12M"]);
    wait_until(Duration::from_secs(30), "the pressure sweep", || {
        rec.log_text()
            .contains("free disk is above --min-free-disk")
    });
    let archive = names(&at("archive"));
    assert_eq!(
        archive,
        ["k1.flv", "k2.flv", "u3.json", "u3.mp4", "u4.flv", "u5.mp4"],
        "the two oldest uploaded files (u1 with its manifest, u2) and nothing else"
    );

    // Now even deleting every uploaded file is not enough.
    let more = at("filler2");
    let leave = disk.available() - MIB;
    assert_eq!(fill(&more, leave), leave);
    wait_until(
        Duration::from_secs(30),
        "the sweep to run out of files",
        || {
            rec.log_text()
                .contains("nothing uploaded is left to delete")
        },
    );
    assert_eq!(names(&at("archive")), ["k1.flv", "k2.flv"]);
    assert_eq!(names(&at("publish")), ["k1.mp4"]);
    assert_eq!(names(&at("failed")), ["k2.mp4"]);
    assert_eq!(names(&at("remux")), ["r.flv"]);

    let mut late = ffmpeg_publish(&rec.url("live", "late"), 3, &small(dir.path(), "late"));
    assert!(!late.wait(Duration::from_secs(30)).success());
    assert!(
        late.log_text().contains("recorder disk almost full"),
        "{}",
        late.log_text()
    );
    assert!(names(&at("recording")).is_empty());
}
