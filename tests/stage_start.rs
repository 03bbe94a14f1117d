//! Every stage starts by clearing `tmp/` of the partial files (`NAME.PID.partial`) that a writer
//! left when it died, and keeps those of writers still alive.

use crate::support::{self, Turn, ingest};
use tempfile::TempDir;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rtmp_recorder::naming::partial_name;

fn stage(state: &Path, args: &[&str], log: &Path) -> Child {
    Command::new(support::BIN)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("starting rtmp-recorder")
}

#[test]
fn every_stage_clears_stale_partials_at_start() {
    let _turn = Turn::shared();
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let cases: [(&str, Vec<&str>); 3] = [
        ("ingest", vec!["ingest", "--listen", &listen]),
        ("remux", vec!["remux"]),
        ("publish", vec!["publish"]),
    ];
    for (name, args) in cases {
        let dir = TempDir::new().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        // Above any pid_max Linux allows (2^22): a writer that is surely gone.
        let stale = tmp.join(partial_name("x_000001.json", 4_000_000_000));
        // This test process is alive: its partial may be a write in progress.
        let live = tmp.join(partial_name("y_000001.json", std::process::id()));
        std::fs::write(&stale, b"{").unwrap();
        std::fs::write(&live, b"{").unwrap();

        let log = dir.path().join("stage.log");
        let mut child = stage(dir.path(), &args, &log);
        if name == "ingest" {
            // Long-running: it cleans up before it listens; stop it once it does.
            let show = || std::fs::read_to_string(&log).unwrap_or_default();
            support::wait_for_port(port, &mut child, Duration::from_secs(10), name, show);
            ingest::signal(child.id(), libc::SIGTERM);
        }
        // remux and publish drain their (empty) inboxes and exit.
        let status = ingest::wait_child(&mut child, Duration::from_secs(10), name, &log);
        assert!(status.success(), "{name} exited with {status}");
        assert!(!stale.exists(), "{name} kept a dead writer's partial");
        assert!(live.exists(), "{name} removed a live writer's partial");
    }
}
