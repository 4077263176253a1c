//! Acknowledgements of findings: given and withdrawn by an operator, expired, covered by the
//! policy's exceptions, and voided when a finding gets worse than when it was acknowledged.

use super::Context;
use crate::model::{
    Ack, AckSource, Finding, FindingEvent, FindingEventKind, FindingState, UnixSeconds,
};

/// An acknowledgement no longer covers a finding that got worse than when it was given.
pub(super) fn void_ack_if_worse(f: &mut Finding, ctx: &Context<'_>) {
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

pub(super) fn review_into(f: &mut Finding, ctx: &Context<'_>) {
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
