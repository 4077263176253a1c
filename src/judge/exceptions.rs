//! Judge stage: declarative acknowledgements, the `[[policy.exceptions]]` of the configuration. An
//! exception names the findings it covers by selectors (every given one must match), says why the
//! risk is accepted, who owns it and when it expires. This file owns the type, its matching and its
//! expiry; `config` parses and validates it, and the findings lifecycle turns a match into an ack.
//! It does not decide verdicts: an exception never makes a port expected, it only acknowledges.

use crate::model::{Finding, FindingKind, Protocol, UnixSeconds};
use ipnetwork::IpNetwork;
use std::fmt;
use std::net::IpAddr;
use std::ops::RangeInclusive;

/// One accepted risk from the configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Exception {
    /// Unique within the configuration (`exceptions[<index>]` when the file names none); it is the
    /// `by` of the acknowledgements it makes, so a finding says which exception covers it.
    pub name: String,
    pub reason: String,
    /// From then on it no longer applies (it stays loaded, and is counted as expired).
    pub expires: UnixSeconds,
    pub owner: Option<String>,
    /// Which findings it covers.
    pub selectors: Selectors,
}

/// What an exception covers: every given selector must match; an absent one matches anything. A
/// valid exception has at least one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selectors {
    pub host: Option<HostSelector>,
    /// A VM's instance id or its name, exactly.
    pub vm: Option<String>,
    /// A project's id or its name, exactly.
    pub project: Option<String>,
    /// Findings whose address is inside any of these (empty: no selector).
    pub cidrs: Vec<IpNetwork>,
    pub protocol: Option<Protocol>,
    /// Findings on a port in this range, whatever their kind (a host-wide one has no port).
    pub ports: Option<RangeInclusive<u16>>,
    /// Vulnerability findings of this CVE (upper case; compared ignoring case).
    pub cve: Option<String>,
    pub kind: Option<FindingKind>,
}

/// The `host` selector: an address covers every host id behind it; anything else is a host id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostSelector {
    Address(IpAddr),
    /// `<instance id>/<port id>/<address>` for a cloud VM's address.
    Id(String),
}

impl HostSelector {
    /// An address when `s` is one, else a host id.
    pub fn parse(s: &str) -> HostSelector {
        match s.parse::<IpAddr>() {
            Ok(a) => HostSelector::Address(a),
            Err(_) => HostSelector::Id(s.to_string()),
        }
    }

    fn matches(&self, f: &Finding) -> bool {
        match self {
            HostSelector::Address(a) => f.address == *a,
            HostSelector::Id(id) => f.host == *id,
        }
    }
}

impl fmt::Display for HostSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostSelector::Address(a) => write!(f, "{a}"),
            HostSelector::Id(id) => f.write_str(id),
        }
    }
}

impl Selectors {
    /// Whether no selector is given (such an exception would cover everything: refused at load).
    pub fn is_empty(&self) -> bool {
        *self == Selectors::default()
    }

    fn matches(&self, f: &Finding) -> bool {
        let vm = |want: &String| {
            f.vm.as_ref()
                .is_some_and(|v| v.vm_id == *want || v.vm_name == *want)
        };
        let cve = |want: &String| {
            f.kind == FindingKind::Vulnerability
                && f.cve.as_ref().is_some_and(|c| c.eq_ignore_ascii_case(want))
        };
        self.host.as_ref().is_none_or(|h| h.matches(f))
            && self.vm.as_ref().is_none_or(vm)
            && self.project.as_ref().is_none_or(|p| f.in_project(p))
            && (self.cidrs.is_empty() || self.cidrs.iter().any(|c| c.contains(f.address)))
            && self.protocol.is_none_or(|p| f.protocol == Some(p))
            && self
                .ports
                .as_ref()
                .is_none_or(|r| f.port.is_some_and(|p| r.contains(&p)))
            && self.cve.as_ref().is_none_or(cve)
            && self.kind.is_none_or(|k| f.kind == k)
    }
}

/// `host=… vm=… port=5000-5010 …`: the given selectors, as the file spells them.
impl fmt::Display for Selectors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        if let Some(h) = &self.host {
            parts.push(format!("host={h}"));
        }
        if let Some(v) = &self.vm {
            parts.push(format!("vm={v}"));
        }
        if let Some(p) = &self.project {
            parts.push(format!("project={p}"));
        }
        if !self.cidrs.is_empty() {
            let cidrs: Vec<String> = self.cidrs.iter().map(|c| c.to_string()).collect();
            parts.push(format!("cidr={}", cidrs.join(",")));
        }
        if let Some(p) = self.protocol {
            parts.push(format!("protocol={p}"));
        }
        match &self.ports {
            Some(r) if r.start() == r.end() => parts.push(format!("port={}", r.start())),
            Some(r) => parts.push(format!("port={}-{}", r.start(), r.end())),
            None => {}
        }
        if let Some(c) = &self.cve {
            parts.push(format!("cve={c}"));
        }
        if let Some(k) = self.kind {
            parts.push(format!("kind={k}"));
        }
        f.write_str(&parts.join(" "))
    }
}

impl Exception {
    /// Whether this exception covers the finding (all given selectors match). Expiry is not
    /// considered here: see [`Exception::expired`].
    pub fn matches(&self, f: &Finding) -> bool {
        self.selectors.matches(f)
    }

    /// Whether it no longer applies at `now` (`now >= expires`).
    pub fn expired(&self, now: UnixSeconds) -> bool {
        now >= self.expires
    }

    /// `expires` as an RFC 3339 UTC timestamp (`2027-01-31T00:00:00Z`), for people.
    pub fn expires_rfc3339(&self) -> String {
        rfc3339(self.expires)
    }
}

/// A time as an RFC 3339 UTC timestamp, to the second.
pub fn rfc3339(t: UnixSeconds) -> String {
    match jiff::Timestamp::from_second(t.floor() as i64) {
        Ok(ts) => ts.to_string(),
        Err(_) => format!("{t} seconds since 1970"),
    }
}

#[cfg(test)]
mod tests;
