//! Unit tests of bounded event pages: a rare kind over a long history is listed a bounded walk at
//! a time, and the pages, followed by their cursors, give exactly the unbounded listing.
use super::tests::ev;
use super::*;
use crate::model::EventKind;

/// Commit `n` events of `host`, one a second from `t0`, of kind `PortOpened` except at the
/// positions in `closed`.
fn history(s: &Store, host: &str, t0: f64, n: usize, closed: &[usize]) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let events = chunk
            .iter()
            .map(|&i| {
                let kind = match closed.contains(&i) {
                    true => EventKind::PortClosed,
                    false => EventKind::PortOpened,
                };
                Event {
                    host: host.into(),
                    ..ev(t0 + i as f64, "127.0.0.1", kind)
                }
            })
            .collect();
        s.commit(&Commit {
            events,
            ..Default::default()
        })
        .unwrap();
    }
}

/// Follow `q`'s pages to the end: every page's events, and how many pages it took.
fn all_pages(s: &Store, mut q: EventQuery) -> (Vec<(Vec<u8>, Event)>, usize) {
    let (mut all, mut pages) = (Vec::new(), 0);
    loop {
        let page = s.events_page(&q).unwrap();
        pages += 1;
        all.extend(page.events);
        match page.next {
            Some(next) => q.after = Some(next),
            None => return (all, pages),
        }
        assert!(pages < 100, "no end to the pages");
    }
}

fn times(events: &[(Vec<u8>, Event)]) -> Vec<f64> {
    events.iter().map(|(_, e)| e.time).collect()
}

#[test]
fn a_rare_kind_is_listed_a_bounded_walk_at_a_time_and_nothing_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let n = MAX_EXAMINED + 20_000;
    history(&s, "a", 0.0, n, &[5, MAX_EXAMINED + 7, n - 1]);
    let q = EventQuery {
        kind: Some(EventKind::PortClosed),
        limit: 10,
        ..Default::default()
    };
    let first = s.events_page(&q).unwrap();
    assert_eq!(times(&first.events), [5.0], "stopped at the bound");
    let next = first.next.clone().expect("a cursor to continue");
    // The last record examined: the bound's worth in, committed 10 000 to a batch.
    let last = MAX_EXAMINED - 1;
    assert_eq!(
        next,
        event_key(last as f64, 1, (last % 10_000) as u32).to_vec()
    );
    let (all, pages) = all_pages(&s, q.clone());
    assert_eq!(pages, 2);
    assert_eq!(times(&all), times(&s.events(&q).unwrap()));
    assert_eq!(
        times(&all),
        [5.0, (MAX_EXAMINED + 7) as f64, (n - 1) as f64]
    );
}

#[test]
fn merged_hosts_end_a_page_where_the_host_cut_short_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    // Host a: a long history of openings and one closing late; host b: one closing, after the
    // point where a's share of the budget (half of it) runs out.
    let n = MAX_EXAMINED;
    history(&s, "a", 0.0, n, &[n - 10]);
    history(&s, "b", (n / 2 + 100) as f64 + 0.5, 1, &[0]);
    let q = EventQuery {
        hosts: vec!["a".into(), "b".into()],
        kind: Some(EventKind::PortClosed),
        limit: 10,
        ..Default::default()
    };
    let first = s.events_page(&q).unwrap();
    assert!(
        first.events.is_empty(),
        "b's closing lies past where a stopped: {:?}",
        times(&first.events)
    );
    assert!(first.next.is_some());
    let (all, _) = all_pages(&s, q.clone());
    let expected = [(n / 2 + 100) as f64 + 0.5, (n - 10) as f64];
    assert_eq!(times(&all), expected);
    assert_eq!(times(&s.events(&q).unwrap()), expected);
}
