//! The unit files in systemd/ as systemd itself reads them: `systemd-analyze verify` finds
//! nothing to complain about, and `systemd-analyze security --offline=yes` rates every service's
//! exposure 2.0 or lower. A unit that loses a hardening line fails here.
//!
//! The units name `/usr/bin/rtmp-recorder` (packagers substitute it); verify checks that the
//! command exists, so the test points them at the binary cargo built, as a packager would.

use crate::support::{self, Turn};

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The worst exposure (0.0 best .. 10.0 worst) any service may have.
const MAX_EXPOSURE: f64 = 2.0;
/// Each service's rating today (systemd 252): a unit may get better, never worse. publish needs
/// the network, and so does events (the webhook); ingest (socket from systemd) and remux have none.
const RATED: [(&str, f64); 4] = [
    ("rtmp-recorder-ingest.service", 0.2),
    ("rtmp-recorder-remux.service", 0.2),
    ("rtmp-recorder-publish.service", 1.1),
    ("rtmp-recorder-events.service", 1.1),
];

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd")
}

/// The unit files of systemd/, copied into `dir` with the packager's substitution applied.
fn installed_units(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(units_dir()).expect("listing systemd/") {
        let path = entry.expect("reading systemd/").path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let is_unit = [".service", ".socket", ".path"]
            .iter()
            .any(|ext| name.ends_with(ext));
        if !is_unit {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        let dest = dir.join(&name);
        fs::write(&dest, text.replace("/usr/bin/rtmp-recorder", support::BIN)).unwrap();
        out.push(dest);
    }
    out.sort();
    out
}

fn analyze() -> PathBuf {
    support::require_tool("systemd-analyze", "apt-get install systemd")
}

#[test]
fn every_unit_is_there() {
    let dir = Turn::shared().scratch();
    let names: Vec<String> = installed_units(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "rtmp-recorder-events.path",
            "rtmp-recorder-events.service",
            "rtmp-recorder-http.socket",
            "rtmp-recorder-ingest.service",
            "rtmp-recorder-ingest.socket",
            "rtmp-recorder-publish.path",
            "rtmp-recorder-publish.service",
            "rtmp-recorder-remux.path",
            "rtmp-recorder-remux.service",
            "rtmp-recorder-rtmps.socket",
        ]
    );
    for extra in ["rtmp-recorder.sysusers", "rtmp-recorder.tmpfiles"] {
        assert!(units_dir().join(extra).is_file(), "systemd/{extra} missing");
    }
}

#[test]
fn verify_is_clean() {
    let dir = Turn::shared().scratch();
    let units = installed_units(dir.path());
    let out = Command::new(analyze())
        .args(["verify", "--man=no"])
        .args(&units)
        .current_dir(dir.path())
        .output()
        .expect("running systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify ({}) complained:\n{said}",
        out.status
    );
}

/// The overall exposure systemd-analyze prints in its last line ("... level for X: 1.1 OK").
fn exposure(report: &str, unit: &str) -> f64 {
    let line = report
        .lines()
        .find(|l| l.contains("Overall exposure level for"))
        .unwrap_or_else(|| panic!("no overall exposure for {unit} in:\n{report}"));
    let after = line.rsplit_once(": ").map(|(_, r)| r).unwrap_or_default();
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unreadable exposure line for {unit}: {line}"))
}

#[test]
fn every_service_exposure_is_at_most_2() {
    let dir = Turn::shared().scratch();
    let services: Vec<PathBuf> = installed_units(dir.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    assert_eq!(services.len(), 4);
    for unit in services {
        let name = unit.file_name().unwrap().to_string_lossy().into_owned();
        let out = Command::new(analyze())
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&unit)
            .current_dir(dir.path())
            .output()
            .expect("running systemd-analyze security");
        let report = String::from_utf8_lossy(&out.stdout).into_owned();
        let score = exposure(&report, &name);
        eprintln!("{name}: exposure {score}");
        let rated = RATED
            .iter()
            .find(|(unit, _)| *unit == name)
            .map_or(MAX_EXPOSURE, |(_, r)| *r);
        assert!(
            score <= MAX_EXPOSURE.min(rated),
            "{name}: exposure {score} > {}; what is missing:\n{}",
            MAX_EXPOSURE.min(rated),
            report
                .lines()
                .filter(|l| l.starts_with('✗'))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// Every service runs as the one static identity, from the state directory, reading the same
/// environment file; credentials never appear in a unit.
#[test]
fn services_share_identity_state_and_config() {
    let _turn = Turn::shared();
    for (stage, command) in [
        ("ingest", "ingest"),
        ("remux", "remux"),
        ("publish", "publish"),
        ("events", "deliver"),
    ] {
        let path = units_dir().join(format!("rtmp-recorder-{stage}.service"));
        let text = fs::read_to_string(&path).unwrap();
        for line in [
            "User=rtmp-recorder",
            "Group=rtmp-recorder",
            "StateDirectory=rtmp-recorder",
            "EnvironmentFile=-/etc/rtmp-recorder/recorder.env",
            "ProtectSystem=strict",
            &format!("ExecStart=/usr/bin/rtmp-recorder {command}"),
        ] {
            assert!(
                text.lines().any(|l| l.trim() == line),
                "{stage}: missing {line}"
            );
        }
        for secret in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
        ] {
            assert!(!text.contains(secret), "{stage}: names {secret}");
        }
    }
}
