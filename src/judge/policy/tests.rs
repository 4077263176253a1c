//! Unit tests of the port policy: rules, self-declared ports and exceptions.
use super::*;

const TCP: Protocol = Protocol::Tcp;
const UDP: Protocol = Protocol::Udp;
const KEY: &str = "stinger_expected_ports";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn ports(specs: &[&str]) -> PortMatcher {
    PortMatcher::parse(specs).unwrap()
}

/// A rule's metadata selector (a map) or a VM's metadata, from pairs.
fn meta<M: FromIterator<(String, String)>>(pairs: &[(&str, &str)]) -> M {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn vm<'a>(project: (&'a str, &'a str), metadata: &'a Metadata) -> Subject<'a> {
    Subject {
        address: ip("10.5.0.7"),
        group: "cloud",
        project_id: Some(project.0),
        project_name: Some(project.1),
        metadata: Some(metadata),
    }
}

fn policy() -> Policy {
    Policy {
        rules: vec![
            Rule {
                name: "no-telnet-in-dmz".into(),
                cidrs: vec!["10.1.0.0/16".parse().unwrap()],
                deny: ports(&["22"]),
                ..Rule::default()
            },
            Rule {
                name: "databases".into(),
                groups: vec!["db".into()],
                allow: ports(&["5432"]),
                ..Rule::default()
            },
        ],
        expected: ports(&["22", "80", "443"]),
        ..Policy::default()
    }
}

#[test]
fn first_matching_rule_decides_and_is_named() {
    let p = policy();
    let dmz: IpAddr = "10.1.2.3".parse().unwrap();
    let other: IpAddr = "10.2.0.1".parse().unwrap();
    let tcp = Protocol::Tcp;
    assert_eq!(
        p.verdict(dmz, "web", tcp, 22),
        (Verdict::Unexpected, "no-telnet-in-dmz")
    );
    assert_eq!(
        p.verdict(other, "web", tcp, 22),
        (Verdict::Expected, GLOBAL)
    );
    assert_eq!(
        p.verdict(other, "db", tcp, 5432),
        (Verdict::Expected, "databases")
    );
    assert_eq!(
        p.verdict(other, "web", tcp, 5432),
        (Verdict::Unexpected, DEFAULT)
    );
    assert_eq!(
        p.verdict(other, "web", Protocol::Udp, 22),
        (Verdict::Unexpected, DEFAULT)
    );
}

/// The old entry point is `verdict_for` on an address-only subject.
#[test]
fn verdict_is_verdict_for_an_address_only_subject() {
    let mut p = policy();
    p.metadata_key = Some(KEY.into());
    p.rules.push(Rule {
        name: "tenant".into(),
        projects: vec!["p1".into()],
        allow: ports(&["1-65535"]),
        ..Rule::default()
    });
    for addr in ["10.1.2.3", "10.2.0.1", "192.0.2.1"] {
        for group in ["web", "db"] {
            for proto in [TCP, UDP] {
                for port in [21, 22, 80, 5432, 8080] {
                    let (v, name) = p.verdict(ip(addr), group, proto, port);
                    let (v2, name2) =
                        p.verdict_for(&Subject::address(ip(addr), group), proto, port);
                    assert_eq!(
                        (v, name),
                        (v2, name2.as_ref()),
                        "{addr} {group} {proto}/{port}"
                    );
                    assert_ne!(name, "tenant", "an address-only host has no project");
                }
            }
        }
    }
}

#[test]
fn projects_match_by_id_or_by_name_exactly() {
    let p = Policy {
        rules: vec![Rule {
            name: "billing".into(),
            projects: vec!["a1b2".into(), "billing-prod".into()],
            allow: ports(&["8443"]),
            ..Rule::default()
        }],
        ..Policy::default()
    };
    let none = Metadata::default();
    let expect = |s: &Subject<'_>| p.verdict_for(s, TCP, 8443).1.into_owned();
    assert_eq!(expect(&vm(("a1b2", "whatever"), &none)), "billing", "by id");
    assert_eq!(
        expect(&vm(("ffff", "billing-prod"), &none)),
        "billing",
        "by name"
    );
    assert_eq!(
        expect(&vm(("ffff", "billing-PROD"), &none)),
        DEFAULT,
        "exact"
    );
    assert_eq!(
        expect(&vm(("a1b", "billing"), &none)),
        DEFAULT,
        "no prefixes"
    );
    let name_only = Subject {
        project_id: None,
        ..vm(("", "billing-prod"), &none)
    };
    assert_eq!(expect(&name_only), "billing");
    assert_eq!(expect(&Subject::address(ip("10.5.0.7"), "cloud")), DEFAULT);
}

#[test]
fn metadata_selectors_need_every_key_and_star_means_present() {
    let p = Policy {
        rules: vec![Rule {
            name: "k8s-nodes".into(),
            metadata: meta(&[("role", "k8s-node"), ("cluster", "*")]),
            allow: ports(&["10250"]),
            ..Rule::default()
        }],
        ..Policy::default()
    };
    let name = |m: &Metadata| p.verdict_for(&vm(("p", "p"), m), TCP, 10250).1.into_owned();
    assert_eq!(
        name(&meta(&[("role", "k8s-node"), ("cluster", "prod")])),
        "k8s-nodes"
    );
    assert_eq!(
        name(&meta(&[("role", "k8s-node"), ("cluster", "")])),
        "k8s-nodes",
        "* = present, even empty"
    );
    assert_eq!(
        name(&meta(&[("role", "k8s-node"), ("x", "1")])),
        DEFAULT,
        "cluster missing"
    );
    assert_eq!(
        name(&meta(&[("role", "db"), ("cluster", "prod")])),
        DEFAULT,
        "wrong value"
    );
    assert_eq!(
        name(&meta(&[("role", "K8S-node"), ("cluster", "p")])),
        DEFAULT,
        "exact value"
    );
    assert_eq!(name(&Metadata::default()), DEFAULT);
    let cidr_host = Subject::address(ip("10.5.0.7"), "cloud");
    assert_eq!(p.verdict_for(&cidr_host, TCP, 10250).1, DEFAULT);
    // A literal "*" value on the VM is just a value; the selector "*" accepts anything.
    assert_eq!(
        name(&meta(&[("role", "k8s-node"), ("cluster", "*")])),
        "k8s-nodes"
    );
}

#[test]
fn selectors_are_anded() {
    let p = Policy {
        rules: vec![Rule {
            name: "all-four".into(),
            cidrs: vec!["10.5.0.0/16".parse().unwrap()],
            groups: vec!["cloud".into()],
            projects: vec!["p1".into()],
            metadata: meta(&[("tier", "web")]),
            allow: ports(&["80"]),
            ..Rule::default()
        }],
        ..Policy::default()
    };
    let web = meta(&[("tier", "web")]);
    let db = meta(&[("tier", "db")]);
    let base = vm(("p1", "one"), &web);
    let name = |s: Subject<'_>| p.verdict_for(&s, TCP, 80).1.into_owned();
    assert_eq!(name(base), "all-four");
    assert_eq!(
        name(Subject {
            address: ip("10.6.0.1"),
            ..base
        }),
        DEFAULT
    );
    assert_eq!(
        name(Subject {
            group: "other",
            ..base
        }),
        DEFAULT
    );
    assert_eq!(
        name(Subject {
            project_id: Some("p2"),
            ..base
        }),
        DEFAULT
    );
    assert_eq!(
        name(Subject {
            metadata: Some(&db),
            ..base
        }),
        DEFAULT
    );
    assert_eq!(
        name(Subject {
            metadata: None,
            ..base
        }),
        DEFAULT
    );
}

fn declaring_policy() -> Policy {
    Policy {
        rules: vec![
            Rule {
                name: "no-redis".into(),
                projects: vec!["p1".into()],
                deny: ports(&["6379"]),
                ..Rule::default()
            },
            Rule {
                name: "monitoring".into(),
                allow: ports(&["9100"]),
                ..Rule::default()
            },
        ],
        expected: ports(&["22", "8080"]),
        metadata_key: Some(KEY.into()),
        // The projects of the VMs below may declare their own ports.
        self_declare: vec!["p1".into(), "two".into()],
        exceptions: Vec::new(),
    }
}

#[test]
fn a_vm_declares_its_own_ports_after_the_rules_and_before_global() {
    let p = declaring_policy();
    let m = meta(&[(KEY, "8080/tcp, 9100, 5000-5010/tcp 53/udp,,6379")]);
    let s = vm(("p1", "one"), &m);
    let got = |proto, port| {
        let (v, n) = p.verdict_for(&s, proto, port);
        (v, n.into_owned())
    };
    let declared = metadata_rule_name(KEY);
    assert_eq!(declared, "metadata:stinger_expected_ports");
    assert_eq!(got(TCP, 5000), (Verdict::Expected, declared.clone()));
    assert_eq!(got(TCP, 5010), (Verdict::Expected, declared.clone()));
    assert_eq!(got(UDP, 53), (Verdict::Expected, declared.clone()));
    assert_eq!(got(TCP, 5011), (Verdict::Unexpected, DEFAULT.into()));
    assert_eq!(
        got(TCP, 53),
        (Verdict::Unexpected, DEFAULT.into()),
        "53 declared for udp only"
    );
    // Declared and global: the declaration comes first, so it is named.
    assert_eq!(got(TCP, 8080), (Verdict::Expected, declared.clone()));
    // Global only.
    assert_eq!(got(TCP, 22), (Verdict::Expected, GLOBAL.into()));
    // Declared, but a rule decides first: its allow is named, its deny wins.
    assert_eq!(got(TCP, 9100), (Verdict::Expected, "monitoring".into()));
    assert_eq!(got(TCP, 6379), (Verdict::Unexpected, "no-redis".into()));
    // Without a metadata key, declarations are not read.
    let off = Policy {
        metadata_key: None,
        ..declaring_policy()
    };
    assert_eq!(off.verdict_for(&s, TCP, 5000).1, DEFAULT);
    assert_eq!(off.verdict_for(&s, TCP, 8080).1, GLOBAL);
    assert_eq!(off.metadata_problem(&meta(&[(KEY, "junk")])), None);
    // Another key is not a declaration.
    let other = meta(&[("expected_ports", "5000")]);
    assert_eq!(
        p.verdict_for(&vm(("p9", "x"), &other), TCP, 5000).1,
        DEFAULT
    );
}

#[test]
fn an_unparsable_declaration_is_ignored_and_reported() {
    let p = declaring_policy();
    for (value, needle) in [
        ("5000, http", "http"),
        ("5000 70000", "outside 1-65535"),
        ("5000/sctp", "unknown protocol"),
        ("top1000", "top1000"),
        ("6000-5000", "above its end"),
    ] {
        let m = meta(&[(KEY, value)]);
        let s = vm(("p2", "two"), &m);
        assert_eq!(
            p.verdict_for(&s, TCP, 5000).1,
            DEFAULT,
            "{value}: whole declaration ignored"
        );
        assert_eq!(p.verdict_for(&s, TCP, 22).1, GLOBAL, "{value}");
        let problem = p.metadata_problem(&m).unwrap_or_default();
        assert!(problem.contains(KEY), "{value}: {problem}");
        assert!(problem.contains(needle), "{value}: {problem}");
    }
    for fine in [
        meta(&[(KEY, "5000, 22/udp")]),
        meta(&[(KEY, "")]),
        meta(&[(KEY, " , ")]),
        Metadata::default(),
    ] {
        assert_eq!(p.metadata_problem(&fine), None, "{fine:?}");
    }
    // An empty declaration declares nothing.
    let empty = meta(&[(KEY, "")]);
    assert_eq!(
        p.verdict_for(&vm(("p2", "two"), &empty), TCP, 5000).1,
        DEFAULT
    );
}

#[test]
fn a_tenant_whitelisting_everything_is_not_believed_unless_its_project_may_self_declare() {
    let everything = meta(&[(KEY, "1-65535")]);
    let s = vm(("p7", "research"), &everything);
    let off = Policy {
        self_declare: Vec::new(),
        ..declaring_policy()
    };
    // Off by default: the declaration is not read at all.
    assert!(Policy::default().self_declare.is_empty());
    assert!(!off.may_self_declare(Some("p7"), Some("research")));
    assert_eq!(
        off.verdict_for(&s, TCP, 3306),
        (Verdict::Unexpected, DEFAULT.into())
    );
    assert_eq!(off.verdict_for(&s, UDP, 53).1, DEFAULT);
    assert_eq!(
        off.verdict_for(&s, TCP, 22).1,
        GLOBAL,
        "global still wins over nothing"
    );
    // Another project being allowed does not help.
    let others = Policy {
        self_declare: vec!["p1".into(), "billing".into()],
        ..declaring_policy()
    };
    assert_eq!(others.verdict_for(&s, TCP, 3306).1, DEFAULT);
    // Allowed by id, by name, or every project with "*".
    let declared = metadata_rule_name(KEY);
    for allowed in ["p7", "research", ANY_PROJECT] {
        let p = Policy {
            self_declare: vec![allowed.into()],
            ..declaring_policy()
        };
        assert!(
            p.may_self_declare(Some("p7"), Some("research")),
            "{allowed}"
        );
        assert_eq!(
            p.verdict_for(&s, TCP, 3306),
            (Verdict::Expected, Cow::Owned(declared.clone())),
            "{allowed}"
        );
    }
    // Names match exactly; a host without a project (a CIDR target) never self-declares.
    let p = Policy {
        self_declare: vec!["Research".into()],
        ..declaring_policy()
    };
    assert_eq!(p.verdict_for(&s, TCP, 3306).1, DEFAULT);
    let star = Policy {
        self_declare: vec![ANY_PROJECT.into()],
        ..declaring_policy()
    };
    assert!(!star.may_self_declare(None, None));
    let projectless = Subject {
        project_id: None,
        project_name: None,
        ..s
    };
    assert_eq!(star.verdict_for(&projectless, TCP, 3306).1, DEFAULT);
}

#[test]
fn an_allowed_declaration_never_overrides_an_operator_rule() {
    let everything = meta(&[(KEY, "1-65535")]);
    let p = Policy {
        self_declare: vec![ANY_PROJECT.into()],
        ..declaring_policy()
    };
    let s = vm(("p1", "one"), &everything);
    // The rule's deny wins over the declaration; its allow is what is named.
    assert_eq!(
        p.verdict_for(&s, TCP, 6379),
        (Verdict::Unexpected, "no-redis".into())
    );
    assert_eq!(
        p.verdict_for(&s, TCP, 9100),
        (Verdict::Expected, "monitoring".into())
    );
}

mod exceptions {
    use super::*;
    use crate::judge::exceptions::{Exception, HostSelector, Selectors};
    use crate::model::{finding_id, FindingKind, FindingState, Severity};

    fn finding(port: u16) -> Finding {
        Finding {
            id: finding_id("10.0.0.5", FindingKind::UnexpectedPort, "tcp/x"),
            kind: FindingKind::UnexpectedPort,
            key: format!("tcp/{port}"),
            host: "10.0.0.5".into(),
            address: ip("10.0.0.5"),
            group: "lan".into(),
            vm: None,
            protocol: Some(TCP),
            port: Some(port),
            cve: None,
            state: FindingState::Confirmed,
            severity: Severity::High,
            rule: DEFAULT.into(),
            evidence: String::new(),
            first_seen: 0.0,
            last_seen: 0.0,
            confirmed_at: None,
            resolved_at: None,
            stale_since: None,
            occurrence: 1,
            previous: Vec::new(),
            seen: 2,
            missed: 0,
            ack: None,
            trigger: Default::default(),
            detection_latency: None,
            history: Vec::new(),
        }
    }

    fn exception(name: &str, expires: UnixSeconds, ports: (u16, u16)) -> Exception {
        Exception {
            name: name.into(),
            reason: "accepted".into(),
            expires,
            owner: (name == "ftp").then(|| "team-files".into()),
            selectors: Selectors {
                host: Some(HostSelector::parse("10.0.0.5")),
                ports: Some(ports.0..=ports.1),
                ..Selectors::default()
            },
        }
    }

    fn policy() -> Policy {
        Policy {
            exceptions: vec![
                exception("old-ftp", 1_000.0, (21, 21)),
                exception("ftp", 2_000.0, (20, 21)),
                exception("everything-low", 3_000.0, (1, 1024)),
            ],
            ..Policy::default()
        }
    }

    #[test]
    fn the_first_unexpired_matching_exception_applies() {
        let p = policy();
        let name = |port, now| {
            p.exception_for(&finding(port), now)
                .map(|e| e.name.as_str())
        };
        assert_eq!(name(21, 500.0), Some("old-ftp"));
        assert_eq!(name(21, 1_000.0), Some("ftp"), "old-ftp expired at 1000");
        assert_eq!(name(22, 1_500.0), Some("everything-low"));
        assert_eq!(name(21, 2_500.0), Some("everything-low"));
        assert_eq!(name(21, 3_000.0), None, "all expired");
        assert_eq!(name(8080, 0.0), None, "nothing covers it");
        assert_eq!(p.expired_exceptions(0.0), 0);
        assert_eq!(p.expired_exceptions(1_000.0), 1);
        assert_eq!(p.expired_exceptions(2_999.0), 2);
        assert_eq!(p.expired_exceptions(3_000.0), 3);
    }

    #[test]
    fn the_summary_names_who_may_self_declare_and_every_exception() {
        let none = Policy::default().summary(0.0);
        assert!(
            none[0].contains("no VM may declare") && none[0].contains("metadata_key"),
            "{none:?}"
        );
        assert_eq!(none[1], "0 policy exception(s), 0 expired");
        let off = Policy {
            metadata_key: Some(KEY.into()),
            ..policy()
        };
        let lines = off.summary(1_500.0);
        assert!(
            lines[0].contains("policy.self_declare is empty"),
            "{lines:?}"
        );
        assert_eq!(lines[1], "3 policy exception(s), 1 expired");
        assert_eq!(
            lines[2],
            "  old-ftp: EXPIRED (no longer applies), expires 1970-01-01T00:16:40Z; covers host=10.0.0.5 port=21"
        );
        assert_eq!(
            lines[3],
            "  ftp: active, expires 1970-01-01T00:33:20Z, owner team-files; covers host=10.0.0.5 port=20-21"
        );
        let some = Policy {
            self_declare: vec!["p1".into(), "billing".into()],
            ..off.clone()
        };
        let l = &some.summary(0.0)[0];
        assert!(
            l.contains("these projects") && l.ends_with(": p1, billing"),
            "{l}"
        );
        assert!(l.contains(KEY), "{l}");
        let all = Policy {
            self_declare: vec![ANY_PROJECT.into()],
            ..off
        };
        assert!(all.summary(0.0)[0].contains("every project"));
    }
}
