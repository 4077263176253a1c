//! The discovery task: one pass of inventory (every source) → TCP scan → nmap services → judgement,
//! run as a task of its own so that the agent's loop stays free for reloads, shutdown, the digest and
//! Greenbone while it runs. It writes only the inventory's health and VMs to the view (as they
//! arrive) and the live progress; the pass itself goes back to the loop, which stores and publishes
//! it.

use super::cycle;
use super::inventory::{self, LastGood};
use crate::config::Config;
use crate::expose::metrics::Metrics;
use crate::inventory::Source;
use crate::model::{ScanRun, Stage};
use crate::scan::{nmap, Progress};
use crate::state::State;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often a running scan logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// Everything one pass needs, owned: the configuration as it was when the pass started (a reload
/// applies to the next one), the inventory sources and the live ones' last good inventories, the
/// shared state.
pub struct Job {
    pub config: Arc<Config>,
    /// Which configuration this is (the loop counts reloads): a pass that ran under an older one
    /// is re-judged under the new policy when it is stored.
    pub generation: u64,
    pub run: ScanRun,
    pub sources: Vec<Arc<dyn Source>>,
    pub last_good: LastGood,
    pub state: Arc<State>,
    pub metrics: Metrics,
    pub fd_limit: u64,
    pub nmap: Option<nmap::Capabilities>,
    pub cancel: CancellationToken,
    pub mode: Mode,
}

/// What kind of pass a [`Job`] runs.
pub enum Mode {
    /// Inventory every source, scan everything.
    Full,
    /// A targeted pass (an on-demand scan): the live sources (clouds) are not asked again, and only
    /// these targets are scanned.
    Focused(cycle::Focus),
    /// Ask the clouds what changed; apply it, and scan what it touched (nothing is recorded when
    /// nothing changed). The store records the run once there is one.
    Changes(crate::store::Store),
}

/// What a pass hands back to the loop.
pub struct Done {
    /// `None`: a change poll that found nothing to record.
    pub pass: Option<cycle::Pass>,
    pub round: inventory::Round,
    /// The live sources' last good inventories after this pass's inventory.
    pub last_good: LastGood,
    pub generation: u64,
    /// A cloud's change poll asks for a full inventory (its change list could not be trusted).
    pub full_needed: bool,
}

impl Job {
    /// Run the pass; the live progress is in the state while it runs.
    pub async fn run(mut self) -> Done {
        let progress = Arc::new(Progress::default());
        let nmap_progress = Arc::new(nmap::Progress::default());
        self.state
            .set_progress(Stage::Discovery, Some(progress.clone()));
        self.state
            .set_progress(Stage::Services, Some(nmap_progress.clone()));
        let reporter = tokio::spawn(report_progress(progress.clone(), self.run.id));
        let mode = std::mem::replace(&mut self.mode, Mode::Full);
        let mut full_needed = false;
        let (mut round, focus) = match mode {
            Mode::Full => {
                let round = inventory::round(
                    &self.sources,
                    &self.config.shard,
                    &mut self.last_good,
                    &self.state,
                    &self.metrics,
                    self.run.id,
                    &self.cancel,
                )
                .await;
                (round, None)
            }
            Mode::Focused(focus) => (
                inventory::cached(&self.sources, &self.last_good, &self.cancel).await,
                Some(focus),
            ),
            Mode::Changes(store) => {
                let (changed, full) = super::changes::poll(super::changes::Polls {
                    sources: &self.sources,
                    shard: &self.config.shard,
                    last_good: &mut self.last_good,
                    state: &self.state,
                    metrics: &self.metrics,
                    store: &store,
                    skeleton: self.run.clone(),
                    cancel: &self.cancel,
                })
                .await;
                full_needed = full;
                let Some(changed) = changed else {
                    reporter.abort();
                    self.state.set_progress(Stage::Discovery, None);
                    self.state.set_progress(Stage::Services, None);
                    return Done {
                        pass: None,
                        round: inventory::Round::default(),
                        last_good: self.last_good,
                        generation: self.generation,
                        full_needed,
                    };
                };
                self.run = changed.run;
                (changed.round, Some(changed.focus))
            }
        };
        let prev = self.state.read().hosts.clone();
        let ctx = cycle::Context {
            fd_limit: self.fd_limit,
            nmap: self.nmap.as_ref(),
            progress,
            nmap_progress,
            cancel: self.cancel.clone(),
            focus,
        };
        let to_scan = std::mem::take(&mut round.to_scan);
        let pass = cycle::discovery(&self.config, self.run, &prev, to_scan, ctx).await;
        reporter.abort();
        self.state.set_progress(Stage::Discovery, None);
        self.state.set_progress(Stage::Services, None);
        Done {
            pass: Some(pass),
            round,
            last_good: self.last_good,
            generation: self.generation,
            full_needed,
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
