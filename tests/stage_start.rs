//! Every stage starts by clearing `tmp/` of the partial files (`NAME.PID.partial`) that a writer
//! left when it died, and keeps those of writers still alive.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rtmp_recorder::naming::partial_name;

fn stage(state: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_rtmp-recorder"))
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting rtmp-recorder")
}

#[test]
fn every_stage_clears_stale_partials_at_start() {
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    let cases: [(&str, Vec<&str>); 3] = [
        ("ingest", vec!["ingest", "--listen", &listen]),
        ("remux", vec!["remux"]),
        ("publish", vec!["publish"]),
    ];
    for (name, args) in cases {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        // Above any pid_max Linux allows (2^22): a writer that is surely gone.
        let stale = tmp.join(partial_name("x_000001.json", 4_000_000_000));
        // This test process is alive: its partial may be a write in progress.
        let live = tmp.join(partial_name("y_000001.json", std::process::id()));
        std::fs::write(&stale, b"{").unwrap();
        std::fs::write(&live, b"{").unwrap();

        let mut child = stage(dir.path(), &args);
        support::wait_until(Duration::from_secs(10), name, || !stale.exists());
        if name == "ingest" {
            // Long-running: stop it once it listens (its SIGTERM handler is in place by then).
            support::wait_until(Duration::from_secs(10), "ingest listening", || {
                support::port_open(port)
            });
            // SAFETY: kill(2) on our own child's PID.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        }
        let status = child.wait().unwrap();
        assert!(status.success(), "{name} exited with {status}");
        assert!(live.exists(), "{name} removed a live writer's partial");
    }
}
