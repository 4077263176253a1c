//! Findings' lifecycle: what a host's judged state says should be a finding ([`candidates`]), and
//! how each finding moves — `open` → `confirmed` → `resolved`, `stale` while its host answers
//! nothing, a new occurrence when a resolved one is seen again — as passes cover its host
//! ([`observe`]), as its host leaves the inventory ([`host_removed`]), and as acknowledgements are
//! given, withdrawn, expire or no longer cover a finding that got worse ([`review`], [`ack`],
//! [`unack`]). Pure: the agent hands in the previous findings and the time, and stores what comes
//! back (only the findings that changed).
//!
//! Resolution has hysteresis: a finding resolves only after `resolve_after` passes in a row that
//! did not see it on a host that answered (each pass re-probes a port before calling it gone), so a
//! listener that answers every other pass stays one confirmed finding — one page, not one a pass.
//! The exception is a host that starts or stops answering every port ([`super::tarpit`]): the
//! findings its new state replaces resolve at once, the judge's own hysteresis having decided.

use super::Policy;
use crate::model::finding::HISTORY_LIMIT;
use crate::model::{
    finding_id, finding_key, Ack, AckSource, Finding, FindingEvent, FindingEventKind, FindingKind,
    FindingState, HostState, Occurrence, PortFinding, Protocol, Severity, UnixSeconds, Verdict,
    VulnSource,
};

/// How findings are confirmed and resolved (`[findings]` in the configuration).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub confirm: Confirm,
    /// Passes in a row without the finding (its host answering) before it resolves; at least 1.
    pub resolve_after: u32,
    /// A UDP port whose reply is at least this many times its request is an amplifier.
    pub amplification: f64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            confirm: Confirm::Reprobe,
            resolve_after: 2,
            amplification: 2.0,
        }
    }
}

/// How a new finding becomes `confirmed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirm {
    /// Discovery re-probes every newly open port in the same pass (and every port that stopped
    /// answering); what survives it is confirmed at once.
    Reprobe,
    /// Seen in this many passes in a row (no re-probe).
    Passes(u32),
}

impl Confirm {
    /// Whether discovery re-probes changed ports.
    pub fn reprobes(self) -> bool {
        self == Confirm::Reprobe
    }

    fn needed(self) -> u32 {
        match self {
            Confirm::Reprobe => 1,
            Confirm::Passes(n) => n.max(1),
        }
    }
}

/// What a host's state says should be a finding now.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub kind: FindingKind,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    pub cve: Option<String>,
    pub severity: Severity,
    pub rule: String,
    pub evidence: String,
}

impl Candidate {
    fn key(&self) -> String {
        finding_key(self.protocol, self.port, self.cve.as_deref())
    }
}

fn port_words(p: &PortFinding) -> String {
    let mut s = format!("{}/{} open", p.protocol, p.port);
    if let Some(svc) = p.service.as_ref().map(|s| s.describe()) {
        if !svc.is_empty() {
            s.push_str(&format!(" ({svc})"));
        }
    }
    s
}

/// The findings a host's judged state calls for, each once.
pub fn candidates(h: &HostState, settings: &Settings) -> Vec<Candidate> {
    let mut out = Vec::new();
    let on = |p: &PortFinding| (Some(p.protocol), Some(p.port));
    for p in &h.ports {
        let (protocol, port) = on(p);
        if p.verdict == Verdict::Unexpected {
            let mut evidence = format!(
                "{}; port policy rule {:?} does not expect it",
                port_words(p),
                p.rule
            );
            if let Some(w) = &p.world {
                evidence.push_str(&format!(
                    "; security group {:?} rule {} opens it to the world",
                    w.group_name, w.rule_id
                ));
            }
            out.push(Candidate {
                kind: FindingKind::UnexpectedPort,
                protocol,
                port,
                cve: None,
                severity: if p.world.is_some() {
                    Severity::Critical
                } else {
                    Severity::High
                },
                rule: p.rule.clone(),
                evidence,
            });
        }
        if let Some(w) = &p.world {
            out.push(Candidate {
                kind: FindingKind::WorldOpen,
                protocol,
                port,
                cve: None,
                severity: Severity::Medium,
                rule: w.rule_id.clone(),
                evidence: format!(
                    "{}; security group {:?} ({}) rule {} admits the whole world",
                    port_words(p),
                    w.group_name,
                    w.group_id,
                    w.rule_id
                ),
            });
        }
        let amplifies = p
            .amplification
            .is_some_and(|a| a.is_finite() && a >= settings.amplification);
        let resolver = p.udp.as_ref().and_then(|u| u.recursion) == Some(true);
        if p.protocol == Protocol::Udp && (amplifies || resolver) {
            let what = p.udp.as_ref();
            let evidence = match what {
                Some(u) => format!(
                    "udp/{} answers a {}-byte {} {} request with {} bytes in {} datagram(s){}",
                    p.port,
                    u.request_bytes,
                    u.service,
                    u.request,
                    u.reply_bytes,
                    u.datagrams,
                    if resolver {
                        "; resolves names for anyone (open resolver)"
                    } else {
                        ""
                    }
                ),
                None => format!("udp/{} amplifies", p.port),
            };
            // Reachable from the world (or no security groups to say otherwise): abuse material.
            let severity = if p.world.is_some() || h.vm.is_none() {
                Severity::High
            } else {
                Severity::Medium
            };
            out.push(Candidate {
                kind: FindingKind::Amplifier,
                protocol,
                port,
                cve: None,
                severity,
                rule: what.map_or_else(|| "udp".to_string(), |u| u.service.clone()),
                evidence,
            });
        }
        for v in &p.vulns {
            out.push(vuln_candidate(protocol, port, v));
        }
    }
    if let Some(e) = &h.exposure {
        for (protocol, port) in &e.unfiltered {
            out.push(Candidate {
                kind: FindingKind::SgNotEnforced,
                protocol: Some(*protocol),
                port: Some(*port),
                cve: None,
                severity: Severity::High,
                rule: "security_groups".to_string(),
                evidence: format!(
                    "{protocol}/{port} answered the scanner although no security-group rule admits it{}",
                    e.scanner_source
                        .map(|s| format!(" (from {s})"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    for v in &h.vulns {
        out.push(vuln_candidate(None, None, v));
    }
    out.extend(super::tarpit::candidate(h));
    // One candidate per kind and key (a CVE both nmap and Greenbone report: the worse one).
    out.sort_by(|a, b| {
        (a.kind, a.key())
            .cmp(&(b.kind, b.key()))
            .then(b.severity.cmp(&a.severity))
    });
    out.dedup_by(|b, a| a.kind == b.kind && a.key() == b.key());
    out
}

fn vuln_candidate(
    protocol: Option<Protocol>,
    port: Option<u16>,
    v: &crate::model::Vulnerability,
) -> Candidate {
    let source = match v.source {
        VulnSource::NmapVulners => "nmap_vulners",
        VulnSource::Greenbone => "greenbone",
    };
    let at = match (protocol, port) {
        (Some(pr), Some(po)) => format!("on {pr}/{po}"),
        _ => "host-wide".to_string(),
    };
    Candidate {
        kind: FindingKind::Vulnerability,
        protocol,
        port,
        cve: Some(v.id.to_ascii_uppercase()),
        severity: Severity::of_cvss(v.cvss),
        rule: source.to_string(),
        evidence: format!(
            "{} {at} (CVSS {}){}{}, reported by {source}",
            v.id,
            v.cvss
                .map_or_else(|| "unknown".to_string(), |c| format!("{c:.1}")),
            v.name
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default(),
            if v.exploit { "; exploit known" } else { "" },
        ),
    }
}

/// Which kinds an observation speaks for: a discovery pass for all, a Greenbone report for
/// vulnerabilities only (its other findings are neither seen nor missed by it). `Policy` is a
/// re-judgement after a reload: nothing was probed, so nothing counts as seen or missed, but a
/// finding the configuration no longer calls for resolves at once, and a new one opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Covers {
    All,
    Vulnerabilities,
    Policy,
}

impl Covers {
    fn includes(self, kind: FindingKind) -> bool {
        self != Covers::Vulnerabilities || kind == FindingKind::Vulnerability
    }
}

/// The inputs every transition shares.
pub struct Context<'a> {
    pub settings: &'a Settings,
    pub policy: &'a Policy,
    pub scan_id: Option<u64>,
    pub now: UnixSeconds,
}

impl Context<'_> {
    fn event(&self, kind: FindingEventKind, f: &Finding, detail: Option<String>) -> FindingEvent {
        FindingEvent {
            time: self.now,
            kind,
            occurrence: f.occurrence,
            by: None,
            detail,
            scan_id: self.scan_id,
        }
    }
}

/// A new finding (first occurrence) for a candidate on `host`.
fn open(c: &Candidate, host: &HostState, ctx: &Context<'_>) -> Finding {
    let key = c.key();
    Finding {
        id: finding_id(&host.id, c.kind, &key),
        kind: c.kind,
        key,
        host: host.id.clone(),
        address: host.address,
        group: host.group.clone(),
        vm: host.vm.clone(),
        protocol: c.protocol,
        port: c.port,
        cve: c.cve.clone(),
        state: FindingState::Open,
        severity: c.severity,
        rule: c.rule.clone(),
        evidence: c.evidence.clone(),
        first_seen: ctx.now,
        last_seen: ctx.now,
        confirmed_at: None,
        resolved_at: None,
        stale_since: None,
        occurrence: 1,
        previous: Vec::new(),
        seen: 0,
        missed: 0,
        ack: None,
        trigger: Default::default(),
        detection_latency: None,
        history: Vec::new(),
    }
}

/// The findings of one host after a pass (or a Greenbone report, per `covers`) that scanned it:
/// every finding that changed or is new. `prev` are the host's current findings (any state).
pub fn observe(
    prev: &[&Finding],
    host: &HostState,
    covers: Covers,
    ctx: &Context<'_>,
) -> Vec<Finding> {
    let now_candidates: Vec<Candidate> = candidates(host, ctx.settings)
        .into_iter()
        .filter(|c| covers.includes(c.kind))
        .collect();
    let mut out = Vec::new();
    for c in &now_candidates {
        let id = finding_id(&host.id, c.kind, &c.key());
        let before = prev.iter().find(|f| f.id == id).copied();
        if before.is_none() && !host.up {
            // Ports a silent host kept from before: nothing new can be said about them.
            continue;
        }
        let mut f = match before {
            Some(f) => f.clone(),
            None => open(c, host, ctx),
        };
        match before {
            Some(b) if covers == Covers::Policy && b.state != FindingState::Resolved => {
                reconsider(&mut f, c, ctx)
            }
            _ => seen(&mut f, c, host, before.is_none(), ctx),
        }
        review_into(&mut f, ctx);
        if before != Some(&f) {
            out.push(f);
        }
    }
    for f in prev {
        if !covers.includes(f.kind)
            || now_candidates
                .iter()
                .any(|c| c.kind == f.kind && c.key() == f.key)
        {
            continue;
        }
        let mut f = (*f).clone();
        if f.state != FindingState::Resolved {
            if covers == Covers::Policy {
                let detail = "the configuration no longer makes it a finding".to_string();
                resolve(&mut f, detail, ctx);
            } else if let Some(detail) = super::tarpit::resolves_now(host, &f) {
                resolve(&mut f, detail, ctx);
            } else if host.up {
                missed(&mut f, ctx);
            } else if covers == Covers::All {
                go_stale(&mut f, ctx);
            }
        }
        review_into(&mut f, ctx);
        if prev.iter().all(|p| **p != f) {
            out.push(f);
        }
    }
    out
}

/// A candidate seen on `host` in this pass.
fn seen(f: &mut Finding, c: &Candidate, host: &HostState, new: bool, ctx: &Context<'_>) {
    f.address = host.address;
    f.group = host.group.clone();
    f.vm = host.vm.clone();
    f.evidence = c.evidence.clone();
    if !host.up {
        // A host that answered nothing keeps its last ports: their findings go stale.
        if !new {
            go_stale(f, ctx);
        }
        return;
    }
    f.last_seen = ctx.now;
    f.missed = 0;
    f.seen = f.seen.saturating_add(1);
    if new || f.state == FindingState::Resolved {
        if f.state == FindingState::Resolved {
            reopen(f, ctx);
        }
        f.severity = c.severity;
        f.rule = c.rule.clone();
        let e = ctx.event(FindingEventKind::Opened, f, Some(c.evidence.clone()));
        f.record(e);
    } else {
        reconsider(f, c, ctx);
    }
    if f.state == FindingState::Stale {
        f.stale_since = None;
        f.state = if f.confirmed_at.is_some() {
            FindingState::Confirmed
        } else {
            FindingState::Open
        };
        let e = ctx.event(FindingEventKind::Reachable, f, None);
        f.record(e);
    }
    if f.state == FindingState::Open && f.seen >= ctx.settings.confirm.needed() {
        f.state = FindingState::Confirmed;
        f.confirmed_at = Some(ctx.now);
        let detail = match ctx.settings.confirm {
            Confirm::Reprobe if f.kind == FindingKind::AnswersEverything => {
                super::tarpit::CONFIRMED.to_string()
            }
            Confirm::Reprobe => "seen again by an immediate re-probe".to_string(),
            Confirm::Passes(n) => format!("seen in {n} passes in a row"),
        };
        let e = ctx.event(FindingEventKind::Confirmed, f, Some(detail));
        f.record(e);
    }
}

/// Severity and deciding rule as the candidate has them now; a worse finding loses its ack.
fn reconsider(f: &mut Finding, c: &Candidate, ctx: &Context<'_>) {
    f.evidence = c.evidence.clone();
    if f.severity == c.severity && f.rule == c.rule {
        return;
    }
    let detail = format!(
        "severity {} → {}, rule {:?} → {:?}",
        f.severity, c.severity, f.rule, c.rule
    );
    let worse = c.severity > f.severity;
    f.severity = c.severity;
    f.rule = c.rule.clone();
    let e = ctx.event(FindingEventKind::Changed, f, Some(detail));
    f.record(e);
    if worse {
        void_ack_if_worse(f, ctx);
    }
}

/// A resolved finding seen again: a new occurrence, linked to the old one.
fn reopen(f: &mut Finding, ctx: &Context<'_>) {
    f.previous.push(Occurrence {
        occurrence: f.occurrence,
        first_seen: f.first_seen,
        confirmed_at: f.confirmed_at,
        resolved_at: f.resolved_at.unwrap_or(ctx.now),
    });
    if f.previous.len() > HISTORY_LIMIT {
        let extra = f.previous.len() - HISTORY_LIMIT;
        f.previous.drain(..extra);
    }
    f.occurrence += 1;
    f.state = FindingState::Open;
    f.first_seen = ctx.now;
    f.confirmed_at = None;
    f.resolved_at = None;
    f.stale_since = None;
    f.seen = 1;
    f.ack = None;
}

/// Not seen on a host that answered.
fn missed(f: &mut Finding, ctx: &Context<'_>) {
    f.missed = f.missed.saturating_add(1);
    f.seen = 0;
    if f.state == FindingState::Stale {
        f.stale_since = None;
        f.state = if f.confirmed_at.is_some() {
            FindingState::Confirmed
        } else {
            FindingState::Open
        };
        let e = ctx.event(FindingEventKind::Reachable, f, None);
        f.record(e);
    }
    if f.missed >= ctx.settings.resolve_after.max(1) {
        let detail = format!(
            "not seen in {} pass(es) in a row, re-probed each time",
            f.missed
        );
        resolve(f, detail, ctx);
    }
}

fn resolve(f: &mut Finding, detail: String, ctx: &Context<'_>) {
    f.state = FindingState::Resolved;
    f.resolved_at = Some(ctx.now);
    f.stale_since = None;
    let e = ctx.event(FindingEventKind::Resolved, f, Some(detail));
    f.record(e);
}

fn go_stale(f: &mut Finding, ctx: &Context<'_>) {
    if matches!(f.state, FindingState::Open | FindingState::Confirmed) {
        f.state = FindingState::Stale;
        f.stale_since = Some(ctx.now);
        let e = ctx.event(
            FindingEventKind::Stale,
            f,
            Some("the host answered nothing at its last scan".to_string()),
        );
        f.record(e);
    }
}

/// A host that left the inventory (its VM deleted, or its address no longer in any group): its
/// findings resolve.
pub fn host_removed(prev: &[&Finding], ctx: &Context<'_>) -> Vec<Finding> {
    prev.iter()
        .filter(|f| f.state != FindingState::Resolved)
        .map(|f| {
            let mut f = (*f).clone();
            resolve(&mut f, "the host left the inventory".to_string(), ctx);
            f
        })
        .collect()
}

/// An acknowledgement no longer covers a finding that got worse than when it was given.
fn void_ack_if_worse(f: &mut Finding, ctx: &Context<'_>) {
    if let Some(a) = &f.ack {
        if f.severity > a.severity {
            let detail = format!(
                "acknowledged at severity {}, now {}: the finding alerts again",
                a.severity, f.severity
            );
            let by = a.by.clone();
            f.ack = None;
            let mut e = ctx.event(FindingEventKind::AckVoided, f, Some(detail));
            e.by = Some(by);
            f.record(e);
        }
    }
}

/// Acknowledgements against the clock and the configuration: an expired ack ends; a config
/// exception that covers the finding acknowledges it; one that left the configuration (or no longer
/// matches) withdraws its ack. Returns the changed finding, if anything changed.
pub fn review(f: &Finding, ctx: &Context<'_>) -> Option<Finding> {
    let mut n = f.clone();
    review_into(&mut n, ctx);
    (n != *f).then_some(n)
}

fn review_into(f: &mut Finding, ctx: &Context<'_>) {
    if let Some(a) = &f.ack {
        if a.expires <= ctx.now {
            let by = a.by.clone();
            let detail = format!("acknowledgement by {by} expired");
            f.ack = None;
            let mut e = ctx.event(FindingEventKind::AckExpired, f, Some(detail));
            e.by = Some(by);
            f.record(e);
        } else if a.source == AckSource::Config {
            let still = ctx.policy.exception_for(f, ctx.now);
            if still.is_none_or(|x| x.name != a.by) {
                let by = a.by.clone();
                f.ack = None;
                let mut e = ctx.event(
                    FindingEventKind::Unacknowledged,
                    f,
                    Some(format!("exception {by:?} no longer covers this finding")),
                );
                e.by = Some(by);
                f.record(e);
            }
        }
    }
    if f.ack.is_none() && f.state != FindingState::Resolved {
        if let Some(x) = ctx.policy.exception_for(f, ctx.now) {
            // An exception whose ack was voided (the finding got worse) does not come back for
            // the same occurrence.
            let voided = f.history.iter().any(|e| {
                e.kind == FindingEventKind::AckVoided
                    && e.occurrence == f.occurrence
                    && e.by.as_deref() == Some(&x.name)
            });
            if !voided {
                let a = Ack {
                    source: AckSource::Config,
                    by: x.name.clone(),
                    reason: x.reason.clone(),
                    at: ctx.now,
                    expires: x.expires,
                    owner: x.owner.clone(),
                    severity: f.severity,
                };
                let mut e = ctx.event(FindingEventKind::Acknowledged, f, Some(a.reason.clone()));
                e.by = Some(a.by.clone());
                f.ack = Some(a);
                f.record(e);
            }
        }
    }
}

/// Acknowledge through the API: the ack replaces any earlier one (last write wins, both stay in
/// the history).
pub fn ack(f: &Finding, by: &str, reason: &str, expires: UnixSeconds, now: UnixSeconds) -> Finding {
    let mut n = f.clone();
    let a = Ack {
        source: AckSource::Api,
        by: by.to_string(),
        reason: reason.to_string(),
        at: now,
        expires,
        owner: None,
        severity: f.severity,
    };
    n.ack = Some(a);
    n.record(FindingEvent {
        time: now,
        kind: FindingEventKind::Acknowledged,
        occurrence: n.occurrence,
        by: Some(by.to_string()),
        detail: Some(reason.to_string()),
        scan_id: None,
    });
    n
}

/// Withdraw an acknowledgement through the API; `None` when the finding has none.
pub fn unack(f: &Finding, by: &str, now: UnixSeconds) -> Option<Finding> {
    let old = f.ack.as_ref()?;
    let mut n = f.clone();
    let detail = format!("acknowledgement by {} withdrawn", old.by);
    n.ack = None;
    n.record(FindingEvent {
        time: now,
        kind: FindingEventKind::Unacknowledged,
        occurrence: n.occurrence,
        by: Some(by.to_string()),
        detail: Some(detail),
        scan_id: None,
    });
    Some(n)
}

/// When the next acknowledgement among `findings` expires (the agent wakes then to enforce it).
pub fn next_expiry<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Option<UnixSeconds> {
    findings
        .into_iter()
        .filter_map(|f| f.ack.as_ref().map(|a| a.expires))
        .reduce(f64::min)
}

#[cfg(test)]
mod tests;
