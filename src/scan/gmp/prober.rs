//! Greenbone as a [`Prober`] of the assess phase ([`Greenbone`]): one job is one gvmd run (or, with
//! `import_task`, one imported report) over the addresses asked about with their open TCP ports;
//! each address it covered gets its whole report as a model observation
//! ([`HostObservation::reported`](crate::model::HostObservation)), one it did not gets nothing.

use super::{scan, vulnerabilities, Progress, Settings};
use crate::scan::prober::{Job, Observations, Phase, Prober, Running};
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

/// gvmd, reached as `[scan.gmp]` says, with the live progress its runs update.
#[derive(Debug, Clone)]
pub struct Greenbone {
    settings: Settings,
    progress: Arc<Progress>,
}

impl Greenbone {
    pub fn new(settings: Settings, progress: Arc<Progress>) -> Self {
        Greenbone { settings, progress }
    }
}

impl Prober for Greenbone {
    fn name(&self) -> &'static str {
        "greenbone"
    }

    fn phase(&self) -> Phase {
        Phase::Assess
    }

    /// gvmd scans from where it runs: the job's namespace is not entered (the agent asks only
    /// about addresses gvmd reaches, `[scan.gmp] reachable` and `namespaced_hosts`).
    fn probe(&self, job: Job) -> Running {
        let Greenbone { settings, progress } = self.clone();
        Box::pin(async move {
            let hosts: Vec<(IpAddr, Vec<u16>)> = job
                .addresses
                .iter()
                .copied()
                .zip(job.open.iter().cloned())
                .collect();
            let outcome = scan(&settings, &hosts, progress, job.cancel).await?;
            let mut found = vulnerabilities(&outcome.results);
            // A scan covers every host asked about; an import, the hosts its report names.
            let named: BTreeSet<IpAddr> = outcome
                .summary
                .hosts
                .iter()
                .filter_map(|h| h.trim().parse().ok())
                .collect();
            let mut out = Observations::empty(job.addresses.len());
            for (obs, address) in out.hosts.iter_mut().zip(job.addresses.iter()) {
                let covered = !outcome.imported || named.contains(address);
                obs.reported = match found.remove(address) {
                    Some(list) => Some(list),
                    None if covered => Some(Vec::new()),
                    None => None,
                };
            }
            tracing::info!(
                report = %outcome.report_id,
                results = outcome.results.len(),
                hosts = out.hosts.iter().filter(|h| h.reported.is_some()).count(),
                imported = outcome.imported,
                "Greenbone report read"
            );
            Ok(out)
        })
    }
}
