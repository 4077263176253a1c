//! Security-group exposure: what a Neutron port's security groups let in, judged purely from the
//! groups' rules. Which ingress rule opens a TCP/UDP port to the whole world (and so which open port
//! is world-reachable, and which ports the groups open although nothing listens yet), and whether a
//! given source — the scanner — is admitted at all. No I/O; the inventory hands the groups in.
//!
//! # How rules are read
//! - Only `ingress` rules count; `egress` rules are ignored. A rule's `ethertype` (`IPv4`/`IPv6`)
//!   must be the address family asked about.
//! - Protocol: `tcp`/`6` and `udp`/`17` (any case); `None`, `any` or `0` is every protocol, and such
//!   a rule covers every port. Anything else (`icmp`, `sctp`, ...) opens no TCP/UDP port.
//! - Ports: `port_range_min: None` is every port (what Neutron's firewall drivers do); a minimum with
//!   no maximum is that single port; a maximum below the minimum opens nothing; 0 counts as 1.
//! - Source: a `remote_ip_prefix` of length 0 (`0.0.0.0/0`, `::/0`) is the world, and so is a rule
//!   with no prefix, no `remote_group_id` and no `remote_address_group_id`. A `remote_group_id` or
//!   `remote_address_group_id` rule admits members of that set only: never the world, and never the
//!   scanner (it is not a member). A prefix that does not parse admits nobody.
//! - `port_security_enabled: false` means no filtering at all: everything is world-open, reported
//!   with the pseudo-rule [`PORT_SECURITY_DISABLED`].
//!
//! # The "unfiltered" heuristic
//! [`Exposure::unfiltered`] lists open ports that no rule admits from the scanner's source address:
//! the scanner reached them although, read literally, the groups should have dropped its probes. It
//! is a hint, not proof. Causes other than a broken group include: the cloud running the `noop`
//! firewall driver (groups are stored but never enforced); the scanner's address as the VM sees it
//! differing from the one given here (NAT on the way, or a scanner inside a `qdhcp-` namespace whose
//! DHCP port address is not the one passed); traffic admitted by Neutron's own implicit rules (DHCP,
//! IPv6 neighbour discovery) or by allowed-address-pairs; and stateful groups (`stateful: true`, the
//! default) letting in replies to connections the VM opened itself, which can make a port look open
//! from a source that could not open a connection to it. Stateless groups (`stateful: false`) have
//! no such reply path and need explicit rules both ways.

pub use crate::model::exposure::{
    Exposure, IpFamily, PortExposure, RuleRef, WorldOpen, PORT_SECURITY_DISABLED,
};
use crate::model::{Direction, Protocol, SecurityGroup, SecurityGroupRule};
use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// A rule's protocol as it bears on TCP/UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleProtocol {
    Any,
    One(Protocol),
    /// ICMP, SCTP, ...: opens no TCP/UDP port.
    Other,
}

fn rule_protocol(rule: &SecurityGroupRule) -> RuleProtocol {
    let Some(p) = rule.protocol.as_deref().map(str::trim) else {
        return RuleProtocol::Any;
    };
    if p.is_empty() || p == "0" || p.eq_ignore_ascii_case("any") {
        RuleProtocol::Any
    } else if p == "6" || p.eq_ignore_ascii_case("tcp") {
        RuleProtocol::One(Protocol::Tcp)
    } else if p == "17" || p.eq_ignore_ascii_case("udp") {
        RuleProtocol::One(Protocol::Udp)
    } else {
        RuleProtocol::Other
    }
}

/// The inclusive port range a rule opens for `protocol`, or `None` if it opens none of it.
fn rule_ports(rule: &SecurityGroupRule, protocol: Protocol) -> Option<(u16, u16)> {
    match rule_protocol(rule) {
        RuleProtocol::Any => Some((1, u16::MAX)),
        RuleProtocol::One(p) if p == protocol => match (rule.port_range_min, rule.port_range_max) {
            (None, _) => Some((1, u16::MAX)),
            (Some(min), max) => {
                let min = min.max(1);
                let max = max.unwrap_or(min);
                (max >= min).then_some((min, max))
            }
        },
        RuleProtocol::One(_) | RuleProtocol::Other => None,
    }
}

/// Where a rule admits traffic from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Any,
    Prefix(IpNetwork),
    /// A remote group or address group: its members only.
    Members,
    /// A prefix that does not parse: admits nobody.
    Unparsable,
}

fn rule_source(rule: &SecurityGroupRule) -> Source {
    let prefix = rule
        .remote_ip_prefix
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty());
    if let Some(p) = prefix {
        // Neutron stores a bare address as a host prefix; accept both forms.
        return match (p.parse::<IpNetwork>(), p.parse::<IpAddr>()) {
            (Ok(n), _) => Source::Prefix(n),
            (_, Ok(a)) => IpNetwork::new(a, if a.is_ipv4() { 32 } else { 128 })
                .map_or(Source::Unparsable, Source::Prefix),
            _ => Source::Unparsable,
        };
    }
    if rule.remote_group_id.is_some() || rule.remote_address_group_id.is_some() {
        Source::Members
    } else {
        Source::Any
    }
}

fn is_world(source: Source) -> bool {
    match source {
        Source::Any => true,
        Source::Prefix(n) => n.prefix() == 0,
        Source::Members | Source::Unparsable => false,
    }
}

fn admits(source: Source, from: IpAddr) -> bool {
    match source {
        Source::Any => true,
        Source::Prefix(n) => n.contains(from),
        Source::Members | Source::Unparsable => false,
    }
}

/// Every ingress rule of the family, in group order then rule order.
fn ingress<'g>(
    groups: &[&'g SecurityGroup],
    family: IpFamily,
) -> Vec<(&'g SecurityGroup, &'g SecurityGroupRule)> {
    groups
        .iter()
        .flat_map(|g| g.rules.iter().map(move |r| (*g, r)))
        .filter(|(_, r)| r.direction == Direction::Ingress && family.matches(&r.ethertype))
        .collect()
}

/// The first ingress rule that lets the whole world reach `protocol`/`port` over `family`.
pub fn world_rule(
    groups: &[&SecurityGroup],
    port_security_enabled: bool,
    protocol: Protocol,
    port: u16,
    family: IpFamily,
) -> Option<RuleRef> {
    if !port_security_enabled {
        return Some(RuleRef::port_security_disabled());
    }
    ingress(groups, family)
        .into_iter()
        .find(|(_, r)| {
            is_world(rule_source(r))
                && rule_ports(r, protocol).is_some_and(|(a, b)| (a..=b).contains(&port))
        })
        .map(|(g, r)| RuleRef::of(g, r))
}

/// The first ingress rule that admits `source` to `protocol`/`port` (a prefix containing it, or any
/// source). Remote-group rules never admit it.
pub fn reachable_from(
    groups: &[&SecurityGroup],
    port_security_enabled: bool,
    protocol: Protocol,
    port: u16,
    source: IpAddr,
) -> Option<RuleRef> {
    if !port_security_enabled {
        return Some(RuleRef::port_security_disabled());
    }
    let source = source.to_canonical();
    ingress(groups, IpFamily::of(source))
        .into_iter()
        .find(|(_, r)| {
            admits(rule_source(r), source)
                && rule_ports(r, protocol).is_some_and(|(a, b)| (a..=b).contains(&port))
        })
        .map(|(g, r)| RuleRef::of(g, r))
}

/// Every TCP and UDP port range the groups open to the world over `family`, sorted by protocol and
/// port, disjoint, each attributed to the rule [`world_rule`] would name for its ports. Adjacent
/// ranges of the same rule are merged, so the length is bounded by about twice the rule count.
pub fn world_open_ports(
    groups: &[&SecurityGroup],
    port_security_enabled: bool,
    family: IpFamily,
) -> Vec<WorldOpen> {
    let protocols = [Protocol::Tcp, Protocol::Udp];
    if !port_security_enabled {
        return protocols
            .iter()
            .map(|&p| WorldOpen::new(p, 1, u16::MAX, RuleRef::port_security_disabled()))
            .collect();
    }
    let world: Vec<_> = ingress(groups, family)
        .into_iter()
        .filter(|(_, r)| is_world(rule_source(r)))
        .collect();
    let mut out: Vec<WorldOpen> = Vec::new();
    for protocol in protocols {
        let ranges: Vec<(u32, u32, RuleRef)> = world
            .iter()
            .filter_map(|(g, r)| {
                rule_ports(r, protocol)
                    .map(|(a, b)| (u32::from(a), u32::from(b), RuleRef::of(g, r)))
            })
            .collect();
        // Cut the port space at every range's start and end; inside each piece the first covering
        // rule is the same for every port.
        let mut cuts: Vec<u32> = ranges.iter().flat_map(|(a, b, _)| [*a, b + 1]).collect();
        cuts.sort_unstable();
        cuts.dedup();
        for pair in cuts.windows(2) {
            let (start, end) = (pair[0], pair[1] - 1);
            let Some((_, _, rule)) = ranges.iter().find(|(a, b, _)| *a <= start && start <= *b)
            else {
                continue;
            };
            // Both fit: they come from u16 bounds (end < the largest cut, itself <= 65536).
            let (first, last) = (
                u16::try_from(start).unwrap_or(u16::MAX),
                u16::try_from(end).unwrap_or(u16::MAX),
            );
            match out.last_mut() {
                Some(prev)
                    if prev.protocol == protocol
                        && u32::from(prev.last) + 1 == start
                        && prev.rule.same(rule) =>
                {
                    *prev = WorldOpen::new(protocol, prev.first, last, prev.rule.clone());
                }
                _ => out.push(WorldOpen::new(protocol, first, last, rule.clone())),
            }
        }
    }
    out
}

/// Judge one host: for each open port whether the world reaches it and whether the scanner's source
/// is admitted; the world-open ports nothing listens on; the open ports no rule admits the scanner to.
pub fn assess(
    groups: &[&SecurityGroup],
    port_security_enabled: bool,
    family: IpFamily,
    scanner_source: Option<IpAddr>,
    open: &[(Protocol, u16)],
) -> Exposure {
    let mut open = open.to_vec();
    open.sort_unstable();
    open.dedup();
    // The scanner's verdict only means something if it spoke the host's family.
    let scanner = scanner_source.filter(|s| IpFamily::of(*s) == family);
    let ports: Vec<PortExposure> = open
        .iter()
        .map(|&(protocol, port)| PortExposure {
            protocol,
            port,
            world: world_rule(groups, port_security_enabled, protocol, port, family),
            admitted: scanner.map(|s| {
                reachable_from(groups, port_security_enabled, protocol, port, s).is_some()
            }),
        })
        .collect();
    let unfiltered = ports
        .iter()
        .filter(|p| p.admitted == Some(false))
        .map(|p| (p.protocol, p.port))
        .collect();
    let mut waiting = Vec::new();
    for w in world_open_ports(groups, port_security_enabled, family) {
        if w.all_ports {
            waiting.push(w);
            continue;
        }
        // Split the range around the open ports inside it (open is sorted).
        let mut next = u32::from(w.first);
        for &(_, port) in open.iter().filter(|(p, port)| w.contains(*p, *port)) {
            if u32::from(port) > next {
                waiting.push(WorldOpen::new(
                    w.protocol,
                    next as u16,
                    port - 1,
                    w.rule.clone(),
                ));
            }
            next = u32::from(port) + 1;
        }
        if next <= u32::from(w.last) {
            waiting.push(WorldOpen::new(
                w.protocol,
                next as u16,
                w.last,
                w.rule.clone(),
            ));
        }
    }
    Exposure {
        family,
        port_security_enabled,
        scanner_source,
        ports,
        waiting,
        unfiltered,
    }
}

#[cfg(test)]
mod tests;
