//! The lifecycle: confirmation, hysteresis, stale hosts, occurrences, acknowledgements.

use super::*;
use crate::model::{
    AckSource, HostState, PortFinding, Protocol, RuleRef, Severity, UdpReply, Verdict, VmLink,
    VulnSource, Vulnerability,
};
use std::net::IpAddr;

fn port(n: u16, verdict: Verdict) -> PortFinding {
    PortFinding {
        port: n,
        protocol: Protocol::Tcp,
        verdict,
        rule: "default".into(),
        since: 0.0,
        service: None,
        vulns: Vec::new(),
        world: None,
        amplification: None,
        udp: None,
    }
}

fn host(up: bool, ports: Vec<PortFinding>) -> HostState {
    HostState {
        id: "vm1/port1/10.0.0.5".into(),
        address: IpAddr::from([10, 0, 0, 5]),
        group: "cloud".into(),
        up,
        ports,
        first_seen: 0.0,
        last_seen: 0.0,
        last_scan: 0.0,
        last_scan_id: 1,
        udp_open_filtered: Vec::new(),
        os: Vec::new(),
        vulns: Vec::new(),
        vm: Some(VmLink {
            vm_id: "vm1".into(),
            vm_name: "web".into(),
            project_id: "p1".into(),
            project_name: Some("shop".into()),
            port_id: Some("port1".into()),
            kind: crate::model::AddressKind::Fixed,
            network: "net".into(),
            namespace: None,
        }),
        exposure: None,
        answers_everything: None,
    }
}

/// Findings by id, carried from pass to pass as the agent does.
#[derive(Default)]
struct Book {
    findings: std::collections::BTreeMap<String, Finding>,
}

impl Book {
    fn pass(&mut self, h: &HostState, settings: &Settings, policy: &Policy, now: f64) -> usize {
        let prev: Vec<&Finding> = self.findings.values().collect();
        let ctx = Context {
            settings,
            policy,
            scan_id: Some(now as u64),
            now,
        };
        let changed = observe(&prev, h, Covers::All, &ctx);
        let n = changed.len();
        for f in changed {
            self.findings.insert(f.id.clone(), f);
        }
        n
    }

    fn one(&self, kind: FindingKind) -> &Finding {
        self.findings
            .values()
            .find(|f| f.kind == kind)
            .expect("finding of that kind")
    }

    fn one_key(&self, key: &str) -> &Finding {
        self.findings
            .values()
            .find(|f| f.key == key)
            .expect("finding with that key")
    }

    /// How many times the finding entered `confirmed` (what a pager would see).
    fn pages(&self, kind: FindingKind) -> usize {
        self.one(kind)
            .history
            .iter()
            .filter(|e| e.kind == FindingEventKind::Confirmed)
            .count()
    }
}

#[test]
fn an_unexpected_port_is_confirmed_at_once_after_a_reprobe_and_resolves_after_two_misses() {
    let s = Settings::default();
    let p = Policy::default();
    let mut b = Book::default();
    b.pass(
        &host(true, vec![port(8080, Verdict::Unexpected)]),
        &s,
        &p,
        10.0,
    );
    let f = b.one(FindingKind::UnexpectedPort);
    assert_eq!(f.state, FindingState::Confirmed);
    assert_eq!(f.key, "tcp/8080");
    assert_eq!(f.severity, Severity::High);
    assert_eq!(f.confirmed_at, Some(10.0));
    assert!(f.alerting());
    assert_eq!(
        f.id,
        finding_id(
            "vm1/port1/10.0.0.5",
            FindingKind::UnexpectedPort,
            "tcp/8080"
        )
    );
    // An expected port makes no finding.
    assert_eq!(b.findings.len(), 1);

    b.pass(&host(true, vec![]), &s, &p, 20.0);
    assert_eq!(
        b.one(FindingKind::UnexpectedPort).state,
        FindingState::Confirmed
    );
    assert_eq!(b.one(FindingKind::UnexpectedPort).missed, 1);
    b.pass(&host(true, vec![]), &s, &p, 30.0);
    let f = b.one(FindingKind::UnexpectedPort);
    assert_eq!(f.state, FindingState::Resolved);
    assert_eq!(f.resolved_at, Some(30.0));
    // Nothing changes once resolved while it stays away.
    assert_eq!(b.pass(&host(true, vec![]), &s, &p, 40.0), 0);
}

#[test]
fn a_listener_that_answers_every_other_pass_pages_once() {
    let s = Settings::default();
    let p = Policy::default();
    let mut b = Book::default();
    for i in 0..10 {
        let ports = if i % 2 == 0 {
            vec![port(8080, Verdict::Unexpected)]
        } else {
            vec![]
        };
        b.pass(&host(true, ports), &s, &p, 10.0 * (i + 1) as f64);
        assert_ne!(
            b.one(FindingKind::UnexpectedPort).state,
            FindingState::Resolved
        );
    }
    assert_eq!(b.pages(FindingKind::UnexpectedPort), 1);
    assert_eq!(b.one(FindingKind::UnexpectedPort).occurrence, 1);
}

#[test]
fn passes_mode_confirms_after_n_passes_in_a_row() {
    let s = Settings {
        confirm: Confirm::Passes(3),
        ..Settings::default()
    };
    let p = Policy::default();
    let mut b = Book::default();
    let h = host(true, vec![port(22, Verdict::Unexpected)]);
    b.pass(&h, &s, &p, 1.0);
    assert_eq!(b.one(FindingKind::UnexpectedPort).state, FindingState::Open);
    assert!(!b.one(FindingKind::UnexpectedPort).alerting());
    b.pass(&h, &s, &p, 2.0);
    assert_eq!(b.one(FindingKind::UnexpectedPort).state, FindingState::Open);
    b.pass(&h, &s, &p, 3.0);
    assert_eq!(
        b.one(FindingKind::UnexpectedPort).state,
        FindingState::Confirmed
    );
}

#[test]
fn a_host_that_answers_nothing_makes_its_findings_stale_not_resolved() {
    let s = Settings::default();
    let p = Policy::default();
    let mut b = Book::default();
    let ports = vec![port(8080, Verdict::Unexpected)];
    b.pass(&host(true, ports.clone()), &s, &p, 1.0);
    // The judge keeps a silent host's ports; many silent passes never resolve it.
    for t in 2..6 {
        b.pass(&host(false, ports.clone()), &s, &p, t as f64);
        let f = b.one(FindingKind::UnexpectedPort);
        assert_eq!(f.state, FindingState::Stale);
        assert_eq!(f.stale_since, Some(2.0));
        assert!(!f.alerting());
    }
    // Back, still listening: confirmed again, not a new page-worthy occurrence.
    b.pass(&host(true, ports), &s, &p, 10.0);
    let f = b.one(FindingKind::UnexpectedPort);
    assert_eq!(f.state, FindingState::Confirmed);
    assert_eq!(f.occurrence, 1);
    assert_eq!(b.pages(FindingKind::UnexpectedPort), 1);
    assert!(f
        .history
        .iter()
        .any(|e| e.kind == FindingEventKind::Reachable));
}

#[test]
fn a_resolved_finding_seen_again_is_a_new_occurrence_linked_to_the_old() {
    let s = Settings {
        resolve_after: 1,
        ..Settings::default()
    };
    let p = Policy::default();
    let mut b = Book::default();
    let open = host(true, vec![port(8080, Verdict::Unexpected)]);
    b.pass(&open, &s, &p, 1.0);
    let id = b.one(FindingKind::UnexpectedPort).id.clone();
    b.pass(&host(true, vec![]), &s, &p, 2.0);
    b.pass(&open, &s, &p, 3.0);
    let f = b.one(FindingKind::UnexpectedPort);
    assert_eq!(f.id, id, "the id is stable across occurrences");
    assert_eq!(f.occurrence, 2);
    assert_eq!(f.state, FindingState::Confirmed);
    assert_eq!(f.first_seen, 3.0);
    assert_eq!(f.previous.len(), 1);
    assert_eq!(f.previous[0].occurrence, 1);
    assert_eq!(f.previous[0].first_seen, 1.0);
    assert_eq!(f.previous[0].resolved_at, 2.0);
    assert_eq!(b.pages(FindingKind::UnexpectedPort), 2);
}

#[test]
fn world_open_unexpected_ports_are_critical_and_also_world_open_findings() {
    let s = Settings::default();
    let p = Policy::default();
    let mut b = Book::default();
    let mut x = port(3306, Verdict::Unexpected);
    x.world = Some(RuleRef {
        group_id: "g1".into(),
        group_name: "default".into(),
        rule_id: "r1".into(),
    });
    b.pass(&host(true, vec![x]), &s, &p, 1.0);
    assert_eq!(
        b.one(FindingKind::UnexpectedPort).severity,
        Severity::Critical
    );
    let w = b.one(FindingKind::WorldOpen);
    assert_eq!(w.rule, "r1");
    assert_eq!(w.severity, Severity::Medium);
}

#[test]
fn amplifiers_and_vulnerabilities_are_findings_with_their_own_keys() {
    let s = Settings::default();
    let p = Policy::default();
    let mut b = Book::default();
    let mut dns = port(53, Verdict::Expected);
    dns.protocol = Protocol::Udp;
    dns.amplification = Some(3.5);
    dns.udp = Some(UdpReply {
        service: "dns".into(),
        request: "ANY".into(),
        request_bytes: 40,
        reply_bytes: 140,
        datagrams: 1,
        recursion: Some(true),
    });
    let mut ssh = port(22, Verdict::Expected);
    ssh.vulns.push(Vulnerability {
        id: "cve-2023-38408".into(),
        cvss: Some(9.8),
        source: VulnSource::Greenbone,
        exploit: true,
        name: Some("OpenSSH agent".into()),
        first_seen: 0.0,
        last_seen: 0.0,
    });
    let mut h = host(true, vec![ssh, dns]);
    h.vm = None;
    b.pass(&h, &s, &p, 1.0);
    let a = b.one(FindingKind::Amplifier);
    assert_eq!(a.key, "udp/53");
    assert_eq!(
        a.severity,
        Severity::High,
        "no security groups say otherwise"
    );
    assert!(a.evidence.contains("open resolver"), "{}", a.evidence);
    let v = b.one(FindingKind::Vulnerability);
    assert_eq!(v.key, "CVE-2023-38408@tcp/22");
    assert_eq!(v.cve.as_deref(), Some("CVE-2023-38408"));
    assert_eq!(v.severity, Severity::Critical);
    assert_eq!(b.findings.len(), 2, "expected ports make no port finding");
}

#[test]
fn a_greenbone_report_neither_sees_nor_misses_port_findings() {
    let s = Settings::default();
    let p = Policy::default();
    let mut b = Book::default();
    b.pass(
        &host(true, vec![port(8080, Verdict::Unexpected)]),
        &s,
        &p,
        1.0,
    );
    let prev: Vec<&Finding> = b.findings.values().collect();
    let ctx = Context {
        settings: &s,
        policy: &p,
        scan_id: None,
        now: 2.0,
    };
    // The report's host state (ports unchanged here) only speaks for vulnerabilities.
    let changed = observe(&prev, &host(true, vec![]), Covers::Vulnerabilities, &ctx);
    assert!(changed.is_empty(), "{changed:?}");
}

#[test]
fn a_removed_host_resolves_its_findings() {
    let s = Settings::default();
    let p = Policy::default();
    let mut b = Book::default();
    b.pass(
        &host(true, vec![port(8080, Verdict::Unexpected)]),
        &s,
        &p,
        1.0,
    );
    let prev: Vec<&Finding> = b.findings.values().collect();
    let ctx = Context {
        settings: &s,
        policy: &p,
        scan_id: Some(2),
        now: 2.0,
    };
    let gone = host_removed(&prev, &ctx);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].state, FindingState::Resolved);
    assert!(
        gone[0].history.last().and_then(|e| e.detail.as_deref())
            == Some("the host left the inventory")
    );
}

#[test]
fn api_acks_silence_until_they_expire_or_the_finding_gets_worse() {
    let s = Settings::default();
    let p = Policy::default();
    let mut b = Book::default();
    b.pass(
        &host(true, vec![port(8080, Verdict::Unexpected)]),
        &s,
        &p,
        1.0,
    );
    let f = b.one(FindingKind::UnexpectedPort).clone();
    let acked = ack(&f, "alice", "migration until Friday", 100.0, 2.0);
    assert!(!acked.alerting());
    // Last write wins; both stay in the history.
    let acked = ack(&acked, "bob", "longer", 200.0, 3.0);
    assert_eq!(acked.ack.as_ref().map(|a| a.by.as_str()), Some("bob"));
    assert_eq!(
        acked
            .history
            .iter()
            .filter(|e| e.kind == FindingEventKind::Acknowledged)
            .count(),
        2
    );
    b.findings.insert(acked.id.clone(), acked.clone());
    assert_eq!(next_expiry(b.findings.values()), Some(200.0));
    // The agent enforces expiry.
    let ctx = Context {
        settings: &s,
        policy: &p,
        scan_id: None,
        now: 200.0,
    };
    let expired = review(&acked, &ctx).expect("expired");
    assert!(expired.alerting());
    assert_eq!(
        expired.history.last().map(|e| e.kind),
        Some(FindingEventKind::AckExpired)
    );
    // Withdrawal.
    assert!(unack(&f, "alice", 5.0).is_none(), "nothing to withdraw");
    let w = unack(&acked, "carol", 5.0).expect("had an ack");
    assert!(w.ack.is_none());
    assert_eq!(
        w.history.last().and_then(|e| e.by.as_deref()),
        Some("carol")
    );
    // Worse: the port becomes world-open (high → critical) — the ack no longer covers it.
    let mut x = port(8080, Verdict::Unexpected);
    x.world = Some(RuleRef {
        group_id: "g".into(),
        group_name: "web".into(),
        rule_id: "r".into(),
    });
    b.pass(&host(true, vec![x]), &s, &p, 10.0);
    let f = b.one(FindingKind::UnexpectedPort);
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.ack.is_none());
    assert!(f.alerting());
    assert!(f
        .history
        .iter()
        .any(|e| e.kind == FindingEventKind::AckVoided));
}

#[test]
fn configuration_exceptions_acknowledge_withdraw_and_expire() {
    use crate::judge::exceptions::{Exception, Selectors};
    let s = Settings::default();
    let exception = |expires: f64| Exception {
        name: "legacy".into(),
        reason: "CHG-1".into(),
        expires,
        owner: Some("team-a".into()),
        selectors: Selectors {
            ports: Some(8080..=8080),
            ..Selectors::default()
        },
    };
    let with = Policy {
        exceptions: vec![exception(100.0)],
        ..Policy::default()
    };
    let mut b = Book::default();
    let h = host(
        true,
        vec![
            port(8080, Verdict::Unexpected),
            port(9090, Verdict::Unexpected),
        ],
    );
    b.pass(&h, &s, &with, 1.0);
    let f = b.one_key("tcp/8080");
    let a = f.ack.as_ref().expect("acknowledged by the exception");
    assert_eq!(
        (a.source, a.by.as_str(), a.expires),
        (AckSource::Config, "legacy", 100.0)
    );
    assert_eq!(a.owner.as_deref(), Some("team-a"));
    assert!(!f.alerting());
    assert!(
        b.one_key("tcp/9090").alerting(),
        "other ports are not covered"
    );
    // The exception leaves the configuration: the ack is withdrawn at the next review.
    let without = Policy::default();
    b.pass(&h, &s, &without, 2.0);
    let f = b.one_key("tcp/8080");
    assert!(f.ack.is_none());
    assert_eq!(
        f.history.last().map(|e| e.kind),
        Some(FindingEventKind::Unacknowledged)
    );
    // An exception already past its date acknowledges nothing.
    let lapsed = Policy {
        exceptions: vec![exception(1.5)],
        ..Policy::default()
    };
    b.pass(&h, &s, &lapsed, 3.0);
    assert!(b.one_key("tcp/8080").alerting());
    // Back in force, then its date passes: the agent's review expires the ack.
    b.pass(&h, &s, &with, 4.0);
    assert!(!b.one_key("tcp/8080").alerting());
    let ctx = Context {
        settings: &s,
        policy: &with,
        scan_id: None,
        now: 100.0,
    };
    let expired = review(b.one_key("tcp/8080"), &ctx).expect("expired");
    assert!(expired.alerting());
    assert_eq!(
        expired.history.last().map(|e| e.kind),
        Some(FindingEventKind::AckExpired)
    );
}
