//! How far a running stage is. Each stage measures its own progress its own way (discovery counts
//! probes, nmap prints an estimate, gvmd reports a percentage); the shared state holds one
//! [`StageProgress`] per running stage, and `/metrics` and the API read them all the same way.

use super::Stage;
use std::fmt;

/// A running stage's live progress, readable from other tasks while it runs.
pub trait StageProgress: Send + Sync + fmt::Debug {
    /// How far it is, 0 to 1.
    fn ratio(&self) -> f64;
    /// Units of work done and in all, when the stage counts them (discovery: probes).
    fn counts(&self) -> Option<(u64, u64)> {
        None
    }
}

impl Stage {
    /// The stages that report progress while they run (`stinger_scan_progress_ratio` has a series
    /// for each, 0 when idle).
    pub const WITH_PROGRESS: [Stage; 3] =
        [Stage::Discovery, Stage::Services, Stage::Vulnerabilities];
}
