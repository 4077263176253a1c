//! Judge stage: hosts that answer (nearly) every TCP port probed — a tarpit, a SYN proxy, a port
//! forwarder. Such a host is recorded as one [`AnswersEverything`] (counts, no TCP port records),
//! one event when it starts and one when it stops, and one `answers_everything` finding, so a pass
//! over `1-65535` costs one record, not 65 535 ports, events and findings. Pure, like the rest of
//! the judge; its UDP ports are judged as on any host.
//!
//! Hysteresis: a host starts answering everything when at least [`MIN_OPEN`] TCP ports answer and
//! they are at least [`START_PERCENT`] % of those probed; it keeps that while [`MIN_OPEN`] ports or
//! [`KEEP_PERCENT`] % of those probed answer. A tarpit that drops SYNs under load therefore neither
//! flaps nor floods the state with tens of thousands of port records, and a targeted pass over a
//! few of its ports keeps it; a real host, whose listeners are a sliver of a wide range, never
//! starts.

use super::findings::Candidate;
use crate::model::{
    AnswersEverything, Event, EventKind, Finding, FindingKind, HostObservation, HostState,
    PortFinding, Protocol, Severity, UnixSeconds,
};

/// Fewest TCP ports that must answer in one pass for a host to start answering everything (a
/// narrower port list cannot tell a tarpit from a busy host).
pub const MIN_OPEN: u32 = 1000;
/// Share of the probed TCP ports, in percent, that must answer for a host to start.
pub const START_PERCENT: u64 = 90;
/// Share, in percent, that keeps a host that answers everything so (below it and below
/// [`MIN_OPEN`], it stops).
pub const KEEP_PERCENT: u64 = 50;
/// The `rule` of its finding.
pub const RULE: &str = "answers_everything";
/// Why its finding is confirmed at once when others wait for a re-probe: a thousand answering
/// ports are their own confirmation, and they are not re-probed.
pub(super) const CONFIRMED: &str = "confirmed at once: at least 1000 ports answered in one pass \
     (a host that answers everything is not re-probed)";

/// Whether the host answers everything after this observation, with the pass's counts. A host that
/// answered nothing keeps what it had (it is unreachable, as it keeps its ports); TCP ports a
/// targeted pass did not probe (`obs.carried`) count neither as open nor as probed.
pub fn assess(
    obs: &HostObservation,
    prev: Option<&HostState>,
    now: UnixSeconds,
) -> Option<AnswersEverything> {
    let was = prev.and_then(|p| p.answers_everything);
    if !obs.is_up() {
        return was;
    }
    let open = u32::try_from(obs.open.len())
        .unwrap_or(u32::MAX)
        .saturating_sub(obs.carried);
    let probed = open.saturating_add(obs.closed).saturating_add(obs.filtered);
    let share = |percent: u64| u64::from(open) * 100 >= u64::from(probed) * percent;
    let answers = match was {
        None => open >= MIN_OPEN && share(START_PERCENT),
        // No TCP answer or timeout at all (only UDP answered): nothing new to say about TCP.
        Some(_) if probed == 0 => return was,
        Some(_) => open >= MIN_OPEN || share(KEEP_PERCENT),
    };
    answers.then(|| AnswersEverything {
        open,
        probed,
        since: was.map_or(now, |w| w.since),
    })
}

/// Whether the judge will record the observed host as answering everything: discovery then
/// neither re-probes its ports nor asks nmap about them (no port record would keep the answer).
pub fn answers_everything(obs: &HostObservation, prev: Option<&HostState>) -> bool {
    assess(obs, prev, 0.0).is_some()
}

/// The one event of a change between answering everything and not.
pub(super) fn event(
    prev: Option<&HostState>,
    new: &HostState,
    scan_id: u64,
    now: UnixSeconds,
) -> Option<Event> {
    let was = prev.is_some_and(|p| p.answers_everything.is_some());
    let kind = match (was, new.answers_everything.is_some()) {
        (false, true) => EventKind::AnswersEverythingStarted,
        (true, false) => EventKind::AnswersEverythingStopped,
        _ => return None,
    };
    let mut e = super::event(kind, new, now, scan_id, None);
    e.protocol = Some(Protocol::Tcp);
    Some(e)
}

/// A port of the previous state that is gone because the host now answers everything: superseded
/// by the host's one record, not closed (no `port_closed` event).
pub(super) fn supersedes(new: &HostState, old: &PortFinding) -> bool {
    new.answers_everything.is_some() && old.protocol == Protocol::Tcp
}

/// The finding a host that answers everything calls for.
pub(super) fn candidate(h: &HostState) -> Option<Candidate> {
    let a = h.answers_everything?;
    Some(Candidate {
        kind: FindingKind::AnswersEverything,
        protocol: Some(Protocol::Tcp),
        port: None,
        cve: None,
        severity: Severity::High,
        rule: RULE.to_string(),
        evidence: format!(
            "{} of {} TCP ports probed answered (a host starts answering everything at \
             {MIN_OPEN} and {START_PERCENT}%): a tarpit, SYN proxy or port forwarder; its TCP \
             ports get no records or findings of their own while it lasts",
            a.open, a.probed
        ),
    })
}

/// Why a finding the host's state no longer calls for resolves now rather than after
/// `resolve_after` passes: a TCP port's finding on a host that now answers everything (superseded
/// by its one finding), or that finding once the host stops (the judge's hysteresis already
/// decided).
pub(super) fn resolves_now(h: &HostState, f: &Finding) -> Option<String> {
    if !h.up {
        return None;
    }
    match (h.answers_everything, f.kind) {
        (None, FindingKind::AnswersEverything) => Some(
            "the host no longer answers every TCP port probed: its ports are judged one by one \
             again"
                .to_string(),
        ),
        (Some(a), kind)
            if kind != FindingKind::AnswersEverything
                && f.protocol == Some(Protocol::Tcp)
                && f.port.is_some() =>
        {
            Some(format!(
                "superseded: the host answers every TCP port probed ({} of {}), and its \
                 answers_everything finding stands for them",
                a.open, a.probed
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests;
