//! Plain data shared by every stage: targets, observations, verdicts, host state, scan runs and
//! history events. No I/O and no behaviour beyond small helpers; everything here is what the store
//! persists (serde) and what the API returns.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Stable identity of the host: the address for CIDR targets (later the cloud's instance id, so a
    /// reused address never inherits another VM's history).
    pub id: String,
    pub address: IpAddr,
    /// Name of the target group (config `[[targets]] name`) it came from.
    pub group: String,
}

/// What the discovery scan saw on one host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostObservation {
    /// Open TCP ports, ascending.
    pub open: Vec<u16>,
    /// Ports that answered with a reset.
    pub closed: u32,
    /// Ports that never answered (after retries).
    pub filtered: u32,
    /// Probes that failed locally (e.g. no route, permission).
    pub errors: u32,
}

impl HostObservation {
    /// A host is up when anything at all answered: an open port or a reset.
    pub fn is_up(&self) -> bool {
        !self.open.is_empty() || self.closed > 0
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
}

impl HostState {
    pub fn unexpected(&self) -> usize {
        self.ports
            .iter()
            .filter(|p| p.verdict == Verdict::Unexpected)
            .count()
    }
}

/// How a scan run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Still running, or the process died before it finished (shown as such after a restart).
    Running,
    Success,
    Failed,
    Cancelled,
    /// Found running in the store at start-up: the process stopped mid-scan.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// Probe counts by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounts {
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
    pub error: u64,
}

/// One run of the discovery stage, as recorded in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRun {
    pub id: u64,
    pub started: UnixSeconds,
    pub finished: Option<UnixSeconds>,
    pub outcome: Outcome,
    /// Target groups covered by the run.
    pub groups: Vec<String>,
    /// Number of addresses scanned.
    pub targets: u64,
    /// Number of ports probed per address.
    pub ports: u64,
    pub probes: ProbeCounts,
    pub hosts_up: u64,
    pub open_ports: u64,
    pub unexpected_ports: u64,
    pub errors: Vec<String>,
}

/// Kinds of history events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PortOpened,
    PortClosed,
    HostAppeared,
    HostDisappeared,
    /// The policy's verdict on an open port changed (e.g. after a config reload).
    VerdictChanged,
}

impl EventKind {
    pub const ALL: [EventKind; 5] = [
        EventKind::PortOpened,
        EventKind::PortClosed,
        EventKind::HostAppeared,
        EventKind::HostDisappeared,
        EventKind::VerdictChanged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PortOpened => "port_opened",
            EventKind::PortClosed => "port_closed",
            EventKind::HostAppeared => "host_appeared",
            EventKind::HostDisappeared => "host_disappeared",
            EventKind::VerdictChanged => "verdict_changed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One history event: something that changed between two scans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time: UnixSeconds,
    pub kind: EventKind,
    pub host: String,
    pub address: IpAddr,
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub protocol: Option<Protocol>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub verdict: Option<Verdict>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub rule: Option<String>,
    pub scan_id: u64,
}
