//! Inventory stage: what to scan. Turns configured target groups into the concrete addresses the
//! scanner may touch — and nothing else: every probe the scanner sends goes to an address listed here.
//!
//! Every source of addresses implements one trait, `Source` (`source.rs`: the trait, the
//! [`Inventory`] it takes and the scan [`Unit`]s it cuts): the CIDR groups (`CidrGroups`, in
//! `cidr.rs`) and each OpenStack cloud ([`openstack::source::Source`]). Beside them: `[scope]`
//! ([`scope`]) and the shards ([`shard`]).

mod cidr;
pub mod openstack;
pub mod scope;
pub mod shard;
mod source;

pub(crate) use cidr::CidrGroups;
pub use cidr::{expand, size};
pub(crate) use source::{BoxFuture, Fetching, Report, Source};
pub use source::{Inventory, Unit};

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
    /// A cloud's inventory failed (after its retries).
    #[error(transparent)]
    Cloud(#[from] openstack::api::Error),
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::TooManyHosts { .. } => "too_many_hosts",
            Error::Cloud(e) => e.kind(),
        }
    }
}
