//! The UDP payload table: for each protocol, its service name, default port and the requests
//! ("variants") a probe sends, each a request builder plus a reply validator. Adding a protocol is
//! one entry in the `protocols!` list below. Also owns the simple text and fixed-header protocols
//! (NTP, memcached, SSDP, chargen, WS-Discovery, portmapper); DNS-format ones live in `dns.rs`,
//! BER ones in `ber.rs`. Validators never accept a reflected copy of our own request.

use super::ber;
use super::dns::{self, QueryName};
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// Per-scan inputs to the request builders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Params {
    pub dns_name: QueryName,
    pub snmp_community: String,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            dns_name: QueryName::default(),
            snmp_community: "public".to_string(),
        }
    }
}

/// What a validated reply says beyond "this protocol answered".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reply {
    /// DNS only: whether the server recursed for us (see [`dns::dns_reply`]).
    pub recursion: Option<bool>,
}

impl Reply {
    pub const PLAIN: Reply = Reply { recursion: None };
}

/// One request a probe sends, and how to recognise a positive reply to it.
pub(crate) struct Variant {
    /// Stable label (`mode6-readvar`, `v2c-getbulk`, …), reported with the finding.
    pub name: &'static str,
    /// The request for this scan's parameters with a fresh transaction id (protocols without an
    /// id field ignore it).
    pub build: fn(&Params, u32) -> Vec<u8>,
    /// `Some` when `reply` is a positive answer to exactly `request`.
    pub validate: fn(&[u8], &[u8]) -> Option<Reply>,
}

/// A protocol's entry in the table.
pub(crate) struct Spec {
    pub service: &'static str,
    pub port: u16,
    pub variants: &'static [Variant],
}

/// Defines [`Protocol`], its table and `ALL` from one list, so each protocol is one entry.
macro_rules! protocols {
    ($( $(#[$doc:meta])* $name:ident => $service:literal, $port:literal,
        [ $( $variant:literal: $build:path, $validate:path );+ $(;)? ] ),+ $(,)?) => {
        /// A UDP protocol the scanner can probe (see the payload table in `payloads.rs`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Protocol {
            $( $(#[$doc])* $name, )+
        }

        impl Protocol {
            /// Every protocol, in table order.
            pub const ALL: &'static [Protocol] = &[ $( Protocol::$name, )+ ];

            pub(crate) fn spec(self) -> &'static Spec {
                match self {
                    $( Protocol::$name => {
                        const SPEC: Spec = Spec {
                            service: $service,
                            port: $port,
                            variants: &[ $( Variant {
                                name: $variant,
                                build: $build,
                                validate: $validate,
                            }, )+ ],
                        };
                        &SPEC
                    } )+
                }
            }
        }
    };
}

protocols! {
    /// DNS: recursive A query for a name outside the target's zones.
    Dns => "dns", 53, ["a-query": dns::dns_query, dns::dns_reply],
    /// NTP: mode 6 READVAR and mode 7 MON_GETLIST (both are sent; the bigger answer is reported).
    Ntp => "ntp", 123, [
        "mode6-readvar": ntp_readvar, ntp_readvar_reply;
        "mode7-monlist": ntp_monlist, ntp_monlist_reply;
    ],
    /// SNMP: v2c GetBulk (the amplifying request) and v1 Get sysDescr.0, with the community set.
    Snmp => "snmp", 161, [
        "v2c-getbulk": ber::snmp_v2c_getbulk, ber::snmp_reply;
        "v1-get": ber::snmp_v1_get, ber::snmp_reply;
    ],
    /// memcached: `stats` in a UDP frame.
    Memcached => "memcached", 11211, ["stats": memcached_stats, memcached_reply],
    /// SSDP: unicast `M-SEARCH` for `ssdp:all`.
    Ssdp => "ssdp", 1900, ["m-search": ssdp_search, ssdp_reply],
    /// CLDAP: rootDSE search.
    Cldap => "cldap", 389, ["rootdse": ber::cldap_rootdse, ber::cldap_reply],
    /// chargen: one byte; any printable answer that is not our byte.
    Chargen => "chargen", 19, ["datagram": chargen_byte, chargen_reply],
    /// WS-Discovery: the 5-byte malformed probe that makes responders answer with a SOAP fault.
    WsDiscovery => "ws-discovery", 3702, ["malformed": wsd_probe, wsd_reply],
    /// ONC RPC portmapper: v2 DUMP.
    Portmap => "portmap", 111, ["dump": portmap_dump, portmap_reply],
    /// NetBIOS name service: node status for `*`.
    NetbiosNs => "netbios-ns", 137, ["nbstat": dns::nbstat_query, dns::nbstat_reply],
    /// mDNS: DNS-SD service enumeration.
    Mdns => "mdns", 5353, ["dns-sd-ptr": dns::mdns_query, dns::mdns_reply],
}

impl Protocol {
    /// Service name, used in results and metrics (`dns`, `ntp`, `snmp`, `memcached`, …).
    pub fn name(self) -> &'static str {
        self.spec().service
    }

    /// The protocol's well-known port.
    pub fn default_port(self) -> u16 {
        self.spec().port
    }

    /// The protocol whose well-known port is `port`, if any.
    pub fn for_port(port: u16) -> Option<Protocol> {
        Protocol::ALL
            .iter()
            .copied()
            .find(|p| p.default_port() == port)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown protocol name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown UDP protocol {given:?}; known: {known}")]
pub struct UnknownProtocol {
    pub given: String,
    pub known: String,
}

impl FromStr for Protocol {
    type Err = UnknownProtocol;

    /// Parse a service name as [`Protocol::name`] prints it (case-insensitive).
    fn from_str(s: &str) -> Result<Self, UnknownProtocol> {
        Protocol::ALL
            .iter()
            .copied()
            .find(|p| p.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownProtocol {
                given: s.to_string(),
                known: Protocol::ALL
                    .iter()
                    .map(|p| p.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// A fresh transaction id: SipHash of a counter under a per-process random key, so ids are not
/// guessable from one another (no RNG crate needed).
pub(crate) fn fresh_id() -> u32 {
    static KEY: OnceLock<RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    KEY.get_or_init(RandomState::new).hash_one(n) as u32
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

// === NTP ===

/// Mode 6 (control) READVAR: `16 02 <sequence> 00 × 8`, 12 bytes; the sequence is our id.
fn ntp_readvar(_: &Params, id: u32) -> Vec<u8> {
    let mut out = vec![0x16, 0x02];
    out.extend_from_slice(&(id as u16).to_be_bytes());
    out.extend_from_slice(&[0; 8]);
    out
}

/// A mode 6 response (R=1, E=0) to READVAR with our sequence and a count that fits the datagram.
fn ntp_readvar_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    let (b0, b1) = (*reply.first()?, *reply.get(1)?);
    let count = u16_at(reply, 10)? as usize;
    (b0 & 0x07 == 6
        && b1 & 0x80 != 0
        && b1 & 0x40 == 0
        && b1 & 0x1f == 2
        && u16_at(reply, 2)? == u16_at(request, 2)?
        && count <= reply.len() - 12)
        .then_some(Reply::PLAIN)
}

/// Mode 7 (private) REQ_MON_GETLIST_1 for implementation XNTPD: `17 00 03 2a`, zero-padded to 48
/// bytes as nmap's ntp-monlist does. Mode 7 has no id field.
fn ntp_monlist(_: &Params, _: u32) -> Vec<u8> {
    let mut out = vec![0x17, 0x00, 0x03, 0x2a];
    out.resize(48, 0);
    out
}

/// A mode 7 response (R=1) for the same implementation and request code, error nibble 0.
fn ntp_monlist_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    (reply.len() >= 8
        && reply[0] & 0x80 != 0
        && reply[0] & 0x07 == 7
        && reply[2] == *request.get(2)?
        && reply[3] == *request.get(3)?
        && reply[4] >> 4 == 0)
        .then_some(Reply::PLAIN)
}

// === memcached ===

/// `stats\r\n` behind the 8-byte UDP frame header (request id, sequence 0, 1 datagram, 0): 15 bytes.
fn memcached_stats(_: &Params, id: u32) -> Vec<u8> {
    let mut out = (id as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&[0, 0, 0, 1, 0, 0]);
    out.extend_from_slice(b"stats\r\n");
    out
}

/// A frame with our request id and a sane sequence/total; the first datagram must start with a
/// `STAT ` line (a reflected `stats` request does not: case matters), later ones continue it.
fn memcached_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    let seq = u16_at(reply, 2)?;
    let total = u16_at(reply, 4)?;
    let head_ok = u16_at(reply, 0)? == u16_at(request, 0)? && total >= 1 && seq < total;
    let body = reply.get(8..)?;
    (head_ok && (seq > 0 || body.starts_with(b"STAT "))).then_some(Reply::PLAIN)
}

// === SSDP ===

const M_SEARCH: &[u8] = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\
MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n";

/// `M-SEARCH` for `ssdp:all`, sent unicast to the target (the HOST header is the standard one).
fn ssdp_search(_: &Params, _: u32) -> Vec<u8> {
    M_SEARCH.to_vec()
}

/// An HTTP `200` status line (one datagram per advertised service).
fn ssdp_reply(_: &[u8], reply: &[u8]) -> Option<Reply> {
    let line = reply.get(..12)?;
    (line[..7].eq_ignore_ascii_case(b"HTTP/1.") && &line[8..12] == b" 200").then_some(Reply::PLAIN)
}

// === chargen ===

fn chargen_byte(_: &Params, _: u32) -> Vec<u8> {
    vec![0x01]
}

/// Printable ASCII lines (RFC 864), which our single 0x01 byte is not: an echo never validates.
fn chargen_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    (!reply.is_empty()
        && reply != request
        && reply
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) || b == b'\r' || b == b'\n'))
    .then_some(Reply::PLAIN)
}

// === WS-Discovery ===

fn wsd_probe(_: &Params, _: u32) -> Vec<u8> {
    b"<:/>\n".to_vec()
}

/// A SOAP document (a fault or ProbeMatches): starts with `<` and names an `Envelope` early on.
fn wsd_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    let text = reply.trim_ascii_start();
    let head = &text[..text.len().min(4096)];
    let envelope = head.windows(8).any(|w| w.eq_ignore_ascii_case(b"envelope"));
    (reply != request && text.starts_with(b"<") && envelope).then_some(Reply::PLAIN)
}

// === portmapper ===

/// RPC CALL: our XID, rpcvers 2, program 100000 (portmapper) version 2, procedure 4 (DUMP),
/// AUTH_NULL credentials and verifier: 40 bytes.
fn portmap_dump(_: &Params, id: u32) -> Vec<u8> {
    [id, 0, 2, 100_000, 2, 4, 0, 0, 0, 0]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect()
}

/// REPLY with our XID, MSG_ACCEPTED, and (after the verifier) accept_stat SUCCESS.
fn portmap_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    let verf_len = u32_at(reply, 16)? as usize;
    if verf_len > 400 {
        return None;
    }
    let accept_at = 20 + verf_len.div_ceil(4) * 4;
    (u32_at(reply, 0)? == u32_at(request, 0)?
        && u32_at(reply, 4)? == 1
        && u32_at(reply, 8)? == 0
        && u32_at(reply, accept_at)? == 0)
        .then_some(Reply::PLAIN)
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
