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
        let progress = Stage::WITH_PROGRESS.map(|s| {
            let ratio = self.state.progress(s).map_or(0.0, |p| p.ratio());
            ([("stage", s.as_str())], ratio)
        });
        gauges(
            &mut enc,
            "scan_progress_ratio",
            "How far the running stage is, 0 to 1 (discovery: probes done; services: nmap's own estimate); 0 when idle",
            None,
            progress,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    fn scrape(state: &Arc<State>) -> String {
        let mut reg = prometheus_client::registry::Registry::with_prefix("stinger");
        reg.register_collector(Box::new(Stages {
            state: state.clone(),
        }));
        crate::expose::encode_metrics(&reg, false).unwrap()
    }

    fn ratio(text: &str, stage: &str) -> Option<f64> {
        let series = format!("stinger_scan_progress_ratio{{stage=\"{stage}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str())?.parse().ok())
    }

    #[test]
    fn every_stage_with_progress_has_a_series_and_a_running_one_shows_its_own_measure() {
        let state = Arc::new(State::default());
        let idle = scrape(&state);
        for s in Stage::WITH_PROGRESS {
            assert_eq!(ratio(&idle, s.as_str()), Some(0.0), "{s} idle:\n{idle}");
        }
        let probes = Arc::new(crate::scan::Progress::default());
        probes.total.store(8, Ordering::Relaxed);
        probes.done.store(2, Ordering::Relaxed);
        state.set_progress(Stage::Discovery, Some(probes));
        let gvmd = Arc::new(crate::scan::gmp::Progress::default());
        gvmd.percent.store(40, Ordering::Relaxed);
        state.set_progress(Stage::Vulnerabilities, Some(gvmd));
        let running = scrape(&state);
        assert_eq!(ratio(&running, "discovery"), Some(0.25));
        assert_eq!(ratio(&running, "vulnerabilities"), Some(0.4));
        assert_eq!(ratio(&running, "services"), Some(0.0));
        state.set_progress(Stage::Discovery, None);
        assert_eq!(ratio(&scrape(&state), "discovery"), Some(0.0));
        assert!(state.progress(Stage::Vulnerabilities).is_some());
    }
}
