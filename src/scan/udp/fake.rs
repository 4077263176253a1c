//! Test-only: positive replies to our own requests, built from the request bytes as a real server
//! would (ids echoed), for the validator tests and the scripted loopback responders. Also a fake
//! UDP server that answers with them, or echoes, or counts what it receives.

use super::{ber, dns, Protocol};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The datagrams a well-behaved `p` server sends in answer to `request` (empty: it stays silent).
pub(super) fn answer(p: Protocol, request: &[u8]) -> Vec<Vec<u8>> {
    match p {
        Protocol::Dns => vec![dns::build::dns_response(request, 0x0180, 1)],
        Protocol::Ntp => match request.first() {
            // mode 6 READVAR: R=1, op 2, our sequence, the count, then text.
            Some(0x16) => {
                let text = b"version=\"ntpd 4.2.8p15\", system=\"Linux/6.1\", leap=0, stratum=2";
                let mut out = vec![0x16, 0x82];
                out.extend_from_slice(&request[2..4]);
                out.extend_from_slice(&[0x06, 0x15, 0, 0, 0, 0]);
                out.extend_from_slice(&(text.len() as u16).to_be_bytes());
                out.extend_from_slice(text);
                vec![out]
            }
            // mode 7 MON_GETLIST_1: 3 datagrams of 6 × 72-byte items, "more" on all but the last.
            Some(0x17) => (0..3u8)
                .map(|i| {
                    let more = if i < 2 { 0x40 } else { 0 };
                    let mut out = vec![0x97 | more, i, 0x03, 0x2a, 0x00, 0x06, 0x00, 0x48];
                    out.extend_from_slice(&[0x11; 6 * 72]);
                    out
                })
                .collect(),
            _ => Vec::new(),
        },
        Protocol::Snmp => vec![ber::build::snmp_response(request, 0)],
        Protocol::Memcached => {
            let body = b"STAT pid 1\r\nSTAT uptime 5\r\nSTAT version 1.6.18\r\n";
            (0..2u8)
                .map(|i| {
                    let mut out = request[..2].to_vec();
                    out.extend_from_slice(&[0, i, 0, 2, 0, 0]);
                    out.extend_from_slice(if i == 0 {
                        &body[..]
                    } else {
                        b"STAT threads 4\r\nEND\r\n"
                    });
                    out
                })
                .collect()
        }
        Protocol::Ssdp => ["upnp:rootdevice", "urn:schemas-upnp-org:device:Basic:1"]
            .iter()
            .map(|st| {
                format!(
                    "HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: {st}\r\n\
                     USN: uuid:1234::{st}\r\nLOCATION: http://127.0.0.1:8080/desc.xml\r\n\r\n"
                )
                .into_bytes()
            })
            .collect(),
        Protocol::Cldap => vec![ber::build::cldap_response(request)],
        Protocol::Chargen => vec![
            b" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefgh\r\n"
                .to_vec(),
        ],
        Protocol::WsDiscovery => vec![b"<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope \
xmlns:soap=\"http://www.w3.org/2003/05/soap-envelope\"><soap:Body><soap:Fault><soap:Code>\
<soap:Value>soap:Sender</soap:Value></soap:Code></soap:Fault></soap:Body></soap:Envelope>"
            .to_vec()],
        Protocol::Portmap => {
            // XID, REPLY, MSG_ACCEPTED, verifier AUTH_NULL, SUCCESS, one mapping, end of list.
            let mut out = request[..4].to_vec();
            for w in [1u32, 0, 0, 0, 0, 1, 100_000, 2, 17, 111, 0] {
                out.extend_from_slice(&w.to_be_bytes());
            }
            vec![out]
        }
        Protocol::NetbiosNs => vec![dns::build::nbstat_response(request)],
        Protocol::Mdns => vec![dns::build::dns_response(request, 0x0400, 1)],
    }
}

/// How a [`FakeServer`] behaves.
#[derive(Clone, Copy, Debug)]
pub(super) enum Behaviour {
    /// Answer as `answer(p, request)` says.
    Answer(Protocol),
    /// Answer only requests starting with this byte (NTP: 0x16 = mode 6 only, as ntpsec).
    OnlyFirstByte(Protocol, u8),
    /// Send every datagram straight back (a reflector).
    Echo,
    /// Say nothing; record arrival times.
    Count,
}

/// A scripted UDP server on loopback, stopped on drop.
pub(super) struct FakeServer {
    pub(super) addr: SocketAddr,
    /// Arrival time of each datagram received.
    pub(super) arrivals: Arc<Mutex<Vec<Instant>>>,
    stop: CancellationToken,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl FakeServer {
    pub(super) async fn start(addr: SocketAddr, behaviour: Behaviour) -> FakeServer {
        let sock = UdpSocket::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        let addr = sock.local_addr().unwrap();
        let stop = CancellationToken::new();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let (stopped, seen) = (stop.clone(), arrivals.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            // Bounded: a test never needs more, and the task ends with the test anyway.
            for _ in 0..100_000 {
                let (n, from) = tokio::select! {
                    _ = stopped.cancelled() => return,
                    r = sock.recv_from(&mut buf) => match r { Ok(x) => x, Err(_) => continue },
                };
                seen.lock().unwrap().push(Instant::now());
                let replies = match behaviour {
                    Behaviour::Answer(p) => answer(p, &buf[..n]),
                    Behaviour::OnlyFirstByte(p, b) if buf.first() == Some(&b) => {
                        answer(p, &buf[..n])
                    }
                    Behaviour::OnlyFirstByte(..) => Vec::new(),
                    Behaviour::Echo => vec![buf[..n].to_vec()],
                    Behaviour::Count => Vec::new(),
                };
                for r in replies {
                    let _ = sock.send_to(&r, from).await;
                }
            }
        });
        FakeServer {
            addr,
            arrivals,
            stop,
        }
    }

    /// Datagrams received so far.
    pub(super) fn received(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }
}

/// Wait (bounded) until `f` holds.
pub(super) async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
