//! A stage's state as systemd sees it (`systemctl show`), where systemd runs and our units are
//! installed. ingest is started by its socket and remux, publish and events by their path units, so an
//! inactive service with its trigger active is a stage waiting for work, not a stopped one.

use std::process::Command;

pub struct UnitState {
    pub text: String,
    pub running: bool,
    pub failed: bool,
}

/// `None` without systemd, or when our units are not installed (then a process may run it).
pub fn state(stage: &str) -> Option<UnitState> {
    if !std::path::Path::new("/run/systemd/system").exists() {
        return None;
    }
    let service = format!("rtmp-recorder-{stage}.service");
    let trigger = if stage == "ingest" {
        "rtmp-recorder-ingest.socket".to_string()
    } else {
        format!("rtmp-recorder-{stage}.path")
    };
    let s = show(&service)?;
    if s.load != "loaded" {
        return None;
    }
    let t = show(&trigger);
    let running = s.active == "active" || s.active == "activating" || s.active == "reloading";
    let failed = s.active == "failed" || t.as_ref().is_some_and(|t| t.active == "failed");
    let mut text = format!("{service} {} ({})", s.active, s.sub);
    if let Some(t) = t {
        text.push_str(&format!(", {trigger} {} ({})", t.active, t.sub));
    }
    if s.active == "failed" && !s.result.is_empty() {
        text.push_str(&format!(", result {}", s.result));
    }
    Some(UnitState {
        text,
        running,
        failed,
    })
}

struct Shown {
    load: String,
    active: String,
    sub: String,
    result: String,
}

fn show(unit: &str) -> Option<Shown> {
    let out = Command::new("systemctl")
        .args([
            "show",
            "--property=LoadState,ActiveState,SubState,Result",
            unit,
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .unwrap_or("")
            .to_string()
    };
    Some(Shown {
        load: get("LoadState"),
        active: get("ActiveState"),
        sub: get("SubState"),
        result: get("Result"),
    })
}
