//! The discover phase of a pass: every unit scanned in turn by the discovering probers, from its
//! network namespace, with changed ports re-probed; what each target showed, and which units could
//! not be scanned.

use super::{reprobe, Observed};
use crate::config::Config;
use crate::inventory::Unit;
use crate::judge;
use crate::model::{HostObservation, HostState, Outcome, ScanRun};
use crate::scan::{self, Progress};
use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Scan one unit: the distinct addresses once each (two VMs may share a fixed address in different
/// networks, never within one unit's namespace), from its namespace when it has one, by every
/// prober, folded into one observation per address.
pub(super) async fn scan_unit(
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

/// What scanning the units gave.
pub(super) struct Scanned {
    pub(super) observed: Vec<Observed>,
    /// Ids of the targets still in some group's inventory (seen now, or kept by a failed namespace).
    pub(super) in_inventory: HashSet<String>,
    /// Per unit: its group, targets, and whether it was scanned.
    pub(super) coverage: Vec<(String, u64, bool)>,
    pub(super) reprobes: reprobe::Counts,
    /// (target id, group, scanned) of every unit's targets.
    pub(super) targets: Vec<(String, String, bool)>,
}

/// Scan every unit in turn, adding probe counts and errors to `run`. A namespace that cannot be
/// entered costs its own addresses (they stay in the inventory); any other error, or a cancel,
/// stops the scan and sets `run.outcome`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn scan_units(
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
