//! Exports the coverage of each target group: `stinger_targets`, `stinger_targets_scanned`
//! (addresses whose last successful scan is within the discovery interval),
//! `stinger_group_last_scan_timestamp_seconds` and `stinger_targets_out_of_scope` (what `[scope]`
//! kept out of the last pass).

use super::gauges;
use crate::model::now;
use crate::state::{GroupStatus, State};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use std::sync::Arc;

/// Encodes the per-group coverage families.
#[derive(Debug)]
pub(crate) struct Coverage {
    pub(super) state: Arc<State>,
}

impl Collector for Coverage {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let t = now();
        let view = self.state.read();
        let group = |g: &GroupStatus| [("group", g.name.clone())];
        gauges(
            &mut enc,
            "targets",
            "Addresses in the inventory, by target group",
            None,
            view.groups.iter().map(|g| (group(g), g.targets as f64)),
        )?;
        gauges(
            &mut enc,
            "targets_scanned",
            "Addresses of the group whose last successful scan is within the discovery interval",
            None,
            view.groups.iter().map(|g| {
                let n = if view.group_is_fresh(g, t) {
                    g.targets
                } else {
                    0
                };
                (group(g), n as f64)
            }),
        )?;
        gauges(
            &mut enc,
            "group_last_scan_timestamp",
            "When the last successful scan of the group finished, in Unix seconds (0 = never)",
            Some(&Unit::Seconds),
            view.groups
                .iter()
                .map(|g| (group(g), g.last_success.unwrap_or(0.0))),
        )?;
        gauges(
            &mut enc,
            "targets_out_of_scope",
            "Addresses the group's inventory named at the last pass that [scope] kept out of every stage, by reason (excluded, not_allowed, or the kind of special address a cloud named)",
            None,
            view.out_of_scope
                .iter()
                .map(|(g, reason, n)| ([("group", g.as_str()), ("reason", reason)], *n as f64)),
        )
    }
}
