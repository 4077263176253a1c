//! The port policy: which open ports are expected. Rules are checked in the order written; the first
//! rule that selects the host and names the port (in `allow` or `deny`) decides. Then the ports the
//! VM itself declares in its metadata (under [`Policy::metadata_key`]), but only for a VM of a project
//! the operator lets self-declare ([`Policy::self_declare`], none by default), then the global
//! `expected` list; anything else is unexpected by the `default` rule. Every verdict carries the name
//! of the rule that decided, so an operator can see why. The policy also carries the configured
//! exceptions (`judge::exceptions`), which acknowledge findings and never change a verdict.
//!
//! A rule selects hosts by CIDR, target group, OpenStack project (id or name) and VM metadata; the
//! selectors are ANDed and an empty one selects every host. A host known only by its address (a CIDR
//! target) has no project and no metadata, so it never matches a rule that selects on either.

use super::exceptions::Exception;
use crate::model::{Finding, Metadata, Protocol, UnixSeconds, Verdict};
use crate::ports::{PortMatcher, PortSpecError};
use ipnetwork::IpNetwork;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Name reported when the global `expected` list decided.
pub const GLOBAL: &str = "global";
/// Name reported when nothing allowed the port.
pub const DEFAULT: &str = "default";
/// Prefix of the name reported when the VM's own metadata declaration decided (`metadata:<key>`).
pub const METADATA_PREFIX: &str = "metadata:";
/// Metadata selector value meaning "the key is present, whatever its value".
pub const ANY_VALUE: &str = "*";
/// [`Policy::self_declare`] entry meaning "every project".
pub const ANY_PROJECT: &str = "*";

/// The name reported when the VM's metadata declaration under `key` decided.
pub fn metadata_rule_name(key: &str) -> String {
    format!("{METADATA_PREFIX}{key}")
}

/// The host a verdict is about, with what the inventory knows of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    pub address: IpAddr,
    /// The target group.
    pub group: &'a str,
    /// The OpenStack project (tenant) id, for cloud VMs.
    pub project_id: Option<&'a str>,
    pub project_name: Option<&'a str>,
    /// The VM's metadata, for cloud VMs.
    pub metadata: Option<&'a Metadata>,
}

impl<'a> Subject<'a> {
    /// A host known only by its address and target group (a CIDR target).
    pub fn address(address: IpAddr, group: &'a str) -> Subject<'a> {
        Subject {
            address,
            group,
            project_id: None,
            project_name: None,
            metadata: None,
        }
    }
}

/// One named rule. Selectors are ANDed; an empty selector selects every host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// Hosts whose address is inside any of these.
    pub cidrs: Vec<IpNetwork>,
    /// Hosts of any of these target groups.
    pub groups: Vec<String>,
    /// VMs of any of these projects, each matched exactly against the project's id or its name.
    pub projects: Vec<String>,
    /// VMs whose metadata has every one of these keys with that value ([`ANY_VALUE`] `*`: any value).
    pub metadata: BTreeMap<String, String>,
    /// Ports this rule expects.
    pub allow: PortMatcher,
    /// Ports this rule forbids (unexpected even where a later rule or the global list allows them).
    pub deny: PortMatcher,
}

impl Rule {
    fn selects(&self, s: &Subject<'_>) -> bool {
        let project = |p: &String| s.project_id == Some(p) || s.project_name == Some(p);
        let metadata = |m: &Metadata| {
            self.metadata.iter().all(|(k, want)| {
                m.get(k)
                    .is_some_and(|have| want == ANY_VALUE || have == want)
            })
        };
        (self.cidrs.is_empty() || self.cidrs.iter().any(|c| c.contains(s.address)))
            && (self.groups.is_empty() || self.groups.iter().any(|g| g == s.group))
            && (self.projects.is_empty() || self.projects.iter().any(project))
            && (self.metadata.is_empty() || s.metadata.is_some_and(metadata))
    }
}

/// The whole policy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// Ports expected everywhere unless a rule says otherwise.
    pub expected: PortMatcher,
    /// The VM metadata key under which a VM declares its own expected ports (a port spec list such
    /// as `8080/tcp, 9100, 5000-5010/tcp`); `None` ignores declarations.
    pub metadata_key: Option<String>,
    /// The projects (id or name, exactly; [`ANY_PROJECT`] `*`: every project) whose VMs may declare
    /// their own expected ports. Empty, the default: none may, since a tenant's declaration would
    /// otherwise whitelist whatever the tenant likes (`1-65535`).
    pub self_declare: Vec<String>,
    /// Accepted risks (`[[policy.exceptions]]`), in the order written.
    pub exceptions: Vec<Exception>,
}

impl Policy {
    /// The verdict on one open port of a host known by address and target group, and the name of
    /// the rule that decided. Such a host has no project and no metadata.
    pub fn verdict(
        &self,
        address: IpAddr,
        group: &str,
        proto: Protocol,
        port: u16,
    ) -> (Verdict, &str) {
        let subject = Subject::address(address, group);
        self.by_rules(&subject, proto, port)
            .unwrap_or_else(|| self.by_global(proto, port))
    }

    /// The verdict on one open port of `subject`, and the name of the rule that decided: the named
    /// rules, then the VM's metadata declaration (`metadata:<key>`, only where the VM's project may
    /// self-declare), then `global`, else `default`.
    pub fn verdict_for(
        &self,
        subject: &Subject<'_>,
        proto: Protocol,
        port: u16,
    ) -> (Verdict, Cow<'_, str>) {
        if let Some((v, name)) = self.by_rules(subject, proto, port) {
            return (v, Cow::Borrowed(name));
        }
        let declared = subject
            .metadata
            .filter(|_| self.may_self_declare(subject.project_id, subject.project_name))
            .and_then(|m| self.declared(m));
        if let Some((key, Ok(declared))) = declared {
            if declared.contains(proto, port) {
                return (Verdict::Expected, Cow::Owned(metadata_rule_name(key)));
            }
        }
        let (v, name) = self.by_global(proto, port);
        (v, Cow::Borrowed(name))
    }

    /// Whether VMs of this project (by id or name) may declare their own expected ports. A host
    /// without a project (a CIDR target) may declare nothing, whatever the setting.
    pub fn may_self_declare(&self, project_id: Option<&str>, project_name: Option<&str>) -> bool {
        let known = project_id.is_some() || project_name.is_some();
        self.self_declare.iter().any(|p| {
            (p == ANY_PROJECT && known)
                || project_id == Some(p.as_str())
                || project_name == Some(p.as_str())
        })
    }

    /// The first exception that covers the finding and has not expired at `now`.
    pub fn exception_for(&self, f: &Finding, now: UnixSeconds) -> Option<&Exception> {
        self.exceptions
            .iter()
            .find(|e| !e.expired(now) && e.matches(f))
    }

    /// How many exceptions have expired at `now` (they stay configured but cover nothing).
    pub fn expired_exceptions(&self, now: UnixSeconds) -> usize {
        self.exceptions.iter().filter(|e| e.expired(now)).count()
    }

    /// What `check-config` says about the policy beyond the file itself: which projects may declare
    /// their own expected ports, and each exception with its expiry (expired ones marked), a line
    /// each.
    pub fn summary(&self, now: UnixSeconds) -> Vec<String> {
        let mut lines = Vec::new();
        match (&self.metadata_key, self.self_declare.as_slice()) {
            (None, _) => lines.push(
                "no VM may declare its own expected ports (policy.metadata_key is empty)".to_string(),
            ),
            (Some(_), []) => lines.push(
                "no VM may declare its own expected ports (policy.self_declare is empty)".to_string(),
            ),
            (Some(key), projects) if projects.iter().any(|p| p == ANY_PROJECT) => lines.push(
                format!("VMs of every project may declare their own expected ports in metadata {key:?}"),
            ),
            (Some(key), projects) => lines.push(format!(
                "VMs of these projects (id or name) may declare their own expected ports in metadata {key:?}: {}",
                projects.join(", ")
            )),
        }
        let expired = self.expired_exceptions(now);
        lines.push(format!(
            "{} policy exception(s), {expired} expired",
            self.exceptions.len()
        ));
        for e in &self.exceptions {
            let state = if e.expired(now) {
                "EXPIRED (no longer applies)"
            } else {
                "active"
            };
            let owner = e
                .owner
                .as_deref()
                .map_or(String::new(), |o| format!(", owner {o}"));
            lines.push(format!(
                "  {}: {state}, expires {}{owner}; covers {}",
                e.name,
                e.expires_rfc3339(),
                e.selectors
            ));
        }
        lines
    }

    /// What is wrong with the VM's port declaration, if it has one that does not parse (it is then
    /// ignored by [`Policy::verdict_for`]); for the caller to log or count.
    pub fn metadata_problem(&self, metadata: &Metadata) -> Option<String> {
        match self.declared(metadata)? {
            (_, Ok(_)) => None,
            (key, Err(e)) => Some(format!(
                "VM metadata {key:?} is ignored: {e}; fix the value, e.g. \"8080/tcp, 9100, 5000-5010/tcp\""
            )),
        }
    }

    /// The VM's declaration under `metadata_key`, parsed, with the key; `None` without one.
    fn declared<'m>(
        &'m self,
        metadata: &Metadata,
    ) -> Option<(&'m str, Result<PortMatcher, PortSpecError>)> {
        let key = self.metadata_key.as_deref()?;
        let value = metadata.get(key)?;
        let pieces: Vec<&str> = value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        Some((key, PortMatcher::parse(&pieces)))
    }

    fn by_rules(
        &self,
        subject: &Subject<'_>,
        proto: Protocol,
        port: u16,
    ) -> Option<(Verdict, &str)> {
        for rule in &self.rules {
            if !rule.selects(subject) {
                continue;
            }
            if rule.deny.contains(proto, port) {
                return Some((Verdict::Unexpected, &rule.name));
            }
            if rule.allow.contains(proto, port) {
                return Some((Verdict::Expected, &rule.name));
            }
        }
        None
    }

    fn by_global(&self, proto: Protocol, port: u16) -> (Verdict, &'static str) {
        if self.expected.contains(proto, port) {
            (Verdict::Expected, GLOBAL)
        } else {
            (Verdict::Unexpected, DEFAULT)
        }
    }
}

#[cfg(test)]
mod tests;
