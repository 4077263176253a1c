//! Start-up: the in-memory view filled from the store before any scan (hosts, VMs, findings, the
//! stages' last runs and the groups' coverage), so the last known state is served at once after a
//! restart; and the parts of the view a configuration decides, which a reload sets again.

use crate::config::Config;
use crate::model::{Outcome, ScanRun, Stage, UnixSeconds};
use crate::state::{GroupStatus, StageStatus, State};
use crate::store::{self, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Fill the in-memory view from the store, so the last known state is served before any scan.
pub(super) async fn load_state(
    store: &Store,
    state: &State,
    config: &Config,
) -> anyhow::Result<()> {
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
pub(super) fn exceptions_of(policy: &crate::judge::Policy) -> Vec<(String, UnixSeconds)> {
    policy
        .exceptions
        .iter()
        .map(|e| (e.name.clone(), e.expires))
        .collect()
}

/// Coverage per group: its inventory size (this shard's part of it) and its last successful scan
/// among `recent` runs.
pub(super) fn group_status(config: &Config, recent: &[ScanRun]) -> Vec<GroupStatus> {
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
