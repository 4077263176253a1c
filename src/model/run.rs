//! Scan runs: one record per run of a stage (a discovery pass, a Greenbone run, an on-demand scan),
//! how it ended and what it counted; and the stages themselves.

use super::{Trigger, UnixSeconds};
use serde::{Deserialize, Serialize};
use std::fmt;

/// How a scan run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// An on-demand scan waiting for its turn (a pass under way finishes first).
    Queued,
    /// Still running, or the process died before it finished (shown as such after a restart).
    Running,
    Success,
    Failed,
    Cancelled,
    /// Found running in the store at start-up: the process stopped mid-scan.
    Interrupted,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Queued => "queued",
            Outcome::Running => "running",
            Outcome::Success => "success",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// Probe counts by result.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeCounts {
    pub open: u64,
    pub closed: u64,
    pub filtered: u64,
    pub error: u64,
}

/// The agent's stages and the parts around them, by the name they carry in the `stage` label of
/// metrics, in scan runs and in logs. One enum, so a typo is a compile error, not a new series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// OpenStack inventory.
    Inventory,
    /// The native TCP connect scan and the UDP probes (and the pass they anchor).
    Discovery,
    /// nmap service and version detection.
    Services,
    /// Greenbone through GMP.
    Vulnerabilities,
    /// The digest e-mail.
    Email,
    /// RocksDB.
    Store,
    /// Loading and reloading the configuration.
    Config,
    /// A pass over a few targets only (an on-demand scan), between full discovery passes.
    Targeted,
}

impl Stage {
    pub const fn as_str(self) -> &'static str {
        match self {
            Stage::Inventory => "inventory",
            Stage::Discovery => "discovery",
            Stage::Services => "services",
            Stage::Vulnerabilities => "vulnerabilities",
            Stage::Email => "email",
            Stage::Store => "store",
            Stage::Config => "config",
            Stage::Targeted => "targeted",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One run of a stage (discovery, or vulnerabilities from Greenbone), as recorded in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRun {
    pub id: u64,
    /// [`Stage::Discovery`] (with services) or [`Stage::Vulnerabilities`]; runs stored before
    /// stages were named are discovery runs.
    #[serde(default = "discovery_stage")]
    pub stage: Stage,
    pub started: UnixSeconds,
    pub finished: Option<UnixSeconds>,
    pub outcome: Outcome,
    /// Target groups covered by the run.
    pub groups: Vec<String>,
    /// Number of addresses scanned.
    pub targets: u64,
    /// Number of ports probed per address.
    pub ports: u64,
    pub probes: ProbeCounts,
    pub hosts_up: u64,
    pub open_ports: u64,
    pub unexpected_ports: u64,
    pub errors: Vec<String>,
    /// What the run was asked for, when a user asked (`POST /api/v1/scans`): a targeted pass over
    /// these targets only, which changes no other host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<ScanRequest>,
    /// What started it: its schedule (a full pass), a cloud change or a user (both targeted
    /// passes over a few targets).
    #[serde(default)]
    pub trigger: Trigger,
}

/// An on-demand scan as asked for and as resolved against the inventory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanRequest {
    /// The authenticated user who asked.
    pub by: String,
    /// When, in Unix seconds.
    pub at: UnixSeconds,
    /// The targets as given: VM ids, addresses, CIDRs.
    pub targets: Vec<String>,
    /// The ports to probe (port-list syntax); `None`: each target's configured ports.
    pub ports: Option<String>,
    /// The ids of the inventory's targets they name (what is scanned).
    pub hosts: Vec<String>,
}

fn discovery_stage() -> Stage {
    Stage::Discovery
}
