//! The probe seam. Every native scanner that probes a unit's addresses itself (the TCP connect
//! scan, the UDP exposure probes) is a [`Prober`]: it takes a [`Job`] (the addresses, the unit's
//! ports, its network namespace, the shared progress and the shutdown token) and returns model
//! observations, index-aligned with the addresses. A pass runs the registered probers of a unit one
//! after the other and folds their observations into one per address
//! ([`HostObservation::merge`]). Adding such a scanner is one file implementing this trait plus its
//! line in the registry (`app::cycle::probers`).
//!
//! Stages of another shape are not probers: nmap's service detection works on what the probers
//! found, batched across units; Greenbone runs for hours on its own schedule.

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
    /// The namespace to probe from; `None`: the agent's own.
    pub namespace: Option<PathBuf>,
    pub fd_limit: u64,
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

/// A running probe job.
pub type Running = Pin<Box<dyn Future<Output = Result<Observations, Error>> + Send + 'static>>;

/// A native scanner of a unit's addresses.
pub trait Prober: Send + Sync {
    /// Short name for logs (`tcp`, `udp`).
    fn name(&self) -> &'static str;
    /// Whether its counts and round-trip times are the pass's (discovery's: the TCP scan); the
    /// others' counts are logged.
    fn discovers(&self) -> bool {
        false
    }
    /// Probe the job's addresses; a cancel stops it with [`Error::Cancelled`].
    fn probe(&self, job: Job) -> Running;
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
    let mut merged = Observations {
        hosts: vec![HostObservation::default(); n],
        counts: ProbeCounts::default(),
        srtt: vec![None; n],
    };
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
