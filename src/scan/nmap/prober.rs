//! nmap as a [`Prober`] of the identify phase ([`Services`]): it is given what discovery found open
//! on each address, batches every job of a pass across network namespaces ([`run_scoped`]), and
//! returns each address's services, UDP states, OS guesses and CVEs as model observations
//! ([`fold`]), limited to the ports that job asked about.

use super::{fold, run_scoped, Capabilities, HostServices, Job, Progress, Scope, Settings};
use crate::scan::prober::{self, Batch, Observations, Phase, Prober, Running, RunningBatch};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

/// nmap's service detection, with the binary's capabilities and the live progress it updates.
#[derive(Debug, Clone)]
pub struct Services {
    settings: Settings,
    caps: Capabilities,
    progress: Arc<Progress>,
}

impl Services {
    pub fn new(settings: Settings, caps: Capabilities, progress: Arc<Progress>) -> Self {
        Services {
            settings,
            caps,
            progress,
        }
    }

    /// Run nmap over the jobs: one scope per namespace, each address once per scope with the
    /// union of its jobs' open ports; answers go back to the jobs by (namespace, address).
    async fn identify(&self, jobs: &[prober::Job]) -> Batch {
        let Some(cancel) = jobs.first().map(|j| j.cancel.child_token()) else {
            return Batch::default();
        };
        let mut wanted: BTreeMap<Option<&Path>, BTreeMap<IpAddr, BTreeSet<u16>>> = BTreeMap::new();
        for job in jobs {
            for (address, open) in job.addresses.iter().zip(job.open.iter()) {
                if !open.is_empty() {
                    wanted
                        .entry(job.namespace.as_deref())
                        .or_default()
                        .entry(*address)
                        .or_default()
                        .extend(open);
                }
            }
        }
        let scoped: Vec<(Option<&Path>, Vec<Job>)> = wanted
            .into_iter()
            .map(|(ns, hosts)| {
                let hosts = hosts
                    .into_iter()
                    .map(|(address, ports)| Job {
                        address,
                        tcp_ports: ports.into_iter().collect(),
                    })
                    .collect();
                (ns, hosts)
            })
            .collect();
        let scopes: Vec<Scope<'_>> = scoped
            .iter()
            .map(|(namespace, jobs)| Scope {
                namespace: *namespace,
                jobs,
            })
            .collect();
        let (found, errors) = run_scoped(
            &scopes,
            &self.settings,
            &self.caps,
            self.progress.clone(),
            cancel,
        )
        .await;
        let by_host: BTreeMap<(Option<&Path>, IpAddr), &HostServices> = scopes
            .iter()
            .zip(&found)
            .flat_map(|(scope, hosts)| hosts.iter().map(|h| ((scope.namespace, h.address), h)))
            .collect();
        let observed = jobs
            .iter()
            .map(|job| {
                let mut out = Observations::empty(job.addresses.len());
                for ((obs, address), open) in out
                    .hosts
                    .iter_mut()
                    .zip(job.addresses.iter())
                    .zip(job.open.iter())
                {
                    if let Some(host) = by_host.get(&(job.namespace.as_deref(), *address)) {
                        // fold keeps the TCP answers of the ports in `open`: this job's.
                        obs.open.clone_from(open);
                        obs.open.sort_unstable();
                        obs.open.dedup();
                        fold(obs, host);
                        obs.open = Vec::new();
                    }
                }
                out
            })
            .collect();
        Batch {
            jobs: observed,
            errors: errors.into_iter().map(crate::scan::Error::Nmap).collect(),
        }
    }
}

impl Prober for Services {
    fn name(&self) -> &'static str {
        "nmap"
    }

    fn phase(&self) -> Phase {
        Phase::Identify
    }

    /// One job on its own: what nmap identified, or its first error when it identified nothing.
    fn probe(&self, job: prober::Job) -> Running {
        let this = self.clone();
        Box::pin(async move {
            let mut batch = this.identify(std::slice::from_ref(&job)).await;
            let out = batch.jobs.pop().unwrap_or_else(|| Observations::empty(0));
            let identified = out.hosts.iter().any(|h| h.services_known);
            match batch.errors.into_iter().next() {
                Some(e) if !identified => Err(e),
                _ => Ok(out),
            }
        })
    }

    fn probe_many(self: Arc<Self>, jobs: Vec<prober::Job>) -> RunningBatch {
        Box::pin(async move { self.identify(&jobs).await })
    }
}
