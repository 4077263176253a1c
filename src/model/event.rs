//! History events: what changed between two scans of a host (a port opened or closed, a host
//! appeared or disappeared, a verdict, service or vulnerability changed).

use super::{Protocol, ServiceInfo, UnixSeconds, Verdict, Vulnerability};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Kinds of history events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    PortOpened,
    PortClosed,
    HostAppeared,
    HostDisappeared,
    /// The policy's verdict on an open port, or its deciding rule, changed (e.g. after a reload).
    VerdictChanged,
    /// The service on an open port changed (product or version, as nmap identified it).
    ServiceChanged,
    /// A vulnerability was reported on an open port for the first time.
    VulnFound,
    /// A vulnerability no longer reported on a port that is still open and was scanned again.
    VulnRemediated,
    /// A VM entered a cloud's inventory.
    VmAppeared,
    /// A VM the inventory listed before is gone from it (deleted, or no longer in a scanned status).
    VmGone,
    /// The host began to answer (nearly) every TCP port probed: one event instead of one a port.
    AnswersEverythingStarted,
    /// It no longer does: its TCP ports are judged one by one again.
    AnswersEverythingStopped,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::PortOpened,
        EventKind::PortClosed,
        EventKind::HostAppeared,
        EventKind::HostDisappeared,
        EventKind::VerdictChanged,
        EventKind::ServiceChanged,
        EventKind::VulnFound,
        EventKind::VulnRemediated,
        EventKind::VmAppeared,
        EventKind::VmGone,
        EventKind::AnswersEverythingStarted,
        EventKind::AnswersEverythingStopped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::PortOpened => "port_opened",
            EventKind::PortClosed => "port_closed",
            EventKind::HostAppeared => "host_appeared",
            EventKind::HostDisappeared => "host_disappeared",
            EventKind::VerdictChanged => "verdict_changed",
            EventKind::ServiceChanged => "service_changed",
            EventKind::VulnFound => "vuln_found",
            EventKind::VulnRemediated => "vuln_remediated",
            EventKind::VmAppeared => "vm_appeared",
            EventKind::VmGone => "vm_gone",
            EventKind::AnswersEverythingStarted => "answers_everything_started",
            EventKind::AnswersEverythingStopped => "answers_everything_stopped",
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
    /// The service on the port at the time (for port and service events).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub service: Option<ServiceInfo>,
    /// The vulnerability, for vuln_found and vuln_remediated.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub vuln: Option<Vulnerability>,
    pub scan_id: u64,
}
