//! One OpenStack cloud's inventory settings, validated (config builds them from `[[openstack]]`):
//! the cloud's resolved credentials, which addresses and statuses to scan, paging, timeouts.

use super::clouds::CloudConfig;
use crate::ports::PortList;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which of a VM's addresses are scanned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressChoice {
    Floating,
    Fixed,
    Both,
}

/// One cloud, validated, with its credentials resolved.
#[derive(Debug, Clone)]
pub struct OpenStackSource {
    pub name: String,
    pub cloud: CloudConfig,
    pub addresses: AddressChoice,
    pub statuses: Vec<String>,
    pub ports: PortList,
    pub all_projects: bool,
    /// The namespace directory, when fixed addresses are probed from their network's namespace.
    pub namespaces: Option<PathBuf>,
    pub diagnostics: bool,
    pub diagnostics_concurrency: usize,
    /// (major, minor) of the highest compute microversion wanted.
    pub compute_microversion: (u32, u32),
    pub page_size: u32,
    pub timeout: Duration,
    pub retries: u32,
    /// Change polls between full inventories (zero: none).
    pub poll_interval: Duration,
    pub scanner_source: Option<IpAddr>,
}
