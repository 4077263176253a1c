//! Findings: what an operator is paged on. One record per (host identity, kind, key) — an
//! unexpected open port, a port the security groups open to the world, a port security groups do
//! not enforce, a UDP amplifier, a vulnerability, a host that answers every port — with a
//! lifecycle (`open` → `confirmed` → `resolved`, `stale` while its host answers nothing), the rule
//! or evidence that made it, its severity, an acknowledgement with an expiry, and its history.
//! Plain data: the judge (`judge::findings`) moves findings through their states, the store keeps
//! them, the API and the metrics show them.

use super::{Protocol, UnixSeconds, VmLink};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::IpAddr;

/// Most history events one finding keeps (the oldest go first; occurrences stay linked).
pub const HISTORY_LIMIT: usize = 64;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// An open TCP or UDP port the port policy does not expect.
    UnexpectedPort,
    /// An open port a security-group rule (or disabled port security) opens to the whole world.
    WorldOpen,
    /// An open port that no security-group rule admits the scanner to, yet it answered.
    SgNotEnforced,
    /// An open UDP port that answers a small request with a larger reply.
    Amplifier,
    /// A known vulnerability (CVE) on a port or host-wide.
    Vulnerability,
    /// A host that answers (nearly) every TCP port probed: one finding instead of one a port.
    AnswersEverything,
}

impl FindingKind {
    pub const ALL: [FindingKind; 6] = [
        FindingKind::UnexpectedPort,
        FindingKind::WorldOpen,
        FindingKind::SgNotEnforced,
        FindingKind::Amplifier,
        FindingKind::Vulnerability,
        FindingKind::AnswersEverything,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FindingKind::UnexpectedPort => "unexpected_port",
            FindingKind::WorldOpen => "world_open",
            FindingKind::SgNotEnforced => "sg_not_enforced",
            FindingKind::Amplifier => "amplifier",
            FindingKind::Vulnerability => "vulnerability",
            FindingKind::AnswersEverything => "answers_everything",
        }
    }

    pub fn parse(s: &str) -> Option<FindingKind> {
        FindingKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a finding is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingState {
    /// Seen, not yet confirmed (waiting for a re-probe or more passes).
    Open,
    /// Seen again: real. What alerts page on (unless acknowledged).
    Confirmed,
    /// Its host answered nothing at the last scan: not known to be gone, not known to be there.
    Stale,
    /// Gone: not seen for the configured number of passes (each with a re-probe), or its host left
    /// the inventory.
    Resolved,
}

impl FindingState {
    pub const ALL: [FindingState; 4] = [
        FindingState::Open,
        FindingState::Confirmed,
        FindingState::Stale,
        FindingState::Resolved,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FindingState::Open => "open",
            FindingState::Confirmed => "confirmed",
            FindingState::Stale => "stale",
            FindingState::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<FindingState> {
        FindingState::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for FindingState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How bad a finding is. Ordered: `Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// A vulnerability's severity from its CVSS score (CVSS v3 bands; none given: medium).
    pub fn of_cvss(cvss: Option<f64>) -> Severity {
        match cvss {
            Some(s) if s >= 9.0 => Severity::Critical,
            Some(s) if s >= 7.0 => Severity::High,
            Some(s) if s >= 4.0 => Severity::Medium,
            Some(_) => Severity::Low,
            None => Severity::Medium,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who acknowledged a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AckSource {
    /// `POST /api/v1/findings/{id}/ack` by an authenticated user.
    Api,
    /// A `[[policy.exceptions]]` entry of the configuration.
    Config,
}

/// An accepted risk: the finding stays listed but leaves the alerting metrics until `expires`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    pub source: AckSource,
    /// The API user, or the exception's name for a configuration exception.
    pub by: String,
    pub reason: String,
    pub at: UnixSeconds,
    pub expires: UnixSeconds,
    /// Who owns the accepted risk (configuration exceptions may name one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// The severity the finding had when acknowledged: a worse one later clears the ack.
    pub severity: Severity,
}

/// What happened to a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingEventKind {
    /// First seen (or seen again after it was resolved: a new occurrence).
    Opened,
    Confirmed,
    /// Its host answered nothing.
    Stale,
    /// Its host answers again and the finding is still there.
    Reachable,
    Resolved,
    /// Severity or evidence changed (e.g. the port became world-open, CVSS rose).
    Changed,
    Acknowledged,
    /// The acknowledgement was withdrawn (API `DELETE`, or the exception left the configuration).
    Unacknowledged,
    /// The acknowledgement reached its expiry; the finding alerts again.
    AckExpired,
    /// The finding got worse than when it was acknowledged: the ack no longer covers it.
    AckVoided,
}

impl FindingEventKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            FindingEventKind::Opened => "opened",
            FindingEventKind::Confirmed => "confirmed",
            FindingEventKind::Stale => "stale",
            FindingEventKind::Reachable => "reachable",
            FindingEventKind::Resolved => "resolved",
            FindingEventKind::Changed => "changed",
            FindingEventKind::Acknowledged => "acknowledged",
            FindingEventKind::Unacknowledged => "unacknowledged",
            FindingEventKind::AckExpired => "ack_expired",
            FindingEventKind::AckVoided => "ack_voided",
        }
    }
}

/// One entry of a finding's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingEvent {
    pub time: UnixSeconds,
    pub kind: FindingEventKind,
    /// The occurrence it belongs to.
    pub occurrence: u32,
    /// The acting user (acks) or exception name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// Why (an ack's reason, what changed, why it resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The scan run that caused it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan_id: Option<u64>,
}

/// An earlier occurrence of a finding that was resolved and later seen again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    pub occurrence: u32,
    pub first_seen: UnixSeconds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<UnixSeconds>,
    pub resolved_at: UnixSeconds,
}

/// One finding, as stored (column family `findings`) and served (`/api/v1/findings`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id: a hash of the host identity, the kind and the key ([`finding_id`]).
    pub id: String,
    pub kind: FindingKind,
    /// What within the host: `tcp/8080`, `udp/53`, `CVE-2023-38408@tcp/22`, `CVE-…@host`.
    pub key: String,
    /// The host id (`<instance id>/<port id>/<address>` for a cloud VM's address, the address for
    /// a CIDR host).
    pub host: String,
    pub address: IpAddr,
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmLink>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cve: Option<String>,
    pub state: FindingState,
    pub severity: Severity,
    /// The rule that decided: the port policy's rule, the security-group rule id, the scanner.
    pub rule: String,
    /// What was seen, in words.
    pub evidence: String,
    /// First seen in this occurrence.
    pub first_seen: UnixSeconds,
    /// Last pass that saw it.
    pub last_seen: UnixSeconds,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<UnixSeconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<UnixSeconds>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_since: Option<UnixSeconds>,
    /// 1 for the first occurrence; each reopening of a resolved finding adds one.
    pub occurrence: u32,
    /// Earlier occurrences, oldest first (at most [`HISTORY_LIMIT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub previous: Vec<Occurrence>,
    /// Passes in a row that saw it (while open: how close it is to confirmation).
    pub seen: u32,
    /// Passes in a row that did not see it on a host that answered (how close it is to resolving).
    pub missed: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<Ack>,
    /// What found this occurrence: a full pass, a cloud change or an on-demand scan.
    #[serde(default)]
    pub trigger: Trigger,
    /// Seconds from what triggered the scan that confirmed it (the cloud's `updated_at` of the
    /// change, or the request) to its confirmation; none for a full pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection_latency: Option<f64>,
    /// Oldest first, at most [`HISTORY_LIMIT`].
    pub history: Vec<FindingEvent>,
}

/// What started a pass besides the schedule (and so what found a finding).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A scheduled discovery pass over everything.
    #[default]
    FullPass,
    /// A change the cloud's API reported (an address, a security-group rule, a VM).
    Change,
    /// A user's `POST /api/v1/scans`.
    OnDemand,
}

impl Trigger {
    pub const ALL: [Trigger; 3] = [Trigger::FullPass, Trigger::Change, Trigger::OnDemand];

    pub const fn as_str(self) -> &'static str {
        match self {
            Trigger::FullPass => "full_pass",
            Trigger::Change => "change",
            Trigger::OnDemand => "on_demand",
        }
    }

    pub fn is_full_pass(&self) -> bool {
        *self == Trigger::FullPass
    }
}

impl Finding {
    /// Whether an alert should page on it now: confirmed and not acknowledged.
    pub fn alerting(&self) -> bool {
        self.state == FindingState::Confirmed && self.ack.is_none()
    }

    /// Append a history event, dropping the oldest past [`HISTORY_LIMIT`].
    pub fn record(&mut self, event: FindingEvent) {
        self.history.push(event);
        if self.history.len() > HISTORY_LIMIT {
            let extra = self.history.len() - HISTORY_LIMIT;
            self.history.drain(..extra);
        }
    }

    /// The project (id or name) the finding's VM belongs to, if a cloud VM.
    pub fn in_project(&self, project: &str) -> bool {
        self.vm
            .as_ref()
            .is_some_and(|v| v.project_id == project || v.project_name.as_deref() == Some(project))
    }
}

/// A finding's key within its host: `tcp/8080`, or `CVE-…@tcp/22` / `CVE-…@host` for a vulnerability.
pub fn finding_key(protocol: Option<Protocol>, port: Option<u16>, cve: Option<&str>) -> String {
    let at = match (protocol, port) {
        (Some(pr), Some(po)) => format!("{pr}/{po}"),
        _ => "host".to_string(),
    };
    match cve {
        Some(c) => format!("{}@{at}", c.to_ascii_uppercase()),
        None => at,
    }
}

/// The stable id of a finding: 16 hex digits of a 64-bit FNV-1a hash of host identity, kind and
/// key. Never the address alone for a cloud host (its identity holds instance and port ids), and
/// the same on every agent and after every restart.
pub fn finding_id(host: &str, kind: FindingKind, key: &str) -> String {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for part in [host.as_bytes(), kind.as_str().as_bytes(), key.as_bytes()] {
        for b in (part.len() as u64).to_be_bytes().iter().chain(part) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_separate_identity_kind_and_key() {
        let a = finding_id("vm1/port1/10.0.0.5", FindingKind::UnexpectedPort, "tcp/22");
        assert_eq!(a.len(), 16);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        // Same inputs, same id (no per-process seed).
        assert_eq!(
            a,
            finding_id("vm1/port1/10.0.0.5", FindingKind::UnexpectedPort, "tcp/22")
        );
        // Another VM behind the same address is another finding.
        assert_ne!(
            a,
            finding_id("vm2/port9/10.0.0.5", FindingKind::UnexpectedPort, "tcp/22")
        );
        assert_ne!(
            a,
            finding_id("vm1/port1/10.0.0.5", FindingKind::WorldOpen, "tcp/22")
        );
        assert_ne!(
            a,
            finding_id("vm1/port1/10.0.0.5", FindingKind::UnexpectedPort, "udp/22")
        );
        // Length-prefixed parts: moving bytes between parts changes the id.
        assert_ne!(
            finding_id("ab", FindingKind::Amplifier, "c"),
            finding_id("a", FindingKind::Amplifier, "bc")
        );
    }

    #[test]
    fn keys_name_protocol_port_and_cve() {
        assert_eq!(finding_key(Some(Protocol::Tcp), Some(22), None), "tcp/22");
        assert_eq!(
            finding_key(Some(Protocol::Udp), Some(53), Some("cve-2020-1")),
            "CVE-2020-1@udp/53"
        );
        assert_eq!(finding_key(None, None, Some("CVE-1")), "CVE-1@host");
    }

    #[test]
    fn cvss_bands() {
        assert_eq!(Severity::of_cvss(Some(9.8)), Severity::Critical);
        assert_eq!(Severity::of_cvss(Some(7.0)), Severity::High);
        assert_eq!(Severity::of_cvss(Some(5.0)), Severity::Medium);
        assert_eq!(Severity::of_cvss(Some(0.1)), Severity::Low);
        assert_eq!(Severity::of_cvss(None), Severity::Medium);
        assert!(Severity::Critical > Severity::High);
    }

    #[test]
    fn history_is_bounded() {
        let mut f = Finding {
            id: "x".into(),
            kind: FindingKind::UnexpectedPort,
            key: "tcp/1".into(),
            host: "h".into(),
            address: IpAddr::from([127, 0, 0, 1]),
            group: "g".into(),
            vm: None,
            protocol: Some(Protocol::Tcp),
            port: Some(1),
            cve: None,
            state: FindingState::Open,
            severity: Severity::High,
            rule: "default".into(),
            evidence: String::new(),
            first_seen: 0.0,
            last_seen: 0.0,
            confirmed_at: None,
            resolved_at: None,
            stale_since: None,
            occurrence: 1,
            previous: Vec::new(),
            seen: 1,
            missed: 0,
            ack: None,
            trigger: Default::default(),
            detection_latency: None,
            history: Vec::new(),
        };
        for i in 0..(HISTORY_LIMIT + 10) {
            f.record(FindingEvent {
                time: i as f64,
                kind: FindingEventKind::Changed,
                occurrence: 1,
                by: None,
                detail: None,
                scan_id: None,
            });
        }
        assert_eq!(f.history.len(), HISTORY_LIMIT);
        assert_eq!(f.history[0].time, 10.0);
        assert!(!f.alerting());
    }
}
