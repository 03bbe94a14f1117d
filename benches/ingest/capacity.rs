//! (c) capacity: the most real-time streams each server sustains on this machine, at 6 Mbps and
//! at 2.5 Mbps (a 720p30 camera). A count is sustained when every publisher finished, every
//! frame sent was recorded (none lost, none extra, no torn or unreadable file), no publisher
//! fell more than `MAX_LAG_MS` behind real time and the server ran cleanly. The count doubles
//! from `start` until a run fails (or `max` passes), then the gap between the last pass and
//! the first failure is halved until it is at most an eighth of the pass; every search gets an
//! equal share of a time budget and stops early, saying so, when its share is spent.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::scenario::{Measured, Pace, Scenario, run_scenario};
use crate::servers::Kind;
use crate::{Config, Paths};

/// How far behind its schedule a publisher may send a frame and still count as keeping up:
/// a keyframe burst waiting on the socket costs tens of ms; a server that cannot keep up
/// falls behind by more every second.
pub const MAX_LAG_MS: f64 = 500.0;

pub struct Bitrate {
    pub label: &'static str,
    pub input: PathBuf,
}

/// One count tried: whether it was sustained, and why not.
pub struct Step {
    pub streams: u32,
    pub failure: Option<String>,
}

pub struct Search {
    pub kind: Kind,
    pub bitrate: &'static str,
    pub steps: Vec<Step>,
    /// The time share ran out before the gap was closed.
    pub cut_short: bool,
}

impl Search {
    pub fn sustained(&self) -> Option<u32> {
        self.steps
            .iter()
            .filter(|s| s.failure.is_none())
            .map(|s| s.streams)
            .max()
    }

    /// The smallest count that failed above the sustained one.
    pub fn first_failure(&self) -> Option<&Step> {
        let floor = self.sustained().unwrap_or(0);
        self.steps
            .iter()
            .filter(|s| s.failure.is_some() && s.streams > floor)
            .min_by_key(|s| s.streams)
    }
}

/// Why `m` does not count as sustained; `None` when it does.
fn failure(m: &Measured) -> Option<String> {
    let (lost, extra) = m.frame_diff();
    if m.load.failed > 0 {
        let first = m.load.streams.iter().find_map(|(_, _, e)| e.as_deref());
        return Some(format!(
            "{} stream(s) failed ({})",
            m.load.failed,
            first.unwrap_or("?")
        ));
    }
    if lost > 0 || extra > 0 {
        return Some(format!("{lost} frame(s) lost, {extra} extra"));
    }
    if m.load.max_lag_ms > MAX_LAG_MS {
        return Some(format!(
            "a publisher fell {:.0} ms behind",
            m.load.max_lag_ms
        ));
    }
    if m.recorded.torn_files > 0 || !m.recorded.bad_files.is_empty() {
        return Some("torn or unreadable recordings".into());
    }
    m.server_trouble.clone()
}

/// Runs every search (servers alternating per bitrate), sharing `cfg.capacity_budget`.
pub fn run_all(paths: &Paths, cfg: &Config, bitrates: &[Bitrate]) -> Vec<Search> {
    let started = Instant::now();
    let total = bitrates.len() * cfg.kinds.len();
    let mut searches = Vec::new();
    for b in bitrates {
        for &kind in &cfg.kinds {
            let left = cfg.capacity_budget.saturating_sub(started.elapsed());
            let share = left / (total - searches.len()).max(1) as u32;
            searches.push(search(kind, b, paths, cfg, Instant::now() + share));
        }
    }
    searches
}

fn search(kind: Kind, b: &Bitrate, paths: &Paths, cfg: &Config, deadline: Instant) -> Search {
    let mut s = Search {
        kind,
        bitrate: b.label,
        steps: Vec::new(),
        cut_short: false,
    };
    let (mut pass, mut fail): (Option<u32>, Option<u32>) = (None, None);
    let mut n = cfg.capacity_start.min(cfg.capacity_max);
    loop {
        if Instant::now() >= deadline {
            s.cut_short = true;
            break;
        }
        let sc = Scenario {
            name: if b.label == "6 Mbps" {
                "capacity-6m"
            } else {
                "capacity-2.5m"
            },
            pace: Pace::RealTime,
            copies: n,
            repeat: 1,
            stagger_ms: (1000 / u64::from(n)).max(1),
            input: b.input.clone(),
        };
        let failure = match run_scenario(kind, &sc, n, paths, cfg) {
            Ok(m) => failure(&m),
            Err(e) => Some(format!("{e:#}")),
        };
        eprintln!(
            "capacity {} {}: {n} streams: {}",
            b.label,
            kind.name(),
            failure.as_deref().unwrap_or("sustained")
        );
        match failure {
            None => pass = Some(n),
            Some(_) => fail = Some(n),
        }
        s.steps.push(Step {
            streams: n,
            failure,
        });
        n = match (pass, fail) {
            (Some(p), None) if p >= cfg.capacity_max => break,
            (Some(p), None) => (p * 2).min(cfg.capacity_max),
            (None, Some(f)) if f <= 1 => break,
            (None, Some(f)) => f / 2,
            (Some(p), Some(f)) if f - p <= (p / 8).max(1) => break,
            (Some(p), Some(f)) => p + (f - p) / 2,
            (None, None) => unreachable!("a step was just recorded"),
        };
    }
    s
}

/// Prints the searches side by side; true when ours sustains at least nginx-rtmp's count at
/// every bitrate both were searched at.
pub fn print(searches: &[Search], budget: Duration) -> bool {
    println!();
    println!(
        "(c) most real-time streams sustained: every frame recorded, no publisher over {MAX_LAG_MS:.0} \
         ms behind, no stream failed; doubling, then halving the gap to 1/8 (time budget {:.0} s)",
        budget.as_secs_f64()
    );
    println!(
        "{:<10} {:<14} {:>9} {:>12}  tried (streams: ok or why not)",
        "bitrate", "server", "sustained", "first failed"
    );
    let mut ok = true;
    let mut bitrates: Vec<&str> = searches.iter().map(|s| s.bitrate).collect();
    bitrates.dedup();
    for bitrate in bitrates {
        let of = |kind| {
            searches
                .iter()
                .find(|s| s.bitrate == bitrate && s.kind == kind)
        };
        for s in searches.iter().filter(|s| s.bitrate == bitrate) {
            let tried: Vec<String> = s
                .steps
                .iter()
                .map(|st| match &st.failure {
                    None => format!("{}: ok", st.streams),
                    Some(why) => format!("{}: {}", st.streams, short(why)),
                })
                .collect();
            println!(
                "{:<10} {:<14} {:>9} {:>12}  {}{}",
                bitrate,
                s.kind.name(),
                s.sustained().map_or("none".into(), |n| n.to_string()),
                s.first_failure()
                    .map_or("-".into(), |f| f.streams.to_string()),
                tried.join("; "),
                if s.cut_short {
                    " (time share spent)"
                } else {
                    ""
                }
            );
        }
        if let (Some(n), Some(o)) = (of(Kind::Nginx), of(Kind::Ours)) {
            let (ns, os) = (n.sustained().unwrap_or(0), o.sustained().unwrap_or(0));
            let pass = os >= ns;
            println!(
                "{bitrate}: rtmp-recorder sustains {os} streams, nginx-rtmp {ns} (target >= \
                 nginx-rtmp): {}",
                if pass { "PASS" } else { "FAIL" }
            );
            ok &= pass;
        }
    }
    ok
}

fn short(why: &str) -> String {
    let line = why.lines().next().unwrap_or("");
    match line.char_indices().nth(60) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}
