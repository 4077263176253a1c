//! Sharding: which agent of a fleet owns a target. Pure functions only (no I/O besides reading the
//! hostname for `index = "hostname"`): the cycle keeps only this shard's targets, the API redirects
//! to the owner of the others, the metrics name the shard.
//!
//! A target's *shard key* is its instance id for a cloud VM's address (`<instance>/<port>/<address>`:
//! every address of one VM lands on the same shard, so one agent answers for the whole VM) and its
//! address for a CIDR target. The key's hash is the first 8 bytes (big-endian) of its SHA-256, and
//! the owner is Lamping and Veach's jump consistent hash of that over `count` buckets: stable across
//! releases and platforms, balanced, and growing `count` from N to N+1 moves only about 1/(N+1) of
//! the targets, each to the new shard.

use std::sync::{Arc, RwLock};

/// This agent's place in the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    /// This agent's shard, `0..count`.
    pub index: u32,
    /// How many agents share the inventory (1: no sharding).
    pub count: u32,
    /// Base URLs of every agent by shard index (`http://stinger-0.stinger:7864`), or empty.
    pub peers: Vec<String>,
}

impl Default for Shard {
    fn default() -> Self {
        Shard {
            index: 0,
            count: 1,
            peers: Vec::new(),
        }
    }
}

impl Shard {
    /// Whether this agent owns the target (or host) with this id.
    pub fn owns(&self, id: &str) -> bool {
        self.count <= 1 || owner(id, self.count) == self.index
    }

    /// The shard that owns the target with this id.
    pub fn owner_of(&self, id: &str) -> u32 {
        owner(id, self.count)
    }

    /// The base URL of the agent of shard `index`, when peers are configured.
    pub fn peer(&self, index: u32) -> Option<&str> {
        self.peers
            .get(usize::try_from(index).ok()?)
            .map(|p| p.trim_end_matches('/'))
    }
}

/// The part of a target id that decides its shard: the instance id of a cloud VM's address (the
/// id's first `/`-separated field), the whole id (an address) otherwise.
pub fn key(id: &str) -> &str {
    id.split('/').next().unwrap_or(id)
}

/// A stable 64-bit hash of a shard key: the first 8 bytes of its SHA-256, big-endian.
pub fn hash(key: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    u64::from_be_bytes(first)
}

/// Jump consistent hash (Lamping & Veach 2014): the bucket of `key` among `buckets` (at least 1).
pub fn jump(mut key: u64, buckets: u32) -> u32 {
    let buckets = i64::from(buckets.max(1));
    let (mut b, mut j): (i64, i64) = (-1, 0);
    while j < buckets {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    // 0 <= b < buckets <= u32::MAX.
    u32::try_from(b).unwrap_or(0)
}

/// The shard, of `count`, that owns the target with this id.
pub fn owner(id: &str, count: u32) -> u32 {
    if count <= 1 {
        return 0;
    }
    jump(hash(key(id)), count)
}

/// The ordinal at the end of a hostname, as a Kubernetes StatefulSet names its pods
/// (`stinger-2` → 2); the domain, if any, is ignored.
pub fn ordinal(hostname: &str) -> Option<u32> {
    let host = hostname.trim().split('.').next()?;
    let (_, digits) = host.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// This machine's hostname: `$HOSTNAME` (set in every Kubernetes pod), else the kernel's.
pub fn hostname() -> Option<String> {
    if let Ok(h) = std::env::var("HOSTNAME") {
        if !h.trim().is_empty() {
            return Some(h.trim().to_string());
        }
    }
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|h| h.trim().to_string())
        .find(|h| !h.is_empty())
}

/// The shard the running agent serves, for the parts that see no `Config` (the API and the
/// metrics): set when the configuration is loaded and at every pass.
static CURRENT: RwLock<Option<Arc<Shard>>> = RwLock::new(None);

/// Publish the shard this process serves.
pub fn publish(shard: &Shard) {
    let mut current = CURRENT.write().unwrap_or_else(|p| p.into_inner());
    if current.as_deref() != Some(shard) {
        *current = Some(Arc::new(shard.clone()));
    }
}

/// The shard this process serves (the whole inventory until one is published).
pub fn current() -> Arc<Shard> {
    CURRENT
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("10.{}.{}.{}", i >> 16 & 255, i >> 8 & 255, i & 255))
            .collect()
    }

    #[test]
    fn fixed_vectors() {
        // Pinned: a change here re-shards every fleet.
        assert_eq!(jump(0, 1), 0);
        assert_eq!(jump(0, 100), 0);
        assert_eq!(jump(1, 2), 0);
        assert_eq!(jump(256, 1024), 520);
        // The identity hash never changes between releases or machines.
        assert_eq!(hash(""), 0xe3b0_c442_98fc_1c14);
        assert_eq!(hash("abc"), 0xba78_16bf_8f01_cfea);
        let fixed: Vec<u32> = ["10.0.0.1", "10.0.0.2", "127.0.0.1", "vm-a/port-1/10.0.0.5"]
            .iter()
            .map(|id| owner(id, 3))
            .collect();
        assert_eq!(fixed, FIXED_OWNERS);
    }

    /// Owners of the ids in `fixed_vectors` among 3 shards, as of the first release with shards.
    const FIXED_OWNERS: [u32; 4] = [1, 1, 2, 0];

    #[test]
    fn a_vm_is_one_shard() {
        for n in 2..10 {
            let vm = owner("4b1c/port-a/10.0.0.5", n);
            assert_eq!(owner("4b1c/port-b/192.0.2.7", n), vm);
            assert_eq!(owner("4b1c/port-c/2001:db8::1", n), vm);
            assert_eq!(owner("4b1c", n), vm);
        }
        assert_eq!(key("2001:db8::1"), "2001:db8::1");
        assert_eq!(key("i/p/10.0.0.1"), "i");
    }

    #[test]
    fn balanced() {
        let all = ids(100_000);
        for n in [2u32, 3, 5, 8] {
            let mut counts = vec![0usize; n as usize];
            for id in &all {
                counts[owner(id, n) as usize] += 1;
            }
            let fair = all.len() as f64 / f64::from(n);
            for c in counts {
                assert!(
                    (c as f64 - fair).abs() / fair < 0.03,
                    "{n} shards: {c} vs {fair}"
                );
            }
        }
    }

    #[test]
    fn growing_moves_only_what_must_move() {
        let all = ids(100_000);
        for n in 1u32..8 {
            let moved: Vec<u32> = all
                .iter()
                .filter_map(|id| {
                    let (a, b) = (owner(id, n), owner(id, n + 1));
                    (a != b).then_some(b)
                })
                .collect();
            assert!(moved.iter().all(|&b| b == n), "moves only to the new shard");
            let share = moved.len() as f64 / all.len() as f64;
            let ideal = 1.0 / f64::from(n + 1);
            assert!((share - ideal).abs() < 0.01, "{n}→{}: {share}", n + 1);
        }
    }

    #[test]
    fn every_target_has_exactly_one_owner() {
        for id in ids(1000) {
            let owners = (0..4)
                .filter(|&i| {
                    Shard {
                        index: i,
                        count: 4,
                        peers: vec![],
                    }
                    .owns(&id)
                })
                .count();
            assert_eq!(owners, 1);
        }
        assert!(Shard::default().owns("anything"));
    }

    #[test]
    fn ordinals() {
        assert_eq!(ordinal("stinger-0"), Some(0));
        assert_eq!(ordinal("stinger-12.stinger.monitoring.svc"), Some(12));
        assert_eq!(ordinal("my-scan-agent-3\n"), Some(3));
        assert_eq!(ordinal("stinger"), None);
        assert_eq!(ordinal("stinger-"), None);
        assert_eq!(ordinal("stinger-a1"), None);
        assert_eq!(ordinal("stinger-+1"), None);
    }

    #[test]
    fn peers() {
        let s = Shard {
            index: 0,
            count: 2,
            peers: vec!["http://a:7864/".into(), "http://b:7864".into()],
        };
        assert_eq!(s.peer(0), Some("http://a:7864"));
        assert_eq!(s.peer(1), Some("http://b:7864"));
        assert_eq!(s.peer(2), None);
    }
}
