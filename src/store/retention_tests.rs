//! Unit tests of retention: one call removes everything past its time (however much), events
//! leave no index entry behind, running runs are kept.
use super::tests::{ev, finding, run};
use super::*;
use crate::model::{EventKind, FindingState};

/// Every key of the per-host index.
fn index_keys(s: &Store) -> Vec<Vec<u8>> {
    let cf = s.cf(CF_EVENTS_BY_HOST).unwrap();
    s.db.iterator_cf(cf, IteratorMode::Start)
        .map(|item| item.unwrap().0.to_vec())
        .collect()
}

#[test]
fn one_prune_removes_every_expired_event_and_its_index_entry_however_many() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    // 25 000 old events (the old per-pass budget was 10 000) over 250 hosts, then 300 recent.
    let host = |i: usize| format!("127.0.{}.{}", i / 200, i % 200 + 1);
    for chunk in 0..5 {
        let events = (0..5_000)
            .map(|i| {
                let n = chunk * 5_000 + i;
                ev(
                    1_000.0 + n as f64 * 0.01,
                    &host(n % 250),
                    EventKind::PortOpened,
                )
            })
            .collect();
        s.commit(&Commit {
            events,
            ..Default::default()
        })
        .unwrap();
    }
    let recent: Vec<Event> = (0..300)
        .map(|i| ev(5_000.0 + i as f64, &host(i % 250), EventKind::PortClosed))
        .collect();
    s.commit(&Commit {
        events: recent.clone(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(index_keys(&s).len(), 25_300);

    assert_eq!(s.prune(0.0, 4_000.0).unwrap(), (0, 25_000));

    let left = s
        .events(&EventQuery {
            limit: 100_000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(left.len(), 300);
    assert!(left.iter().all(|(_, e)| e.time >= 5_000.0));
    // The index holds exactly the events left: no dangling entry.
    let index = index_keys(&s);
    assert_eq!(index.len(), 300);
    let cutoff = event_key_from(4_000.0);
    assert!(index
        .iter()
        .all(|k| k[k.len() - EVENT_KEY_LEN..] >= cutoff[..]));
    // A host's history through the index, after a reopen (the range tombstones are durable).
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    let h0 = s
        .events(&EventQuery {
            hosts: vec![host(0)],
            limit: 1_000,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(h0.len(), 2, "host 0 has recent events 0 and 250");
    assert_eq!(s.prune(0.0, 4_000.0).unwrap(), (0, 0), "nothing left to do");
}

#[test]
fn prune_steps_over_a_running_run_and_deletes_the_finished_ones_around_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    for (started, running) in [(10.0, false), (20.0, true), (30.0, false), (40.0, false)] {
        let mut r = s.begin_run(run(started)).unwrap();
        if !running {
            r.outcome = Outcome::Success;
            s.put_run(&r).unwrap();
        }
    }
    let mut queued = run(35.0);
    queued.outcome = Outcome::Queued;
    let queued = s.begin_run(queued).unwrap();
    s.begin_run(run(100.0)).unwrap();
    // Runs 1, 3 and 4 are finished and old; 2 is running and 5 queued (kept); 6 is recent.
    assert_eq!(s.prune(50.0, 0.0).unwrap(), (3, 0));
    let ids: Vec<u64> = s.scans(None, 10).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(ids, [6, queued.id, 2]);
}

#[test]
fn one_prune_removes_every_resolved_finding_past_its_time() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    // More than the old budget (10 000) resolved long ago, and a few still open or recent.
    let mut all: Vec<Finding> = (0..10_050)
        .map(|i| finding(&format!("old-{i}"), FindingState::Resolved, Some(10.0)))
        .collect();
    all.push(finding("open", FindingState::Confirmed, None));
    all.push(finding("recent", FindingState::Resolved, Some(1_000.0)));
    s.put_findings(&all).unwrap();
    let gone = s.prune_findings(500.0).unwrap();
    assert_eq!(gone.len(), 10_050);
    let mut left: Vec<String> = s.findings().unwrap().into_iter().map(|f| f.host).collect();
    left.sort();
    assert_eq!(left, ["open", "recent"]);
}
