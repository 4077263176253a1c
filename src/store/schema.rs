//! On-disk layout: column families, key encodings and the schema version. Keys are big-endian so
//! RocksDB's byte order is time and id order; values are JSON records of [`crate::model`] types.

use crate::model::UnixSeconds;

/// Bumped when a stored record or key changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;

/// Small records: the schema version and the last scan-run id.
pub const CF_META: &str = "meta";
/// Host id → latest `HostState`.
pub const CF_HOSTS: &str = "hosts";
/// Run id (u64 BE) → `ScanRun`.
pub const CF_SCANS: &str = "scans";
/// Event key (time ns BE, run id BE, sequence BE) → `Event`.
pub const CF_EVENTS: &str = "events";
/// Host id, 0x00, event key → nothing: the per-host index of `events`.
pub const CF_EVENTS_BY_HOST: &str = "events_by_host";

/// Instance id → `Vm`: the cloud VMs of each source's last good inventory. (Added without a schema
/// bump: an older store simply gains the empty family at open.)
pub const CF_VMS: &str = "vms";

/// Finding id → `Finding` (with its history). Added without a schema bump, as `vms`.
pub const CF_FINDINGS: &str = "findings";

pub const ALL_CFS: [&str; 7] = [
    CF_META,
    CF_HOSTS,
    CF_SCANS,
    CF_EVENTS,
    CF_EVENTS_BY_HOST,
    CF_VMS,
    CF_FINDINGS,
];

pub const META_SCHEMA: &[u8] = b"schema_version";
pub const META_LAST_RUN: &[u8] = b"last_run_id";
/// When the last digest e-mail went out (`UnixSeconds` as text), before digests were made of
/// findings: no longer read (the first findings digest summarises instead of listing every finding
/// as new).
pub const META_EMAIL_LAST_SENT: &[u8] = b"email_last_sent";
/// When the last findings digest to the admins went out (`UnixSeconds` as text): its successor
/// covers the changes since. Per project: [`digest_last_sent_key`].
pub const META_DIGEST_LAST_SENT: &[u8] = b"digest_last_sent";

/// The meta key of when the last digest to `project`'s recipients (`None`: the admins) went out:
/// `digest_last_sent`, or `digest_last_sent/project/<project>`.
pub fn digest_last_sent_key(project: Option<&str>) -> Vec<u8> {
    let mut k = META_DIGEST_LAST_SENT.to_vec();
    if let Some(p) = project {
        k.extend_from_slice(b"/project/");
        k.extend_from_slice(p.as_bytes());
    }
    k
}

/// Length of an event key.
pub const EVENT_KEY_LEN: usize = 20;

pub fn run_key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

pub fn decode_u64(b: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(..8)?.try_into().ok()?))
}

/// Nanoseconds since the epoch, saturating (times before 1970 sort first).
pub fn time_ns(t: UnixSeconds) -> u64 {
    if t <= 0.0 {
        0
    } else {
        (t * 1e9).min(u64::MAX as f64) as u64
    }
}

pub fn event_key(time: UnixSeconds, run: u64, seq: u32) -> [u8; EVENT_KEY_LEN] {
    let mut k = [0u8; EVENT_KEY_LEN];
    k[..8].copy_from_slice(&time_ns(time).to_be_bytes());
    k[8..16].copy_from_slice(&run.to_be_bytes());
    k[16..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The smallest event key at or after `time`.
pub fn event_key_from(time: UnixSeconds) -> [u8; EVENT_KEY_LEN] {
    event_key(time, 0, 0)
}

pub fn host_index_prefix(host: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(host.len() + 1 + EVENT_KEY_LEN);
    k.extend_from_slice(host.as_bytes());
    k.push(0);
    k
}

pub fn host_index_key(host: &str, event_key: &[u8]) -> Vec<u8> {
    let mut k = host_index_prefix(host);
    k.extend_from_slice(event_key);
    k
}

/// Event keys travel through the API as hex cursors.
pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A cursor back to its bytes: hex digits only, in pairs (`from_str_radix` alone would also take
/// a sign, so "+f" would spell the same byte as "0f").
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_keys_sort_by_time_then_run_then_seq() {
        let a = event_key(100.5, 9, 9);
        let b = event_key(100.6, 1, 0);
        let c = event_key(100.6, 1, 1);
        assert!(a < b && b < c);
        assert!(event_key_from(100.6) <= b);
        assert_eq!(decode_u64(&run_key(42)), Some(42));
    }

    #[test]
    fn digest_keys_keep_admins_and_projects_apart() {
        assert_eq!(digest_last_sent_key(None), b"digest_last_sent");
        assert_eq!(
            digest_last_sent_key(Some("acme")),
            b"digest_last_sent/project/acme"
        );
        assert_ne!(digest_last_sent_key(Some("")), digest_last_sent_key(None));
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        let k = event_key(1.0, 2, 3);
        assert_eq!(from_hex(&to_hex(&k)).unwrap(), k.to_vec());
        assert!(from_hex("zz").is_none());
        assert!(from_hex("abc").is_none());
        assert!(from_hex("+f").is_none() && from_hex("-0").is_none());
        assert_eq!(from_hex("0F").unwrap(), [15]);
    }
}
