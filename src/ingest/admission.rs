//! Who gets a connection slot at accept: at most `--max-connections` in all and
//! `--max-connections-per-ip` from one address. Refusals are logged once per burst, not once
//! per connection: a flood of connects must not become a flood of log lines. The rules take
//! the time as a value, so they are tested without a clock.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a refusal of one kind may be logged; the line says how many were not.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Connections per peer address.
#[derive(Debug)]
pub struct PerIp {
    limit: usize,
    counts: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection's place in its address's count; given back on drop.
#[derive(Debug)]
pub struct IpSlot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(limit: usize) -> Arc<PerIp> {
        Arc::new(PerIp {
            limit,
            counts: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a connection from `ip`, or `None` if that address holds `limit` already.
    /// IPv4 addresses seen through an IPv6 socket count as the IPv4 address.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let ip = ip.to_canonical();
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            owner: self.clone(),
            ip,
        })
    }

    /// Connections from `ip` now.
    pub fn count(&self, ip: IpAddr) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts.get(&ip.to_canonical()).copied().unwrap_or(0)
    }

    /// Addresses holding at least one connection (the map never outgrows the connections).
    pub fn addresses(&self) -> usize {
        self.counts.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// Says when a repeated event is worth a log line: the first one, then at most one per
/// `every`, each line counting the ones left out since the last.
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
    fn each_address_gets_its_limit_and_slots_come_back() {
        let per_ip = PerIp::new(2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let first = per_ip.admit(a).unwrap();
        let second = per_ip.admit(mapped).expect("a second slot");
        assert!(per_ip.admit(a).is_none(), "a third from the same address");
        assert!(
            per_ip.admit(mapped).is_none(),
            "the same address through IPv6"
        );
        let other = per_ip.admit(b).expect("another address is not affected");
        assert_eq!(per_ip.count(a), 2);
        drop(first);
        assert_eq!(per_ip.count(a), 1);
        let again = per_ip.admit(a).expect("a slot given back is free again");
        drop((second, again, other));
        assert_eq!(per_ip.addresses(), 0, "no entry outlives its connections");
    }

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
