//! The digest's HTML body: the text body's content as tables. Every value is [`escape`]d (after the
//! text body's cleaning), the agent's own words included, so no name a tenant or a scanned host
//! chooses can add markup, a link or a script.

use super::text::{self, ACKNOWLEDGED, ACK_ENDED, CONFIRMED, RESOLVED, TOP};
use super::{clean, local_time, Digest, Entry, Render};
use crate::model::{FindingState, Severity};
use std::fmt::Write;

/// `s` with HTML's five special characters as entities: safe as element text and as a quoted
/// attribute value.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const TABLE: &str = "<table cellpadding=\"4\" cellspacing=\"0\" border=\"1\" \
                     style=\"border-collapse:collapse;border-color:#ccc\">";

pub(super) fn render(d: &Digest, r: &Render) -> String {
    let mut h = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Stinger digest</title></head>\n\
         <body style=\"font-family:sans-serif;font-size:14px;color:#222\">\n",
    );
    let now = local_time(d.generated, &r.tz);
    if let Some(p) = &d.project {
        let _ = writeln!(
            h,
            "<p><b>Project {}</b>: only the findings on its VMs.</p>",
            escape(&clean(p))
        );
    }
    match d.since {
        None => {
            let _ = writeln!(
                h,
                "<h2>Stinger&#39;s first digest, {}</h2>\n<p>Where things stand. Later digests \
                 list only what changed since the one before.</p>",
                escape(&now)
            );
            let _ = writeln!(h, "<p>{}</p>", escape(&text::status_line(d)));
            if !d.counts.is_empty() {
                counts_table(&mut h, d);
            }
            if !d.top.is_empty() {
                let _ = writeln!(
                    h,
                    "<h3>{} ({} of {})</h3>",
                    escape(TOP),
                    d.top.len().min(r.max_lines),
                    d.confirmed_total
                );
                section(&mut h, &d.top, r);
            }
        }
        Some(since) => {
            let _ = writeln!(
                h,
                "<h2>Stinger digest, {}</h2>\n<p>What changed since {}.</p>",
                escape(&now),
                escape(&local_time(since, &r.tz))
            );
            let _ = writeln!(
                h,
                "<p>{}<br>{}</p>",
                escape(&text::changes_line(d)),
                escape(&text::status_line(d))
            );
            for (title, list) in [
                (CONFIRMED, &d.confirmed),
                (RESOLVED, &d.resolved),
                (ACK_ENDED, &d.ack_expired),
                (ACKNOWLEDGED, &d.acknowledged),
            ] {
                if !list.is_empty() {
                    let _ = writeln!(h, "<h3>{} ({})</h3>", escape(title), list.len());
                    section(&mut h, list, r);
                }
            }
        }
    }
    if d.omitted > 0 {
        let _ = writeln!(
            h,
            "<p>{} below CVSS {:.1} left out (<code>email.min_cvss</code>).</p>",
            escape(&super::vulnerabilities(d.omitted)),
            d.min_cvss
        );
    }
    h.push_str(
        "<p style=\"color:#666\">Each finding in full, with its history: \
         <code>GET /api/v1/findings/&lt;id&gt;</code> on the agent. The whole digest is attached \
         as JSON.</p>\n</body></html>\n",
    );
    h
}

fn counts_table(h: &mut String, d: &Digest) {
    h.push_str("<h3>Findings by kind, severity and state</h3>\n");
    h.push_str(TABLE);
    h.push_str("<tr><th align=\"left\">kind</th><th align=\"left\">severity</th>");
    for s in FindingState::ALL {
        let _ = write!(h, "<th align=\"right\">{}</th>", s.as_str());
    }
    h.push_str("</tr>\n");
    let mut rows: Vec<_> = d.counts.iter().collect();
    rows.sort_by(|a, b| a.kind.cmp(&b.kind).then(b.severity.cmp(&a.severity)));
    let mut i = 0;
    while i < rows.len() {
        let (kind, severity) = (rows[i].kind, rows[i].severity);
        let mut n = [0usize; 4];
        while i < rows.len() && rows[i].kind == kind && rows[i].severity == severity {
            if let Some(j) = FindingState::ALL.iter().position(|s| *s == rows[i].state) {
                n[j] += rows[i].count;
            }
            i += 1;
        }
        let _ = write!(
            h,
            "<tr><td>{}</td><td style=\"{}\">{}</td>",
            kind.as_str(),
            severity_style(severity),
            severity.as_str()
        );
        for x in n {
            let _ = write!(h, "<td align=\"right\">{x}</td>");
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

fn section(h: &mut String, list: &[Entry], r: &Render) {
    h.push_str(TABLE);
    h.push_str(
        "<tr><th align=\"left\">severity</th><th align=\"left\">finding</th>\
         <th align=\"left\">where</th><th align=\"left\">rule and evidence</th>\
         <th align=\"left\">what happened</th><th align=\"left\">details</th></tr>\n",
    );
    for e in list.iter().take(r.max_lines) {
        entry(h, e, r);
    }
    h.push_str("</table>\n");
    if list.len() > r.max_lines {
        let _ = writeln!(
            h,
            "<p>(and {} more, in the attachment)</p>",
            list.len() - r.max_lines
        );
    }
}

fn entry(h: &mut String, e: &Entry, r: &Render) {
    let ack = e
        .ack
        .as_ref()
        .map(|a| format!("<br>{}", escape(&text::ack(a, r))))
        .unwrap_or_default();
    let _ = writeln!(
        h,
        "<tr><td style=\"{}\">{}</td><td>{}<br>{} on {}</td><td>{}</td><td>rule {}: {}</td>\
         <td>{}{ack}</td><td><code>{}</code></td></tr>",
        severity_style(e.severity),
        e.severity.as_str(),
        e.kind.as_str(),
        escape(&text::what(e)),
        escape(&e.address.to_string()),
        escape(&text::place(e)),
        escape(&clean(&e.rule)),
        escape(&clean(&e.evidence)),
        escape(&text::event(e, r)),
        escape(&clean(&e.api)),
    );
}

fn severity_style(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "color:#b00020;font-weight:bold",
        Severity::High => "color:#c0392b;font-weight:bold",
        Severity::Medium => "color:#b7950b",
        Severity::Low => "color:#555",
    }
}
