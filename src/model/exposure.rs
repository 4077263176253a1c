//! What a Neutron port's security groups expose, as the judge finds it (`judge::exposure`) and the
//! store and the API keep it: per open port the rule that opens it to the world and whether the
//! scanner's source is admitted, the world-open ranges nothing listens on, and the rule behind each.
//! Plain data with small constructors; how the rules are read lives in the judge.

use super::cloud::{SecurityGroup, SecurityGroupRule};
use super::Protocol;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// The pseudo rule id reported when the port has port security disabled (no filtering at all).
pub const PORT_SECURITY_DISABLED: &str = "port_security_disabled";

/// An address family, as a security-group rule's `ethertype` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum IpFamily {
    #[serde(rename = "IPv4")]
    V4,
    #[serde(rename = "IPv6")]
    V6,
}

impl IpFamily {
    /// The family of an address (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn of(address: IpAddr) -> IpFamily {
        match address.to_canonical() {
            IpAddr::V4(_) => IpFamily::V4,
            IpAddr::V6(_) => IpFamily::V6,
        }
    }

    /// `IPv4` or `IPv6`, as Neutron writes `ethertype`.
    pub fn ethertype(self) -> &'static str {
        match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        }
    }

    /// Whether a rule's `ethertype` names this family (any case, spaces ignored).
    pub(crate) fn matches(self, ethertype: &str) -> bool {
        ethertype.trim().eq_ignore_ascii_case(self.ethertype())
    }
}

/// Which rule of which group decided, so the API can show what opens a port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RuleRef {
    /// Empty for the [`PORT_SECURITY_DISABLED`] pseudo rule.
    pub group_id: String,
    pub group_name: String,
    /// The rule's id, or [`PORT_SECURITY_DISABLED`].
    pub rule_id: String,
}

impl RuleRef {
    /// The pseudo rule standing for "port security is disabled on this port".
    pub fn port_security_disabled() -> RuleRef {
        RuleRef {
            group_id: String::new(),
            group_name: String::new(),
            rule_id: PORT_SECURITY_DISABLED.to_string(),
        }
    }

    /// The reference to `rule` of `group`.
    pub(crate) fn of(group: &SecurityGroup, rule: &SecurityGroupRule) -> RuleRef {
        RuleRef {
            group_id: group.id.clone(),
            group_name: group.name.clone(),
            rule_id: rule.id.clone(),
        }
    }

    /// The same rule of the same group (names aside).
    pub(crate) fn same(&self, other: &RuleRef) -> bool {
        self.group_id == other.group_id && self.rule_id == other.rule_id
    }
}

/// A range of ports of one protocol that the groups open to the world.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorldOpen {
    pub protocol: Protocol,
    pub first: u16,
    pub last: u16,
    /// The rule that opens these ports (the first rule, in group and rule order, that does).
    pub rule: RuleRef,
    /// The range is every port (1-65535) of the protocol.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all_ports: bool,
}

impl WorldOpen {
    /// `first..=last` of `protocol`, opened by `rule`; `all_ports` when that is every port.
    pub(crate) fn new(protocol: Protocol, first: u16, last: u16, rule: RuleRef) -> WorldOpen {
        WorldOpen {
            protocol,
            first,
            last,
            rule,
            all_ports: first <= 1 && last == u16::MAX,
        }
    }

    pub fn contains(&self, protocol: Protocol, port: u16) -> bool {
        self.protocol == protocol && (self.first..=self.last).contains(&port)
    }
}

/// What the groups say about one open port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortExposure {
    pub protocol: Protocol,
    pub port: u16,
    /// The rule that opens it to the whole world, if any.
    pub world: Option<RuleRef>,
    /// Whether some rule admits the scanner's source; `None` when no scanner source was given (or
    /// it is of the other address family), so nothing can be said.
    pub admitted: Option<bool>,
}

/// The exposure of one judged host (one address of one Neutron port).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exposure {
    pub family: IpFamily,
    pub port_security_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanner_source: Option<IpAddr>,
    /// Every open port, sorted by protocol then port.
    pub ports: Vec<PortExposure>,
    /// Ports the groups open to the world where nothing was found listening. A range covering every
    /// port of a protocol is one entry with `all_ports` set, not split around the open ports.
    pub waiting: Vec<WorldOpen>,
    /// Open ports that no rule admits from the scanner's source (a heuristic; see
    /// `judge::exposure`'s module doc).
    pub unfiltered: Vec<(Protocol, u16)>,
}
