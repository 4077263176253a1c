//! Exports the health of each cloud inventory source: `stinger_inventory_up`,
//! `stinger_inventory_last_success_timestamp_seconds`, `stinger_inventory_duration_seconds`,
//! `stinger_inventory_vms`, `stinger_inventory_targets`, `stinger_vm_diagnostics_failed` (by
//! reason), `stinger_inventory_drift_total` and `stinger_inventory_names_complete`. Series are per
//! source (and reason), so their number follows the configuration, not API input.

use super::{counters, flag, gauges};
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Encodes the per-source families.
#[derive(Debug)]
pub(crate) struct Inventory {
    pub(super) state: Arc<State>,
}

impl Collector for Inventory {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        let enc = &mut enc;
        let secs = Some(&Unit::Seconds);
        // A source known only from stored VMs (before its first inventory in this process) still
        // has its VMs counted.
        let sources: BTreeSet<&str> = view
            .sources
            .keys()
            .map(String::as_str)
            .chain(view.vms.values().map(|v| v.cloud.as_str()))
            .collect();
        let src = |s: &str| [("source", s.to_owned())];
        gauges(
            enc,
            "inventory_up",
            "Whether the last inventory of the source succeeded (1) or failed (0); while it fails the last good inventory is scanned",
            None,
            view.sources.iter().map(|(s, st)| (src(s), flag(st.up))),
        )?;
        gauges(
            enc,
            "inventory_last_success_timestamp",
            "When the last successful inventory of the source finished, in Unix seconds (0 = never)",
            secs,
            view.sources
                .iter()
                .map(|(s, st)| (src(s), st.last_success.unwrap_or(0.0))),
        )?;
        gauges(
            enc,
            "inventory_duration",
            "How long the last successful inventory of the source took (sources that had one)",
            secs,
            view.sources
                .iter()
                .filter(|(_, st)| st.last_success.is_some())
                .map(|(s, st)| (src(s), st.duration)),
        )?;
        gauges(
            enc,
            "inventory_vms",
            "VMs the source's last good inventory listed",
            None,
            sources.iter().map(|s| {
                let n = view.vms.values().filter(|v| v.cloud == *s).count();
                (src(s), n as f64)
            }),
        )?;
        gauges(
            enc,
            "inventory_targets",
            "Addresses to scan that the source's last good inventory produced",
            None,
            view.sources
                .iter()
                .map(|(s, st)| (src(s), st.targets as f64)),
        )?;
        gauges(
            enc,
            "vm_diagnostics_failed",
            "VMs whose diagnostics the source's last good inventory could not get, by reason (forbidden: 403, admin only; conflict: 409, not running; not_implemented: 501, driver; failed: anything else)",
            None,
            view.sources.iter().flat_map(|(s, st)| {
                st.diagnostics.failures().into_iter().map(move |(reason, n)| {
                    (
                        [("source", s.clone()), ("reason", reason.to_owned())],
                        n as f64,
                    )
                })
            }),
        )?;
        counters(
            enc,
            "inventory_drift",
            "Differences (VMs and scanned addresses added, gone or changed) full inventories of the source found from what its change polls had kept, since start; should stay 0",
            None,
            view.sources.iter().map(|(s, st)| (src(s), st.drift as f64)),
        )?;
        gauges(
            enc,
            "inventory_names_complete",
            "Whether Keystone let the source's last good inventory name every project and user (1), or ids stand in for some (0)",
            None,
            view.sources
                .iter()
                .map(|(s, st)| (src(s), flag(st.names_complete))),
        )
    }
}
