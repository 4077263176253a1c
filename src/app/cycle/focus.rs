//! A targeted pass's scope: the targets (and ports) it scans, when what made each worth a look
//! happened, and the VMs whose hosts leave; how it narrows the units and keeps what it did not probe.

use super::{Observed, Unit};
use crate::model::{HostState, Protocol, UnixSeconds};
use std::collections::{BTreeMap, HashSet};

/// A targeted pass (an on-demand scan): only these targets, and only these TCP ports when given.
/// It changes no other host: nothing leaves the state for being absent from it, and ports it did
/// not probe keep their state.
#[derive(Debug, Clone, Default)]
pub struct Focus {
    /// Target ids (as in the inventory).
    pub hosts: HashSet<String>,
    /// TCP ports to probe instead of each group's; `None`: the group's.
    pub ports: Option<crate::ports::PortList>,
    /// When what made each host worth a look happened (the cloud's `updated_at` of an exposing
    /// change, or the request): a finding confirmed on it now was found that long after.
    pub since: BTreeMap<String, UnixSeconds>,
    /// Cloud VMs the cloud deleted: their hosts leave the state (with the usual last event).
    pub gone: HashSet<String>,
}

impl Focus {
    /// Keep only the focused targets, with the focused ports; drop units left empty.
    pub(super) fn narrow(&self, units: &mut Vec<Unit>) {
        for unit in units.iter_mut() {
            unit.targets.retain(|t| self.hosts.contains(&t.id));
            if let Some(p) = &self.ports {
                unit.ports = p.clone();
            }
        }
        units.retain(|u| !u.targets.is_empty());
    }

    /// Open TCP ports of the last state that this pass did not probe stay open: a pass over a few
    /// ports says nothing of the others.
    pub(super) fn carry_over(&self, observed: &mut [Observed], prev: &BTreeMap<String, HostState>) {
        let Some(probed) = &self.ports else {
            return;
        };
        for o in observed.iter_mut() {
            let Some(h) = prev.get(&o.target.id) else {
                continue;
            };
            let before = o.obs.open.len();
            o.obs.open.extend(
                h.ports
                    .iter()
                    .filter(|p| p.protocol == Protocol::Tcp && !probed.ports().contains(&p.port))
                    .map(|p| p.port),
            );
            if o.obs.open.len() != before {
                o.obs.open.sort_unstable();
                o.obs.open.dedup();
                // Not probed now: neither open nor probed in this pass's counts (`judge::tarpit`).
                o.obs.carried =
                    u32::try_from(o.obs.open.len().saturating_sub(before)).unwrap_or(u32::MAX);
            }
        }
    }
}
