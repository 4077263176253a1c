//! What the Nova and Neutron clients hand to the rest of Stinger: plain data, trimmed to what the
//! inventory, the judge and the API use. Parsing lives in `nova.rs` / `neutron.rs`; the join of
//! servers, ports and floating IPs into scan targets in `join.rs`. What outlives an inventory — metadata,
//! address kinds, security groups and their rules, diagnostics — is defined in [`crate::model`] and
//! re-exported here.

pub use crate::model::{
    AddressKind, Diagnostics, Direction, DiskStats, Metadata, NicStats, SecurityGroup,
    SecurityGroupRule,
};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

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
