//! `[findings]`: how a finding is confirmed (an immediate re-probe, or several passes in a row),
//! how many passes without it resolve it, what counts as an amplifier, and the longest
//! acknowledgement the API accepts.

use super::Problem;
use crate::judge::findings::{Confirm, Settings};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FindingsFile {
    /// `reprobe` (default) or `passes`.
    pub confirm: String,
    /// With `confirm = "passes"`: passes in a row that must see a finding.
    pub passes: u32,
    pub resolve_after: u32,
    /// Reply bytes per request byte from which an open UDP port is an amplifier.
    pub amplification: f64,
    #[serde(with = "humantime_serde")]
    pub max_ack: Duration,
}

impl Default for FindingsFile {
    fn default() -> Self {
        let s = Settings::default();
        FindingsFile {
            confirm: "reprobe".into(),
            passes: 2,
            resolve_after: s.resolve_after,
            amplification: s.amplification,
            max_ack: DEFAULT_MAX_ACK,
        }
    }
}

/// 90 days.
pub const DEFAULT_MAX_ACK: Duration = Duration::from_secs(90 * 86_400);

/// The validated `[findings]`: the judge's settings and the longest acknowledgement.
pub(crate) fn build(f: &FindingsFile, problems: &mut Vec<Problem>) -> Option<(Settings, Duration)> {
    let before = problems.len();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: format!("findings.{key}"),
            message,
        })
    };
    let confirm = match f.confirm.as_str() {
        "reprobe" => Confirm::Reprobe,
        "passes" if (1..=100).contains(&f.passes) => Confirm::Passes(f.passes),
        "passes" => {
            problem("passes", "must be from 1 to 100".into());
            Confirm::Passes(1)
        }
        _ => {
            problem(
                "confirm",
                "must be \"reprobe\" (an immediate re-probe confirms a new port) or \"passes\" (seen in `passes` passes in a row)".into(),
            );
            Confirm::Reprobe
        }
    };
    if !(1..=100).contains(&f.resolve_after) {
        problem(
            "resolve_after",
            "must be from 1 to 100 (passes in a row without the finding)".into(),
        );
    }
    if !f.amplification.is_finite() || f.amplification < 1.0 {
        problem(
            "amplification",
            "must be a number of at least 1.0 (reply bytes per request byte)".into(),
        );
    }
    if f.max_ack < Duration::from_secs(60) {
        problem("max_ack", "must be at least 1m (e.g. \"90d\")".into());
    }
    (problems.len() == before).then_some((
        Settings {
            confirm,
            resolve_after: f.resolve_after,
            amplification: f.amplification,
        },
        f.max_ack,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_reprobe_and_resolve_after_two_passes() {
        let mut p = Vec::new();
        let (s, max) = build(&FindingsFile::default(), &mut p).expect("valid");
        assert_eq!(s.confirm, Confirm::Reprobe);
        assert_eq!(s.resolve_after, 2);
        assert_eq!(max, DEFAULT_MAX_ACK);
    }

    #[test]
    fn bad_values_name_their_key() {
        let mut p = Vec::new();
        let f = FindingsFile {
            confirm: "maybe".into(),
            resolve_after: 0,
            amplification: f64::NAN,
            max_ack: Duration::from_secs(1),
            ..FindingsFile::default()
        };
        assert!(build(&f, &mut p).is_none());
        let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "findings.confirm",
                "findings.resolve_after",
                "findings.amplification",
                "findings.max_ack"
            ]
        );
        let mut p = Vec::new();
        let f = FindingsFile {
            confirm: "passes".into(),
            passes: 0,
            ..FindingsFile::default()
        };
        assert!(build(&f, &mut p).is_none());
        assert_eq!(p[0].key, "findings.passes");
        let mut p = Vec::new();
        let f = FindingsFile {
            confirm: "passes".into(),
            passes: 3,
            ..FindingsFile::default()
        };
        assert_eq!(
            build(&f, &mut p).map(|s| s.0.confirm),
            Some(Confirm::Passes(3))
        );
    }
}
