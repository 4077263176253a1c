//! What a cloud's inventory keeps of Nova and Neutron beyond the addresses: a server's metadata, its
//! diagnostics, the kind of an address, the security groups of a port with their rules, and how the
//! diagnostics requests went. Plain data: the OpenStack clients (`inventory::openstack`) parse the
//! replies into these, the judge reads the groups, the store and the API keep and serve them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A server's metadata: key/value pairs sorted by key, held in one exact-size allocation (a map
/// of one entry would take a whole B-tree node, half a kilobyte, for each of ten thousand VMs).
/// Serialised as a JSON object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata(Box<[(String, String)]>);

impl Metadata {
    pub fn get(&self, key: &str) -> Option<&String> {
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The pairs, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.0.iter().map(|(k, v)| (k, v))
    }
}

/// A later pair wins over an earlier one with the same key (as in a map).
impl FromIterator<(String, String)> for Metadata {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        let map: BTreeMap<String, String> = iter.into_iter().collect();
        Metadata(map.into_iter().collect())
    }
}

impl<const N: usize> From<[(String, String); N]> for Metadata {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl Serialize for Metadata {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        BTreeMap::<String, String>::deserialize(d).map(|m| m.into_iter().collect())
    }
}

/// Whether an address is the port's own (fixed) or a floating IP mapped onto it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressKind {
    Fixed,
    Floating,
}

impl AddressKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Fixed => "fixed",
            AddressKind::Floating => "floating",
        }
    }
}

/// One security group with its rules (`GET /v2.0/security-groups`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroup {
    pub id: String,
    pub name: String,
    pub project_id: String,
    /// `stateful` (absent = true).
    pub stateful: bool,
    pub rules: Vec<SecurityGroupRule>,
}

/// Which traffic a rule is about: into the port (`ingress`) or out of it (`egress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Ingress,
    Egress,
}

/// One rule. `protocol: None` is any protocol; `port_range_*: None` is every port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityGroupRule {
    pub id: String,
    pub direction: Direction,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    /// As Neutron gives it: a name (`tcp`, `udp`, `icmp`, ...), a number as text (`6`), or `None`
    /// (any protocol; also written `any` or `0` by some clients).
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    /// `None` with no `remote_group_id` means any source.
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
    /// `remote_address_group_id` (newer Neutron): a set of CIDRs kept elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address_group_id: Option<String>,
}

/// What `GET /servers/{id}/diagnostics` said, in base units, whichever format the cloud speaks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// `standard` (2.48+) or `legacy` (the hypervisor's own flat keys).
    pub format: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// Total CPU time over all vCPUs, in seconds (a counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// Per vCPU: (id, seconds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpus: Vec<(u32, f64)>,
    /// Memory given to the VM (2.48 `memory_details.maximum`; legacy `memory`/`memory-actual`), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<f64>,
    /// Memory in use (2.48 `memory_details.used`; legacy `memory-rss`), bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_used_bytes: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_seconds: Option<f64>,
    pub nics: Vec<NicStats>,
    pub disks: Vec<DiskStats>,
}

/// Per-NIC counters (all counters since the VM started).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NicStats {
    /// The MAC (2.48) or the hypervisor's device name (legacy, e.g. `vnet1`).
    pub name: String,
    pub rx_bytes: Option<f64>,
    pub tx_bytes: Option<f64>,
    pub rx_packets: Option<f64>,
    pub tx_packets: Option<f64>,
    pub rx_drop: Option<f64>,
    pub tx_drop: Option<f64>,
    pub rx_errors: Option<f64>,
    pub tx_errors: Option<f64>,
}

/// Per-disk counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskStats {
    /// The device name (legacy, e.g. `vda`) or its index (2.48 lists disks in order, unnamed).
    pub name: String,
    pub read_bytes: Option<f64>,
    pub write_bytes: Option<f64>,
    pub read_requests: Option<f64>,
    pub write_requests: Option<f64>,
    pub errors: Option<f64>,
}

/// How the diagnostics requests of one inventory went, by outcome.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiagnosticsCounts {
    pub ok: u64,
    /// 403: the policy allows admins only.
    pub forbidden: u64,
    /// 409: the server is not in a state that has diagnostics.
    pub conflict: u64,
    /// 501: the hypervisor driver does not support them.
    pub not_implemented: u64,
    /// Anything else (404, timeouts, bad replies).
    pub failed: u64,
}

impl DiagnosticsCounts {
    /// `(reason label, count)` for `stinger_vm_diagnostics_failures_total`.
    pub fn failures(&self) -> [(&'static str, u64); 4] {
        [
            ("forbidden", self.forbidden),
            ("conflict", self.conflict),
            ("not_implemented", self.not_implemented),
            ("failed", self.failed),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_is_a_sorted_map_in_json_and_in_lookups() {
        let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
        let m: Metadata = [pair("z", "1"), pair("a", "2"), pair("z", "3")]
            .into_iter()
            .collect();
        assert_eq!(m.len(), 2, "a later pair replaces an earlier one");
        assert_eq!(m.get("z").map(String::as_str), Some("3"));
        assert_eq!(m.get("a").map(String::as_str), Some("2"));
        assert_eq!(m.get("b"), None);
        let json = serde_json::to_string(&m).unwrap_or_default();
        assert_eq!(json, r#"{"a":"2","z":"3"}"#);
        let back: Metadata = serde_json::from_str(&json).unwrap_or_default();
        assert_eq!(back, m);
        assert!(serde_json::from_str::<Metadata>(r#"["a"]"#).is_err());
        assert!(Metadata::default().is_empty());
    }
}
