//! nmap as a child process: service/version detection (-sV) on the ports discovery found open,
//! optional UDP (-sU) and OS detection (-O); batched, bounded, killed on shutdown. Parsing is
//! nmap_xml's. Only the addresses in the jobs ever reach nmap, and results are filtered back to
//! the ports each host's job asked for.
//!
//! Jobs come in [`Scope`]s, one per network namespace they are probed from: the agent's own, or a
//! Neutron network's `qdhcp-`/`qrouter-` namespace, whose batches each run nmap from a thread that
//! entered it ([`netns::spawn_in`]). A batch never mixes scopes, results come back per scope (one
//! fixed address can belong to two tenant networks), and a namespace that cannot be entered costs
//! only its own hosts (one [`Error::Namespace`]); all scopes share `parallel_batches`, one progress
//! estimate and the cancel token.
//!
//! Layout: `privileges` probes the binary and our rights, `args` builds nmap's command line,
//! `orphans` finds and kills batches a SIGKILLed agent left running,
//! `plan` groups the jobs into batches, `batch` runs one nmap process (with `task_progress`
//! following its progress), `observe` turns an answer into a model observation, `prober` is nmap
//! behind the scanner seam ([`Services`]); the public types and [`run_scoped`], which drives the
//! batches (`run`, one namespace's, serves the tests), are here.

mod args;
mod batch;
mod observe;
pub mod orphans;
mod plan;
mod privileges;
mod prober;
mod task_progress;
#[cfg(test)]
mod tests;

use observe::fold;
pub use privileges::probe_nmap;
pub use prober::Services;

use super::netns;
use super::nmap_xml::{self, OsMatch, Port};
use args::udp_enabled;
use batch::run_batch;
use plan::{plan_scopes, Batch};
use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// nmap settings (config `[scan.nmap]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The nmap binary; a bare name is looked up in PATH.
    pub path: PathBuf,
    /// `--version-intensity`, 0–9 (higher tries more probes, slower).
    pub version_intensity: u8,
    /// `-T` timing template, 0–5.
    pub timing: u8,
    /// `--host-timeout`: nmap gives up on a host (and reports no ports for it); 0 = none.
    pub host_timeout: Duration,
    /// Hosts per nmap process.
    pub batch_hosts: usize,
    /// nmap processes running at once.
    pub parallel_batches: usize,
    /// A batch still running after this is killed; hosts it had finished are kept.
    pub batch_timeout: Duration,
    /// UDP ports to scan on every host (needs raw sockets); empty = no UDP.
    pub udp_ports: Vec<u16>,
    /// `-O` (needs raw sockets).
    pub os_detection: bool,
    /// `--stats-every`: how often nmap reports progress (logged at info).
    pub stats_every: Duration,
    /// Run nmap's `vulners` script: CVEs for the identified versions (it asks vulners.com, so the
    /// agent's host needs to reach it).
    pub vulners: bool,
    /// `[scan.tcp] max_rate`, probes per second over all hosts (0: none): shared by the batches
    /// that run at once, each nmap gets `--max-rate` of its part.
    pub max_rate: u64,
    /// `[scan.tcp] max_host_rate`, probes per second to one host (0: none): `--scan-delay`.
    pub max_host_rate: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            path: PathBuf::from("nmap"),
            version_intensity: 7,
            timing: 4,
            host_timeout: Duration::from_secs(5 * 60),
            batch_hosts: 16,
            parallel_batches: 2,
            batch_timeout: Duration::from_secs(15 * 60),
            udp_ports: Vec::new(),
            os_detection: false,
            stats_every: Duration::from_secs(10),
            vulners: false,
            max_rate: 0,
            max_host_rate: 0,
        }
    }
}

/// What [`probe_nmap`] found out about the binary and our rights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capabilities {
    /// e.g. "7.93".
    pub version: String,
    /// nmap will have raw sockets (root, or CAP_NET_RAW it inherits): -sU and -O are possible.
    pub privileged: bool,
    /// Effective uid 0. A privileged non-root agent passes `--privileged` to nmap.
    pub root: bool,
}

/// One host with the TCP ports discovery found open on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub address: IpAddr,
    pub tcp_ports: Vec<u16>,
}

/// Jobs probed from one network namespace.
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a> {
    /// The namespace file (`/run/netns/qdhcp-<network id>`); `None`: the agent's own namespace.
    pub namespace: Option<&'a Path>,
    pub jobs: &'a [Job],
}

/// What nmap reported for one host, limited to the ports its job asked for (any state).
#[derive(Debug, Clone, PartialEq)]
pub struct HostServices {
    pub address: IpAddr,
    pub tcp: Vec<Port>,
    pub udp: Vec<Port>,
    pub os: Vec<OsMatch>,
}

/// Live counters of a running [`run_scoped`], readable from other tasks. The batch counters add up
/// over runs that share one `Progress`; `percent` is the current run's.
#[derive(Debug, Default)]
pub struct Progress {
    /// Estimated percent done of the current run, as `f64::to_bits` (see [`Progress::percent`]).
    pub percent: AtomicU64,
    pub batches_done: AtomicU64,
    pub batches_total: AtomicU64,
    pub failed_batches: AtomicU64,
}

impl Progress {
    pub fn percent(&self) -> f64 {
        f64::from_bits(self.percent.load(Ordering::Relaxed))
    }
}

impl crate::model::StageProgress for Progress {
    /// nmap's own estimate.
    fn ratio(&self) -> f64 {
        (self.percent() / 100.0).clamp(0.0, 1.0)
    }
}

/// nmap driver errors. A batch error never affects other batches.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "nmap not found at {}; install the Debian package nmap or set scan.nmap.path",
        show(path)
    )]
    NotFound { path: PathBuf },
    #[error("nmap {version} is too old: Stinger needs nmap 7.0 or newer (install the Debian package nmap or set scan.nmap.path)")]
    TooOld { version: String },
    #[error("could not run nmap at {}: {source}", show(path))]
    Spawn { path: PathBuf, source: io::Error },
    #[error("nmap batch killed after running {}s (scan.nmap.batch_timeout); hosts: {}", after.as_secs(), list(hosts))]
    Timeout { hosts: Vec<IpAddr>, after: Duration },
    #[error("nmap gave up on {address} after {}s (scan.nmap.host_timeout); no services reported for it", after.as_secs())]
    HostTimeout { address: IpAddr, after: Duration },
    #[error("nmap failed: {message}")]
    Nmap { message: String },
    #[error("nmap output unusable: {source}")]
    Output { source: nmap_xml::Error },
    #[error("nmap wrote more than {limit} bytes of XML; the batch was killed")]
    OutputTooLarge { limit: usize },
    #[error("nmap run cancelled by shutdown")]
    Cancelled,
    #[error("cannot run nmap in network namespace {namespace} (its hosts keep what discovery found): {source}")]
    Namespace {
        namespace: String,
        source: netns::Error,
    },
    #[error("in network namespace {namespace}: {source}")]
    InNamespace {
        namespace: String,
        source: Box<Error>,
    },
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "nmap_not_found",
            Error::TooOld { .. } => "nmap_too_old",
            Error::Spawn { .. } => "nmap_spawn",
            Error::Timeout { .. } => "nmap_timeout",
            Error::HostTimeout { .. } => "nmap_host_timeout",
            Error::Nmap { .. } => "nmap",
            Error::Output { .. } => "nmap_output",
            Error::OutputTooLarge { .. } => "nmap_output_too_large",
            Error::Cancelled => "cancelled",
            Error::Namespace { source, .. } => source.kind(),
            Error::InNamespace { source, .. } => source.kind(),
        }
    }

    /// The error itself, or the one [`Error::InNamespace`] wraps.
    pub fn innermost(&self) -> &Error {
        match self {
            Error::InNamespace { source, .. } => source.innermost(),
            e => e,
        }
    }

    /// Says which namespace a batch's error happened in.
    fn in_namespace(self, namespace: &str) -> Error {
        match self {
            e @ (Error::Cancelled | Error::Namespace { .. } | Error::InNamespace { .. }) => e,
            e => Error::InNamespace {
                namespace: namespace.to_string(),
                source: Box::new(e),
            },
        }
    }
}

/// Display name of a namespace file: its file name (`qdhcp-<network id>`).
fn namespace_name(ns: &Path) -> String {
    ns.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ns.display().to_string())
}

fn show(path: &Path) -> String {
    if path.components().count() == 1 {
        format!("\"{}\" (looked up in PATH)", path.display())
    } else {
        path.display().to_string()
    }
}

fn list(hosts: &[IpAddr]) -> String {
    let mut s: Vec<String> = hosts.iter().take(8).map(|h| h.to_string()).collect();
    if hosts.len() > 8 {
        s.push(format!("and {} more", hosts.len() - 8));
    }
    s.join(", ")
}

/// The only environment variables nmap (and its NSE scripts) inherit: the agent's own environment
/// holds `STINGER_GMP_PASSWORD`, `STINGER_SMTP_PASSWORD`, `OS_PASSWORD` and other secrets.
pub(crate) const CHILD_ENV: [&str; 8] = [
    "PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "NMAPDIR",
];

/// A command for nmap with an environment of [`CHILD_ENV`] only (plus the agent's marker, see
/// [`orphans`]).
fn nmap_command(path: &Path) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(path);
    cmd.env_clear();
    for (k, v) in std::env::vars_os() {
        if CHILD_ENV.iter().any(|keep| k == *keep) {
            cmd.env(k, v);
        }
    }
    if let Some(store) = orphans::marker() {
        cmd.env(orphans::MARKER, store);
    }
    cmd
}

fn spawn_error(path: &Path, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound { path: path.into() },
        _ => Error::Spawn {
            path: path.into(),
            source: e,
        },
    }
}

static UDP_WARNED: AtomicBool = AtomicBool::new(false);
static OS_WARNED: AtomicBool = AtomicBool::new(false);

// === running ===

struct Shared {
    settings: Settings,
    caps: Capabilities,
    udp_ports: Vec<u16>,
    progress: Arc<Progress>,
    total: usize,
    done: AtomicU64,
    /// Fraction done of each batch while it runs (nmap's latest task percent, never going back).
    fractions: Mutex<Vec<f64>>,
}

impl Shared {
    /// Recomputes `Progress::percent` after a batch finished.
    fn refresh(&self) -> f64 {
        self.set_fraction(usize::MAX, None)
    }

    /// Records batch `batch`'s fraction (`None`: it stopped running) and updates the overall
    /// percent, which it returns.
    fn set_fraction(&self, batch: usize, f: Option<f64>) -> f64 {
        let mut fr = match self.fractions.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(slot) = fr.get_mut(batch) {
            *slot = f.map_or(0.0, |f| f.max(*slot));
        }
        let running: f64 = fr.iter().sum();
        drop(fr);
        let done = self.done.load(Ordering::Relaxed) as f64;
        let pct = match self.total {
            0 => 100.0,
            n => (100.0 * (done + running) / n as f64).clamp(0.0, 100.0),
        };
        self.progress
            .percent
            .store(pct.to_bits(), Ordering::Relaxed);
        pct
    }
}

struct BatchOutcome {
    hosts: Vec<HostServices>,
    /// Host timeouts, plus at most one batch error (first).
    errors: Vec<Error>,
    failed: bool,
    cancelled: bool,
}

/// Service-scans the jobs' hosts from the agent's own network namespace, at most
/// `parallel_batches` nmap processes at a time. Returns every host nmap finished (sorted by
/// address) and every error; a failed batch only loses its own hosts. On `cancel`, running nmaps
/// are killed and what finished before is returned along with [`Error::Cancelled`]. The tests'
/// entry point; the agent goes through [`Services`], which batches over namespaces.
#[cfg(test)]
async fn run(
    jobs: &[Job],
    settings: &Settings,
    caps: &Capabilities,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> (Vec<HostServices>, Vec<Error>) {
    let scope = Scope {
        namespace: None,
        jobs,
    };
    let (mut found, errors) = run_scoped(&[scope], settings, caps, progress, cancel).await;
    (found.pop().unwrap_or_default(), errors)
}

/// Service-scan jobs in one or several network namespaces: each scope's batches run nmap from
/// inside its namespace (a thread that entered it, see [`netns::spawn_in`]), all scopes sharing
/// `parallel_batches`, `progress` (one estimate over every batch) and `cancel`. Returns the hosts
/// nmap finished per scope, in the order of `scopes`, and every error; errors from inside a
/// namespace come as [`Error::InNamespace`]. A namespace that cannot be entered costs only its
/// own hosts: one [`Error::Namespace`] for it, its other batches are not tried.
pub async fn run_scoped(
    scopes: &[Scope<'_>],
    settings: &Settings,
    caps: &Capabilities,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> (Vec<Vec<HostServices>>, Vec<Error>) {
    if !settings.udp_ports.is_empty()
        && !caps.privileged
        && !UDP_WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(
            "UDP service scan skipped: nmap -sU needs root or CAP_NET_RAW (scan.nmap.udp_ports)"
        );
    }
    if settings.os_detection && !caps.privileged && !OS_WARNED.swap(true, Ordering::Relaxed) {
        tracing::warn!(
            "OS detection skipped: nmap -O needs root or CAP_NET_RAW (scan.nmap.os_detection)"
        );
    }
    let udp = udp_enabled(settings, caps);
    let batches = plan_scopes(scopes, settings.batch_hosts, udp);
    let total = batches.len();
    progress
        .batches_total
        .fetch_add(total as u64, Ordering::Relaxed);
    let mut udp_ports = if udp {
        settings.udp_ports.clone()
    } else {
        Vec::new()
    };
    udp_ports.sort_unstable();
    udp_ports.dedup();
    let shared = Arc::new(Shared {
        settings: settings.clone(),
        caps: caps.clone(),
        udp_ports,
        progress: progress.clone(),
        total,
        done: AtomicU64::new(0),
        fractions: Mutex::new(vec![0.0; total]),
    });
    shared.refresh();

    let mut found: Vec<BTreeMap<IpAddr, HostServices>> =
        scopes.iter().map(|_| BTreeMap::new()).collect();
    // Scopes whose namespace could not be entered: their other batches are not tried.
    let mut unreachable = vec![false; scopes.len()];
    let mut errors = Vec::new();
    let mut pending = batches.into_iter();
    let mut set = JoinSet::new();
    let mut cancelled = false;
    let mut stop = false; // nmap cannot be started at all: don't try the other batches
    loop {
        while !stop && !cancel.is_cancelled() && set.len() < settings.parallel_batches.max(1) {
            let Some(b) = pending.next() else {
                break;
            };
            if unreachable[b.scope] {
                shared.done.fetch_add(1, Ordering::Relaxed);
                progress.batches_done.fetch_add(1, Ordering::Relaxed);
                progress.failed_batches.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let ns = scopes[b.scope].namespace.map(Path::to_path_buf);
            set.spawn(run_batch_from(ns, shared.clone(), b, cancel.clone()));
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let (scope, out) = joined.unwrap_or_else(|e| {
            let out = BatchOutcome {
                hosts: Vec::new(),
                errors: vec![Error::Nmap {
                    message: format!("nmap batch task failed: {e}"),
                }],
                failed: true,
                cancelled: false,
            };
            (usize::MAX, out)
        });
        cancelled |= out.cancelled;
        if !out.cancelled {
            shared.done.fetch_add(1, Ordering::Relaxed);
            progress.batches_done.fetch_add(1, Ordering::Relaxed);
        }
        if out.failed {
            progress.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
        for e in out.errors {
            if let Error::Namespace { .. } = e {
                if let Some(seen) = unreachable.get_mut(scope) {
                    // Batches of the namespace already running when it first failed repeat it.
                    if std::mem::replace(seen, true) {
                        continue;
                    }
                }
                errors.push(e);
                continue;
            }
            let cannot_start =
                matches!(e.innermost(), Error::NotFound { .. } | Error::Spawn { .. });
            if !(cannot_start && stop) {
                errors.push(e); // batches already running when it first failed repeat it
            }
            stop |= cannot_start;
        }
        if let Some(hosts) = found.get_mut(scope) {
            for h in out.hosts {
                merge(hosts, h);
            }
        }
        shared.refresh();
    }
    shared.refresh(); // batches of unreachable namespaces may have been skipped since
    let skipped = pending.len() as u64;
    if stop && skipped > 0 {
        progress.batches_done.fetch_add(skipped, Ordering::Relaxed);
        progress
            .failed_batches
            .fetch_add(skipped, Ordering::Relaxed);
    }
    if cancelled || (cancel.is_cancelled() && skipped > 0) {
        errors.push(Error::Cancelled);
    }
    let found = found
        .into_iter()
        .map(|hosts| hosts.into_values().collect())
        .collect();
    (found, errors)
}

/// One batch, from the network namespace `ns` (`None`: the agent's own), tagged with its scope.
/// In a namespace, nmap is started from a thread that entered it; its errors are marked with the
/// namespace, and a namespace that cannot be entered fails the batch with [`Error::Namespace`].
async fn run_batch_from(
    ns: Option<PathBuf>,
    sh: Arc<Shared>,
    b: Batch,
    cancel: CancellationToken,
) -> (usize, BatchOutcome) {
    let scope = b.scope;
    let Some(ns) = ns else {
        return (scope, run_batch(sh, b, cancel).await);
    };
    let name = namespace_name(&ns);
    let out = match netns::spawn_in(&ns, move || run_batch(sh, b, cancel)).await {
        Ok(mut out) => {
            out.errors = out
                .errors
                .into_iter()
                .map(|e| e.in_namespace(&name))
                .collect();
            out
        }
        Err(source) => BatchOutcome {
            hosts: Vec::new(),
            errors: vec![Error::Namespace {
                namespace: name,
                source,
            }],
            failed: true,
            cancelled: false,
        },
    };
    (scope, out)
}

fn merge(found: &mut BTreeMap<IpAddr, HostServices>, h: HostServices) {
    match found.get_mut(&h.address) {
        None => {
            found.insert(h.address, h);
        }
        Some(prev) => {
            prev.tcp.extend(h.tcp);
            prev.tcp.sort_by_key(|p| p.port);
            prev.tcp.dedup_by_key(|p| p.port);
            if prev.udp.is_empty() {
                prev.udp = h.udp;
            }
            if prev.os.is_empty() {
                prev.os = h.os;
            }
        }
    }
}
