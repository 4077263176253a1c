//! What the GMP stage is told: [`Settings`] (config `[scan.gmp]`), their defaults (the feed's
//! "Full and fast" config, the "OpenVAS Default" scanner, "Consider Alive"), and the [`Password`]
//! that never shows in `Debug`. No I/O here.

use std::fmt;
use std::time::Duration;

use super::{Endpoint, ReportLimits, Timeouts, DEFAULT_MAX_RESPONSE_BYTES};

/// Scan config "Full and fast" (a feed data object).
pub const FULL_AND_FAST: &str = "daba56c8-73ec-11df-a475-002264764cea";
/// Scanner "OpenVAS Default".
pub(crate) const OPENVAS_DEFAULT: &str = "08b69003-5fc2-4037-a479-93b440211c73";
/// Alive test that skips host discovery (Stinger already knows the hosts are up).
pub(crate) const CONSIDER_ALIVE: &str = "Consider Alive";

/// The GMP password. `Debug` never shows it; only the `authenticate` command carries it.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Password(String);

impl Password {
    pub(crate) fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The clear text, for the `authenticate` command only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// gvmd settings (config `[scan.gmp]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub(crate) endpoint: Endpoint,
    pub(crate) username: String,
    pub(crate) password: Password,
    pub(crate) timeouts: Timeouts,
    /// Scan config UUID (default Full and fast).
    pub(crate) scan_config: String,
    /// Scanner UUID (default OpenVAS Default).
    pub(crate) scanner: String,
    /// gvmd alive test string (default "Consider Alive").
    pub(crate) alive_test: String,
    /// Import the latest finished report of this existing task instead of scanning.
    pub(crate) import_task: Option<String>,
    /// Time between `get_tasks` polls of a running task.
    pub(crate) poll_interval: Duration,
    /// A task not Done after this is given up (and stopped, with `stop_on_abort`).
    pub(crate) scan_timeout: Duration,
    /// `stinger-` tasks kept in gvmd (the one in use included); older ones are deleted.
    /// 0 = never delete.
    pub(crate) keep: usize,
    /// Extra attempts after a connection failure or a 5xx answer.
    pub(crate) retries: u32,
    /// First retry delay; doubles per attempt (capped at 5 minutes).
    pub(crate) retry_backoff: Duration,
    /// Send `stop_task` when the scan is cancelled or times out. Off: the task keeps running in
    /// gvmd and a later cycle with the same hosts follows it instead of starting a new one.
    pub(crate) stop_on_abort: bool,
    /// Largest non-report response.
    pub(crate) max_response_bytes: usize,
    pub(crate) report_limits: ReportLimits,
    /// The networks gvmd can reach; empty = every address (`[scan.gmp] reachable`).
    pub(crate) reachable: Vec<ipnetwork::IpNetwork>,
    /// Send hosts probed from a network namespace too (`[scan.gmp] namespaced_hosts`).
    pub(crate) namespaced_hosts: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            endpoint: Endpoint::default(),
            username: "admin".to_owned(),
            password: Password::default(),
            timeouts: Timeouts::default(),
            scan_config: FULL_AND_FAST.to_owned(),
            scanner: OPENVAS_DEFAULT.to_owned(),
            alive_test: CONSIDER_ALIVE.to_owned(),
            import_task: None,
            poll_interval: Duration::from_secs(30),
            scan_timeout: Duration::from_secs(8 * 60 * 60),
            keep: 10,
            retries: 3,
            retry_backoff: Duration::from_secs(2),
            stop_on_abort: true,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            report_limits: ReportLimits::default(),
            reachable: Vec::new(),
            namespaced_hosts: false,
        }
    }
}
