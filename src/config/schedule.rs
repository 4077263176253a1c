//! `[schedule]`: how often discovery runs, and the random delay added to each pass.

use super::file::ScheduleFile;
use super::Problem;
use std::time::Duration;

/// The discovery interval and its jitter, validated.
pub(crate) fn build(s: &ScheduleFile, problems: &mut Vec<Problem>) -> Option<(Duration, Duration)> {
    let before = problems.len();
    if s.discovery < Duration::from_secs(1) {
        problems.push(Problem {
            key: "schedule.discovery".into(),
            message: "must be at least 1s (e.g. \"15m\")".into(),
        });
    }
    if s.jitter > s.discovery {
        problems.push(Problem {
            key: "schedule.jitter".into(),
            message: "must not exceed schedule.discovery".into(),
        });
    }
    (problems.len() == before).then_some((s.discovery, s.jitter))
}
