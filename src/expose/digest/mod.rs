//! The digest: what the e-mail says. From the view's findings and a window (last digest to the same
//! recipients → now): findings confirmed, resolved, whose ack ended, and acknowledged in it, each
//! once; or, for a first digest, a summary (counts, the most severe confirmed) instead of a flood.
//! Optionally one project's findings only. Rendered as subject, text, HTML and JSON. Pure: no I/O,
//! no clock.
//!
//! - [`schedule`]: when digests are due (an interval, or a wall-clock time in a time zone).
//! - `text.rs`, `html.rs`: the two bodies; every value from outside is cleaned (text) or escaped
//!   (HTML) there.
//! - [`top`]: the first `k` of a stream in O(k) memory (how `/api/v1/digest` bounds its sections).

mod html;
pub mod schedule;
mod text;
pub(crate) mod top;

#[cfg(test)]
mod api_tests;
#[cfg(test)]
pub(crate) mod fixtures;
#[cfg(test)]
mod tests;

use crate::model::{
    Ack, Finding, FindingEvent, FindingEventKind, FindingKind, FindingState, Protocol, Severity,
    UnixSeconds,
};
use crate::state::View;
use jiff::tz::TimeZone;
use serde::Serialize;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;
use top::Top;

/// Most confirmed findings a first digest lists (the counts cover all of them).
pub const FIRST_TOP: usize = 20;

/// Where the API serves one finding: this prefix and its id.
pub const FINDING_PATH: &str = "/api/v1/findings/";

/// What a digest covers.
#[derive(Debug, Clone, PartialEq)]
pub struct Scope {
    /// Start of the window (inclusive): when the last digest to the same recipients went out.
    /// `None`: there was none, and this digest summarises instead.
    pub since: Option<UnixSeconds>,
    /// End of the window (exclusive): now. The next digest's window starts here, so an event at
    /// the boundary belongs to exactly one digest.
    pub until: UnixSeconds,
    /// Only the findings of this OpenStack project (a name or an id); `None`: every finding.
    pub project: Option<String>,
    /// Vulnerability findings less severe than a CVSS of this are left out of the lists (and
    /// counted in [`Digest::omitted`]); other kinds are always listed.
    pub min_cvss: f64,
}

/// The whole digest, as attached in JSON and served by `/api/v1/digest`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    pub generated: UnixSeconds,
    /// Start of the window; `null` for a first digest.
    pub since: Option<UnixSeconds>,
    /// No digest went to these recipients before: a summary, not a list of changes.
    pub first: bool,
    /// The project this digest is limited to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    pub min_cvss: f64,
    /// Confirmed in the window and not acknowledged.
    pub confirmed: Vec<Entry>,
    /// Resolved in the window (only findings that had been confirmed).
    pub resolved: Vec<Entry>,
    /// Whose acknowledgement expired, was voided (the finding got worse) or was withdrawn in the
    /// window: they alert again.
    pub ack_expired: Vec<Entry>,
    /// Acknowledged in the window, or confirmed in it while acknowledged.
    pub acknowledged: Vec<Entry>,
    /// Every finding acknowledged now (not resolved), in or out of the window.
    pub acknowledged_total: usize,
    /// Vulnerability findings below `min_cvss` left out: of those the window changed, or (first
    /// digest) of the confirmed ones.
    pub omitted: usize,
    /// Every finding (resolved ones too) by kind, severity and state.
    pub counts: Vec<Count>,
    /// First digest only: the most severe confirmed findings, at most [`FIRST_TOP`].
    pub top: Vec<Entry>,
    /// Confirmed findings now (what `top` was chosen from, before `min_cvss`).
    pub confirmed_total: usize,
    /// A section had more entries than the API request's `limit`: each lists its first `limit`
    /// (the counts still cover every finding). Never set in a mailed digest.
    pub truncated: bool,
}

/// How many findings have one kind, severity and state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    pub kind: FindingKind,
    pub severity: Severity,
    pub state: FindingState,
    pub count: usize,
}

/// One finding in a digest section, with the event that put it there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Entry {
    pub id: String,
    /// `/api/v1/findings/<id>`: the finding in full, with its history.
    pub api: String,
    /// The event that placed it in its section (for `top`: `confirmed`).
    pub event: FindingEventKind,
    pub time: UnixSeconds,
    /// The event's detail (why it resolved, why an ack ended).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    pub kind: FindingKind,
    pub severity: Severity,
    pub state: FindingState,
    pub host: String,
    pub address: IpAddr,
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmRef>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cve: Option<String>,
    pub rule: String,
    pub evidence: String,
    pub first_seen: UnixSeconds,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirmed_at: Option<UnixSeconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<UnixSeconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack: Option<Ack>,
}

/// The VM behind a finding's address: names where Keystone gave them, else ids.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmRef {
    pub id: String,
    pub name: String,
    pub project_id: String,
    /// The project's name, else its id.
    pub project: String,
    /// The owner's name, else id (absent when the VM is not in the inventory now).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

/// The sections of a changes digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Confirmed,
    Resolved,
    AckEnded,
    Acknowledged,
}

/// How a digest is rendered: lines per section, and the time zone its times are shown in.
#[derive(Debug, Clone, PartialEq)]
pub struct Render {
    pub max_lines: usize,
    pub tz: TimeZone,
}

/// A finding placed in a section (or `top`) by one of its events: what an [`Entry`] is built from,
/// once it is known to be listed.
struct Placed<'a> {
    finding: &'a Finding,
    event: FindingEventKind,
    time: UnixSeconds,
    detail: Option<&'a str>,
}

/// The order of every list: worst first, then in the order they happened.
fn worst_first(a: &Placed<'_>, b: &Placed<'_>) -> Ordering {
    b.finding
        .severity
        .cmp(&a.finding.severity)
        .then(a.time.total_cmp(&b.time))
        .then(a.finding.id.cmp(&b.finding.id))
}

impl Digest {
    /// Build the digest of `scope` from the findings in `view`.
    pub fn build(view: &View, scope: &Scope) -> Digest {
        Digest::build_at_most(view, scope, usize::MAX)
    }

    /// Build the digest of `scope`, listing at most `max` entries a section (the worst; `top`: at
    /// most [`FIRST_TOP`] too) and marking it `truncated` when a section had more. Every finding
    /// in scope is looked at (the counts cover them all), but only listed entries are built.
    pub fn build_at_most(view: &View, scope: &Scope, max: usize) -> Digest {
        let bar = Severity::of_cvss(Some(scope.min_cvss));
        let listed = |f: &Finding| f.kind != FindingKind::Vulnerability || f.severity >= bar;
        let mut d = Digest {
            generated: scope.until,
            since: scope.since,
            first: scope.since.is_none(),
            project: scope.project.clone(),
            min_cvss: scope.min_cvss,
            confirmed: Vec::new(),
            resolved: Vec::new(),
            ack_expired: Vec::new(),
            acknowledged: Vec::new(),
            acknowledged_total: 0,
            omitted: 0,
            counts: Vec::new(),
            top: Vec::new(),
            confirmed_total: 0,
            truncated: false,
        };
        // Confirmed, Resolved, AckEnded, Acknowledged (the order of `Section`).
        let mut sections: [Top<Placed<'_>>; 4] =
            std::array::from_fn(|_| Top::new(max, worst_first));
        let mut top = Top::new(FIRST_TOP.min(max), worst_first);
        let mut counts: BTreeMap<(FindingKind, Severity, FindingState), usize> = BTreeMap::new();
        let in_scope = |f: &&Finding| scope.project.as_deref().is_none_or(|p| f.in_project(p));
        for f in view.findings.values().filter(in_scope) {
            *counts.entry((f.kind, f.severity, f.state)).or_default() += 1;
            if f.ack.is_some() && f.state != FindingState::Resolved {
                d.acknowledged_total += 1;
            }
            if f.state == FindingState::Confirmed {
                d.confirmed_total += 1;
            }
            let Some(since) = scope.since else {
                if f.state == FindingState::Confirmed {
                    if listed(f) {
                        top.push(Placed {
                            finding: f,
                            event: FindingEventKind::Confirmed,
                            time: f.confirmed_at.unwrap_or(f.first_seen),
                            detail: None,
                        });
                    } else {
                        d.omitted += 1;
                    }
                }
                continue;
            };
            let Some((section, ev)) = placement(f, since, scope.until) else {
                continue;
            };
            if !listed(f) {
                d.omitted += 1;
                continue;
            }
            let i = match section {
                Section::Confirmed => 0,
                Section::Resolved => 1,
                Section::AckEnded => 2,
                Section::Acknowledged => 3,
            };
            sections[i].push(Placed {
                finding: f,
                event: ev.kind,
                time: ev.time,
                detail: ev.detail.as_deref(),
            });
        }
        d.counts = counts
            .into_iter()
            .map(|((kind, severity, state), count)| Count {
                kind,
                severity,
                state,
                count,
            })
            .collect();
        d.truncated = sections.iter().any(|s| s.seen() > max);
        let [confirmed, resolved, ack_ended, acknowledged] = sections;
        let entries = |t: Top<Placed<'_>>| -> Vec<Entry> {
            t.into_sorted()
                .into_iter()
                .map(|p| {
                    let detail = p.detail.map(str::to_string);
                    entry(view, p.finding, p.event, p.time, detail)
                })
                .collect()
        };
        d.confirmed = entries(confirmed);
        d.resolved = entries(resolved);
        d.ack_expired = entries(ack_ended);
        d.acknowledged = entries(acknowledged);
        d.top = entries(top);
        d
    }

    /// Nothing worth a mail: a first digest with no finding that is not resolved, or a window in
    /// which nothing listed happened.
    pub fn is_quiet(&self) -> bool {
        if self.first {
            self.counts
                .iter()
                .all(|c| c.state == FindingState::Resolved)
        } else {
            self.confirmed.is_empty()
                && self.resolved.is_empty()
                && self.ack_expired.is_empty()
                && self.acknowledged.is_empty()
        }
    }

    /// Findings now in `state` (after the project filter).
    pub fn total(&self, state: FindingState) -> usize {
        self.counts
            .iter()
            .filter(|c| c.state == state)
            .map(|c| c.count)
            .sum()
    }

    /// The subject line (after the configured prefix).
    pub fn subject(&self) -> String {
        let mut s = match &self.project {
            Some(p) => format!("project {}: ", clean(p)),
            None => String::new(),
        };
        if self.first {
            s.push_str("first digest: ");
            s.push_str(&plural(self.confirmed_total, "confirmed finding"));
            let worst = worst(
                self.counts
                    .iter()
                    .filter(|c| c.state == FindingState::Confirmed),
            );
            if !worst.is_empty() {
                s.push_str(&format!(" ({worst})"));
            }
            let open = self.total(FindingState::Open);
            if open > 0 {
                s.push_str(&format!(", {open} open"));
            }
            return s;
        }
        let mut parts = Vec::new();
        if !self.confirmed.is_empty() {
            let w = worst_of(&self.confirmed);
            let mut p = format!("{} new confirmed", self.confirmed.len());
            if !w.is_empty() {
                p.push_str(&format!(" ({w})"));
            }
            parts.push(p);
        }
        if !self.resolved.is_empty() {
            parts.push(format!("{} resolved", self.resolved.len()));
        }
        if !self.ack_expired.is_empty() {
            parts.push(acks_ended(self.ack_expired.len()));
        }
        if !self.acknowledged.is_empty() {
            parts.push(format!("{} acknowledged", self.acknowledged.len()));
        }
        if parts.is_empty() {
            s.push_str("no changes");
        } else {
            s.push_str(&parts.join(", "));
        }
        s
    }

    /// The text body.
    pub fn text(&self, r: &Render) -> String {
        text::render(self, r)
    }

    /// The HTML body (every value escaped).
    pub fn html(&self, r: &Render) -> String {
        html::render(self, r)
    }

    /// The attachment's file name: `stinger-digest-<date>.json` (the date in the digest's zone).
    pub fn attachment_name(&self, tz: &TimeZone) -> String {
        let date = local_time(self.generated, tz);
        format!("stinger-digest-{}.json", date.get(..10).unwrap_or("now"))
    }

    /// The JSON attachment.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the digest: {e}\"}}"))
    }
}

/// The section a finding belongs in for the window `[since, until)`, and the event that puts it
/// there: its latest event in the window that a digest reports. A confirmation while acknowledged
/// counts as acknowledged; a resolution only of an occurrence that was confirmed; an
/// acknowledgement only while it still holds.
fn placement(
    f: &Finding,
    since: UnixSeconds,
    until: UnixSeconds,
) -> Option<(Section, &FindingEvent)> {
    f.history
        .iter()
        .rev()
        .filter(|e| e.time >= since && e.time < until)
        .find_map(|e| {
            let section = match e.kind {
                FindingEventKind::Confirmed if f.ack.is_some() => Section::Acknowledged,
                FindingEventKind::Confirmed => Section::Confirmed,
                FindingEventKind::Resolved if was_confirmed(f, e.occurrence) => Section::Resolved,
                FindingEventKind::AckExpired
                | FindingEventKind::AckVoided
                | FindingEventKind::Unacknowledged => Section::AckEnded,
                FindingEventKind::Acknowledged if f.ack.is_some() => Section::Acknowledged,
                _ => return None,
            };
            Some((section, e))
        })
}

/// Whether occurrence `n` of the finding was ever confirmed.
fn was_confirmed(f: &Finding, n: u32) -> bool {
    let recorded = if n == f.occurrence {
        f.confirmed_at.is_some()
    } else {
        f.previous
            .iter()
            .any(|o| o.occurrence == n && o.confirmed_at.is_some())
    };
    recorded
        || f.history
            .iter()
            .any(|e| e.occurrence == n && e.kind == FindingEventKind::Confirmed)
}

fn entry(
    view: &View,
    f: &Finding,
    event: FindingEventKind,
    time: UnixSeconds,
    detail: Option<String>,
) -> Entry {
    let vm = f.vm.as_ref().map(|link| VmRef {
        id: link.vm_id.clone(),
        name: link.vm_name.clone(),
        project_id: link.project_id.clone(),
        project: link
            .project_name
            .clone()
            .unwrap_or_else(|| link.project_id.clone()),
        user: view
            .vms
            .get(&link.vm_id)
            .map(|vm| vm.user_name.clone().unwrap_or_else(|| vm.user_id.clone())),
    });
    Entry {
        id: f.id.clone(),
        api: format!("{FINDING_PATH}{}", f.id),
        event,
        time,
        detail,
        kind: f.kind,
        severity: f.severity,
        state: f.state,
        host: f.host.clone(),
        address: f.address,
        group: f.group.clone(),
        vm,
        protocol: f.protocol,
        port: f.port,
        cve: f.cve.clone(),
        rule: f.rule.clone(),
        evidence: f.evidence.clone(),
        first_seen: f.first_seen,
        confirmed_at: f.confirmed_at,
        resolved_at: f.resolved_at,
        ack: f.ack.clone(),
    }
}

/// `2 critical, 1 high` over count rows (empty when none is high or critical).
fn worst<'a>(rows: impl Iterator<Item = &'a Count>) -> String {
    let mut by: BTreeMap<Severity, usize> = BTreeMap::new();
    for c in rows {
        *by.entry(c.severity).or_default() += c.count;
    }
    severities(&by)
}

fn worst_of(entries: &[Entry]) -> String {
    let mut by: BTreeMap<Severity, usize> = BTreeMap::new();
    for e in entries {
        *by.entry(e.severity).or_default() += 1;
    }
    severities(&by)
}

fn severities(by: &BTreeMap<Severity, usize>) -> String {
    [Severity::Critical, Severity::High]
        .iter()
        .filter_map(|s| by.get(s).map(|n| format!("{n} {s}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1 acknowledgement ended`, `2 acknowledgements ended`.
fn acks_ended(n: usize) -> String {
    if n == 1 {
        "1 acknowledgement ended".into()
    } else {
        format!("{n} acknowledgements ended")
    }
}

/// `1 vulnerability`, `2 vulnerabilities`.
fn vulnerabilities(n: usize) -> String {
    if n == 1 {
        "1 vulnerability".into()
    } else {
        format!("{n} vulnerabilities")
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `2026-11-24 07:00 CET`: a time in the digest's zone, to the minute.
pub(crate) fn local_time(t: UnixSeconds, tz: &TimeZone) -> String {
    match jiff::Timestamp::from_second(t.floor() as i64) {
        Ok(ts) => ts
            .to_zoned(tz.clone())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => format!("{t:.0} (Unix seconds)"),
    }
}

/// Longest value from outside a digest shows (names, evidence), in bytes; longer ones are cut.
const MAX_VALUE_BYTES: usize = 512;

/// A value from outside (VM, project and user names, banners, evidence, ack reasons), safe to put in
/// a text line or a header: control characters (line breaks included) and the bidirectional
/// overrides that can make text read differently from what it is become U+FFFD; at most
/// [`MAX_VALUE_BYTES`] bytes, cut at a character boundary and ending in `…`.
pub(crate) fn clean(value: &str) -> String {
    // `fit`: how much of `out` can stay when the value turns out too long, leaving room for `…`.
    let budget = MAX_VALUE_BYTES - '…'.len_utf8();
    let mut out = String::with_capacity(value.len().min(MAX_VALUE_BYTES));
    let mut fit = 0;
    for c in value.chars() {
        let c = if c.is_control() || is_bidi_control(c) {
            char::REPLACEMENT_CHARACTER
        } else {
            c
        };
        if out.len() + c.len_utf8() > MAX_VALUE_BYTES {
            out.truncate(fit);
            out.push('…');
            break;
        }
        out.push(c);
        if out.len() <= budget {
            fit = out.len();
        }
    }
    out
}

/// Unicode's bidirectional embedding, override and isolate controls, and the implicit marks.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}
