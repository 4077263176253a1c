//! The port policy: which open ports are expected. Rules are checked in the order written; the first
//! rule that selects the host and names the port (in `allow` or `deny`) decides. Then the ports the
//! VM itself declares in its metadata (under [`Policy::metadata_key`]), then the global `expected`
//! list; anything else is unexpected by the `default` rule. Every verdict carries the name of the rule
//! that decided, so an operator can see why.
//!
//! A rule selects hosts by CIDR, target group, OpenStack project (id or name) and VM metadata; the
//! selectors are ANDed and an empty one selects every host. A host known only by its address (a CIDR
//! target) has no project and no metadata, so it never matches a rule that selects on either.

use crate::model::{Metadata, Protocol, Verdict};
use crate::ports::{PortMatcher, PortSpecError};
use ipnetwork::IpNetwork;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Name reported when the global `expected` list decided.
pub const GLOBAL: &str = "global";
/// Name reported when nothing allowed the port.
pub const DEFAULT: &str = "default";
/// Prefix of the name reported when the VM's own metadata declaration decided (`metadata:<key>`).
pub const METADATA_PREFIX: &str = "metadata:";
/// Metadata selector value meaning "the key is present, whatever its value".
pub const ANY_VALUE: &str = "*";

/// The name reported when the VM's metadata declaration under `key` decided.
pub fn metadata_rule_name(key: &str) -> String {
    format!("{METADATA_PREFIX}{key}")
}

/// The host a verdict is about, with what the inventory knows of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subject<'a> {
    pub address: IpAddr,
    /// The target group.
    pub group: &'a str,
    /// The OpenStack project (tenant) id, for cloud VMs.
    pub project_id: Option<&'a str>,
    pub project_name: Option<&'a str>,
    /// The VM's metadata, for cloud VMs.
    pub metadata: Option<&'a Metadata>,
}

impl<'a> Subject<'a> {
    /// A host known only by its address and target group (a CIDR target).
    pub fn address(address: IpAddr, group: &'a str) -> Subject<'a> {
        Subject {
            address,
            group,
            project_id: None,
            project_name: None,
            metadata: None,
        }
    }
}

/// One named rule. Selectors are ANDed; an empty selector selects every host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// Hosts whose address is inside any of these.
    pub cidrs: Vec<IpNetwork>,
    /// Hosts of any of these target groups.
    pub groups: Vec<String>,
    /// VMs of any of these projects, each matched exactly against the project's id or its name.
    pub projects: Vec<String>,
    /// VMs whose metadata has every one of these keys with that value ([`ANY_VALUE`] `*`: any value).
    pub metadata: BTreeMap<String, String>,
    /// Ports this rule expects.
    pub allow: PortMatcher,
    /// Ports this rule forbids (unexpected even where a later rule or the global list allows them).
    pub deny: PortMatcher,
}

impl Rule {
    fn selects(&self, s: &Subject<'_>) -> bool {
        let project = |p: &String| s.project_id == Some(p) || s.project_name == Some(p);
        let metadata = |m: &Metadata| {
            self.metadata.iter().all(|(k, want)| {
                m.get(k)
                    .is_some_and(|have| want == ANY_VALUE || have == want)
            })
        };
        (self.cidrs.is_empty() || self.cidrs.iter().any(|c| c.contains(s.address)))
            && (self.groups.is_empty() || self.groups.iter().any(|g| g == s.group))
            && (self.projects.is_empty() || self.projects.iter().any(project))
            && (self.metadata.is_empty() || s.metadata.is_some_and(metadata))
    }
}

/// The whole policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// Ports expected everywhere unless a rule says otherwise.
    pub expected: PortMatcher,
    /// The VM metadata key under which a VM declares its own expected ports (a port spec list such
    /// as `8080/tcp, 9100, 5000-5010/tcp`); `None` ignores declarations.
    pub metadata_key: Option<String>,
}

impl Policy {
    /// The verdict on one open port of a host known by address and target group, and the name of
    /// the rule that decided. Such a host has no project and no metadata.
    pub fn verdict(
        &self,
        address: IpAddr,
        group: &str,
        proto: Protocol,
        port: u16,
    ) -> (Verdict, &str) {
        let subject = Subject::address(address, group);
        self.by_rules(&subject, proto, port)
            .unwrap_or_else(|| self.by_global(proto, port))
    }

    /// The verdict on one open port of `subject`, and the name of the rule that decided: the named
    /// rules, then the VM's metadata declaration (`metadata:<key>`), then `global`, else `default`.
    pub fn verdict_for(
        &self,
        subject: &Subject<'_>,
        proto: Protocol,
        port: u16,
    ) -> (Verdict, Cow<'_, str>) {
        if let Some((v, name)) = self.by_rules(subject, proto, port) {
            return (v, Cow::Borrowed(name));
        }
        if let Some((key, Ok(declared))) = subject.metadata.and_then(|m| self.declared(m)) {
            if declared.contains(proto, port) {
                return (Verdict::Expected, Cow::Owned(metadata_rule_name(key)));
            }
        }
        let (v, name) = self.by_global(proto, port);
        (v, Cow::Borrowed(name))
    }

    /// What is wrong with the VM's port declaration, if it has one that does not parse (it is then
    /// ignored by [`Policy::verdict_for`]); for the caller to log or count.
    pub fn metadata_problem(&self, metadata: &Metadata) -> Option<String> {
        match self.declared(metadata)? {
            (_, Ok(_)) => None,
            (key, Err(e)) => Some(format!(
                "VM metadata {key:?} is ignored: {e}; fix the value, e.g. \"8080/tcp, 9100, 5000-5010/tcp\""
            )),
        }
    }

    /// The VM's declaration under `metadata_key`, parsed, with the key; `None` without one.
    fn declared<'m>(
        &'m self,
        metadata: &Metadata,
    ) -> Option<(&'m str, Result<PortMatcher, PortSpecError>)> {
        let key = self.metadata_key.as_deref()?;
        let value = metadata.get(key)?;
        let pieces: Vec<&str> = value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        Some((key, PortMatcher::parse(&pieces)))
    }

    fn by_rules(
        &self,
        subject: &Subject<'_>,
        proto: Protocol,
        port: u16,
    ) -> Option<(Verdict, &str)> {
        for rule in &self.rules {
            if !rule.selects(subject) {
                continue;
            }
            if rule.deny.contains(proto, port) {
                return Some((Verdict::Unexpected, &rule.name));
            }
            if rule.allow.contains(proto, port) {
                return Some((Verdict::Expected, &rule.name));
            }
        }
        None
    }

    fn by_global(&self, proto: Protocol, port: u16) -> (Verdict, &'static str) {
        if self.expected.contains(proto, port) {
            (Verdict::Expected, GLOBAL)
        } else {
            (Verdict::Unexpected, DEFAULT)
        }
    }
}

#[cfg(test)]
mod tests {
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
}
