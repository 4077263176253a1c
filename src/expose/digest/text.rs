//! The digest's plain-text body. Every value from outside goes through [`clean`], so the body holds
//! no control character but the line breaks it makes itself.

use super::{clean, local_time, plural, Digest, Entry, Render};
use crate::model::{FindingEventKind, FindingKind, FindingState, Severity};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The section titles, as both bodies show them.
pub(super) const CONFIRMED: &str = "New confirmed findings";
pub(super) const RESOLVED: &str = "Resolved";
pub(super) const ACK_ENDED: &str = "Acknowledgements expired, voided or withdrawn";
pub(super) const ACKNOWLEDGED: &str = "Acknowledged";
pub(super) const TOP: &str = "Most severe confirmed findings";

pub(super) fn render(d: &Digest, r: &Render) -> String {
    let mut t = String::new();
    let now = local_time(d.generated, &r.tz);
    if let Some(p) = &d.project {
        let _ = writeln!(t, "Project {}: only the findings on its VMs.", clean(p));
    }
    match d.since {
        None => {
            let _ = writeln!(
                t,
                "Stinger's first digest, {now}: where things stand. Later digests list only what \
                 changed since the one before.\n"
            );
            let _ = writeln!(t, "{}", status_line(d));
            if !d.counts.is_empty() {
                t.push_str("\nFINDINGS BY KIND, SEVERITY AND STATE\n");
                counts_table(&mut t, d);
            }
            if !d.top.is_empty() {
                let _ = writeln!(
                    t,
                    "\n{} ({} of {})",
                    TOP.to_uppercase(),
                    d.top.len().min(r.max_lines),
                    d.confirmed_total
                );
                section(&mut t, &d.top, r);
            }
        }
        Some(since) => {
            let _ = writeln!(
                t,
                "Stinger digest, {now}: what changed since {}.\n",
                local_time(since, &r.tz)
            );
            let _ = writeln!(t, "{}", changes_line(d));
            let _ = writeln!(t, "{}", status_line(d));
            for (title, list) in [
                (CONFIRMED, &d.confirmed),
                (RESOLVED, &d.resolved),
                (ACK_ENDED, &d.ack_expired),
                (ACKNOWLEDGED, &d.acknowledged),
            ] {
                if !list.is_empty() {
                    let _ = writeln!(t, "\n{}", title.to_uppercase());
                    section(&mut t, list, r);
                }
            }
        }
    }
    if d.omitted > 0 {
        let _ = writeln!(
            t,
            "\n{} below CVSS {:.1} left out (email.min_cvss).",
            super::vulnerabilities(d.omitted),
            d.min_cvss
        );
    }
    t.push_str(
        "\nEach finding in full, with its history: GET /api/v1/findings/<id> on the agent. \
         The whole digest is attached as JSON.\n",
    );
    t
}

/// `2 new confirmed, 1 resolved, 0 acknowledgements ended, 1 acknowledged.`
pub(super) fn changes_line(d: &Digest) -> String {
    format!(
        "{} new confirmed, {} resolved, {}, {} acknowledged.",
        d.confirmed.len(),
        d.resolved.len(),
        super::acks_ended(d.ack_expired.len()),
        d.acknowledged.len()
    )
}

/// `Now: 12 confirmed findings (3 acknowledged), 2 open, 1 stale.`
pub(super) fn status_line(d: &Digest) -> String {
    format!(
        "Now: {} ({} acknowledged), {} open, {} stale.",
        plural(d.confirmed_total, "confirmed finding"),
        d.acknowledged_total,
        d.total(FindingState::Open),
        d.total(FindingState::Stale)
    )
}

/// Rows kind × severity (worst first), a column a state.
fn counts_table(t: &mut String, d: &Digest) {
    let mut rows: BTreeMap<(FindingKind, std::cmp::Reverse<Severity>), [usize; 4]> =
        BTreeMap::new();
    for c in &d.counts {
        let row = rows
            .entry((c.kind, std::cmp::Reverse(c.severity)))
            .or_default();
        if let Some(i) = FindingState::ALL.iter().position(|s| *s == c.state) {
            row[i] += c.count;
        }
    }
    let _ = write!(t, "{:<18} {:<9}", "kind", "severity");
    for s in FindingState::ALL {
        let _ = write!(t, " {:>9}", s.as_str());
    }
    t.push('\n');
    for ((kind, severity), n) in rows {
        let _ = write!(t, "{:<18} {:<9}", kind.as_str(), severity.0.as_str());
        for x in n {
            let _ = write!(t, " {x:>9}");
        }
        t.push('\n');
    }
}

fn section(t: &mut String, list: &[Entry], r: &Render) {
    for e in list.iter().take(r.max_lines) {
        entry(t, e, r);
    }
    if list.len() > r.max_lines {
        let _ = writeln!(
            t,
            "(and {} more, in the attachment)",
            list.len() - r.max_lines
        );
    }
}

/// ```text
/// high  unexpected_port  tcp/8080 on 10.0.0.5  VM web-1 (i-1), project acme, user alice; group cloud
///     rule default: tcp/8080 open, not expected
///     confirmed 2026-11-23 12:00 CET, first seen 2026-11-23 11:45 CET  /api/v1/findings/…
/// ```
fn entry(t: &mut String, e: &Entry, r: &Render) {
    let _ = writeln!(
        t,
        "{:<8}  {}  {} on {}  {}",
        e.severity.as_str(),
        e.kind.as_str(),
        what(e),
        e.address,
        place(e)
    );
    let _ = writeln!(t, "    rule {}: {}", clean(&e.rule), clean(&e.evidence));
    let _ = writeln!(t, "    {}  {}", event(e, r), clean(&e.api));
    if let Some(a) = &e.ack {
        let _ = writeln!(t, "    {}", ack(a, r));
    }
}

/// `CVE-2023-38408 on tcp/22`, `tcp/8080`, `CVE-… (host-wide)`: cleaned.
pub(super) fn what(e: &Entry) -> String {
    let at = match (e.protocol, e.port) {
        (Some(p), Some(n)) => Some(format!("{p}/{n}")),
        _ => None,
    };
    match (&e.cve, at) {
        (Some(c), Some(at)) => format!("{} on {at}", clean(c)),
        (Some(c), None) => format!("{} (host-wide)", clean(c)),
        (None, Some(at)) => at,
        (None, None) => "host".into(),
    }
}

/// `VM web-1 (i-1), project acme, user alice; group cloud`, or `group lab`: cleaned.
pub(super) fn place(e: &Entry) -> String {
    match &e.vm {
        Some(vm) => {
            let mut s = format!(
                "VM {} ({}), project {}",
                clean(&vm.name),
                clean(&vm.id),
                clean(&vm.project)
            );
            if let Some(u) = &vm.user {
                s.push_str(&format!(", user {}", clean(u)));
            }
            s.push_str(&format!("; group {}", clean(&e.group)));
            s
        }
        None => format!("group {}", clean(&e.group)),
    }
}

/// What happened and when, in words: cleaned.
pub(super) fn event(e: &Entry, r: &Render) -> String {
    let at = local_time(e.time, &r.tz);
    let detail = e
        .detail
        .as_deref()
        .map(|d| format!(": {}", clean(d)))
        .unwrap_or_default();
    match e.event {
        FindingEventKind::Confirmed => {
            format!(
                "confirmed {at}, first seen {}",
                local_time(e.first_seen, &r.tz)
            )
        }
        FindingEventKind::Resolved => format!("resolved {at}{detail}"),
        FindingEventKind::AckExpired => format!("acknowledgement expired {at}{detail}"),
        FindingEventKind::AckVoided => format!("acknowledgement voided {at}{detail}"),
        FindingEventKind::Unacknowledged => format!("acknowledgement withdrawn {at}{detail}"),
        FindingEventKind::Acknowledged => format!("acknowledged {at}"),
        other => format!("{} {at}{detail}", other.as_str()),
    }
}

/// `acknowledged by alice (api) until 2026-12-01 00:00 UTC: "reason"; owner bob`: cleaned.
pub(super) fn ack(a: &crate::model::Ack, r: &Render) -> String {
    let source = match a.source {
        crate::model::AckSource::Api => "api",
        crate::model::AckSource::Config => "config exception",
    };
    let mut s = format!(
        "acknowledged by {} ({source}) until {}: \"{}\"",
        clean(&a.by),
        local_time(a.expires, &r.tz),
        clean(&a.reason)
    );
    if let Some(o) = &a.owner {
        s.push_str(&format!("; owner {}", clean(o)));
    }
    s
}
