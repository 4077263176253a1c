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
use crate::scan::{self, nmap, Phase, Progress};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

mod focus;
pub mod reprobe;

pub use focus::Focus;

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

/// The registry of a pass's probers, in the order they run. Discovery first: TCP (the pass's
/// probe counts and RTTs), then the UDP exposure probes when `[scan.udp]` is on; then nmap's
/// service identification when `[scan.nmap]` is on and nmap can run (`nmap`: its capabilities and
/// the progress it updates). A new scanner is one file implementing [`scan::Prober`] plus its line
/// here (Greenbone, which runs on its own schedule, is registered in `app::vulns::scanner`).
pub fn probers(
    config: &Config,
    nmap: Option<(&nmap::Capabilities, Arc<nmap::Progress>)>,
) -> Vec<Arc<dyn scan::Prober>> {
    let mut probers: Vec<Arc<dyn scan::Prober>> =
        vec![Arc::new(scan::tcp::Connect(config.tcp.clone()))];
    if let Some(udp) = &config.udp {
        probers.push(Arc::new(scan::udp::Probes(udp.clone())));
    }
    if let (Some(settings), Some((caps, progress))) = (&config.nmap, nmap) {
        probers.push(Arc::new(nmap::Services::new(
            settings.clone(),
            caps.clone(),
            progress,
        )));
    }
    probers
}

/// The probers of one phase, in registry order.
fn of_phase(probers: &[Arc<dyn scan::Prober>], phase: Phase) -> Vec<Arc<dyn scan::Prober>> {
    probers
        .iter()
        .filter(|p| p.phase() == phase)
        .cloned()
        .collect()
}

/// Scan one unit: the distinct addresses once each (two VMs may share a fixed address in different
/// networks, never within one unit's namespace), from its namespace when it has one, by every
/// prober, folded into one observation per address.
async fn scan_unit(
    unit: &Unit,
    probers: &[Arc<dyn scan::Prober>],
    fd_limit: u64,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(Vec<std::net::IpAddr>, scan::tcp::Output), scan::Error> {
    let mut addresses: Vec<std::net::IpAddr> = unit.targets.iter().map(|t| t.address).collect();
    addresses.sort();
    addresses.dedup();
    let job = scan::Job {
        addresses: addresses.as_slice().into(),
        ports: unit.ports.ports().into(),
        open: Arc::from([]),
        namespace: unit.namespace.clone(),
        fd_limit,
        progress,
        cancel,
    };
    let out = scan::prober::probe_all(probers, job).await?;
    Ok((addresses, out))
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

/// The services stage (nmap) of one pass.
#[derive(Debug, Default)]
pub struct ServicesReport {
    pub started: f64,
    pub seconds: f64,
    /// Hosts nmap was asked about, and how many it answered for.
    pub hosts: usize,
    pub covered: usize,
    /// Errors by kind label (a failed batch or host; the rest of the pass goes on).
    pub errors: Vec<(&'static str, String)>,
}

/// Ask the identifying probers (nmap) what runs on every host's open ports and fold the answers
/// into the observations. Each host is asked about from the namespace discovery probed it from:
/// the agent's own, or a tenant network's; answers go back to the observations of the same
/// (namespace, address) only, each target taking what was said about its own open ports. A
/// namespace that cannot be entered costs its hosts their services (they keep what discovery
/// found) and adds one error naming it.
async fn services(
    observed: &mut [Observed],
    probers: &[Arc<dyn scan::Prober>],
    fd_limit: u64,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
) -> ServicesReport {
    let started = std::time::Instant::now();
    let mut report = ServicesReport {
        started: now(),
        ..Default::default()
    };
    // Open ports per (namespace, address): targets sharing both share one job's address.
    let mut wanted: BTreeMap<Option<Arc<Path>>, BTreeMap<IpAddr, BTreeSet<u16>>> = BTreeMap::new();
    for o in observed
        .iter()
        .filter(|o| !o.obs.open.is_empty() && !o.answers_everything)
    {
        wanted
            .entry(o.namespace.clone())
            .or_default()
            .entry(o.target.address)
            .or_default()
            .extend(&o.obs.open);
    }
    let jobs: Vec<scan::Job> = wanted
        .into_iter()
        .map(|(namespace, hosts)| {
            let (addresses, open): (Vec<IpAddr>, Vec<Vec<u16>>) = hosts
                .into_iter()
                .map(|(address, ports)| (address, ports.into_iter().collect()))
                .unzip();
            scan::Job {
                addresses: addresses.into(),
                ports: Arc::from([]),
                open: open.into(),
                namespace: namespace.map(|p| p.to_path_buf()),
                fd_limit,
                progress: progress.clone(),
                cancel: cancel.clone(),
            }
        })
        .collect();
    report.hosts = jobs.iter().map(|j| j.addresses.len()).sum();
    if report.hosts == 0 || probers.is_empty() {
        return report;
    }
    tracing::info!(
        hosts = report.hosts,
        namespaces = jobs.iter().filter(|j| j.namespace.is_some()).count(),
        probers = probers.len(),
        "identifying services"
    );
    let mut found: BTreeMap<(Option<&Path>, IpAddr), HostObservation> = BTreeMap::new();
    for prober in probers {
        let batch = prober.clone().probe_many(jobs.clone()).await;
        for e in &batch.errors {
            tracing::warn!(prober = prober.name(), kind = e.kind(), error = %e, "service detection incomplete");
            report.errors.push((e.kind(), e.to_string()));
        }
        for (job, out) in jobs.iter().zip(batch.jobs) {
            for (address, obs) in job.addresses.iter().zip(out.hosts) {
                found
                    .entry((job.namespace.as_deref(), *address))
                    .or_default()
                    .merge(obs);
            }
        }
    }
    report.covered = found.values().filter(|o| o.services_known).count();
    for o in observed.iter_mut().filter(|o| !o.answers_everything) {
        if let Some(seen) = found.get(&(o.namespace.as_deref(), o.target.address)) {
            o.obs.merge_on_open(seen);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    tracing::info!(
        hosts = report.hosts,
        identified = report.covered,
        errors = report.errors.len(),
        seconds = format!("{:.2}", report.seconds),
        "service detection finished"
    );
    report
}

/// Find out whether nmap can run (for the services stage). Missing or too old: one clear warning and
/// `None`; discovery goes on without services.
pub async fn nmap_capabilities(config: &Config) -> Option<nmap::Capabilities> {
    let settings = config.nmap.as_ref()?;
    match nmap::probe_nmap(settings).await {
        Ok(caps) => {
            tracing::info!(
                version = %caps.version,
                privileged = caps.privileged,
                "nmap found: services and versions will be identified"
            );
            Some(caps)
        }
        Err(e) => {
            tracing::warn!(error = %e, "service detection is off; discovery goes on without it");
            None
        }
    }
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
        let report = services(&mut observed, &identify, fd_limit, &progress, &cancel).await;
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

/// What scanning the units gave.
struct Scanned {
    observed: Vec<Observed>,
    /// Ids of the targets still in some group's inventory (seen now, or kept by a failed namespace).
    in_inventory: HashSet<String>,
    /// Per unit: its group, targets, and whether it was scanned.
    coverage: Vec<(String, u64, bool)>,
    reprobes: reprobe::Counts,
    /// (target id, group, scanned) of every unit's targets.
    targets: Vec<(String, String, bool)>,
}

/// Scan every unit in turn, adding probe counts and errors to `run`. A namespace that cannot be
/// entered costs its own addresses (they stay in the inventory); any other error, or a cancel,
/// stops the scan and sets `run.outcome`.
#[allow(clippy::too_many_arguments)]
async fn scan_units(
    groups: &[Unit],
    config: &Config,
    probers: &[Arc<dyn scan::Prober>],
    prev: &BTreeMap<String, HostState>,
    fd_limit: u64,
    progress: &Arc<Progress>,
    cancel: &CancellationToken,
    run: &mut ScanRun,
) -> Scanned {
    let mut observed: Vec<Observed> = Vec::new();
    let mut in_inventory = HashSet::new();
    // Per group: targets, and whether every unit of it was scanned.
    let mut coverage: Vec<(String, u64, bool)> = Vec::new();
    let mut reprobes = reprobe::Counts::default();
    let mut targets = Vec::new();
    for g in groups {
        let ns = g.namespace.as_ref().map(|p| p.display().to_string());
        tracing::info!(
            group = %g.group,
            namespace = ns.as_deref().unwrap_or("-"),
            addresses = g.targets.len(),
            ports = g.ports.len(),
            "scanning target group"
        );
        let started = std::time::Instant::now();
        let result = scan_unit(g, probers, fd_limit, progress.clone(), cancel.clone()).await;
        let (addresses, mut out) = match result {
            Ok(out) => out,
            Err(e) if !matches!(e, scan::Error::Cancelled) && g.namespace.is_some() => {
                // One namespace that cannot be entered costs its addresses, not the run: their
                // hosts keep their last state.
                tracing::warn!(group = %g.group, namespace = ns.as_deref().unwrap_or("-"), error = %e, "cannot scan from this namespace; its addresses keep their last state");
                run.errors.push(format!(
                    "group {} namespace {}: {e}",
                    g.group,
                    ns.as_deref().unwrap_or("-")
                ));
                for t in &g.targets {
                    in_inventory.insert(t.id.clone());
                    targets.push((t.id.clone(), g.group.clone(), false));
                }
                coverage.push((g.group.clone(), g.targets.len() as u64, false));
                continue;
            }
            Err(e) => {
                tracing::warn!(group = %g.group, error = %e, "scan of target group stopped");
                run.errors.push(format!("group {}: {e}", g.group));
                run.outcome = if matches!(e, scan::Error::Cancelled) {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed
                };
                coverage.push((g.group.clone(), g.targets.len() as u64, false));
                // Count what was done before the stop (the progress counters cover the whole run).
                use std::sync::atomic::Ordering::Relaxed;
                run.probes = crate::model::ProbeCounts {
                    open: progress.open.load(Relaxed),
                    closed: progress.closed.load(Relaxed),
                    filtered: progress.filtered.load(Relaxed),
                    error: progress.errors.load(Relaxed),
                };
                break;
            }
        };
        if config.findings.confirm.reprobes() {
            let counts =
                reprobe::unit(g, &addresses, &mut out, prev, &config.tcp, fd_limit, cancel).await;
            if counts != reprobe::Counts::default() {
                tracing::info!(
                    group = %g.group,
                    confirmed = counts.confirmed,
                    transient = counts.transient,
                    recovered = counts.recovered,
                    gone = counts.gone,
                    "re-probed changed ports"
                );
            }
            reprobes.add(counts);
        }
        let by_address: BTreeMap<IpAddr, HostObservation> =
            addresses.into_iter().zip(out.hosts).collect();
        let namespace: Option<Arc<Path>> = g.namespace.as_deref().map(Arc::from);
        for target in &g.targets {
            if let Some(obs) = by_address.get(&target.address) {
                in_inventory.insert(target.id.clone());
                targets.push((target.id.clone(), g.group.clone(), true));
                let answers_everything =
                    judge::tarpit::answers_everything(obs, prev.get(&target.id));
                if answers_everything {
                    tracing::debug!(target = %target.id, open = obs.open.len(), "host answers every TCP port probed: one record, no re-probes, no nmap");
                }
                observed.push(Observed {
                    target: target.clone(),
                    obs: obs.clone(),
                    namespace: namespace.clone(),
                    answers_everything,
                });
            }
        }
        run.probes.open += out.counts.open;
        run.probes.closed += out.counts.closed;
        run.probes.filtered += out.counts.filtered;
        run.probes.error += out.counts.error;
        tracing::info!(
            group = %g.group,
            seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
            open = out.counts.open,
            closed = out.counts.closed,
            filtered = out.counts.filtered,
            errors = out.counts.error,
            "target group scanned"
        );
        coverage.push((g.group.clone(), g.targets.len() as u64, true));
    }
    Scanned {
        observed,
        in_inventory,
        coverage,
        reprobes,
        targets,
    }
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
