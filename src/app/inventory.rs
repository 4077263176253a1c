//! The inventory step of a discovery run, over every source behind [`inventory::Source`]: the
//! registry ([`sources`]: the CIDR groups, each `[[openstack]]` cloud), every source inventoried
//! side by side, and what the pass scans ([`ToScan`]: units, one per group and namespace). A live
//! source (a cloud) also brings VM appeared/gone events and VM records to store, and its health
//! goes to the view (and so to /metrics); when it fails it keeps its last good inventory (in
//! memory), and with none its hosts are kept as they are and nothing of it is scanned. A static
//! source (the CIDR groups) is taken afresh for every pass; when it cannot be, the pass fails.

use crate::config::Config;
use crate::expose::metrics::Metrics;
use crate::inventory::openstack;
use crate::inventory::shard::Shard;
use crate::inventory::{self, Inventory, Report, Source, Unit};
use crate::model::{now, Event, EventKind, Stage, Target, UnixSeconds, Vm};
use crate::state::{SourceStatus, State};
use anyhow::Context;
use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The registry of inventory sources: where a pass learns what to scan, in this order (the order
/// of its units): the `[[targets]]` groups, then each `[[openstack]]` cloud. A new source is one
/// file implementing [`inventory::Source`] plus its line here. Each entry is set up on its own (a
/// cloud's session; no request yet), so one that cannot be is an error in its place ([`build`]
/// decides what that means).
pub(crate) fn sources(config: &Config) -> Vec<anyhow::Result<Arc<dyn Source>>> {
    let mut sources: Vec<anyhow::Result<Arc<dyn Source>>> = Vec::new();
    if !config.groups.is_empty() {
        let groups = inventory::CidrGroups::new(config.groups.clone(), config.max_hosts);
        sources.push(Ok(Arc::new(groups)));
    }
    sources.extend(config.openstack.iter().map(|c| {
        c.cloud.log_warnings();
        openstack::source::Source::new(c.clone())
            .map(|s| Arc::new(s) as Arc<dyn Source>)
            .with_context(|| format!("cannot set up OpenStack source {:?}", c.name))
    }));
    sources
}

/// The agent's inventory sources, as the registry builds them.
pub(crate) type Sources = Vec<Arc<dyn Source>>;

/// The registry's sources, all of them or none of the live ones: the first that cannot be set up
/// is the error, given with the static sources (which need no setting up, and follow the
/// configuration even then).
pub(crate) fn build(config: &Config) -> Result<Sources, (anyhow::Error, Sources)> {
    let mut built = Vec::new();
    let mut error = None;
    for s in sources(config) {
        match s {
            Ok(s) => built.push(s),
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        None => Ok(built),
        Some(e) => {
            built.retain(|s| !s.live());
            Err((e, built))
        }
    }
}

/// How one source's inventory went this time.
pub(crate) struct Fetched {
    pub source: Arc<dyn Source>,
    /// `None`: cancelled (or its task failed).
    pub result: Option<Result<(Inventory, Report), inventory::Error>>,
}

/// Fetch every source concurrently; one result per source, in the order of `sources`. `prev` is
/// the VMs known so far (for first-seen times).
pub(crate) async fn fetch_all(
    sources: &[Arc<dyn Source>],
    prev: &BTreeMap<String, Arc<Vm>>,
    cancel: &CancellationToken,
) -> Vec<Fetched> {
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in sources.iter().enumerate() {
        let s = s.clone();
        let first_seen: BTreeMap<String, UnixSeconds> = prev
            .iter()
            .filter(|(_, v)| s.live() && v.cloud == s.name())
            .map(|(k, v)| (k.clone(), v.first_seen))
            .collect();
        let cancel = cancel.clone();
        tasks.spawn(async move { (i, s.inventory(&first_seen, &cancel).await) });
    }
    let mut results: Vec<_> = sources.iter().map(|_| None).collect();
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok((i, result)) => results[i] = result,
            Err(e) => tracing::error!(error = %e, "an inventory task failed"),
        }
    }
    sources
        .iter()
        .zip(results)
        .map(|(source, result)| Fetched {
            source: source.clone(),
            result,
        })
        .collect()
}

/// What the inventories give a pass to scan.
#[derive(Debug, Clone, Default)]
pub struct ToScan {
    /// Every source's units, in the registry's order.
    pub units: Vec<Unit>,
    /// Groups whose inventory failed and has no last good copy: their hosts are kept as they are,
    /// never removed for "leaving the inventory".
    pub keep: HashSet<String>,
    /// Why a static source's inventory could not be taken: each fails the pass ("inventory: …").
    pub failed: Vec<String>,
}

/// What a pass scans: each live source's last good inventory (its name in `keep` when it has
/// none), each static source's fresh one (`fresh`, by position in `sources`; one that could not
/// be taken goes to `failed`).
fn to_scan(
    sources: &[Arc<dyn Source>],
    fresh: Vec<Option<Result<Inventory, inventory::Error>>>,
    last_good: &LastGood,
) -> ToScan {
    let mut out = ToScan::default();
    for (s, fresh) in sources.iter().zip(fresh) {
        if s.live() {
            match last_good.get(s.name()) {
                Some(targets) => out.units.extend(s.units(targets)),
                None => {
                    out.keep.insert(s.name().to_owned());
                }
            }
            continue;
        }
        match fresh {
            Some(Ok(inv)) => out.units.extend(s.units(&inv.targets)),
            Some(Err(e)) => out.failed.push(e.to_string()),
            None => out
                .failed
                .push(format!("{}: not taken (cancelled)", s.name())),
        }
    }
    out
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

/// The view's record of a (live) source after an attempt.
pub(crate) fn status(
    prev: Option<&SourceStatus>,
    result: &Result<(Inventory, Report), inventory::Error>,
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

/// Each live source's last good inventory: its targets, by source name (scanned when a fetch
/// fails).
pub type LastGood = BTreeMap<String, Vec<(Option<String>, Target)>>;

/// Inventory every source (side by side), publish the live ones' VMs and health to the view, and
/// say what to scan: each live source's fresh inventory, else its last good one (updated in
/// `last_good`), and each static source's. Of each live inventory only the VMs (and their
/// addresses) `shard` owns are kept: the view, the store and the metrics hold this agent's part;
/// VMs another shard owns now (after `shard.count` changed) leave the store without a "gone" event.
/// A static source's targets are cut to the shard later, with the rest, after `[scope]`.
pub(crate) async fn round(
    sources: &[Arc<dyn Source>],
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
    let mut fresh = Vec::with_capacity(fetched.len());
    let mut live = Vec::new();
    for f in fetched {
        if f.source.live() {
            fresh.push(None);
            live.push(f);
        } else {
            fresh.push(f.result.map(|r| r.map(|(inv, _)| inv)));
        }
    }
    // The live sources in name order: their events, and the view's updates.
    live.sort_by(|a, b| a.source.name().cmp(b.source.name()));
    for f in live {
        let Some(mut result) = f.result else {
            continue; // cancelled: the run stops too
        };
        let name = f.source.name();
        if let Ok((inv, report)) = &mut result {
            inv.vms.retain(|v| shard.owns(&v.id));
            inv.targets.retain(|(_, t)| shard.owns(&t.id));
            // The change polls applied what they saw to what the agent holds; a full inventory
            // that finds more tells what they missed.
            let polled = f.source.poll_interval().is_some();
            if let (true, Some(kept)) = (polled, last_good.get(name)) {
                let kept_vms = prev_mine.values().filter(|v| v.cloud == name);
                report.drift = drift(kept_vms, kept, inv);
                if report.drift > 0 {
                    tracing::warn!(source = %name, differences = report.drift, "the full inventory corrected what the change polls missed");
                }
            }
        }
        {
            let mut view = state.write();
            let st = status(view.sources.get(name), &result, t);
            view.sources.insert(name.to_owned(), st);
        }
        match result {
            Ok((inv, report)) => {
                metrics.run(Stage::Inventory, "success", report.seconds);
                // One copy of each VM, shared by the view and the store's batch.
                let vms = inv.vms;
                let before: BTreeMap<String, Arc<Vm>> = prev_vms
                    .iter()
                    .filter(|(_, v)| v.cloud == name)
                    .map(|(id, v)| (id.clone(), v.clone()))
                    .collect();
                let (events, removed) = replace_vms(state, shard, name, &before, &vms, scan_id, t);
                round.events.extend(events);
                round.removed_vms.extend(removed);
                round.vms.extend(to_write(vms, &prev_mine));
                last_good.insert(name.to_owned(), inv.targets);
            }
            Err(e) => {
                let kept = if last_good.contains_key(name) {
                    "scanning its last good inventory"
                } else {
                    "no inventory yet: its hosts keep their last state"
                };
                tracing::error!(source = %name, kind = e.kind(), error = %e, "{} inventory failed; {kept}", f.source.kind());
                metrics.run(Stage::Inventory, "failed", 0.0);
                metrics.error(Stage::Inventory, e.kind());
            }
        }
    }
    round.to_scan = to_scan(sources, fresh, last_good);
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
    full: &Inventory,
) -> u64 {
    // Compared in place, not as copies: this runs at a full inventory of a large cloud, when the
    // agent holds the most (`benches/detect.sh`).
    let kept: BTreeMap<&str, &Vm> = kept_vms.map(|v| (v.id.as_str(), &**v)).collect();
    let mut differ = 0usize;
    let mut matched = 0usize;
    for v in &full.vms {
        match kept.get(v.id.as_str()) {
            Some(k) => {
                matched += 1;
                differ += usize::from(k.status != v.status || !same_addresses(k, v));
            }
            None => differ += 1,
        }
    }
    differ += kept.len() - matched;
    let a: HashSet<&str> = kept_targets.iter().map(|(_, t)| t.id.as_str()).collect();
    let b: HashSet<&str> = full.targets.iter().map(|(_, t)| t.id.as_str()).collect();
    (differ + a.symmetric_difference(&b).count()) as u64
}

/// Whether two records of a VM list the same addresses, in any order (as many times each).
fn same_addresses(a: &Vm, b: &Vm) -> bool {
    let count = |v: &Vm, ip: IpAddr| v.addresses.iter().filter(|x| x.address == ip).count();
    a.addresses.len() == b.addresses.len()
        && a.addresses
            .iter()
            .all(|x| count(a, x.address) == count(b, x.address))
}

/// A round without asking the live sources: each one's last good inventory (a targeted pass scans
/// what the inventory already holds), and the static sources' (taken now, as for every pass).
pub(crate) async fn cached(
    sources: &[Arc<dyn Source>],
    last_good: &LastGood,
    cancel: &CancellationToken,
) -> Round {
    let mut fresh = Vec::with_capacity(sources.len());
    for s in sources {
        let taken = if s.live() {
            None
        } else {
            let r = s.inventory(&BTreeMap::new(), cancel).await;
            r.map(|r| r.map(|(inv, _)| inv))
        };
        fresh.push(taken);
    }
    Round {
        to_scan: to_scan(sources, fresh, last_good),
        ..Round::default()
    }
}

/// What the agent does with a round of inventories: scan units, events, VM records to write and
/// delete.
#[derive(Debug, Default)]
pub struct Round {
    /// Handed to the pass (taken out of the round, which goes on to the store).
    pub to_scan: ToScan,
    pub events: Vec<Event>,
    pub vms: Vec<Arc<Vm>>,
    pub removed_vms: Vec<String>,
}

#[cfg(test)]
pub(super) mod tests;
