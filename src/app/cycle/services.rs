//! The identify phase of a pass: the probers that look closer at what discovery found open (nmap's
//! services, versions, OS and CVEs), asked once per (namespace, address) over every unit, their
//! answers folded back into each target's observation.

use super::Observed;
use crate::model::{now, HostObservation};
use crate::scan;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

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

/// Ask the identifying probers (nmap) what runs on every host's open ports and fold the answers
/// into the observations. Each host is asked about from the namespace discovery probed it from:
/// the agent's own, or a tenant network's; answers go back to the observations of the same
/// (namespace, address) only, each target taking what was said about its own open ports. A
/// namespace that cannot be entered costs its hosts their services (they keep what discovery
/// found) and adds one error naming it.
pub(super) async fn services(
    observed: &mut [Observed],
    probers: &[Arc<dyn scan::Prober>],
    cancel: &CancellationToken,
) -> ServicesReport {
    let started = std::time::Instant::now();
    let mut report = ServicesReport {
        started: now(),
        ..Default::default()
    };
    // Open ports per (namespace, address): targets sharing both share one job's address.
    let mut wanted: BTreeMap<Option<Arc<Path>>, BTreeMap<IpAddr, BTreeSet<u16>>> = BTreeMap::new();
    for o in observed
        .iter()
        .filter(|o| !o.obs.open.is_empty() && !o.answers_everything)
    {
        wanted
            .entry(o.namespace.clone())
            .or_default()
            .entry(o.target.address)
            .or_default()
            .extend(&o.obs.open);
    }
    let jobs: Vec<scan::Job> = wanted
        .into_iter()
        .map(|(namespace, hosts)| {
            let (addresses, open): (Vec<IpAddr>, Vec<Vec<u16>>) = hosts
                .into_iter()
                .map(|(address, ports)| (address, ports.into_iter().collect()))
                .unzip();
            scan::Job::on_open(
                addresses,
                open,
                namespace.map(|p| p.to_path_buf()),
                cancel.clone(),
            )
        })
        .collect();
    report.hosts = jobs.iter().map(|j| j.addresses.len()).sum();
    if report.hosts == 0 || probers.is_empty() {
        return report;
    }
    tracing::info!(
        hosts = report.hosts,
        namespaces = jobs.iter().filter(|j| j.namespace.is_some()).count(),
        probers = probers.len(),
        "identifying services"
    );
    let mut found: BTreeMap<(Option<&Path>, IpAddr), HostObservation> = BTreeMap::new();
    for prober in probers {
        let batch = prober.clone().probe_many(jobs.clone()).await;
        for e in &batch.errors {
            tracing::warn!(prober = prober.name(), kind = e.kind(), error = %e, "service detection incomplete");
            report.errors.push((e.kind(), e.to_string()));
        }
        for (job, out) in jobs.iter().zip(batch.jobs) {
            for (address, obs) in job.addresses.iter().zip(out.hosts) {
                found
                    .entry((job.namespace.as_deref(), *address))
                    .or_default()
                    .merge(obs);
            }
        }
    }
    report.covered = found.values().filter(|o| o.services_known).count();
    for o in observed.iter_mut().filter(|o| !o.answers_everything) {
        if let Some(seen) = found.get(&(o.namespace.as_deref(), o.target.address)) {
            o.obs.merge_on_open(seen);
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
