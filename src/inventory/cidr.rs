//! Static CIDR target lists → addresses: expansion, exclusions, a size cap, and de-duplication across
//! groups (an address belongs to the first group that lists it); and the `[[targets]]` groups as one
//! inventory [`Source`] ([`CidrGroups`]).

use super::scope::Origin;
use super::{Error, Fetching, GroupTargets, Inventory, Report, Source, TargetGroup, Unit};
use crate::model::{Target, UnixSeconds};
use ipnetwork::IpNetwork;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use tokio_util::sync::CancellationToken;

pub fn size(net: &IpNetwork) -> u128 {
    match net {
        IpNetwork::V4(n) => 1u128 << (32 - n.prefix() as u32),
        IpNetwork::V6(n) => {
            let bits = 128 - n.prefix() as u32;
            if bits >= 128 {
                u128::MAX
            } else {
                1u128 << bits
            }
        }
    }
}

/// Expand groups into addresses: every address of `include` not inside any `exclude`, at most
/// `max_hosts` per group (checked before anything is allocated). An address listed by several groups
/// is scanned once, as part of the first.
pub fn expand(groups: &[TargetGroup], max_hosts: u64) -> Result<Vec<GroupTargets>, Error> {
    let mut seen: HashSet<IpAddr> = HashSet::new();
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let count: u128 = g.include.iter().map(size).fold(0u128, u128::saturating_add);
        if count > max_hosts as u128 {
            return Err(Error::TooManyHosts {
                group: g.name.clone(),
                count,
                limit: max_hosts,
            });
        }
        let mut addresses = Vec::new();
        for net in &g.include {
            for addr in net.iter() {
                if g.exclude.iter().any(|x| x.contains(addr)) {
                    continue;
                }
                if seen.insert(addr) {
                    addresses.push(addr);
                }
            }
        }
        out.push(GroupTargets {
            name: g.name.clone(),
            addresses,
            ports: g.ports.clone(),
        });
    }
    Ok(out)
}

/// Every `[[targets]]` group of the configuration, as one source. One for all, not one per group:
/// the groups are expanded together (an address several groups list is scanned once, as part of the
/// first), and a group over `max_hosts` fails the whole expansion, as it always has (a failed
/// expansion fails the pass). Static: no VMs, no health, no change polls; taken afresh for every
/// pass, so the groups always follow the configuration.
#[derive(Debug, Clone)]
pub(crate) struct CidrGroups {
    groups: Vec<TargetGroup>,
    max_hosts: u64,
}

impl CidrGroups {
    pub(crate) fn new(groups: Vec<TargetGroup>, max_hosts: u64) -> CidrGroups {
        CidrGroups { groups, max_hosts }
    }
}

impl Source for CidrGroups {
    /// For logs only: the groups' targets and units carry their own names.
    fn name(&self) -> &str {
        "[[targets]]"
    }

    fn kind(&self) -> &'static str {
        "CIDR"
    }

    fn origin(&self) -> Origin {
        Origin::Config
    }

    fn inventory<'a>(
        &'a self,
        _first_seen: &'a BTreeMap<String, UnixSeconds>,
        _cancel: &'a CancellationToken,
    ) -> Fetching<'a> {
        let result = expand(&self.groups, self.max_hosts).map(|groups| {
            let targets = groups
                .iter()
                .flat_map(|g| {
                    g.addresses
                        .iter()
                        .map(|a| (None, Target::address(*a, &g.name)))
                })
                .collect();
            let inventory = Inventory {
                vms: Vec::new(),
                targets,
            };
            (inventory, Report::default())
        });
        Box::pin(std::future::ready(Some(result)))
    }

    /// One unit per group, in the configuration's order (a group whose every address is excluded
    /// or claimed by an earlier one still has its empty unit), from the agent's own namespace.
    fn units(&self, targets: &[(Option<String>, Target)]) -> Vec<Unit> {
        let mut by_group: HashMap<&str, Vec<Target>> = HashMap::new();
        for (_, t) in targets {
            by_group
                .entry(t.group.as_str())
                .or_default()
                .push(t.clone());
        }
        self.groups
            .iter()
            .map(|g| Unit {
                group: g.name.clone(),
                namespace: None,
                targets: by_group.remove(g.name.as_str()).unwrap_or_default(),
                ports: g.ports.clone(),
                origin: self.origin(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::PortList;

    fn group(name: &str, inc: &[&str], exc: &[&str]) -> TargetGroup {
        TargetGroup {
            name: name.into(),
            include: inc.iter().map(|s| s.parse().unwrap()).collect(),
            exclude: exc.iter().map(|s| s.parse().unwrap()).collect(),
            ports: PortList::parse("22").unwrap(),
        }
    }

    #[test]
    fn expands_minus_exclusions() {
        let g = group("a", &["127.0.5.0/29"], &["127.0.5.3/32", "127.0.5.6/31"]);
        let out = expand(&[g], 1000).unwrap();
        let got: Vec<String> = out[0].addresses.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            got,
            [
                "127.0.5.0",
                "127.0.5.1",
                "127.0.5.2",
                "127.0.5.4",
                "127.0.5.5"
            ]
        );
    }

    #[test]
    fn first_group_claims_an_address() {
        let a = group("a", &["127.0.5.1/32"], &[]);
        let b = group("b", &["127.0.5.0/30"], &[]);
        let out = expand(&[a, b], 1000).unwrap();
        assert_eq!(out[0].addresses.len(), 1);
        assert_eq!(out[1].addresses.len(), 3);
        assert!(!out[1].addresses.contains(&"127.0.5.1".parse().unwrap()));
    }

    #[test]
    fn caps_group_size_before_allocating() {
        let g = group("huge", &["2001:db8::/32"], &[]);
        let e = expand(&[g], 65536).unwrap_err().to_string();
        assert!(e.contains("huge") && e.contains("max_hosts"), "{e}");
        let g = group("v6", &["::1/128"], &[]);
        assert_eq!(expand(&[g], 1).unwrap()[0].addresses.len(), 1);
    }
}
