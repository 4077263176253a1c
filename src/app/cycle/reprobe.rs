//! Confirmation both ways, in the same pass: right after a unit's TCP scan, every port that changed
//! since the host's last state is probed once more — a newly open port must answer again to count
//! as open (a blip is dropped), and a port open before that did not answer must stay silent to
//! count as closed (a lost SYN keeps it open). Only hosts that answered something are re-probed: a
//! host that answered nothing is unreachable, and the judge keeps its ports; nor is one that
//! answers everything (`judge::tarpit`), whose ports get no records. Probes go to the same
//! addresses, from the same namespace, with the same rate limits as the scan that found them.

use super::Unit;
use crate::judge;
use crate::model::{HostState, Protocol};
use crate::scan::{self, Progress};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What the re-probes of one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Newly open ports that answered again (confirmed).
    pub confirmed: u64,
    /// Newly open ports that did not answer again (dropped as a blip).
    pub transient: u64,
    /// Ports open before, silent in the scan, that answered the re-probe (kept open).
    pub recovered: u64,
    /// Ports open before that stayed silent (closed in this pass).
    pub gone: u64,
}

impl Counts {
    pub fn add(&mut self, o: Counts) {
        self.confirmed += o.confirmed;
        self.transient += o.transient;
        self.recovered += o.recovered;
        self.gone += o.gone;
    }
}

/// The ports of each address worth a second look: (newly open, missing since last time).
fn wanted(
    unit: &Unit,
    addresses: &[IpAddr],
    out: &scan::tcp::Output,
    prev: &BTreeMap<String, HostState>,
) -> BTreeMap<IpAddr, (BTreeSet<u16>, BTreeSet<u16>)> {
    let scanned: BTreeSet<u16> = unit.ports.ports().iter().copied().collect();
    let mut want: BTreeMap<IpAddr, (BTreeSet<u16>, BTreeSet<u16>)> = BTreeMap::new();
    for t in &unit.targets {
        let Ok(i) = addresses.binary_search(&t.address) else {
            continue;
        };
        let Some(obs) = out.hosts.get(i) else {
            continue;
        };
        // Nor a host that answers everything: no port record would keep the answer (1-65535
        // would be probed twice a pass).
        if !obs.is_up() || judge::tarpit::answers_everything(obs, prev.get(&t.id)) {
            continue;
        }
        let before: BTreeSet<u16> = prev.get(&t.id).map_or_else(BTreeSet::new, |h| {
            h.ports
                .iter()
                .filter(|p| p.protocol == Protocol::Tcp)
                .map(|p| p.port)
                .collect()
        });
        let now: BTreeSet<u16> = obs.open.iter().copied().collect();
        let entry = want.entry(t.address).or_default();
        entry.0.extend(now.difference(&before));
        entry
            .1
            .extend(before.difference(&now).filter(|p| scanned.contains(p)));
    }
    want.retain(|_, (new, missing)| !new.is_empty() || !missing.is_empty());
    want
}

/// Re-probe the changed ports of one unit's scan result and fold the answers into `out`.
/// `addresses` is sorted and index-aligned with `out.hosts`. A failed re-probe keeps the scan's
/// answer (and says so in the log).
pub(super) async fn unit(
    unit: &Unit,
    addresses: &[IpAddr],
    out: &mut scan::tcp::Output,
    prev: &BTreeMap<String, HostState>,
    settings: &scan::TcpSettings,
    fd_limit: u64,
    cancel: &CancellationToken,
) -> Counts {
    let mut counts = Counts::default();
    let want = wanted(unit, addresses, out, prev);
    if want.is_empty() {
        return counts;
    }
    // One scan per distinct port set (most hosts that changed share one or two ports).
    let mut by_ports: BTreeMap<Vec<u16>, Vec<IpAddr>> = BTreeMap::new();
    for (address, (new, missing)) in &want {
        let ports: Vec<u16> = new.union(missing).copied().collect();
        by_ports.entry(ports).or_default().push(*address);
    }
    let mut open_now: BTreeMap<IpAddr, BTreeSet<u16>> = BTreeMap::new();
    for (ports, hosts) in by_ports {
        let progress = Arc::new(Progress::default());
        let result = match &unit.namespace {
            None => {
                scan::tcp_scan(&hosts, &ports, settings, fd_limit, progress, cancel.clone()).await
            }
            Some(ns) => {
                scan::netns::scan_in(
                    ns,
                    hosts.clone(),
                    ports.clone(),
                    settings.clone(),
                    fd_limit,
                    progress,
                    cancel.clone(),
                )
                .await
            }
        };
        match result {
            Ok(o) => {
                for (address, obs) in hosts.iter().zip(o.hosts) {
                    open_now.insert(*address, obs.open.into_iter().collect());
                }
            }
            Err(e) => {
                tracing::warn!(group = %unit.group, error = %e, "re-probe failed; keeping what the scan saw");
                return counts;
            }
        }
    }
    for (address, (new, missing)) in want {
        let (Ok(i), Some(again)) = (addresses.binary_search(&address), open_now.get(&address))
        else {
            continue;
        };
        let Some(obs) = out.hosts.get_mut(i) else {
            continue;
        };
        for p in &new {
            if again.contains(p) {
                counts.confirmed += 1;
            } else {
                counts.transient += 1;
                obs.open.retain(|o| o != p);
                tracing::debug!(%address, port = p, "newly open port did not answer its re-probe: not counted");
            }
        }
        for p in &missing {
            if again.contains(p) {
                counts.recovered += 1;
                if let Err(at) = obs.open.binary_search(p) {
                    obs.open.insert(at, *p);
                }
            } else {
                counts.gone += 1;
            }
        }
    }
    counts
}
