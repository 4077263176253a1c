//! The agent: opens the store, serves the last known state at once, then schedules its stages —
//! discovery (inventory → scan → judge), Greenbone, the digest — until shutdown; a reload applies a
//! new configuration (an invalid one keeps the old). Each stage runs as a task of its own and
//! reports back over a channel, so the loop answers a reload or a shutdown within a second however
//! long a scan takes. `main` owns the signals and hands shutdown and reload in, so the whole loop
//! runs in-process in tests. The only module that wires stages together.
//!
//! Layout: the loop and discovery's place in it are here; `restore` fills the view from the store
//! at start, `reload` applies a new configuration, `discovery` runs a pass as a task (`cycle` is
//! the pass itself, `inventory` its sources), `changes` scans what a change poll exposed,
//! `targeted` runs the scans the API queued, `commit` stores a pass, `findings` keeps the
//! findings' lifecycle, `vulns` is Greenbone's stage, `digest` the e-mail, `schedule` when each
//! stage runs next, `once` the one-shot CLI scan.

mod changes;
mod commit;
pub mod cycle;
mod digest;
mod discovery;
mod findings;
pub mod inventory;
pub mod once;
mod reload;
mod restore;
pub mod schedule;
mod targeted;
pub mod vulns;

use crate::config::{Config, Overrides};
use crate::expose::{self, metrics::Metrics};
use crate::inventory::Source;
use crate::model::{now, Stage, UnixSeconds};
use crate::scan;
use crate::state::{StageStatus, State};
use crate::store::{self, Store};
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
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

use restore::load_state;

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
