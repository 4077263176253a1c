//! The scanner seam. Every scanner — the TCP connect scan, the UDP exposure probes, nmap's service
//! detection, Greenbone — is a [`Prober`]: it takes [`Job`]s (addresses, the ports to look at, the
//! network namespace to look from, the shutdown token) and returns model observations,
//! index-aligned with the addresses. Each converts its own output to `model` types here in `scan`;
//! the agent only folds observations ([`HostObservation::merge`]) and matches them back by
//! (namespace, address). Adding a scanner is one file implementing this trait plus its line in a
//! registry (`app::cycle::probers` for a pass's, `app::vulns::scanner` for the scheduled one).
//!
//! A prober's [`Phase`] says what it is given and when it runs: [`Phase::Discover`] probes every
//! address of a unit, one unit after another; [`Phase::Identify`] looks closer at what discovery
//! found open, in one batch over every unit of the pass (nmap keeps its processes full across
//! namespaces); [`Phase::Assess`] runs for hours on a schedule of its own, over the stored hosts
//! with open ports (Greenbone).

use super::{netns, Error, Progress};
use crate::model::{HostObservation, ProbeCounts};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// One unit's probe job, owned (a job in a network namespace runs on a thread of its own).
#[derive(Debug, Clone)]
pub struct Job {
    /// Distinct addresses, ascending; nothing else may be probed.
    pub addresses: Arc<[IpAddr]>,
    /// The unit's TCP ports (a prober with a port list of its own, as UDP's, ignores them).
    pub ports: Arc<[u16]>,
    /// What discovery found open on each address (TCP), index-aligned with `addresses`: the ports
    /// an identifying or assessing prober looks at. Empty for a discovery job.
    pub open: Arc<[Vec<u16>]>,
    /// The namespace to probe from; `None`: the agent's own.
    pub namespace: Option<PathBuf>,
    /// The process' open-file limit, which sizes a discovering prober's concurrency (0 in a job
    /// for an identifying or assessing prober: nmap and gvmd are processes of their own).
    pub fd_limit: u64,
    /// Discovery's live counters (a prober with progress of its own, as nmap's, keeps that).
    pub progress: Arc<Progress>,
    pub cancel: CancellationToken,
}

/// What one prober saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Observations {
    /// Index-aligned with [`Job::addresses`].
    pub hosts: Vec<HostObservation>,
    pub counts: ProbeCounts,
    /// Measured smoothed RTT per host (`None` where nothing answered).
    pub srtt: Vec<Option<Duration>>,
}

impl Job {
    /// A job on what discovery found open (`open`, index-aligned with `addresses`), for a prober
    /// that identifies or assesses: no unit ports, no descriptor budget of its own, fresh counters.
    pub fn on_open(
        addresses: Vec<IpAddr>,
        open: Vec<Vec<u16>>,
        namespace: Option<PathBuf>,
        cancel: CancellationToken,
    ) -> Job {
        Job {
            addresses: addresses.into(),
            ports: Arc::from([]),
            open: open.into(),
            namespace,
            fd_limit: 0,
            progress: Arc::default(),
            cancel,
        }
    }
}

impl Observations {
    /// Nothing seen yet on `n` addresses.
    pub fn empty(n: usize) -> Self {
        Observations {
            hosts: vec![HostObservation::default(); n],
            counts: ProbeCounts::default(),
            srtt: vec![None; n],
        }
    }
}

/// What a prober saw over several jobs: one [`Observations`] per job, in the jobs' order (a job
/// that failed has nothing observed), and the errors that cost a part of them.
#[derive(Debug, Default)]
pub struct Batch {
    pub jobs: Vec<Observations>,
    pub errors: Vec<Error>,
}

/// A running probe job.
pub type Running = Pin<Box<dyn Future<Output = Result<Observations, Error>> + Send + 'static>>;

/// A running batch of jobs.
pub type RunningBatch = Pin<Box<dyn Future<Output = Batch> + Send + 'static>>;

/// When a prober runs and what its jobs hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Every address of a unit, on the unit's ports (or the prober's own): first in a pass, one
    /// unit at a time, each with [`Prober::probe`].
    Discover,
    /// The addresses discovery found open ports on, with those ports ([`Job::open`]): after
    /// discovery, every unit of the pass in one [`Prober::probe_many`].
    Identify,
    /// The stored hosts with open ports, on the prober's own schedule.
    Assess,
}

/// A native scanner of a unit's addresses.
pub trait Prober: Send + Sync + 'static {
    /// Short name for logs (`tcp`, `udp`, `nmap`, `greenbone`).
    fn name(&self) -> &'static str;
    /// When it runs (see [`Phase`]).
    fn phase(&self) -> Phase {
        Phase::Discover
    }
    /// Whether its counts and round-trip times are the pass's (discovery's: the TCP scan); the
    /// others' counts are logged.
    fn discovers(&self) -> bool {
        false
    }
    /// Probe the job's addresses; a cancel stops it with [`Error::Cancelled`].
    fn probe(&self, job: Job) -> Running;
    /// Probe several jobs (of different namespaces). By default one after another, a failed job
    /// costing only its own addresses; a cancel stops the rest. A prober that batches across
    /// jobs (nmap) does better.
    fn probe_many(self: Arc<Self>, jobs: Vec<Job>) -> RunningBatch {
        Box::pin(async move {
            let mut batch = Batch::default();
            let mut cancelled = false;
            for job in jobs {
                let n = job.addresses.len();
                if cancelled {
                    batch.jobs.push(Observations::empty(n));
                    continue;
                }
                match self.probe(job).await {
                    Ok(out) if out.hosts.len() == n => batch.jobs.push(out),
                    Ok(out) => {
                        batch.errors.push(Error::Worker(format!(
                            "the {} prober returned {} observations for {n} addresses",
                            self.name(),
                            out.hosts.len()
                        )));
                        batch.jobs.push(Observations::empty(n));
                    }
                    Err(e) => {
                        cancelled = matches!(e, Error::Cancelled);
                        batch.errors.push(e);
                        batch.jobs.push(Observations::empty(n));
                    }
                }
            }
            batch
        })
    }
}

/// Run `f` from the job's namespace (on a thread of its own there), or here when it has none.
pub fn in_namespace<F, Fut>(job: Job, f: F) -> Running
where
    F: FnOnce(Job) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Observations, Error>> + Send + 'static,
{
    match job.namespace.clone() {
        None => Box::pin(f(job)),
        Some(ns) => {
            let running = netns::spawn_in(&ns, move || f(job));
            Box::pin(async move { running.await? })
        }
    }
}

/// Probe one unit with every prober in turn, folding their observations into one per address.
/// The first discovering prober's counts and RTTs are the result's; a failure stops the unit.
pub async fn probe_all(probers: &[Arc<dyn Prober>], job: Job) -> Result<Observations, Error> {
    let n = job.addresses.len();
    let mut merged = Observations::empty(n);
    for prober in probers {
        let out = prober.probe(job.clone()).await?;
        if out.hosts.len() != n {
            return Err(Error::Worker(format!(
                "the {} prober returned {} observations for {n} addresses",
                prober.name(),
                out.hosts.len()
            )));
        }
        for (into, from) in merged.hosts.iter_mut().zip(out.hosts) {
            into.merge(from);
        }
        if prober.discovers() {
            merged.counts.add(&out.counts);
            merged.srtt = out.srtt;
        } else {
            tracing::debug!(
                prober = prober.name(),
                open = out.counts.open,
                closed = out.counts.closed,
                unanswered = out.counts.filtered,
                errors = out.counts.error,
                "probes done"
            );
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Answers a job by its size: one address is seen open on port 1, two fail, three are
    /// cancelled.
    struct BySize;

    impl Prober for BySize {
        fn name(&self) -> &'static str {
            "by-size"
        }

        fn probe(&self, job: Job) -> Running {
            Box::pin(async move {
                match job.addresses.len() {
                    1 => {
                        let mut out = Observations::empty(1);
                        out.hosts[0].open = vec![1];
                        Ok(out)
                    }
                    2 => Err(Error::Worker("two".into())),
                    _ => Err(Error::Cancelled),
                }
            })
        }
    }

    fn job(n: u8) -> Job {
        let addresses: Vec<IpAddr> = (1..=n).map(|i| IpAddr::from([127, 0, 0, i])).collect();
        let open = vec![Vec::new(); addresses.len()];
        Job::on_open(addresses, open, None, CancellationToken::new())
    }

    #[tokio::test]
    async fn by_default_a_failed_job_costs_its_own_addresses_and_a_cancel_the_rest() {
        let batch = Arc::new(BySize)
            .probe_many(vec![job(1), job(2), job(3), job(1)])
            .await;
        let sizes: Vec<usize> = batch.jobs.iter().map(|o| o.hosts.len()).collect();
        assert_eq!(
            sizes,
            [1, 2, 3, 1],
            "one observation per address of every job"
        );
        assert_eq!(batch.jobs[0].hosts[0].open, [1]);
        assert!(
            batch.jobs[1..]
                .iter()
                .all(|o| o.hosts.iter().all(|h| h.open.is_empty())),
            "the failed, the cancelled and the job after the cancel saw nothing"
        );
        let kinds: Vec<&str> = batch.errors.iter().map(Error::kind).collect();
        assert_eq!(
            kinds,
            ["worker", "cancelled"],
            "the job after the cancel never ran"
        );
    }
}
