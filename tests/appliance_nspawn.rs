//! The appliance as an operator meets it: a real Debian 12 booted with systemd in
//! `systemd-nspawn`, our .deb installed with dpkg, and then, through `systemctl` and
//! `journalctl` inside it:
//! - the first RTMP connection starts ingest (socket activation); the .path units start remux
//!   and publish; ffmpeg's 30 s at 10 s chunks land in an S3 server (s3s-fs on the host's
//!   127.0.0.1) as three MP4s carrying exactly the published packets;
//! - `systemctl status` shows each stage's `STATUS=` line, and `journalctl STREAM=<name>` shows
//!   the stream in all three stages, each line with its `CHUNK=`;
//! - a foreign file in publish/ keeps publish up (saying so in its status) instead of having the
//!   .path unit start it again and again; publish exits once the file is moved away;
//! - `systemctl restart rtmp-recorder-ingest` mid-publish: the chunks hold an exact prefix of what
//!   was published (the open chunk finished, none left behind), and connections made during the
//!   restart are all served (the socket stays with systemd);
//! - a store outage: publish retries inside its run (`PUBLISH_RETRY_FOR`, shortened here to 20 s
//!   from 10 min so that the test also sees the exit-75-then-`RestartSec=` path within a 75 s
//!   outage), starts only a few times, the .path unit never fails, and every object arrives;
//! - a permanent fault (no such bucket, exit 77) is retried every `RestartSec=` without a trigger
//!   storm, and fixing the configuration resumes publishing;
//! - `systemctl stop` while remux works leaves no partial file; the queue resumes after.
//!
//! The root file system (Debian 12 minbase with systemd and dbus) is prepared once by .ci/run in
//! /var/tmp/rtmp-recorder-nspawn-root and booted with `--volatile=overlay`, so it is never
//! changed. The machine shares the host's network: its socket listens on the host's loopback.
//! Needs root, systemd-container, cargo-deb, ffmpeg and s3s-fs (all installed by .ci/run).

use crate::support::{self, Turn, free_port, http, ingest, packets, publish, wait_until, words};
use tempfile::TempDir;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ingest::{PublishOpts, Publisher, assert_prefix_of_reference, ffmpeg_publish, files_with_ext};
use publish::{AK, SK, client, create_bucket, get, list_keys, s3s_fs};

const ROOT: &str = "/var/tmp/rtmp-recorder-nspawn-root";
const BUCKET: &str = "recordings";
const STATE: &str = "/var/lib/rtmp-recorder";

/// A booted container; powered off (then killed) by PID on drop.
struct Machine {
    nspawn: Child,
    leader: u32,
    log: PathBuf,
}

impl Machine {
    /// Boots ROOT with `state` bound as /var/lib/rtmp-recorder (so the host can watch the
    /// folders) and `pkg` read-only at /mnt/pkg.
    fn boot(dir: &Path, state: &Path, pkg: &Path) -> Machine {
        assert!(
            Path::new(ROOT).join("usr/lib/systemd/systemd").exists()
                || Path::new(ROOT).join("lib/systemd/systemd").exists(),
            "{ROOT} holds no Debian with systemd; .ci/run prepares it (debootstrap)"
        );
        let nspawn = support::require_tool("systemd-nspawn", "apt-get install systemd-container");
        let log = dir.join("nspawn.log");
        let name = format!("rtr-test-{}", std::process::id());
        let child = Command::new(nspawn)
            .arg(format!("--directory={ROOT}"))
            .args([
                "--volatile=overlay",
                "--boot",
                "--register=no",
                "--keep-unit",
            ])
            .args(["--console=passive", &format!("--machine={name}")])
            .arg(format!("--bind={}:{STATE}", state.display()))
            .arg(format!("--bind-ro={}:/mnt/pkg", pkg.display()))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&log).unwrap())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting systemd-nspawn");
        let mut machine = Machine {
            leader: 0,
            nspawn: child,
            log,
        };
        let pid = machine.nspawn.id();
        let started = Instant::now();
        wait_until(Duration::from_secs(30), "the container's init", || {
            if let Some(status) = machine.nspawn.try_wait().unwrap() {
                panic!(
                    "systemd-nspawn exited ({status}):\n{}",
                    machine.nspawn_log()
                );
            }
            let children =
                fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
            machine.leader = children
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .find(|p: &u32| {
                    fs::read_to_string(format!("/proc/{p}/comm"))
                        .is_ok_and(|c| c.trim() == "systemd")
                })
                .unwrap_or(0);
            machine.leader != 0
        });
        wait_until(Duration::from_secs(60), "the container booted", || {
            let state = machine.sh("systemctl is-system-running");
            let state = String::from_utf8_lossy(&state.stdout);
            matches!(state.trim(), "running" | "degraded")
        });
        eprintln!("container booted in {:?}", started.elapsed());
        machine
    }

    fn nspawn_log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `script` with /bin/sh inside the container, with a clean environment.
    fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args([
                "-t",
                &self.leader.to_string(),
                "-m",
                "-u",
                "-i",
                "-n",
                "-p",
                "-r",
                "-w",
            ])
            .args([
                "env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
            ])
            .args([
                "SYSTEMD_PAGER=",
                "SYSTEMD_COLORS=0",
                "/bin/sh",
                "-c",
                script,
            ])
            .stdin(Stdio::null())
            .output()
            .expect("running nsenter")
    }

    /// Like `sh`, but the command must succeed; returns its stdout.
    fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the container: `{script}` failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `systemctl show -P PROPERTY UNIT`.
    fn prop(&self, unit: &str, property: &str) -> String {
        self.ok(&format!("systemctl show -P {property} {unit}"))
            .trim()
            .to_string()
    }

    /// How often `unit` was started since `since` (from [`now_stamp`]), from systemd's own
    /// journal lines ("Starting ...").
    fn starts_since(&self, unit: &str, since: &str) -> usize {
        let out = self.ok(&format!(
            "journalctl --no-pager -o cat _PID=1 UNIT={unit} --since=@{since}"
        ));
        out.lines().filter(|l| l.starts_with("Starting ")).count()
    }

    /// Checks every second until `until` that rtmp-recorder-publish.path has not failed.
    fn path_unit_holds_until(&self, until: Instant, when: &str) {
        while Instant::now() < until {
            assert_ne!(
                self.prop("rtmp-recorder-publish.path", "ActiveState"),
                "failed",
                "the .path unit failed {when}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// The journal of the services, for failure messages.
    fn journal(&self) -> String {
        let out = self.sh("journalctl --no-pager -n 200 -u 'rtmp-recorder-*'");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        if std::thread::panicking() && self.leader != 0 {
            eprintln!("--- journal of the rtmp-recorder units\n{}", self.journal());
        }
        // SIGTERM asks nspawn to power the container off cleanly.
        let pid = self.nspawn.id();
        ingest::signal(pid, libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.nspawn.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}

/// Builds the .deb from the binary this test run built (as `cargo deb --no-build` would after
/// `cargo build --release`) into `out`.
fn build_deb(out: &Path) -> PathBuf {
    support::require_tool(
        "cargo-deb",
        "cargo install cargo-deb --version 3.8.0 --locked --no-default-features",
    );
    let bin = Path::new(support::BIN);
    let profile_dir = bin.parent().unwrap();
    let target = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => "release",
    };
    let deb = out.join("rtmp-recorder.deb");
    let started = Instant::now();
    support::run_ok(
        Command::new("cargo")
            .args(["deb", "--no-build", "--fast", "--profile", profile])
            .arg("--output")
            .arg(&deb)
            .env("CARGO_TARGET_DIR", target)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
        "cargo deb",
    );
    eprintln!("cargo deb took {:?}", started.elapsed());
    deb
}

/// An RTMP handshake as a client: C0+C1 out, S0+S1+S2 back. True when the server answered.
fn rtmp_handshake(port: u16) -> Result<(), String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut c0c1 = vec![3u8];
    c0c1.extend((0..1536u32).map(|i| (i * 7 + 1) as u8));
    c0c1[1..9].fill(0);
    s.write_all(&c0c1).map_err(|e| format!("write: {e}"))?;
    let mut reply = vec![0u8; 1 + 1536 * 2];
    s.read_exact(&mut reply)
        .map_err(|e| format!("read S0S1S2: {e}"))?;
    if reply[0] != 3 {
        return Err(format!("S0 is {}", reply[0]));
    }
    Ok(())
}

/// Runs one part of the test and says how long it took.
fn timed(what: &str, part: impl FnOnce()) {
    let t = Instant::now();
    part();
    eprintln!("{what}: {:?}", t.elapsed());
}

/// Now, as journalctl's `--since=@SECONDS.FRACTION`: a start a moment earlier in the same second
/// is not counted.
fn now_stamp() -> String {
    let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:03}", t.as_secs(), t.subsec_millis())
}

/// Object keys of `stream`'s MP4s in the bucket, by chunk stem.
fn stream_objects(keys: &[String], stream: &str) -> BTreeMap<String, String> {
    keys.iter()
        .filter(|k| k.starts_with(&format!("rec/live/{stream}/")))
        .filter_map(|k| {
            let stem = k.rsplit('/').next()?.strip_suffix(".mp4")?;
            Some((stem.to_string(), k.clone()))
        })
        .collect()
}

fn chunks_of(dir: &Path, stream: &str) -> Vec<PathBuf> {
    files_with_ext(dir, "flv")
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(&format!("_live_{stream}_")))
        .collect()
}

struct Rig {
    dir: TempDir,
    state: PathBuf,
    machine: Machine,
    port: u16,
    rt: tokio::runtime::Runtime,
    s3: aws_sdk_s3::Client,
}

impl Rig {
    fn keys(&self) -> Vec<String> {
        self.rt.block_on(list_keys(&self.s3, BUCKET))
    }

    /// Waits until every chunk of `stream` (archived FLVs, none pending) is in the bucket as an
    /// MP4 and its manifest.
    fn wait_published(&self, stream: &str, timeout: Duration) -> BTreeMap<String, String> {
        let mut objects = BTreeMap::new();
        wait_until(timeout, &format!("{stream}'s chunks in the bucket"), || {
            let pending: usize = ["recording", "remux", "publish"]
                .iter()
                .map(|d| {
                    fs::read_dir(self.state.join(d))
                        .map(|rd| {
                            rd.flatten()
                                .filter(|e| {
                                    e.file_name()
                                        .to_string_lossy()
                                        .contains(&format!("_live_{stream}_"))
                                })
                                .count()
                        })
                        .unwrap_or(0)
                })
                .sum();
            let archived = chunks_of(&self.state.join("archive"), stream).len();
            let keys = self.keys();
            objects = stream_objects(&keys, stream);
            let manifests = keys
                .iter()
                .filter(|k| k.starts_with(&format!("rec/live/{stream}/")) && k.ends_with(".json"))
                .count();
            pending == 0 && archived > 0 && objects.len() == archived && manifests == archived
        });
        objects
    }

    /// The uploaded MP4s of `stream`, downloaded, in chunk order.
    fn download(&self, objects: &BTreeMap<String, String>) -> Vec<PathBuf> {
        objects
            .iter()
            .map(|(stem, key)| {
                let bytes = self.rt.block_on(get(&self.s3, BUCKET, key)).bytes;
                let path = self.dir.path().join(format!("{stem}.mp4"));
                fs::write(&path, bytes).unwrap();
                path
            })
            .collect()
    }

    /// ffmpeg publishing `secs` seconds of 640x360 to `live/STREAM` in the machine (its
    /// `reference` holds what it sent).
    fn publish(&self, stream: &str, secs: u32) -> Publisher {
        let opts = PublishOpts {
            width: 640,
            height: 360,
            ..PublishOpts::new(self.dir.path(), stream)
        };
        let url = format!("rtmp://127.0.0.1:{}/live/{stream}", self.port);
        ffmpeg_publish(&url, secs, &opts)
    }
}

#[test]
fn appliance_in_a_booted_debian() {
    let _turn = Turn::alone();
    let started = Instant::now();
    let dir = TempDir::new().unwrap();
    let state = dir.path().join("state");
    let pkg = dir.path().join("pkg");
    fs::create_dir_all(&state).unwrap();
    fs::create_dir_all(&pkg).unwrap();
    build_deb(&pkg);

    let s3_root = dir.path().join("s3");
    let mut store = s3s_fs(&s3_root, 0);
    let s3_port = store.port;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = client(&store.endpoint());
    rt.block_on(create_bucket(&s3, BUCKET));

    let machine = Machine::boot(dir.path(), &state, &pkg);
    let port = free_port();
    let rig = Rig {
        dir,
        state,
        machine,
        port,
        rt,
        s3,
    };
    let m = &rig.machine;

    install(m, port, s3_port);
    timed("record and publish", || record_and_publish(&rig));
    timed("health over the HTTP socket", || {
        health_over_the_http_socket(&rig)
    });
    timed("foreign file", || foreign_file_in_inbox(&rig));
    timed("ingest restart", || restart_ingest_mid_publish(&rig));
    timed("store outage", || {
        store_outage(&rig, &mut store, &s3_root, s3_port)
    });
    timed("permanent fault", || permanent_fault(&rig));
    timed("stop during remux", || stop_during_remux(&rig));
    timed("package removal", || remove_package(&rig));
    eprintln!("appliance test took {:?}", started.elapsed());
}

/// dpkg -i, as an operator would, after moving the RTMP port (1935 may be taken on the host)
/// with a socket drop-in; then the configuration and the credentials file.
fn install(m: &Machine, port: u16, s3_port: u16) {
    m.ok(&format!(
        "mkdir -p /etc/systemd/system/rtmp-recorder-ingest.socket.d && \
         printf '[Socket]\\nListenStream=\\nListenStream=127.0.0.1:{port}\\n' \
           > /etc/systemd/system/rtmp-recorder-ingest.socket.d/port.conf"
    ));
    m.ok("dpkg -i /mnt/pkg/rtmp-recorder.deb");
    m.ok("id rtmp-recorder");
    for unit in [
        "rtmp-recorder-ingest.socket",
        "rtmp-recorder-remux.path",
        "rtmp-recorder-publish.path",
    ] {
        assert_eq!(m.prop(unit, "UnitFileState"), "enabled", "{unit}");
        assert_eq!(m.prop(unit, "ActiveState"), "active", "{unit}");
    }
    // Nothing has connected yet: socket activation has not started ingest.
    assert_eq!(
        m.prop("rtmp-recorder-ingest.service", "ActiveState"),
        "inactive"
    );
    for folder in ["remux", "publish"] {
        let owner = m.ok(&format!("stat -c %U {STATE}/{folder}"));
        assert_eq!(owner.trim(), "rtmp-recorder", "{STATE}/{folder}");
    }
    // Credentials go to the credstore, readable by root only; systemd hands them to publish.
    m.ok(&format!(
        "install -d -m 0700 /etc/credstore && umask 077 && \
         printf '[default]\\naws_access_key_id = {AK}\\naws_secret_access_key = {SK}\\n' \
           > /etc/credstore/rtmp-recorder-aws"
    ));
    // The seed's .env names its Docker volume (RECORDINGS_DIR); the units' StateDirectory= wins.
    // PUBLISH_RETRY_FOR is 10m by default; 20 s lets the outage below also go through an exit
    // 75 and a RestartSec= restart in little time. No instance metadata service: loopback only.
    m.ok(&format!(
        "cat > /etc/rtmp-recorder/recorder.env <<'EOF'
RECORDINGS_DIR=/recordings
CHUNK_DURATION=10s
S3_BUCKET={BUCKET}
S3_PREFIX=rec
AWS_REGION=us-west-2
AWS_ENDPOINT_URL_S3=http://127.0.0.1:{s3_port}
AWS_EC2_METADATA_DISABLED=true
PUBLISH_RETRY_FOR=20s
PUBLISH_BACKOFF_CAP=4s
EOF"
    ));
}

/// The operator turns HTTP on as the README says (a port drop-in; ingest stopped, since systemd
/// refuses to start a socket whose service runs; the socket enabled): the first request to
/// /healthz starts ingest through the socket unit and is answered, /metrics counts the three
/// uploads of the run before, and `rtmp-recorder status` shows the units and says all is well.
fn health_over_the_http_socket(rig: &Rig) {
    let m = &rig.machine;
    let http = free_port();
    m.ok(&format!(
        "mkdir -p /etc/systemd/system/rtmp-recorder-http.socket.d && \
         printf '[Socket]\\nListenStream=\\nListenStream=127.0.0.1:{http}\\n' \
           > /etc/systemd/system/rtmp-recorder-http.socket.d/port.conf && \
         systemctl daemon-reload && systemctl stop rtmp-recorder-ingest.service && \
         systemctl enable --now rtmp-recorder-http.socket"
    ));
    assert_eq!(
        m.prop("rtmp-recorder-ingest.service", "ActiveState"),
        "inactive"
    );
    let health = http::get(http, "/healthz", &[]);
    assert_eq!(health.status, 200, "{}", health.text());
    assert_eq!(health.json()["status"], "ok");
    let metrics = http::parse_metrics(&http::get(http, "/metrics", &[]).text());
    assert_eq!(
        http::value(&metrics, "rtmp_recorder_uploads_total", &[]),
        3.0
    );
    let status = m.sh("rtmp-recorder status");
    let text = support::stdout_with_code(&status, 0);
    let wants = [
        "rtmp-recorder: all well",
        "ingest   rtmp-recorder-ingest.service active (running), rtmp-recorder-ingest.socket active (running)",
        "rtmp-recorder-publish.path active (waiting)",
        "3 uploaded",
    ];
    support::assert_contains_all(&text, &wants, "status");
}

/// ffmpeg publishes 30 s: socket activation, path activation, objects in the bucket carrying
/// exactly the published packets, STATUS lines and the journal per stream.
fn record_and_publish(rig: &Rig) {
    let m = &rig.machine;
    let mut publisher = rig.publish("cam1", 30);
    wait_until(
        Duration::from_secs(15),
        "ingest started by the socket",
        || m.prop("rtmp-recorder-ingest.service", "ActiveState") == "active",
    );
    // ingest's live STATUS= line, as `systemctl status` shows it.
    wait_until(Duration::from_secs(15), "ingest's status line", || {
        let status = m.sh("systemctl status --no-pager rtmp-recorder-ingest.service");
        String::from_utf8_lossy(&status.stdout).contains("Status: \"")
    });
    let status = m.sh("systemctl status --no-pager -n0 rtmp-recorder-ingest.service");
    eprintln!("{}", String::from_utf8_lossy(&status.stdout));
    publisher.wait_ok(Duration::from_secs(60));

    let objects = rig.wait_published("cam1", Duration::from_secs(60));
    assert_eq!(objects.len(), 3, "30 s at 10 s chunks: {objects:?}");
    let mp4s = rig.download(&objects);
    let got: Vec<_> = mp4s.iter().flat_map(|p| packets::read(p)).collect();
    let want = packets::read(&publisher.reference);
    assert_eq!(got.len(), want.len(), "packets in the MP4s vs published");
    assert!(
        packets::by_stream(&got) == packets::by_stream(&want),
        "uploaded packets differ from the published ones"
    );

    // remux and publish ran (started by their .path units) and said what they did.
    for (stage, says) in [("remux", "remuxed"), ("publish", "published")] {
        let unit = format!("rtmp-recorder-{stage}.service");
        let text = m.prop(&unit, "StatusText");
        assert!(
            text.contains(says),
            "{unit}: StatusText {text:?} (expected it to say {says:?})"
        );
        let status = m.sh(&format!("systemctl status --no-pager -n0 {unit}"));
        let status = String::from_utf8_lossy(&status.stdout).into_owned();
        eprintln!("{status}");
        assert!(status.contains(&format!("Status: \"{text}\"")), "{status}");
    }

    // journalctl STREAM=cam1: every stage, and for each chunk its lines in remux and publish.
    let journal = m.ok("journalctl --no-pager -o json STREAM=cam1");
    let mut stages = BTreeSet::new();
    let mut chunk_stages: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in journal.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("journal JSON");
        let stage = v["STAGE"].as_str().unwrap_or_default().to_string();
        stages.insert(stage.clone());
        if let Some(chunk) = v["CHUNK"].as_str() {
            chunk_stages
                .entry(chunk.to_string())
                .or_default()
                .insert(stage);
        }
    }
    assert_eq!(
        stages,
        BTreeSet::from(["ingest".into(), "remux".into(), "publish".into()]),
        "stages in `journalctl STREAM=cam1`"
    );
    for stem in objects.keys() {
        let seen = chunk_stages.get(stem).cloned().unwrap_or_default();
        for stage in ["remux", "publish"] {
            assert!(
                seen.contains(stage),
                "no {stage} line with CHUNK={stem} and STREAM=cam1 (seen: {seen:?})"
            );
        }
    }
}

/// A foreign file in publish/ (not a chunk, so nothing ever takes it): publish stays up and says
/// what it waits for, instead of exiting into a .path unit that would start it again at once until
/// it failed; once the file is moved away, publish exits.
fn foreign_file_in_inbox(rig: &Rig) {
    let m = &rig.machine;
    let since = now_stamp();
    let stray = rig.state.join("publish").join("notes.txt");
    fs::write(&stray, "not a chunk\n").unwrap();
    wait_until(
        Duration::from_secs(15),
        "publish saying what it waits for",
        || {
            m.prop("rtmp-recorder-publish.service", "StatusText")
                .contains("notes.txt")
        },
    );
    std::thread::sleep(Duration::from_secs(12));
    assert_eq!(
        m.prop("rtmp-recorder-publish.service", "ActiveState"),
        "active"
    );
    assert_eq!(
        m.prop("rtmp-recorder-publish.path", "ActiveState"),
        "active"
    );
    let starts = m.starts_since("rtmp-recorder-publish.service", &since);
    assert_eq!(
        starts, 1,
        "publish started {starts} times for one foreign file"
    );
    fs::remove_file(&stray).unwrap();
    wait_until(
        Duration::from_secs(15),
        "publish exiting once publish/ is empty",
        || m.prop("rtmp-recorder-publish.service", "ActiveState") == "inactive",
    );
    assert_eq!(m.prop("rtmp-recorder-publish.service", "Result"), "success");
}

/// `systemctl restart rtmp-recorder-ingest` while cam2 publishes: the open chunk is finished and
/// handed on, the chunks are an exact prefix of what ffmpeg sent, and every connection made
/// while ingest restarts is served by the new process.
fn restart_ingest_mid_publish(rig: &Rig) {
    let m = &rig.machine;
    let mut publisher = rig.publish("cam2", 40);
    // Into the second chunk by a few seconds.
    wait_until(
        Duration::from_secs(40),
        "cam2's first chunk handed on",
        || {
            let done = chunks_of(&rig.state.join("archive"), "cam2").len()
                + chunks_of(&rig.state.join("remux"), "cam2").len();
            done >= 1
        },
    );
    wait_until(
        Duration::from_secs(10),
        "cam2's second chunk growing",
        || {
            chunks_of(&rig.state.join("recording"), "cam2")
                .first()
                .and_then(|p| fs::metadata(p).ok())
                .is_some_and(|md| md.len() > 100_000)
        },
    );
    let old_pid = m.prop("rtmp-recorder-ingest.service", "MainPID");
    m.ok("systemctl restart --no-block rtmp-recorder-ingest.service");
    // Connections through the whole restart: each must get its handshake answered.
    let mut served = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(3) {
        let port = rig.port;
        rtmp_handshake(port).unwrap_or_else(|e| {
            panic!(
                "a connection {:?} into the restart was not served: {e}",
                t.elapsed()
            )
        });
        served += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_until(Duration::from_secs(30), "ingest back", || {
        m.prop("rtmp-recorder-ingest.service", "ActiveState") == "active"
    });
    let new_pid = m.prop("rtmp-recorder-ingest.service", "MainPID");
    assert_ne!(old_pid, new_pid, "ingest was not restarted");
    eprintln!("{served} connections served during the restart (pid {old_pid} -> {new_pid})");
    // ffmpeg loses its server; its reference holds everything it sent.
    publisher.wait(Duration::from_secs(30));

    let objects = rig.wait_published("cam2", Duration::from_secs(60));
    assert!(
        objects.len() >= 2,
        "the first chunk and the one finished at SIGTERM: {objects:?}"
    );
    let archived = chunks_of(&rig.state.join("archive"), "cam2");
    assert_eq!(archived.len(), objects.len(), "{archived:?} vs {objects:?}");
    assert_prefix_of_reference(&archived, &publisher.reference);
    assert!(chunks_of(&rig.state.join("recording"), "cam2").is_empty());
}

/// The store goes away for 75 s while cam3's chunks wait: publish retries inside its run, exits
/// 75 after PUBLISH_RETRY_FOR, is restarted by systemd RestartSec= later, and uploads everything
/// once the store is back; a few starts at most, the .path unit never failed.
fn store_outage(rig: &Rig, store: &mut publish::Server, s3_root: &Path, s3_port: u16) {
    let m = &rig.machine;
    let since = now_stamp();
    store.stop();
    let outage = Instant::now();
    let mut publisher = rig.publish("cam3", 12);
    publisher.wait_ok(Duration::from_secs(40));
    let mut saw_status = String::new();
    wait_until(
        Duration::from_secs(60),
        "publish saying the store is down",
        || {
            saw_status = m.prop("rtmp-recorder-publish.service", "StatusText");
            saw_status.contains("store unreachable")
        },
    );
    eprintln!("publish during the outage: Status: {saw_status:?}");
    m.path_unit_holds_until(outage + Duration::from_secs(75), "during the outage");
    let starts_during = m.starts_since("rtmp-recorder-publish.service", &since);
    *store = s3s_fs(s3_root, s3_port);
    let objects = rig.wait_published("cam3", Duration::from_secs(90));
    assert!(!objects.is_empty());
    let starts = m.starts_since("rtmp-recorder-publish.service", &since);
    eprintln!(
        "publish starts: {starts_during} during the 75 s outage, {starts} until all were uploaded"
    );
    assert!(
        (1..=4).contains(&starts),
        "publish was started {starts} times for a 75 s outage"
    );
    assert!(
        starts_during >= 2,
        "publish never exited 75 and restarted during the outage ({starts_during} starts)"
    );
    for (unit, property, want) in [
        ("rtmp-recorder-publish.path", "Result", "success"),
        ("rtmp-recorder-publish.service", "Result", "success"),
    ] {
        assert_eq!(m.prop(unit, property), want, "{unit} {property}");
    }
    assert_ne!(
        m.prop("rtmp-recorder-publish.path", "ActiveState"),
        "failed"
    );
}

/// A permanent fault (a bucket that does not exist: exit 77) is retried by systemd every
/// `RestartSec=`: no trigger storm, the .path unit never fails, and fixing the configuration
/// resumes publishing with nothing to reset.
fn permanent_fault(rig: &Rig) {
    let m = &rig.machine;
    let env = "/etc/rtmp-recorder/recorder.env";
    m.ok(&format!(
        "sed -i 's/^S3_BUCKET=.*/S3_BUCKET=no-such-bucket/' {env}"
    ));
    let since = now_stamp();
    let mut publisher = rig.publish("cam4", 3);
    publisher.wait_ok(Duration::from_secs(30));
    wait_until(Duration::from_secs(30), "publish exiting 77", || {
        m.prop("rtmp-recorder-publish.service", "ExecMainStatus") == "77"
    });
    // Long enough for one restart RestartSec=30s later, failing the same way.
    m.path_unit_holds_until(Instant::now() + Duration::from_secs(40), "on exit 77");
    let starts = m.starts_since("rtmp-recorder-publish.service", &since);
    eprintln!("publish starts in the 40 s after its first exit 77: {starts}");
    assert!(
        (2..=3).contains(&starts),
        "publish started {starts} times within 40 s of a permanent fault"
    );
    m.ok(&format!(
        "sed -i 's/^S3_BUCKET=.*/S3_BUCKET={BUCKET}/' {env}"
    ));
    let objects = rig.wait_published("cam4", Duration::from_secs(60));
    assert!(!objects.is_empty());
    assert_eq!(m.prop("rtmp-recorder-publish.path", "Result"), "success");
    assert_eq!(m.prop("rtmp-recorder-publish.service", "Result"), "success");
}

/// `systemctl stop` while remux works through a queue of large chunks: it exits cleanly, no
/// partial MP4 or manifest is left anywhere, every FLV is either still queued or done (MP4 and
/// manifest in publish/ or uploaded), and the queue finishes once remux runs again.
fn stop_during_remux(rig: &Rig) {
    let m = &rig.machine;
    // Large chunks, so the stop lands while remux works: lossless 720p encodes fast and big.
    let big = rig.dir.path().join("big.flv");
    support::run_ok(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-nostdin", "-loglevel", "error", "-y"])
            .args(["-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30"])
            .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
            .args(words("-t 4 -c:v libx264 -preset ultrafast -qp 0"))
            .args(["-g", "30", "-c:a", "aac", "-f", "flv"])
            .arg(&big),
        "ffmpeg (large chunk)",
    );
    let size = fs::metadata(&big).unwrap().len();
    const N: u32 = 8;
    let stage = rig.state.join("stage");
    fs::create_dir_all(&stage).unwrap();
    let mut names = Vec::new();
    for seq in 1..=N {
        let name = format!("20261202T101010.000Z_live_big_{seq:06}.flv");
        fs::copy(&big, stage.join(&name)).unwrap();
        names.push(name);
    }
    m.ok(&format!("chown -R rtmp-recorder: {STATE}/stage"));
    // Handed on as ingest does: renamed into the inbox.
    for name in &names {
        fs::rename(stage.join(name), rig.state.join("remux").join(name)).unwrap();
    }
    // Stop while an MP4 is being written in tmp/.
    let tmp = rig.state.join("tmp");
    let writing = || {
        fs::read_dir(&tmp)
            .map(|rd| {
                rd.flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with("remux-"))
            })
            .unwrap_or(false)
    };
    // A tight loop: one large chunk takes remux a few tens of milliseconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mid_queue = || writing() && !chunks_of(&rig.state.join("archive"), "big").is_empty();
    while !mid_queue() {
        assert!(Instant::now() < deadline, "remux never wrote a large chunk");
        std::thread::sleep(Duration::from_millis(1));
    }
    let caught_mid_write = writing();
    m.ok("systemctl stop rtmp-recorder-remux.path rtmp-recorder-remux.service");
    eprintln!("stopped remux ({size}-byte chunks; an MP4 in tmp/ at the stop: {caught_mid_write})");
    let result = m.prop("rtmp-recorder-remux.service", "Result");
    assert_eq!(
        result,
        "success",
        "remux did not exit cleanly on SIGTERM (status {}):\n{}",
        m.prop("rtmp-recorder-remux.service", "ExecMainStatus"),
        m.ok("journalctl -u rtmp-recorder-remux.service --no-pager -n 40")
    );
    let leftovers: Vec<String> = fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(leftovers.is_empty(), "left in tmp/: {leftovers:?}");
    let queued = chunks_of(&rig.state.join("remux"), "big").len();
    let done = chunks_of(&rig.state.join("archive"), "big").len();
    assert_eq!(queued + done, N as usize, "FLVs lost or duplicated");
    assert!(
        queued > 0,
        "remux had finished the whole queue before the stop"
    );
    for name in &names {
        let stem = name.strip_suffix(".flv").unwrap();
        if rig.state.join("archive").join(name).exists() {
            // Done: its MP4 and manifest are waiting in publish/ or already uploaded.
            let in_publish = rig.state.join("publish").join(format!("{stem}.mp4"));
            let uploaded = rig.state.join("archive").join(format!("{stem}.mp4"));
            assert!(
                in_publish.exists() || uploaded.exists(),
                "{stem}: FLV archived but its MP4 is nowhere"
            );
        }
    }
    m.ok("systemctl start rtmp-recorder-remux.path");
    let objects = rig.wait_published("big", Duration::from_secs(120));
    assert_eq!(objects.len(), N as usize);
}

/// `dpkg -r`: the units are stopped and gone, the port is closed, the recordings stay.
fn remove_package(rig: &Rig) {
    let m = &rig.machine;
    m.ok("dpkg -r rtmp-recorder");
    for unit in [
        "rtmp-recorder-ingest.socket",
        "rtmp-recorder-ingest.service",
        "rtmp-recorder-remux.path",
        "rtmp-recorder-publish.path",
    ] {
        assert_eq!(m.prop(unit, "LoadState"), "not-found", "{unit}");
        assert_eq!(m.prop(unit, "ActiveState"), "inactive", "{unit}");
    }
    assert!(!support::port_open(rig.port), "the RTMP port is still open");
    assert_eq!(chunks_of(&rig.state.join("archive"), "cam1").len(), 3);
}
