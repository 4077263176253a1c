//! The port policy: which open ports are expected. Rules are checked in the order written; the first
//! rule that selects the host and names the port (in `allow` or `deny`) decides. Then the global
//! `expected` list; anything else is unexpected by the `default` rule. Every verdict carries the name
//! of the rule that decided, so an operator can see why.

use crate::model::{Protocol, Verdict};
use crate::ports::PortMatcher;
use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// Name reported when the global `expected` list decided.
pub const GLOBAL: &str = "global";
/// Name reported when nothing allowed the port.
pub const DEFAULT: &str = "default";

/// One named rule. Selectors are ANDed; an empty selector list selects every host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// Hosts whose address is inside any of these.
    pub cidrs: Vec<IpNetwork>,
    /// Hosts of any of these target groups.
    pub groups: Vec<String>,
    /// Ports this rule expects.
    pub allow: PortMatcher,
    /// Ports this rule forbids (unexpected even where a later rule or the global list allows them).
    pub deny: PortMatcher,
}

impl Rule {
    fn selects(&self, address: IpAddr, group: &str) -> bool {
        (self.cidrs.is_empty() || self.cidrs.iter().any(|c| c.contains(address)))
            && (self.groups.is_empty() || self.groups.iter().any(|g| g == group))
    }
}

/// The whole policy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// Ports expected everywhere unless a rule says otherwise.
    pub expected: PortMatcher,
}

impl Policy {
    /// The verdict on one open port and the name of the rule that decided.
    pub fn verdict(
        &self,
        address: IpAddr,
        group: &str,
        proto: Protocol,
        port: u16,
    ) -> (Verdict, &str) {
        for rule in &self.rules {
            if !rule.selects(address, group) {
                continue;
            }
            if rule.deny.contains(proto, port) {
                return (Verdict::Unexpected, &rule.name);
            }
            if rule.allow.contains(proto, port) {
                return (Verdict::Expected, &rule.name);
            }
        }
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

    fn policy() -> Policy {
        Policy {
            rules: vec![
                Rule {
                    name: "no-telnet-in-dmz".into(),
                    cidrs: vec!["10.1.0.0/16".parse().unwrap()],
                    deny: PortMatcher::parse(&["22"]).unwrap(),
                    ..Rule::default()
                },
                Rule {
                    name: "databases".into(),
                    groups: vec!["db".into()],
                    allow: PortMatcher::parse(&["5432"]).unwrap(),
                    ..Rule::default()
                },
            ],
            expected: PortMatcher::parse(&["22", "80", "443"]).unwrap(),
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
}
