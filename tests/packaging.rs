//! The .deb (cargo-deb) and the .rpm (cargo-generate-rpm) as built from this tree, read back with
//! the distributions' own tools (`dpkg-deb`, `rpm`): each holds the binary at
//! /usr/bin/rtmp-recorder, the ten units where its distribution looks for them, the sysusers and
//! tmpfiles entries, the example configuration marked as configuration, and the maintainer
//! scripts that create the user and enable the units. Installing the .deb into a booted systemd is
//! tests/appliance_nspawn.rs; the .rpm's scripts are the same steps for Amazon Linux 2023.

use crate::support::{self, Turn};

use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 10] = [
    "rtmp-recorder-ingest.socket",
    "rtmp-recorder-http.socket",
    "rtmp-recorder-rtmps.socket",
    "rtmp-recorder-ingest.service",
    "rtmp-recorder-remux.path",
    "rtmp-recorder-remux.service",
    "rtmp-recorder-publish.path",
    "rtmp-recorder-publish.service",
    "rtmp-recorder-events.path",
    "rtmp-recorder-events.service",
];

/// The target directory and cargo profile the test binary was built with, for `--no-build`.
fn target_and_profile() -> (PathBuf, &'static str) {
    let profile_dir = Path::new(support::BIN).parent().unwrap();
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        _ => "release",
    };
    (profile_dir.parent().unwrap().to_path_buf(), profile)
}

fn text(out: std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn deb_holds_binary_units_config_and_scripts() {
    let _turn = Turn::shared();
    support::require_tool(
        "cargo-deb",
        "cargo install cargo-deb --version 3.8.0 --locked --no-default-features",
    );
    let dir = tempfile::tempdir().unwrap();
    let deb = dir.path().join("rtmp-recorder.deb");
    let (target, profile) = target_and_profile();
    support::run_ok(
        Command::new("cargo")
            .args(["deb", "--no-build", "--fast", "--profile", profile])
            .arg("--output")
            .arg(&deb)
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
        "cargo deb",
    );
    let listing = text(support::run_ok(
        Command::new("dpkg-deb").arg("--contents").arg(&deb),
        "dpkg-deb --contents",
    ));
    let has = |path: &str, mode: &str| {
        listing
            .lines()
            .any(|l| l.starts_with(mode) && l.ends_with(&format!(".{path}")))
    };
    assert!(has("/usr/bin/rtmp-recorder", "-rwxr-xr-x"), "{listing}");
    for unit in UNITS {
        assert!(
            has(&format!("/lib/systemd/system/{unit}"), "-rw-r--r--"),
            "{unit} missing:\n{listing}"
        );
    }
    for file in [
        "/usr/lib/sysusers.d/rtmp-recorder.conf",
        "/usr/lib/tmpfiles.d/rtmp-recorder.conf",
        "/etc/rtmp-recorder/recorder.env",
    ] {
        assert!(has(file, "-rw-r--r--"), "{file} missing:\n{listing}");
    }
    let control = dir.path().join("control");
    support::run_ok(
        Command::new("dpkg-deb")
            .arg("--control")
            .arg(&deb)
            .arg(&control),
        "dpkg-deb --control",
    );
    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/rtmp-recorder/recorder.env"),
        "{conffiles}"
    );
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    for step in [
        "systemd-sysusers",
        "systemd-tmpfiles --create",
        "systemctl enable",
    ] {
        assert!(postinst.contains(step), "postinst lacks {step}");
    }
    let prerm = std::fs::read_to_string(control.join("prerm")).unwrap();
    assert!(prerm.contains("systemctl disable --now"), "{prerm}");
}

#[test]
fn rpm_holds_binary_units_config_and_scripts() {
    let _turn = Turn::shared();
    support::require_tool(
        "cargo-generate-rpm",
        "cargo install cargo-generate-rpm --version 0.21.1 --locked",
    );
    support::require_tool("rpm", "apt-get install rpm");
    let dir = tempfile::tempdir().unwrap();
    let rpm = dir.path().join("rtmp-recorder.rpm");
    let (target, profile) = target_and_profile();
    let profile = if profile == "dev" { "debug" } else { profile };
    support::run_ok(
        Command::new("cargo")
            .args([
                "generate-rpm",
                "--profile",
                profile,
                "--auto-req",
                "builtin",
            ])
            // zstd at its default level takes over a minute on the unstripped binary.
            .args(["--payload-compress", "gzip"])
            .arg("--target-dir")
            .arg(&target)
            .arg("--output")
            .arg(&rpm)
            .current_dir(env!("CARGO_MANIFEST_DIR")),
        "cargo generate-rpm",
    );
    let files = text(support::run_ok(
        Command::new("rpm").args(["-qp", "--list"]).arg(&rpm),
        "rpm --list",
    ));
    let mut want = vec![
        "/usr/bin/rtmp-recorder".to_string(),
        "/usr/lib/sysusers.d/rtmp-recorder.conf".to_string(),
        "/usr/lib/tmpfiles.d/rtmp-recorder.conf".to_string(),
        "/etc/rtmp-recorder/recorder.env".to_string(),
    ];
    want.extend(UNITS.iter().map(|u| format!("/usr/lib/systemd/system/{u}")));
    for path in &want {
        assert!(files.lines().any(|l| l == path), "{path} missing:\n{files}");
    }
    let config = text(support::run_ok(
        Command::new("rpm").args(["-qp", "--configfiles"]).arg(&rpm),
        "rpm --configfiles",
    ));
    assert_eq!(config.trim(), "/etc/rtmp-recorder/recorder.env");
    let scripts = text(support::run_ok(
        Command::new("rpm").args(["-qp", "--scripts"]).arg(&rpm),
        "rpm --scripts",
    ));
    for step in [
        "postinstall scriptlet",
        "systemd-sysusers",
        "systemd-tmpfiles --create",
        "systemctl enable",
        "preuninstall scriptlet",
        "systemctl disable --now",
    ] {
        assert!(
            scripts.contains(step),
            "rpm scripts lack {step}:\n{scripts}"
        );
    }
    let requires = text(support::run_ok(
        Command::new("rpm").args(["-qp", "--requires"]).arg(&rpm),
        "rpm --requires",
    ));
    assert!(
        requires.lines().any(|l| l.starts_with("systemd")),
        "{requires}"
    );
}
