//! One discovery pass: inventory → scan → judge, for every target group, against the previous host
//! states. No store and no HTTP here: the agent commits what this returns, and `scan --once` prints it.

use crate::config::Config;
use crate::inventory;
use crate::judge;
use crate::model::{
    now, Event, HostObservation, HostState, OsGuess, Outcome, ProbeCounts, Protocol, ScanRun,
    ServiceInfo, Target, VulnSource, Vulnerability,
};
use crate::scan::{self, nmap, nmap_xml, Progress};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Addresses of one target group scanned together: from the agent's own network namespace, or all
/// from one other namespace (a Neutron network's `qdhcp-`, on a network node).
#[derive(Debug, Clone)]
pub struct Unit {
    pub group: String,
    /// The namespace file (`/run/netns/qdhcp-<id>`); `None`: the agent's own namespace.
    pub namespace: Option<std::path::PathBuf>,
    pub targets: Vec<Target>,
    pub ports: crate::ports::PortList,
}

/// What the cloud inventories contribute to a pass.
#[derive(Debug, Clone, Default)]
pub struct CloudTargets {
    pub units: Vec<Unit>,
    /// Groups whose inventory failed and has no last good copy: their hosts are kept as they are,
    /// never removed for "leaving the inventory".
    pub keep: HashSet<String>,
}

/// The CIDR groups as units.
fn cidr_units(config: &Config) -> Result<Vec<Unit>, inventory::Error> {
    Ok(inventory::expand(&config.groups, config.max_hosts)?
        .into_iter()
        .map(|g| Unit {
            targets: g
                .addresses
                .iter()
                .map(|a| Target::address(*a, &g.name))
                .collect(),
            group: g.name,
            namespace: None,
            ports: g.ports,
        })
        .collect())
}

/// Scan one unit: the distinct addresses once each (two VMs may share a fixed address in different
/// networks, never within one unit's namespace), from its namespace when it has one.
async fn scan_unit(
    unit: &Unit,
    settings: &scan::TcpSettings,
    fd_limit: u64,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(Vec<std::net::IpAddr>, scan::tcp::Output), scan::Error> {
    let mut addresses: Vec<std::net::IpAddr> = unit.targets.iter().map(|t| t.address).collect();
    addresses.sort();
    addresses.dedup();
    let out = match &unit.namespace {
        None => {
            scan::tcp_scan(
                &addresses,
                unit.ports.ports(),
                settings,
                fd_limit,
                progress,
                cancel,
            )
            .await?
        }
        Some(ns) => {
            scan::netns::scan_in(
                ns,
                addresses.clone(),
                unit.ports.ports().to_vec(),
                settings.clone(),
                fd_limit,
                progress,
                cancel,
            )
            .await?
        }
    };
    Ok((addresses, out))
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

/// The CVEs among vulners' entries (it also lists exploit and advisory ids), one per id.
fn cves(entries: &[nmap_xml::Vuln]) -> impl Iterator<Item = Vulnerability> + '_ {
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .filter(|v| v.id.starts_with("CVE-") || v.kind.as_deref() == Some("cve"))
        .filter(move |v| seen.insert(v.id.clone()))
        .map(|v| Vulnerability {
            id: v.id.clone(),
            cvss: v.cvss,
            source: VulnSource::NmapVulners,
            exploit: v.is_exploit,
            name: None,
            first_seen: 0.0, // the judge sets it
            last_seen: 0.0,
        })
}

/// Ask nmap what runs on every host's open ports and fold the answers into the observations.
async fn services(
    observed: &mut [(Target, HostObservation)],
    settings: &nmap::Settings,
    caps: &nmap::Capabilities,
    progress: Arc<nmap::Progress>,
    cancel: &CancellationToken,
) -> ServicesReport {
    let started = std::time::Instant::now();
    let mut report = ServicesReport {
        started: now(),
        ..Default::default()
    };
    // nmap runs in the agent's own namespace: addresses probed from another namespace keep what
    // discovery found.
    let mut seen = HashSet::new();
    let jobs: Vec<nmap::Job> = observed
        .iter()
        .filter(|(t, o)| !o.open.is_empty() && !in_namespace(t) && seen.insert(t.address))
        .map(|(t, o)| nmap::Job {
            address: t.address,
            tcp_ports: o.open.clone(),
        })
        .collect();
    report.hosts = jobs.len();
    if jobs.is_empty() {
        return report;
    }
    tracing::info!(hosts = jobs.len(), "identifying services with nmap");
    let (found, errors) = nmap::run(&jobs, settings, caps, progress, cancel.child_token()).await;
    report.errors = errors.iter().map(|e| (e.kind(), e.to_string())).collect();
    for e in &errors {
        tracing::warn!(kind = e.kind(), error = %e, "service detection incomplete");
    }
    report.covered = found.len();
    for host in found {
        for (_, obs) in observed
            .iter_mut()
            .filter(|(t, _)| t.address == host.address && !in_namespace(t))
        {
            fold_services(obs, &host);
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

fn in_namespace(t: &Target) -> bool {
    t.vm.as_ref().is_some_and(|v| v.link.namespace.is_some())
}

/// Fold nmap's answer for one host into its observation.
fn fold_services(obs: &mut HostObservation, host: &nmap::HostServices) {
    {
        obs.services_known = true;
        let service = |p: &nmap_xml::Port| {
            p.service.as_ref().map(|s| ServiceInfo {
                name: s.name.clone(),
                product: s.product.clone(),
                version: s.version.clone(),
                extrainfo: s.extrainfo.clone(),
                cpes: s.cpes.clone(),
                method: s.method.clone(),
                confidence: s.confidence,
            })
        };
        for p in &host.tcp {
            if let Some(s) = service(p) {
                obs.services.push((Protocol::Tcp, p.port, s));
            }
            obs.vulns
                .extend(cves(&p.vulns).map(|v| (Protocol::Tcp, p.port, v)));
        }
        for p in &host.udp {
            match p.state {
                nmap_xml::PortState::Open => {
                    obs.udp_open.push(p.port);
                    if let Some(s) = service(p) {
                        obs.services.push((Protocol::Udp, p.port, s));
                    }
                }
                nmap_xml::PortState::OpenFiltered => obs.udp_open_filtered.push(p.port),
                _ => {}
            }
        }
        obs.os = host
            .os
            .iter()
            .map(|m| OsGuess {
                name: m.name.clone(),
                accuracy: m.accuracy,
                cpes: m.cpes.clone(),
            })
            .collect();
    }
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
        stage: "discovery".into(),
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
}

/// Run one pass. `run` carries the id the store gave it (0 for `scan --once`). A failed or cancelled
/// pass returns no host states, so the last good state stays what is served.
pub async fn discovery(
    config: &Config,
    mut run: ScanRun,
    prev: &BTreeMap<String, HostState>,
    cloud: CloudTargets,
    ctx: Context<'_>,
) -> Pass {
    let Context {
        fd_limit,
        nmap: caps,
        progress,
        nmap_progress,
        cancel,
    } = ctx;
    let mut pass = Pass {
        run: ScanRun::clone(&run),
        hosts: Vec::new(),
        removed: Vec::new(),
        events: Vec::new(),
        groups: Vec::new(),
        services: None,
    };
    let mut groups = match cidr_units(config) {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "inventory failed; keeping the last known state");
            run.errors.push(format!("inventory: {e}"));
            run.outcome = Outcome::Failed;
            run.finished = Some(now());
            pass.run = run;
            return pass;
        }
    };
    groups.extend(cloud.units);
    run.targets = groups.iter().map(|g| g.targets.len() as u64).sum();
    run.ports = groups
        .iter()
        .map(|g| g.ports.len() as u64)
        .max()
        .unwrap_or(0);
    let mut observed: Vec<(Target, HostObservation)> = Vec::new();
    let mut hosts = Vec::new();
    let mut events = Vec::new();
    let mut in_inventory = HashSet::new();
    // Per group: targets, and whether every unit of it was scanned.
    let mut coverage: Vec<(String, u64, bool)> = Vec::new();
    for g in &groups {
        let ns = g.namespace.as_ref().map(|p| p.display().to_string());
        tracing::info!(
            group = %g.group,
            namespace = ns.as_deref().unwrap_or("-"),
            addresses = g.targets.len(),
            ports = g.ports.len(),
            "scanning target group"
        );
        let started = std::time::Instant::now();
        let result = scan_unit(g, &config.tcp, fd_limit, progress.clone(), cancel.clone()).await;
        let (addresses, out) = match result {
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
        let by_address: BTreeMap<std::net::IpAddr, HostObservation> =
            addresses.into_iter().zip(out.hosts).collect();
        for target in &g.targets {
            if let Some(obs) = by_address.get(&target.address) {
                in_inventory.insert(target.id.clone());
                observed.push((target.clone(), obs.clone()));
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
    // One line per group, however many units it had.
    for (name, n, complete) in coverage {
        match pass.groups.iter_mut().find(|(g, ..)| *g == name) {
            Some(entry) => {
                entry.1 += n;
                entry.2 &= complete;
            }
            None => pass.groups.push((name, n, complete)),
        }
    }
    if run.outcome != Outcome::Running {
        run.finished = Some(now());
        pass.run = run;
        return pass;
    }
    if let (Some(settings), Some(caps)) = (&config.nmap, caps) {
        let report = services(&mut observed, settings, caps, nmap_progress, &cancel).await;
        for (kind, e) in &report.errors {
            run.errors.push(format!("services ({kind}): {e}"));
        }
        pass.services = Some(report);
    }
    let finished = now();
    run.finished = Some(finished);
    for (target, obs) in &observed {
        let j = judge::judge_host(
            target,
            obs,
            prev.get(&target.id),
            &config.policy,
            run.id,
            finished,
        );
        events.extend(j.events);
        hosts.extend(j.state);
    }
    // Hosts no longer in any group's inventory leave the state, with a last event.
    for (id, h) in prev {
        if cloud.keep.contains(&h.group) {
            continue;
        }
        if !in_inventory.contains(id) {
            events.extend(judge::removed(h, run.id, run.finished.unwrap_or_else(now)));
            pass.removed.push(id.clone());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vulners_entries_become_one_cve_each() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/nmap/defectdojo-issue4406-vulners.xml"
        ))
        .unwrap();
        let run = nmap_xml::parse(&raw[..], &nmap_xml::Limits::default()).unwrap();
        let port = run
            .hosts
            .iter()
            .flat_map(|h| &h.ports)
            .find(|p| !p.vulns.is_empty())
            .unwrap();
        let found: Vec<Vulnerability> = cves(&port.vulns).collect();
        assert_eq!(found.len(), 8, "8 CVE entries among 42 vulners entries");
        assert!(found
            .iter()
            .all(|v| v.id.starts_with("CVE-") && v.cvss.is_some()));
        assert!(found.iter().all(|v| v.source == VulnSource::NmapVulners));
    }
}
