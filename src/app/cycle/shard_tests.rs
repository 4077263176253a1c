//! Sharding in a pass: each shard keeps its own targets, and hosts another shard owns now leave
//! the state without an event.

use super::*;

fn shard(index: u32, count: u32) -> Shard {
    Shard {
        index,
        count,
        peers: Vec::new(),
    }
}

fn host(id: &str) -> HostState {
    HostState {
        id: id.into(),
        address: "127.0.0.1".parse().unwrap(),
        group: "g".into(),
        up: true,
        ports: Vec::new(),
        first_seen: 0.0,
        last_seen: 0.0,
        last_scan: 0.0,
        last_scan_id: 1,
        udp_open_filtered: Vec::new(),
        os: Vec::new(),
        vulns: Vec::new(),
        vm: None,
        exposure: None,
        answers_everything: None,
    }
}

fn units(ids: &[String]) -> Vec<Unit> {
    vec![Unit {
        group: "g".into(),
        namespace: None,
        targets: ids
            .iter()
            .map(|id| Target {
                id: id.clone(),
                ..Target::address("127.0.0.1".parse().unwrap(), "g")
            })
            .collect(),
        ports: crate::ports::PortList::parse("22").unwrap(),
        origin: Origin::Config,
    }]
}

#[test]
fn each_shard_keeps_its_own_targets_and_together_all() {
    let ids: Vec<String> = (0..300)
        .map(|i| format!("127.0.{}.{}", i / 250, i % 250 + 1))
        .chain((0..30).map(|i| format!("vm-{i}/port-a/127.1.0.{i}")))
        .chain((0..30).map(|i| format!("vm-{i}/port-b/127.2.0.{i}")))
        .collect();
    let mut seen = Vec::new();
    for index in 0..3 {
        let mut u = units(&ids);
        let others = in_shard(&shard(index, 3), &mut u);
        assert_eq!(others as usize + u[0].targets.len(), ids.len());
        assert!(!u[0].targets.is_empty());
        seen.extend(u[0].targets.iter().map(|t| t.id.clone()));
    }
    seen.sort();
    let mut all = ids.clone();
    all.sort();
    assert_eq!(seen, all, "every target scanned by exactly one shard");
    let mut u = units(&ids);
    assert_eq!(in_shard(&shard(0, 1), &mut u), 0);
    assert_eq!(u[0].targets.len(), ids.len());
}

#[test]
fn hosts_of_other_shards_leave_without_an_event() {
    let me = shard(0, 2);
    let id = |owner: u32| {
        (0..)
            .map(|i| format!("127.0.0.{i}"))
            .find(|id| me.owner_of(id) == owner)
            .unwrap()
    };
    let mine_kept = id(0);
    let mine_gone = (0..)
        .map(|i| format!("127.0.1.{i}"))
        .find(|x| me.owns(x))
        .unwrap();
    let theirs = id(1);
    let prev: BTreeMap<String, HostState> = [&mine_kept, &mine_gone, &theirs]
        .iter()
        .map(|id| ((*id).clone(), host(id)))
        .collect();
    let in_inventory: HashSet<String> = [mine_kept.clone(), theirs.clone()].into();
    let (events, mut removed) = removed_hosts(&prev, &me, &HashSet::new(), &in_inventory, 2, 10.0);
    removed.sort();
    let mut want = vec![mine_gone.clone(), theirs.clone()];
    want.sort();
    assert_eq!(removed, want);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].host, mine_gone);
}
