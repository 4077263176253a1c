//! The agent: opens the store, serves the last known state at once, then schedules its stages —
//! discovery (inventory → scan → judge), Greenbone, the digest — until shutdown; a reload applies a
//! new configuration (an invalid one keeps the old). Each stage runs as a task of its own and
//! reports back over a channel, so the loop answers a reload or a shutdown within a second however
//! long a scan takes. `main` owns the signals and hands shutdown and reload in, so the whole loop
//! runs in-process in tests. The only module that wires stages together.

mod changes;
mod commit;
pub mod cycle;
mod digest;
mod discovery;
mod findings;
pub mod inventory;
pub mod once;
pub mod schedule;
mod targeted;
pub mod vulns;

use crate::config::{self, Config, Overrides};
use crate::expose::{self, metrics::Metrics};
use crate::inventory::Source;
use crate::judge;
use crate::model::{now, HostState, Outcome, ScanRun, Stage, UnixSeconds};
use crate::scan;
use crate::state::{GroupStatus, StageStatus, State};
use crate::store::{self, Commit, Store};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

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
    /// The inventory sources ([`inventory::sources`]: the CIDR groups, each `[[openstack]]` cloud),
    /// and each live one's last good inventory (scanned when a fetch fails; with the discovery task
    /// while a pass runs).
    sources: Vec<Arc<dyn Source>>,
    last_good: inventory::LastGood,
    /// Counts configuration reloads: a pass that started under an older configuration is
    /// re-judged under the current policy when it is stored.
    generation: u64,
    /// No digest e-mail before this, after a failed one.
    email_retry_at: Option<UnixSeconds>,
    /// Failed digest sends in a row (the backoff of [`schedule::retry_after`]).
    email_failures: u32,
    /// When the clouds are next asked what changed (after the first pass; with `poll_interval`).
    next_poll: Option<UnixSeconds>,
    /// A cloud's change list could not be trusted: the next full pass starts at once.
    force_full: bool,
}

/// Run the agent on `listener` until `shutdown` is cancelled; each message on `reload` re-reads the
/// configuration from `config_path` (or the embedded default) with `overrides`.
pub async fn run(
    config: Config,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    listener: TcpListener,
    shutdown: CancellationToken,
    mut reload: mpsc::Receiver<()>,
) -> anyhow::Result<()> {
    let fd_limit = scan::raise_nofile_limit();
    tracing::info!(
        version = crate::build::VERSION,
        config = %config.source,
        storage = %config.storage.path.display(),
        fd_limit,
        "starting stinger"
    );

    let path = config.storage.path.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&path))
        .await
        .context("storage task failed")??;
    // nmap batches an earlier agent on this store left running when it was killed: end them, and
    // mark ours so a successor can do the same.
    let store_path =
        std::fs::canonicalize(&config.storage.path).unwrap_or_else(|_| config.storage.path.clone());
    scan::nmap::orphans::mark_children(&store_path);
    let reaped = tokio::task::spawn_blocking(move || scan::nmap::orphans::reap(&store_path))
        .await
        .unwrap_or_default();
    if !reaped.is_empty() {
        tracing::warn!(
            count = reaped.len(),
            "killed nmap processes left running by a killed agent"
        );
    }
    let state = Arc::new(State::default());
    crate::inventory::shard::publish(&config.shard);
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
    if config.web.config_file.is_none()
        && listener.local_addr().is_ok_and(|a| !a.ip().is_loopback())
    {
        tracing::warn!(%address, "serving plain HTTP without authentication on a non-loopback address: anyone who reaches it reads every finding; set --web.config.file (TLS and basic auth) or listen on 127.0.0.1");
    }
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
        generation: 0,
        email_retry_at: None,
        email_failures: 0,
        next_poll: None,
        force_full: false,
    };
    agent.load_email_state().await;
    agent.sources = inventory::build(&agent.config).map_err(|(e, _)| e)?;
    agent.nmap = cycle::nmap_capabilities(&agent.config).await;
    let (vuln_tx, mut vuln_rx) = mpsc::channel::<vulns::Finished>(1);
    // The discovery pass running now, if any.
    let mut discovery: Option<JoinHandle<discovery::Done>> = None;
    let waker = agent.state.clone();
    loop {
        // An on-demand scan goes first once no pass is under way.
        if discovery.is_none() {
            if let Some(run) = agent.state.on_demand.pop() {
                discovery = agent.start_targeted(run, &shutdown).await;
                continue;
            }
        }
        let discovery_delay = match discovery {
            Some(_) => None,
            None => Some(agent.discovery_due()),
        };
        let poll_delay = match discovery {
            Some(_) => None,
            None => agent.poll_due(),
        };
        let vuln_delay = agent.vulnerabilities_due();
        let email_delay = agent.email_due();
        let ack_delay = agent.findings_due();
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(()) = reload.recv() => agent.reload().await,
            Some(done) = vuln_rx.recv() => agent.apply_vulnerabilities(done).await,
            done = wait(discovery.as_mut()), if discovery.is_some() => {
                discovery = None;
                agent.finish_discovery(done).await;
            }
            _ = tokio::time::sleep(vuln_delay.unwrap_or(Duration::MAX)), if vuln_delay.is_some() => {
                agent.start_vulnerabilities(&vuln_tx, &shutdown).await
            }
            _ = tokio::time::sleep(email_delay.unwrap_or(Duration::MAX)), if email_delay.is_some() => {
                agent.send_digest(&shutdown).await
            }
            _ = tokio::time::sleep(ack_delay.unwrap_or(Duration::MAX)), if ack_delay.is_some() => {
                agent.review_findings().await;
            }
            // An API ack may expire before anything else wakes the loop: recompute the delays.
            _ = waker.findings_changed() => {}
            // An on-demand scan was queued: it starts above when no pass is under way.
            _ = waker.on_demand.queued() => {}
            _ = tokio::time::sleep(discovery_delay.unwrap_or(Duration::MAX)), if discovery_delay.is_some() => {
                discovery = agent.start_discovery(&shutdown).await;
            }
            _ = tokio::time::sleep(poll_delay.unwrap_or(Duration::MAX)), if poll_delay.is_some() => {
                discovery = Some(agent.start_poll(&shutdown));
            }
        }
    }

    // The pass under way saw the same cancellation: it ends at once; store what it says.
    if let Some(handle) = discovery {
        match tokio::time::timeout(Duration::from_secs(30), handle).await {
            Ok(done) => agent.finish_discovery(done).await,
            Err(_) => tracing::warn!("the discovery pass did not stop within 30s"),
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

/// The running discovery task's result (`pending` when there is none: its `select!` branch is off
/// then anyway).
async fn wait(
    handle: Option<&mut JoinHandle<discovery::Done>>,
) -> Result<discovery::Done, tokio::task::JoinError> {
    match handle {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// Fill the in-memory view from the store, so the last known state is served before any scan.
async fn load_state(store: &Store, state: &State, config: &Config) -> anyhow::Result<()> {
    let (hosts, vms, findings, interrupted, recent) = store::blocking(store, |s| {
        let interrupted = s.mark_interrupted()?;
        Ok((
            s.hosts()?,
            s.vms()?,
            s.findings()?,
            interrupted,
            s.scans(None, 200)?,
        ))
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
        findings = findings.len(),
        "loaded the last known state"
    );
    let mut view = state.write();
    view.findings = findings.into_iter().map(|f| (f.id.clone(), f)).collect();
    view.max_ack = config.max_ack;
    view.vm_metadata = config.web.vm_metadata;
    view.max_device_series = config.web.max_device_series;
    view.scans_per_minute = config.scans_per_minute;
    view.exceptions = exceptions_of(&config.policy);
    view.hosts = hosts.into_iter().map(|h| (h.id.clone(), h)).collect();
    view.vms = vms
        .into_iter()
        .map(|v| (v.id.clone(), Arc::new(v)))
        .collect();
    let stage_status = |stage: Stage, interval: Duration| {
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
            ..StageStatus::default()
        }
    };
    view.stages.insert(
        Stage::Discovery,
        stage_status(Stage::Discovery, config.discovery_interval),
    );
    if let Some((_, interval)) = &config.gmp {
        view.stages.insert(
            Stage::Vulnerabilities,
            stage_status(Stage::Vulnerabilities, *interval),
        );
    }
    let recent: Vec<ScanRun> = recent
        .into_iter()
        .filter(|r| r.stage == Stage::Discovery)
        .collect();
    view.groups = group_status(config, &recent);
    Ok(())
}

/// The policy's exceptions as the view keeps them: name and expiry.
fn exceptions_of(policy: &crate::judge::Policy) -> Vec<(String, UnixSeconds)> {
    policy
        .exceptions
        .iter()
        .map(|e| (e.name.clone(), e.expires))
        .collect()
}

/// Coverage per group: its inventory size (this shard's part of it) and its last successful scan
/// among `recent` runs.
fn group_status(config: &Config, recent: &[ScanRun]) -> Vec<GroupStatus> {
    let sizes = crate::inventory::expand(&config.groups, config.max_hosts)
        .map(|gs| {
            gs.into_iter()
                .map(|g| {
                    let mine = g
                        .addresses
                        .iter()
                        .filter(|a| config.shard.owns(&a.to_string()))
                        .count();
                    (g.name, mine as u64)
                })
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
    /// How long until the next discovery pass is due.
    fn discovery_due(&self) -> Duration {
        if self.force_full {
            return Duration::ZERO;
        }
        let delay = self
            .state
            .read()
            .stages
            .get(&Stage::Discovery)
            .map_or(Duration::ZERO, |s| {
                schedule::due(s, now(), random_fraction())
            });
        tracing::debug!(
            seconds = delay.as_secs_f64(),
            "next discovery run scheduled"
        );
        delay
    }

    /// Record a new run and start its pass as a task; `None` when the run cannot be recorded.
    async fn start_discovery(
        &mut self,
        shutdown: &CancellationToken,
    ) -> Option<JoinHandle<discovery::Done>> {
        let store = self.store.clone();
        let skeleton = cycle::new_run(&self.config);
        let run = match store::blocking(&store, move |s| s.begin_run(skeleton)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot record a new scan run; skipping this run");
                self.metrics.error(Stage::Store, e.kind());
                self.set_stage(|s| schedule::record(s, false, now()));
                return None;
            }
        };
        tracing::info!(scan_id = run.id, groups = ?run.groups, "discovery run started");
        self.force_full = false;
        self.set_stage(|s| s.in_progress = true);
        let job = discovery::Job {
            config: Arc::new(self.config.clone()),
            generation: self.generation,
            run,
            sources: self.sources.clone(),
            last_good: std::mem::take(&mut self.last_good),
            state: self.state.clone(),
            metrics: self.metrics.clone(),
            fd_limit: self.fd_limit,
            nmap: self.nmap.clone(),
            cancel: shutdown.child_token(),
            mode: discovery::Mode::Full,
        };
        Some(tokio::spawn(job.run()))
    }

    /// A pass is over: store and publish it; re-judge it if the policy changed meanwhile.
    async fn finish_discovery(&mut self, done: Result<discovery::Done, tokio::task::JoinError>) {
        let done = match done {
            Ok(d) => d,
            Err(e) => {
                // A panic in the pass: its run stays "running" in the store until the next start
                // marks it interrupted; the stage shows the failure.
                tracing::error!(error = %e, "the discovery task failed");
                self.metrics.error(Stage::Discovery, "task");
                self.set_stage(|s| schedule::record(s, false, now()));
                return;
            }
        };
        self.last_good = done.last_good;
        self.force_full |= done.full_needed;
        self.next_poll = self.poll_interval().map(|i| now() + i.as_secs_f64());
        let Some(pass) = done.pass else {
            return; // a change poll that found nothing
        };
        let stale = done.generation != self.generation;
        self.commit(pass, done.round).await;
        if stale {
            tracing::info!("the configuration changed while the pass ran; judging it again");
            let policy = self.config.policy.clone();
            self.rejudge(&policy).await;
        }
    }

    fn set_stage(&self, f: impl FnOnce(&mut StageStatus)) {
        if let Some(s) = self.state.write().stages.get_mut(&Stage::Discovery) {
            f(s);
        }
    }

    /// Judge every known host again under `policy`; store and publish what changed. Returns how
    /// many hosts changed, or `None` when the store refused them (nothing published then).
    async fn rejudge(&mut self, policy: &crate::judge::policy::Policy) -> Option<usize> {
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
                let j = judge::rejudge(h, policy, metadata, t);
                if !j.events.is_empty() {
                    events.extend(j.events);
                    changed.extend(j.state);
                }
            }
        }
        let n = changed.len();
        // Findings follow the new verdicts, and the new exceptions, at once: every known host's
        // state (re-judged or not) under the new policy.
        let state = self.state.clone();
        let _findings_lock = state.lock_findings().await;
        let findings: Vec<crate::model::Finding> = {
            let ctx = crate::judge::findings::Context {
                settings: &self.config.findings,
                policy,
                scan_id: None,
                now: t,
            };
            let view = self.state.read();
            let rejudged: std::collections::HashMap<&str, &HostState> =
                changed.iter().map(|h| (h.id.as_str(), h)).collect();
            let hosts: Vec<HostState> = view
                .hosts
                .values()
                .map(|h| (*rejudged.get(h.id.as_str()).unwrap_or(&h)).clone())
                .collect();
            let mut out = findings::changed_by(
                &view.findings,
                &hosts,
                &[],
                crate::judge::findings::Covers::Policy,
                &ctx,
            );
            // Findings of hosts no longer in the view: only their acknowledgements change.
            out.extend(
                view.findings
                    .values()
                    .filter(|f| !view.hosts.contains_key(&f.host))
                    .filter_map(|f| crate::judge::findings::review(f, &ctx)),
            );
            out
        };
        let commit = Commit {
            run: None,
            hosts: changed.clone(),
            removed_hosts: Vec::new(),
            events,
            findings: findings.clone(),
            ..Default::default()
        };
        if let Err(e) = store::blocking(&self.store, move |s| s.commit(&commit)).await {
            tracing::error!(error = %e, "cannot store re-judged verdicts; keeping the running configuration");
            self.metrics.error(Stage::Store, e.kind());
            return None;
        }
        let mut view = self.state.write();
        for h in changed {
            view.hosts.insert(h.id.clone(), h);
        }
        findings::publish(&mut view, findings);
        Some(n)
    }

    /// SIGHUP: load and validate the file again; apply it, or keep the old one and say why.
    async fn reload(&mut self) {
        let new = match config::load(self.config_path.as_deref(), &self.overrides) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
                self.metrics.error(Stage::Config, "reload");
                return;
            }
        };
        // The listener, its TLS/auth file and the telemetry path are set up once; `max_port_series`,
        // `vm_metadata` and `max_device_series` apply now.
        let (w, old) = (&new.web, &self.config.web);
        let web_moved = w.listen != old.listen
            || w.config_file != old.config_file
            || w.telemetry_path != old.telemetry_path;
        if new.storage.path != self.config.storage.path || web_moved {
            tracing::warn!(
                "storage.path and web.listen_address, web.config_file and web.telemetry_path change only on restart; the rest is applied now"
            );
        }
        self.max_port_series
            .store(new.web.max_port_series, Ordering::Relaxed);
        {
            let mut view = self.state.write();
            view.max_ack = new.max_ack;
            view.vm_metadata = new.web.vm_metadata;
            view.max_device_series = new.web.max_device_series;
            view.scans_per_minute = new.scans_per_minute;
            view.exceptions = exceptions_of(&new.policy);
        }
        // Re-judge the known state under the new policy so verdicts change at once.
        let Some(changed) = self.rejudge(&new.policy).await else {
            return;
        };
        self.generation += 1;
        let recent = store::blocking(&self.store, |s| s.scans(None, 200))
            .await
            .unwrap_or_default();
        {
            let mut view = self.state.write();
            view.groups = group_status(&new, &recent);
            if let Some(s) = view.stages.get_mut(&Stage::Discovery) {
                s.interval = new.discovery_interval;
                s.jitter = new.jitter;
            }
            match &new.gmp {
                Some((_, interval)) => {
                    let s = view
                        .stages
                        .entry(Stage::Vulnerabilities)
                        .or_insert(StageStatus {
                            interval: *interval,
                            ..StageStatus::default()
                        });
                    s.interval = *interval;
                }
                None => {
                    view.stages.remove(&Stage::Vulnerabilities);
                }
            }
        }
        tracing::info!(
            config = %new.source,
            verdicts_changed = changed,
            "configuration reloaded"
        );
        // Clouds get new sessions (a changed clouds.yaml or password applies too); a source that
        // keeps its name keeps its last good inventory. The CIDR groups follow the new
        // configuration whatever happens to the clouds.
        match inventory::build(&new) {
            Ok(sources) => {
                self.last_good
                    .retain(|name, _| sources.iter().any(|s| s.live() && s.name() == name));
                self.sources = sources;
            }
            Err((e, static_sources)) => {
                tracing::error!(error = %format!("{e:#}"), "cannot set up the reloaded OpenStack sources; keeping the running ones");
                self.metrics.error(Stage::Config, "reload");
                let running = self.sources.iter().filter(|s| s.live()).cloned();
                self.sources = static_sources.into_iter().chain(running).collect();
            }
        }
        self.nmap = cycle::nmap_capabilities(&new).await;
        self.config = new;
        // The digest follows the new [email] at once; its window survives in the store either way.
        if self.config.email.is_none() {
            self.state.write().email = None;
            self.email_retry_at = None;
        } else {
            // Windows of recipient sets the reload added start now (their first digest is a
            // summary); known ones keep theirs.
            self.load_email_state().await;
        }
    }
}

#[cfg(test)]
mod loop_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_fractions_differ_within_zero_to_one() {
        let f = random_fraction();
        assert!((0.0..1.0).contains(&f));
    }
}
