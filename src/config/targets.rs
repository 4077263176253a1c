//! `[[targets]]`, `[scope]` and the host limit: the CIDR target groups as the inventory takes them,
//! and the one filter every address passes before any stage may send to it.

use super::file::{ScopeFile, TargetFile};
use super::openstack::OpenStackFile;
use super::Problem;
use crate::inventory::scope::Scope;
use crate::inventory::TargetGroup;
use std::collections::HashSet;

/// What the target sections build.
#[derive(Debug, Clone)]
pub(crate) struct Targets {
    pub(crate) groups: Vec<TargetGroup>,
    pub(crate) scope: Scope,
    pub(crate) max_hosts: u64,
}

/// Validate the target groups (something to scan, unique names, addresses and ports in each) and
/// build them with `[scope]` and `max_hosts` (`scan.tcp.max_hosts`, checked with `[scan.tcp]`).
pub(crate) fn build(
    targets: &[TargetFile],
    clouds: &[OpenStackFile],
    scope: &ScopeFile,
    (max_hosts, max_total_hosts): (u64, u64),
    problems: &mut Vec<Problem>,
) -> Option<Targets> {
    let before = problems.len();
    let mut problem = |key: String, message: String| problems.push(Problem { key, message });
    if targets.is_empty() && clouds.is_empty() {
        problem(
            "targets".into(),
            "nothing to scan; add a [[targets]] group with a name and cidrs, or an [[openstack]] cloud"
                .into(),
        );
    }
    let mut names = HashSet::new();
    for (i, t) in targets.iter().enumerate() {
        let key = format!("targets[{i}]");
        if t.name.trim().is_empty() {
            problem(format!("{key}.name"), "must not be empty".into());
        } else if !names.insert(t.name.clone()) {
            problem(
                format!("{key}.name"),
                format!(
                    "{:?} is used by another target group; names must be unique",
                    t.name
                ),
            );
        }
        if t.cidrs.is_empty() {
            problem(
                format!("{key}.cidrs"),
                "lists no addresses; give CIDRs or single addresses".into(),
            );
        }
        if t.ports.0.is_empty() {
            problem(format!("{key}.ports"), "lists no ports".into());
        }
        let count = group_size(t);
        if count > u128::from(max_hosts) {
            problem(
                format!("{key}.cidrs"),
                format!(
                    "name {count} addresses, more than scan.tcp.max_hosts ({max_hosts}); split the group or raise max_hosts"
                ),
            );
        }
    }
    let total = targets
        .iter()
        .map(group_size)
        .fold(0u128, u128::saturating_add);
    if total > u128::from(max_total_hosts) {
        problem(
            "targets".into(),
            format!(
                "the target groups name {total} addresses together, more than scan.tcp.max_total_hosts ({max_total_hosts}); scan fewer or raise max_total_hosts"
            ),
        );
    }
    if problems.len() != before {
        return None;
    }
    Some(Targets {
        groups: targets
            .iter()
            .map(|t| TargetGroup {
                name: t.name.clone(),
                include: t.cidrs.clone(),
                exclude: t.exclude.clone(),
                ports: t.ports.0.clone(),
            })
            .collect(),
        scope: Scope {
            allow: scope.allow.clone(),
            exclude: scope.exclude.clone(),
        },
        max_hosts,
    })
}

/// A cloud must not share its group name with a `[[targets]]` group.
pub(crate) fn check_cloud_names(
    targets: &[TargetFile],
    clouds: &[OpenStackFile],
    problems: &mut Vec<Problem>,
) {
    for o in clouds {
        if targets.iter().any(|t| t.name == o.name) {
            problems.push(Problem {
                key: "openstack".into(),
                message: format!(
                    "{:?} names a [[targets]] group too; group names must be unique",
                    o.name
                ),
            });
        }
    }
}

/// Addresses a group's CIDRs name (before exclusions).
fn group_size(t: &TargetFile) -> u128 {
    t.cidrs
        .iter()
        .map(crate::inventory::size)
        .fold(0u128, u128::saturating_add)
}
