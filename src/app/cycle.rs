//! One discovery pass: inventory → scan → services → judge, for every target group, against the
//! previous host states. No store and no HTTP here: the agent commits what this returns, and
//! `scan --once` prints it.
//!
//! Every probe of a unit's addresses — the TCP connect scan, then nmap's service detection — runs
//! from the unit's network namespace: the agent's own, or on a Neutron network node the network's
//! `qdhcp-`/`qrouter-` namespace, entered by a dedicated thread ([`scan::netns::spawn_in`]). Each
//! observation remembers that namespace, and nmap's answers are matched back by (namespace,
//! address), never by address alone: two tenant networks may both use 10.0.0.5. A namespace that
//! cannot be entered costs only its own addresses (they keep their last state, or, for services,
//! what discovery found); the rest of the pass goes on.

use crate::config::Config;
use crate::inventory;
use crate::inventory::scope::{Origin, Scope};
use crate::judge;
use crate::model::{
    now, Event, HostObservation, HostState, OsGuess, Outcome, ProbeCounts, Protocol, ScanRun,
    ServiceInfo, Stage, Target, VulnSource, Vulnerability,
};
use crate::scan::{self, nmap, nmap_xml, Progress};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::Path;
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

/// Cut the units' targets to `scope`; returns what was dropped per (group, reason). Each dropped
/// address is logged once per process (the first time it is seen), not on every pass.
fn in_scope(scope: &Scope, units: &mut [Unit], origin: Origin) -> Vec<(String, &'static str, u64)> {
    static LOGGED: std::sync::Mutex<Option<HashSet<std::net::IpAddr>>> =
        std::sync::Mutex::new(None);
    let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for unit in units.iter_mut() {
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

/// Scan one unit: the distinct addresses once each (two VMs may share a fixed address in different
/// networks, never within one unit's namespace), from its namespace when it has one: TCP, then the
/// UDP probes (when on) of every address, folded into the same observations.
async fn scan_unit(
    unit: &Unit,
    config: &Config,
    fd_limit: u64,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<(Vec<std::net::IpAddr>, scan::tcp::Output), scan::Error> {
    let (addresses, mut out) = tcp_unit(
        unit,
        &config.tcp,
        fd_limit,
        progress.clone(),
        cancel.clone(),
    )
    .await?;
    if let Some(settings) = &config.udp {
        let udp = match &unit.namespace {
            None => scan::udp::scan(&addresses, settings, fd_limit, progress, cancel).await?,
            Some(ns) => {
                scan::udp::scan_in(
                    ns,
                    addresses.clone(),
                    settings.clone(),
                    fd_limit,
                    progress,
                    cancel,
                )
                .await?
            }
        };
        for (host, obs) in udp.hosts.iter().zip(out.hosts.iter_mut()) {
            host.observe(obs);
        }
        tracing::debug!(
            group = %unit.group,
            open = udp.counts.open,
            closed = udp.counts.closed,
            unknown = udp.counts.unknown,
            errors = udp.counts.error,
            "UDP probes done"
        );
    }
    Ok((addresses, out))
}

/// The TCP connect scan of one unit.
async fn tcp_unit(
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

/// What discovery saw on one target, and the network namespace it was probed from.
#[derive(Debug, Clone)]
struct Observed {
    target: Target,
    obs: HostObservation,
    /// The unit's namespace file; `None`: the agent's own namespace.
    namespace: Option<Arc<Path>>,
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
/// nmap probes each host from the namespace discovery probed it from: the agent's own, or a
/// tenant network's (its batches run nmap from a thread inside it); answers go back to the
/// observations of the same (namespace, address) only. A namespace nmap cannot enter costs its
/// hosts their services (they keep what discovery found) and adds one error naming it.
async fn services(
    observed: &mut [Observed],
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
    // Open ports per (namespace, address): targets sharing both share one nmap job.
    let mut wanted: BTreeMap<Option<Arc<Path>>, BTreeMap<IpAddr, BTreeSet<u16>>> = BTreeMap::new();
    for o in observed.iter().filter(|o| !o.obs.open.is_empty()) {
        wanted
            .entry(o.namespace.clone())
            .or_default()
            .entry(o.target.address)
            .or_default()
            .extend(&o.obs.open);
    }
    let jobs: Vec<(Option<Arc<Path>>, Vec<nmap::Job>)> = wanted
        .into_iter()
        .map(|(ns, hosts)| {
            let jobs = hosts
                .into_iter()
                .map(|(address, ports)| nmap::Job {
                    address,
                    tcp_ports: ports.into_iter().collect(),
                })
                .collect();
            (ns, jobs)
        })
        .collect();
    report.hosts = jobs.iter().map(|(_, j)| j.len()).sum();
    if report.hosts == 0 {
        return report;
    }
    let scopes: Vec<nmap::Scope<'_>> = jobs
        .iter()
        .map(|(ns, jobs)| nmap::Scope {
            namespace: ns.as_deref(),
            jobs,
        })
        .collect();
    tracing::info!(
        hosts = report.hosts,
        namespaces = scopes.iter().filter(|s| s.namespace.is_some()).count(),
        "identifying services with nmap"
    );
    let (found, errors) =
        nmap::run_scoped(&scopes, settings, caps, progress, cancel.child_token()).await;
    report.errors = errors.iter().map(|e| (e.kind(), e.to_string())).collect();
    for e in &errors {
        tracing::warn!(kind = e.kind(), error = %e, "service detection incomplete");
    }
    report.covered = found.iter().map(Vec::len).sum();
    let by_host: BTreeMap<(Option<&Path>, IpAddr), &nmap::HostServices> = scopes
        .iter()
        .zip(&found)
        .flat_map(|(scope, hosts)| hosts.iter().map(|h| ((scope.namespace, h.address), h)))
        .collect();
    for o in observed.iter_mut() {
        if let Some(host) = by_host.get(&(o.namespace.as_deref(), o.target.address)) {
            fold_services(&mut o.obs, host);
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

/// Fold nmap's answer for one host into its observation: TCP services and CVEs of the ports this
/// observation has open (another target with the same address may have asked about more).
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
            if obs.open.binary_search(&p.port).is_err() {
                continue;
            }
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
        out_of_scope: Vec::new(),
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
    // Nothing outside [scope] reaches any stage: the operator's groups, then what clouds named.
    let mut dropped = in_scope(&config.scope, &mut groups, Origin::Config);
    let mut cloud_units = cloud.units;
    dropped.extend(in_scope(&config.scope, &mut cloud_units, Origin::Api));
    groups.extend(cloud_units);
    pass.out_of_scope = dropped;
    run.targets = groups.iter().map(|g| g.targets.len() as u64).sum();
    run.ports = groups
        .iter()
        .map(|g| g.ports.len() as u64)
        .max()
        .unwrap_or(0);
    let mut observed: Vec<Observed> = Vec::new();
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
        let result = scan_unit(g, config, fd_limit, progress.clone(), cancel.clone()).await;
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
        let by_address: BTreeMap<IpAddr, HostObservation> =
            addresses.into_iter().zip(out.hosts).collect();
        let namespace: Option<Arc<Path>> = g.namespace.as_deref().map(Arc::from);
        for target in &g.targets {
            if let Some(obs) = by_address.get(&target.address) {
                in_inventory.insert(target.id.clone());
                observed.push(Observed {
                    target: target.clone(),
                    obs: obs.clone(),
                    namespace: namespace.clone(),
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
    // Service detection, each host from the namespace discovery probed it from.
    if let (Some(settings), Some(caps)) = (&config.nmap, caps) {
        let report = services(&mut observed, settings, caps, nmap_progress, &cancel).await;
        for (kind, e) in &report.errors {
            run.errors.push(format!("services ({kind}): {e}"));
        }
        pass.services = Some(report);
    }
    let finished = now();
    run.finished = Some(finished);
    for Observed { target, obs, .. } in &observed {
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
    use crate::scan::netns::testns::{fresh_id, privileged, BannerServer, TestNs};
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};
    use tokio::time::timeout;

    /// Longest a services stage may take in these tests.
    const LIMIT: Duration = Duration::from_secs(90);
    /// nmap's NULL probe matches these at once: ssh, OpenSSH, version "9.2p1 Debian 2" (nmap 7.93
    /// folds the Debian revision into the version).
    const SSH_92: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
    const SSH_84: &[u8] = b"SSH-2.0-OpenSSH_8.4p1 Debian-5\r\n";

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    async fn nmap_settings() -> (nmap::Settings, nmap::Capabilities) {
        let settings = nmap::Settings {
            path: "/usr/bin/nmap".into(),
            stats_every: Duration::from_secs(1),
            ..nmap::Settings::default()
        };
        let caps = nmap::probe_nmap(&settings).await.unwrap();
        (settings, caps)
    }

    fn observed(id: &str, address: IpAddr, open: &[u16], ns: Option<&Path>) -> Observed {
        Observed {
            target: Target {
                id: id.into(),
                ..Target::address(address, "g")
            },
            obs: HostObservation {
                open: open.to_vec(),
                ..HostObservation::default()
            },
            namespace: ns.map(Arc::from),
        }
    }

    /// The services stage over `observed`, bounded by [`LIMIT`].
    async fn run_services(
        observed: &mut [Observed],
        settings: &nmap::Settings,
        caps: &nmap::Capabilities,
        progress: &Arc<nmap::Progress>,
    ) -> ServicesReport {
        let cancel = CancellationToken::new();
        let stage = services(observed, settings, caps, progress.clone(), &cancel);
        timeout(LIMIT, stage)
            .await
            .expect("services finished in time")
    }

    /// The (name, product, version) nmap gave a port of an observation.
    fn service(o: &Observed, port: u16) -> Option<(String, String, String)> {
        o.obs
            .services
            .iter()
            .find(|(proto, p, _)| *proto == Protocol::Tcp && *p == port)
            .map(|(_, _, s)| {
                let f = |v: &Option<String>| v.clone().unwrap_or_default();
                (f(&s.name), f(&s.product), f(&s.version))
            })
    }

    fn ssh(version: &str) -> Option<(String, String, String)> {
        Some(("ssh".into(), "OpenSSH".into(), version.into()))
    }

    /// Connect from this (the root) namespace and read what the server says first.
    async fn banner_here(addr: IpAddr, port: u16) -> String {
        use tokio::io::AsyncReadExt;
        let mut s = timeout(
            Duration::from_secs(5),
            tokio::net::TcpStream::connect((addr, port)),
        )
        .await
        .expect("connected in time")
        .expect("connected");
        let mut buf = vec![0u8; 256];
        let n = timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("banner in time")
            .expect("read the banner");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn services_are_identified_from_each_hosts_own_namespace() {
        if !privileged("services_are_identified_from_each_hosts_own_namespace") {
            return;
        }
        let ns = TestNs::create();
        let addr = ip("127.0.91.7");
        // The same address and port in both namespaces, different servers behind them.
        let root = BannerServer::start(None, addr, 0, SSH_84).await;
        let port = root.port;
        let _inside = BannerServer::start(Some(&ns.path), addr, port, SSH_92).await;
        assert_eq!(
            banner_here(addr, port).await.trim_end(),
            "SSH-2.0-OpenSSH_8.4p1 Debian-5",
            "the root namespace must not reach the namespace's server"
        );

        let (settings, caps) = nmap_settings().await;
        let progress = Arc::new(nmap::Progress::default());
        let mut observed = vec![
            observed("vm-a/port-a/127.0.91.7", addr, &[port], Some(&ns.path)),
            observed("127.0.91.7", addr, &[port], None),
        ];
        let started = Instant::now();
        let report = run_services(&mut observed, &settings, &caps, &progress).await;
        eprintln!("nmap in two namespaces took {:.1?}", started.elapsed());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!((report.hosts, report.covered), (2, 2));
        assert_eq!(
            service(&observed[0], port),
            ssh("9.2p1 Debian 2"),
            "the namespaced target: {:?}",
            observed[0].obs
        );
        assert_eq!(
            service(&observed[1], port),
            ssh("8.4p1 Debian 5"),
            "the same address in the agent's namespace: {:?}",
            observed[1].obs
        );
        assert!(observed.iter().all(|o| o.obs.services_known));
        assert!(observed.iter().all(|o| o.obs.services.len() == 1));
        assert_all_batches_done(&progress, 2, 0);
    }

    /// Every one of `total` nmap batches done, `failed` of them failed, and progress at 100 %.
    fn assert_all_batches_done(progress: &nmap::Progress, total: u64, failed: u64) {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        assert_eq!(
            (
                load(&progress.batches_total),
                load(&progress.batches_done),
                load(&progress.failed_batches)
            ),
            (total, total, failed)
        );
        assert_eq!(progress.percent(), 100.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_pass_identifies_services_inside_a_tenant_namespace() {
        if !privileged("a_pass_identifies_services_inside_a_tenant_namespace") {
            return;
        }
        let ns = TestNs::create();
        let addr = ip("127.0.91.8");
        // Only the namespace has a server: from the root namespace the port is closed.
        let inside = BannerServer::start(Some(&ns.path), addr, 0, SSH_92).await;
        let port = inside.port;
        let refused = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::new(addr, port),
            Duration::from_secs(2),
        );
        assert_eq!(
            refused.as_ref().map_err(std::io::Error::kind).err(),
            Some(std::io::ErrorKind::ConnectionRefused),
            "root namespace connect to {addr}:{port}: {refused:?}"
        );

        let mut config = crate::config::load(None, &Default::default()).unwrap();
        config.groups.clear();
        // The test's "cloud" addresses are on loopback, which [scope] refuses from an API unless
        // allowed.
        config.scope.allow = vec!["127.0.0.0/8".parse().unwrap()];
        let (settings, caps) = nmap_settings().await;
        config.nmap = Some(settings);
        let ports = crate::ports::PortList::parse(&port.to_string()).unwrap();
        let unit = |ns: Option<&Path>, id: &str| Unit {
            group: "cloud".into(),
            namespace: ns.map(Path::to_path_buf),
            targets: vec![Target {
                id: id.into(),
                ..Target::address(addr, "cloud")
            }],
            ports: ports.clone(),
        };
        let cloud = CloudTargets {
            units: vec![
                unit(None, "vm-b/port-b/127.0.91.8"),
                unit(Some(&ns.path), "vm-a/port-a/127.0.91.8"),
            ],
            keep: HashSet::new(),
        };
        let ctx = Context {
            fd_limit: 4096,
            nmap: Some(&caps),
            progress: Arc::new(Progress::default()),
            nmap_progress: Arc::new(nmap::Progress::default()),
            cancel: CancellationToken::new(),
        };
        let pass = timeout(
            LIMIT,
            discovery(&config, new_run(&config), &BTreeMap::new(), cloud, ctx),
        )
        .await
        .expect("the pass finished in time");
        assert_eq!(pass.run.outcome, Outcome::Success, "{:?}", pass.run.errors);
        let report = pass.services.as_ref().expect("services ran");
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert_eq!((report.hosts, report.covered), (1, 1));
        let host = |id: &str| {
            pass.hosts
                .iter()
                .find(|h| h.id == id)
                .unwrap_or_else(|| panic!("no state for {id}: {:?}", pass.hosts))
        };
        let inside_host = host("vm-a/port-a/127.0.91.8");
        assert_eq!(
            inside_host.ports.iter().map(|p| p.port).collect::<Vec<_>>(),
            [port]
        );
        let svc = inside_host.ports[0].service.as_ref().expect("a service");
        assert_eq!(
            (
                svc.name.as_deref(),
                svc.product.as_deref(),
                svc.version.as_deref()
            ),
            (Some("ssh"), Some("OpenSSH"), Some("9.2p1 Debian 2")),
            "{svc:?}"
        );
        assert!(
            svc.cpes.iter().any(|c| c == "cpe:/a:openbsd:openssh:9.2p1"),
            "{svc:?}"
        );
        // The agent's own namespace found the port closed: no state, or one without ports.
        let outside = pass.hosts.iter().find(|h| h.id == "vm-b/port-b/127.0.91.8");
        assert!(outside.is_none_or(|h| h.ports.is_empty()), "{outside:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_namespace_nmap_cannot_enter_costs_only_its_hosts() {
        // Needs no privileges: the namespace file is missing, so nothing is ever entered.
        let root = BannerServer::start(None, ip("127.0.91.9"), 0, SSH_92).await;
        let port = root.port;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("qdhcp-present"), b"").unwrap();
        let name = format!("qdhcp-{}", fresh_id());
        let missing = dir.path().join(&name);
        let (settings, caps) = nmap_settings().await;
        // One batch per host: the namespace has two, and is reported once either way (its second
        // batch skipped, or failing alongside the first).
        for parallel_batches in [1, 3] {
            let settings = nmap::Settings {
                batch_hosts: 1,
                parallel_batches,
                ..settings.clone()
            };
            let progress = Arc::new(nmap::Progress::default());
            let mut observed = vec![
                observed(
                    "vm-a/p/127.0.91.9",
                    ip("127.0.91.9"),
                    &[port],
                    Some(&missing),
                ),
                observed(
                    "vm-b/p/127.0.91.10",
                    ip("127.0.91.10"),
                    &[port],
                    Some(&missing),
                ),
                observed("127.0.91.9", ip("127.0.91.9"), &[port], None),
            ];
            let report = run_services(&mut observed, &settings, &caps, &progress).await;
            assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
            let (kind, message) = &report.errors[0];
            assert_eq!(*kind, "netns_missing");
            assert!(
                message.contains(&format!("cannot run nmap in network namespace {name}"))
                    && message.contains("keep what discovery found")
                    && message.contains("available: qdhcp-present"),
                "{message}"
            );
            assert_eq!((report.hosts, report.covered), (3, 1));
            // The agent's own host was identified; the namespace's kept discovery's result.
            assert_eq!(service(&observed[2], port), ssh("9.2p1 Debian 2"));
            assert!(observed[2].obs.services_known);
            for o in &observed[..2] {
                assert!(!o.obs.services_known && o.obs.services.is_empty(), "{o:?}");
                assert_eq!(o.obs.open, [port]);
            }
            assert_all_batches_done(&progress, 3, 2);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelling_stops_nmap_inside_a_namespace_promptly() {
        if !privileged("cancelling_stops_nmap_inside_a_namespace_promptly") {
            return;
        }
        let ns = TestNs::create();
        let addr = ip("127.0.91.11");
        // A port that accepts and never answers: nmap's probes wait out their timeouts.
        let silent = BannerServer::start(Some(&ns.path), addr, 0, b"").await;
        let (settings, caps) = nmap_settings().await;
        let progress = Arc::new(nmap::Progress::default());
        let cancel = CancellationToken::new();
        let mut observed = vec![observed("vm", addr, &[silent.port], Some(&ns.path))];
        let stage = services(&mut observed, &settings, &caps, progress.clone(), &cancel);
        let cancelled_at = async {
            // Let nmap get going inside the namespace, then stop it.
            let deadline = Instant::now() + Duration::from_secs(10);
            while pids_in(&ns.name).await.is_empty() {
                assert!(Instant::now() < deadline, "nmap never ran in the namespace");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            cancel.cancel();
            Instant::now()
        };
        let (report, cancelled_at) = timeout(LIMIT, async { tokio::join!(stage, cancelled_at) })
            .await
            .expect("services finished in time");
        let took = cancelled_at.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "stopped {took:?} after the cancel"
        );
        let kinds: Vec<&str> = report.errors.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, ["cancelled"], "{:?}", report.errors);
        assert_eq!(report.covered, 0);
        assert!(!observed[0].obs.services_known);
        // nmap was killed: nothing runs in the namespace any more.
        assert_eq!(pids_in(&ns.name).await, Vec::<String>::new());
    }

    /// Processes in the named namespace (`ip netns pids`): nmap, while it runs there.
    async fn pids_in(name: &str) -> Vec<String> {
        let out = timeout(
            Duration::from_secs(10),
            tokio::process::Command::new("ip")
                .args(["netns", "pids", name])
                .output(),
        )
        .await
        .expect("ip netns pids finished in time")
        .expect("ran ip netns pids");
        assert!(out.status.success(), "ip netns pids {name}: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

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
