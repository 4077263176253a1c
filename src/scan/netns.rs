//! Scanning from inside a network namespace. On a Neutron network node a tenant's fixed IPs are
//! reachable only from its network's namespace — `qdhcp-<network id>` (DHCP agent) or
//! `qrouter-<router id>` (L3 agent) — which iproute2 keeps as bind mounts under `/run/netns`.
//!
//! This module owns running work inside one: [`spawn_in`] starts a dedicated OS thread, moves only
//! that thread into the namespace with `setns(CLONE_NEWNET)`, and drives a current-thread tokio
//! runtime there. Sockets opened on that thread, threads it starts and child processes it spawns
//! (e.g. nmap) all live in the namespace; the thread never returns to the root namespace — it exits
//! when the work is done. [`scan_in`] runs [`tcp::scan`] that way. Which namespace a target is
//! scanned from is the inventory's business, not this module's.
//!
//! Tests: `testns` (a banner server in a namespace, shared with other modules' tests) and `tests`,
//! in `netns/`; the test namespaces themselves are `stinger_testsupport::netns`.

use super::{tcp, Progress};
use nix::errno::Errno;
use nix::sched::CloneFlags;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// Longest name a file in the namespace directory can have.
const NAME_MAX: usize = 255;

/// How long the namespace thread waits for leftover blocking tasks when its runtime shuts down.
const RUNTIME_SHUTDOWN: Duration = Duration::from_secs(1);

/// The fix shown whenever CAP_SYS_ADMIN is missing.
const CAP_HINT: &str = "run stinger as root, or grant the capability: \
    `setcap cap_sys_admin,cap_net_raw+ep <stinger binary>`, or under systemd \
    `AmbientCapabilities=CAP_SYS_ADMIN CAP_NET_RAW` (with `CapabilityBoundingSet` allowing them)";

/// Network-namespace errors. [`super::Error::Namespace`] carries them out of [`scan_in`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid network namespace name {name:?}: {reason}; a name is letters, digits, '_', '.' and '-' (like qdhcp-<network id>)")]
    InvalidName { name: String, reason: &'static str },
    #[error("network namespace {name} not found in {}; available: {}; check the id, and that this node runs the DHCP/L3 agent hosting it", dir.display(), list_or_none(available))]
    Missing {
        name: String,
        dir: PathBuf,
        available: Vec<String>,
    },
    #[error("cannot open network namespace file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error(
        "entering network namespace {name} was refused (EPERM): it needs CAP_SYS_ADMIN; {CAP_HINT}"
    )]
    SetnsDenied { name: String },
    #[error("{} is not a network namespace (setns: {errno}); a stale entry? remove it with `ip netns del {name}`", path.display())]
    NotANamespace {
        name: String,
        path: PathBuf,
        errno: Errno,
    },
    #[error("entering network namespace {name} failed: {errno}")]
    Setns { name: String, errno: Errno },
    #[error("cannot start the thread for network namespace {name}: {source}")]
    Thread { name: String, source: io::Error },
    #[error("cannot build the tokio runtime inside network namespace {name}: {source}")]
    Runtime { name: String, source: io::Error },
    #[error("the thread working in network namespace {name} panicked")]
    Panicked { name: String },
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } => "netns_invalid_name",
            Error::Missing { .. } => "netns_missing",
            Error::Open { .. } => "netns_open",
            Error::SetnsDenied { .. } => "netns_permission",
            Error::NotANamespace { .. } | Error::Setns { .. } => "netns_enter",
            Error::Thread { .. } | Error::Panicked { .. } => "netns_thread",
            Error::Runtime { .. } => "netns_runtime",
        }
    }
}

/// Most namespace names an error lists (a network node can have hundreds).
const LISTED: usize = 20;

fn list_or_none(names: &[String]) -> String {
    match names.len() {
        0 => "none".to_string(),
        n if n <= LISTED => names.join(", "),
        n => format!("{}, and {} more", names[..LISTED].join(", "), n - LISTED),
    }
}

/// Check a namespace name: `[A-Za-z0-9_.-]+`, at most 255 bytes, not `.` or `..` (so it can never
/// leave the namespace directory).
fn validate_name(name: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidName {
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are not namespaces");
    }
    if name.len() > NAME_MAX {
        return invalid("it is longer than 255 bytes");
    }
    if name.contains('/') {
        return invalid("it contains '/'");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return invalid("it contains a character other than letters, digits, '_', '.', '-'");
    }
    Ok(())
}

/// Names of the namespaces in `dir`, sorted; empty when the directory is missing or unreadable.
/// Entries that are not valid names are skipped.
fn list_namespaces(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| validate_name(n).is_ok())
        .collect();
    names.sort();
    names
}

/// Display name of a namespace path (its file name).
fn ns_name(ns: &Path) -> String {
    ns.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ns.display().to_string())
}

/// Move the calling thread into the network namespace at `ns`.
fn enter(ns: &Path, name: &str) -> Result<(), Error> {
    let file = std::fs::File::open(ns).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            Error::Missing {
                name: name.to_string(),
                dir: ns.parent().map(Path::to_path_buf).unwrap_or_default(),
                available: ns.parent().map(list_namespaces).unwrap_or_default(),
            }
        } else {
            Error::Open {
                path: ns.to_path_buf(),
                source,
            }
        }
    })?;
    nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|errno| match errno {
        Errno::EPERM => Error::SetnsDenied {
            name: name.to_string(),
        },
        Errno::EINVAL => Error::NotANamespace {
            name: name.to_string(),
            path: ns.to_path_buf(),
            errno,
        },
        errno => Error::Setns {
            name: name.to_string(),
            errno,
        },
    })
}

/// Run `f()`'s future inside the network namespace at `ns` (e.g. `/run/netns/qdhcp-<id>`).
///
/// A dedicated OS thread named `netns-<name>` is started at once: it enters the namespace, builds a
/// current-thread tokio runtime (all drivers enabled) and blocks on the future, so the future need
/// not be `Send`. Sockets, threads and child processes (`tokio::process::Command`) it creates are in
/// the namespace. When the future finishes the runtime is shut down (closing its sockets) and the
/// thread exits; then the returned future resolves. Dropping the returned future does not stop the
/// work — stop it through a cancellation token the work watches.
pub(crate) fn spawn_in<F, Fut, T>(
    ns: &Path,
    f: F,
) -> impl Future<Output = Result<T, Error>> + Send + 'static
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T> + 'static,
    T: Send + 'static,
{
    let path = ns.to_path_buf();
    let name = ns_name(ns);
    let (tx, rx) = oneshot::channel::<Result<T, Error>>();
    let thread_name = name.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || {
            let result = run_in(&path, &thread_name, f);
            // The receiver may be gone (the caller stopped waiting); nothing to do then.
            let _ = tx.send(result);
        });
    async move {
        if let Err(source) = spawned {
            return Err(Error::Thread { name, source });
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(Error::Panicked { name }),
        }
    }
}

/// Body of the namespace thread.
fn run_in<F, Fut, T>(path: &Path, name: &str, f: F) -> Result<T, Error>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    enter(path, name)?;
    tracing::debug!(namespace = name, "thread entered network namespace");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Runtime {
            name: name.to_string(),
            source,
        })?;
    let out = runtime.block_on(f());
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN);
    Ok(out)
}

/// [`tcp::scan`] from inside the network namespace at `ns`, on its own thread (see [`spawn_in`]:
/// the thread starts at once, and the returned future borrows nothing, so it can be spawned).
/// `cancel` is shared with the scan, so cancelling it stops the scan in the namespace and this
/// returns [`super::Error::Cancelled`]; namespace failures come back as
/// [`super::Error::Namespace`].
pub(crate) fn scan_in(
    ns: &Path,
    addresses: Vec<IpAddr>,
    ports: Vec<u16>,
    settings: tcp::Settings,
    fd_limit: u64,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> impl Future<Output = Result<tcp::Output, super::Error>> + Send + 'static {
    let scan = move || async move {
        tcp::scan(&addresses, &ports, &settings, fd_limit, progress, cancel).await
    };
    let running = spawn_in(ns, scan);
    async move { running.await? }
}

#[cfg(test)]
pub(crate) mod testns;

#[cfg(test)]
mod tests;
