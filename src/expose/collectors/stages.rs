//! Exports the health of each stage: `stinger_scan_run_success`,
//! `stinger_scan_last_success_timestamp_seconds`, `stinger_scan_interval_seconds`,
//! `stinger_scan_in_progress` and `stinger_scan_progress_ratio` (how far a running discovery,
//! service detection or vulnerability scan is).

use super::{flag, gauges};
use crate::model::Stage;
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Encodes the per-stage families.
#[derive(Debug)]
pub(crate) struct Stages {
    pub(super) state: Arc<State>,
}

impl Collector for Stages {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        let secs = Some(&Unit::Seconds);
        let stage = |s: &Stage| [("stage", s.as_str())];
        gauges(
            &mut enc,
            "scan_run_success",
            "Whether the last finished run of the stage succeeded (1) or not (0)",
            None,
            view.stages
                .iter()
                .filter_map(|(s, st)| st.last_ok.map(|ok| (stage(s), flag(ok)))),
        )?;
        gauges(
            &mut enc,
            "scan_last_success_timestamp",
            "When the stage last finished successfully, in Unix seconds (0 = never)",
            secs,
            view.stages
                .iter()
                .map(|(s, st)| (stage(s), st.last_success.unwrap_or(0.0))),
        )?;
        gauges(
            &mut enc,
            "scan_interval",
            "Configured interval between runs of the stage",
            secs,
            view.stages
                .iter()
                .map(|(s, st)| (stage(s), st.interval.as_secs_f64())),
        )?;
        gauges(
            &mut enc,
            "scan_in_progress",
            "Whether a run of the stage is in progress",
            None,
            view.stages
                .iter()
                .map(|(s, st)| (stage(s), flag(st.in_progress))),
        )?;
        let discovery = self.state.progress().map_or(0.0, |p| p.ratio());
        let services = self
            .state
            .services_progress()
            .map_or(0.0, |p| (p.percent() / 100.0).clamp(0.0, 1.0));
        let vulnerabilities = self.state.gmp_progress().map_or(0.0, |p| {
            let pct = p.percent.load(Ordering::Relaxed);
            (pct.max(0) as f64 / 100.0).clamp(0.0, 1.0)
        });
        gauges(
            &mut enc,
            "scan_progress_ratio",
            "How far the running stage is, 0 to 1 (discovery: probes done; services: nmap's own estimate); 0 when idle",
            None,
            [
                ([("stage", Stage::Discovery.as_str())], discovery),
                ([("stage", Stage::Services.as_str())], services),
                ([("stage", Stage::Vulnerabilities.as_str())], vulnerabilities),
            ],
        )
    }
}
