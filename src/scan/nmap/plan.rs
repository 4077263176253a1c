//! Batch planning: the jobs' hosts grouped into nmap processes of one address family, hosts
//! with identical port lists together, each process's port list kept small.

use super::Job;
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Ports of one host per nmap process (keeps the -p argument far below the 128 KiB limit).
pub(super) const MAX_PORTS_PER_UNIT: usize = 4096;
/// Largest union port list when hosts with different lists share a batch.
const MAX_UNION_PORTS: usize = 1024;

/// One nmap process: same-family hosts, each with the TCP ports its job asked for.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Batch {
    pub(super) index: usize,
    /// Which [`super::Scope`] (network namespace) of the run its hosts belong to.
    pub(super) scope: usize,
    pub(super) ipv6: bool,
    pub(super) hosts: BTreeMap<IpAddr, Vec<u16>>,
    /// Union of the hosts' ports: what nmap is told to scan.
    pub(super) tcp_ports: Vec<u16>,
}

impl Batch {
    fn new(ipv6: bool) -> Self {
        Batch {
            index: 0,
            scope: 0,
            ipv6,
            hosts: BTreeMap::new(),
            tcp_ports: Vec::new(),
        }
    }

    fn add(&mut self, addr: IpAddr, ports: &[u16]) {
        self.hosts.insert(addr, ports.to_vec());
        let union: BTreeSet<u16> = self.tcp_ports.iter().chain(ports).copied().collect();
        self.tcp_ports = union.into_iter().collect();
    }

    fn union_len_with(&self, ports: &[u16]) -> usize {
        self.tcp_ports.len()
            + ports
                .iter()
                .filter(|p| self.tcp_ports.binary_search(p).is_err())
                .count()
    }
}

/// The batches of every scope, numbered across all of them: each scope is planned on its own
/// (a batch never mixes network namespaces, so one address can be in several scopes).
pub(super) fn plan_scopes(
    scopes: &[super::Scope<'_>],
    batch_hosts: usize,
    udp: bool,
) -> Vec<Batch> {
    let mut batches = Vec::new();
    for (i, s) in scopes.iter().enumerate() {
        batches.extend(plan(s.jobs, batch_hosts, udp).into_iter().map(|mut b| {
            b.scope = i;
            b
        }));
    }
    for (i, b) in batches.iter_mut().enumerate() {
        b.index = i;
    }
    batches
}

/// Hosts with identical port lists share batches; the rest of each group is packed into mixed
/// batches whose union stays small. Hosts with nothing to scan are left out.
pub(super) fn plan(jobs: &[Job], batch_hosts: usize, udp: bool) -> Vec<Batch> {
    let batch_hosts = batch_hosts.max(1);
    let mut merged: BTreeMap<IpAddr, BTreeSet<u16>> = BTreeMap::new();
    for j in jobs {
        merged
            .entry(j.address)
            .or_default()
            .extend(j.tcp_ports.iter().filter(|&&p| p != 0));
    }
    let mut groups: BTreeMap<(bool, Vec<u16>), Vec<IpAddr>> = BTreeMap::new();
    for (addr, ports) in merged {
        if ports.is_empty() && !udp {
            continue;
        }
        let ports: Vec<u16> = ports.into_iter().collect();
        let chunks: Vec<&[u16]> = if ports.is_empty() {
            vec![&[]]
        } else {
            ports.chunks(MAX_PORTS_PER_UNIT).collect()
        };
        for chunk in chunks {
            groups
                .entry((addr.is_ipv6(), chunk.to_vec()))
                .or_default()
                .push(addr);
        }
    }
    let mut batches = Vec::new();
    let mut mixed: Option<Batch> = None;
    for ((ipv6, ports), addrs) in groups {
        let mut rest: &[IpAddr] = &addrs;
        while rest.len() >= batch_hosts {
            let (full, tail) = rest.split_at(batch_hosts);
            let mut b = Batch::new(ipv6);
            full.iter().for_each(|&a| b.add(a, &ports));
            batches.push(b);
            rest = tail;
        }
        if rest.is_empty() {
            continue;
        }
        let fits = mixed.as_ref().is_some_and(|m| {
            m.ipv6 == ipv6
                && m.hosts.len() + rest.len() <= batch_hosts
                && m.union_len_with(&ports) <= MAX_UNION_PORTS
                && rest.iter().all(|a| !m.hosts.contains_key(a))
        });
        if !fits {
            batches.extend(mixed.take());
        }
        let m = mixed.get_or_insert_with(|| Batch::new(ipv6));
        rest.iter().for_each(|&a| m.add(a, &ports));
    }
    batches.extend(mixed);
    for (i, b) in batches.iter_mut().enumerate() {
        b.index = i;
    }
    batches
}
