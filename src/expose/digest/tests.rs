use super::fixtures::{ack, finding, on_vm, view, with, DAY, T0};
use super::*;
use crate::model::FindingEventKind as K;
use crate::model::FindingKind::{UnexpectedPort, Vulnerability, WorldOpen};
use crate::model::FindingState::{Confirmed, Open, Resolved};
use crate::model::Severity::{Critical, High, Low, Medium};

fn scope(since: Option<UnixSeconds>) -> Scope {
    Scope {
        since,
        until: T0 + DAY,
        project: None,
        min_cvss: 7.0,
    }
}

fn render() -> Render {
    Render {
        max_lines: 200,
        tz: TimeZone::UTC,
    }
}

fn ids(list: &[Entry]) -> Vec<&str> {
    list.iter().map(|e| e.id.as_str()).collect()
}

fn id(n: u8) -> String {
    finding(n, UnexpectedPort, Low, Open).id
}

/// One finding per case of a day's window [T0, T0 + 1 day).
fn window_view() -> View {
    let mut acked = with(
        finding(5, UnexpectedPort, High, Confirmed),
        &[(K::Confirmed, T0 + 10.0), (K::Acknowledged, T0 + 30.0)],
    );
    acked.ack = Some(ack(T0 + 30.0));
    let mut acked_long_ago = with(
        finding(9, UnexpectedPort, Medium, Confirmed),
        &[(K::Acknowledged, T0 - 3.0 * DAY)],
    );
    acked_long_ago.ack = Some(ack(T0 - 3.0 * DAY));
    let mut vuln = with(
        finding(10, Vulnerability, Medium, Confirmed),
        &[(K::Confirmed, T0 + 50.0)],
    );
    vuln.cve = Some("CVE-2020-1".into());
    view(vec![
        // Confirmed in the window.
        with(
            finding(1, UnexpectedPort, High, Confirmed),
            &[(K::Opened, T0 - 100.0), (K::Confirmed, T0 + 10.0)],
        ),
        // Confirmed in the last window, resolved in this one.
        with(
            finding(2, WorldOpen, Critical, Resolved),
            &[(K::Confirmed, T0 - 50.0), (K::Resolved, T0 + 20.0)],
        ),
        // Confirmed and resolved in the window: once, as resolved.
        with(
            finding(3, UnexpectedPort, High, Resolved),
            &[
                (K::Opened, T0 + 1.0),
                (K::Confirmed, T0 + 2.0),
                (K::Resolved, T0 + 3.0),
            ],
        ),
        // Never confirmed: its resolution is no news.
        {
            let mut f = with(
                finding(4, UnexpectedPort, High, Resolved),
                &[(K::Opened, T0 + 1.0), (K::Resolved, T0 + 5.0)],
            );
            f.confirmed_at = None;
            f
        },
        acked,
        // Its acknowledgement expired: it alerts again.
        with(
            finding(6, UnexpectedPort, Medium, Confirmed),
            &[(K::AckExpired, T0 + 40.0)],
        ),
        // Confirmed exactly at the end of the window: the next digest's.
        with(
            finding(7, UnexpectedPort, High, Confirmed),
            &[(K::Confirmed, T0 + DAY)],
        ),
        // Confirmed exactly at the start: this one's (the last digest's window ended before it).
        with(
            finding(8, UnexpectedPort, Low, Confirmed),
            &[(K::Confirmed, T0)],
        ),
        acked_long_ago,
        vuln,
    ])
}

#[test]
fn sections_hold_each_finding_once_in_the_section_of_its_latest_event() {
    let d = Digest::build(&window_view(), &scope(Some(T0)));
    assert!(!d.first);
    assert_eq!(ids(&d.confirmed), [id(1), id(8)], "worst first");
    assert_eq!(ids(&d.resolved), [id(2), id(3)]);
    assert_eq!(ids(&d.ack_expired), [id(6)]);
    assert_eq!(ids(&d.acknowledged), [id(5)]);
    assert_eq!(d.acknowledged_total, 2, "5 in the window, 9 before it");
    assert_eq!(d.omitted, 1, "the medium vulnerability, below CVSS 7");
    let mut all: Vec<&str> = [&d.confirmed, &d.resolved, &d.ack_expired, &d.acknowledged]
        .iter()
        .flat_map(|l| ids(l))
        .collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "no finding twice");
    assert!(!all.contains(&id(4).as_str()), "never confirmed");
    assert!(!all.contains(&id(7).as_str()), "at the window's end");
    assert_eq!(d.resolved[1].event, K::Resolved);
    assert_eq!(
        d.resolved[1].detail.as_deref(),
        Some("not seen for 3 passes")
    );
    assert_eq!(d.confirmed[0].api, format!("/api/v1/findings/{}", id(1)));
    assert!(!d.is_quiet());
    assert_eq!(
        d.subject(),
        "2 new confirmed (1 high), 2 resolved, 1 acknowledgement ended, 1 acknowledged"
    );

    // The next window starts where this one ended: only the boundary event is new.
    let next = Scope {
        since: Some(T0 + DAY),
        until: T0 + 2.0 * DAY,
        ..scope(None)
    };
    let d = Digest::build(&window_view(), &next);
    assert_eq!(ids(&d.confirmed), [id(7)]);
    assert!(d.resolved.is_empty() && d.ack_expired.is_empty() && d.acknowledged.is_empty());

    // A window with nothing in it is quiet.
    let quiet = Scope {
        since: Some(T0 + 2.0 * DAY),
        until: T0 + 3.0 * DAY,
        ..scope(None)
    };
    let d = Digest::build(&window_view(), &quiet);
    assert!(d.is_quiet());
    assert_eq!(d.subject(), "no changes");
    assert_eq!(d.acknowledged_total, 2, "the count holds in a quiet window");
}

#[test]
fn a_withdrawn_acknowledgement_is_not_reported_as_acknowledged() {
    let f = with(
        finding(1, UnexpectedPort, High, Confirmed),
        &[
            (K::Confirmed, T0 + 1.0),
            (K::Acknowledged, T0 + 2.0),
            (K::Unacknowledged, T0 + 3.0),
        ],
    );
    let d = Digest::build(&view(vec![f.clone()]), &scope(Some(T0)));
    assert_eq!(ids(&d.ack_expired), [id(1)]);
    assert_eq!(d.ack_expired[0].event, K::Unacknowledged);
    // Acknowledged in the window but withdrawn after it: the confirmation is the news.
    let d = Digest::build(
        &view(vec![f]),
        &Scope {
            until: T0 + 2.5,
            ..scope(Some(T0))
        },
    );
    assert_eq!(ids(&d.confirmed), [id(1)]);
    assert!(d.acknowledged.is_empty());
}

#[test]
fn the_first_digest_summarises_instead_of_listing_everything() {
    let mut findings: Vec<Finding> = (1..=25)
        .map(|n| {
            let sev = if n % 5 == 0 { Critical } else { Medium };
            finding(n, UnexpectedPort, sev, Confirmed)
        })
        .collect();
    findings.push(finding(30, WorldOpen, High, Open));
    findings.push(finding(31, WorldOpen, High, Resolved));
    findings.push(finding(32, Vulnerability, Low, Confirmed));
    let d = Digest::build(&view(findings), &scope(None));
    assert!(d.first && d.since.is_none());
    assert_eq!(d.confirmed_total, 26);
    assert_eq!(d.top.len(), FIRST_TOP);
    assert_eq!(d.omitted, 1, "the low vulnerability, below CVSS 7");
    assert!(
        d.top[..5].iter().all(|e| e.severity == Critical),
        "worst first"
    );
    assert!(d.confirmed.is_empty() && d.resolved.is_empty());
    let count = |kind, severity, state| {
        d.counts
            .iter()
            .find(|c| c.kind == kind && c.severity == severity && c.state == state)
            .map(|c| c.count)
    };
    assert_eq!(count(UnexpectedPort, Critical, Confirmed), Some(5));
    assert_eq!(count(UnexpectedPort, Medium, Confirmed), Some(20));
    assert_eq!(count(WorldOpen, High, Open), Some(1));
    assert_eq!(count(WorldOpen, High, Resolved), Some(1));
    assert_eq!(d.counts.len(), 5);
    assert!(!d.is_quiet());
    assert_eq!(
        d.subject(),
        "first digest: 26 confirmed findings (5 critical), 1 open"
    );
    let t = d.text(&render());
    assert!(t.contains("first digest, 2025-11-25 16:00 UTC"), "{t}");
    assert!(t.contains("FINDINGS BY KIND, SEVERITY AND STATE"), "{t}");
    assert!(
        t.contains("unexpected_port    critical          0         5         0         0"),
        "{t}"
    );
    assert!(
        t.contains("MOST SEVERE CONFIRMED FINDINGS (20 of 26)"),
        "{t}"
    );
    assert!(t.contains("1 vulnerability below CVSS 7.0 left out"), "{t}");
    assert_eq!(
        t.matches("/api/v1/findings/").count(),
        21,
        "20 + the footer: {t}"
    );
    let h = d.html(&render());
    assert!(h.contains("<td align=\"right\">5</td>"), "{h}");

    // Nothing but resolved findings: nothing to say.
    let d = Digest::build(
        &view(vec![finding(31, WorldOpen, High, Resolved)]),
        &scope(None),
    );
    assert!(d.is_quiet());
}

#[test]
fn a_project_digest_holds_only_that_projects_findings() {
    let acme = ("acme", "p-acme");
    let other = ("other", "p-other");
    let findings = vec![
        on_vm(
            with(
                finding(1, UnexpectedPort, High, Confirmed),
                &[(K::Confirmed, T0 + 1.0)],
            ),
            "i-1",
            "web-1",
            acme,
        ),
        on_vm(
            with(
                finding(2, UnexpectedPort, High, Confirmed),
                &[(K::Confirmed, T0 + 1.0)],
            ),
            "i-2",
            "db-1",
            other,
        ),
        with(
            finding(3, UnexpectedPort, High, Confirmed),
            &[(K::Confirmed, T0 + 1.0)],
        ),
    ];
    let v = view(findings);
    for key in ["acme", "p-acme"] {
        let s = Scope {
            project: Some(key.into()),
            ..scope(Some(T0))
        };
        let d = Digest::build(&v, &s);
        assert_eq!(ids(&d.confirmed), [id(1)], "{key}");
        assert_eq!(d.counts.iter().map(|c| c.count).sum::<usize>(), 1);
        let vm = d.confirmed[0].vm.as_ref().unwrap();
        assert_eq!(
            (vm.name.as_str(), vm.project.as_str(), vm.user.as_deref()),
            ("web-1", "acme", Some("alice"))
        );
        assert!(d
            .subject()
            .starts_with(&format!("project {key}: 1 new confirmed")));
        let t = d.text(&render());
        assert!(!t.contains("db-1") && !t.contains("10.0.0.3"), "{t}");
    }
    let d = Digest::build(&v, &scope(Some(T0)));
    assert_eq!(d.confirmed.len(), 3, "the admins get everything");
    let s = Scope {
        project: Some("nobody".into()),
        ..scope(None)
    };
    assert!(Digest::build(&v, &s).is_quiet());
}

#[test]
fn each_entry_names_where_what_why_and_where_to_look() {
    let mut f = on_vm(
        with(
            finding(1, Vulnerability, Critical, Confirmed),
            &[(K::Confirmed, T0 + 60.0)],
        ),
        "i-1",
        "web-1",
        ("acme", "p-acme"),
    );
    f.cve = Some("CVE-2023-38408".into());
    f.rule = "greenbone".into();
    f.evidence = "OpenSSH 9.2p1 ssh-agent remote code execution".into();
    f.port = Some(22);
    let v = view(vec![f]);
    let d = Digest::build(&v, &scope(Some(T0)));
    let t = d.text(&render());
    let want = [
        "critical  vulnerability  CVE-2023-38408 on tcp/22 on 10.0.0.1  \
         VM web-1 (i-1), project acme, user alice; group cloud",
        "    rule greenbone: OpenSSH 9.2p1 ssh-agent remote code execution",
        "    confirmed 2025-11-24 16:01 UTC, first seen 2025-11-23 16:00 UTC  /api/v1/findings/",
        "what changed since 2025-11-24 16:00 UTC",
    ];
    for w in want {
        assert!(t.contains(w), "{w:?} in:\n{t}");
    }
    let berlin = Render {
        max_lines: 200,
        tz: schedule::parse_tz("Europe/Berlin").unwrap(),
    };
    assert!(d.text(&berlin).contains("confirmed 2025-11-24 17:01 CET"));
    assert_eq!(
        d.attachment_name(&berlin.tz),
        "stinger-digest-2025-11-25.json"
    );
    let json: serde_json::Value = serde_json::from_str(&d.json()).unwrap();
    let e = &json["confirmed"][0];
    assert_eq!(e["api"], format!("/api/v1/findings/{}", id(1)));
    assert_eq!(e["vm"]["project"], "acme");
    assert_eq!(e["cve"], "CVE-2023-38408");
    assert_eq!(e["event"], "confirmed");
    assert_eq!(json["first"], false);
    assert_eq!(json["since"], T0);
    let h = d.html(&render());
    assert!(h.contains("CVE-2023-38408 on tcp/22 on 10.0.0.1"), "{h}");
}

#[test]
fn the_text_caps_sections_and_names_acks() {
    let findings: Vec<Finding> = (1..=5)
        .map(|n| {
            let mut f = with(
                finding(n, UnexpectedPort, High, Confirmed),
                &[(K::Acknowledged, T0 + f64::from(n))],
            );
            f.ack = Some(ack(T0 + f64::from(n)));
            f
        })
        .collect();
    let d = Digest::build(&view(findings), &scope(Some(T0)));
    let r = Render {
        max_lines: 3,
        tz: TimeZone::UTC,
    };
    let t = d.text(&r);
    assert!(t.contains("ACKNOWLEDGED\n"), "{t}");
    assert!(t.contains("(and 2 more, in the attachment)"), "{t}");
    assert!(
        t.contains(
            "acknowledged by alice (api) until 2025-12-01 16:00 UTC: \"accepted: lab box\"; owner bob"
        ),
        "{t}"
    );
    assert_eq!(t.matches("acknowledged by alice").count(), 3, "{t}");
    assert!(d.html(&r).contains("(and 2 more, in the attachment)"));
}

/// Names a tenant or a scanned host chooses: markup, quotes, line breaks (a header injection
/// attempt), NUL, escape sequences, a right-to-left override and 10 kB.
#[test]
fn hostile_values_are_escaped_in_html_and_cleaned_in_text() {
    let evil =
        "<script>alert(\"x\")</script>&'\r\nBcc: victim@example.org\0\x1b[31m\u{202e}gpj.exe";
    let mut f = on_vm(
        with(
            finding(1, UnexpectedPort, High, Confirmed),
            &[(K::Confirmed, T0 + 1.0)],
        ),
        "i-9",
        evil,
        (evil, "p-evil"),
    );
    f.evidence = format!("<img src=x onerror=alert(1)> {}", "x".repeat(10_000));
    f.rule = evil.into();
    f.group = evil.into();
    f.cve = Some(evil.into());
    let mut acked = on_vm(
        with(
            finding(2, UnexpectedPort, High, Confirmed),
            &[(K::Acknowledged, T0 + 2.0)],
        ),
        "i-9",
        evil,
        (evil, "p-evil"),
    );
    let mut a = ack(T0 + 2.0);
    a.by = evil.into();
    a.reason = evil.into();
    a.owner = Some(evil.into());
    acked.ack = Some(a);
    let v = view(vec![f, acked]);
    let s = Scope {
        project: Some(evil.into()),
        ..scope(Some(T0))
    };
    let d = Digest::build(&v, &s);
    assert_eq!(
        d.confirmed.len(),
        1,
        "the project matches by its (hostile) name"
    );
    assert_eq!(d.acknowledged.len(), 1);

    let h = d.html(&render());
    for raw in [
        "<script", "<img", "\"x\")", "'\r", "\r", "\0", "\x1b", "\u{202e}",
    ] {
        assert!(!h.contains(raw), "{raw:?} raw in the HTML:\n{h}");
    }
    assert!(h.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
    assert!(h.contains("&lt;img src=x onerror=alert(1)&gt;"));

    let t = d.text(&render());
    assert!(
        !t.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in the text:\n{t:?}"
    );
    assert!(!t.contains('\u{202e}'));
    assert!(
        !t.contains("\nBcc:"),
        "no line a header could be read from: {t}"
    );
    assert!(t.contains("\u{fffd}\u{fffd}Bcc: victim@example.org"), "{t}");
    assert!(
        t.len() < 8_000,
        "10 kB of evidence is cut: {} bytes",
        t.len()
    );
    let subject = d.subject();
    assert!(!subject.chars().any(char::is_control), "{subject:?}");
}
