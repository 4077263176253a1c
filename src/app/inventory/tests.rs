//! Tests of the inventory step: which VM records a full inventory writes, drift, appeared/gone
//! events, and the seam itself: a source implementing [`inventory::Source`] driven through a round.

use super::*;
use crate::inventory::scope::Origin;
use crate::inventory::{CidrGroups, Fetching, TargetGroup};
use crate::model::{AddressKind, VmAddress};
use crate::ports::PortList;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// An ACTIVE VM of `cloud` with one fixed address, for tests.
pub(crate) fn vm(id: &str, cloud: &str) -> Vm {
    Vm {
        id: id.into(),
        cloud: cloud.into(),
        name: id.into(),
        status: "ACTIVE".into(),
        project_id: "p".into(),
        project_name: None,
        user_id: "u".into(),
        user_name: None,
        metadata: Default::default(),
        flavor: None,
        created: None,
        updated: None,
        addresses: vec![VmAddress {
            address: "127.0.0.9".parse().unwrap(),
            kind: AddressKind::Fixed,
            network: "n".into(),
            port_id: None,
            security_groups: vec![],
            host: None,
            namespace: None,
        }],
        diagnostics: None,
        diagnostics_error: None,
        first_seen: 1.0,
        last_seen: 1.0,
    }
}

#[test]
fn a_full_inventory_writes_changed_vms_and_refreshes_the_rest_about_hourly() {
    let at = |id: &str, seen: f64| {
        Arc::new(Vm {
            last_seen: seen,
            ..vm(id, "c")
        })
    };
    let ids: Vec<String> = (0..200).map(|i| format!("vm-{i}")).collect();
    let prev: BTreeMap<String, Arc<Vm>> = ids
        .iter()
        .map(|id| (id.clone(), at(id, 10_000.0)))
        .collect();
    // Seen again 15 minutes later, unchanged but for one renamed and one new VM.
    let mut now: Vec<Arc<Vm>> = ids.iter().map(|id| at(id, 10_900.0)).collect();
    now[7] = Arc::new(Vm {
        name: "renamed".into(),
        ..(*now[7]).clone()
    });
    now.push(at("new", 10_900.0));
    let written: Vec<String> = to_write(now.clone(), &prev)
        .iter()
        .map(|v| v.id.clone())
        .collect();
    assert!(written.contains(&"vm-7".to_string()) && written.contains(&"new".to_string()));
    // About a quarter refreshed (15 of 60 minutes), not all 200.
    assert!(
        (20..=90).contains(&written.len()),
        "{} written",
        written.len()
    );
    // Over an hour of passes every VM is written at least once.
    let mut seen: HashSet<String> = HashSet::new();
    let mut last = prev;
    for pass in 1..=5 {
        let t = 10_000.0 + 900.0 * f64::from(pass);
        let now: Vec<Arc<Vm>> = ids.iter().map(|id| at(id, t)).collect();
        seen.extend(to_write(now.clone(), &last).iter().map(|v| v.id.clone()));
        last = now.into_iter().map(|v| (v.id.clone(), v)).collect();
    }
    assert_eq!(seen.len(), ids.len());
}

#[test]
fn drift_counts_vms_and_targets_the_polls_did_not_bring() {
    let target = |id: &str| (None, Target::address("127.0.0.9".parse().unwrap(), id));
    let with_id = |t: (Option<String>, Target), id: &str| {
        let (ns, mut t) = t;
        t.id = id.to_owned();
        (ns, t)
    };
    let kept_vms = [Arc::new(vm("a", "c")), Arc::new(vm("b", "c"))];
    let kept_targets = vec![with_id(target("c"), "a/-/127.0.0.9")];
    let same = Inventory {
        vms: kept_vms.to_vec(),
        targets: kept_targets.clone(),
    };
    assert_eq!(drift(kept_vms.iter(), &kept_targets, &same), 0);
    // a stopped, b gone, c new; a's target gone, c's new.
    let mut a = vm("a", "c");
    a.status = "SHUTOFF".into();
    let full = Inventory {
        vms: vec![Arc::new(a), Arc::new(vm("c", "c"))],
        targets: vec![with_id(target("c"), "c/-/127.0.0.9")],
    };
    assert_eq!(drift(kept_vms.iter(), &kept_targets, &full), 5);
}

#[test]
fn drift_sees_addresses_as_a_multiset() {
    let with = |ips: &[&str]| {
        let mut v = vm("a", "c");
        let template = v.addresses[0].clone();
        v.addresses = ips
            .iter()
            .map(|ip| VmAddress {
                address: ip.parse().unwrap(),
                ..template.clone()
            })
            .collect();
        Arc::new(v)
    };
    let kept = [with(&["127.0.0.9", "127.0.0.10"])];
    let inv = |v: Arc<Vm>| Inventory {
        vms: vec![v],
        targets: Vec::new(),
    };
    let reordered = inv(with(&["127.0.0.10", "127.0.0.9"]));
    assert_eq!(drift(kept.iter(), &[], &reordered), 0, "order is no drift");
    let moved = inv(with(&["127.0.0.9", "127.0.0.11"]));
    assert_eq!(drift(kept.iter(), &[], &moved), 1);
    let twice = [with(&["127.0.0.9", "127.0.0.9", "127.0.0.10"])];
    let other = inv(with(&["127.0.0.9", "127.0.0.10", "127.0.0.10"]));
    assert_eq!(drift(twice.iter(), &[], &other), 1, "as many times each");
    assert_eq!(drift(kept.iter(), &[], &inv(with(&["127.0.0.9"]))), 1);
}

#[test]
fn appeared_and_gone_only_within_the_source() {
    let before = BTreeMap::from([
        ("a".to_string(), Arc::new(vm("a", "prod"))),
        ("b".to_string(), Arc::new(vm("b", "prod"))),
        ("x".to_string(), Arc::new(vm("x", "other"))),
    ]);
    let now_vms = vec![Arc::new(vm("b", "prod")), Arc::new(vm("c", "prod"))];
    let ev = vm_events("prod", &before, &now_vms, 7, 9.0);
    let kinds: Vec<(EventKind, &str)> = ev.iter().map(|e| (e.kind, e.host.as_str())).collect();
    assert_eq!(
        kinds,
        [(EventKind::VmAppeared, "c"), (EventKind::VmGone, "a")],
        "x belongs to another source and is left alone"
    );
    assert!(ev.iter().all(|e| e.scan_id == 7 && e.group == "prod"));
    assert_eq!(ev[0].address, "127.0.0.9".parse::<IpAddr>().unwrap());
}

// === the seam ===

/// A live source held in memory: every inventory is a copy of `inventory`, or, when that is `None`,
/// a failure. Counts its inventories.
struct InMemory {
    name: &'static str,
    inventory: Mutex<Option<Inventory>>,
    fetches: AtomicUsize,
}

impl InMemory {
    fn new(name: &'static str, inventory: Inventory) -> InMemory {
        InMemory {
            name,
            inventory: Mutex::new(Some(inventory)),
            fetches: AtomicUsize::new(0),
        }
    }
}

impl Source for InMemory {
    fn name(&self) -> &str {
        self.name
    }

    fn kind(&self) -> &'static str {
        "in-memory"
    }

    fn origin(&self) -> Origin {
        Origin::Api
    }

    fn inventory<'a>(
        &'a self,
        _first_seen: &'a BTreeMap<String, UnixSeconds>,
        _cancel: &'a CancellationToken,
    ) -> Fetching<'a> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = match self.inventory.lock().unwrap().clone() {
            Some(inv) => {
                let report = Report {
                    seconds: 0.25,
                    servers: inv.vms.len(),
                    names_complete: true,
                    ..Report::default()
                };
                Ok((inv, report))
            }
            None => Err(inventory::Error::Cloud(openstack::api::Error::Config {
                cloud: self.name.into(),
                reason: "down for the test".into(),
            })),
        };
        Box::pin(std::future::ready(Some(result)))
    }

    fn units(&self, targets: &[(Option<String>, Target)]) -> Vec<Unit> {
        let ports = PortList::parse("22,443").unwrap();
        Unit::by_namespace(self.name, self.origin(), Path::new("/ns"), &ports, targets)
    }

    fn live(&self) -> bool {
        true
    }
}

/// A target of VM `vm` (in source `group`) on `address`.
fn vm_target(vm: &str, address: &str, group: &str) -> Target {
    Target {
        id: format!("{vm}/port/{address}"),
        ..Target::address(address.parse().unwrap(), group)
    }
}

fn cidr_group(name: &str, cidr: &str) -> TargetGroup {
    TargetGroup {
        name: name.into(),
        include: vec![cidr.parse().unwrap()],
        exclude: Vec::new(),
        ports: PortList::parse("80").unwrap(),
    }
}

/// (group, namespace, target ids, origin) of each unit.
fn summary(units: &[Unit]) -> Vec<(String, Option<String>, Vec<String>, Origin)> {
    units
        .iter()
        .map(|u| {
            (
                u.group.clone(),
                u.namespace.as_ref().map(|p| p.display().to_string()),
                u.targets.iter().map(|t| t.id.clone()).collect(),
                u.origin,
            )
        })
        .collect()
}

fn metrics_of(state: &Arc<State>) -> Metrics {
    crate::expose::metrics::registry(state.clone(), Arc::new(AtomicUsize::new(0))).1
}

#[tokio::test]
async fn any_source_behind_the_trait_is_scanned_and_a_live_ones_vms_reach_the_view() {
    let fake = Arc::new(InMemory::new(
        "fake",
        Inventory {
            vms: vec![Arc::new(vm("a", "fake")), Arc::new(vm("b", "fake"))],
            targets: vec![
                (None, vm_target("a", "127.0.0.9", "fake")),
                (Some("qdhcp-n".into()), vm_target("b", "10.0.0.5", "fake")),
            ],
        },
    ));
    let sources: Vec<Arc<dyn Source>> = vec![
        Arc::new(CidrGroups::new(vec![cidr_group("lan", "127.0.7.0/31")], 16)),
        fake.clone(),
    ];
    let state = Arc::new(State::default());
    let metrics = metrics_of(&state);
    let shard = Shard::default();
    let cancel = CancellationToken::new();
    let mut last_good = LastGood::new();
    let round = super::round(
        &sources,
        &shard,
        &mut last_good,
        &state,
        &metrics,
        7,
        &cancel,
    )
    .await;
    let expected = vec![
        (
            "lan".to_string(),
            None,
            vec!["127.0.7.0".to_string(), "127.0.7.1".to_string()],
            Origin::Config,
        ),
        (
            "fake".into(),
            None,
            vec!["a/port/127.0.0.9".into()],
            Origin::Api,
        ),
        (
            "fake".into(),
            Some("/ns/qdhcp-n".into()),
            vec!["b/port/10.0.0.5".into()],
            Origin::Api,
        ),
    ];
    assert_eq!(summary(&round.to_scan.units), expected);
    assert_eq!(round.to_scan.units[0].ports, PortList::parse("80").unwrap());
    assert_eq!(
        round.to_scan.units[1].ports,
        PortList::parse("22,443").unwrap()
    );
    assert!(round.to_scan.keep.is_empty() && round.to_scan.failed.is_empty());
    // The live source's VMs reach the view (and the store's batch, with "appeared" events); its
    // health is the view's. The CIDR groups have neither.
    {
        let view = state.read();
        assert_eq!(view.vms.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(view.sources.keys().collect::<Vec<_>>(), ["fake"]);
        let st = &view.sources["fake"];
        assert!(st.up && st.names_complete);
        assert_eq!((st.servers, st.targets, st.duration), (2, 2, 0.25));
    }
    assert_eq!(round.vms.len(), 2);
    let appeared: Vec<(EventKind, &str)> = round
        .events
        .iter()
        .map(|e| (e.kind, e.host.as_str()))
        .collect();
    assert_eq!(
        appeared,
        [(EventKind::VmAppeared, "a"), (EventKind::VmAppeared, "b")]
    );
    assert_eq!(last_good.keys().collect::<Vec<_>>(), ["fake"]);

    // The source fails: its last good inventory is scanned, its VMs stay, its health says so.
    *fake.inventory.lock().unwrap() = None;
    let round = super::round(
        &sources,
        &shard,
        &mut last_good,
        &state,
        &metrics,
        8,
        &cancel,
    )
    .await;
    assert_eq!(summary(&round.to_scan.units), expected);
    assert!(round.events.is_empty() && round.vms.is_empty());
    {
        let view = state.read();
        assert_eq!(view.vms.len(), 2);
        let st = &view.sources["fake"];
        assert!(!st.up);
        assert!(st.error.as_deref().unwrap().contains("down for the test"));
    }

    // A targeted pass asks no live source again; the CIDR groups are read as for every pass.
    let fetches = fake.fetches.load(Ordering::Relaxed);
    let round = cached(&sources, &last_good, &cancel).await;
    assert_eq!(summary(&round.to_scan.units), expected);
    assert_eq!(fake.fetches.load(Ordering::Relaxed), fetches);
}

#[tokio::test]
async fn a_failed_cloud_keeps_its_hosts_and_groups_that_cannot_expand_fail_the_pass() {
    let down = Arc::new(InMemory::new("down", Inventory::default()));
    *down.inventory.lock().unwrap() = None;
    // Over `max_hosts`: the groups cannot be expanded.
    let sources: Vec<Arc<dyn Source>> = vec![
        Arc::new(CidrGroups::new(vec![cidr_group("big", "127.0.8.0/30")], 2)),
        down,
    ];
    let state = Arc::new(State::default());
    let metrics = metrics_of(&state);
    let round = super::round(
        &sources,
        &Shard::default(),
        &mut LastGood::new(),
        &state,
        &metrics,
        3,
        &CancellationToken::new(),
    )
    .await;
    assert!(round.to_scan.units.is_empty());
    assert_eq!(
        round.to_scan.keep,
        HashSet::from(["down".to_string()]),
        "a cloud with no inventory yet: its hosts keep their state"
    );
    assert_eq!(round.to_scan.failed.len(), 1);
    assert!(
        round.to_scan.failed[0].contains("\"big\"")
            && round.to_scan.failed[0].contains("max_hosts"),
        "{:?}",
        round.to_scan.failed
    );
    assert_eq!(
        state.read().sources.keys().collect::<Vec<_>>(),
        ["down"],
        "the CIDR groups are no source of the view"
    );
    // The pass fails as it always did on groups that cannot be expanded.
    let config = crate::config::load(None, &Default::default()).unwrap();
    let ctx = crate::app::cycle::Context {
        fd_limit: 1024,
        nmap: None,
        progress: Default::default(),
        nmap_progress: Default::default(),
        cancel: CancellationToken::new(),
        focus: None,
    };
    let run = crate::app::cycle::new_run(&config);
    let pass =
        crate::app::cycle::discovery(&config, run, &BTreeMap::new(), round.to_scan, ctx).await;
    assert_eq!(pass.run.outcome, crate::model::Outcome::Failed);
    assert!(
        pass.run.errors.len() == 1
            && pass.run.errors[0].starts_with("inventory: target group \"big\""),
        "{:?}",
        pass.run.errors
    );
}
