//! Port lists and port specs: parsing `top1000`, `1-1024,8080`, `53/udp`, and nmap's frequency
//! ranking of TCP ports (embedded from nmap-services), which the scanner uses to probe likely-open
//! ports first. Pure; shared by config, inventory, scan and judge.

use crate::model::Protocol;
use std::fmt;
use std::sync::OnceLock;

/// nmap's 1000 most frequent TCP ports, most frequent first (see the file's header).
const TOP1000_TCP: &str = include_str!("data/top1000-tcp.txt");

/// nmap's top-1000 TCP ports, most frequent first.
pub fn top1000() -> &'static [u16] {
    static LIST: OnceLock<Vec<u16>> = OnceLock::new();
    LIST.get_or_init(|| {
        TOP1000_TCP
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.parse().ok())
            .collect()
    })
}

/// Rank of a TCP port in nmap's frequency table (0 = most frequent); ports outside the top 1000 rank
/// after all of them, in numeric order.
pub fn rank(port: u16) -> u32 {
    static RANKS: OnceLock<Vec<u16>> = OnceLock::new();
    let ranks = RANKS.get_or_init(|| {
        let mut r = vec![u16::MAX; 65536];
        for (i, p) in top1000().iter().enumerate() {
            // i < 1000, so it always fits in a u16.
            r[*p as usize] = i as u16;
        }
        r
    });
    match ranks[port as usize] {
        u16::MAX => 1000 + port as u32,
        r => r as u32,
    }
}

/// A parse error in a port spec, naming the offending piece and the accepted form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid port spec {piece:?}: {reason} (accepted: `top1000`, a port `443`, a range `1-1024`, comma-separated; in policies optionally suffixed `/tcp` or `/udp`)")]
pub struct PortSpecError {
    pub piece: String,
    pub reason: String,
}

fn err(piece: &str, reason: impl Into<String>) -> PortSpecError {
    PortSpecError {
        piece: piece.to_string(),
        reason: reason.into(),
    }
}

fn parse_port(piece: &str, s: &str) -> Result<u16, PortSpecError> {
    let n: u32 = s
        .trim()
        .parse()
        .map_err(|_| err(piece, format!("{s:?} is not a number")))?;
    if n == 0 || n > 65535 {
        return Err(err(piece, format!("{n} is outside 1-65535")));
    }
    Ok(n as u16)
}

fn parse_range(piece: &str, s: &str) -> Result<(u16, u16), PortSpecError> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse_port(piece, a)?, parse_port(piece, b)?);
            if a > b {
                return Err(err(piece, format!("range start {a} is above its end {b}")));
            }
            Ok((a, b))
        }
        None => {
            let p = parse_port(piece, s)?;
            Ok((p, p))
        }
    }
}

/// The TCP ports to probe on every address of a target group: sorted, deduplicated.
#[derive(Clone, PartialEq, Eq)]
pub struct PortList {
    ports: Vec<u16>,
    spec: String,
}

impl fmt::Debug for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortList({:?}, {} ports)", self.spec, self.ports.len())
    }
}

impl PortList {
    /// Parse `top1000`, single ports and ranges, comma-separated (and combinable: `top1000,8443`).
    pub fn parse(spec: &str) -> Result<PortList, PortSpecError> {
        let mut ports = Vec::new();
        for piece in spec.split(',').map(str::trim) {
            if piece.is_empty() {
                return Err(err(spec, "empty element"));
            }
            if piece.eq_ignore_ascii_case("top1000") {
                ports.extend_from_slice(top1000());
                continue;
            }
            if piece.contains('/') {
                return Err(err(
                    piece,
                    "scan port lists are TCP; leave out the protocol suffix",
                ));
            }
            let (a, b) = parse_range(piece, piece)?;
            ports.extend(a..=b);
        }
        ports.sort_unstable();
        ports.dedup();
        Ok(PortList {
            ports,
            spec: spec.trim().to_string(),
        })
    }

    /// nmap's top 1000 TCP ports (the default list).
    pub fn top1000() -> PortList {
        let mut ports = top1000().to_vec();
        ports.sort_unstable();
        PortList {
            ports,
            spec: "top1000".to_string(),
        }
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    pub fn spec(&self) -> &str {
        &self.spec
    }

    pub fn len(&self) -> usize {
        self.ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// A set of (protocol, port range) pairs, as policies write them: `22`, `443/tcp`, `53/udp`,
/// `8000-8100`. A bare port means TCP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortMatcher {
    ranges: Vec<(Protocol, u16, u16)>,
}

impl PortMatcher {
    pub fn parse<S: AsRef<str>>(specs: &[S]) -> Result<PortMatcher, PortSpecError> {
        let mut ranges = Vec::new();
        for spec in specs {
            for piece in spec.as_ref().split(',').map(str::trim) {
                let (range, proto) = match piece.rsplit_once('/') {
                    Some((r, p)) => match p.to_ascii_lowercase().as_str() {
                        "tcp" => (r, Protocol::Tcp),
                        "udp" => (r, Protocol::Udp),
                        other => return Err(err(piece, format!("unknown protocol {other:?}"))),
                    },
                    None => (piece, Protocol::Tcp),
                };
                if range.eq_ignore_ascii_case("top1000") {
                    return Err(err(piece, "a policy names ports, not `top1000`"));
                }
                let (a, b) = parse_range(piece, range)?;
                ranges.push((proto, a, b));
            }
        }
        Ok(PortMatcher { ranges })
    }

    pub fn contains(&self, proto: Protocol, port: u16) -> bool {
        self.ranges
            .iter()
            .any(|&(p, a, b)| p == proto && (a..=b).contains(&port))
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top1000_is_nmaps_list_in_rank_order() {
        let t = top1000();
        assert_eq!(t.len(), 1000);
        assert_eq!(&t[..5], &[80, 23, 443, 21, 22]);
        let mut s = t.to_vec();
        s.sort_unstable();
        s.dedup();
        assert_eq!(s.len(), 1000, "no duplicates");
        assert_eq!(rank(80), 0);
        assert_eq!(rank(22), 4);
        assert!(
            rank(65535) > rank(1),
            "unranked ports sort after ranked ones, in order"
        );
    }

    #[test]
    fn port_lists_parse_and_merge() {
        let l = PortList::parse("1-3, 2,80").unwrap();
        assert_eq!(l.ports(), &[1, 2, 3, 80]);
        let l = PortList::parse("top1000,40000").unwrap();
        assert_eq!(l.len(), 1001);
        assert_eq!(PortList::parse("1-65535").unwrap().len(), 65535);
    }

    #[test]
    fn bad_port_lists_say_what_is_wrong() {
        for (spec, needle) in [
            ("0", "outside 1-65535"),
            ("70000", "outside 1-65535"),
            ("10-5", "above its end"),
            ("http", "not a number"),
            ("22,", "empty element"),
            ("22/tcp", "protocol suffix"),
        ] {
            let e = PortList::parse(spec).unwrap_err().to_string();
            assert!(e.contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn matcher_knows_protocols() {
        let m = PortMatcher::parse(&["22", "53/udp", "8000-8100/tcp"]).unwrap();
        assert!(m.contains(Protocol::Tcp, 22));
        assert!(!m.contains(Protocol::Udp, 22));
        assert!(m.contains(Protocol::Udp, 53));
        assert!(!m.contains(Protocol::Tcp, 53));
        assert!(m.contains(Protocol::Tcp, 8050));
        assert!(PortMatcher::parse(&["22/sctp"]).is_err());
    }
}
