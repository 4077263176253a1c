//! Scanning from inside a network namespace. On a Neutron network node a tenant's fixed IPs are
//! reachable only from its network's namespace — `qdhcp-<network id>` (DHCP agent) or
//! `qrouter-<router id>` (L3 agent) — which iproute2 keeps as bind mounts under `/run/netns`.
//!
//! This module owns finding those namespaces ([`Namespaces`]), checking that this process may enter
//! them ([`can_enter_namespaces`]), and running work inside one: [`spawn_in`] starts a dedicated OS
//! thread, moves only that thread into the namespace with `setns(CLONE_NEWNET)`, and drives a
//! current-thread tokio runtime there. Sockets opened on that thread, threads it starts and child
//! processes it spawns (e.g. nmap) all live in the namespace; the thread never returns to the root
//! namespace — it exits when the work is done. [`scan_in`] runs [`tcp::scan`] that way.

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

/// Where iproute2 (`ip netns add`) and the Neutron agents keep named network namespaces.
pub const DEFAULT_DIR: &str = "/run/netns";

/// Bit of CAP_SYS_ADMIN in the capability sets of `/proc/<pid>/status`; `setns` needs it.
pub const CAP_SYS_ADMIN: u32 = 21;

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
    #[error("none of the network namespaces {} exists in {}; available: {}; is this the network node hosting them?", tried.join(", "), dir.display(), list_or_none(available))]
    NoneFound {
        tried: Vec<String>,
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
    #[error("this process lacks CAP_SYS_ADMIN in its effective capabilities, which entering network namespaces needs; {CAP_HINT}; {}", dir_note(dir, *dir_exists))]
    MissingCapability { dir: PathBuf, dir_exists: bool },
    #[error("cannot tell whether this process may enter network namespaces: {0}")]
    CapabilityUnknown(String),
    #[error("cannot start the thread for network namespace {name}: {source}")]
    Thread { name: String, source: io::Error },
    #[error("cannot build the tokio runtime inside network namespace {name}: {source}")]
    Runtime { name: String, source: io::Error },
    #[error("the thread working in network namespace {name} panicked")]
    Panicked { name: String },
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidName { .. } => "netns_invalid_name",
            Error::Missing { .. } | Error::NoneFound { .. } => "netns_missing",
            Error::Open { .. } => "netns_open",
            Error::SetnsDenied { .. } | Error::MissingCapability { .. } => "netns_permission",
            Error::NotANamespace { .. } | Error::Setns { .. } => "netns_enter",
            Error::CapabilityUnknown(_) => "netns_capability_unknown",
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

fn dir_note(dir: &Path, exists: bool) -> String {
    if exists {
        format!("namespace directory {} exists", dir.display())
    } else {
        format!(
            "namespace directory {} does not exist either (no named namespaces on this host: is it a Neutron network node?)",
            dir.display()
        )
    }
}

/// Check a namespace name: `[A-Za-z0-9_.-]+`, at most 255 bytes, not `.` or `..` (so it can never
/// leave the namespace directory).
pub fn validate_name(name: &str) -> Result<(), Error> {
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

/// The namespace of a network's DHCP agent: `qdhcp-<network id>`.
pub fn dhcp_namespace(network_id: &str) -> String {
    format!("qdhcp-{network_id}")
}

/// The namespace of a router on its L3 agent: `qrouter-<router id>`.
pub fn router_namespace(router_id: &str) -> String {
    format!("qrouter-{router_id}")
}

/// A directory of named network namespaces (`/run/netns` by default; tests use their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespaces {
    pub dir: PathBuf,
}

impl Default for Namespaces {
    fn default() -> Self {
        Namespaces {
            dir: PathBuf::from(DEFAULT_DIR),
        }
    }
}

impl Namespaces {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Namespaces { dir: dir.into() }
    }

    /// Path of the namespace file for `name` (validated; existence is not checked).
    pub fn path(&self, name: &str) -> Result<PathBuf, Error> {
        validate_name(name)?;
        Ok(self.dir.join(name))
    }

    /// Names present in the directory, sorted.
    pub fn list(&self) -> Vec<String> {
        list_namespaces(&self.dir)
    }

    /// Path of an existing namespace, or [`Error::Missing`] listing the ones there are.
    pub fn existing(&self, name: &str) -> Result<PathBuf, Error> {
        let path = self.path(name)?;
        if path.exists() {
            Ok(path)
        } else {
            Err(Error::Missing {
                name: name.to_string(),
                dir: self.dir.clone(),
                available: self.list(),
            })
        }
    }

    /// The namespace to scan a Neutron network from: its DHCP namespace `qdhcp-<network id>` if this
    /// node has it, else the first `qrouter-<router id>` present among the routers attached to the
    /// network (in the order given). [`Error::NoneFound`] names every candidate tried.
    pub fn for_network(&self, network_id: &str, router_ids: &[&str]) -> Result<PathBuf, Error> {
        let candidates: Vec<String> = std::iter::once(dhcp_namespace(network_id))
            .chain(router_ids.iter().map(|r| router_namespace(r)))
            .collect();
        for name in &candidates {
            let path = self.path(name)?;
            if path.exists() {
                return Ok(path);
            }
        }
        Err(Error::NoneFound {
            tried: candidates,
            dir: self.dir.clone(),
            available: self.list(),
        })
    }

    /// [`can_enter_namespaces`], naming this directory in the error.
    pub fn can_enter(&self) -> Result<(), Error> {
        let status = std::fs::read_to_string("/proc/self/status")
            .map_err(|e| Error::CapabilityUnknown(format!("cannot read /proc/self/status: {e}")))?;
        match cap_eff_has(&status, CAP_SYS_ADMIN) {
            Some(true) => Ok(()),
            Some(false) => Err(Error::MissingCapability {
                dir: self.dir.clone(),
                dir_exists: self.dir.is_dir(),
            }),
            None => Err(Error::CapabilityUnknown(
                "/proc/self/status has no readable CapEff line".to_string(),
            )),
        }
    }
}

/// Path of the namespace `name` under `/run/netns` (validated; existence is not checked).
pub fn namespace_path(name: &str) -> Result<PathBuf, Error> {
    Namespaces::default().path(name)
}

/// Names of the namespaces in `dir`, sorted; empty when the directory is missing or unreadable.
/// Entries that are not valid names are skipped.
pub fn list_namespaces(dir: &Path) -> Vec<String> {
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

/// Whether the `CapEff:` line of a `/proc/<pid>/status` text has capability `bit` set; `None` when
/// there is no such line or it is not hexadecimal.
pub fn cap_eff_has(status_text: &str, bit: u32) -> Option<bool> {
    let hex = status_text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(bit < 64 && mask & (1u64 << bit) != 0)
}

/// Whether this process may enter network namespaces: CAP_SYS_ADMIN in its effective set. The error
/// says what is missing, how to grant it, and whether `/run/netns` exists.
pub fn can_enter_namespaces() -> Result<(), Error> {
    Namespaces::default().can_enter()
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
pub fn spawn_in<F, Fut, T>(
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
pub fn scan_in(
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

/// Test helpers for work in network namespaces (other modules' tests use them too): Neutron-like
/// test namespaces, the privilege check that skips tests which need root, and a banner server
/// (inside a namespace, or in this one).
#[cfg(test)]
pub(crate) mod testns {
    use super::*;
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{Instant, SystemTime, UNIX_EPOCH};

    /// Run a command, killing it after 20 s; returns whether it succeeded, and its stderr.
    pub(crate) fn run(cmd: &str, args: &[&str]) -> (bool, String) {
        let mut child = Command::new(cmd)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let out = child.wait_with_output().unwrap();
                return (
                    status.success(),
                    String::from_utf8_lossy(&out.stderr).into_owned(),
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd} {args:?} did not finish in 20 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub(crate) fn must_run(cmd: &str, args: &[&str]) {
        let (ok, stderr) = run(cmd, args);
        assert!(ok, "{cmd} {args:?} failed: {stderr}");
    }

    /// A uuid-shaped id that no other test (or earlier run) uses.
    pub(crate) fn fresh_id() -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let n = N.fetch_add(1, Ordering::Relaxed) as u128;
        let x = nanos ^ ((std::process::id() as u128) << 64) ^ (n << 112);
        let h = format!("{x:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }

    /// A Neutron-like `qdhcp-<id>` namespace with loopback up, deleted on drop.
    pub(crate) struct TestNs {
        pub(crate) name: String,
        pub(crate) path: PathBuf,
    }

    impl TestNs {
        pub(crate) fn create() -> TestNs {
            let name = dhcp_namespace(&fresh_id());
            must_run("ip", &["netns", "add", &name]);
            let ns = TestNs {
                path: namespace_path(&name).unwrap(),
                name,
            };
            // nsenter enters the network namespace only; `ip -n` also remounts / and /sys in a
            // mount namespace of its own, which fails where / is not a mount point (a chroot).
            ns.exec(&["ip", "link", "set", "lo", "up"], true);
            ns
        }

        /// Run a command inside the namespace; panics on failure when `must`.
        pub(crate) fn exec(&self, cmd: &[&str], must: bool) -> (bool, String) {
            let net = format!("--net={}", self.path.display());
            let mut args = vec![net.as_str()];
            args.extend_from_slice(cmd);
            let (ok, stderr) = run("nsenter", &args);
            assert!(ok || !must, "nsenter {args:?} failed: {stderr}");
            (ok, stderr)
        }
    }

    impl Drop for TestNs {
        fn drop(&mut self) {
            let (ok, stderr) = run("ip", &["netns", "del", &self.name]);
            if !ok {
                eprintln!("could not delete test namespace {}: {stderr}", self.name);
            }
        }
    }

    /// Whether the namespace tests can run here; says why not when they cannot.
    pub(crate) fn privileged(test: &str) -> bool {
        match can_enter_namespaces() {
            Ok(()) => true,
            Err(e) => {
                eprintln!("SKIPPING {test}: it needs to create and enter network namespaces: {e}");
                false
            }
        }
    }

    /// A TCP server that writes `banner` on every connection it accepts (nmap's NULL probe matches
    /// an SSH banner at once), until dropped. With an empty banner it holds every connection open
    /// and says nothing (nmap's probes then wait out their timeouts).
    pub(crate) struct BannerServer {
        pub(crate) port: u16,
        stop: CancellationToken,
    }

    impl Drop for BannerServer {
        fn drop(&mut self) {
            self.stop.cancel();
        }
    }

    impl BannerServer {
        /// Listens on `addr:port` (0: any free port), inside the namespace at `ns` (on its own
        /// thread, see [`spawn_in`]) or, with `None`, in this one; panics when it does not listen
        /// within 10 s.
        pub(crate) async fn start(
            ns: Option<&Path>,
            addr: IpAddr,
            port: u16,
            banner: &'static [u8],
        ) -> BannerServer {
            let stop = CancellationToken::new();
            let (port_tx, port_rx) = oneshot::channel();
            let stopped = stop.clone();
            let serve = move || serve(addr, port, banner, port_tx, stopped);
            let task = match ns {
                Some(ns) => {
                    let running = spawn_in(ns, serve);
                    tokio::spawn(async move { running.await.map_err(|e| e.to_string()) })
                }
                None => tokio::spawn(async move {
                    serve().await;
                    Ok(())
                }),
            };
            match tokio::time::timeout(Duration::from_secs(10), port_rx).await {
                Ok(Ok(Ok(port))) => BannerServer { port, stop },
                other => {
                    stop.cancel();
                    let why = tokio::time::timeout(Duration::from_secs(5), task).await;
                    panic!("no banner server on {addr}:{port} in {ns:?}: {other:?}; {why:?}");
                }
            }
        }
    }

    async fn serve(
        addr: IpAddr,
        port: u16,
        banner: &'static [u8],
        port_tx: oneshot::Sender<io::Result<u16>>,
        stop: CancellationToken,
    ) {
        use tokio::io::AsyncWriteExt;
        let l = match tokio::net::TcpListener::bind((addr, port)).await {
            Ok(l) => l,
            Err(e) => {
                let _ = port_tx.send(Err(e));
                return;
            }
        };
        let _ = port_tx.send(l.local_addr().map(|a| a.port()));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                r = l.accept() => {
                    let Ok((mut s, _)) = r else { continue };
                    let stop = stop.clone();
                    tokio::spawn(async move {
                        if banner.is_empty() {
                            // Silent: hold the connection, answer nothing.
                            stop.cancelled().await;
                            return;
                        }
                        let _ = s.write_all(banner).await;
                        let _ = s.shutdown().await;
                        // Give the client time to read before the socket closes.
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testns::{privileged, TestNs};
    use super::*;
    use crate::scan::Error as ScanError;
    use std::os::unix::fs::MetadataExt;
    use std::sync::atomic::Ordering;
    use std::time::Instant;
    use tokio::time::timeout;

    const LISTEN_ADDR: [u8; 4] = [127, 0, 90, 7];
    const BLACKHOLE_ADDR: &str = "127.0.90.8";

    fn settings() -> tcp::Settings {
        tcp::Settings {
            concurrency: 64,
            initial_timeout: Duration::from_millis(500),
            ..tcp::Settings::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scan_in_namespace_sees_what_the_root_namespace_cannot() {
        if !privileged("scan_in_namespace_sees_what_the_root_namespace_cannot") {
            return;
        }
        let ns = TestNs::create();
        let addr = IpAddr::from(LISTEN_ADDR);

        // A listener inside the namespace, kept open until `stop`.
        let stop = CancellationToken::new();
        let (port_tx, port_rx) = oneshot::channel();
        let stop_listener = stop.clone();
        let listener = tokio::spawn(spawn_in(&ns.path, move || async move {
            let l = tokio::net::TcpListener::bind((addr, 0)).await?;
            let _ = port_tx.send(l.local_addr()?.port());
            loop {
                tokio::select! {
                    _ = stop_listener.cancelled() => break,
                    r = l.accept() => { drop(r); }
                }
            }
            Ok::<(), io::Error>(())
        }));
        let port = match timeout(Duration::from_secs(10), port_rx).await {
            Ok(Ok(port)) => port,
            other => {
                let why = timeout(Duration::from_secs(5), listener).await;
                panic!("the listener did not start in the namespace: {other:?}; {why:?}");
            }
        };
        let other = if port == u16::MAX { port - 1 } else { port + 1 };

        // Nothing listens there in the root namespace.
        let root = std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::new(addr, port),
            Duration::from_secs(2),
        );
        assert_eq!(
            root.as_ref().map_err(io::Error::kind).err(),
            Some(io::ErrorKind::ConnectionRefused),
            "root namespace connect to {addr}:{port}: {root:?}"
        );

        let progress = Arc::new(Progress::default());
        let inside = timeout(
            Duration::from_secs(30),
            scan_in(
                &ns.path,
                vec![addr],
                vec![port, other],
                settings(),
                4096,
                progress.clone(),
                CancellationToken::new(),
            ),
        )
        .await
        .expect("namespace scan finished in time")
        .expect("namespace scan succeeded");
        assert_eq!(inside.hosts[0].open, vec![port]);
        assert_eq!(inside.hosts[0].closed, 1);
        assert_eq!(inside.counts.open, 1);
        assert_eq!(progress.done.load(Ordering::Relaxed), 2);

        let outside = timeout(
            Duration::from_secs(30),
            tcp::scan(
                &[addr],
                &[port, other],
                &settings(),
                4096,
                Arc::new(Progress::default()),
                CancellationToken::new(),
            ),
        )
        .await
        .expect("root scan finished in time")
        .expect("root scan succeeded");
        assert!(outside.hosts[0].open.is_empty(), "{outside:?}");
        assert_eq!(outside.hosts[0].closed, 2);

        stop.cancel();
        let done = timeout(Duration::from_secs(10), listener)
            .await
            .expect("listener thread stopped in time")
            .expect("listener task joined");
        assert!(matches!(done, Ok(Ok(()))), "{done:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn thread_and_its_children_are_in_the_namespace() {
        if !privileged("thread_and_its_children_are_in_the_namespace") {
            return;
        }
        let ns = TestNs::create();
        let want = format!("net:[{}]", std::fs::metadata(&ns.path).unwrap().ino());
        let got = timeout(
            Duration::from_secs(20),
            spawn_in(&ns.path, || async {
                let thread = std::fs::read_link("/proc/thread-self/ns/net")?;
                let child = tokio::process::Command::new("/bin/sh")
                    .args(["-c", "readlink /proc/self/ns/net"])
                    .output()
                    .await?;
                let name = std::thread::current().name().map(str::to_string);
                Ok::<_, io::Error>((
                    thread.to_string_lossy().into_owned(),
                    String::from_utf8_lossy(&child.stdout).trim().to_string(),
                    name,
                ))
            }),
        )
        .await
        .expect("namespace thread finished in time")
        .expect("entered the namespace")
        .expect("read the namespace links");
        let (thread, child, name) = got;
        assert_eq!(thread, want, "the namespace thread's own network namespace");
        assert_eq!(
            child, want,
            "a child process spawned from the namespace thread"
        );
        assert_eq!(name, Some(format!("netns-{}", ns.name)));
        // The caller's thread stayed where it was.
        let here = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
        assert_ne!(here.to_string_lossy(), want);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelling_stops_a_scan_in_the_namespace_promptly() {
        if !privileged("cancelling_stops_a_scan_in_the_namespace_promptly") {
            return;
        }
        let ns = TestNs::create();
        // Drop SYNs to one address inside the namespace so probes hang until their timeout.
        let (blackholed, stderr) = ns.exec(
            &[
                "iptables",
                "-A",
                "INPUT",
                "-p",
                "tcp",
                "-d",
                BLACKHOLE_ADDR,
                "-j",
                "DROP",
            ],
            false,
        );
        let (ports, settings): (Vec<u16>, _) = if blackholed {
            let slow = tcp::Settings {
                concurrency: 64,
                initial_timeout: Duration::from_secs(10),
                min_timeout: Duration::from_secs(10),
                max_timeout: Duration::from_secs(10),
                retries: 0,
                ..tcp::Settings::default()
            };
            ((1..=200).collect(), slow)
        } else {
            eprintln!("iptables unusable in the namespace ({stderr}); cancelling a long loopback scan instead");
            ((1..=u16::MAX).collect(), settings())
        };
        let total = ports.len() as u64;
        let progress = Arc::new(Progress::default());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(scan_in(
            &ns.path,
            vec![BLACKHOLE_ADDR.parse().unwrap()],
            ports,
            settings,
            4096,
            progress.clone(),
            cancel.clone(),
        ));
        // Wait until the scan has started in the namespace thread.
        let deadline = Instant::now() + Duration::from_secs(10);
        while progress.total.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < deadline, "the scan never started");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        cancel.cancel();
        let t = Instant::now();
        let r = timeout(Duration::from_secs(5), task)
            .await
            .expect("cancelled scan returned in time")
            .expect("scan task joined");
        assert!(matches!(r, Err(ScanError::Cancelled)), "{r:?}");
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(progress.done.load(Ordering::Relaxed) < total);
        if blackholed {
            assert_eq!(progress.open.load(Ordering::Relaxed), 0);
            assert_eq!(progress.closed.load(Ordering::Relaxed), 0);
        }
    }

    #[tokio::test]
    async fn missing_namespace_is_named_with_the_ones_there_are() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("qrouter-r1"), b"").unwrap();
        std::fs::write(dir.path().join("qdhcp-n2"), b"").unwrap();
        let ns = Namespaces::new(dir.path());
        let path = ns.path("qdhcp-nope").unwrap();
        let r = timeout(
            Duration::from_secs(10),
            scan_in(
                &path,
                vec![IpAddr::from(LISTEN_ADDR)],
                vec![1],
                settings(),
                4096,
                Arc::new(Progress::default()),
                CancellationToken::new(),
            ),
        )
        .await
        .expect("returned in time");
        let Err(ScanError::Namespace(e)) = r else {
            panic!("expected a namespace error, got {r:?}");
        };
        assert_eq!(e.kind(), "netns_missing");
        let Error::Missing {
            name, available, ..
        } = &e
        else {
            panic!("expected Missing, got {e:?}");
        };
        assert_eq!(name, "qdhcp-nope");
        assert_eq!(available, &["qdhcp-n2", "qrouter-r1"]);
        let msg = e.to_string();
        assert!(
            msg.contains("qdhcp-nope") && msg.contains("qdhcp-n2, qrouter-r1"),
            "{msg}"
        );

        // The same through `existing`, without a thread.
        let e = ns.existing("qdhcp-nope").unwrap_err();
        assert!(matches!(e, Error::Missing { .. }), "{e:?}");
        assert_eq!(
            ns.existing("qrouter-r1").unwrap(),
            dir.path().join("qrouter-r1")
        );
    }

    #[tokio::test]
    async fn a_plain_file_is_not_a_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("qdhcp-plain");
        std::fs::write(&path, b"").unwrap();
        let r = timeout(Duration::from_secs(10), spawn_in(&path, || async { 1 }))
            .await
            .expect("returned in time");
        match r {
            Err(e @ Error::NotANamespace { .. }) => {
                assert_eq!(e.kind(), "netns_enter");
                assert!(e.to_string().contains("ip netns del qdhcp-plain"), "{e}");
            }
            other => panic!("expected NotANamespace, got {other:?}"),
        }
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(
            namespace_path("qdhcp-0b5a1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d").unwrap(),
            Path::new("/run/netns/qdhcp-0b5a1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d")
        );
        for good in ["qrouter-x_y.z", ".hidden", "a", &"x".repeat(255)] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "/run/netns/x",
            "a b",
            "qdhcp-ä",
            "x\0y",
            &"x".repeat(256),
        ] {
            let e = namespace_path(bad).unwrap_err();
            assert_eq!(e.kind(), "netns_invalid_name", "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            Namespaces::new(dir.path()).path("qdhcp-1").unwrap(),
            dir.path().join("qdhcp-1")
        );
    }

    #[test]
    fn listing_is_sorted_and_skips_odd_entries() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["qrouter-b", "qdhcp-a", "has space", "qdhcp-c"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        assert_eq!(
            list_namespaces(dir.path()),
            vec!["qdhcp-a", "qdhcp-c", "qrouter-b"]
        );
        assert!(list_namespaces(&dir.path().join("absent")).is_empty());
        let many: Vec<String> = (0..25).map(|i| format!("qrouter-{i:02}")).collect();
        let listed = list_or_none(&many);
        assert!(
            listed.starts_with("qrouter-00, ") && listed.ends_with("qrouter-19, and 5 more"),
            "{listed}"
        );
        assert_eq!(list_or_none(&[]), "none");
    }

    #[test]
    fn picks_the_dhcp_namespace_then_a_router() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["qdhcp-net1", "qrouter-r2", "qrouter-r3"] {
            std::fs::write(dir.path().join(n), b"").unwrap();
        }
        let ns = Namespaces::new(dir.path());
        assert_eq!(
            ns.for_network("net1", &["r2"]).unwrap(),
            dir.path().join("qdhcp-net1")
        );
        assert_eq!(
            ns.for_network("net2", &["r9", "r3", "r2"]).unwrap(),
            dir.path().join("qrouter-r3")
        );
        let e = ns.for_network("net2", &["r9"]).unwrap_err();
        assert_eq!(e.kind(), "netns_missing");
        let msg = e.to_string();
        assert!(
            msg.contains("qdhcp-net2, qrouter-r9")
                && msg.contains("qdhcp-net1, qrouter-r2, qrouter-r3"),
            "{msg}"
        );
        // An id that would escape the directory is rejected, not looked up.
        let e = ns.for_network("../../etc", &[]).unwrap_err();
        assert_eq!(e.kind(), "netns_invalid_name");
    }

    #[test]
    fn cap_eff_is_parsed() {
        let root = "Name:\tstinger\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                    CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
        let net_admin_only =
            "Name:\tstinger\nCapPrm:\t0000000000203000\nCapEff:\t0000000000001000\n";
        let sys_admin_only = "CapEff:  0000000000200000\n";
        let none = "Name:\tstinger\nCapEff:\t0000000000000000\n";
        assert_eq!(cap_eff_has(root, CAP_SYS_ADMIN), Some(true));
        assert_eq!(cap_eff_has(net_admin_only, CAP_SYS_ADMIN), Some(false));
        assert_eq!(cap_eff_has(net_admin_only, 12), Some(true));
        assert_eq!(cap_eff_has(sys_admin_only, CAP_SYS_ADMIN), Some(true));
        assert_eq!(cap_eff_has(sys_admin_only, 13), Some(false));
        assert_eq!(cap_eff_has(none, CAP_SYS_ADMIN), Some(false));
        assert_eq!(
            cap_eff_has("Name:\tx\nCapPrm:\t0000000000200000\n", 21),
            None
        );
        assert_eq!(cap_eff_has("CapEff:\tzz\n", 21), None);
        assert_eq!(cap_eff_has(root, 64), Some(false));
    }

    #[test]
    fn capability_check_agrees_with_proc_and_explains_the_fix() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ns = Namespaces::new(dir.path().join("netns"));
        let r = ns.can_enter();
        assert_eq!(r.is_ok(), cap_eff_has(&status, CAP_SYS_ADMIN) == Some(true));
        if let Err(Error::MissingCapability { dir_exists, .. }) = &r {
            assert!(!dir_exists);
        }
        for exists in [true, false] {
            let msg = Error::MissingCapability {
                dir: PathBuf::from(DEFAULT_DIR),
                dir_exists: exists,
            }
            .to_string();
            assert!(msg.contains("CAP_SYS_ADMIN"), "{msg}");
            assert!(msg.contains("setcap cap_sys_admin,cap_net_raw+ep"), "{msg}");
            assert!(msg.contains("AmbientCapabilities=CAP_SYS_ADMIN"), "{msg}");
            assert_eq!(msg.contains("does not exist"), !exists, "{msg}");
        }
    }
}
