//! What the Nova and Neutron clients hand to the rest of Stinger: plain data, trimmed to what the
//! inventory, the judge and the API use. Parsing lives in `nova.rs` / `neutron.rs`; the join of
//! servers, ports and floating IPs into scan targets in `mod.rs`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

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

/// One Nova server (`GET /servers/detail`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Server {
    pub id: String,
    pub name: String,
    /// `ACTIVE`, `SHUTOFF`, `ERROR`, ...
    pub status: String,
    /// `tenant_id`.
    pub project_id: String,
    pub user_id: String,
    pub metadata: Metadata,
    /// Every address Nova lists, network by network.
    pub addresses: Vec<ServerAddress>,
    /// The flavor's name (2.47+: `original_name`) or, before 2.47, its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    /// ISO 8601 as Nova gives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    /// `OS-EXT-SRV-ATTR:host` (admin only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
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

/// One entry of a server's `addresses` (`OS-EXT-IPS:type`, `OS-EXT-IPS-MAC:mac_addr`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerAddress {
    /// The network's name (the key of `addresses`).
    pub network: String,
    pub address: IpAddr,
    pub kind: AddressKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
}

/// One Neutron port (`GET /v2.0/ports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Port {
    pub id: String,
    pub network_id: String,
    /// The server it is attached to (for `compute:*` owners), else whatever owns it, or empty.
    pub device_id: String,
    pub mac_address: String,
    pub fixed_ips: Vec<FixedIp>,
    /// Security group ids.
    pub security_groups: Vec<String>,
    /// `port_security_enabled` (absent = true): false means no filtering at all.
    pub port_security_enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedIp {
    pub ip_address: IpAddr,
}

/// One Neutron floating IP (`GET /v2.0/floatingips`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FloatingIp {
    pub id: String,
    pub floating_ip_address: IpAddr,
    /// The fixed address it maps to; `None` when unassociated.
    pub fixed_ip_address: Option<IpAddr>,
    /// The port it maps to; `None` when unassociated.
    pub port_id: Option<String>,
    pub floating_network_id: String,
    pub router_id: Option<String>,
    pub project_id: String,
    pub status: String,
}

/// One Neutron network (`GET /v2.0/networks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub project_id: String,
    /// `router:external`.
    pub external: bool,
    pub shared: bool,
    pub subnets: Vec<String>,
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
