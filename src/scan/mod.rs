//! Scan stage: how to look, at the addresses the inventory hands it — and at no other address.
//! Every scanner is a [`Prober`] (see `prober`): the native TCP connect scan (`tcp`) and UDP
//! exposure probes (`udp`) discover, nmap (`nmap`) identifies the services on what they found
//! open, Greenbone (`gmp`) assesses the hosts for vulnerabilities; each returns model
//! observations. [`Progress`] is shared with the caller so long scans show progress in logs and
//! metrics.

pub mod gmp;
pub mod gmp_xml;
pub mod netns;
pub mod nmap;
pub mod nmap_xml;
pub mod prober;
pub mod tcp;
mod timing;
pub mod udp;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use prober::{Batch, Job, Observations, Phase, Prober};
pub use tcp::{scan as tcp_scan, Settings as TcpSettings};

/// Live counters of a running scan, readable from other tasks while it runs.
#[derive(Debug, Default)]
pub struct Progress {
    pub total: AtomicU64,
    pub done: AtomicU64,
    pub open: AtomicU64,
    pub closed: AtomicU64,
    pub filtered: AtomicU64,
    pub errors: AtomicU64,
    /// Times a probe could not get a file descriptor or local port and had to wait.
    pub resource_waits: AtomicU64,
}

impl Progress {
    /// Fraction of probes done, 0..=1.
    pub fn ratio(&self) -> f64 {
        let total = self.total.load(Ordering::Relaxed);
        if total == 0 {
            return 0.0;
        }
        (self.done.load(Ordering::Relaxed) as f64 / total as f64).min(1.0)
    }
}

impl crate::model::StageProgress for Progress {
    fn ratio(&self) -> f64 {
        Progress::ratio(self)
    }

    fn counts(&self) -> Option<(u64, u64)> {
        Some((
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        ))
    }
}

/// Scanner errors (a failed probe is counted, not an error; these stop a job).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("scan cancelled by shutdown")]
    Cancelled,
    #[error("a scan worker failed: {0}")]
    Worker(String),
    #[error(transparent)]
    Namespace(#[from] netns::Error),
    #[error(transparent)]
    Nmap(#[from] nmap::Error),
    #[error(transparent)]
    Gmp(#[from] gmp::Error),
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Cancelled => "cancelled",
            Error::Worker(_) => "worker",
            Error::Namespace(e) => e.kind(),
            Error::Nmap(e) => e.kind(),
            Error::Gmp(e) => e.kind(),
        }
    }
}

/// Raise the soft open-file limit to the hard limit so many connects can be in flight; returns the
/// resulting soft limit (the scanner sizes its concurrency to fit under it).
pub fn raise_nofile_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit; scan concurrency will be lower");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

/// Default probe timeouts and limits, shared by the config defaults and the tests.
pub mod defaults {
    use super::Duration;
    pub const CONCURRENCY: usize = 5000;
    pub const RETRIES: u32 = 1;
    pub const INITIAL_TIMEOUT: Duration = Duration::from_secs(1);
    pub const MIN_TIMEOUT: Duration = Duration::from_millis(100);
    pub const MAX_TIMEOUT: Duration = Duration::from_secs(3);
}
