//! Tests of the judge: verdicts and their deciding rules, the history events between two states,
//! unreachable hosts keeping their ports, services and vulnerabilities carried over, Greenbone
//! reports applied to a host, and re-judging under a new policy.

use super::*;
use crate::model::Verdict;
use crate::ports::PortMatcher;

fn target() -> Target {
    Target {
        id: "127.0.0.9".into(),
        address: "127.0.0.9".parse().unwrap(),
        group: "lo".into(),
        vm: None,
    }
}

fn policy() -> Policy {
    Policy {
        rules: vec![],
        expected: PortMatcher::parse(&["22"]).unwrap(),
        metadata_key: None,
        ..Policy::default()
    }
}

fn obs(open: &[u16]) -> HostObservation {
    HostObservation {
        open: open.to_vec(),
        closed: 10,
        ..Default::default()
    }
}

fn kinds(j: &Judged) -> Vec<(EventKind, Option<u16>)> {
    j.events.iter().map(|e| (e.kind, e.port)).collect()
}

#[test]
fn a_new_host_appears_with_its_ports_judged() {
    let j = judge_host(&target(), &obs(&[22, 6379]), None, &policy(), 1, 100.0);
    let s = j.state.as_ref().unwrap();
    assert_eq!(s.ports[0].verdict, Verdict::Expected);
    assert_eq!(s.ports[0].rule, "global");
    assert_eq!(s.ports[1].verdict, Verdict::Unexpected);
    assert_eq!(s.unexpected(), 1);
    assert_eq!(
        kinds(&j),
        [
            (EventKind::HostAppeared, None),
            (EventKind::PortOpened, Some(22)),
            (EventKind::PortOpened, Some(6379))
        ]
    );
}

#[test]
fn changes_between_scans_become_events_and_keep_since() {
    let first = judge_host(&target(), &obs(&[22, 80]), None, &policy(), 1, 100.0);
    let prev = first.state.unwrap();
    let j = judge_host(
        &target(),
        &obs(&[22, 443]),
        Some(&prev),
        &policy(),
        2,
        200.0,
    );
    assert_eq!(
        kinds(&j),
        [
            (EventKind::PortOpened, Some(443)),
            (EventKind::PortClosed, Some(80))
        ]
    );
    let s = j.state.unwrap();
    assert_eq!(
        s.ports[0].since, 100.0,
        "22 stayed open since the first scan"
    );
    assert_eq!(s.ports[1].since, 200.0);
    assert_eq!(s.first_seen, 100.0);
}

#[test]
fn silent_hosts_are_not_kept_but_known_ones_become_unreachable_keeping_their_ports() {
    let silent = HostObservation {
        filtered: 5,
        ..Default::default()
    };
    assert_eq!(
        judge_host(&target(), &silent, None, &policy(), 1, 1.0).state,
        None
    );
    let resets_only = obs(&[]);
    assert!(resets_only.is_up());
    assert_eq!(
        judge_host(&target(), &resets_only, None, &policy(), 1, 1.0).state,
        None
    );
    let prev = judge_host(&target(), &obs(&[22]), None, &policy(), 1, 1.0)
        .state
        .unwrap();
    let j = judge_host(&target(), &silent, Some(&prev), &policy(), 2, 2.0);
    // Unreachable, not closed: the ports stay (their findings go stale), none is reported
    // closed.
    assert_eq!(kinds(&j), [(EventKind::HostDisappeared, None)]);
    let s = j.state.unwrap();
    assert!(!s.up);
    assert_eq!(s.ports.len(), 1);
    assert_eq!(s.ports[0].port, 22);
    assert_eq!(s.last_seen, 1.0);
    assert_eq!(
        kinds(&Judged {
            state: None,
            events: removed(&prev, 3, 3.0)
        })
        .len(),
        2
    );
}

#[test]
fn services_attach_carry_over_and_their_changes_are_events() {
    use crate::model::ServiceInfo;
    let ssh = |v: &str| ServiceInfo {
        name: Some("ssh".into()),
        product: Some("OpenSSH".into()),
        version: Some(v.into()),
        ..Default::default()
    };
    let mut o = obs(&[22]);
    o.services_known = true;
    o.services = vec![(Protocol::Tcp, 22, ssh("9.2p1"))];
    o.udp_open = vec![53];
    o.udp_open_filtered = vec![123];
    let first = judge_host(&target(), &o, None, &policy(), 1, 1.0);
    let s = first.state.unwrap();
    assert_eq!(s.ports[0].service, Some(ssh("9.2p1")));
    assert_eq!((s.ports[1].protocol, s.ports[1].port), (Protocol::Udp, 53));
    assert_eq!(
        s.ports[1].verdict,
        Verdict::Unexpected,
        "53/udp is not in the policy"
    );
    assert_eq!(
        s.udp_open_filtered,
        [123],
        "open|filtered is kept apart, not open"
    );
    // nmap did not cover the host this time: services and UDP findings carry over.
    let plain = judge_host(&target(), &obs(&[22]), Some(&s), &policy(), 2, 2.0);
    let p = plain.state.unwrap();
    assert_eq!(p.ports[0].service, Some(ssh("9.2p1")));
    assert!(p
        .ports
        .iter()
        .any(|f| f.protocol == Protocol::Udp && f.port == 53));
    assert_eq!(p.udp_open_filtered, [123]);
    assert!(plain.events.is_empty(), "{:?}", plain.events);
    // A new version is an event.
    let mut o2 = obs(&[22]);
    o2.services_known = true;
    o2.services = vec![(Protocol::Tcp, 22, ssh("9.6p1"))];
    o2.udp_open = vec![53];
    let j = judge_host(&target(), &o2, Some(&p), &policy(), 3, 3.0);
    assert_eq!(kinds(&j), [(EventKind::ServiceChanged, Some(22))]);
    assert_eq!(j.events[0].service, Some(ssh("9.6p1")));
}

#[test]
fn vulnerabilities_found_and_remediated_are_events() {
    use crate::model::{VulnSource, Vulnerability};
    let cve = |id: &str, cvss: f64| Vulnerability {
        id: id.into(),
        cvss: Some(cvss),
        source: VulnSource::NmapVulners,
        exploit: false,
        name: None,
        first_seen: 0.0,
        last_seen: 0.0,
    };
    let mut o = obs(&[22]);
    o.services_known = true;
    o.vulns = vec![
        (Protocol::Tcp, 22, cve("CVE-2023-38408", 9.8)),
        (Protocol::Tcp, 22, cve("CVE-2021-41617", 7.0)),
    ];
    let first = judge_host(&target(), &o, None, &policy(), 1, 10.0);
    let s = first.state.unwrap();
    assert_eq!(s.max_cvss(), Some(9.8));
    assert!(s.has_vuln("cve-2021-41617"));
    assert_eq!(s.ports[0].vulns[0].first_seen, 10.0);
    let found = first
        .events
        .iter()
        .filter(|e| e.kind == EventKind::VulnFound);
    assert_eq!(found.count(), 2);
    // Patched: one CVE is gone from a port that is still open.
    let mut o2 = obs(&[22]);
    o2.services_known = true;
    o2.vulns = vec![(Protocol::Tcp, 22, cve("CVE-2021-41617", 7.0))];
    let j = judge_host(&target(), &o2, Some(&s), &policy(), 2, 20.0);
    assert_eq!(kinds(&j), [(EventKind::VulnRemediated, Some(22))]);
    assert_eq!(j.events[0].vuln.as_ref().unwrap().id, "CVE-2023-38408");
    let s2 = j.state.unwrap();
    assert_eq!(s2.ports[0].vulns[0].first_seen, 10.0, "first seen is kept");
    assert_eq!(s2.ports[0].vulns[0].last_seen, 20.0, "last seen moves");
    assert_eq!(s2.max_cvss(), Some(7.0));
    // Not rescanned by nmap this cycle: the known vulnerabilities stay.
    let j = judge_host(&target(), &obs(&[22]), Some(&s2), &policy(), 3, 30.0);
    assert!(j.events.is_empty());
    assert_eq!(j.state.unwrap().max_cvss(), Some(7.0));
}

#[test]
fn greenbone_reports_replace_their_own_findings_only() {
    use crate::model::{VulnSource, Vulnerability};
    let v = |id: &str, source: VulnSource| Vulnerability {
        id: id.into(),
        cvss: Some(7.5),
        source,
        exploit: false,
        name: None,
        first_seen: 0.0,
        last_seen: 0.0,
    };
    let mut o = obs(&[22, 443]);
    o.services_known = true;
    o.vulns = vec![(Protocol::Tcp, 22, v("CVE-1-NMAP", VulnSource::NmapVulners))];
    let s = judge_host(&target(), &o, None, &policy(), 1, 1.0)
        .state
        .unwrap();
    let gb = VulnSource::Greenbone;
    let report = vec![
        (Some((Protocol::Tcp, 443)), v("CVE-2-TLS", gb)),
        (None, v("CVE-3-GENERAL", gb)),
        // A port that is not open now: kept host-wide rather than lost.
        (Some((Protocol::Tcp, 8443)), v("CVE-4-CLOSED", gb)),
    ];
    let j = apply_report(&s, &report, 5, 10.0);
    let s2 = j.state.unwrap();
    assert_eq!(s2.ports[0].vulns.len(), 1, "nmap's stays on 22");
    assert_eq!(s2.ports[1].vulns[0].id, "CVE-2-TLS");
    let general: Vec<&str> = s2.vulns.iter().map(|v| v.id.as_str()).collect();
    assert_eq!(general, ["CVE-3-GENERAL", "CVE-4-CLOSED"]);
    assert_eq!(
        j.events
            .iter()
            .filter(|e| e.kind == EventKind::VulnFound)
            .count(),
        3
    );
    // A discovery pass keeps Greenbone's findings.
    let again = judge_host(&target(), &o, Some(&s2), &policy(), 6, 20.0);
    let s3 = again.state.unwrap();
    assert!(s3.has_vuln("CVE-2-TLS") && s3.has_vuln("CVE-3-GENERAL"));
    assert!(again.events.is_empty(), "{:?}", again.events);
    // The next complete report without CVE-2: remediated; first_seen kept for the rest.
    let j = apply_report(&s3, &report[1..], 7, 30.0);
    assert_eq!(kinds(&j), [(EventKind::VulnRemediated, Some(443))]);
    let s4 = j.state.unwrap();
    assert_eq!(s4.vulns[0].first_seen, 10.0);
    assert!(s4.has_vuln("CVE-1-NMAP"));
}

#[test]
fn rejudging_under_a_new_policy_reports_verdict_changes() {
    let prev = judge_host(&target(), &obs(&[22, 8080]), None, &policy(), 1, 1.0)
        .state
        .unwrap();
    let mut p = policy();
    p.expected = PortMatcher::parse(&["22", "8080"]).unwrap();
    let j = rejudge(&prev, &p, None, 5.0);
    assert_eq!(kinds(&j), [(EventKind::VerdictChanged, Some(8080))]);
    assert_eq!(j.state.unwrap().unexpected(), 0);
}
