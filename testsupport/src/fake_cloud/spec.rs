//! What a test asks the fake cloud for: a server ([`ServerSpec`]), a security group and its
//! rules ([`SecurityGroupSpec`], [`RuleSpec`]), and how a server's diagnostics answer
//! ([`DiagnosticsReply`]). Plain data; `Cloud` turns it into Nova and Neutron JSON.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::Value;

/// One VM to add; [`Cloud::add_server`](super::Cloud::add_server) turns it into Nova server JSON,
/// Neutron ports (one per fixed address), floating IPs (the i-th on the i-th fixed address, the
/// rest on the last) and, when missing, networks and security groups (by name, in the server's
/// project).
#[derive(Debug, Clone, Default)]
pub struct ServerSpec {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    /// `ACTIVE`, `SHUTOFF`, `ERROR`, `BUILD`, ...
    pub status: String,
    pub metadata: BTreeMap<String, String>,
    /// (network name, fixed address).
    pub fixed: Vec<(String, IpAddr)>,
    pub floating: Vec<IpAddr>,
    /// Security group names (Nova lists names; the ports carry the ids).
    pub security_groups: Vec<String>,
    /// `created` (ISO 8601, `Z`); `None` = the clock's time when set (`Cloud::set_clock`), else one
    /// second after the previous server (newest last added).
    pub created: Option<String>,
}

impl ServerSpec {
    /// An ACTIVE server with no addresses, user `fake`, security group `default`.
    pub fn new(id: &str, name: &str, project_id: &str) -> ServerSpec {
        ServerSpec {
            id: id.to_string(),
            name: name.to_string(),
            project_id: project_id.to_string(),
            user_id: "fake".to_string(),
            status: "ACTIVE".to_string(),
            security_groups: vec!["default".to_string()],
            ..ServerSpec::default()
        }
    }

    pub fn fixed(mut self, network: &str, ip: IpAddr) -> ServerSpec {
        self.fixed.push((network.to_string(), ip));
        self
    }

    pub fn floating(mut self, ip: IpAddr) -> ServerSpec {
        self.floating.push(ip);
        self
    }
}

/// One security-group rule; `None` fields are `null` (any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

impl RuleSpec {
    /// Ingress TCP `min..=max` from `prefix` (IPv4).
    pub fn ingress_tcp(min: u16, max: u16, prefix: &str) -> RuleSpec {
        RuleSpec {
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(min),
            port_range_max: Some(max),
            remote_ip_prefix: Some(prefix.into()),
            remote_group_id: None,
        }
    }
}

/// A security group to add; `rules: None` gives Neutron's default rules (egress anywhere, ingress
/// from the group itself, IPv4 and IPv6), as in the sample.
#[derive(Debug, Clone)]
pub struct SecurityGroupSpec {
    pub id: Option<String>,
    pub name: String,
    pub project_id: String,
    pub stateful: bool,
    pub rules: Option<Vec<RuleSpec>>,
}

/// What `GET /servers/{id}/diagnostics` answers for one server.
#[derive(Debug, Clone, PartialEq)]
pub enum DiagnosticsReply {
    /// The upstream sample: legacy flat keys below 2.48, the standardized form from 2.48 (the
    /// default; a server that is not ACTIVE gets 409 instead).
    Fixture,
    /// This status with Nova's error body (403, 404, 409, 501, ...).
    Status(u16),
    /// This body, at any microversion.
    Body(Value),
}
