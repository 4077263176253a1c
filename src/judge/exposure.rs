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
mod tests {
    use super::*;

    const FIXTURE_GROUPS: &str =
        include_str!("../../tests/fixtures/openstack/neutron/security-groups-list-response.json");
    const FIXTURE_RULES: &str = include_str!(
        "../../tests/fixtures/openstack/neutron/security-group-rules-list-response.json"
    );

    const TCP: Protocol = Protocol::Tcp;
    const UDP: Protocol = Protocol::Udp;
    const V4: IpFamily = IpFamily::V4;
    const V6: IpFamily = IpFamily::V6;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// A rule; `spec` is `direction ethertype protocol min max prefix remote_group`, `-` for none.
    fn rule(id: &str, spec: &str) -> SecurityGroupRule {
        let f: Vec<&str> = spec.split_whitespace().collect();
        assert_eq!(f.len(), 7, "bad test rule spec {spec:?}");
        let opt = |s: &str| (s != "-").then(|| s.to_string());
        SecurityGroupRule {
            id: id.into(),
            direction: match f[0] {
                "ingress" => Direction::Ingress,
                _ => Direction::Egress,
            },
            ethertype: f[1].into(),
            protocol: opt(f[2]),
            port_range_min: opt(f[3]).map(|p| p.parse().unwrap()),
            port_range_max: opt(f[4]).map(|p| p.parse().unwrap()),
            remote_ip_prefix: opt(f[5]),
            remote_group_id: opt(f[6]),
            remote_address_group_id: None,
        }
    }

    fn group(id: &str, name: &str, rules: Vec<SecurityGroupRule>) -> SecurityGroup {
        SecurityGroup {
            id: id.into(),
            name: name.into(),
            project_id: "e4f50856753b4dc6afee5fa6b9b6c550".into(),
            stateful: true,
            rules,
        }
    }

    /// The `default` group of the upstream sample, by hand.
    fn upstream_default() -> SecurityGroup {
        let sg = "85cc3048-abc3-43cc-89b3-377341426ac5";
        group(
            sg,
            "default",
            vec![
                rule(
                    "3c0e45ff-adaf-4124-b083-bf390e5482ff",
                    "egress IPv6 - - - - -",
                ),
                rule(
                    "93aa42e5-80db-4581-9391-3a608bd0e448",
                    "egress IPv4 - - - - -",
                ),
                rule(
                    "c0b09f00-1d49-4e64-a0a7-8a186d928138",
                    &format!("ingress IPv6 - - - - {sg}"),
                ),
                rule(
                    "f7d45c89-008e-4bab-88ad-d6811724c51c",
                    &format!("ingress IPv4 - - - - {sg}"),
                ),
            ],
        )
    }

    fn ssh_world() -> SecurityGroup {
        group(
            "g-ssh",
            "ssh",
            vec![rule("r-ssh", "ingress IPv4 tcp 22 22 0.0.0.0/0 -")],
        )
    }

    /// The hand-made mirror must say what the upstream samples say, field by field that we read.
    #[test]
    fn the_default_group_mirror_matches_the_upstream_samples() {
        let groups: serde_json::Value = serde_json::from_str(FIXTURE_GROUPS).unwrap();
        let rules: serde_json::Value = serde_json::from_str(FIXTURE_RULES).unwrap();
        let g = &groups["security_groups"][0];
        let mine = upstream_default();
        assert_eq!(g["id"], mine.id.as_str());
        assert_eq!(g["name"], mine.name.as_str());
        for list in [&g["security_group_rules"], &rules["security_group_rules"]] {
            let list = list.as_array().unwrap();
            assert_eq!(list.len(), mine.rules.len());
            for j in list {
                let r = mine
                    .rules
                    .iter()
                    .find(|r| j["id"] == r.id.as_str())
                    .unwrap();
                let dir = match r.direction {
                    Direction::Ingress => "ingress",
                    Direction::Egress => "egress",
                };
                assert_eq!(j["direction"], dir, "{}", r.id);
                assert_eq!(j["ethertype"], r.ethertype.as_str(), "{}", r.id);
                assert_eq!(j["protocol"].as_str(), r.protocol.as_deref(), "{}", r.id);
                assert_eq!(
                    j["port_range_min"].as_u64(),
                    r.port_range_min.map(u64::from)
                );
                assert_eq!(
                    j["port_range_max"].as_u64(),
                    r.port_range_max.map(u64::from)
                );
                assert_eq!(
                    j["remote_ip_prefix"].as_str(),
                    r.remote_ip_prefix.as_deref()
                );
                assert_eq!(j["remote_group_id"].as_str(), r.remote_group_id.as_deref());
            }
        }
    }

    #[test]
    fn the_default_group_exposes_nothing_to_the_world_nor_to_the_scanner() {
        let g = upstream_default();
        let groups = [&g];
        for fam in [V4, V6] {
            for proto in [TCP, UDP] {
                for port in [1, 22, 443, 65535] {
                    assert_eq!(world_rule(&groups, true, proto, port, fam), None);
                }
            }
            assert!(world_open_ports(&groups, true, fam).is_empty());
        }
        // Members of the group may talk to each other; the scanner is not a member.
        assert_eq!(reachable_from(&groups, true, TCP, 22, ip("10.0.0.2")), None);
        assert_eq!(reachable_from(&groups, true, TCP, 22, ip("fd00::2")), None);
        let e = assess(&groups, true, V4, Some(ip("10.0.0.2")), &[(TCP, 22)]);
        assert_eq!(e.unfiltered, vec![(TCP, 22)]);
        assert_eq!(e.ports[0].world, None);
        assert_eq!(e.ports[0].admitted, Some(false));
        assert!(e.waiting.is_empty());
    }

    #[test]
    fn a_world_ssh_rule_opens_tcp_22_over_ipv4_only() {
        let g = ssh_world();
        let d = upstream_default();
        let groups = [&d, &g];
        let want = RuleRef {
            group_id: "g-ssh".into(),
            group_name: "ssh".into(),
            rule_id: "r-ssh".into(),
        };
        assert_eq!(world_rule(&groups, true, TCP, 22, V4), Some(want.clone()));
        assert_eq!(world_rule(&groups, true, TCP, 21, V4), None);
        assert_eq!(world_rule(&groups, true, TCP, 23, V4), None);
        assert_eq!(world_rule(&groups, true, UDP, 22, V4), None);
        assert_eq!(world_rule(&groups, true, TCP, 22, V6), None);
        assert_eq!(
            world_open_ports(&groups, true, V4),
            vec![WorldOpen {
                protocol: TCP,
                first: 22,
                last: 22,
                rule: want.clone(),
                all_ports: false
            }]
        );
        assert_eq!(
            reachable_from(&groups, true, TCP, 22, ip("192.0.2.7")),
            Some(want)
        );
        assert_eq!(
            reachable_from(&groups, true, TCP, 22, ip("2001:db8::7")),
            None
        );
    }

    #[test]
    fn an_ipv6_only_world_rule_leaves_ipv4_closed() {
        let g = group(
            "g6",
            "v6-web",
            vec![rule("r6", "ingress IPv6 tcp 443 443 ::/0 -")],
        );
        let groups = [&g];
        assert_eq!(world_rule(&groups, true, TCP, 443, V4), None);
        assert_eq!(
            world_rule(&groups, true, TCP, 443, V6).map(|r| r.rule_id),
            Some("r6".to_string())
        );
        assert!(world_open_ports(&groups, true, V4).is_empty());
        assert_eq!(world_open_ports(&groups, true, V6).len(), 1);
    }

    #[test]
    fn a_protocol_any_rule_opens_every_port_of_tcp_and_udp_as_one_range_each() {
        for proto in ["-", "any", "ANY", "0"] {
            let g = group(
                "g",
                "open",
                vec![rule("r", &format!("ingress IPv4 {proto} - - 0.0.0.0/0 -"))],
            );
            let groups = [&g];
            for port in [1, 22, 53, 65535] {
                assert!(
                    world_rule(&groups, true, TCP, port, V4).is_some(),
                    "{proto}"
                );
                assert!(
                    world_rule(&groups, true, UDP, port, V4).is_some(),
                    "{proto}"
                );
            }
            let w = world_open_ports(&groups, true, V4);
            assert_eq!(w.len(), 2, "{proto}: {w:?}");
            assert!(w
                .iter()
                .all(|w| w.all_ports && w.first == 1 && w.last == 65535));
            assert_eq!((w[0].protocol, w[1].protocol), (TCP, UDP));
        }
        // No prefix and no remote group is any source, too.
        let g = group("g", "open", vec![rule("r", "ingress IPv4 - - - - -")]);
        assert!(world_rule(&[&g], true, TCP, 8080, V4).is_some());
    }

    #[test]
    fn port_ranges_have_inclusive_bounds() {
        let g = group(
            "g",
            "r",
            vec![
                rule("range", "ingress IPv4 tcp 1000 2000 0.0.0.0/0 -"),
                rule("min-only", "ingress IPv4 tcp 8080 - 0.0.0.0/0 -"),
                rule("no-ports", "ingress IPv4 udp - - 0.0.0.0/0 -"),
                rule("inverted", "ingress IPv4 tcp 500 400 0.0.0.0/0 -"),
            ],
        );
        let groups = [&g];
        let id = |proto, port| world_rule(&groups, true, proto, port, V4).map(|r| r.rule_id);
        assert_eq!(id(TCP, 999), None);
        assert_eq!(id(TCP, 1000).as_deref(), Some("range"));
        assert_eq!(id(TCP, 2000).as_deref(), Some("range"));
        assert_eq!(id(TCP, 2001), None);
        assert_eq!(id(TCP, 8080).as_deref(), Some("min-only"));
        assert_eq!(id(TCP, 8081), None);
        assert_eq!(id(TCP, 450), None);
        assert_eq!(id(UDP, 1).as_deref(), Some("no-ports"));
        assert_eq!(id(UDP, 65535).as_deref(), Some("no-ports"));
    }

    #[test]
    fn disabled_port_security_opens_everything_with_a_pseudo_rule() {
        let d = upstream_default();
        for groups in [vec![], vec![&d]] {
            let r = world_rule(&groups, false, UDP, 161, V6).unwrap();
            assert_eq!(r.rule_id, PORT_SECURITY_DISABLED);
            assert_eq!(r, RuleRef::port_security_disabled());
            assert!(reachable_from(&groups, false, TCP, 5432, ip("10.9.9.9")).is_some());
            let w = world_open_ports(&groups, false, V4);
            assert_eq!(w.len(), 2);
            assert!(w
                .iter()
                .all(|w| w.all_ports && w.rule.rule_id == PORT_SECURITY_DISABLED));
        }
        let e = assess(&[], false, V4, Some(ip("10.0.0.2")), &[(TCP, 22)]);
        assert!(e.unfiltered.is_empty());
        assert_eq!(e.waiting.len(), 2, "{:?}", e.waiting);
        assert!(e.waiting.iter().all(|w| w.all_ports));
    }

    #[test]
    fn egress_rules_are_ignored() {
        let g = group(
            "g",
            "out",
            vec![
                rule("e4", "egress IPv4 - - - 0.0.0.0/0 -"),
                rule("e6", "egress IPv6 tcp 22 22 ::/0 -"),
            ],
        );
        let groups = [&g];
        assert_eq!(world_rule(&groups, true, TCP, 22, V4), None);
        assert_eq!(world_rule(&groups, true, TCP, 22, V6), None);
        assert!(world_open_ports(&groups, true, V4).is_empty());
        assert_eq!(reachable_from(&groups, true, TCP, 22, ip("10.0.0.2")), None);
    }

    #[test]
    fn numeric_and_upper_case_protocols_are_understood_and_icmp_is_not_tcp() {
        let g = group(
            "g",
            "n",
            vec![
                rule("six", "ingress IPv4 6 80 80 0.0.0.0/0 -"),
                rule("seventeen", "ingress IPv4 17 53 53 0.0.0.0/0 -"),
                rule("upper", "ingress IPv4 TCP 443 443 0.0.0.0/0 -"),
                rule("icmp", "ingress IPv4 icmp - - 0.0.0.0/0 -"),
                rule("one", "ingress IPv4 1 - - 0.0.0.0/0 -"),
            ],
        );
        let groups = [&g];
        let id = |proto, port| world_rule(&groups, true, proto, port, V4).map(|r| r.rule_id);
        assert_eq!(id(TCP, 80).as_deref(), Some("six"));
        assert_eq!(id(UDP, 80), None);
        assert_eq!(id(UDP, 53).as_deref(), Some("seventeen"));
        assert_eq!(id(TCP, 443).as_deref(), Some("upper"));
        assert_eq!(id(TCP, 8), None, "ICMP opens no TCP port");
        let w: Vec<_> = world_open_ports(&groups, true, V4)
            .into_iter()
            .map(|w| (w.protocol, w.first, w.last))
            .collect();
        assert_eq!(w, vec![(TCP, 80, 80), (TCP, 443, 443), (UDP, 53, 53)]);
    }

    /// Overlapping rules across groups: the ranges are disjoint, sorted, and every port's range
    /// names exactly the rule `world_rule` names for it — checked for all 2 x 65535 ports.
    #[test]
    fn world_open_ranges_agree_with_world_rule_for_every_port() {
        let a = group(
            "ga",
            "a",
            vec![
                rule("a-web", "ingress IPv4 tcp 80 80 0.0.0.0/0 -"),
                rule("a-high", "ingress IPv4 tcp 1024 65535 0.0.0.0/0 -"),
                rule("a-lan", "ingress IPv4 tcp 1 65535 10.0.0.0/8 -"),
            ],
        );
        let b = group(
            "gb",
            "b",
            vec![
                rule("b-range", "ingress IPv4 tcp 20 25 0.0.0.0/0 -"),
                rule("b-ssh", "ingress IPv4 tcp 22 22 0.0.0.0/0 -"),
                rule("b-81", "ingress IPv4 tcp 81 81 0.0.0.0/0 -"),
                rule("b-dns", "ingress IPv4 udp 53 53 0.0.0.0/0 -"),
                rule("b-udp-any", "ingress IPv4 17 - - 0.0.0.0/0 -"),
            ],
        );
        let groups = [&a, &b];
        let w = world_open_ports(&groups, true, V4);
        let summary: Vec<_> = w
            .iter()
            .map(|w| (w.protocol, w.first, w.last, w.rule.rule_id.as_str()))
            .collect();
        assert_eq!(
            summary,
            vec![
                (TCP, 20, 25, "b-range"),
                (TCP, 80, 80, "a-web"),
                (TCP, 81, 81, "b-81"),
                (TCP, 1024, 65535, "a-high"),
                (UDP, 1, 52, "b-udp-any"),
                (UDP, 53, 53, "b-dns"),
                (UDP, 54, 65535, "b-udp-any"),
            ]
        );
        for proto in [TCP, UDP] {
            for port in 1..=u16::MAX {
                let from_ranges = w.iter().find(|w| w.contains(proto, port)).map(|w| &w.rule);
                assert_eq!(
                    world_rule(&groups, true, proto, port, V4).as_ref(),
                    from_ranges,
                    "{proto}/{port}"
                );
            }
        }
        assert!(w
            .windows(2)
            .all(|p| (p[0].protocol, p[0].last) < (p[1].protocol, p[1].first)));
    }

    #[test]
    fn the_scanner_is_admitted_by_prefixes_containing_it_not_by_remote_groups() {
        let g = group(
            "g",
            "mixed",
            vec![
                rule("lan", "ingress IPv4 tcp 5432 5432 10.0.0.0/8 -"),
                rule("host", "ingress IPv4 tcp 6379 6379 10.0.0.5 -"),
                rule("peers", "ingress IPv4 tcp 9100 9100 - peer-group"),
                rule("broken", "ingress IPv4 tcp 9200 9200 not-a-cidr -"),
                rule("v6", "ingress IPv6 tcp 5432 5432 fd00::/8 -"),
            ],
        );
        let groups = [&g];
        let by = |port, from: &str| {
            reachable_from(&groups, true, TCP, port, ip(from)).map(|r| r.rule_id)
        };
        assert_eq!(by(5432, "10.1.2.3").as_deref(), Some("lan"));
        assert_eq!(by(5432, "192.168.1.1"), None);
        assert_eq!(
            by(5432, "::ffff:10.1.2.3").as_deref(),
            Some("lan"),
            "mapped v4"
        );
        assert_eq!(by(5432, "fd00::1").as_deref(), Some("v6"));
        assert_eq!(by(6379, "10.0.0.5").as_deref(), Some("host"));
        assert_eq!(by(6379, "10.0.0.6"), None);
        assert_eq!(by(9100, "10.0.0.5"), None, "remote group");
        assert_eq!(by(9200, "10.0.0.5"), None, "unparsable prefix");
        // None of these is world-open.
        assert!(world_open_ports(&groups, true, V4).is_empty());
        assert!(world_open_ports(&groups, true, V6).is_empty());
    }

    #[test]
    fn assess_lists_waiting_ports_and_unfiltered_ones() {
        let g = group(
            "g",
            "db",
            vec![
                rule("ssh", "ingress IPv4 tcp 22 22 0.0.0.0/0 -"),
                rule("mysql", "ingress IPv4 tcp 3306 3306 0.0.0.0/0 -"),
                rule("band", "ingress IPv4 tcp 9000 9010 0.0.0.0/0 -"),
            ],
        );
        let groups = [&g];
        let open = [(TCP, 9005), (TCP, 22), (TCP, 8080), (TCP, 22), (TCP, 9000)];
        let e = assess(&groups, true, V4, Some(ip("10.0.0.2")), &open);
        let ports: Vec<_> = e
            .ports
            .iter()
            .map(|p| {
                (
                    p.port,
                    p.world.as_ref().map(|r| r.rule_id.as_str()),
                    p.admitted,
                )
            })
            .collect();
        assert_eq!(
            ports,
            vec![
                (22, Some("ssh"), Some(true)),
                (8080, None, Some(false)),
                (9000, Some("band"), Some(true)),
                (9005, Some("band"), Some(true)),
            ]
        );
        let waiting: Vec<_> = e
            .waiting
            .iter()
            .map(|w| (w.first, w.last, w.rule.rule_id.as_str(), w.all_ports))
            .collect();
        assert_eq!(
            waiting,
            vec![
                (3306, 3306, "mysql", false),
                (9001, 9004, "band", false),
                (9006, 9010, "band", false),
            ]
        );
        assert_eq!(e.unfiltered, vec![(TCP, 8080)]);

        // Without a scanner source (or one of the other family) nothing is called unfiltered.
        for src in [None, Some(ip("fd00::2"))] {
            let e = assess(&groups, true, V4, src, &open);
            assert!(e.unfiltered.is_empty());
            assert!(e.ports.iter().all(|p| p.admitted.is_none()));
        }
    }

    #[test]
    fn a_rule_opening_every_port_waits_as_one_entry() {
        let g = group(
            "g",
            "all",
            vec![rule("all", "ingress IPv4 tcp 1 65535 0.0.0.0/0 -")],
        );
        let open: Vec<_> = (1..=500).map(|p| (TCP, p * 7)).collect();
        let e = assess(&[&g], true, V4, Some(ip("203.0.113.9")), &open);
        assert_eq!(e.waiting.len(), 1, "{:?}", e.waiting);
        assert!(e.waiting[0].all_ports);
        assert_eq!((e.waiting[0].first, e.waiting[0].last), (1, 65535));
        assert!(e.unfiltered.is_empty());
        assert_eq!(e.ports.len(), 500);
    }

    #[test]
    fn exposure_serialises_with_readable_names() {
        let g = ssh_world();
        let e = assess(
            &[&g],
            true,
            V4,
            Some(ip("10.0.0.2")),
            &[(TCP, 22), (UDP, 161)],
        );
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["family"], "IPv4");
        assert_eq!(v["ports"][0]["protocol"], "tcp");
        assert_eq!(v["ports"][0]["world"]["rule_id"], "r-ssh");
        assert_eq!(v["ports"][0]["world"]["group_name"], "ssh");
        assert_eq!(v["unfiltered"], serde_json::json!([["udp", 161]]));
        assert!(v["waiting"].as_array().unwrap().is_empty());
        let back: Exposure = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }
}
