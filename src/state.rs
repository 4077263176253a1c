//! The agent's in-memory view of what the store holds: latest host states, per-group coverage and
//! per-stage health. Written by the cycle after each commit (and loaded from the store at start-up),
//! read by /metrics and the API — so a scrape never touches RocksDB and never waits for a scan.

pub mod on_demand;

use crate::model::{DiagnosticsCounts, Finding, HostState, Stage, StageProgress, UnixSeconds, Vm};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Coverage of one target group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStatus {
    pub name: String,
    /// Addresses in the inventory.
    pub targets: u64,
    /// Finish time of the last successful scan of the group.
    pub last_success: Option<UnixSeconds>,
    /// How long that scan took (part of the allowed age of a "recent" scan).
    pub last_duration: f64,
}

/// When one target was last scanned.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetScan {
    pub group: String,
    pub last: Option<UnixSeconds>,
}

/// Health and schedule of one stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageStatus {
    pub interval: Duration,
    pub jitter: Duration,
    pub last_success: Option<UnixSeconds>,
    /// Whether the last finished run succeeded (None before any run).
    pub last_ok: Option<bool>,
    pub in_progress: bool,
    /// Failed runs in a row (0 after a success): how long the next retry waits.
    pub failures: u32,
    /// When a failed stage tries again (None after a success).
    pub retry_at: Option<UnixSeconds>,
}

/// How an inventory source is doing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStatus {
    /// Whether the last inventory succeeded (the VMs served are from `last_success` otherwise).
    pub up: bool,
    pub last_success: Option<UnixSeconds>,
    pub last_attempt: Option<UnixSeconds>,
    /// Seconds the last successful inventory took.
    pub duration: f64,
    /// The last error, when the last inventory failed.
    pub error: Option<String>,
    pub servers: u64,
    pub targets: u64,
    /// Diagnostics outcomes of the last inventory (also accumulated into counters).
    pub diagnostics: DiagnosticsCounts,
    pub names_complete: bool,
    /// Differences full inventories found from what the change polls kept, since start.
    pub drift: u64,
}

/// How the digest e-mail is doing (present when `[email]` is enabled).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmailStatus {
    /// When the last digest window closed: a digest sent, or none needed (nothing to report).
    pub last_digest: Option<UnixSeconds>,
    /// Whether the last delivery attempt succeeded (None before any).
    pub last_attempt_ok: Option<bool>,
    /// Digests delivered since start.
    pub sent: u64,
}

/// Everything /metrics and the API read.
#[derive(Debug, Default)]
pub struct View {
    pub hosts: BTreeMap<String, HostState>,
    /// Every finding by id (resolved ones until retention removes them), as stored.
    pub findings: BTreeMap<String, Finding>,
    /// Longest acknowledgement the API accepts (`[findings] max_ack`).
    pub max_ack: Duration,
    /// Whether the API shows VMs' Nova metadata (`[web] vm_metadata`).
    pub vm_metadata: bool,
    /// Most per-device series /metrics exports (`[web] max_device_series`; 0: no limit).
    pub max_device_series: usize,
    /// On-demand scans each user may ask for per minute (`[scan.targeted] max_per_minute`).
    pub scans_per_minute: u32,
    /// The configuration's `[[policy.exceptions]]`: name and expiry (counted active or expired at
    /// each scrape).
    pub exceptions: Vec<(String, UnixSeconds)>,
    /// Every target of the last good pass's inventories by id: its group and when a completed pass
    /// last scanned it (`None`: not since this process started). Per-target coverage.
    pub target_scans: std::collections::HashMap<String, TargetScan>,
    /// Cloud VMs by instance id (OpenStack sources), as of each source's last good inventory.
    pub vms: BTreeMap<String, Arc<Vm>>,
    /// Per inventory source (`[[openstack]] name`): how its last inventory went.
    pub sources: BTreeMap<String, SourceStatus>,
    /// gvmd's feeds and their timestamps, from the last Greenbone run.
    pub gmp_feeds: Vec<(String, f64)>,
    pub email: Option<EmailStatus>,
    pub groups: Vec<GroupStatus>,
    pub stages: BTreeMap<Stage, StageStatus>,
    /// Addresses the last pass's inventories named that `[scope]` kept out: (group, reason, count).
    pub out_of_scope: Vec<(String, &'static str, u64)>,
}

impl View {
    /// Whether a group's last good scan is within its interval (plus jitter and the scan's own
    /// duration): the coverage metric `stinger_targets_scanned` counts only such groups' targets.
    pub fn group_is_fresh(&self, g: &GroupStatus, now: UnixSeconds) -> bool {
        let Some(last) = g.last_success else {
            return false;
        };
        let allowed = self
            .stages
            .get(&Stage::Discovery)
            .map_or(f64::INFINITY, |s| {
                s.interval.as_secs_f64() + s.jitter.as_secs_f64() + g.last_duration + 60.0
            });
        now - last <= allowed
    }
}

/// The shared state, one per agent.
#[derive(Debug, Default)]
pub struct State {
    view: RwLock<View>,
    /// Progress of each stage running now.
    progress: RwLock<BTreeMap<Stage, Arc<dyn StageProgress>>>,
    ready: AtomicBool,
    /// Held by whoever changes findings (the agent storing a pass, an API ack): each reads the
    /// current findings, writes the store, then the view, so no change overwrites another.
    findings_write: tokio::sync::Mutex<()>,
    /// Signalled when someone other than the agent changed findings (an API ack): the agent's loop
    /// recomputes when the next acknowledgement expires.
    findings_changed: tokio::sync::Notify,
    /// Scans users asked for, waiting for the loop.
    pub on_demand: on_demand::OnDemand,
}

impl State {
    pub fn read(&self) -> RwLockReadGuard<'_, View> {
        // A writer that panicked leaves the last view it wrote; serving it beats failing every read.
        self.view.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, View> {
        self.view.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Publish (`Some`) or clear (`None`, the run ended) a stage's live progress.
    pub fn set_progress(&self, stage: Stage, p: Option<Arc<dyn StageProgress>>) {
        let mut all = self.progress.write().unwrap_or_else(|e| e.into_inner());
        match p {
            Some(p) => all.insert(stage, p),
            None => all.remove(&stage),
        };
    }

    /// The live progress of a stage that is running, if it reports one.
    pub fn progress(&self, stage: Stage) -> Option<Arc<dyn StageProgress>> {
        self.progress
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&stage)
            .cloned()
    }

    /// Take the findings write lock (see [`State`]); hold it from reading the current findings
    /// until the view has the changed ones.
    pub async fn lock_findings(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.findings_write.lock().await
    }

    /// Tell the agent's loop that findings changed outside it (see [`State::findings_changed`]).
    pub fn notify_findings(&self) {
        self.findings_changed.notify_one();
    }

    /// Completes when [`State::notify_findings`] was called (at once if it was since the last wait).
    pub async fn findings_changed(&self) {
        self.findings_changed.notified().await;
    }

    /// Ready once the store is open and the last known state is loaded.
    pub fn set_ready(&self) {
        self.ready.store(true, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}
