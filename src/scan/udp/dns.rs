//! UDP probes in the DNS message format: DNS (an A query with RD=1, for open resolvers), mDNS (the
//! DNS-SD service enumeration PTR query) and NetBIOS-NS (an NBSTAT query for `*`). Owns
//! [`QueryName`], the validated name that DNS probes ask for. Validators match the transaction ID
//! and require the response bit, so a reflected query never validates.

use super::payloads::{Params, Reply};
use std::fmt;
use std::str::FromStr;

/// The name a DNS probe asks for: it must be outside every zone a scanned VM could serve, so that
/// an answer means the server recursed (or forwarded) for us. The default is `example.com`
/// (IANA-reserved, always resolvable); operators may prefer a name in a zone they watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryName {
    text: String,
    wire: Vec<u8>,
}

/// Why a DNS probe name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the DNS probe name is empty; give a name outside your zones, e.g. example.com")]
    Empty,
    #[error("DNS probe name {0:?} is longer than 253 characters")]
    TooLong(String),
    #[error(
        "DNS probe name {name:?} has a label of {len} characters (1 to 63 are allowed; no empty labels)"
    )]
    Label { name: String, len: usize },
    #[error("DNS probe name {0:?} may hold only letters, digits, '-' and '_' between dots")]
    Character(String),
}

impl FromStr for QueryName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, NameError> {
        let text = s.strip_suffix('.').unwrap_or(s);
        if text.is_empty() {
            return Err(NameError::Empty);
        }
        if text.len() > 253 {
            return Err(NameError::TooLong(s.to_string()));
        }
        let mut wire = Vec::with_capacity(text.len() + 2);
        for label in text.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(NameError::Label {
                    name: s.to_string(),
                    len: label.len(),
                });
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(NameError::Character(s.to_string()));
            }
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
        wire.push(0);
        Ok(QueryName {
            text: text.to_string(),
            wire,
        })
    }
}

impl Default for QueryName {
    fn default() -> Self {
        QueryName {
            text: "example.com".to_string(),
            wire: b"\x07example\x03com\x00".to_vec(),
        }
    }
}

impl QueryName {
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for QueryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

const HEADER: usize = 12;
const QR: u16 = 0x8000;
const RD: u16 = 0x0100;
const RA: u16 = 0x0080;
const TYPE_A: u16 = 1;
const TYPE_PTR: u16 = 12;
const TYPE_NBSTAT: u16 = 0x21;
const CLASS_IN: u16 = 1;

/// A header with one question and the given flags, then the question.
fn query(id: u32, flags: u16, qname: &[u8], qtype: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + qname.len() + 4);
    out.extend_from_slice(&(id as u16).to_be_bytes());
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(qname);
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    out
}

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*buf.get(at)?, *buf.get(at + 1)?]))
}

/// The fields of a DNS-format reply header that validators look at.
struct Header {
    flags: u16,
    qdcount: u16,
    ancount: u16,
}

/// The header of a DNS-format reply to `request`; `None` unless it is a response (QR=1, opcode 0)
/// carrying the request's transaction ID (or 0, when `allow_zero_id`).
fn response_header(request: &[u8], reply: &[u8], allow_zero_id: bool) -> Option<Header> {
    let id = u16_at(request, 0)?;
    let r_id = u16_at(reply, 0)?;
    let flags = u16_at(reply, 2)?;
    let ok_id = r_id == id || (allow_zero_id && r_id == 0);
    let opcode = (flags >> 11) & 0xf;
    (reply.len() >= HEADER && ok_id && flags & QR != 0 && opcode == 0).then(|| Header {
        flags,
        qdcount: u16_at(reply, 4).unwrap_or(0),
        ancount: u16_at(reply, 6).unwrap_or(0),
    })
}

/// Offset just past the (possibly compressed) name at `at`; `None` if it runs off the end.
fn skip_name(buf: &[u8], mut at: usize) -> Option<usize> {
    // A name has at most 127 labels; the bound also stops malformed input.
    for _ in 0..128 {
        let len = *buf.get(at)?;
        match len {
            0 => return Some(at + 1),
            l if l & 0xc0 == 0xc0 => return (at + 2 <= buf.len()).then_some(at + 2),
            l if l & 0xc0 == 0 => at += 1 + l as usize,
            _ => return None,
        }
    }
    None
}

/// DNS: an A query with RD=1 for the configured name outside the target's zones.
pub(super) fn dns_query(p: &Params, id: u32) -> Vec<u8> {
    query(id, RD, &p.dns_name.wire, TYPE_A)
}

/// Any DNS response to our query (same ID, QR=1, opcode 0, our question echoed when present) shows
/// a DNS server that answers anyone. It recurses for anyone (an open resolver) only with RA=1,
/// RCODE 0 (NOERROR) and at least one answer: a server without upstream answers REFUSED with RA=1,
/// so RA alone is not enough.
pub(super) fn dns_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    let h = response_header(request, reply, false)?;
    let question = request.get(HEADER..)?;
    if h.qdcount > 0 {
        let echoed = reply.get(HEADER..HEADER + question.len())?;
        if !echoed.eq_ignore_ascii_case(question) {
            return None;
        }
    }
    let rcode = h.flags & 0xf;
    let recursion = h.qdcount > 0 && h.flags & RA != 0 && rcode == 0 && h.ancount >= 1;
    Some(Reply {
        recursion: Some(recursion),
    })
}

/// mDNS: the DNS-SD service enumeration query (`_services._dns-sd._udp.local` PTR), 46 bytes. Sent
/// from an ephemeral port, it asks for a legacy unicast reply, which repeats our ID (RFC 6762 6.7).
pub(super) fn mdns_query(_: &Params, id: u32) -> Vec<u8> {
    query(
        id,
        0,
        b"\x09_services\x07_dns-sd\x04_udp\x05local\x00",
        TYPE_PTR,
    )
}

/// A response (our ID, or 0 as multicast-style responders send) with RCODE 0 and an answer.
pub(super) fn mdns_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    let h = response_header(request, reply, true)?;
    (h.flags & 0xf == 0 && h.ancount >= 1).then_some(Reply::PLAIN)
}

/// The NetBIOS encoding of `*` padded with 15 NULs (`CK` + 30 × `A`), as a length-prefixed label.
const NB_WILDCARD: &[u8; 34] = b"\x20CKAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\x00";

/// NetBIOS-NS: node status (NBSTAT) for `*`, 50 bytes.
pub(super) fn nbstat_query(_: &Params, id: u32) -> Vec<u8> {
    query(id, 0, NB_WILDCARD, TYPE_NBSTAT)
}

/// A response with our ID, RCODE 0, and a first answer of type NBSTAT (the name table).
pub(super) fn nbstat_reply(request: &[u8], reply: &[u8]) -> Option<Reply> {
    let h = response_header(request, reply, false)?;
    if h.flags & 0xf != 0 || h.ancount == 0 {
        return None;
    }
    let mut at = HEADER;
    for _ in 0..h.qdcount.min(4) {
        at = skip_name(reply, at)? + 4;
    }
    let at = skip_name(reply, at)?;
    (u16_at(reply, at)? == TYPE_NBSTAT).then_some(Reply::PLAIN)
}

#[cfg(test)]
pub(super) mod build {
    //! Reply builders for the validator tests and the scripted responders.
    use super::*;

    /// A reply to `request` with the given flags and answer count, echoing its question, then one
    /// A record per answer (a pointer to the question name).
    pub(in crate::scan::udp) fn dns_response(request: &[u8], flags: u16, answers: u16) -> Vec<u8> {
        let mut out = request[..2].to_vec();
        out.extend_from_slice(&(flags | QR).to_be_bytes());
        out.extend_from_slice(&[0, 1]);
        out.extend_from_slice(&answers.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&request[HEADER..]);
        for _ in 0..answers {
            out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 99]);
        }
        out
    }

    /// An NBSTAT response: no question, one answer with a one-name table and a MAC address.
    pub(in crate::scan::udp) fn nbstat_response(request: &[u8]) -> Vec<u8> {
        let mut out = request[..2].to_vec();
        out.extend_from_slice(&[0x84, 0x00, 0, 0, 0, 1, 0, 0, 0, 0]);
        out.extend_from_slice(NB_WILDCARD);
        out.extend_from_slice(&[0, 0x21, 0, 1, 0, 0, 0, 0]);
        let mut table = vec![1u8];
        table.extend_from_slice(b"TESTHOST       \x00\x04\x00");
        table.extend_from_slice(&[0x02, 0x00, 0x00, 0x11, 0x22, 0x33]);
        out.extend_from_slice(&(table.len() as u16).to_be_bytes());
        out.extend_from_slice(&table);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        let n: QueryName = "Probe.example.test.".parse().unwrap();
        assert_eq!(n.as_str(), "Probe.example.test");
        assert_eq!(n.wire, b"\x05Probe\x07example\x04test\x00");
        assert_eq!(QueryName::default(), "example.com".parse().unwrap());
        assert_eq!("".parse::<QueryName>(), Err(NameError::Empty));
        assert!(matches!(
            "a..b".parse::<QueryName>(),
            Err(NameError::Label { len: 0, .. })
        ));
        assert!(matches!(
            format!("{}.com", "x".repeat(64)).parse::<QueryName>(),
            Err(NameError::Label { len: 64, .. })
        ));
        assert!(matches!(
            "a b.com".parse::<QueryName>(),
            Err(NameError::Character(_))
        ));
        let long = vec!["abcdefghi"; 26].join(".");
        assert!(matches!(
            long.parse::<QueryName>(),
            Err(NameError::TooLong(_))
        ));
    }

    #[test]
    fn request_sizes_match_the_references() {
        let p = Params::default();
        // 29 bytes for example.com (ZMap's 32 B is for www.google.com).
        assert_eq!(dns_query(&p, 7).len(), 12 + 13 + 4);
        assert_eq!(mdns_query(&p, 7).len(), 46);
        assert_eq!(nbstat_query(&p, 7).len(), 50);
        assert_eq!(&dns_query(&p, 0xabcd)[..4], &[0xab, 0xcd, 0x01, 0x00]);
    }

    #[test]
    fn skip_name_handles_pointers_and_garbage() {
        assert_eq!(skip_name(b"\x01a\x00", 0), Some(3));
        assert_eq!(skip_name(b"\x01a\xc0\x0c", 0), Some(4));
        assert_eq!(skip_name(b"\x05ab", 0), None);
        assert_eq!(skip_name(b"\x80", 0), None);
        assert_eq!(skip_name(&[1u8; 300], 0), None);
    }
}
