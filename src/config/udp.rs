//! `[scan.udp]`: the native UDP probes for amplifiers and open resolvers. What to probe (ports, each
//! with the protocol spoken there), the SNMP community and the DNS name asked; rates, timeouts and
//! retries are `[scan.tcp]`'s, so one set of limits holds for every probe the agent sends.

use super::Problem;
use crate::scan::udp::{self, Protocol, QueryName};
use crate::scan::TcpSettings;
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpFile {
    pub enabled: bool,
    /// Comma-separated `port` (the protocol known for it) or `port:protocol`, e.g. `53,15353:dns`.
    pub ports: String,
    pub snmp_community: String,
    pub dns_query_name: String,
    /// How long to keep counting reply datagrams after the first valid one.
    #[serde(with = "humantime_serde")]
    pub gather: Duration,
}

impl Default for UdpFile {
    fn default() -> Self {
        UdpFile {
            enabled: true,
            ports: udp::DEFAULT_PORTS
                .iter()
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
                .join(","),
            snmp_community: "public".into(),
            dns_query_name: "example.com".into(),
            gather: udp::DEFAULT_GATHER,
        }
    }
}

/// `53,123,15353:dns` → (port, protocol) pairs; the error names the entry and what would fix it.
pub fn parse_ports(s: &str) -> Result<Vec<(u16, Protocol)>, String> {
    let mut out = Vec::new();
    for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (port, proto) = match entry.split_once(':') {
            Some((p, name)) => (p.trim(), Some(name.trim())),
            None => (entry, None),
        };
        let port: u16 = port
            .parse()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("{entry:?}: not a port number from 1 to 65535"))?;
        let protocol = match proto {
            Some(name) => name.parse::<Protocol>().map_err(|e| format!("{entry:?}: {e}"))?,
            None => Protocol::for_port(port).ok_or_else(|| {
                format!(
                    "{entry:?}: no protocol is known for port {port}; write it as \"{port}:<protocol>\" with one of {}",
                    Protocol::ALL
                        .iter()
                        .map(|p| p.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })?,
        };
        if !out.contains(&(port, protocol)) {
            out.push((port, protocol));
        }
    }
    Ok(out)
}

/// Validate `[scan.udp]`: `None` when disabled (or invalid, with the problems pushed).
pub fn build(f: &UdpFile, tcp: &TcpSettings, problems: &mut Vec<Problem>) -> Option<udp::Settings> {
    if !f.enabled {
        return None;
    }
    let before = problems.len();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: format!("scan.udp.{key}"),
            message,
        })
    };
    let ports = parse_ports(&f.ports).unwrap_or_else(|m| {
        problem("ports", m);
        Vec::new()
    });
    if f.ports.split(',').all(|e| e.trim().is_empty()) {
        problem(
            "ports",
            "lists no port; list some, or set scan.udp.enabled = false".into(),
        );
    }
    let dns_query_name = f.dns_query_name.parse::<QueryName>().unwrap_or_else(|e| {
        problem("dns_query_name", e.to_string());
        QueryName::default()
    });
    if f.snmp_community.is_empty() || f.snmp_community.len() > 255 {
        problem("snmp_community", "must be 1 to 255 bytes".into());
    }
    if problems.len() > before {
        return None;
    }
    Some(udp::Settings {
        ports,
        concurrency: tcp.concurrency.min(udp::DEFAULT_CONCURRENCY),
        max_rate: tcp.max_rate,
        max_host_rate: tcp.max_host_rate,
        initial_timeout: tcp.initial_timeout,
        min_timeout: tcp.min_timeout,
        max_timeout: tcp.max_timeout,
        retries: tcp.retries,
        gather: f.gather,
        dns_query_name,
        snmp_community: f.snmp_community.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_take_known_protocols_or_a_named_one() {
        assert_eq!(
            parse_ports("53, 123,15353:dns,161:SNMP,53").unwrap(),
            [
                (53, Protocol::Dns),
                (123, Protocol::Ntp),
                (15353, Protocol::Dns),
                (161, Protocol::Snmp)
            ]
        );
        let e = parse_ports("53,8080").unwrap_err();
        assert!(e.contains("8080") && e.contains("8080:<protocol>"), "{e}");
        assert!(e.contains("memcached"), "lists the protocols: {e}");
        assert!(parse_ports("0").unwrap_err().contains("1 to 65535"));
        assert!(parse_ports("53:gopher").unwrap_err().contains("gopher"));
    }

    #[test]
    fn the_default_probes_the_amplifier_list_at_the_tcp_limits() {
        let tcp = TcpSettings {
            max_rate: 500,
            max_host_rate: 20,
            retries: 3,
            ..TcpSettings::default()
        };
        let mut problems = Vec::new();
        let s = build(&UdpFile::default(), &tcp, &mut problems).unwrap();
        assert!(problems.is_empty());
        assert_eq!(s.ports, udp::DEFAULT_PORTS);
        assert_eq!((s.max_rate, s.max_host_rate, s.retries), (500, 20, 3));
        assert_eq!(s.snmp_community, "public");
        let off = UdpFile {
            enabled: false,
            ..UdpFile::default()
        };
        assert_eq!(build(&off, &tcp, &mut problems), None);
        assert!(problems.is_empty());
    }

    #[test]
    fn bad_keys_are_named() {
        let f = UdpFile {
            ports: "".into(),
            dns_query_name: "a..b".into(),
            snmp_community: "".into(),
            ..UdpFile::default()
        };
        let mut problems = Vec::new();
        assert_eq!(build(&f, &TcpSettings::default(), &mut problems), None);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "scan.udp.ports",
                "scan.udp.dns_query_name",
                "scan.udp.snmp_community"
            ]
        );
    }
}
