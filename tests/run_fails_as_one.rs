//! `rtmp-recorder run` fails as one: when one stage cannot start, the other stages are stopped
//! and the process exits at once (no SIGTERM needed) with that stage's error and exit code.

use crate::support::{self, Turn, ingest};
use tempfile::TempDir;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Case {
    what: &'static str,
    extra_args: Vec<String>,
    code: i32,
    /// Text the error line must hold (the cause and what to do).
    says: Vec<String>,
}

#[test]
fn a_failing_stage_ends_run_with_its_code() {
    let _turn = Turn::shared();
    // A real taken port: held by this listener for the whole test.
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let taken_addr = taken.local_addr().unwrap().to_string();
    let free = format!("127.0.0.1:{}", support::free_port());
    let cases = [
        Case {
            what: "ingest cannot bind its port",
            extra_args: vec!["--listen".into(), taken_addr.clone()],
            code: 1,
            says: vec![
                "ingest stage".into(),
                format!("listening on {taken_addr}"),
                "Address already in use".into(),
            ],
        },
        Case {
            what: "ingest's allowed keys file is missing (a usage error)",
            extra_args: vec![
                "--listen".into(),
                free.clone(),
                "--allowed-keys".into(),
                "/nonexistent/keys".into(),
            ],
            code: 2,
            says: vec!["ingest stage".into(), "/nonexistent/keys".into()],
        },
        Case {
            what: "publish has a key template without the file name (a usage error)",
            extra_args: vec![
                "--listen".into(),
                free.clone(),
                "--key-template".into(),
                "{app}".into(),
            ],
            code: 2,
            says: vec!["publish stage".into(), "must contain {file}".into()],
        },
    ];
    for case in cases {
        let state = TempDir::new().unwrap();
        let log_path = state.path().join("run.log");
        let started = Instant::now();
        let mut child = Command::new(support::BIN)
            .arg("--state-dir")
            .arg(state.path())
            .arg("run")
            .args(&case.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .expect("starting rtmp-recorder run");
        // Before `run` failed as one, the other stages kept watching until SIGTERM.
        let status = ingest::wait_child(&mut child, Duration::from_secs(10), case.what, &log_path);
        let elapsed = started.elapsed();
        let log = std::fs::read_to_string(&log_path).unwrap();
        assert_eq!(
            status.code(),
            Some(case.code),
            "{}: exit code\n{log}",
            case.what
        );
        for text in &case.says {
            assert!(
                log.contains(text.as_str()),
                "{}: the log does not say {text:?}\n{log}",
                case.what
            );
        }
        eprintln!("{}: exited {} after {elapsed:?}", case.what, case.code);
    }
    drop(taken);
}
