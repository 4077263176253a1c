//! nmap as a child process: service/version detection (-sV) on the ports discovery found open,
//! optional UDP (-sU) and OS detection (-O); batched, bounded, killed on shutdown. Parsing is
//! nmap_xml's. Only the addresses in the jobs ever reach nmap, and results are filtered back to
//! the ports each host's job asked for.

use super::nmap_xml::{self, AddrKind, HostStatus, Limits, NmapRun, OsMatch, Port, Protocol};
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinSet;
use tokio::time::Instant;
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

/// What nmap reported for one host, limited to the ports its job asked for (any state).
#[derive(Debug, Clone, PartialEq)]
pub struct HostServices {
    pub address: IpAddr,
    pub tcp: Vec<Port>,
    pub udp: Vec<Port>,
    pub os: Vec<OsMatch>,
}

/// Live counters of a running [`run`], readable from other tasks. The batch counters add up
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
        }
    }
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

fn spawn_error(path: &Path, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound { path: path.into() },
        _ => Error::Spawn {
            path: path.into(),
            source: e,
        },
    }
}

/// Most XML one nmap process may write; beyond it the batch is killed.
const MAX_XML_BYTES: usize = 64 << 20;
/// stderr kept for error messages (the rest is drained and dropped).
const MAX_STDERR_BYTES: usize = 64 << 10;
/// Ports of one host per nmap process (keeps the -p argument far below the 128 KiB limit).
const MAX_PORTS_PER_UNIT: usize = 4096;
/// Largest union port list when hosts with different lists share a batch.
const MAX_UNION_PORTS: usize = 1024;
/// How long a killed nmap gets to be reaped and its pipes drained.
const KILL_GRACE: Duration = Duration::from_secs(2);
const CAP_NET_RAW: u32 = 13;

static UDP_WARNED: AtomicBool = AtomicBool::new(false);
static OS_WARNED: AtomicBool = AtomicBool::new(false);

/// Runs `nmap --version` and checks our privileges. Call once at start-up (and on reload).
pub async fn probe_nmap(settings: &Settings) -> Result<Capabilities, Error> {
    let mut child = Command::new(&settings.path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_error(&settings.path, e))?;
    let mut out = Vec::new();
    let ran = async {
        if let Some(stdout) = child.stdout.take() {
            read_capped(stdout, &mut out, MAX_STDERR_BYTES).await;
        }
        child.wait().await
    };
    let status = match tokio::time::timeout(Duration::from_secs(10), ran).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(spawn_error(&settings.path, e)),
        Err(_) => {
            return Err(Error::Nmap {
                message: format!("`{} --version` hung for 10s", settings.path.display()),
            })
        }
    };
    let text = String::from_utf8_lossy(&out);
    let version = match parse_version(&text) {
        Some(v) if status.success() => v,
        _ => {
            return Err(Error::Nmap {
                message: format!(
                    "`{} --version` ({status}) did not print \"Nmap version …\"; is scan.nmap.path nmap? output: {}",
                    settings.path.display(),
                    clip(text.trim(), 200)
                ),
            })
        }
    };
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 7 {
        return Err(Error::TooOld { version });
    }
    let (root, privileged) = match tokio::fs::read_to_string("/proc/self/status").await {
        Ok(status) => privileges(&status),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read /proc/self/status; assuming no raw-socket rights");
            (false, false)
        }
    };
    Ok(Capabilities {
        version,
        privileged,
        root,
    })
}

fn parse_version(text: &str) -> Option<String> {
    let rest = &text[text.find("Nmap version ")? + "Nmap version ".len()..];
    let v = rest.split_whitespace().next()?;
    v.starts_with(|c: char| c.is_ascii_digit())
        .then(|| v.to_string())
}

/// (root, privileged) from /proc/self/status. Root needs CAP_NET_RAW in CapEff (containers may
/// drop it); a non-root agent's capabilities reach nmap only through the ambient set.
fn privileges(status: &str) -> (bool, bool) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let cap = |name: &str| {
        field(name)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .map(|bits| bits & (1 << CAP_NET_RAW) != 0)
    };
    let root = field("Uid")
        .and_then(|v| v.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0");
    let privileged = if root {
        cap("CapEff").unwrap_or(true)
    } else {
        cap("CapEff").unwrap_or(false) && cap("CapAmb").unwrap_or(false)
    };
    (root, privileged)
}

fn udp_enabled(s: &Settings, caps: &Capabilities) -> bool {
    !s.udp_ports.is_empty() && caps.privileged
}

fn os_enabled(s: &Settings, caps: &Capabilities) -> bool {
    s.os_detection && caps.privileged
}

/// nmap's command line for one batch; targets follow on stdin (`-iL -`).
fn args(s: &Settings, caps: &Capabilities, tcp_ports: &[u16], ipv6: bool) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if caps.privileged && !caps.root {
        a.push("--privileged".into()); // before anything that needs it
    }
    a.extend(["-n", "-Pn", "-sT", "-sV"].map(String::from));
    a.push("--version-intensity".into());
    a.push(s.version_intensity.min(9).to_string());
    a.push(format!("-T{}", s.timing.min(5)));
    a.push("--host-timeout".into());
    a.push(nmap_time(s.host_timeout));
    if !s.stats_every.is_zero() {
        a.push("--stats-every".into());
        a.push(nmap_time(s.stats_every));
    }
    let udp: &[u16] = if udp_enabled(s, caps) {
        a.push("-sU".into());
        &s.udp_ports
    } else {
        &[]
    };
    if os_enabled(s, caps) {
        a.push("-O".into());
    }
    if ipv6 {
        a.push("-6".into());
    }
    if s.vulners {
        a.push("--script".into());
        a.push("vulners".into());
    }
    a.push("-p".into());
    a.push(port_spec(tcp_ports, udp));
    a.extend(["-oX", "-", "-iL", "-"].map(String::from));
    a
}

fn nmap_time(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `T:22,80-82,U:53`: sorted, deduplicated, runs collapsed to ranges; port 0 dropped.
fn port_spec(tcp: &[u16], udp: &[u16]) -> String {
    let ranges = |ports: &[u16]| {
        let set: BTreeSet<u16> = ports.iter().copied().filter(|&p| p != 0).collect();
        let mut out: Vec<String> = Vec::new();
        let mut it = set.into_iter().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&end.wrapping_add(1)) && end != u16::MAX {
                end += 1;
                it.next();
            }
            out.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
        }
        out.join(",")
    };
    let mut parts = Vec::new();
    if tcp.iter().any(|&p| p != 0) {
        parts.push(format!("T:{}", ranges(tcp)));
    }
    if udp.iter().any(|&p| p != 0) {
        parts.push(format!("U:{}", ranges(udp)));
    }
    parts.join(",")
}

// === batching ===

/// One nmap process: same-family hosts, each with the TCP ports its job asked for.
#[derive(Debug, Clone, PartialEq)]
struct Batch {
    index: usize,
    ipv6: bool,
    hosts: BTreeMap<IpAddr, Vec<u16>>,
    /// Union of the hosts' ports: what nmap is told to scan.
    tcp_ports: Vec<u16>,
}

impl Batch {
    fn new(ipv6: bool) -> Self {
        Batch {
            index: 0,
            ipv6,
            hosts: BTreeMap::new(),
            tcp_ports: Vec::new(),
        }
    }

    fn add(&mut self, addr: IpAddr, ports: &[u16]) {
        self.hosts.insert(addr, ports.to_vec());
        let union: BTreeSet<u16> = self.tcp_ports.iter().chain(ports).copied().collect();
        self.tcp_ports = union.into_iter().collect();
    }

    fn union_len_with(&self, ports: &[u16]) -> usize {
        self.tcp_ports.len()
            + ports
                .iter()
                .filter(|p| self.tcp_ports.binary_search(p).is_err())
                .count()
    }
}

/// Hosts with identical port lists share batches; the rest of each group is packed into mixed
/// batches whose union stays small. Hosts with nothing to scan are left out.
fn plan(jobs: &[Job], batch_hosts: usize, udp: bool) -> Vec<Batch> {
    let batch_hosts = batch_hosts.max(1);
    let mut merged: BTreeMap<IpAddr, BTreeSet<u16>> = BTreeMap::new();
    for j in jobs {
        merged
            .entry(j.address)
            .or_default()
            .extend(j.tcp_ports.iter().filter(|&&p| p != 0));
    }
    let mut groups: BTreeMap<(bool, Vec<u16>), Vec<IpAddr>> = BTreeMap::new();
    for (addr, ports) in merged {
        if ports.is_empty() && !udp {
            continue;
        }
        let ports: Vec<u16> = ports.into_iter().collect();
        let chunks: Vec<&[u16]> = if ports.is_empty() {
            vec![&[]]
        } else {
            ports.chunks(MAX_PORTS_PER_UNIT).collect()
        };
        for chunk in chunks {
            groups
                .entry((addr.is_ipv6(), chunk.to_vec()))
                .or_default()
                .push(addr);
        }
    }
    let mut batches = Vec::new();
    let mut mixed: Option<Batch> = None;
    for ((ipv6, ports), addrs) in groups {
        let mut rest: &[IpAddr] = &addrs;
        while rest.len() >= batch_hosts {
            let (full, tail) = rest.split_at(batch_hosts);
            let mut b = Batch::new(ipv6);
            full.iter().for_each(|&a| b.add(a, &ports));
            batches.push(b);
            rest = tail;
        }
        if rest.is_empty() {
            continue;
        }
        let fits = mixed.as_ref().is_some_and(|m| {
            m.ipv6 == ipv6
                && m.hosts.len() + rest.len() <= batch_hosts
                && m.union_len_with(&ports) <= MAX_UNION_PORTS
                && rest.iter().all(|a| !m.hosts.contains_key(a))
        });
        if !fits {
            batches.extend(mixed.take());
        }
        let m = mixed.get_or_insert_with(|| Batch::new(ipv6));
        rest.iter().for_each(|&a| m.add(a, &ports));
    }
    batches.extend(mixed);
    for (i, b) in batches.iter_mut().enumerate() {
        b.index = i;
    }
    batches
}

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

/// Service-scans the jobs' hosts, at most `parallel_batches` nmap processes at a time. Returns
/// every host nmap finished (sorted by address) and every error; a failed batch only loses its
/// own hosts. On `cancel`, running nmaps are killed and what finished before is returned along
/// with [`Error::Cancelled`].
pub async fn run(
    jobs: &[Job],
    settings: &Settings,
    caps: &Capabilities,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> (Vec<HostServices>, Vec<Error>) {
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
    let batches = plan(jobs, settings.batch_hosts, udp);
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

    let mut found: BTreeMap<IpAddr, HostServices> = BTreeMap::new();
    let mut errors = Vec::new();
    let mut pending = batches.into_iter();
    let mut set = JoinSet::new();
    let mut cancelled = false;
    let mut stop = false; // nmap cannot be started at all: don't try the other batches
    loop {
        while !stop && !cancel.is_cancelled() && set.len() < settings.parallel_batches.max(1) {
            match pending.next() {
                Some(b) => {
                    set.spawn(run_batch(shared.clone(), b, cancel.clone()));
                }
                None => break,
            }
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let out = joined.unwrap_or_else(|e| BatchOutcome {
            hosts: Vec::new(),
            errors: vec![Error::Nmap {
                message: format!("nmap batch task failed: {e}"),
            }],
            failed: true,
            cancelled: false,
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
            let cannot_start = matches!(e, Error::NotFound { .. } | Error::Spawn { .. });
            if !(cannot_start && stop) {
                errors.push(e); // batches already running when it first failed repeat it
            }
            stop |= cannot_start;
        }
        for h in out.hosts {
            merge(&mut found, h);
        }
        shared.refresh();
    }
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
    (found.into_values().collect(), errors)
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

/// How a batch's nmap ended.
enum End {
    Exited(ExitStatus),
    TimedOut,
    TooLarge,
    ReadFailed(io::Error),
    Cancelled,
}

async fn run_batch(sh: Arc<Shared>, b: Batch, cancel: CancellationToken) -> BatchOutcome {
    let started = Instant::now();
    let fail = |e: Error| BatchOutcome {
        hosts: Vec::new(),
        errors: vec![e],
        failed: true,
        cancelled: false,
    };
    let argv = args(&sh.settings, &sh.caps, &b.tcp_ports, b.ipv6);
    tracing::debug!(batch = b.index, hosts = b.hosts.len(), args = ?argv, "starting nmap");
    let mut child = match Command::new(&sh.settings.path)
        .args(&argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(spawn_error(&sh.settings.path, e)),
    };
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return fail(Error::Nmap {
            message: "nmap started without its pipes".into(),
        });
    };
    // Both end on their own once nmap exits or is killed.
    let targets: String = b.hosts.keys().map(|a| format!("{a}\n")).collect();
    tokio::spawn(async move {
        let _ = stdin.write_all(targets.as_bytes()).await;
        let _ = stdin.shutdown().await;
    });
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        read_capped(stderr, &mut buf, MAX_STDERR_BYTES).await;
        buf
    });

    let mut out = Vec::new();
    let mut ticks = TaskScan::default();
    let end = {
        let mut on_tick = |t: Tick| {
            let overall = sh.set_fraction(b.index, Some(t.percent / 100.0));
            tracing::info!(
                batch = b.index,
                hosts = b.hosts.len(),
                task = %t.task,
                task_percent = t.percent,
                remaining_s = ?t.remaining,
                overall_percent = format!("{overall:.1}"),
                "nmap progress"
            );
        };
        let io = async {
            match read_xml(&mut stdout, &mut out, &mut ticks, &mut on_tick).await {
                Ok(false) => match child.wait().await {
                    Ok(st) => End::Exited(st),
                    Err(e) => End::ReadFailed(e),
                },
                Ok(true) => End::TooLarge,
                Err(e) => End::ReadFailed(e),
            }
        };
        tokio::select! {
            e = io => e,
            _ = tokio::time::sleep(sh.settings.batch_timeout) => End::TimedOut,
            _ = cancel.cancelled() => End::Cancelled,
        }
    };
    if !matches!(end, End::Exited(_)) {
        kill(&mut child).await;
    }
    if matches!(end, End::TimedOut) {
        // Keep whatever nmap wrote before it died: finished hosts are still good.
        let _ = tokio::time::timeout(
            KILL_GRACE,
            read_xml(&mut stdout, &mut out, &mut ticks, &mut |_| {}),
        )
        .await;
    }
    sh.set_fraction(b.index, None);
    if matches!(end, End::Cancelled) {
        return BatchOutcome {
            hosts: Vec::new(),
            errors: Vec::new(),
            failed: false,
            cancelled: true,
        };
    }
    let stderr = match tokio::time::timeout(KILL_GRACE, stderr_task).await {
        Ok(Ok(buf)) => String::from_utf8_lossy(&buf).trim().to_string(),
        _ => String::new(),
    };
    let (doc, parse_err) = nmap_xml::parse_partial(&out[..], &Limits::default());
    let exit_err = match &end {
        End::Exited(status) => exit_error(&doc, parse_err, *status, &stderr),
        _ => None,
    };
    let (hosts, mut errors) = collect(doc, &b, &sh);
    let batch_err = match end {
        End::TimedOut => {
            let finished: BTreeSet<IpAddr> = hosts
                .iter()
                .map(|h| h.address)
                .chain(errors.iter().filter_map(|e| match e {
                    Error::HostTimeout { address, .. } => Some(*address),
                    _ => None,
                }))
                .collect();
            Some(Error::Timeout {
                hosts: b
                    .hosts
                    .keys()
                    .filter(|a| !finished.contains(a))
                    .copied()
                    .collect(),
                after: sh.settings.batch_timeout,
            })
        }
        End::TooLarge => Some(Error::OutputTooLarge {
            limit: MAX_XML_BYTES,
        }),
        End::ReadFailed(e) => Some(Error::Output {
            source: nmap_xml::Error::Io {
                offset: out.len() as u64,
                message: e.to_string(),
            },
        }),
        End::Exited(_) => exit_err,
        End::Cancelled => None,
    };
    let failed = batch_err.is_some();
    match &batch_err {
        Some(e) => tracing::warn!(
            batch = b.index,
            hosts = b.hosts.len(),
            finished = hosts.len(),
            error = %e,
            stderr = %clip(&stderr, 2000),
            "nmap batch failed; hosts it finished are kept"
        ),
        None => tracing::info!(
            batch = b.index,
            hosts = b.hosts.len(),
            finished = hosts.len(),
            elapsed_s = started.elapsed().as_secs(),
            "nmap batch done"
        ),
    }
    if !stderr.is_empty() && !failed {
        tracing::debug!(batch = b.index, stderr = %clip(&stderr, 2000), "nmap stderr");
    }
    errors.extend(batch_err);
    BatchOutcome {
        hosts,
        errors,
        failed,
        cancelled: false,
    }
}

/// Kills nmap and reaps it (bounded: a process stuck in the kernel is left to tokio's reaper).
async fn kill(child: &mut Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
}

fn exit_error(
    doc: &NmapRun,
    parse_err: Option<nmap_xml::Error>,
    status: ExitStatus,
    stderr: &str,
) -> Option<Error> {
    let fallback = || {
        let s = clip(stderr, 1000);
        if s.is_empty() {
            format!("nmap exited with {status} and no message")
        } else {
            s
        }
    };
    if let Some(f) = &doc.finished {
        if f.exit == nmap_xml::ExitStatus::Error {
            let message = f.error_message.clone().filter(|m| !m.trim().is_empty());
            return Some(Error::Nmap {
                message: message.unwrap_or_else(fallback),
            });
        }
    }
    if !status.success() {
        return Some(Error::Nmap {
            message: format!("{status}: {}", fallback()),
        });
    }
    parse_err.map(|source| Error::Output { source })
}

/// The batch's hosts from nmap's document, filtered to what each job asked for.
fn collect(doc: NmapRun, b: &Batch, sh: &Shared) -> (Vec<HostServices>, Vec<Error>) {
    let os = os_enabled(&sh.settings, &sh.caps);
    let mut hosts = Vec::new();
    let mut errors = Vec::new();
    for h in doc.hosts {
        let addr = h
            .addresses
            .iter()
            .filter(|a| matches!(a.kind, AddrKind::Ipv4 | AddrKind::Ipv6))
            .find_map(|a| a.addr.parse::<IpAddr>().ok());
        let Some((address, wanted)) = addr.and_then(|a| b.hosts.get_key_value(&a)) else {
            tracing::debug!(batch = b.index, address = ?addr, "nmap reported a host not in its batch; ignored");
            continue;
        };
        if h.status != HostStatus::Up {
            tracing::debug!(batch = b.index, %address, status = ?h.status, "nmap did not scan a host");
            continue;
        }
        if h.ports.is_empty() && h.extraports.is_empty() {
            // nmap writes a timed-out host (timedout="true") without any port information.
            errors.push(Error::HostTimeout {
                address: *address,
                after: sh.settings.host_timeout,
            });
            continue;
        }
        let (mut tcp, mut udp) = (Vec::new(), Vec::new());
        for p in h.ports {
            match p.protocol {
                Protocol::Tcp if wanted.binary_search(&p.port).is_ok() => tcp.push(p),
                Protocol::Udp if sh.udp_ports.binary_search(&p.port).is_ok() => udp.push(p),
                _ => {}
            }
        }
        hosts.push(HostServices {
            address: *address,
            tcp,
            udp,
            os: if os { h.os_matches } else { Vec::new() },
        });
    }
    (hosts, errors)
}

/// Appends stdout to `out` until EOF (Ok(false)) or `MAX_XML_BYTES` (Ok(true)), reporting
/// `<taskprogress>` entries as they arrive. Cancel-safe: bytes read are never lost.
async fn read_xml(
    r: &mut ChildStdout,
    out: &mut Vec<u8>,
    scan: &mut TaskScan,
    on_tick: &mut impl FnMut(Tick),
) -> io::Result<bool> {
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        let room = MAX_XML_BYTES.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..n.min(room)]);
        scan.feed(out, on_tick);
        if n > room {
            return Ok(true);
        }
    }
}

/// Reads to EOF, keeping the first `cap` bytes (the rest is drained so the writer never blocks).
async fn read_capped(mut r: impl AsyncRead + Unpin, out: &mut Vec<u8>, cap: usize) {
    let mut chunk = [0u8; 4096];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..n.min(room)]);
    }
}

fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

// === progress ===

/// One `<taskprogress>` seen in the stream.
#[derive(Debug, Clone, PartialEq)]
struct Tick {
    task: String,
    percent: f64,
    remaining: Option<u64>,
}

/// Finds `<taskprogress …/>` tags in the growing stdout buffer, each once, wherever the
/// chunks were split.
#[derive(Debug, Default)]
struct TaskScan {
    pos: usize,
}

impl TaskScan {
    const OPEN: &'static [u8] = b"<taskprogress ";
    /// A tag longer than this is not nmap's; skip it rather than wait for its end.
    const MAX_TAG: usize = 4096;

    fn feed(&mut self, buf: &[u8], on_tick: &mut impl FnMut(Tick)) {
        loop {
            let from = self.pos.min(buf.len());
            let Some(i) = find(&buf[from..], Self::OPEN) else {
                // A tag name split across chunks is found next time.
                self.pos = buf.len().saturating_sub(Self::OPEN.len() - 1).max(from);
                return;
            };
            let start = from + i;
            match find(&buf[start..], b">") {
                Some(j) => {
                    if let Some(t) = parse_tick(&buf[start..start + j]) {
                        on_tick(t);
                    }
                    self.pos = start + j + 1;
                }
                None if buf.len() - start > Self::MAX_TAG => self.pos = start + 1,
                None => {
                    self.pos = start;
                    return;
                }
            }
        }
    }
}

fn parse_tick(tag: &[u8]) -> Option<Tick> {
    let attr = |name: &str| {
        let key = format!(" {name}=\"");
        let at = find(tag, key.as_bytes())? + key.len();
        let len = find(&tag[at..], b"\"")?;
        std::str::from_utf8(&tag[at..at + len]).ok()
    };
    Some(Tick {
        task: attr("task").unwrap_or("?").to_string(),
        percent: attr("percent")?.parse().ok()?,
        remaining: attr("remaining").and_then(|r| r.parse().ok()),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    const NMAP: &str = "/usr/bin/nmap";
    const LIMIT: Duration = Duration::from_secs(90);

    fn caps(privileged: bool) -> Capabilities {
        Capabilities {
            version: "7.93".into(),
            privileged,
            root: true,
        }
    }

    fn settings() -> Settings {
        Settings {
            path: NMAP.into(),
            stats_every: Duration::from_secs(1),
            ..Settings::default()
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn job(a: &str, ports: &[u16]) -> Job {
        Job {
            address: ip(a),
            tcp_ports: ports.to_vec(),
        }
    }

    /// A listener that writes `banner` as soon as it accepts (nmap's NULL probe matches at once),
    /// or, with `http`, once the client has sent something.
    async fn serve(addr: &str, port: u16, banner: &'static [u8], http: bool) -> u16 {
        let l = TcpListener::bind((ip(addr), port)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    // Like a real server, answer whatever the client sent (nmap's binary
                    // probes too, or each would wait out its full timeout).
                    if http && !matches!(s.read(&mut [0u8; 4096]).await, Ok(n) if n > 0) {
                        return;
                    }
                    let _ = s.write_all(banner).await;
                    let _ = s.shutdown().await;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                });
            }
        });
        port
    }

    /// A port whose connections are accepted by the kernel and never answered.
    fn silent(addr: &str) -> (std::net::TcpListener, u16) {
        let l = std::net::TcpListener::bind((ip(addr), 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    /// nmap under a unique name, so its processes can be found in /proc.
    fn marked_nmap(dir: &Path) -> (PathBuf, String) {
        static N: AtomicU64 = AtomicU64::new(0);
        let marker = format!(
            "nmap-stinger-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let path = dir.join(&marker);
        std::os::unix::fs::symlink(NMAP, &path).unwrap();
        (path, marker)
    }

    fn live_processes(marker: &str) -> Vec<String> {
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
                if String::from_utf8_lossy(&cmd).contains(marker) {
                    found.push(e.file_name().to_string_lossy().into_owned());
                }
            }
        }
        found
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn port(ports: &[Port], n: u16) -> &Port {
        ports
            .iter()
            .find(|p| p.port == n)
            .unwrap_or_else(|| panic!("port {n} missing in {ports:?}"))
    }

    // --- pure parts ---

    #[test]
    fn args_gate_udp_and_os_on_privileges() {
        let s = Settings {
            udp_ports: vec![161, 53, 53],
            os_detection: true,
            ..settings()
        };
        let a = args(&s, &caps(false), &[443, 22, 80, 81, 82], false);
        let joined = a.join(" ");
        assert!(!a.contains(&"-sU".to_string()), "{joined}");
        assert!(!a.contains(&"-O".to_string()), "{joined}");
        assert!(!joined.contains("U:"), "{joined}");
        assert_eq!(
            joined,
            "-n -Pn -sT -sV --version-intensity 7 -T4 --host-timeout 300s --stats-every 1s \
             -p T:22,80-82,443 -oX - -iL -"
        );

        let v = Settings {
            vulners: true,
            ..settings()
        };
        assert!(args(&v, &caps(false), &[22], false)
            .join(" ")
            .contains("--script vulners -p T:22"));

        let a = args(&s, &caps(true), &[22], true).join(" ");
        assert!(a.contains(" -sU -O -6 -p T:22,U:53,161 -oX - -iL -"), "{a}");
        assert!(
            !a.contains("--privileged"),
            "root needs no --privileged: {a}"
        );

        let ambient = Capabilities {
            root: false,
            ..caps(true)
        };
        let a = args(&s, &ambient, &[22], false);
        assert_eq!(a[0], "--privileged");

        // Clamped values, sub-second times, no --stats-every when zero.
        let s = Settings {
            version_intensity: 12,
            timing: 9,
            host_timeout: Duration::from_millis(1500),
            stats_every: Duration::ZERO,
            ..settings()
        };
        let a = args(&s, &caps(true), &[1], false).join(" ");
        assert!(
            a.contains("--version-intensity 9 -T5 --host-timeout 1500ms -p T:1"),
            "{a}"
        );
        assert!(!a.contains("--stats-every"), "{a}");
    }

    #[test]
    fn port_spec_collapses_runs() {
        assert_eq!(
            port_spec(&[3, 1, 2, 5, 0, 65535, 65534], &[]),
            "T:1-3,5,65534-65535"
        );
        assert_eq!(port_spec(&[], &[53]), "U:53");
        assert_eq!(port_spec(&[22], &[53, 54]), "T:22,U:53-54");
        assert_eq!(port_spec(&[], &[]), "");
    }

    #[test]
    fn plan_groups_identical_port_lists() {
        let mut jobs = Vec::new();
        for i in 1..=5 {
            jobs.push(job(&format!("10.0.0.{i}"), &[22, 80]));
        }
        jobs.push(job("10.0.1.1", &[443]));
        jobs.push(job("10.0.1.2", &[]));
        jobs.push(job("2001:db8::1", &[22, 80]));
        jobs.push(job("10.0.0.1", &[80])); // duplicate address: merged
        let b = plan(&jobs, 2, false);
        // Two full same-list batches, then leftovers packed per family.
        assert_eq!(b.len(), 4, "{b:#?}");
        assert_eq!(b[0].tcp_ports, vec![22, 80]);
        assert_eq!(b[0].hosts.len(), 2);
        assert_eq!(b[1].hosts.len(), 2);
        let mixed = &b[2];
        assert!(!mixed.ipv6);
        assert_eq!(mixed.tcp_ports, vec![22, 80, 443]);
        assert_eq!(mixed.hosts[&ip("10.0.0.5")], vec![22, 80]);
        assert_eq!(mixed.hosts[&ip("10.0.1.1")], vec![443]);
        assert!(b[3].ipv6);
        assert!(b.iter().all(|x| !x.hosts.contains_key(&ip("10.0.1.2"))));
        assert_eq!(
            b.iter().map(|x| x.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );

        // With UDP on, a host without TCP ports still gets a batch.
        let b = plan(&[job("10.0.1.2", &[])], 16, true);
        assert_eq!(b.len(), 1);
        assert!(b[0].tcp_ports.is_empty());

        // A host with a huge list is split so the -p argument stays small, never twice per batch.
        let all: Vec<u16> = (1..=10_000).collect();
        let b = plan(&[job("10.0.2.1", &all), job("10.0.2.2", &[7])], 16, false);
        assert!(b.iter().all(|x| x.tcp_ports.len() <= MAX_PORTS_PER_UNIT));
        let parts: usize = b
            .iter()
            .filter(|x| x.hosts.contains_key(&ip("10.0.2.1")))
            .count();
        assert_eq!(parts, 3);
    }

    #[test]
    fn privileges_from_proc_status() {
        let st = |uid: &str, eff: &str, amb: &str| {
            format!("Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nCapEff:\t{eff}\nCapAmb:\t{amb}\n")
        };
        assert_eq!(
            privileges(&st("0", "000001ffffffffff", "0000000000000000")),
            (true, true)
        );
        // Root in a container without NET_RAW.
        assert_eq!(privileges(&st("0", "00000000a80405fb", "0")), (true, false));
        // Non-root with NET_RAW only in CapEff (file caps on our binary): nmap would not get it.
        assert_eq!(
            privileges(&st("1000", "0000000000002000", "0")),
            (false, false)
        );
        assert_eq!(
            privileges(&st("1000", "0000000000002000", "0000000000002000")),
            (false, true)
        );
        assert_eq!(privileges(&st("1000", "0", "0")), (false, false));
        assert_eq!(privileges("garbage"), (false, false));
        // Real uid 0 but effective uid not: not root.
        assert_eq!(
            privileges("Uid:\t0\t1000\t0\t0\nCapEff:\t0\n"),
            (false, false)
        );
    }

    #[test]
    fn version_line_parses() {
        assert_eq!(
            parse_version("Nmap version 7.93 ( https://nmap.org )\n").as_deref(),
            Some("7.93")
        );
        assert_eq!(
            parse_version("x\nNmap version 7.94SVN ( https://nmap.org )").as_deref(),
            Some("7.94SVN")
        );
        assert_eq!(parse_version("Nmap version ( oops )"), None);
        assert_eq!(parse_version("hello"), None);
    }

    #[test]
    fn task_progress_survives_chunk_splits() {
        let doc = br#"<nmaprun><taskprogress task="Connect Scan" time="1" percent="5.00"/>
<taskprogress task="Service scan" time="2" percent="50.00" remaining="6" etc="3"/>
<host></host><taskprogress task="Service scan" time="3" percent="75.5" remaining="2" etc="4"/>"#;
        for step in [1, 3, 7, 64, doc.len()] {
            let mut buf = Vec::new();
            let mut scan = TaskScan::default();
            let mut got = Vec::new();
            for c in doc.chunks(step) {
                buf.extend_from_slice(c);
                scan.feed(&buf, &mut |t| got.push(t));
            }
            assert_eq!(got.len(), 3, "step {step}: {got:?}");
            assert_eq!(got[0].task, "Connect Scan");
            assert_eq!(got[0].remaining, None);
            assert_eq!(got[1].percent, 50.0);
            assert_eq!(got[1].remaining, Some(6));
            assert_eq!(got[2].percent, 75.5);
        }
    }

    // --- the binary ---

    #[tokio::test]
    async fn missing_binary_is_not_found_with_the_fix() {
        let s = Settings {
            path: "/nonexistent/nmap".into(),
            ..settings()
        };
        let e = probe_nmap(&s).await.unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
        assert_eq!(e.kind(), "nmap_not_found");
        let msg = e.to_string();
        assert!(msg.contains("/nonexistent/nmap"), "{msg}");
        assert!(msg.contains("install the Debian package nmap"), "{msg}");
        assert!(msg.contains("scan.nmap.path"), "{msg}");

        // run() reports it once and does not try the other batches.
        let progress = Arc::new(Progress::default());
        let jobs = [job("127.0.70.20", &[1]), job("127.0.70.21", &[2])];
        let s = Settings {
            batch_hosts: 1,
            ..s
        };
        let (hosts, errors) = run(
            &jobs,
            &s,
            &caps(true),
            progress.clone(),
            CancellationToken::new(),
        )
        .await;
        assert!(hosts.is_empty());
        assert!(matches!(errors[..], [Error::NotFound { .. }]), "{errors:?}");
        assert_eq!(progress.batches_done.load(Ordering::Relaxed), 2);
        assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn probe_reads_the_installed_version() {
        let c = probe_nmap(&settings()).await.unwrap();
        assert!(c.version.starts_with('7'), "{c:?}");
        // The bare name is looked up in PATH.
        let c2 = probe_nmap(&Settings::default()).await.unwrap();
        assert_eq!(c.version, c2.version);
    }

    #[tokio::test]
    async fn old_or_foreign_binaries_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let old = script(
            dir.path(),
            "old",
            "echo 'Nmap version 6.47 ( http://nmap.org )'",
        );
        let e = probe_nmap(&Settings {
            path: old,
            ..settings()
        })
        .await
        .unwrap_err();
        assert!(
            matches!(&e, Error::TooOld { version } if version == "6.47"),
            "{e:?}"
        );
        assert!(e.to_string().contains("7.0 or newer"), "{e}");
        let foreign = script(dir.path(), "foreign", "echo hello");
        let e = probe_nmap(&Settings {
            path: foreign,
            ..settings()
        })
        .await
        .unwrap_err();
        assert!(matches!(e, Error::Nmap { .. }), "{e:?}");
    }

    #[tokio::test]
    async fn nmap_errors_are_reported_per_batch() {
        let dir = tempfile::tempdir().unwrap();
        // A fatal error after the XML started: nmap closes the document with exit="error".
        let xml = script(
            dir.path(),
            "xml-error",
            r#"cat <<'X'
<?xml version="1.0"?><nmaprun scanner="nmap" version="7.93"><runstats><finished time="1" exit="error" errormsg="Something broke"/><hosts up="0" down="0" total="0"/></runstats></nmaprun>
X
exit 1"#,
        );
        let quit = script(dir.path(), "quit", "echo 'You requested a scan type which requires root privileges.\nQUITTING!' >&2; exit 1");
        let garbage = script(dir.path(), "garbage", "echo '<nmaprun><host>'");
        let jobs = [job("127.0.70.22", &[1])];
        let progress = Arc::new(Progress::default());
        for (path, want) in [(xml, "Something broke"), (quit, "QUITTING!"), (garbage, "")] {
            let s = Settings { path, ..settings() };
            let (hosts, errors) = run(
                &jobs,
                &s,
                &caps(true),
                progress.clone(),
                CancellationToken::new(),
            )
            .await;
            assert!(hosts.is_empty());
            assert_eq!(errors.len(), 1, "{errors:?}");
            if want.is_empty() {
                assert!(matches!(&errors[0], Error::Output { .. }), "{errors:?}");
            } else {
                assert!(
                    matches!(&errors[0], Error::Nmap { message } if message.contains(want)),
                    "{errors:?}"
                );
            }
        }
        assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 3);
        assert_eq!(progress.percent(), 100.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn progress_and_results_follow_the_stream() {
        // nmap itself writes <taskprogress> only when an event wakes its loop, so a fake one
        // makes the timing deterministic. It also reports a port and a host nobody asked for.
        let dir = tempfile::tempdir().unwrap();
        let fake = script(
            dir.path(),
            "fake-nmap",
            r#"cat >/dev/null
cat <<'X'
<?xml version="1.0"?>
<nmaprun scanner="nmap" version="7.93">
<taskprogress task="Service scan" time="1" percent="50.00" remaining="3" etc="4"/>
X
sleep 1
cat <<'X'
<host><status state="up" reason="user-set"/><address addr="127.0.70.23" addrtype="ipv4"/><ports><port protocol="tcp" portid="80"><state state="open" reason="syn-ack"/><service name="http" method="probed" conf="10"/></port><port protocol="tcp" portid="81"><state state="open" reason="syn-ack"/></port><port protocol="udp" portid="53"><state state="open" reason="udp-response"/></port></ports></host>
<host><status state="up" reason="user-set"/><address addr="10.9.9.9" addrtype="ipv4"/><ports><port protocol="tcp" portid="80"><state state="open" reason="syn-ack"/></port></ports></host>
<runstats><finished time="2" exit="success"/><hosts up="2" down="0" total="2"/></runstats></nmaprun>
X"#,
        );
        let progress = Arc::new(Progress::default());
        let (watch, midway) = (progress.clone(), Arc::new(AtomicBool::new(false)));
        let saw = midway.clone();
        let sampler = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if watch.percent() == 50.0 {
                    saw.store(true, Ordering::Relaxed);
                }
            }
        });
        let s = Settings {
            path: fake,
            ..settings()
        };
        let jobs = [job("127.0.70.23", &[80])];
        let (hosts, errors) = tokio::time::timeout(
            LIMIT,
            run(
                &jobs,
                &s,
                &caps(true),
                progress.clone(),
                CancellationToken::new(),
            ),
        )
        .await
        .unwrap();
        sampler.abort();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(
            midway.load(Ordering::Relaxed),
            "50 % never reached Progress"
        );
        assert_eq!(progress.percent(), 100.0);
        assert_eq!(hosts.len(), 1, "{hosts:?}");
        assert_eq!(hosts[0].address, ip("127.0.70.23"));
        assert_eq!(hosts[0].tcp.len(), 1);
        assert_eq!(hosts[0].tcp[0].port, 80);
        assert!(hosts[0].udp.is_empty(), "UDP was not asked for");
    }

    // --- real nmap on loopback ---

    struct Sshd(std::process::Child);
    impl Drop for Sshd {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn installed_openssh_version() -> String {
        let out = std::process::Command::new("ssh")
            .arg("-V")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        let v = text
            .split("OpenSSH_")
            .nth(1)
            .unwrap_or_else(|| panic!("ssh -V: {text}"));
        v.split([' ', ',']).next().unwrap().to_string()
    }

    async fn start_sshd(dir: &Path, addr: &str) -> (Sshd, u16) {
        let port = std::net::TcpListener::bind((ip(addr), 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let key = dir.join("host_ed25519");
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status()
            .unwrap();
        assert!(st.success());
        let cfg = dir.join("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Port {port}\nListenAddress {addr}\nHostKey {}\nPidFile none\nUsePAM no\n\
                 StrictModes no\nAuthorizedKeysFile none\n",
                key.display()
            ),
        )
        .unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        let child = std::process::Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&cfg)
            .arg("-h")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut sshd = Sshd(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect((ip(addr), port))
                .await
                .is_ok()
            {
                return (sshd, port);
            }
            if let Ok(Some(st)) = sshd.0.try_wait() {
                panic!("sshd exited: {st}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("sshd did not listen on {addr}:{port}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn identifies_ssh_and_http() {
        if !Path::new("/usr/sbin/sshd").exists() {
            println!("SKIPPED identifies_ssh_and_http: /usr/sbin/sshd is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let (_sshd, ssh_port) = start_sshd(dir.path(), "127.0.70.2").await;
        let http_port = serve(
            "127.0.70.1",
            0,
            // nmap 7.93 has no generic HTTP match: an unknown Server header stays "unknown".
            b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nContent-Type: text/html\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            true,
        )
        .await;
        let s = settings();
        let caps = probe_nmap(&s).await.unwrap();
        let progress = Arc::new(Progress::default());
        let started = std::time::Instant::now();
        let jobs = [
            job("127.0.70.1", &[http_port]),
            job("127.0.70.2", &[ssh_port]),
        ];
        let (hosts, errors) = tokio::time::timeout(
            LIMIT,
            run(&jobs, &s, &caps, progress.clone(), CancellationToken::new()),
        )
        .await
        .unwrap();
        println!(
            "identifies_ssh_and_http: nmap took {:.1?}",
            started.elapsed()
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(hosts.len(), 2, "{hosts:#?}");

        let http = &hosts[0];
        assert_eq!(http.address, ip("127.0.70.1"));
        assert_eq!(http.tcp.len(), 1);
        let svc = port(&http.tcp, http_port).service.clone().unwrap();
        assert_eq!(svc.name.as_deref(), Some("http"), "{svc:?}");
        assert_eq!(svc.product.as_deref(), Some("nginx"), "{svc:?}");
        assert_eq!(svc.version.as_deref(), Some("1.22.1"), "{svc:?}");

        let ssh = &hosts[1];
        assert_eq!(ssh.address, ip("127.0.70.2"));
        let p = port(&ssh.tcp, ssh_port);
        assert_eq!(p.state, nmap_xml::PortState::Open);
        let svc = p.service.clone().unwrap();
        assert_eq!(svc.name.as_deref(), Some("ssh"), "{svc:?}");
        assert!(
            svc.product.as_deref().unwrap_or("").contains("OpenSSH"),
            "{svc:?}"
        );
        let want = installed_openssh_version();
        assert!(
            svc.version.as_deref().unwrap_or("").starts_with(&want),
            "{svc:?} vs {want}"
        );
        assert!(
            svc.cpes
                .iter()
                .any(|c| c.starts_with("cpe:/a:openbsd:openssh:")),
            "{svc:?}"
        );
        assert!(ssh.udp.is_empty() && ssh.os.is_empty());

        assert_eq!(progress.batches_total.load(Ordering::Relaxed), 1);
        assert_eq!(progress.batches_done.load(Ordering::Relaxed), 1);
        assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 0);
        assert_eq!(progress.percent(), 100.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn results_are_filtered_to_each_jobs_ports() {
        // B's port is open on A too, but A's job did not ask for it.
        let p2 = serve("127.0.70.4", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
        serve("127.0.70.3", p2, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
        let p1 = serve("127.0.70.3", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
        let jobs = [job("127.0.70.3", &[p1]), job("127.0.70.4", &[p2])];
        let (hosts, errors) = tokio::time::timeout(
            LIMIT,
            run(
                &jobs,
                &settings(),
                &caps(true),
                Arc::new(Progress::default()),
                CancellationToken::new(),
            ),
        )
        .await
        .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(hosts.len(), 2);
        let ports = |h: &HostServices| h.tcp.iter().map(|p| p.port).collect::<Vec<_>>();
        assert_eq!(ports(&hosts[0]), vec![p1]);
        assert_eq!(ports(&hosts[1]), vec![p2]);
        assert_eq!(
            hosts[0].tcp[0]
                .service
                .as_ref()
                .and_then(|s| s.name.as_deref()),
            Some("ssh")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn udp_and_os_run_only_with_raw_sockets() {
        let s = Settings {
            udp_ports: vec![9],
            os_detection: true,
            version_intensity: 0,
            ..settings()
        };
        let real = probe_nmap(&s).await.unwrap();
        if !real.privileged {
            println!("SKIPPED udp_and_os_run_only_with_raw_sockets: no root/CAP_NET_RAW");
            return;
        }
        let tcp = serve("127.0.70.11", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
        let jobs = [job("127.0.70.11", &[tcp])];
        let (hosts, errors) = tokio::time::timeout(
            LIMIT,
            run(
                &jobs,
                &s,
                &real,
                Arc::new(Progress::default()),
                CancellationToken::new(),
            ),
        )
        .await
        .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        // Nothing listens on UDP 9: the kernel answers ICMP port unreachable.
        let udp = port(&hosts[0].udp, 9);
        assert_eq!(udp.state, nmap_xml::PortState::Closed);
        assert_eq!(udp.protocol, Protocol::Udp);
        assert_eq!(hosts[0].tcp.len(), 1);

        // The same settings without privileges: TCP only, no UDP, no OS.
        let (hosts, errors) = tokio::time::timeout(
            LIMIT,
            run(
                &jobs,
                &s,
                &caps(false),
                Arc::new(Progress::default()),
                CancellationToken::new(),
            ),
        )
        .await
        .unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert!(hosts[0].udp.is_empty() && hosts[0].os.is_empty());
        assert_eq!(hosts[0].tcp.len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batch_timeout_kills_nmap() {
        let dir = tempfile::tempdir().unwrap();
        let (path, marker) = marked_nmap(dir.path());
        let (_l, port) = silent("127.0.70.5");
        let s = Settings {
            path,
            version_intensity: 9,
            host_timeout: Duration::ZERO,
            batch_timeout: Duration::from_secs(1),
            ..settings()
        };
        let progress = Arc::new(Progress::default());
        let started = std::time::Instant::now();
        let (hosts, errors) = run(
            &[job("127.0.70.5", &[port])],
            &s,
            &caps(true),
            progress.clone(),
            CancellationToken::new(),
        )
        .await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "{took:?}");
        assert!(hosts.is_empty());
        assert!(
            matches!(&errors[..], [Error::Timeout { hosts, .. }] if hosts == &[ip("127.0.70.5")]),
            "{errors:?}"
        );
        assert!(errors[0].to_string().contains("127.0.70.5"));
        assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 1);
        assert_eq!(live_processes(&marker), Vec::<String>::new());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_batch_does_not_affect_others() {
        let (_l, slow) = silent("127.0.70.6");
        let fast = serve("127.0.70.7", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
        let s = Settings {
            batch_hosts: 1,
            host_timeout: Duration::ZERO,
            batch_timeout: Duration::from_secs(4),
            ..settings()
        };
        let progress = Arc::new(Progress::default());
        let jobs = [job("127.0.70.6", &[slow]), job("127.0.70.7", &[fast])];
        let (hosts, errors) = tokio::time::timeout(
            LIMIT,
            run(
                &jobs,
                &s,
                &caps(true),
                progress.clone(),
                CancellationToken::new(),
            ),
        )
        .await
        .unwrap();
        assert_eq!(hosts.len(), 1, "{hosts:?} {errors:?}");
        assert_eq!(hosts[0].address, ip("127.0.70.7"));
        assert_eq!(hosts[0].tcp[0].port, fast);
        assert!(matches!(&errors[..], [Error::Timeout { .. }]), "{errors:?}");
        assert_eq!(progress.batches_done.load(Ordering::Relaxed), 2);
        assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn host_timeout_is_an_error_not_an_empty_host() {
        let (_l, port) = silent("127.0.70.8");
        let s = Settings {
            host_timeout: Duration::from_secs(1),
            ..settings()
        };
        let (hosts, errors) = tokio::time::timeout(
            LIMIT,
            run(
                &[job("127.0.70.8", &[port])],
                &s,
                &caps(true),
                Arc::new(Progress::default()),
                CancellationToken::new(),
            ),
        )
        .await
        .unwrap();
        assert!(hosts.is_empty(), "{hosts:?}");
        assert!(
            matches!(&errors[..], [Error::HostTimeout { address, .. }] if *address == ip("127.0.70.8")),
            "{errors:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancellation_kills_nmap_promptly() {
        let dir = tempfile::tempdir().unwrap();
        let (path, marker) = marked_nmap(dir.path());
        let (_l, port) = silent("127.0.70.9");
        let s = Settings {
            path,
            batch_hosts: 1,
            parallel_batches: 1,
            host_timeout: Duration::ZERO,
            ..settings()
        };
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            trigger.cancel();
        });
        let jobs = [job("127.0.70.9", &[port]), job("127.0.70.10", &[port])];
        let started = std::time::Instant::now();
        let caps = caps(true);
        let run = run(&jobs, &s, &caps, Arc::new(Progress::default()), cancel);
        let mut run = std::pin::pin!(run);
        // nmap really was running before the cancel.
        let seen = tokio::select! {
            _ = &mut run => panic!("finished before the cancel"),
            _ = tokio::time::sleep(Duration::from_millis(700)) => live_processes(&marker),
        };
        assert_eq!(seen.len(), 1, "{seen:?}");
        let (hosts, errors) = run.await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(hosts.is_empty());
        assert!(matches!(&errors[..], [Error::Cancelled]), "{errors:?}");
        assert_eq!(live_processes(&marker), Vec::<String>::new());
    }
}
