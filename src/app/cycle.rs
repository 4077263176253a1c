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
    let jobs: Vec<nmap::Job> = observed
        .iter()
        .filter(|(_, o)| !o.open.is_empty())
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
        let Some((_, obs)) = observed.iter_mut().find(|(t, _)| t.address == host.address) else {
            continue;
        };
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
    let groups = match inventory::expand(&config.groups, config.max_hosts) {
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
    run.targets = groups.iter().map(|g| g.addresses.len() as u64).sum();
    run.ports = groups
        .iter()
        .map(|g| g.ports.len() as u64)
        .max()
        .unwrap_or(0);
    let mut observed: Vec<(Target, HostObservation)> = Vec::new();
    let mut hosts = Vec::new();
    let mut events = Vec::new();
    let mut in_inventory = HashSet::new();
    for g in &groups {
        tracing::info!(
            group = %g.name,
            addresses = g.addresses.len(),
            ports = g.ports.len(),
            "scanning target group"
        );
        let started = std::time::Instant::now();
        let result = scan::tcp_scan(
            &g.addresses,
            g.ports.ports(),
            &config.tcp,
            fd_limit,
            progress.clone(),
            cancel.clone(),
        )
        .await;
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(group = %g.name, error = %e, "scan of target group stopped");
                run.errors.push(format!("group {}: {e}", g.name));
                run.outcome = if matches!(e, scan::Error::Cancelled) {
                    Outcome::Cancelled
                } else {
                    Outcome::Failed
                };
                pass.groups
                    .push((g.name.clone(), g.addresses.len() as u64, false));
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
        for (addr, obs) in g.addresses.iter().zip(out.hosts) {
            let target = Target::address(*addr, &g.name);
            in_inventory.insert(target.id.clone());
            observed.push((target, obs));
        }
        run.probes.open += out.counts.open;
        run.probes.closed += out.counts.closed;
        run.probes.filtered += out.counts.filtered;
        run.probes.error += out.counts.error;
        tracing::info!(
            group = %g.name,
            seconds = format!("{:.2}", started.elapsed().as_secs_f64()),
            open = out.counts.open,
            closed = out.counts.closed,
            filtered = out.counts.filtered,
            errors = out.counts.error,
            "target group scanned"
        );
        pass.groups
            .push((g.name.clone(), g.addresses.len() as u64, true));
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
