//! One discovery pass: inventory → scan → services → judge, for every target group, against the
//! previous host states. No store and no HTTP here: the agent commits what this returns, and
//! `scan --once` prints it. Nor any source: the pass scans the units the inventory step hands it
//! ([`ToScan`], every source's), after `[scope]` and the shard cut them.
//!
//! Every probe of a unit's addresses — the TCP connect scan, then nmap's service detection — runs
//! from the unit's network namespace: the agent's own, or on a Neutron network node the network's
//! `qdhcp-`/`qrouter-` namespace, entered by a dedicated thread ([`scan::netns::spawn_in`]). Each
//! observation remembers that namespace, and nmap's answers are matched back by (namespace,
//! address), never by address alone: two tenant networks may both use 10.0.0.5. A namespace that
//! cannot be entered costs only its own addresses (they keep their last state, or, for services,
//! what discovery found); the rest of the pass goes on.
//!
//! Layout: `probers` is the registry of the pass's scanners; `units` the discover phase (each
//! unit scanned in turn, `reprobe` confirming changed ports); `services` the identify phase; the
//! steps around them (scope and shard cuts, judging, removals) are here; `focus` narrows a
//! targeted pass.

use super::inventory::ToScan;
use crate::config::Config;
use crate::inventory::scope::{Origin, Scope};
use crate::inventory::shard::Shard;
use crate::inventory::Unit;
use crate::judge;
use crate::model::{
    now, Event, HostObservation, HostState, Outcome, ProbeCounts, ScanRun, Stage, Target,
    UnixSeconds,
};
use crate::scan::{nmap, Phase, Progress};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

mod focus;
mod probers;
pub mod reprobe;
mod services;
mod units;

pub use focus::Focus;
use probers::of_phase;
pub use probers::{nmap_capabilities, probers};
use services::services;
pub use services::ServicesReport;
use units::{scan_units, Scanned};

/// Cut the targets of the units from `origin` to `scope`; returns what was dropped per (group,
/// reason). Each dropped address is logged once per process (the first time it is seen), not on
/// every pass.
fn in_scope(scope: &Scope, units: &mut [Unit], origin: Origin) -> Vec<(String, &'static str, u64)> {
    static LOGGED: std::sync::Mutex<Option<HashSet<std::net::IpAddr>>> =
        std::sync::Mutex::new(None);
    let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for unit in units.iter_mut().filter(|u| u.origin == origin) {
        unit.targets.retain(|t| match scope.check(t.address, origin) {
            Ok(()) => true,
            Err(why) => {
                *counts
                    .entry((unit.group.clone(), why.as_str()))
                    .or_default() += 1;
                let mut logged = LOGGED.lock().unwrap_or_else(|p| p.into_inner());
                let seen = logged.get_or_insert_with(HashSet::new);
                // Bounded: past 65 536 addresses, new ones are counted but not logged.
                if seen.len() < 65_536 && seen.insert(t.address) {
                    tracing::warn!(group = %unit.group, address = %t.address, target = %t.id, reason = why.as_str(), "address outside [scope]: never probed");
                }
                false
            }
        });
    }
    counts.into_iter().map(|((g, r), n)| (g, r, n)).collect()
}

/// Keep only the targets this agent's shard owns (every address of one VM goes to one shard);
/// returns how many targets other shards own. They are never probed, stored or exported here.
fn in_shard(shard: &Shard, units: &mut [Unit]) -> u64 {
    if shard.count <= 1 {
        return 0;
    }
    let mut others = 0;
    for unit in units.iter_mut() {
        unit.targets.retain(|t| {
            let mine = shard.owns(&t.id);
            others += u64::from(!mine);
            mine
        });
    }
    others
}

/// What discovery saw on one target, and the network namespace it was probed from.
#[derive(Debug, Clone)]
struct Observed {
    target: Target,
    obs: HostObservation,
    /// The unit's namespace file; `None`: the agent's own namespace.
    namespace: Option<Arc<Path>>,
    /// The judge will record it as answering (nearly) every TCP port: nmap is not asked about it.
    answers_everything: bool,
}

/// What one pass produced.
#[derive(Debug)]
pub struct Pass {
    pub run: ScanRun,
    /// New states of every host that answered now or before (only when the pass completed).
    pub hosts: Vec<HostState>,
    /// Hosts that left the inventory (their state is removed).
    pub removed: Vec<String>,
    pub events: Vec<Event>,
    /// Per group: addresses in the inventory, and whether the group was scanned completely.
    pub groups: Vec<(String, u64, bool)>,
    /// How service detection went, when it ran.
    pub services: Option<ServicesReport>,
    /// Addresses the inventories named that `[scope]` kept out, by group and reason.
    pub out_of_scope: Vec<(String, &'static str, u64)>,
    /// What re-probing changed ports did (confirmation both ways).
    pub reprobes: reprobe::Counts,
    /// Every target in this pass's inventories: id, group, and whether it was scanned (a
    /// namespace that could not be entered leaves its targets unscanned).
    pub targets: Vec<(String, String, bool)>,
    /// Targets in scope that other shards own (`[shard]`), left to their agents.
    pub other_shards: u64,
    /// A targeted pass's [`Focus::since`] (empty for a full pass).
    pub since: BTreeMap<String, UnixSeconds>,
}

/// The skeleton of a run record before it starts.
pub fn new_run(config: &Config) -> ScanRun {
    ScanRun {
        id: 0,
        stage: Stage::Discovery,
        started: now(),
        finished: None,
        outcome: Outcome::Running,
        groups: config.groups.iter().map(|g| g.name.clone()).collect(),
        targets: 0,
        ports: 0,
        probes: ProbeCounts::default(),
        hosts_up: 0,
        open_ports: 0,
        unexpected_ports: 0,
        errors: Vec::new(),
        request: None,
        trigger: crate::model::Trigger::FullPass,
    }
}

/// What a pass runs with besides the configuration: limits, capabilities, live progress, cancellation.
pub struct Context<'a> {
    /// The process' open-file limit (sizes scan concurrency).
    pub fd_limit: u64,
    /// nmap's capabilities; `None` turns the services stage off.
    pub nmap: Option<&'a nmap::Capabilities>,
    /// Discovery's live counters.
    pub progress: Arc<Progress>,
    /// The services stage's live progress.
    pub nmap_progress: Arc<nmap::Progress>,
    pub cancel: CancellationToken,
    /// A targeted pass's targets and ports; `None`: a full pass.
    pub focus: Option<Focus>,
}

/// Run one pass. `run` carries the id the store gave it (0 for `scan --once`). A failed or cancelled
/// pass returns no host states, so the last good state stays what is served.
pub async fn discovery(
    config: &Config,
    mut run: ScanRun,
    prev: &BTreeMap<String, HostState>,
    to_scan: ToScan,
    ctx: Context<'_>,
) -> Pass {
    let Context {
        fd_limit,
        nmap: caps,
        progress,
        nmap_progress,
        cancel,
        focus,
    } = ctx;
    let mut pass = Pass {
        run: ScanRun::clone(&run),
        hosts: Vec::new(),
        removed: Vec::new(),
        events: Vec::new(),
        groups: Vec::new(),
        services: None,
        out_of_scope: Vec::new(),
        reprobes: reprobe::Counts::default(),
        targets: Vec::new(),
        other_shards: 0,
        since: focus.as_ref().map(|f| f.since.clone()).unwrap_or_default(),
    };
    crate::inventory::shard::publish(&config.shard);
    let probers = probers(config, caps.map(|caps| (caps, nmap_progress)));
    if !to_scan.failed.is_empty() {
        for e in &to_scan.failed {
            tracing::error!(error = %e, "inventory failed; keeping the last known state");
            run.errors.push(format!("inventory: {e}"));
        }
        run.outcome = Outcome::Failed;
        run.finished = Some(now());
        pass.run = run;
        return pass;
    }
    let mut groups = to_scan.units;
    // Nothing outside [scope] reaches any stage: the operator's groups, then what APIs named.
    let mut dropped = in_scope(&config.scope, &mut groups, Origin::Config);
    dropped.extend(in_scope(&config.scope, &mut groups, Origin::Api));
    pass.out_of_scope = dropped;
    // Of what is in scope, only this shard's targets go on (the whole inventory was read).
    pass.other_shards = in_shard(&config.shard, &mut groups);
    if config.shard.count > 1 {
        tracing::debug!(
            shard = config.shard.index,
            shards = config.shard.count,
            other_shards = pass.other_shards,
            "targets of other shards left to their agents"
        );
    }
    if let Some(f) = &focus {
        f.narrow(&mut groups);
    }
    run.targets = groups.iter().map(|g| g.targets.len() as u64).sum();
    run.ports = groups
        .iter()
        .map(|g| g.ports.len() as u64)
        .max()
        .unwrap_or(0);
    let Scanned {
        mut observed,
        in_inventory,
        coverage,
        reprobes,
        targets,
    } = scan_units(
        &groups,
        config,
        &of_phase(&probers, Phase::Discover),
        prev,
        fd_limit,
        &progress,
        &cancel,
        &mut run,
    )
    .await;
    pass.groups = group_coverage(coverage);
    pass.reprobes = reprobes;
    pass.targets = targets;
    if run.outcome != Outcome::Running {
        run.finished = Some(now());
        pass.run = run;
        return pass;
    }
    // Service detection, each host from the namespace discovery probed it from.
    let identify = of_phase(&probers, Phase::Identify);
    if !identify.is_empty() {
        let report = services(&mut observed, &identify, &cancel).await;
        for (kind, e) in &report.errors {
            run.errors.push(format!("services ({kind}): {e}"));
        }
        pass.services = Some(report);
    }
    let finished = now();
    run.finished = Some(finished);
    if let Some(f) = &focus {
        f.carry_over(&mut observed, prev);
    }
    let (hosts, mut events) = judge_pass(&observed, prev, &config.policy, run.id, finished);
    if focus.is_none() {
        let (removal_events, removed) = removed_hosts(
            prev,
            &config.shard,
            &to_scan.keep,
            &in_inventory,
            run.id,
            finished,
        );
        events.extend(removal_events);
        pass.removed = removed;
    } else if let Some(f) = &focus {
        // Hosts of VMs the cloud deleted (their targets are no longer in the inventory).
        for (id, h) in prev {
            if f.gone.contains(crate::inventory::shard::key(id)) {
                events.extend(judge::removed(h, run.id, finished));
                pass.removed.push(id.clone());
            }
        }
    }
    run.outcome = Outcome::Success;
    run.hosts_up = hosts.iter().filter(|h| h.up).count() as u64;
    run.open_ports = hosts.iter().map(|h| h.ports.len() as u64).sum();
    run.unexpected_ports = hosts.iter().map(|h| h.unexpected() as u64).sum();
    pass.run = run;
    pass.hosts = hosts;
    pass.events = events;
    pass
}

/// One line per group, however many units it had: targets summed, complete only if every unit was.
fn group_coverage(coverage: Vec<(String, u64, bool)>) -> Vec<(String, u64, bool)> {
    let mut groups: Vec<(String, u64, bool)> = Vec::new();
    for (name, n, complete) in coverage {
        match groups.iter_mut().find(|(g, ..)| *g == name) {
            Some(entry) => {
                entry.1 += n;
                entry.2 &= complete;
            }
            None => groups.push((name, n, complete)),
        }
    }
    groups
}

/// Judge every observation against the host's previous state: the new states and their events.
fn judge_pass(
    observed: &[Observed],
    prev: &BTreeMap<String, HostState>,
    policy: &judge::Policy,
    run_id: u64,
    finished: UnixSeconds,
) -> (Vec<HostState>, Vec<Event>) {
    let mut hosts = Vec::new();
    let mut events = Vec::new();
    for Observed { target, obs, .. } in observed {
        let j = judge::judge_host(target, obs, prev.get(&target.id), policy, run_id, finished);
        events.extend(j.events);
        hosts.extend(j.state);
    }
    (hosts, events)
}

/// Hosts no longer in any group's inventory leave the state, with a last event; hosts of groups in
/// `keep` (an inventory that failed) stay. Hosts another shard owns now (`shard.count` changed)
/// leave the state without an event: they did not leave the inventory, their new owner has them.
/// Returns the events and the removed ids.
fn removed_hosts(
    prev: &BTreeMap<String, HostState>,
    shard: &Shard,
    keep: &HashSet<String>,
    in_inventory: &HashSet<String>,
    run_id: u64,
    when: UnixSeconds,
) -> (Vec<Event>, Vec<String>) {
    let mut events = Vec::new();
    let mut removed = Vec::new();
    for (id, h) in prev {
        if !shard.owns(id) {
            removed.push(id.clone());
            continue;
        }
        if keep.contains(&h.group) {
            continue;
        }
        if !in_inventory.contains(id) {
            events.extend(judge::removed(h, run_id, when));
            removed.push(id.clone());
        }
    }
    (events, removed)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod shard_tests;
