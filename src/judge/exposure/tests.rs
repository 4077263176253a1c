//! Tests of security-group exposure: which rule opens a port to the world, per protocol, family and
//! port range, and the reachability checks both ways.

use super::*;

const FIXTURE_GROUPS: &str =
    include_str!("../../../tests/fixtures/openstack/neutron/security-groups-list-response.json");
const FIXTURE_RULES: &str = include_str!(
    "../../../tests/fixtures/openstack/neutron/security-group-rules-list-response.json"
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
    let by =
        |port, from: &str| reachable_from(&groups, true, TCP, port, ip(from)).map(|r| r.rule_id);
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
