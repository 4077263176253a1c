//! The cloud inventory step of a discovery run: every `[[openstack]]` source fetched side by side,
//! turned into scan units (one per namespace), VM appeared/gone events and the VM records to store.
//! A source that fails keeps its last good inventory (in memory); with none, its hosts are kept as
//! they are and nothing of it is scanned. Its health goes to the view (and so to /metrics).

use super::cycle::{CloudTargets, Unit};
use crate::expose::metrics::Metrics;
use crate::inventory::openstack::join::CloudInventory;
use crate::inventory::openstack::source::{FetchReport, Source};
use crate::inventory::shard::Shard;
use crate::model::{now, Event, EventKind, Stage, Target, UnixSeconds, Vm};
use crate::state::{SourceStatus, State};
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// How one source's inventory went this time.
pub struct Fetched {
    pub name: String,
    /// `None`: cancelled.
    pub result:
        Option<Result<(CloudInventory, FetchReport), crate::inventory::openstack::api::Error>>,
}

/// Fetch every source concurrently. `prev` is the VMs known so far (for first-seen times).
pub async fn fetch_all(
    sources: &[Arc<Source>],
    prev: &BTreeMap<String, Arc<Vm>>,
    cancel: &CancellationToken,
) -> Vec<Fetched> {
    let mut tasks = tokio::task::JoinSet::new();
    for s in sources {
        let s = s.clone();
        let first_seen: BTreeMap<String, UnixSeconds> = prev
            .iter()
            .filter(|(_, v)| v.cloud == s.name())
            .map(|(k, v)| (k.clone(), v.first_seen))
            .collect();
        let cancel = cancel.clone();
        tasks.spawn(async move {
            Fetched {
                name: s.name().to_owned(),
                result: s.fetch(&first_seen, &cancel).await,
            }
        });
    }
    let mut out = Vec::new();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(f) => out.push(f),
            Err(e) => tracing::error!(error = %e, "an inventory task failed"),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The scan units of one inventory's targets: its own-namespace targets, then one unit per
/// namespace.
pub fn units(source: &Source, targets: &[(Option<String>, Target)]) -> Vec<Unit> {
    let mut by_ns: BTreeMap<Option<String>, Vec<Target>> = BTreeMap::new();
    for (ns, t) in targets {
        by_ns.entry(ns.clone()).or_default().push(t.clone());
    }
    let dir = source
        .config
        .namespaces
        .clone()
        .unwrap_or_else(|| Path::new("/run/netns").to_path_buf());
    by_ns
        .into_iter()
        .map(|(ns, targets)| Unit {
            group: source.name().to_owned(),
            namespace: ns.map(|n| dir.join(n)),
            targets,
            ports: source.config.ports.clone(),
        })
        .collect()
}

/// VM appeared/gone events between the VMs a source had and has now.
pub fn vm_events(
    source: &str,
    before: &BTreeMap<String, Arc<Vm>>,
    now_vms: &[Arc<Vm>],
    scan_id: u64,
    time: UnixSeconds,
) -> Vec<Event> {
    let event = |kind: EventKind, vm: &Vm| Event {
        time,
        kind,
        host: vm.id.clone(),
        address: vm
            .addresses
            .first()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |a| a.address),
        group: source.to_owned(),
        port: None,
        protocol: None,
        verdict: None,
        rule: None,
        service: None,
        vuln: None,
        scan_id,
    };
    let ids: HashSet<&str> = now_vms.iter().map(|v| v.id.as_str()).collect();
    let mut events: Vec<Event> = now_vms
        .iter()
        .filter(|v| !before.contains_key(&v.id))
        .map(|v| event(EventKind::VmAppeared, v))
        .collect();
    events.extend(
        before
            .values()
            .filter(|v| v.cloud == source && !ids.contains(v.id.as_str()))
            .map(|v| event(EventKind::VmGone, v)),
    );
    events
}

/// Put what a source's inventory says now (`now_vms`) in the view in place of the VMs it spoke for
/// (`before`: all of the source's VMs after a full inventory, those a change poll touched after a
/// poll). Returns the VM appeared/gone events (within this agent's shard: a VM another shard owns
/// now leaves without one) and the ids of the VMs that left.
pub(super) fn replace_vms(
    state: &State,
    shard: &Shard,
    source: &str,
    before: &BTreeMap<String, Arc<Vm>>,
    now_vms: &[Arc<Vm>],
    scan_id: u64,
    t: UnixSeconds,
) -> (Vec<Event>, Vec<String>) {
    let mut mine = before.clone();
    mine.retain(|id, _| shard.owns(id));
    let events = vm_events(source, &mine, now_vms, scan_id, t);
    let ids: HashSet<&str> = now_vms.iter().map(|v| v.id.as_str()).collect();
    let removed = before
        .keys()
        .filter(|id| !ids.contains(id.as_str()))
        .cloned()
        .collect();
    let mut view = state.write();
    for id in before.keys() {
        view.vms.remove(id);
    }
    for v in now_vms {
        view.vms.insert(v.id.clone(), v.clone());
    }
    (events, removed)
}

/// The view's record of a source after an attempt.
pub fn status(
    prev: Option<&SourceStatus>,
    result: &Result<(CloudInventory, FetchReport), crate::inventory::openstack::api::Error>,
    time: UnixSeconds,
) -> SourceStatus {
    let mut s = prev.cloned().unwrap_or_default();
    s.last_attempt = Some(time);
    match result {
        Ok((inv, report)) => {
            s.up = true;
            s.last_success = Some(time);
            s.duration = report.seconds;
            s.error = None;
            s.servers = report.servers as u64;
            s.targets = inv.targets.len() as u64;
            s.diagnostics = report.diagnostics.clone();
            s.names_complete = report.names_complete;
            s.drift += report.drift;
        }
        Err(e) => {
            s.up = false;
            s.error = Some(e.to_string());
        }
    }
    s
}

/// Each source's last good inventory: its targets, by source name (scanned when a fetch fails).
pub type LastGood = BTreeMap<String, Vec<(Option<String>, Target)>>;

/// Inventory every cloud (side by side), publish VMs and source health to the view, and say what
/// to scan: each source's fresh inventory, else its last good one (updated in `last_good`). Of each
/// inventory only the VMs (and their addresses) `shard` owns are kept: the view, the store and the
/// metrics hold this agent's part; VMs another shard owns now (after `shard.count` changed) leave
/// the store without a "gone" event.
pub async fn round(
    sources: &[Arc<Source>],
    shard: &Shard,
    last_good: &mut LastGood,
    state: &State,
    metrics: &Metrics,
    scan_id: u64,
    cancel: &CancellationToken,
) -> Round {
    let mut round = Round::default();
    if sources.is_empty() {
        return round;
    }
    let prev_vms = state.read().vms.clone();
    let mut prev_mine = prev_vms.clone();
    prev_mine.retain(|id, _| shard.owns(id));
    let fetched = fetch_all(sources, &prev_vms, cancel).await;
    let t = now();
    for f in fetched {
        let Some(mut result) = f.result else {
            continue; // cancelled: the run stops too
        };
        if let Ok((inv, report)) = &mut result {
            inv.vms.retain(|v| shard.owns(&v.id));
            inv.targets.retain(|(_, t)| shard.owns(&t.id));
            // The change polls applied what they saw to what the agent holds; a full inventory
            // that finds more tells what they missed.
            let polled = sources
                .iter()
                .any(|s| s.name() == f.name && !s.config.poll_interval.is_zero());
            if let (true, Some(kept)) = (polled, last_good.get(&f.name)) {
                let kept_vms = prev_mine.values().filter(|v| v.cloud == f.name);
                report.drift = drift(kept_vms, kept, inv);
                if report.drift > 0 {
                    tracing::warn!(source = %f.name, differences = report.drift, "the full inventory corrected what the change polls missed");
                }
            }
        }
        {
            let mut view = state.write();
            let st = status(view.sources.get(&f.name), &result, t);
            view.sources.insert(f.name.clone(), st);
        }
        match result {
            Ok((inv, report)) => {
                metrics.run(Stage::Inventory, "success", report.seconds);
                // One copy of each VM, shared by the view and the store's batch.
                let vms = inv.vms;
                let before: BTreeMap<String, Arc<Vm>> = prev_vms
                    .iter()
                    .filter(|(_, v)| v.cloud == f.name)
                    .map(|(id, v)| (id.clone(), v.clone()))
                    .collect();
                let (events, removed) =
                    replace_vms(state, shard, &f.name, &before, &vms, scan_id, t);
                round.events.extend(events);
                round.removed_vms.extend(removed);
                round.vms.extend(to_write(vms, &prev_mine));
                last_good.insert(f.name.clone(), inv.targets);
            }
            Err(e) => {
                let kept = if last_good.contains_key(&f.name) {
                    "scanning its last good inventory"
                } else {
                    "no inventory yet: its hosts keep their last state"
                };
                tracing::error!(source = %f.name, kind = e.kind(), error = %e, "OpenStack inventory failed; {kept}");
                metrics.run(Stage::Inventory, "failed", 0.0);
                metrics.error(Stage::Inventory, e.kind());
            }
        }
    }
    for s in sources {
        match last_good.get(s.name()) {
            Some(targets) => round.cloud.units.extend(units(s, targets)),
            None => {
                round.cloud.keep.insert(s.name().to_owned());
            }
        }
    }
    round
}

/// How often an unchanged VM's stored record is written again (for its `last_seen`).
const VM_REFRESH_SECONDS: f64 = 3600.0;

/// The VM records a full inventory writes: those that changed (or are new), and of the unchanged
/// ones those whose stored `last_seen` is due a refresh. A full pass of a large cloud would
/// otherwise rewrite every record each time (a batch of megabytes for nothing new); this way the
/// stored `last_seen` lags by at most [`VM_REFRESH_SECONDS`], and the refreshes are spread over
/// the passes by VM id, not written all in one.
fn to_write(vms: Vec<Arc<Vm>>, prev: &BTreeMap<String, Arc<Vm>>) -> Vec<Arc<Vm>> {
    let window = |v: &Vm| {
        let offset = (crate::inventory::shard::hash(&v.id) % 3600) as f64;
        ((v.last_seen + offset) / VM_REFRESH_SECONDS).floor()
    };
    vms.into_iter()
        .filter(|v| {
            prev.get(&v.id)
                .is_none_or(|old| !old.same_facts(v) || window(old) != window(v))
        })
        .collect()
}

/// How many VMs and scanned addresses differ between what the agent holds for a cloud (its last
/// full inventory with the change polls' changes applied) and a new full inventory: in one only,
/// or a VM whose status or addresses differ.
fn drift<'a>(
    kept_vms: impl Iterator<Item = &'a Arc<Vm>>,
    kept_targets: &[(Option<String>, Target)],
    full: &CloudInventory,
) -> u64 {
    let facts = |v: &Vm| {
        let mut addresses: Vec<IpAddr> = v.addresses.iter().map(|a| a.address).collect();
        addresses.sort_unstable();
        (v.status.clone(), addresses)
    };
    let kept: BTreeMap<&str, (String, Vec<IpAddr>)> =
        kept_vms.map(|v| (v.id.as_str(), facts(v))).collect();
    let mut differ = 0usize;
    let mut matched = 0usize;
    for v in &full.vms {
        match kept.get(v.id.as_str()) {
            Some(k) => {
                matched += 1;
                differ += usize::from(*k != facts(v));
            }
            None => differ += 1,
        }
    }
    differ += kept.len() - matched;
    let a: HashSet<&str> = kept_targets.iter().map(|(_, t)| t.id.as_str()).collect();
    let b: HashSet<&str> = full.targets.iter().map(|(_, t)| t.id.as_str()).collect();
    (differ + a.symmetric_difference(&b).count()) as u64
}

/// A round without asking the clouds: each source's last good inventory (a targeted pass scans
/// what the inventory already holds).
pub fn cached(sources: &[Arc<Source>], last_good: &LastGood) -> Round {
    let mut round = Round::default();
    for s in sources {
        match last_good.get(s.name()) {
            Some(targets) => round.cloud.units.extend(units(s, targets)),
            None => {
                round.cloud.keep.insert(s.name().to_owned());
            }
        }
    }
    round
}

/// What the agent does with a round of inventories: scan units, events, VM records to write and
/// delete.
#[derive(Debug, Default)]
pub struct Round {
    pub cloud: CloudTargets,
    pub events: Vec<Event>,
    pub vms: Vec<Arc<Vm>>,
    pub removed_vms: Vec<String>,
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::model::{AddressKind, VmAddress};

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
        let same = CloudInventory {
            vms: kept_vms.to_vec(),
            targets: kept_targets.clone(),
        };
        assert_eq!(drift(kept_vms.iter(), &kept_targets, &same), 0);
        // a stopped, b gone, c new; a's target gone, c's new.
        let mut a = vm("a", "c");
        a.status = "SHUTOFF".into();
        let full = CloudInventory {
            vms: vec![Arc::new(a), Arc::new(vm("c", "c"))],
            targets: vec![with_id(target("c"), "c/-/127.0.0.9")],
        };
        assert_eq!(drift(kept_vms.iter(), &kept_targets, &full), 5);
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
}
