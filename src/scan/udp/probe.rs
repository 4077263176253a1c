//! One UDP probe: a connected socket to (address, port), each of the protocol's requests sent under
//! the rate limits with RTT-derived timeouts and retries, replies validated against every request
//! sent for it, and the rest of a multi-datagram answer gathered. Owns the Open / Closed / Unknown
//! decision for a port.

use super::payloads::{self, fresh_id, Variant};
use super::{Exposure, Protocol, Shared, Status};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Most datagrams counted for one request (an NTP monlist is at most 100; chargen floods).
const MAX_DATAGRAMS: u32 = 1024;
/// How long a probe waits for a descriptor when the process is out of them, in 10 ms steps.
const RESOURCE_WAITS: u32 = 500;

/// Errors that mean "this machine is out of something right now", not "the target said no".
fn is_resource_error(e: &io::Error) -> bool {
    // Linux errno values: ENOMEM 12, ENFILE 23, EMFILE 24, ENOBUFS 105.
    matches!(e.raw_os_error(), Some(12 | 23 | 24 | 105))
        || e.kind() == io::ErrorKind::AddrNotAvailable
}

/// A UDP socket on an ephemeral port, connected to `addr`.
fn connect(addr: SocketAddr) -> io::Result<UdpSocket> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let sock = std::net::UdpSocket::bind(local)?;
    sock.connect(addr)?;
    sock.set_nonblocking(true)?;
    UdpSocket::from_std(sock)
}

/// How one request (with its retries) ended.
enum Outcome {
    Answered(Exposure),
    /// ICMP port unreachable.
    Refused,
    /// Nothing valid (or an ICMP host/network unreachable).
    Silent,
    Failed(String),
}

fn describe(e: &io::Error, addr: SocketAddr) -> String {
    if e.kind() == io::ErrorKind::PermissionDenied {
        format!("sending to {addr} was refused locally ({e}): a broadcast address or a local firewall rule")
    } else {
        format!("UDP probe to {addr}: {e}")
    }
}

pub(super) async fn probe(
    s: &Shared,
    h: usize,
    port: u16,
    protocol: Protocol,
    buf: &mut [u8],
) -> Status {
    let addr = SocketAddr::new(s.addrs[h], port);
    let mut waits = 0;
    let sock = loop {
        match connect(addr) {
            Ok(sock) => break sock,
            Err(e) if is_resource_error(&e) && waits < RESOURCE_WAITS => {
                waits += 1;
                s.progress.resource_waits.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => return Status::Error(describe(&e, addr)),
        }
    };
    let spec = protocol.spec();
    let mut best: Option<Exposure> = None;
    let mut answered = Vec::new();
    let mut closed = false;
    for variant in spec.variants {
        match request(s, h, &sock, variant, buf).await {
            Outcome::Answered(found) => {
                answered.push(variant.name);
                if best
                    .as_ref()
                    .is_none_or(|b| found.amplification > b.amplification)
                {
                    best = Some(found);
                }
            }
            Outcome::Silent => {}
            // A closed port stays closed for the other requests: spare them.
            Outcome::Refused => {
                closed = true;
                break;
            }
            Outcome::Failed(why) if best.is_none() => return Status::Error(why),
            Outcome::Failed(_) => break,
        }
    }
    match best {
        Some(mut found) => {
            found.service = spec.service;
            found.answered = answered;
            Status::Open(found)
        }
        None if closed => Status::Closed,
        None => Status::Unknown,
    }
}

/// The index of the sent request that `reply` validates against, and what it said.
fn matching(
    variant: &Variant,
    sent: &[(Vec<u8>, Instant)],
    reply: &[u8],
) -> Option<(usize, payloads::Reply)> {
    sent.iter()
        .enumerate()
        .rev()
        .find_map(|(i, (req, _))| (variant.validate)(req, reply).map(|r| (i, r)))
}

/// Send one variant's request (retrying with fresh ids while unanswered) and wait for a valid reply;
/// then gather the rest of the answer.
async fn request(
    s: &Shared,
    h: usize,
    sock: &UdpSocket,
    variant: &Variant,
    buf: &mut [u8],
) -> Outcome {
    let peer = sock.peer_addr().ok();
    let failed = |e: io::Error| match peer {
        Some(addr) => Outcome::Failed(describe(&e, addr)),
        None => Outcome::Failed(format!("UDP probe: {e}")),
    };
    let mut sent: Vec<(Vec<u8>, Instant)> = Vec::with_capacity(s.retries as usize + 1);
    for _ in 0..=s.retries {
        s.pace(h).await;
        let req = (variant.build)(&s.params, fresh_id());
        let at = Instant::now();
        match sock.send(&req).await {
            Ok(_) => {}
            // The ICMP for an earlier datagram is reported on this send.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => return Outcome::Refused,
            Err(e) => return failed(e),
        }
        sent.push((req, at));
        let (timeout, mut measured) = s.timing.timeout(h);
        let mut deadline = at + timeout;
        loop {
            let notified = s.timing.first_sample(h).notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if !measured {
                let (t, m) = s.timing.timeout(h);
                (deadline, measured) = (at + t, m);
            }
            let got = tokio::select! {
                r = sock.recv(buf) => r,
                _ = tokio::time::sleep_until(deadline) => break,
                _ = &mut notified, if !measured => continue,
            };
            match got {
                Ok(n) => {
                    let reply = &buf[..n];
                    if let Some((i, first)) = matching(variant, &sent, reply) {
                        let rtt = sent[i].1.elapsed();
                        // Karn: only a reply to the latest request times the path unambiguously.
                        if i + 1 == sent.len() {
                            s.timing.observe(h, rtt);
                        }
                        return gather(s, sock, variant, &sent, i, n, first, rtt, buf).await;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    s.timing.observe(h, at.elapsed());
                    return Outcome::Refused;
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable
                    ) =>
                {
                    return Outcome::Silent
                }
                Err(e) => return failed(e),
            }
        }
    }
    Outcome::Silent
}

/// Count the further valid datagrams of an answer for [`Settings::gather`], and build the finding.
#[allow(clippy::too_many_arguments)]
async fn gather(
    s: &Shared,
    sock: &UdpSocket,
    variant: &Variant,
    sent: &[(Vec<u8>, Instant)],
    matched: usize,
    first_len: usize,
    first: payloads::Reply,
    rtt: Duration,
    buf: &mut [u8],
) -> Outcome {
    let end = Instant::now() + s.gather;
    let (mut bytes, mut datagrams, mut recursion) = (first_len, 1u32, first.recursion);
    while datagrams < MAX_DATAGRAMS {
        let Ok(Ok(n)) = tokio::time::timeout_at(end, sock.recv(buf)).await else {
            break;
        };
        if let Some((_, r)) = matching(variant, sent, &buf[..n]) {
            bytes += n;
            datagrams += 1;
            recursion = match (recursion, r.recursion) {
                (Some(a), Some(b)) => Some(a || b),
                (a, b) => a.or(b),
            };
        }
    }
    let request_bytes = sent[matched].0.len().max(1);
    Outcome::Answered(Exposure {
        service: "",
        variant: variant.name,
        answered: Vec::new(),
        request_bytes,
        reply_bytes: bytes,
        datagrams,
        amplification: bytes as f64 / request_bytes as f64,
        rtt,
        recursion,
    })
}
