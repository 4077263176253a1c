//! Native async TCP connect scanner (tokio): one job is addresses × ports. A fixed pool of workers
//! pulls probe numbers from an atomic counter (no queue, no task per probe), in port-major order with
//! likely-open ports first, so load spreads over hosts and round-trip samples arrive early. Probes
//! classify as open / closed / filtered (no answer within the RTT-derived timeout, after retries) /
//! error; only timed-out probes are retried. Sockets close with SO_LINGER 0 (a reset, no TIME_WAIT).

use super::timing::{Pacer, TimeoutBounds, Timing};
use super::{Error, Progress};
use crate::model::{HostObservation, ProbeCounts};
use socket2::{Domain, Protocol as SockProtocol, Socket, Type};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Scanner settings (config `[scan.tcp]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Most connects in flight at once (further capped by the open-file limit).
    pub concurrency: usize,
    /// Probes per second over all hosts; 0 = unlimited.
    pub max_rate: u64,
    /// Probes per second to any one host; 0 = unlimited.
    pub max_host_rate: u64,
    /// Timeout for a host until one of its answers has been timed.
    pub initial_timeout: Duration,
    /// Bounds of the RTT-derived timeout.
    pub min_timeout: Duration,
    pub max_timeout: Duration,
    /// Extra attempts for a probe that timed out (never for one that was answered).
    pub retries: u32,
}

impl Default for Settings {
    fn default() -> Self {
        use super::defaults as d;
        Settings {
            concurrency: d::CONCURRENCY,
            max_rate: 0,
            max_host_rate: 0,
            initial_timeout: d::INITIAL_TIMEOUT,
            min_timeout: d::MIN_TIMEOUT,
            max_timeout: d::MAX_TIMEOUT,
            retries: d::RETRIES,
        }
    }
}

/// What one job found (index-aligned with the addresses given).
pub type Output = super::Observations;

/// The TCP connect scan as a [`Prober`](super::Prober): discovery, the pass's probe counts.
pub struct Connect(pub Settings);

impl super::Prober for Connect {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn discovers(&self) -> bool {
        true
    }

    fn probe(&self, job: super::Job) -> super::prober::Running {
        let settings = self.0.clone();
        super::prober::in_namespace(job, move |job| async move {
            scan(
                &job.addresses,
                &job.ports,
                &settings,
                job.fd_limit,
                job.progress,
                job.cancel,
            )
            .await
        })
    }
}

/// File descriptors kept free for the rest of the agent (HTTP server, RocksDB, logs).
const FD_RESERVE: u64 = 256;

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Probe {
    Open,
    Closed,
    /// No answer in time: retried, then counted as filtered.
    TimedOut,
    /// An ICMP unreachable or similar: filtered, not retried.
    Unreachable,
    /// No file descriptor or local port right now: wait and try the same probe again.
    NoResources,
    Error,
}

struct Shared {
    addrs: Vec<IpAddr>,
    ports: Vec<u16>,
    total: u64,
    next: AtomicU64,
    timing: Timing,
    origin: Instant,
    global_pacer: Option<Pacer>,
    host_pacers: Vec<Pacer>,
    retries: u32,
    open: Mutex<Vec<(u32, u16)>>,
    closed: Vec<AtomicU32>,
    filtered: Vec<AtomicU32>,
    errors: Vec<AtomicU32>,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    workers: AtomicUsize,
}

/// Scan every address on every port. `fd_limit` is the process' open-file limit (see
/// [`super::raise_nofile_limit`]). Returns [`Error::Cancelled`] if `cancel` fires first.
pub async fn scan(
    addresses: &[IpAddr],
    ports: &[u16],
    settings: &Settings,
    fd_limit: u64,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<Output, Error> {
    let mut ordered = ports.to_vec();
    ordered.sort_by_key(|&p| crate::ports::rank(p));
    ordered.dedup();
    let total = addresses.len() as u64 * ordered.len() as u64;
    progress.total.fetch_add(total, Ordering::Relaxed);
    let n = addresses.len();
    let shared = Arc::new(Shared {
        addrs: addresses.to_vec(),
        ports: ordered,
        total,
        next: AtomicU64::new(0),
        timing: Timing::new(
            n,
            TimeoutBounds {
                initial: settings.initial_timeout,
                min: settings.min_timeout,
                max: settings.max_timeout,
            },
        ),
        origin: Instant::now(),
        global_pacer: Pacer::new(settings.max_rate),
        host_pacers: if settings.max_host_rate > 0 {
            (0..n)
                .filter_map(|_| Pacer::new(settings.max_host_rate))
                .collect()
        } else {
            Vec::new()
        },
        retries: settings.retries,
        open: Mutex::new(Vec::new()),
        closed: (0..n).map(|_| AtomicU32::new(0)).collect(),
        filtered: (0..n).map(|_| AtomicU32::new(0)).collect(),
        errors: (0..n).map(|_| AtomicU32::new(0)).collect(),
        progress,
        cancel: cancel.clone(),
        workers: AtomicUsize::new(0),
    });

    let fd_budget = fd_limit.saturating_sub(FD_RESERVE).max(1);
    let workers = (settings.concurrency.max(1) as u64)
        .min(total)
        .min(fd_budget) as usize;
    if (settings.concurrency as u64) > fd_budget {
        tracing::warn!(
            concurrency = settings.concurrency,
            fd_limit,
            using = workers,
            "open-file limit caps scan concurrency; raise the hard limit (LimitNOFILE) for faster scans"
        );
    }
    shared.workers.store(workers, Ordering::Relaxed);
    let mut set = JoinSet::new();
    for _ in 0..workers {
        set.spawn(worker(shared.clone()));
    }
    let finished = async {
        while let Some(r) = set.join_next().await {
            if let Err(e) = r {
                return Err(Error::Worker(e.to_string()));
            }
        }
        Ok(())
    };
    tokio::select! {
        r = finished => r?,
        _ = cancel.cancelled() => return Err(Error::Cancelled),
    }
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(collect(&shared))
}

fn collect(s: &Shared) -> Output {
    let mut hosts: Vec<HostObservation> = (0..s.addrs.len())
        .map(|h| HostObservation {
            open: Vec::new(),
            closed: s.closed[h].load(Ordering::Relaxed),
            filtered: s.filtered[h].load(Ordering::Relaxed),
            errors: s.errors[h].load(Ordering::Relaxed),
            ..Default::default()
        })
        .collect();
    let open = match s.open.lock() {
        Ok(v) => v.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    let mut counts = ProbeCounts {
        open: open.len() as u64,
        ..Default::default()
    };
    for (h, port) in open {
        hosts[h as usize].open.push(port);
    }
    for h in &mut hosts {
        h.open.sort_unstable();
        counts.closed += h.closed as u64;
        counts.filtered += h.filtered as u64;
        counts.error += h.errors as u64;
    }
    let srtt = (0..s.addrs.len()).map(|h| s.timing.srtt(h)).collect();
    Output {
        hosts,
        counts,
        srtt,
    }
}

/// Probes a worker runs between voluntary yields: answered-at-once probes never await, so without
/// this one worker could keep its runtime thread from everything else (HTTP, timers, other workers).
const YIELD_EVERY: u32 = 64;

/// Wait for a slot under `max_rate`, then under host `h`'s `max_host_rate`.
async fn pace(s: &Shared, h: usize) {
    if let Some(pacer) = &s.global_pacer {
        if let Some(at) = pacer.reserve(s.origin) {
            tokio::time::sleep_until(at).await;
        }
    }
    if let Some(pacer) = s.host_pacers.get(h) {
        if let Some(at) = pacer.reserve(s.origin) {
            tokio::time::sleep_until(at).await;
        }
    }
}

async fn worker(s: Arc<Shared>) {
    let n = s.addrs.len() as u64;
    let mut since_yield = 0u32;
    loop {
        if s.cancel.is_cancelled() {
            return;
        }
        since_yield += 1;
        if since_yield >= YIELD_EVERY {
            since_yield = 0;
            tokio::task::yield_now().await;
        }
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= s.total {
            return;
        }
        let (h, p) = ((i % n) as usize, (i / n) as usize);
        let addr = SocketAddr::new(s.addrs[h], s.ports[p]);
        let mut attempts = 0;
        let mut retire = false;
        let result = loop {
            // Every attempt, retries included, waits for its global and per-host slots: the
            // configured rates are packets a second, not first attempts a second.
            pace(&s, h).await;
            match probe(&s, h, addr).await {
                Probe::TimedOut if attempts < s.retries => attempts += 1,
                Probe::NoResources => {
                    s.progress.resource_waits.fetch_add(1, Ordering::Relaxed);
                    // Degrade instead of failing: this worker retires after its probe (while others
                    // remain), lowering concurrency until descriptors suffice.
                    retire = true;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                r => break r,
            }
        };
        s.record(h, addr.port(), result);
        if retire
            && s.workers
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |w| {
                    (w > 1).then(|| w - 1)
                })
                .is_ok()
        {
            tracing::debug!("scan worker retired after running out of descriptors");
            return;
        }
    }
}

impl Shared {
    fn record(&self, h: usize, port: u16, r: Probe) {
        let p = &self.progress;
        match r {
            Probe::Open => {
                match self.open.lock() {
                    Ok(mut v) => v.push((h as u32, port)),
                    Err(poisoned) => poisoned.into_inner().push((h as u32, port)),
                }
                p.open.fetch_add(1, Ordering::Relaxed);
            }
            Probe::Closed => {
                self.closed[h].fetch_add(1, Ordering::Relaxed);
                p.closed.fetch_add(1, Ordering::Relaxed);
            }
            Probe::TimedOut | Probe::Unreachable => {
                self.filtered[h].fetch_add(1, Ordering::Relaxed);
                p.filtered.fetch_add(1, Ordering::Relaxed);
            }
            Probe::Error | Probe::NoResources => {
                self.errors[h].fetch_add(1, Ordering::Relaxed);
                p.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        p.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Errors that mean "this machine is out of something right now", not "the target said no".
fn is_resource_error(e: &io::Error) -> bool {
    // Linux errno values: ENOMEM 12, ENFILE 23, EMFILE 24, ENOBUFS 105.
    matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
        || e.kind() == io::ErrorKind::AddrNotAvailable
}

/// Linux EINPROGRESS: a non-blocking connect was started.
const EINPROGRESS: i32 = 115;

fn classify(e: &io::Error) -> Probe {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => Probe::Closed,
        io::ErrorKind::HostUnreachable
        | io::ErrorKind::NetworkUnreachable
        | io::ErrorKind::TimedOut => Probe::Unreachable,
        _ if is_resource_error(e) => Probe::NoResources,
        _ => Probe::Error,
    }
}

/// How a connect stands right after `connect()` returned.
enum Started {
    Done(Probe),
    Pending(Socket),
}

/// Start a non-blocking connect. When the answer came back within the syscall — loopback and other
/// local paths, where the kernel handles the reset or SYN-ACK before `connect()` returns — it is read
/// at once (SO_ERROR, getpeername) with no reactor registration, timer or wake-up; only connects
/// still pending go to the reactor.
fn start(addr: SocketAddr) -> Started {
    let ty = Type::STREAM.nonblocking().cloexec();
    let sock = match Socket::new(Domain::for_address(addr), ty, Some(SockProtocol::TCP)) {
        Ok(s) => s,
        Err(e) => return Started::Done(classify(&e)),
    };
    // A failure here only costs a TIME_WAIT entry; the probe is still valid.
    let _ = sock.set_linger(Some(Duration::ZERO));
    match sock.connect(&addr.into()) {
        Ok(()) => Started::Done(Probe::Open),
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => match sock.take_error() {
            Ok(Some(e)) | Err(e) => Started::Done(classify(&e)),
            Ok(None) if sock.peer_addr().is_ok() => Started::Done(Probe::Open),
            Ok(None) => Started::Pending(sock),
        },
        Err(e) => Started::Done(classify(&e)),
    }
}

/// Wait (with the host's timeout) for a pending connect to be answered.
async fn finish(s: &Shared, h: usize, sock: Socket, start: Instant) -> Probe {
    let stream = match TcpStream::from_std(sock.into()) {
        Ok(s) => s,
        Err(e) => return classify(&e),
    };
    let answer = async {
        loop {
            if let Err(e) = stream.writable().await {
                return classify(&e);
            }
            match stream.take_error() {
                Ok(Some(e)) | Err(e) => return classify(&e),
                Ok(None) if stream.peer_addr().is_ok() => return Probe::Open,
                // A spurious wake-up: clear the readiness and wait again.
                Ok(None) => {
                    let _ = stream.try_io(Interest::WRITABLE, || {
                        Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
                    });
                }
            }
        }
    };
    tokio::pin!(answer);
    let (mut timeout, mut measured) = s.timing.timeout(h);
    loop {
        if measured {
            return tokio::time::timeout_at(start + timeout, &mut answer)
                .await
                .unwrap_or(Probe::TimedOut);
        }
        // Started before this host was timed: wait with the initial timeout, but re-arm as soon as
        // its first answer gives a measured one.
        let notified = s.timing.first_sample(h).notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        (timeout, measured) = s.timing.timeout(h);
        if measured {
            continue;
        }
        tokio::select! {
            r = &mut answer => return r,
            _ = tokio::time::sleep_until(start + timeout) => return Probe::TimedOut,
            _ = &mut notified => (timeout, measured) = s.timing.timeout(h),
        }
    }
}

async fn probe(s: &Shared, h: usize, addr: SocketAddr) -> Probe {
    let begun = Instant::now();
    let result = match start(addr) {
        Started::Done(r) => r,
        Started::Pending(sock) => finish(s, h, sock, begun).await,
    };
    if matches!(result, Probe::Open | Probe::Closed) {
        s.timing.observe(h, begun.elapsed());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn settings() -> Settings {
        Settings {
            concurrency: 64,
            initial_timeout: Duration::from_millis(500),
            ..Settings::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn finds_exactly_the_listeners() {
        // Two hosts on loopback, each with its own listeners.
        let a: IpAddr = "127.0.77.1".parse().unwrap();
        let b: IpAddr = "127.0.77.2".parse().unwrap();
        let la = TcpListener::bind((a, 0)).unwrap();
        let lb = TcpListener::bind((b, 0)).unwrap();
        let (pa, pb) = (
            la.local_addr().unwrap().port(),
            lb.local_addr().unwrap().port(),
        );
        let ports = vec![pa, pb];
        let progress = Arc::new(Progress::default());
        let out = scan(
            &[a, b],
            &ports,
            &settings(),
            4096,
            progress.clone(),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.hosts[0].open, vec![pa]);
        assert_eq!(out.hosts[1].open, vec![pb]);
        assert_eq!(out.counts.open, 2);
        assert_eq!(out.counts.closed, 2);
        assert_eq!(progress.done.load(Ordering::Relaxed), 4);
        assert!((progress.ratio() - 1.0).abs() < f64::EPSILON);
        assert!(out.srtt[0].is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scans_ipv6() {
        let Ok(l) = TcpListener::bind("[::1]:0") else {
            eprintln!("no IPv6 loopback here; skipping the IPv6 scan test");
            return;
        };
        let port = l.local_addr().unwrap().port();
        let out = scan(
            &["::1".parse().unwrap()],
            &[port, port.wrapping_add(1).max(1)],
            &settings(),
            4096,
            Arc::new(Progress::default()),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.hosts[0].open, vec![port]);
        assert_eq!(out.hosts[0].closed, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancellation_stops_a_scan() {
        let cancel = CancellationToken::new();
        cancel.cancel();
        let r = scan(
            &["127.0.77.3".parse().unwrap()],
            &(1..=2000).collect::<Vec<_>>(),
            &settings(),
            4096,
            Arc::new(Progress::default()),
            cancel,
        )
        .await;
        assert!(matches!(r, Err(Error::Cancelled)));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tiny_descriptor_budget_still_completes() {
        // fd_limit below the reserve: one worker does all the work.
        let l = TcpListener::bind("127.0.77.4:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let out = scan(
            &["127.0.77.4".parse().unwrap()],
            &[port, 1, 2, 3],
            &settings(),
            10,
            Arc::new(Progress::default()),
            CancellationToken::new(),
        )
        .await
        .unwrap();
        assert_eq!(out.hosts[0].open, vec![port]);
        assert_eq!(out.hosts[0].closed, 3);
    }

    #[test]
    fn errors_classify() {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(classify(&refused), Probe::Closed);
        assert_eq!(
            classify(&io::Error::from_raw_os_error(24)),
            Probe::NoResources
        );
        assert_eq!(
            classify(&io::Error::from_raw_os_error(113)),
            Probe::Unreachable
        );
        assert_eq!(
            classify(&io::Error::from(io::ErrorKind::PermissionDenied)),
            Probe::Error
        );
    }
}
