//! Native UDP exposure scanner (tokio): finds the services that make a VM a reflection/amplification
//! source — open DNS resolvers, NTP mode 6/7, SNMP with a guessable community, memcached UDP, SSDP,
//! CLDAP, chargen, WS-Discovery, portmapper, NetBIOS-NS, mDNS. One job is addresses × (port,
//! protocol) pairs; each probe sends that protocol's own requests (the table in `payloads.rs`) and
//! classifies the port as [`Status::Open`] (a reply that validates as the protocol's positive
//! answer to exactly our request — a reflected copy of it never does), [`Status::Closed`] (ICMP port
//! unreachable) or [`Status::Unknown`] (nothing, after retries). Open ports carry their amplification
//! factor (reply bytes / request bytes).
//!
//! Scope: datagrams go only to the addresses handed in. Unspecified, limited-broadcast and multicast
//! destinations are refused up front (reported in [`HostResult::refused`], never probed), and
//! sockets never set `SO_BROADCAST`, so the kernel also refuses (EACCES, reported as
//! [`Status::Error`]) a subnet-directed broadcast address that slipped into the inventory.
//!
//! Sockets: one connected UDP socket per probe, so an ICMP port unreachable surfaces as
//! ECONNREFUSED (closed) and datagrams from any other source are dropped by the kernel. A service
//! that answers from another address or port (multi-homed, NAT, TFTP-like) therefore reads as
//! Unknown, never as Open. Ports have no generic empty-datagram probe: every port is probed as a
//! known protocol, because only a validated answer may count as Open.

mod ber;
mod dns;
mod observe;
mod payloads;
mod probe;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod servers;
#[cfg(test)]
mod tests;

pub use dns::{NameError, QueryName};
pub use observe::Probes;
pub use payloads::{Protocol, UnknownProtocol};

use super::timing::{Pacer, TimeoutBounds, Timing};
use super::{Error, Progress};
use payloads::Params;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The ports probed by default, each with the protocol spoken there.
pub const DEFAULT_PORTS: &[(u16, Protocol)] = &[
    (53, Protocol::Dns),
    (123, Protocol::Ntp),
    (161, Protocol::Snmp),
    (11211, Protocol::Memcached),
    (1900, Protocol::Ssdp),
    (389, Protocol::Cldap),
    (19, Protocol::Chargen),
    (3702, Protocol::WsDiscovery),
    (111, Protocol::Portmap),
    (137, Protocol::NetbiosNs),
    (5353, Protocol::Mdns),
];

/// Default most probes in flight: each holds a socket and a receive buffer.
pub const DEFAULT_CONCURRENCY: usize = 1024;
/// Default time to keep collecting further datagrams after the first valid reply.
pub const DEFAULT_GATHER: Duration = Duration::from_millis(250);

/// Scanner settings (config `[scan.udp]`), mirroring [`super::tcp::Settings`].
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// What to probe: each port with the protocol to speak there (duplicate pairs are ignored).
    pub ports: Vec<(u16, Protocol)>,
    /// Most probes in flight at once (further capped by the open-file limit).
    pub concurrency: usize,
    /// Datagrams per second over all hosts, retries included; 0 = unlimited.
    pub max_rate: u64,
    /// Datagrams per second to any one host, retries included; 0 = unlimited.
    pub max_host_rate: u64,
    /// Timeout for a host until one of its answers has been timed.
    pub initial_timeout: Duration,
    /// Bounds of the RTT-derived timeout.
    pub min_timeout: Duration,
    pub max_timeout: Duration,
    /// Extra attempts for a request that got no answer (never for one that was answered).
    pub retries: u32,
    /// After the first valid reply, how long further datagrams are counted into the reply size
    /// (memcached, NTP monlist and SSDP answer with several).
    pub gather: Duration,
    /// The name DNS probes ask for; it must lie outside every zone the scanned VMs serve.
    pub dns_query_name: QueryName,
    /// The SNMP community tried (v2c and v1).
    pub snmp_community: String,
}

impl Default for Settings {
    fn default() -> Self {
        use super::defaults as d;
        Settings {
            ports: DEFAULT_PORTS.to_vec(),
            concurrency: DEFAULT_CONCURRENCY,
            max_rate: 0,
            max_host_rate: 0,
            initial_timeout: d::INITIAL_TIMEOUT,
            min_timeout: d::MIN_TIMEOUT,
            max_timeout: d::MAX_TIMEOUT,
            retries: d::RETRIES,
            gather: DEFAULT_GATHER,
            dns_query_name: QueryName::default(),
            snmp_community: "public".to_string(),
        }
    }
}

/// What one job found.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Index-aligned with the addresses given.
    pub hosts: Vec<HostResult>,
    pub counts: Counts,
    /// Measured smoothed RTT per host (None where nothing answered).
    pub srtt: Vec<Option<Duration>>,
}

/// Probe totals of one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub open: u64,
    pub closed: u64,
    pub unknown: u64,
    pub error: u64,
    /// Addresses refused without probing (see [`Refused`]).
    pub refused_hosts: u64,
}

/// One address's results.
#[derive(Debug, Clone, PartialEq)]
pub struct HostResult {
    pub address: IpAddr,
    /// Why the address was not probed at all; `None` when it was.
    pub refused: Option<Refused>,
    /// One entry per (port, protocol) of the settings, in their order; empty when refused.
    pub ports: Vec<PortResult>,
}

/// Destinations the scanner never sends to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `0.0.0.0` or `::`.
    Unspecified,
    /// `255.255.255.255`.
    Broadcast,
    /// `224.0.0.0/4` or `ff00::/8` (also as IPv4-mapped IPv6).
    Multicast,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refused::Unspecified => "unspecified address",
            Refused::Broadcast => "broadcast address",
            Refused::Multicast => "multicast address",
        })
    }
}

/// The result for one (address, port, protocol).
#[derive(Debug, Clone, PartialEq)]
pub struct PortResult {
    pub port: u16,
    pub protocol: Protocol,
    pub status: Status,
}

/// How a probe ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// The protocol answered us; how much it amplifies.
    Open(Exposure),
    /// ICMP port unreachable.
    Closed,
    /// No valid answer after retries (silently dropped, filtered, or an unrelated service): neither
    /// open nor closed.
    Unknown,
    /// The probe could not be sent (local error), with the reason.
    Error(String),
}

/// An open UDP service and its reflection potential.
#[derive(Debug, Clone, PartialEq)]
pub struct Exposure {
    /// Service name (`dns`, `ntp`, `snmp`, `memcached`, …), as [`Protocol::name`].
    pub service: &'static str,
    /// The request with the biggest amplification (`mode6-readvar`, `mode7-monlist`, …).
    pub variant: &'static str,
    /// Every request that was answered, in table order (NTP: which modes answered).
    pub answered: Vec<&'static str>,
    /// Size of that request (UDP payload bytes).
    pub request_bytes: usize,
    /// Sum of the UDP payload bytes of all valid datagrams received for it within the gather window.
    pub reply_bytes: usize,
    pub datagrams: u32,
    /// `reply_bytes / request_bytes`.
    pub amplification: f64,
    /// Time from the request to its first valid reply.
    pub rtt: Duration,
    /// DNS only: whether the server recursed for us — an open resolver (RA=1, RCODE 0, ≥1 answer
    /// for a name outside its zones). `Some(false)` for a DNS server that answered otherwise (e.g.
    /// REFUSED); `None` for other protocols.
    pub recursion: Option<bool>,
}

/// File descriptors kept free for the rest of the agent.
const FD_RESERVE: u64 = 256;
/// Receive buffer per probe: a jumbo frame. A bigger (fragmented) datagram is counted as this size,
/// so the amplification is then a lower bound.
const RECV_BUF: usize = 9216;

struct Shared {
    addrs: Vec<IpAddr>,
    /// Indexes into `addrs` of the hosts that are probed.
    targets: Vec<usize>,
    ports: Vec<(u16, Protocol)>,
    params: Params,
    total: u64,
    next: AtomicU64,
    timing: Timing,
    origin: Instant,
    global_pacer: Option<Pacer>,
    /// Per address (empty without a per-host limit).
    host_pacers: Vec<Pacer>,
    retries: u32,
    gather: Duration,
    /// One slot per probe number.
    results: Vec<OnceLock<Status>>,
    progress: Arc<Progress>,
}

/// Why an address may not be sent to, if it may not.
pub fn refusal(ip: IpAddr) -> Option<Refused> {
    match ip {
        IpAddr::V4(a) if a.is_unspecified() => Some(Refused::Unspecified),
        IpAddr::V4(a) if a.is_broadcast() => Some(Refused::Broadcast),
        IpAddr::V4(a) if a.is_multicast() => Some(Refused::Multicast),
        IpAddr::V4(_) => None,
        IpAddr::V6(a) if a.is_unspecified() => Some(Refused::Unspecified),
        IpAddr::V6(a) if a.is_multicast() => Some(Refused::Multicast),
        IpAddr::V6(a) => a.to_ipv4_mapped().and_then(|v4| refusal(IpAddr::V4(v4))),
    }
}

/// Probe every address on every (port, protocol) of `settings`. `fd_limit` is the process'
/// open-file limit (see [`super::raise_nofile_limit`]). Unspecified, broadcast and multicast
/// addresses are refused (not probed; see [`HostResult::refused`]). Returns [`Error::Cancelled`]
/// if `cancel` fires first.
pub async fn scan(
    addresses: &[IpAddr],
    settings: &Settings,
    fd_limit: u64,
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<Output, Error> {
    let mut ports: Vec<(u16, Protocol)> = Vec::with_capacity(settings.ports.len());
    for &pair in &settings.ports {
        if !ports.contains(&pair) {
            ports.push(pair);
        }
    }
    let mut targets = Vec::with_capacity(addresses.len());
    for (h, &ip) in addresses.iter().enumerate() {
        match refusal(ip) {
            Some(why) => {
                tracing::warn!(address = %ip, reason = %why, "not probing a non-unicast address over UDP")
            }
            None => targets.push(h),
        }
    }
    let total = targets.len() as u64 * ports.len() as u64;
    progress.total.fetch_add(total, Ordering::Relaxed);
    let n = addresses.len();
    let shared = Arc::new(Shared {
        addrs: addresses.to_vec(),
        targets,
        ports,
        params: Params {
            dns_name: settings.dns_query_name.clone(),
            snmp_community: settings.snmp_community.clone(),
        },
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
        host_pacers: (0..n)
            .filter_map(|_| Pacer::new(settings.max_host_rate))
            .collect(),
        retries: settings.retries,
        gather: settings.gather,
        results: (0..total).map(|_| OnceLock::new()).collect(),
        progress,
    });

    let fd_budget = fd_limit.saturating_sub(FD_RESERVE).max(1);
    let workers = (settings.concurrency.max(1) as u64)
        .min(total)
        .min(fd_budget) as usize;
    if (settings.concurrency as u64) > fd_budget && total > fd_budget {
        tracing::warn!(
            concurrency = settings.concurrency,
            fd_limit,
            using = workers,
            "open-file limit caps UDP scan concurrency; raise the hard limit (LimitNOFILE) for faster scans"
        );
    }
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
        biased;
        _ = cancel.cancelled() => return Err(Error::Cancelled),
        r = finished => r?,
    }
    if cancel.is_cancelled() {
        return Err(Error::Cancelled);
    }
    Ok(collect(&shared))
}

fn collect(s: &Shared) -> Output {
    let mut counts = Counts::default();
    let mut hosts: Vec<HostResult> = s
        .addrs
        .iter()
        .map(|&address| HostResult {
            address,
            refused: refusal(address),
            ports: Vec::new(),
        })
        .collect();
    counts.refused_hosts = hosts.iter().filter(|h| h.refused.is_some()).count() as u64;
    let nt = s.targets.len();
    for (p, &(port, protocol)) in s.ports.iter().enumerate() {
        for (t, &h) in s.targets.iter().enumerate() {
            let status = s.results[p * nt + t]
                .get()
                .cloned()
                .unwrap_or_else(|| Status::Error("probe did not run".to_string()));
            match &status {
                Status::Open(_) => counts.open += 1,
                Status::Closed => counts.closed += 1,
                Status::Unknown => counts.unknown += 1,
                Status::Error(_) => counts.error += 1,
            }
            hosts[h].ports.push(PortResult {
                port,
                protocol,
                status,
            });
        }
    }
    let srtt = (0..s.addrs.len()).map(|h| s.timing.srtt(h)).collect();
    Output {
        hosts,
        counts,
        srtt,
    }
}

async fn worker(s: Arc<Shared>) {
    let nt = s.targets.len() as u64;
    let mut buf = vec![0u8; RECV_BUF];
    loop {
        let i = s.next.fetch_add(1, Ordering::Relaxed);
        if i >= s.total {
            return;
        }
        // Port-major: consecutive probes go to different hosts.
        let h = s.targets[(i % nt) as usize];
        let (port, protocol) = s.ports[(i / nt) as usize];
        let status = probe::probe(&s, h, port, protocol, &mut buf).await;
        s.record(i as usize, status);
    }
}

impl Shared {
    fn record(&self, i: usize, status: Status) {
        let p = &self.progress;
        let counter = match status {
            Status::Open(_) => &p.open,
            Status::Closed => &p.closed,
            Status::Unknown => &p.filtered,
            Status::Error(_) => &p.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = self.results.get(i) {
            let _ = slot.set(status);
        }
        p.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Wait for a send slot under both rate limits.
    async fn pace(&self, h: usize) {
        if let Some(at) = self
            .global_pacer
            .as_ref()
            .and_then(|p| p.reserve(self.origin))
        {
            tokio::time::sleep_until(at).await;
        }
        if let Some(at) = self.host_pacers.get(h).and_then(|p| p.reserve(self.origin)) {
            tokio::time::sleep_until(at).await;
        }
    }
}
