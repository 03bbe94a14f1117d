//! This node's identity (`--node-id`), carried by every chunk name, each manifest's `node` and
//! the key template's `{node}`, so several ingest nodes can record streams of the same names into
//! one bucket without their objects or manifest chains ever meeting.
//!
//! Default: on EC2 the instance id (stable for the instance's life, unlike its private
//! hostname, and what the console and CloudWatch show), else the hostname. The instance
//! metadata service (IMDSv2) is asked only when the machine looks like EC2 (its DMI vendor or
//! its hostname say so), with a one-second timeout and one attempt, so a start elsewhere never
//! waits on it and a start on EC2 waits at most about two seconds before falling back to the
//! hostname.

use std::time::Duration;

use anyhow::Result;
use sha2::{Digest, Sha256};

use crate::naming::{MAX_NODE_BYTES, NodeId};

/// What IMDS gets for each of its two requests (token, then instance id).
const IMDS_TIMEOUT: Duration = Duration::from_secs(1);

/// The node id: `given` (`--node-id`) if any, else the default above.
pub async fn resolve(given: Option<&str>) -> Result<NodeId> {
    if let Some(given) = given.map(str::trim).filter(|g| !g.is_empty()) {
        return NodeId::new(given).map_err(|e| {
            crate::exit::Coded::new(
                crate::exit::USAGE,
                format!("--node-id (NODE_ID): {e}; choose another"),
            )
            .into()
        });
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let vendor = std::fs::read_to_string("/sys/devices/virtual/dmi/id/sys_vendor")
        .map(|v| v.trim().to_string())
        .unwrap_or_default();
    if looks_like_ec2(&hostname, &vendor) {
        match instance_id().await {
            Ok(id) => {
                log::info!("node id {id}: this EC2 instance's id (set --node-id to choose one)");
                return Ok(id);
            }
            Err(e) => log::warn!(
                "this machine looks like EC2 but its instance id could not be read ({e:#}); \
                 the hostname is the node id. To fix: allow IMDSv2 (hop limit 2 in a \
                 container) or set --node-id (NODE_ID)"
            ),
        }
    }
    let id = from_hostname(&hostname);
    log::info!("node id {id}: from the hostname (set --node-id to choose one)");
    Ok(id)
}

/// EC2's DMI vendor (Nitro instances), or one of the hostnames EC2 gives (`ip-10-0-0-7...`,
/// `i-0123456789abcdef0...`, `*.compute.internal`, `*.ec2.internal`).
pub fn looks_like_ec2(hostname: &str, dmi_vendor: &str) -> bool {
    let first = hostname.split('.').next().unwrap_or_default();
    let ip_name = first.strip_prefix("ip-").is_some_and(|rest| {
        rest.split('-').count() == 4
            && rest
                .split('-')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    dmi_vendor == "Amazon EC2"
        || ip_name
        || is_instance_id(first)
        || hostname.ends_with(".compute.internal")
        || hostname.ends_with(".ec2.internal")
}

fn is_instance_id(text: &str) -> bool {
    text.strip_prefix("i-")
        .is_some_and(|hex| hex.len() >= 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

async fn instance_id() -> Result<NodeId> {
    let client = aws_config::imds::Client::builder()
        .connect_timeout(IMDS_TIMEOUT)
        .read_timeout(IMDS_TIMEOUT)
        .max_attempts(1)
        .build();
    let answer = tokio::time::timeout(
        2 * IMDS_TIMEOUT,
        client.get("/latest/meta-data/instance-id"),
    )
    .await
    .map_err(|_| anyhow::anyhow!("no answer within {:?}", 2 * IMDS_TIMEOUT))??;
    let id = answer.as_ref().trim();
    if !is_instance_id(id) {
        anyhow::bail!("the metadata service answered {id:?}, not an instance id");
    }
    NodeId::new(id).map_err(anyhow::Error::msg)
}

/// The hostname as a node id: as it is if it fits, else its first label, else as much of it as
/// fits with a hash of the whole, so two long hostnames that share a beginning stay apart.
/// `localhost` for a machine without one.
pub fn from_hostname(hostname: &str) -> NodeId {
    let whole = if hostname.is_empty() {
        "localhost"
    } else {
        hostname
    };
    let first = whole.split('.').next().unwrap_or(whole);
    if let Some(id) = [whole, first].into_iter().find_map(|h| NodeId::new(h).ok()) {
        return id;
    }
    let hash = Sha256::digest(whole.as_bytes());
    let suffix: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    let mut head = String::new();
    for c in first.chars() {
        let mut longer = head.clone();
        longer.push(c);
        if NodeId::new(&longer).map_or(true, |id| id.as_str().len() > MAX_NODE_BYTES - 9) {
            break;
        }
        head = longer;
    }
    NodeId::new(&format!("{head}-{suffix}")).unwrap_or_else(|_| from_hostname("localhost"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec2_is_recognised_by_its_vendor_or_its_hostnames_only() {
        assert!(looks_like_ec2("web1", "Amazon EC2"));
        assert!(looks_like_ec2("ip-172-31-12-34", ""));
        assert!(looks_like_ec2(
            "ip-172-31-12-34.eu-central-1.compute.internal",
            ""
        ));
        assert!(looks_like_ec2(
            "i-0123456789abcdef0.us-west-2.compute.internal",
            ""
        ));
        assert!(looks_like_ec2("ip-10-0-0-7.ec2.internal", "Xen"));
        assert!(!looks_like_ec2("recorder-a", "QEMU"));
        assert!(!looks_like_ec2("ip-camera", ""));
        assert!(!looks_like_ec2("i-am-a-laptop", "LENOVO"));
    }

    #[test]
    fn hostnames_become_node_ids_that_fit_and_stay_apart() {
        assert_eq!(from_hostname("recorder-a").as_str(), "recorder-a");
        assert_eq!(from_hostname("").as_str(), "localhost");
        assert_eq!(
            from_hostname("ip-172-31-12-34.eu-central-1.compute.internal").as_str(),
            "ip-172-31-12-34"
        );
        let a = from_hostname(&format!("{}-a", "r".repeat(40)));
        let b = from_hostname(&format!("{}-b", "r".repeat(40)));
        assert_ne!(a, b);
        assert!(a.as_str().len() <= MAX_NODE_BYTES, "{a}");
        assert!(a.as_str().starts_with("rrrr"), "{a}");
    }
}
