//! Which chunks a clip's span needs, and the gaps between them. A gap is anything that breaks
//! the chain from one chunk to the next: chunks missing (sequence numbers skipped), a new
//! session (a reconnect: the manifest names no predecessor, or another one; a switch between
//! ingest nodes, whose manifests name different nodes, is said as such), or a hole in wall
//! time beyond [`SEAM_TOLERANCE_MS`] between chunks that do chain. The ends of the span are
//! not gaps: a span that starts before the recording or ends after it is refused either way.

use serde::Serialize;

use super::sources::Chunk;
use crate::utc::Civil;

/// The chunks' boundaries may be this far apart (or overlap) and still count as one chain:
/// a chunk's duration is its decode span, which ends a frame before the next chunk starts.
pub const SEAM_TOLERANCE_MS: i64 = 250;

/// A break in the recording between two chunks of the span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// The chunk before the gap.
    pub after: String,
    /// The chunk after it.
    pub before: String,
    /// Where the recording stops and resumes, UTC RFC 3339.
    pub from: String,
    pub to: String,
    /// Wall time not recorded (0 when only the chain is broken).
    pub ms: i64,
    /// Why the chunks do not chain.
    pub why: String,
}

/// The chunks covering a span, oldest first, and the gaps between them: `gaps[i].0` is the
/// index of the chunk right after the gap.
#[derive(Debug)]
pub struct Cover {
    pub chunks: Vec<Chunk>,
    pub gaps: Vec<(usize, Gap)>,
}

/// The chunks of `all` (oldest first) that cover `from..to` (Unix ms), or why they cannot:
/// nothing recorded, or the recording begins after `from` or stops before `to`.
pub fn covering(all: &[Chunk], from: i64, to: i64) -> Result<Cover, String> {
    let chosen: Vec<&Chunk> = all
        .iter()
        .filter(|c| c.end_ms() > from && c.start_ms < to)
        .collect();
    let (Some(first), Some(last)) = (chosen.first(), chosen.last()) else {
        return Err("nothing was recorded in that span".to_string());
    };
    if first.start_ms > from + SEAM_TOLERANCE_MS {
        return Err(format!(
            "the recording begins at {}, after the clip's start",
            first.manifest.utc_start
        ));
    }
    if last.end_ms() + SEAM_TOLERANCE_MS < to {
        return Err(format!(
            "the recording stops at {}, before the clip's end",
            Civil::from_unix_millis(last.end_ms()).rfc3339()
        ));
    }
    let gaps = chosen
        .windows(2)
        .enumerate()
        .filter_map(|(i, pair)| gap(pair[0], pair[1]).map(|g| (i + 1, g)))
        .collect();
    Ok(Cover {
        chunks: chosen.into_iter().cloned().collect(),
        gaps,
    })
}

/// The gap between consecutive chunks `a` and `b` of the span, if they do not chain.
fn gap(a: &Chunk, b: &Chunk) -> Option<Gap> {
    let (ma, mb) = (&a.manifest, &b.manifest);
    let hole = b.start_ms - a.end_ms();
    let chained =
        mb.previous.as_deref() == Some(ma.name.as_str()) && mb.sequence == ma.sequence + 1;
    let why = if chained {
        if hole <= SEAM_TOLERANCE_MS {
            return None;
        }
        match &mb.gap {
            Some(g) if g.reason == crate::reconnect::GAP_REASON_RECONNECT => format!(
                "the publisher dropped and reconnected {} ms later (the recording continues \
                 over the gap, within --reconnect-grace)",
                g.duration_ms
            ),
            _ => format!("{hole} ms between consecutive chunks"),
        }
    } else if let (Some(na), Some(nb)) = (&ma.node, &mb.node)
        && na != nb
    {
        let how = if mb.sequence == 1 {
            "the publisher reconnected to another node"
        } else {
            "two publishers used this stream on two nodes at once"
        };
        format!(
            "node {nb} recorded {} and node {na} the chunk before: {how}",
            mb.name
        )
    } else if mb.previous.is_none() || mb.sequence == 1 {
        "a new session began (the publisher reconnected)".to_string()
    } else if mb.sequence > ma.sequence + 1 {
        let missing = mb.sequence - ma.sequence - 1;
        format!(
            "{missing} chunk(s) missing (sequence {} to {}; the one before {} is {})",
            ma.sequence + 1,
            mb.sequence - 1,
            mb.name,
            mb.previous.as_deref().unwrap_or("-")
        )
    } else {
        format!(
            "they are not consecutive chunks of one session ({} names {} before it)",
            mb.name,
            mb.previous.as_deref().unwrap_or("nothing")
        )
    };
    Some(Gap {
        after: ma.name.clone(),
        before: mb.name.clone(),
        from: Civil::from_unix_millis(a.end_ms()).rfc3339(),
        to: mb.utc_start.clone(),
        ms: hole.max(0),
        why,
    })
}

impl std::fmt::Display for Gap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "gap between {} and {}: {}; not recorded from {} to {} ({} ms)",
            self.after, self.before, self.why, self.from, self.to, self.ms
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::sources::Location;
    use super::*;
    use crate::manifest::ChunkManifest;

    fn chunk(seq: u32, previous: Option<u32>, start_ms: i64, duration_ms: u64) -> Chunk {
        let name = |s: u32| format!("c{s:06}");
        Chunk {
            manifest: ChunkManifest {
                app: "live".into(),
                stream: "cam1".into(),
                sequence: seq,
                previous: previous.map(name),
                utc_start: Civil::from_unix_millis(start_ms).rfc3339(),
                duration_ms,
                ..ChunkManifest::from_name(&name(seq), None)
            },
            location: Location::File("x.mp4".into()),
            size: 0,
            start_ms,
        }
    }

    #[test]
    fn a_missing_chunk_a_reconnect_and_a_hole_are_gaps_a_seam_is_not() {
        let all = [
            chunk(1, None, 0, 3_990),
            chunk(2, Some(1), 4_000, 3_990),
            // 3 is missing.
            chunk(4, Some(3), 12_000, 3_990),
            // A reconnect.
            chunk(1, None, 16_100, 3_990),
            // Chained, but 2 s later.
            chunk(2, Some(1), 22_090, 3_990),
        ];
        let cover = covering(&all, 1_000, 25_000).unwrap();
        assert_eq!(cover.chunks.len(), 5);
        let at: Vec<(usize, i64)> = cover.gaps.iter().map(|(i, g)| (*i, g.ms)).collect();
        assert_eq!(at, vec![(2, 4_010), (3, 110), (4, 2_000)]);
        assert!(cover.gaps[0].1.why.contains("1 chunk(s) missing"));
        assert!(cover.gaps[1].1.why.contains("new session"));
        assert!(cover.gaps[2].1.why.contains("between consecutive chunks"));
        assert!(
            cover.gaps[0]
                .1
                .to_string()
                .starts_with("gap between c000002 and c000004")
        );

        // Inside one unbroken chain: no gap.
        assert!(covering(&all, 500, 7_000).unwrap().gaps.is_empty());
    }

    #[test]
    fn a_reconnect_within_the_grace_chains_but_is_still_a_gap() {
        let mut after = chunk(3, Some(2), 12_000, 3_990);
        after.manifest.gap = Some(crate::manifest::Gap {
            reason: crate::reconnect::GAP_REASON_RECONNECT.into(),
            duration_ms: 4_010,
        });
        let all = [chunk(2, Some(1), 4_000, 3_990), after];
        let cover = covering(&all, 5_000, 14_000).unwrap();
        assert_eq!(cover.gaps.len(), 1);
        let gap = &cover.gaps[0].1;
        assert_eq!(gap.ms, 4_010);
        assert!(gap.why.contains("reconnected 4010 ms later"), "{}", gap.why);
    }

    #[test]
    fn a_switch_between_nodes_is_a_gap_that_names_both() {
        let on = |node: &str, mut c: Chunk| {
            c.manifest.node = Some(node.to_string());
            c.manifest.name.push_str(&format!("-{node}"));
            c
        };
        let all = [
            on("a", chunk(1, None, 0, 3_990)),
            // Reconnected to node b right away: a seam in time, a new session on another node.
            on("b", chunk(1, None, 4_000, 3_990)),
        ];
        let cover = covering(&all, 1_000, 7_000).unwrap();
        assert_eq!(cover.gaps.len(), 1);
        let why = &cover.gaps[0].1.why;
        assert!(
            why.contains("node b recorded c000001-b and node a the chunk before")
                && why.contains("reconnected to another node"),
            "{why}"
        );
    }

    #[test]
    fn the_ends_of_the_span_must_be_recorded() {
        let all = [
            chunk(1, None, 10_000, 3_990),
            chunk(2, Some(1), 14_000, 3_990),
        ];
        let early = covering(&all, 5_000, 12_000).unwrap_err();
        assert!(early.contains("the recording begins at"), "{early}");
        let late = covering(&all, 15_000, 25_000).unwrap_err();
        assert!(late.contains("the recording stops at"), "{late}");
        let none = covering(&all, 30_000, 31_000).unwrap_err();
        assert!(none.contains("nothing was recorded"), "{none}");
    }
}
