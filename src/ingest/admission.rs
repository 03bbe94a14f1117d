//! Who gets a connection slot at accept: at most `--max-connections` in all and
//! `--max-connections-per-ip` from one address. Refusals are logged once per burst, not once
//! per connection (`quieted::Quieted`): a flood of connects must not become a flood of log lines. The rules take
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
}
