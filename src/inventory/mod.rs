//! Inventory stage: what to scan. Turns configured target groups into the concrete addresses the
//! scanner may touch — and nothing else: every probe the scanner sends goes to an address listed here.

mod cidr;
pub mod openstack;
pub mod scope;
pub mod shard;

pub use cidr::{expand, size};

use crate::ports::PortList;
use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// A configured target group: CIDRs and single addresses, minus exclusions, probed on `ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroup {
    pub name: String,
    pub include: Vec<IpNetwork>,
    pub exclude: Vec<IpNetwork>,
    pub ports: PortList,
}

/// A group expanded to addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupTargets {
    pub name: String,
    pub addresses: Vec<IpAddr>,
    pub ports: PortList,
}

/// Inventory errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("target group {group:?} covers {count} addresses, more than the limit of {limit}; split it, add exclusions, or raise scan.tcp.max_hosts")]
    TooManyHosts {
        group: String,
        count: u128,
        limit: u64,
    },
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::TooManyHosts { .. } => "too_many_hosts",
        }
    }
}
