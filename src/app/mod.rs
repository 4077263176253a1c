//! The agent: opens the store, serves the last known state at once, then runs discovery on its
//! schedule — inventory → scan → judge → store → expose — until SIGTERM/SIGINT; SIGHUP reloads the
//! configuration (an invalid one keeps the old). The only module that wires stages together.

pub mod cycle;
mod digest;
pub mod inventory;
pub mod once;
pub mod vulns;

use crate::config::{self, Config, Overrides};
use crate::expose::{self, metrics::Metrics};
use crate::inventory::openstack::source::Source;
use crate::judge;
use crate::model::{now, HostState, Outcome, ScanRun, Target, UnixSeconds};
use crate::scan::{self, Progress};
use crate::state::{GroupStatus, StageStatus, State};
use crate::store::{self, Commit, Store};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a running scan logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Wait after a failed run before trying again (or the interval, if shorter).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(60);
/// Most records retention deletes per pass.
const PRUNE_BUDGET: usize = 10_000;

/// How long to wait before the next discovery run: nothing on a first start (no success yet); the rest
/// of the interval after a recent success; else just `jitter_fraction` (0..1) of the jitter.
pub fn next_delay(
    last_success: Option<UnixSeconds>,
    now: UnixSeconds,
    interval: Duration,
    jitter: Duration,
    jitter_fraction: f64,
) -> Duration {
    let jitter = jitter.mul_f64(jitter_fraction.clamp(0.0, 1.0));
    match last_success {
        Some(last) if now - last < interval.as_secs_f64() && now >= last => {
            Duration::from_secs_f64(interval.as_secs_f64() - (now - last)) + jitter
        }
        None => Duration::ZERO,
        _ => jitter,
    }
}

/// A number in 0..1 that differs from call to call (for jitter; not for cryptography).
fn random_fraction() -> f64 {
    use std::hash::BuildHasher;
    let r = std::collections::hash_map::RandomState::new().hash_one(now().to_bits());
    (r >> 11) as f64 / (1u64 << 53) as f64
}

/// Everything the loop owns.
struct Agent {
    config: Config,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    store: Store,
    state: Arc<State>,
    metrics: Metrics,
    max_port_series: Arc<AtomicUsize>,
    fd_limit: u64,
    /// nmap's capabilities, when the services stage can run.
    nmap: Option<crate::scan::nmap::Capabilities>,
    /// A Greenbone run is under way (its result arrives on the loop's channel).
    vulns_running: bool,
    /// The `[[openstack]]` clouds, and each one's last good inventory (scanned when a fetch fails).
    sources: Vec<Arc<Source>>,
    last_good: BTreeMap<String, Vec<(Option<String>, Target)>>,
    /// No digest e-mail before this, after a failed one.
    email_retry_at: Option<UnixSeconds>,
}

/// Sessions for the configured clouds (no request is made yet).
fn build_sources(config: &Config) -> anyhow::Result<Vec<Arc<Source>>> {
    config
        .openstack
        .iter()
        .map(|c| {
            c.cloud.log_warnings();
            Source::new(c.clone())
                .map(Arc::new)
                .with_context(|| format!("cannot set up OpenStack source {:?}", c.name))
        })
        .collect()
}

/// Run the agent until shutdown.
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    overrides: Overrides,
) -> anyhow::Result<()> {
    let (shutdown, mut reload) =
        crate::shutdown::listen().context("cannot install signal handlers")?;
    let fd_limit = scan::raise_nofile_limit();
    tracing::info!(
        version = crate::build::VERSION,
        config = %config.source,
        storage = %config.storage.path.display(),
        fd_limit,
        "starting stinger"
    );

    // Bind first: a busy port is an immediate, clear failure.
    let listener = expose::bind(config.web.listen).await?;
    let path = config.storage.path.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&path))
        .await
        .context("storage task failed")??;
    let state = Arc::new(State::default());
    load_state(&store, &state, &config).await?;
    state.set_ready();

    let max_port_series = Arc::new(AtomicUsize::new(config.web.max_port_series));
    let (registry, metrics) = expose::metrics::registry(state.clone(), max_port_series.clone());
    let shared = Arc::new(expose::Shared {
        state: state.clone(),
        store: store.clone(),
        registry,
        telemetry_path: config.web.telemetry_path.clone(),
    });
    let address = listener
        .local_addr()
        .map_or_else(|_| config.web.listen.to_string(), |a| a.to_string());
    tracing::info!(%address, telemetry_path = %config.web.telemetry_path, "serving");
    let server = tokio::spawn(expose::webconfig::serve(
        listener,
        expose::router(shared),
        config.web.config_file.clone(),
        shutdown.clone(),
    ));

    let mut agent = Agent {
        config,
        config_path,
        overrides,
        store,
        state,
        metrics,
        max_port_series,
        fd_limit,
        nmap: None,
        vulns_running: false,
        sources: Vec::new(),
        last_good: BTreeMap::new(),
        email_retry_at: None,
    };
    agent.load_email_state().await;
    agent.sources = build_sources(&agent.config)?;
    agent.nmap = cycle::nmap_capabilities(&agent.config).await;
    let (vuln_tx, mut vuln_rx) = tokio::sync::mpsc::channel::<vulns::Finished>(1);
    loop {
        let (last, last_ok) = agent
            .state
            .read()
            .stages
            .get("discovery")
            .map_or((None, None), |s| (s.last_success, s.last_ok));
        let mut delay = next_delay(
            last,
            now(),
            agent.config.discovery_interval,
            agent.config.jitter,
            random_fraction(),
        );
        if last_ok == Some(false) {
            // A failed run is retried, but not in a tight loop.
            delay = delay.max(agent.config.discovery_interval.min(RETRY_AFTER_FAILURE));
        }
        tracing::debug!(
            seconds = delay.as_secs_f64(),
            "next discovery run scheduled"
        );
        let vuln_delay = agent.vulnerabilities_due();
        let email_delay = agent.email_due();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(()) = reload.recv() => agent.reload().await,
            Some(done) = vuln_rx.recv() => agent.apply_vulnerabilities(done).await,
            _ = tokio::time::sleep(vuln_delay.unwrap_or(Duration::MAX)), if vuln_delay.is_some() => {
                agent.start_vulnerabilities(&vuln_tx, &shutdown).await
            }
            _ = tokio::time::sleep(email_delay.unwrap_or(Duration::MAX)), if email_delay.is_some() => {
                agent.send_digest(&shutdown).await
            }
            _ = tokio::time::sleep(delay) => agent.discovery(&shutdown).await,
        }
    }

    tracing::info!("stopping: draining HTTP requests and flushing the store");
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(Ok(Err(e))) => tracing::error!(error = %e, "HTTP server failed"),
        Err(_) => tracing::warn!("HTTP server did not drain within 10s"),
        _ => {}
    }
    store::blocking(&agent.store, |s| s.flush()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Fill the in-memory view from the store, so the last known state is served before any scan.
async fn load_state(store: &Store, state: &State, config: &Config) -> anyhow::Result<()> {
    let (hosts, vms, interrupted, recent) = store::blocking(store, |s| {
        let interrupted = s.mark_interrupted()?;
        Ok((s.hosts()?, s.vms()?, interrupted, s.scans(None, 200)?))
    })
    .await?;
    if interrupted > 0 {
        tracing::warn!(
            runs = interrupted,
            "found scans left running by a stopped process; marked interrupted"
        );
    }
    tracing::info!(
        hosts = hosts.len(),
        vms = vms.len(),
        "loaded the last known state"
    );
    let mut view = state.write();
    view.hosts = hosts.into_iter().map(|h| (h.id.clone(), h)).collect();
    view.vms = vms
        .into_iter()
        .map(|v| (v.id.clone(), Arc::new(v)))
        .collect();
    let stage_status = |stage: &str, interval: Duration| {
        let runs = || recent.iter().filter(move |r| r.stage == stage);
        // Cancelled and interrupted runs say nothing about the stage's health: a stop ended them.
        let judged = runs().find(|r| matches!(r.outcome, Outcome::Success | Outcome::Failed));
        StageStatus {
            interval,
            jitter: config.jitter,
            last_success: runs()
                .find(|r| r.outcome == Outcome::Success)
                .and_then(|r| r.finished),
            last_ok: judged.map(|r| r.outcome == Outcome::Success),
            in_progress: false,
        }
    };
    view.stages.insert(
        "discovery",
        stage_status("discovery", config.discovery_interval),
    );
    if let Some((_, interval)) = &config.gmp {
        view.stages.insert(
            "vulnerabilities",
            stage_status("vulnerabilities", *interval),
        );
    }
    let recent: Vec<ScanRun> = recent
        .into_iter()
        .filter(|r| r.stage == "discovery")
        .collect();
    view.groups = group_status(config, &recent);
    Ok(())
}

/// Coverage per group: its inventory size and its last successful scan among `recent` runs.
fn group_status(config: &Config, recent: &[ScanRun]) -> Vec<GroupStatus> {
    let sizes = crate::inventory::expand(&config.groups, config.max_hosts)
        .map(|gs| {
            gs.into_iter()
                .map(|g| (g.name, g.addresses.len() as u64))
                .collect()
        })
        .unwrap_or_else(|_| BTreeMap::new());
    let names = config
        .groups
        .iter()
        .map(|g| &g.name)
        .chain(config.openstack.iter().map(|o| &o.name));
    names
        .map(|name| {
            let last = recent
                .iter()
                .find(|r| r.outcome == Outcome::Success && r.groups.contains(name));
            GroupStatus {
                name: name.clone(),
                targets: sizes.get(name).copied().unwrap_or(0),
                last_success: last.and_then(|r| r.finished),
                last_duration: last
                    .and_then(|r| r.finished.map(|f| f - r.started))
                    .unwrap_or(0.0),
            }
        })
        .collect()
}

impl Agent {
    async fn discovery(&mut self, shutdown: &CancellationToken) {
        let store = self.store.clone();
        let skeleton = cycle::new_run(&self.config);
        let run = match store::blocking(&store, move |s| s.begin_run(skeleton)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot record a new scan run; skipping this run");
                self.metrics.error("store", e.kind());
                self.set_stage(|s| s.last_ok = Some(false));
                return;
            }
        };
        tracing::info!(scan_id = run.id, groups = ?run.groups, "discovery run started");
        let progress = Arc::new(Progress::default());
        self.state.set_progress(Some(progress.clone()));
        self.set_stage(|s| s.in_progress = true);
        let reporter = tokio::spawn(report_progress(progress.clone(), run.id));
        let nmap_progress = Arc::new(crate::scan::nmap::Progress::default());
        self.state
            .set_services_progress(Some(nmap_progress.clone()));
        let round = self.inventory_round(run.id, shutdown).await;
        let prev = self.state.read().hosts.clone();
        let ctx = cycle::Context {
            fd_limit: self.fd_limit,
            nmap: self.nmap.as_ref(),
            progress,
            nmap_progress,
            cancel: shutdown.child_token(),
        };
        let cloud = round.cloud.clone();
        let pass = cycle::discovery(&self.config, run, &prev, cloud, ctx).await;
        reporter.abort();
        self.state.set_progress(None);
        self.state.set_services_progress(None);
        self.commit(pass, round).await;
    }

    /// Inventory every cloud (side by side), publish VMs and source health to the view, and say
    /// what to scan: each source's fresh inventory, else its last good one.
    async fn inventory_round(
        &mut self,
        scan_id: u64,
        shutdown: &CancellationToken,
    ) -> inventory::Round {
        let mut round = inventory::Round::default();
        if self.sources.is_empty() {
            return round;
        }
        let prev_vms = self.state.read().vms.clone();
        let fetched = inventory::fetch_all(&self.sources, &prev_vms, shutdown).await;
        let t = now();
        for f in fetched {
            let Some(result) = f.result else {
                continue; // cancelled: the run stops too
            };
            {
                let mut view = self.state.write();
                let status = inventory::status(view.sources.get(&f.name), &result, t);
                view.sources.insert(f.name.clone(), status);
            }
            match result {
                Ok((inv, report)) => {
                    self.metrics.run("inventory", "success", report.seconds);
                    // One copy of each VM, shared by the view and the store's batch.
                    let vms = inv.vms;
                    round
                        .events
                        .extend(inventory::vm_events(&f.name, &prev_vms, &vms, scan_id, t));
                    let ids: std::collections::HashSet<&str> =
                        vms.iter().map(|v| v.id.as_str()).collect();
                    round.removed_vms.extend(
                        prev_vms
                            .values()
                            .filter(|v| v.cloud == f.name && !ids.contains(v.id.as_str()))
                            .map(|v| v.id.clone()),
                    );
                    {
                        let mut view = self.state.write();
                        view.vms.retain(|_, v| v.cloud != f.name);
                        for v in &vms {
                            view.vms.insert(v.id.clone(), v.clone());
                        }
                    }
                    round.vms.extend(vms);
                    self.last_good.insert(f.name.clone(), inv.targets);
                }
                Err(e) => {
                    let kept = if self.last_good.contains_key(&f.name) {
                        "scanning its last good inventory"
                    } else {
                        "no inventory yet: its hosts keep their last state"
                    };
                    tracing::error!(source = %f.name, kind = e.kind(), error = %e, "OpenStack inventory failed; {kept}");
                    self.metrics.run("inventory", "failed", 0.0);
                    self.metrics.error("inventory", e.kind());
                }
            }
        }
        for s in &self.sources {
            match self.last_good.get(s.name()) {
                Some(targets) => round.cloud.units.extend(inventory::units(s, targets)),
                None => {
                    round.cloud.keep.insert(s.name().to_owned());
                }
            }
        }
        round
    }

    /// Store a pass atomically, then publish it to the view and the metrics.
    async fn commit(&mut self, pass: cycle::Pass, round: inventory::Round) {
        let run = pass.run.clone();
        let ok = run.outcome == Outcome::Success;
        let mut events = round.events;
        events.extend(pass.events.iter().cloned());
        let commit = Commit {
            run: Some(run.clone()),
            hosts: pass.hosts.clone(),
            removed_hosts: pass.removed.clone(),
            events,
            vms: round.vms,
            removed_vms: round.removed_vms,
        };
        let stored = store::blocking(&self.store, move |s| s.commit(&commit)).await;
        if let Some(r) = &pass.services {
            let ok = r.errors.is_empty();
            self.metrics
                .run("services", if ok { "success" } else { "failed" }, r.seconds);
            for (kind, _) in &r.errors {
                self.metrics.error("services", kind);
            }
            let finished = r.started + r.seconds;
            let mut view = self.state.write();
            let interval = self.config.discovery_interval;
            let jitter = self.config.jitter;
            let s = view.stages.entry("services").or_insert(StageStatus {
                interval,
                jitter,
                last_success: None,
                last_ok: None,
                in_progress: false,
            });
            s.last_ok = Some(ok);
            if ok {
                s.last_success = Some(finished);
            }
        }
        let seconds = run.finished.unwrap_or_else(now) - run.started;
        self.metrics.run("discovery", run.outcome.as_str(), seconds);
        self.metrics.probes(&run.probes);
        if let Err(e) = stored {
            tracing::error!(error = %e, scan_id = run.id, "cannot store the scan; serving the previous state");
            self.metrics.error("store", e.kind());
            self.set_stage(|s| {
                s.in_progress = false;
                s.last_ok = Some(false);
            });
            return;
        }
        if !ok {
            for e in &run.errors {
                let kind = if run.outcome == Outcome::Cancelled {
                    "cancelled"
                } else {
                    "scan"
                };
                self.metrics.error("discovery", kind);
                tracing::warn!(scan_id = run.id, error = %e, "discovery run did not complete");
            }
        }
        {
            let mut view = self.state.write();
            if ok {
                for id in &pass.removed {
                    view.hosts.remove(id);
                }
                for h in pass.hosts {
                    view.hosts.insert(h.id.clone(), h);
                }
            }
            let finished = run.finished.unwrap_or_else(now);
            for (name, targets, complete) in &pass.groups {
                if let Some(g) = view.groups.iter_mut().find(|g| &g.name == name) {
                    g.targets = *targets;
                    if ok && *complete {
                        g.last_success = Some(finished);
                        g.last_duration = seconds;
                    }
                }
            }
            if let Some(s) = view.stages.get_mut("discovery") {
                s.in_progress = false;
                s.last_ok = Some(ok);
                if ok {
                    s.last_success = Some(finished);
                }
            }
        }
        tracing::info!(
            scan_id = run.id,
            outcome = run.outcome.as_str(),
            seconds = format!("{seconds:.2}"),
            targets = run.targets,
            hosts_up = run.hosts_up,
            open_ports = run.open_ports,
            unexpected_ports = run.unexpected_ports,
            events = pass.events.len(),
            "discovery run finished"
        );
        self.prune().await;
    }

    async fn prune(&self) {
        let t = now();
        let scans_before = t - self.config.storage.scan_retention.as_secs_f64();
        let events_before = t - self.config.storage.event_retention.as_secs_f64();
        match store::blocking(&self.store, move |s| {
            s.prune(scans_before, events_before, PRUNE_BUDGET)
        })
        .await
        {
            Ok((0, 0)) => {}
            Ok((scans, events)) => tracing::info!(scans, events, "retention removed old records"),
            Err(e) => {
                tracing::warn!(error = %e, "retention failed; will try again after the next scan");
                self.metrics.error("store", e.kind());
            }
        }
    }

    fn set_stage(&self, f: impl FnOnce(&mut StageStatus)) {
        if let Some(s) = self.state.write().stages.get_mut("discovery") {
            f(s);
        }
    }

    /// SIGHUP: load and validate the file again; apply it, or keep the old one and say why.
    async fn reload(&mut self) {
        let new = match config::load(self.config_path.as_deref(), &self.overrides) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
                self.metrics.error("config", "reload");
                return;
            }
        };
        if new.storage.path != self.config.storage.path || new.web != self.config.web {
            tracing::warn!(
                "storage and web settings change only on restart; the rest is applied now"
            );
        }
        self.max_port_series
            .store(new.web.max_port_series, Ordering::Relaxed);
        // Re-judge the known state under the new policy so verdicts change at once.
        let t = now();
        let mut changed: Vec<HostState> = Vec::new();
        let mut events = Vec::new();
        {
            let view = self.state.read();
            for h in view.hosts.values() {
                let metadata =
                    h.vm.as_ref()
                        .and_then(|l| view.vms.get(&l.vm_id))
                        .map(|v| &v.metadata);
                let j = judge::rejudge(h, &new.policy, metadata, t);
                if !j.events.is_empty() {
                    events.extend(j.events);
                    changed.extend(j.state);
                }
            }
        }
        let commit = Commit {
            run: None,
            hosts: changed.clone(),
            removed_hosts: Vec::new(),
            events,
            ..Default::default()
        };
        if let Err(e) = store::blocking(&self.store, move |s| s.commit(&commit)).await {
            tracing::error!(error = %e, "cannot store re-judged verdicts; keeping the running configuration");
            self.metrics.error("store", e.kind());
            return;
        }
        let recent = store::blocking(&self.store, |s| s.scans(None, 200))
            .await
            .unwrap_or_default();
        {
            let mut view = self.state.write();
            for h in changed.iter() {
                view.hosts.insert(h.id.clone(), h.clone());
            }
            view.groups = group_status(&new, &recent);
            if let Some(s) = view.stages.get_mut("discovery") {
                s.interval = new.discovery_interval;
                s.jitter = new.jitter;
            }
            match &new.gmp {
                Some((_, interval)) => {
                    let s = view.stages.entry("vulnerabilities").or_insert(StageStatus {
                        interval: *interval,
                        jitter: Duration::ZERO,
                        last_success: None,
                        last_ok: None,
                        in_progress: false,
                    });
                    s.interval = *interval;
                }
                None => {
                    view.stages.remove("vulnerabilities");
                }
            }
        }
        tracing::info!(
            config = %new.source,
            verdicts_changed = changed.len(),
            "configuration reloaded"
        );
        self.nmap = cycle::nmap_capabilities(&new).await;
        let email_was_on = self.config.email.is_some();
        self.config = new;
        // The digest follows the new [email] at once; its window survives in the store either way.
        if self.config.email.is_none() {
            self.state.write().email = None;
            self.email_retry_at = None;
        } else if !email_was_on {
            self.load_email_state().await;
        }
    }
}

async fn report_progress(progress: Arc<Progress>, scan_id: u64) {
    let started = std::time::Instant::now();
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    loop {
        tick.tick().await;
        let done = progress.done.load(Ordering::Relaxed);
        let total = progress.total.load(Ordering::Relaxed);
        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
        tracing::info!(
            scan_id,
            done,
            total,
            percent = format!("{:.1}", progress.ratio() * 100.0),
            open = progress.open.load(Ordering::Relaxed),
            probes_per_second = rate as u64,
            "discovery progress"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_resumes_the_interval_after_a_restart() {
        let i = Duration::from_secs(900);
        let j = Duration::from_secs(30);
        // Never scanned: now (plus jitter).
        assert_eq!(next_delay(None, 1000.0, i, j, 0.0), Duration::ZERO);
        assert_eq!(next_delay(None, 1000.0, i, j, 1.0), Duration::ZERO);
        // Scanned 100 s ago: wait the remaining 800 s.
        assert_eq!(
            next_delay(Some(900.0), 1000.0, i, j, 0.0),
            Duration::from_secs(800)
        );
        // Overdue: now, plus jitter.
        assert_eq!(next_delay(Some(0.0), 1000.0, i, j, 0.0), Duration::ZERO);
        assert_eq!(next_delay(Some(0.0), 1000.0, i, j, 1.0), j);
        // A clock that went backwards does not postpone the scan for ever.
        assert_eq!(next_delay(Some(5000.0), 1000.0, i, j, 0.0), Duration::ZERO);
        let f = random_fraction();
        assert!((0.0..1.0).contains(&f));
    }
}
