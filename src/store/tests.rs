//! Unit tests of the RocksDB store: commits, recovery, queries, retention.
use super::*;
use crate::model::{
    finding_id, EventKind, FindingKind, FindingState, PortFinding, ProbeCounts, Protocol, Severity,
    Stage, Verdict,
};

pub(super) fn run(started: f64) -> ScanRun {
    ScanRun {
        id: 0,
        stage: Stage::Discovery,
        started,
        finished: None,
        outcome: Outcome::Running,
        groups: vec!["g".into()],
        targets: 1,
        ports: 1,
        probes: ProbeCounts::default(),
        hosts_up: 0,
        open_ports: 0,
        unexpected_ports: 0,
        errors: vec![],
        request: None,
        trigger: Default::default(),
    }
}

pub(super) fn host(id: &str, port: u16) -> HostState {
    HostState {
        id: id.into(),
        address: id.parse().unwrap(),
        group: "g".into(),
        up: true,
        ports: vec![PortFinding {
            port,
            protocol: Protocol::Tcp,
            verdict: Verdict::Expected,
            rule: "global".into(),
            since: 1.0,
            service: None,
            vulns: vec![],
            world: None,
            amplification: None,
            udp: None,
        }],
        first_seen: 1.0,
        last_seen: 1.0,
        last_scan: 1.0,
        last_scan_id: 1,
        udp_open_filtered: vec![],
        os: vec![],
        vulns: vec![],
        vm: None,
        exposure: None,
        answers_everything: None,
    }
}

pub(super) fn ev(t: f64, host: &str, kind: EventKind) -> Event {
    Event {
        time: t,
        kind,
        host: host.into(),
        address: host.parse().unwrap(),
        group: "g".into(),
        port: Some(22),
        protocol: Some(Protocol::Tcp),
        verdict: None,
        rule: None,
        service: None,
        vuln: None,
        scan_id: 1,
    }
}

pub(super) fn finding(host: &str, state: FindingState, resolved_at: Option<f64>) -> Finding {
    Finding {
        id: finding_id(host, FindingKind::UnexpectedPort, "tcp/22"),
        kind: FindingKind::UnexpectedPort,
        key: "tcp/22".into(),
        host: host.into(),
        address: "127.0.0.1".parse().unwrap(),
        group: "g".into(),
        vm: None,
        protocol: Some(crate::model::Protocol::Tcp),
        port: Some(22),
        cve: None,
        state,
        severity: Severity::High,
        rule: "default".into(),
        evidence: "tcp/22 open".into(),
        first_seen: 1.0,
        last_seen: 1.0,
        confirmed_at: Some(1.0),
        resolved_at,
        stale_since: None,
        occurrence: 1,
        previous: Vec::new(),
        seen: 1,
        missed: 0,
        ack: None,
        trigger: Default::default(),
        detection_latency: None,
        history: Vec::new(),
    }
}

#[test]
fn commits_survive_reopen_and_runs_get_ids() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        let r1 = s.begin_run(run(10.0)).unwrap();
        let mut r2 = s.begin_run(run(20.0)).unwrap();
        assert_eq!((r1.id, r2.id), (1, 2));
        r2.outcome = Outcome::Success;
        s.commit(&Commit {
            run: Some(r2),
            hosts: vec![host("127.0.0.1", 22), host("127.0.0.2", 80)],
            removed_hosts: vec![],
            events: vec![ev(20.0, "127.0.0.1", EventKind::PortOpened)],
            ..Default::default()
        })
        .unwrap();
        s.commit(&Commit {
            removed_hosts: vec!["127.0.0.2".into()],
            ..Default::default()
        })
        .unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    let hosts = s.hosts().unwrap();
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].ports[0].port, 22);
    // Run 1 never finished: after a restart it is marked interrupted; run 2 is settled.
    assert_eq!(
        s.mark_interrupted().unwrap(),
        1,
        "older than a settled run, still found"
    );
    assert_eq!(s.scan(1).unwrap().unwrap().outcome, Outcome::Interrupted);
    let scans = s.scans(None, 10).unwrap();
    assert_eq!(scans.iter().map(|r| r.id).collect::<Vec<_>>(), [2, 1]);
    assert_eq!(s.scans(Some(2), 10).unwrap()[0].id, 1);
    assert_eq!(s.scan(2).unwrap().unwrap().outcome, Outcome::Success);
    assert!(s.scan(99).unwrap().is_none());
}

#[test]
fn the_last_digest_time_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.email_last_sent().unwrap(), None);
        s.set_email_last_sent(1_764_000_000.5).unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.email_last_sent().unwrap(), Some(1_764_000_000.5));
}

#[test]
fn an_unfinished_run_is_marked_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    s.begin_run(run(1.0)).unwrap();
    assert_eq!(s.mark_interrupted().unwrap(), 1);
    let r = s.scan(1).unwrap().unwrap();
    assert_eq!(r.outcome, Outcome::Interrupted);
    assert!(!r.errors.is_empty());
}

#[test]
fn events_filter_page_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let events = vec![
        ev(10.0, "127.0.0.1", EventKind::PortOpened),
        ev(20.0, "127.0.0.2", EventKind::PortOpened),
        ev(30.0, "127.0.0.1", EventKind::PortClosed),
    ];
    s.commit(&Commit {
        events,
        ..Default::default()
    })
    .unwrap();
    let all = |q: EventQuery| s.events(&EventQuery { limit: 100, ..q }).unwrap();
    assert_eq!(all(EventQuery::default()).len(), 3);
    let h1 = all(EventQuery {
        hosts: vec!["127.0.0.1".into()],
        ..Default::default()
    });
    assert_eq!(
        h1.iter().map(|(_, e)| e.time).collect::<Vec<_>>(),
        [10.0, 30.0]
    );
    let closed = all(EventQuery {
        kind: Some(EventKind::PortClosed),
        ..Default::default()
    });
    assert_eq!(closed.len(), 1);
    let window = all(EventQuery {
        since: Some(15.0),
        until: Some(20.0),
        ..Default::default()
    });
    assert_eq!(window.len(), 1);
    assert_eq!(window[0].1.host, "127.0.0.2");
    // Paging: one at a time, continuing after the last key.
    let first = s
        .events(&EventQuery {
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    let second = s
        .events(&EventQuery {
            limit: 1,
            after: Some(first[0].0.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(second[0].1.time, 20.0);
    // Retention removes old events from both the log and the host index.
    assert_eq!(s.prune(0.0, 25.0).unwrap(), (0, 2));
    assert_eq!(all(EventQuery::default()).len(), 1);
    assert_eq!(
        all(EventQuery {
            hosts: vec!["127.0.0.2".into()],
            ..Default::default()
        })
        .len(),
        0
    );
}

#[test]
fn a_locked_store_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _held = Store::open(dir.path()).unwrap();
    let e = Store::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("another stinger process"), "{e}");
}

#[test]
fn a_foreign_schema_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        let meta = s.cf(CF_META).unwrap();
        s.db.put_cf(meta, META_SCHEMA, "99").unwrap();
    }
    let before = DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
    let e = Store::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("schema version 99"), "{e}");
    assert_eq!(
        DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap(),
        before
    );
}

#[test]
fn a_vms_hosts_are_found_and_their_events_merged_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let at = |t: f64, host: &str, kind: EventKind| Event {
        host: host.into(),
        ..ev(t, "127.0.0.1", kind)
    };
    let events = vec![
        at(10.0, "vm-a", EventKind::VmAppeared),
        at(20.0, "vm-a/p1/10.0.0.5", EventKind::PortOpened),
        at(25.0, "vm-ab/p9/10.0.0.9", EventKind::PortOpened),
        at(30.0, "vm-a/p2/203.0.113.5", EventKind::PortOpened),
        at(40.0, "vm-a/p1/10.0.0.5", EventKind::PortClosed),
        at(50.0, "vm-a/p1/10.0.0.5", EventKind::PortOpened),
    ];
    s.commit(&Commit {
        events,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        s.hosts_under("vm-a").unwrap(),
        ["vm-a/p1/10.0.0.5", "vm-a/p2/203.0.113.5"],
        "one entry per host, and not vm-ab's"
    );
    assert!(s.hosts_under("vm-zz").unwrap().is_empty());
    let hosts = vec![
        "vm-a".to_string(),
        "vm-a/p1/10.0.0.5".into(),
        "vm-a/p2/203.0.113.5".into(),
    ];
    let times = |q: EventQuery| -> Vec<f64> {
        s.events(&q)
            .unwrap()
            .into_iter()
            .map(|(_, e)| e.time)
            .collect()
    };
    let q = EventQuery {
        hosts: hosts.clone(),
        limit: 3,
        ..Default::default()
    };
    assert_eq!(times(q.clone()), [10.0, 20.0, 30.0]);
    let newest = EventQuery {
        newest_first: true,
        ..q.clone()
    };
    assert_eq!(times(newest), [50.0, 40.0, 30.0]);
    let page1 = s.events(&q).unwrap();
    let after = page1.last().map(|(k, _)| k.clone());
    assert_eq!(times(EventQuery { after, ..q }), [40.0, 50.0]);
}

#[test]
fn findings_are_committed_with_their_scan_put_alone_and_pruned_once_resolved() {
    let dir = tempfile::tempdir().unwrap();
    let open = finding("a", FindingState::Confirmed, None);
    let old = finding("b", FindingState::Resolved, Some(10.0));
    let recent = finding("c", FindingState::Resolved, Some(1000.0));
    {
        let s = Store::open(dir.path()).unwrap();
        s.commit(&Commit {
            run: Some(run(1.0)),
            hosts: vec![host("127.0.0.1", 22)],
            findings: vec![open.clone(), old.clone()],
            ..Commit::default()
        })
        .unwrap();
        s.put_findings(std::slice::from_ref(&recent)).unwrap();
    }
    // Served after a restart.
    let s = Store::open(dir.path()).unwrap();
    let mut all = s.findings().unwrap();
    all.sort_by(|a, b| a.host.cmp(&b.host));
    assert_eq!(all, [open.clone(), old.clone(), recent.clone()]);
    // Retention removes only findings resolved before the cut.
    assert_eq!(
        s.prune_findings(500.0).unwrap(),
        std::slice::from_ref(&old.id)
    );
    let left: Vec<String> = s.findings().unwrap().into_iter().map(|f| f.host).collect();
    assert_eq!(left.len(), 2);
    assert!(!left.contains(&"b".to_string()));
}
