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
//!
//! Layout: `candidates` says what should be a finding, `acks` handles acknowledgements; the
//! lifecycle itself is here.

mod acks;
mod candidates;

pub use acks::{ack, next_expiry, review, unack};
use acks::{review_into, void_ack_if_worse};
pub use candidates::{candidates, Candidate};

use super::Policy;
use crate::model::finding::HISTORY_LIMIT;
use crate::model::{
    finding_id, Finding, FindingEvent, FindingEventKind, FindingKind, FindingState, HostState,
    Occurrence, UnixSeconds,
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

#[cfg(test)]
mod tests;
