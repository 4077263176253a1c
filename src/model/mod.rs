//! Plain data shared by every stage: targets, observations, verdicts, host state, scan runs and
//! history events. No I/O and no behaviour beyond small helpers; everything here is what the store
//! persists (serde) and what the API returns.
//!
//! Depends on nothing else in the crate (`src/layers_tests.rs` checks): every other module may use
//! it, and it uses none of them.
//!
//! - [`cloud`]: what a cloud's inventory keeps beyond addresses — metadata, address kinds, security
//!   groups and their rules, Nova diagnostics and how fetching them went.
//! - [`exposure`]: what a port's security groups expose, as the judge finds it.
//! - [`finding`]: what an operator is paged on, with its lifecycle, acknowledgement and history.
//! - [`tarpit`]: a host that answers every TCP port, recorded as counts instead of port records.
//! - `run`: scan runs and the stages; `event`: history events; `merge`: folding observations;
//!   `progress`: a running stage's progress.

pub mod cloud;
mod event;
pub mod exposure;
pub mod finding;
mod merge;
mod progress;
mod run;
pub mod tarpit;

pub use cloud::{
    AddressKind, Diagnostics, DiagnosticsCounts, Direction, DiskStats, Metadata, NicStats,
    SecurityGroup, SecurityGroupRule,
};
pub use event::{Event, EventKind};
pub use exposure::{Exposure, IpFamily, PortExposure, RuleRef, WorldOpen, PORT_SECURITY_DISABLED};
pub use finding::{
    finding_id, finding_key, Ack, AckSource, Finding, FindingEvent, FindingEventKind, FindingKind,
    FindingState, Occurrence, Severity, Trigger,
};
pub use progress::StageProgress;
pub use run::{Outcome, ProbeCounts, ScanRequest, ScanRun, Stage};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
pub use tarpit::AnswersEverything;

/// Seconds since the Unix epoch, as stored and exported (Prometheus' `_timestamp_seconds`).
pub type UnixSeconds = f64;

/// The current wall-clock time as [`UnixSeconds`].
pub fn now() -> UnixSeconds {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One address to scan, with the inventory facts that travel with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Stable identity of the host: the address for CIDR targets; for a cloud's VM
    /// `<instance id>/<port id>/<address>`, so a reused or moved address never inherits another VM's
    /// history.
    pub id: String,
    pub address: IpAddr,
    /// Name of the target group (config `[[targets]] name`, or `[[openstack]] name`) it came from.
    pub group: String,
    /// The VM and Neutron port behind the address (OpenStack inventory only).
    pub vm: Option<Arc<VmTarget>>,
}

impl Target {
    /// A target from a CIDR group: identified by its address.
    pub fn address(address: IpAddr, group: &str) -> Target {
        Target {
            id: address.to_string(),
            address,
            group: group.to_owned(),
            vm: None,
        }
    }
}

/// What the judge needs to know about the VM behind a target.
#[derive(Debug, Clone, PartialEq)]
pub struct VmTarget {
    pub link: VmLink,
    pub metadata: Metadata,
    /// The Neutron port's security groups (with rules) and whether port security is on.
    pub security_groups: Vec<Arc<SecurityGroup>>,
    pub port_security_enabled: bool,
    /// Where the scanner's probes come from, as the VM sees them (`[[openstack]] scanner_source`).
    pub scanner_source: Option<IpAddr>,
}

/// Where an OpenStack address sits: the VM, its project and the Neutron port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmLink {
    pub vm_id: String,
    pub vm_name: String,
    pub project_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    /// The Neutron port the address belongs to (absent when Neutron did not list it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_id: Option<String>,
    /// `fixed` or `floating`.
    pub kind: AddressKind,
    /// The network's name, as Nova lists it.
    pub network: String,
    /// The network namespace probes ran from (`qdhcp-<network id>`), when not the agent's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One VM of a cloud's inventory: Nova's facts joined with Neutron's and Keystone's names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vm {
    pub id: String,
    /// The `[[openstack]]` source it came from.
    pub cloud: String,
    pub name: String,
    pub status: String,
    pub project_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_name: Option<String>,
    pub user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    #[serde(default, skip_serializing_if = "Metadata::is_empty")]
    pub metadata: Metadata,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flavor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<String>,
    pub addresses: Vec<VmAddress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Boxed: most of a VM's size when present, and absent for many VMs.
    pub diagnostics: Option<Box<Diagnostics>>,
    /// Why diagnostics are missing (`HTTP 403: ...`), when they were asked for and not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics_error: Option<String>,
    pub first_seen: UnixSeconds,
    /// The last inventory that listed it.
    pub last_seen: UnixSeconds,
}

/// One address of a VM and how it is scanned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmAddress {
    pub address: IpAddr,
    pub kind: AddressKind,
    pub network: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_id: Option<String>,
    /// Security group names of the port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_groups: Vec<String>,
    /// The host id its scan state is kept under, when the address is scanned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// What the scans saw on one host: discovery's TCP results, and nmap's services when it ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostObservation {
    /// Open TCP ports, ascending.
    pub open: Vec<u16>,
    /// Ports that answered with a reset.
    pub closed: u32,
    /// Ports that never answered (after retries).
    pub filtered: u32,
    /// Probes that failed locally (e.g. no route, permission).
    pub errors: u32,
    /// Ports in `open` this pass did not probe: a targeted pass keeps the last state's.
    pub carried: u32,
    /// Whether nmap covered this host in this cycle (else services carry over from the last state).
    pub services_known: bool,
    /// Services nmap identified, by protocol and port.
    pub services: Vec<(Protocol, u16, ServiceInfo)>,
    /// UDP ports nmap found open (a reply came back).
    pub udp_open: Vec<u16>,
    /// UDP ports with no reply: open or filtered, never counted as open.
    pub udp_open_filtered: Vec<u16>,
    /// UDP ports the native probe found open, with what came back and the amplification factor.
    pub udp_replies: Vec<(u16, UdpReply, f64)>,
    /// UDP ports the native probe found closed (ICMP port unreachable).
    pub udp_closed: Vec<u16>,
    /// UDP ports the native probe got no answer from: an open one seen before stays open.
    pub udp_unknown: Vec<u16>,
    pub os: Vec<OsGuess>,
    /// Vulnerabilities reported on a port this cycle (nmap's vulners script).
    pub vulns: Vec<(Protocol, u16, Vulnerability)>,
    /// A vulnerability scanner's whole report on the host (Greenbone's), on ports or host-wide:
    /// `Some` when its run covered the host (an empty list: nothing found, so what it reported
    /// before is remediated), `None` when it did not. The agent applies it to the host's state as
    /// it is when the run ends (`judge::apply_report`).
    pub reported: Option<Vec<ReportedVuln>>,
}

/// Where a vulnerability finding came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VulnSource {
    /// nmap's `vulners` NSE script (matches the identified product and version against a database).
    NmapVulners,
    /// A Greenbone/OpenVAS report.
    Greenbone,
}

/// A vulnerability a scanner reports on a host: on a port (protocol, number) or host-wide (`None`,
/// e.g. Greenbone's `general/tcp`).
pub type ReportedVuln = (Option<(Protocol, u16)>, Vulnerability);

/// A known vulnerability on an open port.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// CVE id, e.g. `CVE-2023-38408`.
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cvss: Option<f64>,
    pub source: VulnSource,
    /// Whether a public exploit is known.
    #[serde(default)]
    pub exploit: bool,
    /// What the scanner calls it (Greenbone's NVT name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was first reported on this port.
    pub first_seen: UnixSeconds,
    /// When a scan last reported it (a finding carried over without a rescan keeps its time).
    #[serde(default)]
    pub last_seen: UnixSeconds,
}

/// What runs on an open port, as nmap identified it (`-sV`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extrainfo: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpes: Vec<String>,
    /// `probed` (a probe matched) or `table` (guessed from the port number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// nmap's confidence, 0-10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<u8>,
}

impl ServiceInfo {
    /// "OpenSSH 9.2p1", for logs and events.
    pub fn describe(&self) -> String {
        [&self.name, &self.product, &self.version]
            .into_iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// An operating-system guess from nmap `-O`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsGuess {
    pub name: String,
    pub accuracy: u8,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpes: Vec<String>,
}

impl HostObservation {
    /// A host is up when anything at all answered: an open port or a reset.
    pub fn is_up(&self) -> bool {
        !self.open.is_empty()
            || self.closed > 0
            || !self.udp_replies.is_empty()
            || !self.udp_closed.is_empty()
    }
}

/// Whether the port policy expects an open port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Expected,
    Unexpected,
}

/// An open port with the policy's verdict on it and the rule that decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PortFinding {
    pub port: u16,
    pub protocol: Protocol,
    pub verdict: Verdict,
    /// Name of the deciding rule: a `[[policy.rules]]` name, `global`, or `default` (nothing allowed it).
    pub rule: String,
    /// When this port was first seen open in its current open spell.
    pub since: UnixSeconds,
    /// The service nmap identified, if it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vulns: Vec<Vulnerability>,
    /// The security-group rule that lets the whole world reach this port (OpenStack only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub world: Option<RuleRef>,
    /// UDP: reply bytes / request bytes of the native probe that found it open (how much the
    /// port amplifies a spoofed request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amplification: Option<f64>,
    /// UDP: what the native probe sent and got back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp: Option<UdpReply>,
}

/// What the native UDP probe of an open UDP port got back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UdpReply {
    /// The protocol that answered (`dns`, `ntp`, `snmp`, `memcached`, …).
    pub service: String,
    /// Which of the protocol's requests amplified most (e.g. NTP `monlist`, SNMP `getbulk`).
    pub request: String,
    pub request_bytes: u32,
    pub reply_bytes: u32,
    /// Reply datagrams counted.
    pub datagrams: u32,
    /// DNS only: whether it resolved a name outside its zones for us (an open resolver).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursion: Option<bool>,
}

impl PortFinding {
    /// Highest CVSS of the port's vulnerabilities.
    pub fn max_cvss(&self) -> Option<f64> {
        self.vulns.iter().filter_map(|v| v.cvss).reduce(f64::max)
    }
}

/// Latest known state of one host: what the store keeps per host and the API serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    pub id: String,
    pub address: IpAddr,
    pub group: String,
    /// Whether the host answered at its last scan.
    pub up: bool,
    pub ports: Vec<PortFinding>,
    pub first_seen: UnixSeconds,
    pub last_seen: UnixSeconds,
    /// Finish time of the last scan that covered this host.
    pub last_scan: UnixSeconds,
    pub last_scan_id: u64,
    /// UDP ports that gave no reply (open or filtered); kept apart, never counted as open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub udp_open_filtered: Vec<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<OsGuess>,
    /// Vulnerabilities not tied to a port (Greenbone's `general/tcp` results).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vulns: Vec<Vulnerability>,
    /// The VM and port behind the address (OpenStack inventory only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmLink>,
    /// What the port's security groups let in, against what answered (OpenStack only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Exposure>,
    /// The host answers (nearly) every TCP port probed: `ports` then holds no TCP port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers_everything: Option<AnswersEverything>,
}

impl HostState {
    /// Every vulnerability on the host: per port, then host-wide.
    pub fn all_vulns(&self) -> impl Iterator<Item = &Vulnerability> {
        self.ports.iter().flat_map(|p| &p.vulns).chain(&self.vulns)
    }

    /// Highest CVSS of the host's vulnerabilities.
    pub fn max_cvss(&self) -> Option<f64> {
        self.all_vulns().filter_map(|v| v.cvss).reduce(f64::max)
    }

    /// Whether the host carries this vulnerability id (case-insensitive).
    pub fn has_vuln(&self, id: &str) -> bool {
        self.all_vulns().any(|v| v.id.eq_ignore_ascii_case(id))
    }

    pub fn unexpected(&self) -> usize {
        self.ports
            .iter()
            .filter(|p| p.verdict == Verdict::Unexpected)
            .count()
    }
}
