//! When a repeated event is worth a log line: the first one, then at most one per interval,
//! each line counting the ones left out since the last. Ingest's refused connections and TLS
//! failures and `deliver`'s failing event use it, so a flood of the same trouble is a few lines
//! that say how much there was. The time is passed in, so the rule is tested without a clock.

use std::time::Duration;

/// The line rule above for one kind of event, lines at most once per `every`.
#[derive(Debug, Clone)]
pub struct Quieted {
    every: Duration,
    last: Option<Duration>,
    left_out: u64,
}

impl Quieted {
    pub fn new(every: Duration) -> Quieted {
        Quieted {
            every,
            last: None,
            left_out: 0,
        }
    }

    /// The event happened at `now`: `Some(left out since the last line)` if it gets a line.
    pub fn note(&mut self, now: Duration) -> Option<u64> {
        match self.last {
            Some(last) if now < last.saturating_add(self.every) => {
                self.left_out += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.left_out))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_refusals_gets_one_line_per_interval() {
        let mut q = Quieted::new(Duration::from_secs(10));
        let ms = Duration::from_millis;
        // 1000 refusals over 25 s: lines at 0, 10 and 20 s, each counting the rest.
        let lines: Vec<(u64, u64)> = (0..1000u64)
            .filter_map(|i| q.note(ms(i * 25)).map(|left_out| (i * 25, left_out)))
            .collect();
        assert_eq!(lines, [(0, 0), (10_000, 399), (20_000, 399)]);
        // After a quiet spell the next refusal is logged at once, with what was left out.
        assert_eq!(q.note(ms(60_000)), Some(199));
        assert_eq!(q.note(ms(60_001)), None);
    }
}
