//! Greenbone GMP session: connect (unix socket or TLS), authenticate, create or reuse stinger-
//! targets and tasks, start, poll, fetch the report streaming; bounded and cancellable. XML is
//! gmp_xml's.
//!
//! [`scan`] is the whole workflow for one cycle (or, with `import_task`, the import of an existing
//! task's latest report); [`Session`] is one authenticated connection with typed helpers for
//! callers that need single commands. Every network wait is bounded ([`Timeouts`],
//! `scan_timeout`), connection failures and 5xx answers are retried with exponential backoff up to
//! `retries` times, and cancellation is honoured between and during requests. A scan that gvmd
//! stopped or interrupted, or a report that ends early, is an error — never "no vulnerabilities".

mod session;
mod stream;
mod transport;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use session::{Session, Timeouts, DEFAULT_MAX_RESPONSE_BYTES};
pub use transport::{Endpoint, DEFAULT_SOCKET, DEFAULT_TLS_PORT};

use super::gmp_xml;
pub use super::gmp_xml::{ReportLimits, ReportSummary, TaskInfo, TaskStatus, VulnResult};

/// Scan config "Full and fast" (a feed data object).
pub const FULL_AND_FAST: &str = "daba56c8-73ec-11df-a475-002264764cea";
/// Scanner "OpenVAS Default".
pub const OPENVAS_DEFAULT: &str = "08b69003-5fc2-4037-a479-93b440211c73";
/// Alive test that skips host discovery (Stinger already knows the hosts are up).
pub const CONSIDER_ALIVE: &str = "Consider Alive";
/// Every target and task Stinger creates is named `stinger-<16 hex digits>`.
pub const NAME_PREFIX: &str = "stinger-";

/// The GMP password. `Debug` never shows it; only the `authenticate` command carries it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The clear text, for the `authenticate` command only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
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
    pub endpoint: Endpoint,
    pub username: String,
    pub password: Password,
    pub timeouts: Timeouts,
    /// Scan config UUID (default Full and fast).
    pub scan_config: String,
    /// Scanner UUID (default OpenVAS Default).
    pub scanner: String,
    /// gvmd alive test string (default "Consider Alive").
    pub alive_test: String,
    /// Import the latest finished report of this existing task instead of scanning.
    pub import_task: Option<String>,
    /// Time between `get_tasks` polls of a running task.
    pub poll_interval: Duration,
    /// A task not Done after this is given up (and stopped, with `stop_on_abort`).
    pub scan_timeout: Duration,
    /// `stinger-` tasks kept in gvmd (the one in use included); older ones are deleted.
    /// 0 = never delete.
    pub keep: usize,
    /// Extra attempts after a connection failure or a 5xx answer.
    pub retries: u32,
    /// First retry delay; doubles per attempt (capped at 5 minutes).
    pub retry_backoff: Duration,
    /// Send `stop_task` when the scan is cancelled or times out. Off: the task keeps running in
    /// gvmd and a later cycle with the same hosts follows it instead of starting a new one.
    pub stop_on_abort: bool,
    /// Largest non-report response.
    pub max_response_bytes: usize,
    pub report_limits: ReportLimits,
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
        }
    }
}

/// Live counters of a running [`scan`], readable from other tasks.
#[derive(Debug)]
pub struct Progress {
    /// gvmd's task progress: -1 while no report runs (not started yet, or Done), else 0–100.
    pub percent: AtomicI32,
    pub polls: AtomicU64,
    pub retries: AtomicU64,
    /// Report bytes received and results parsed so far.
    pub report_bytes: AtomicU64,
    pub results: AtomicU64,
    /// Results gvmd sent that could not be read (see the warning logged with them).
    pub skipped_results: AtomicU64,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            percent: AtomicI32::new(-1),
            polls: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            report_bytes: AtomicU64::new(0),
            results: AtomicU64::new(0),
            skipped_results: AtomicU64::new(0),
        }
    }
}

impl Progress {
    pub fn percent(&self) -> i32 {
        self.percent.load(Ordering::Relaxed)
    }
}

/// GMP session and workflow errors. Messages name the endpoint, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to gvmd at {endpoint}: {source}; check that gvmd is running and scan.gmp.socket (or scan.gmp.address for TLS) points at it, and that the agent may open the socket")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("connection to gvmd at {endpoint} lost during {during}: {message}")]
    Disconnected {
        endpoint: String,
        during: String,
        message: String,
    },
    #[error("TLS to gvmd at {endpoint}: {message}")]
    Tls { endpoint: String, message: String },
    #[error("gvmd at {endpoint}: gave up waiting for {what} after {}s (scan.gmp.{setting})", after.as_secs_f64())]
    Timeout {
        endpoint: String,
        what: String,
        after: Duration,
        setting: &'static str,
    },
    #[error("gvmd at {endpoint} rejected the username or password (400 Authentication failed); check scan.gmp.username and the password")]
    AuthFailed { endpoint: String },
    #[error("gvmd at {endpoint} answered {command} with status {code} \"{text}\"{}", status_hint(*code, text))]
    Status {
        endpoint: String,
        command: String,
        code: u16,
        text: String,
    },
    #[error("gvmd task {task_id} ended as \"{status}\" without finishing; its results are incomplete and were not used")]
    TaskEnded { task_id: String, status: String },
    #[error("report {report_id} from gvmd at {endpoint} is unusable: {message}")]
    Report {
        endpoint: String,
        report_id: String,
        message: String,
    },
    #[error("gvmd task {task_id} has no finished report to import yet (scan.gmp.import_task)")]
    NoReport { task_id: String },
    #[error("GMP scan cancelled")]
    Cancelled,
    #[error("gvmd at {endpoint} sent an unusable answer to {command}: {source}")]
    Protocol {
        endpoint: String,
        command: String,
        source: gmp_xml::Error,
    },
    #[error("no host with an open TCP port to scan; gvmd was not contacted")]
    Empty,
}

fn status_hint(code: u16, text: &str) -> &'static str {
    let t = text.to_ascii_lowercase();
    if code == 404 && (t.contains("config") || t.contains("port_list") || t.contains("scanner")) {
        "; the feed data objects may not be loaded yet (see get_feeds), or scan.gmp.scan_config / scanner names a missing UUID"
    } else if code == 503 {
        "; gvmd or its scanner is not available right now"
    } else if code == 400 && t.contains("get_version is allowed") {
        "; authenticate first"
    } else {
        ""
    }
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Connect { .. } | Error::Disconnected { .. } => "connect",
            Error::Tls { .. } => "tls",
            Error::Timeout { .. } => "timeout",
            Error::AuthFailed { .. } => "auth_failed",
            Error::Status { .. } => "status",
            Error::TaskEnded { .. } => "task_ended",
            Error::Report { .. } | Error::NoReport { .. } => "report",
            Error::Cancelled => "cancelled",
            Error::Protocol { .. } => "protocol",
            Error::Empty => "empty",
        }
    }

    /// Connection failures and 5xx answers; the request is retried on a new connection.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Disconnected { .. } => true,
            Error::Status { code, .. } => *code >= 500,
            _ => false,
        }
    }
}

/// What [`scan`] brought back.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub task_id: String,
    pub task_name: String,
    pub report_id: String,
    /// `import_task` mode: an existing report was read, nothing was started.
    pub imported: bool,
    /// The `stinger-` task for this host set existed already.
    pub reused_task: bool,
    /// gvmd's GMP version, e.g. "22.7".
    pub gmp_version: String,
    pub results: Vec<VulnResult>,
    pub summary: ReportSummary,
    /// Results in the report that could not be read (skipped, logged).
    pub skipped_results: u64,
    /// gvmd returned fewer results than matched (its "Max Rows Per Page" setting caps rows=-1;
    /// set it to 0 for the GMP user).
    pub truncated_by_gvmd: bool,
    /// Names of old `stinger-` tasks deleted by retention.
    pub deleted_tasks: Vec<String>,
}

/// The gvmd target (and task) for one host set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Plan {
    name: String,
    hosts: Vec<String>,
    ports: String,
}

/// 64-bit FNV-1a: stable across builds and Rust versions (unlike `DefaultHasher`).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// gvmd port_range for TCP ports: `T:22,80,8000-8002` (sorted, runs collapsed); 0 is skipped.
fn port_range(ports: &BTreeSet<u16>) -> String {
    let mut out = String::from("T:");
    let mut iter = ports.iter().copied().filter(|&p| p != 0).peekable();
    let mut first = true;
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&end.wrapping_add(1)) && end != u16::MAX {
            end += 1;
            iter.next();
        }
        if !first {
            out.push(',');
        }
        first = false;
        if end == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
    }
    out
}

/// Hosts with at least one open port, the union of their ports, and the stable name of the
/// target/task: `stinger-` + hash of everything that defines them (hosts, ports, config,
/// scanner, alive test), so an identical host set reuses its task. `None` when nothing to scan.
fn plan(settings: &Settings, hosts: &[(IpAddr, Vec<u16>)]) -> Option<Plan> {
    let mut addrs: Vec<IpAddr> = hosts
        .iter()
        .filter(|(_, ports)| ports.iter().any(|&p| p != 0))
        .map(|(a, _)| *a)
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    if addrs.is_empty() {
        return None;
    }
    let ports: BTreeSet<u16> = hosts.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let hosts: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
    let ports = port_range(&ports);
    let key = format!(
        "v1\nhosts={}\nports={}\nconfig={}\nscanner={}\nalive={}",
        hosts.join(","),
        ports,
        settings.scan_config,
        settings.scanner,
        settings.alive_test
    );
    Some(Plan {
        name: format!("{NAME_PREFIX}{:016x}", fnv1a64(key.as_bytes())),
        hosts,
        ports,
    })
}

/// Names Stinger gave: `stinger-` and exactly 16 lowercase hex digits. Retention touches no other.
fn is_own_name(name: &str) -> bool {
    name.strip_prefix(NAME_PREFIX).is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn is_active(status: &TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Requested
            | TaskStatus::Queued
            | TaskStatus::Running
            | TaskStatus::Processing
            | TaskStatus::StopRequested
            | TaskStatus::DeleteRequested
    )
}

fn status_str(status: &TaskStatus) -> String {
    match status {
        TaskStatus::New => "New".into(),
        TaskStatus::Requested => "Requested".into(),
        TaskStatus::Queued => "Queued".into(),
        TaskStatus::Running => "Running".into(),
        TaskStatus::Processing => "Processing".into(),
        TaskStatus::Done => "Done".into(),
        TaskStatus::StopRequested => "Stop Requested".into(),
        TaskStatus::Stopped => "Stopped".into(),
        TaskStatus::Interrupted => "Interrupted".into(),
        TaskStatus::DeleteRequested => "Delete Requested".into(),
        TaskStatus::Other(s) => s.clone(),
    }
}

/// Which own tasks retention deletes so that at most `keep` remain. gvmd's task list carries no
/// creation time (gmp_xml's `TaskInfo` has none), so age cannot be judged: the in-use task and
/// active tasks are never deleted; tasks that never finished a report go first, then the rest in
/// name order. Deterministic, so repeated runs agree.
fn retention_victims<'a>(tasks: &'a [TaskInfo], in_use: &str, keep: usize) -> Vec<&'a TaskInfo> {
    if keep == 0 {
        return Vec::new();
    }
    let own: Vec<&TaskInfo> = tasks.iter().filter(|t| is_own_name(&t.name)).collect();
    let Some(excess) = own.len().checked_sub(keep).filter(|&n| n > 0) else {
        return Vec::new();
    };
    let mut candidates: Vec<&TaskInfo> = own
        .into_iter()
        .filter(|t| t.id != in_use && !is_active(&t.status))
        .collect();
    candidates.sort_by(|a, b| {
        (a.last_report_id.is_some(), &a.name, &a.id).cmp(&(
            b.last_report_id.is_some(),
            &b.name,
            &b.id,
        ))
    });
    candidates.truncate(excess);
    candidates
}

/// Longest a best-effort `stop_task` may delay the return of a cancelled or timed-out scan.
const STOP_BOUND: Duration = Duration::from_secs(10);

fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 1u32 << attempt.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(Duration::from_secs(300))
}

/// `call!(client, "what", |s| future)`: runs the future on an authenticated session of `client`
/// (a [`Client`]), racing cancellation; retryable failures are retried on a new connection after
/// a backoff, up to `settings.retries` times. (A macro, not a closure-taking method: futures of
/// closures over `&mut Session` lose their `Send`-ness to higher-ranked lifetimes.)
macro_rules! call {
    ($client:expr, $what:expr, |$s:ident| $body:expr) => {{
        let mut attempt = 0u32;
        loop {
            let cancel = $client.cancel.clone();
            if cancel.is_cancelled() {
                break Err(Error::Cancelled);
            }
            let r = tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(Error::Cancelled),
                r = async {
                    let $s: &mut Session = $client.open().await?;
                    $body.await
                } => r,
            };
            match r {
                Ok(v) => break Ok(v),
                Err(e) => {
                    if let Err(e) = $client.retry_or_fail(e, &mut attempt, $what).await {
                        break Err(e);
                    }
                }
            }
        }
    }};
}

/// One logical connection to gvmd for the workflow: (re)connects and authenticates on demand and
/// retries retryable failures on a new connection.
struct Client<'a> {
    settings: &'a Settings,
    progress: Arc<Progress>,
    cancel: CancellationToken,
    session: Option<Session>,
    gmp_version: String,
}

impl<'a> Client<'a> {
    fn new(settings: &'a Settings, progress: Arc<Progress>, cancel: CancellationToken) -> Self {
        Client {
            settings,
            progress,
            cancel,
            session: None,
            gmp_version: String::new(),
        }
    }

    async fn open(&mut self) -> Result<&mut Session, Error> {
        if !self.session.as_ref().is_some_and(Session::is_open) {
            self.session = None;
            let s = &self.settings;
            let mut session = Session::connect(&s.endpoint, s.timeouts).await?;
            session.set_limits(s.max_response_bytes, s.report_limits.clone());
            session.set_progress(self.progress.clone());
            let version = session.get_version().await?;
            session.authenticate(&s.username, &s.password).await?;
            if self.gmp_version != version {
                tracing::info!(endpoint = %s.endpoint, gmp_version = %version, "logged in to gvmd");
                self.gmp_version = version;
            }
            self.session = Some(session);
        }
        self.session.as_mut().ok_or(Error::Disconnected {
            endpoint: self.settings.endpoint.to_string(),
            during: "login".to_owned(),
            message: "no session".to_owned(),
        })
    }

    /// After a failed request: `Ok` (after the backoff) to try again on a new connection, or the
    /// error to give up with. Only retryable errors, at most `settings.retries` times.
    async fn retry_or_fail(
        &mut self,
        e: Error,
        attempt: &mut u32,
        what: &str,
    ) -> Result<(), Error> {
        if !self.session.as_ref().is_some_and(Session::is_open) {
            self.session = None;
        }
        if !e.is_retryable() || *attempt >= self.settings.retries {
            return Err(e);
        }
        *attempt += 1;
        self.session = None;
        self.progress.retries.fetch_add(1, Ordering::Relaxed);
        let delay = backoff(self.settings.retry_backoff, *attempt);
        tracing::warn!(
            endpoint = %self.settings.endpoint,
            what,
            attempt = *attempt,
            retries = self.settings.retries,
            delay_s = delay.as_secs_f64(),
            kind = e.kind(),
            error = %e,
            "gvmd request failed; retrying"
        );
        tokio::select! {
            biased;
            _ = self.cancel.cancelled() => Err(Error::Cancelled),
            _ = tokio::time::sleep(delay) => Ok(()),
        }
    }

    /// Best-effort `stop_task` after a cancel or timeout: one attempt, on a fresh connection if
    /// needed, bounded by the connect and read timeouts.
    async fn stop(&mut self, task_id: &str, why: &str) {
        if !self.settings.stop_on_abort {
            tracing::info!(
                task_id,
                why,
                "leaving the gvmd task running (scan.gmp.stop_on_abort = false)"
            );
            return;
        }
        let bound = (self.settings.timeouts.connect + self.settings.timeouts.read).min(STOP_BOUND);
        let r = tokio::time::timeout(bound, async { self.open().await?.stop_task(task_id).await })
            .await;
        match r {
            Ok(Ok(())) => tracing::info!(task_id, why, "stopped the gvmd task"),
            Ok(Err(e)) => {
                tracing::warn!(task_id, why, kind = e.kind(), error = %e, "could not stop the gvmd task")
            }
            Err(_) => tracing::warn!(task_id, why, "could not stop the gvmd task in time"),
        }
    }

    async fn fetch(
        &mut self,
        report_id: &str,
    ) -> Result<(Vec<VulnResult>, ReportSummary, u64), Error> {
        let cancel = self.cancel.clone();
        let progress = self.progress.clone();
        let skipped_before = progress.skipped_results.load(Ordering::Relaxed);
        let (results, summary) =
            call!(self, "fetch report", |s| s.fetch_report(report_id, &cancel))?;
        let skipped = progress
            .skipped_results
            .load(Ordering::Relaxed)
            .saturating_sub(skipped_before);
        Ok((results, summary, skipped))
    }
}

/// Ensures the task for `plan` exists; returns its id and whether it existed.
async fn ensure_task(
    s: &mut Session,
    settings: &Settings,
    plan: &Plan,
) -> Result<(String, bool), Error> {
    let existing = s.get_tasks_by_name(&plan.name).await?;
    if let Some(t) = existing
        .iter()
        .find(|t| t.name == plan.name && t.status != TaskStatus::DeleteRequested)
    {
        return Ok((t.id.clone(), true));
    }
    let target_id = match s
        .create_target(&plan.name, &plan.hosts, &plan.ports, &settings.alive_test)
        .await
    {
        Ok(id) => id,
        // A target of that name left behind (its task was never created or was deleted):
        // gmp_xml cannot list targets, so make a new one with a distinct name.
        Err(Error::Status {
            code: 400, text, ..
        }) if text.to_ascii_lowercase().contains("exist") => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            s.create_target(
                &format!("{}-{secs}", plan.name),
                &plan.hosts,
                &plan.ports,
                &settings.alive_test,
            )
            .await?
        }
        Err(e) => return Err(e),
    };
    match s
        .create_task(
            &plan.name,
            &settings.scan_config,
            &target_id,
            &settings.scanner,
        )
        .await
    {
        Ok(id) => Ok((id, false)),
        Err(e) => {
            if s.is_open() {
                if let Err(de) = s.delete_target(&target_id, true).await {
                    tracing::warn!(target_id = %target_id, error = %de, "could not delete the unused gvmd target");
                }
            }
            Err(e)
        }
    }
}

/// Starts the task; if gvmd says it is already running (a previous run left it going), follows
/// its current report instead.
async fn start_or_follow(s: &mut Session, task_id: &str) -> Result<String, Error> {
    match s.start_task(task_id).await {
        Ok(report_id) => Ok(report_id),
        Err(e @ Error::Status { code: 400, .. }) => {
            let t = s.get_task(task_id).await?;
            match t.current_report_id {
                Some(report_id)
                    if matches!(
                        t.status,
                        TaskStatus::Requested
                            | TaskStatus::Queued
                            | TaskStatus::Running
                            | TaskStatus::Processing
                    ) =>
                {
                    tracing::info!(task_id, report_id = %report_id, "gvmd task already running; following it");
                    Ok(report_id)
                }
                _ => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

async fn retention(s: &mut Session, in_use: &str, keep: usize) -> Result<Vec<String>, Error> {
    let tasks = s.get_tasks_by_name(NAME_PREFIX).await?;
    let mut deleted = Vec::new();
    for t in retention_victims(&tasks, in_use, keep) {
        match s.delete_task(&t.id, true).await {
            Ok(()) => {
                tracing::info!(task = %t.name, task_id = %t.id, keep, "deleted old gvmd task (scan.gmp.keep)");
                deleted.push(t.name.clone());
                // Its target was created for it; gvmd refuses one still used by another task.
                if let Some(target) = &t.target_id {
                    match s.delete_target(target, true).await {
                        Ok(()) => {}
                        Err(e @ Error::Status { .. }) => {
                            tracing::info!(target_id = %target, error = %e, "kept the old task's target")
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e @ Error::Status { .. }) => {
                tracing::warn!(task = %t.name, error = %e, "could not delete old gvmd task")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Runs one vulnerability scan of `hosts` (each with the TCP ports found open on it) in gvmd and
/// returns its results — or, with `settings.import_task`, imports that task's latest finished
/// report and ignores `hosts`.
///
/// Scan mode: finds or creates the target and task `stinger-<hash>` for this exact host set
/// (hosts without open ports are left out; the port range is the union of all ports), starts it,
/// polls every `poll_interval` until Done (progress into `progress.percent`), fetches the report
/// streaming, then deletes surplus `stinger-` tasks (`keep`). Stopped/Interrupted →
/// [`Error::TaskEnded`]; not Done within `scan_timeout` → [`Error::Timeout`]; `cancel` →
/// [`Error::Cancelled`] promptly (with `stop_on_abort` the task is stopped in both cases).
pub async fn scan(
    settings: &Settings,
    hosts: &[(IpAddr, Vec<u16>)],
    progress: Arc<Progress>,
    cancel: CancellationToken,
) -> Result<Outcome, Error> {
    let mut client = Client::new(settings, progress.clone(), cancel.clone());
    if let Some(task_id) = settings.import_task.as_deref() {
        return import(&mut client, task_id).await;
    }
    let Some(plan) = plan(settings, hosts) else {
        return Err(Error::Empty);
    };
    let (task_id, reused) = call!(client, "create target and task", |s| ensure_task(
        s, settings, &plan
    ))?;
    tracing::info!(
        endpoint = %settings.endpoint,
        task = %plan.name,
        task_id = %task_id,
        reused,
        hosts = plan.hosts.len(),
        ports = %plan.ports,
        "starting gvmd scan"
    );
    let report_id = call!(client, "start task", |s| start_or_follow(s, &task_id))?;
    match poll(&mut client, &task_id).await {
        Ok(()) => {}
        Err(e @ (Error::Cancelled | Error::Timeout { .. })) => {
            let why = if matches!(e, Error::Cancelled) {
                "cancelled"
            } else {
                "scan_timeout"
            };
            client.stop(&task_id, why).await;
            return Err(e);
        }
        Err(e) => return Err(e),
    }
    let (results, summary, skipped) = client.fetch(&report_id).await?;
    check_run_status(&task_id, &summary)?;
    let deleted = if settings.keep > 0 {
        match call!(client, "retention", |s| retention(
            s,
            &task_id,
            settings.keep
        )) {
            Ok(d) => d,
            Err(Error::Cancelled) => return Err(Error::Cancelled),
            Err(e) => {
                tracing::warn!(kind = e.kind(), error = %e, "gvmd task retention skipped this time");
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    Ok(finish(
        client.gmp_version,
        task_id,
        plan.name,
        report_id,
        false,
        reused,
        results,
        summary,
        skipped,
        deleted,
    ))
}

async fn import(client: &mut Client<'_>, task_id: &str) -> Result<Outcome, Error> {
    let task = call!(client, "get task", |s| s.get_task(task_id))?;
    let Some(report_id) = task.last_report_id.clone() else {
        return Err(Error::NoReport {
            task_id: task_id.to_owned(),
        });
    };
    tracing::info!(task = %task.name, task_id, report_id = %report_id, "importing the latest gvmd report");
    let (results, summary, skipped) = client.fetch(&report_id).await?;
    check_run_status(task_id, &summary)?;
    Ok(finish(
        std::mem::take(&mut client.gmp_version),
        task.id,
        task.name,
        report_id,
        true,
        false,
        results,
        summary,
        skipped,
        Vec::new(),
    ))
}

/// Polls until Done; bounded by `scan_timeout`.
async fn poll(client: &mut Client<'_>, task_id: &str) -> Result<(), Error> {
    let settings = client.settings;
    let deadline = Instant::now() + settings.scan_timeout;
    let cancel = client.cancel.clone();
    let progress = client.progress.clone();
    let mut last: Option<(TaskStatus, i32)> = None;
    loop {
        let info = call!(client, "poll task", |s| s.get_task(task_id))?;
        progress.polls.fetch_add(1, Ordering::Relaxed);
        progress.percent.store(info.progress, Ordering::Relaxed);
        let now = (info.status.clone(), info.progress);
        if last.as_ref() != Some(&now) {
            tracing::info!(task_id, status = %status_str(&info.status), progress = info.progress, "gvmd task");
            last = Some(now);
        }
        match &info.status {
            TaskStatus::Done => return Ok(()),
            TaskStatus::Stopped | TaskStatus::Interrupted | TaskStatus::DeleteRequested => {
                return Err(Error::TaskEnded {
                    task_id: task_id.to_owned(),
                    status: status_str(&info.status),
                })
            }
            TaskStatus::Other(s) if s.to_ascii_lowercase().contains("delete") => {
                return Err(Error::TaskEnded {
                    task_id: task_id.to_owned(),
                    status: s.clone(),
                })
            }
            _ => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Timeout {
                endpoint: settings.endpoint.to_string(),
                what: format!("task {task_id} to finish"),
                after: settings.scan_timeout,
                setting: "scan_timeout",
            });
        }
        let wait = settings.poll_interval.min(deadline - now);
        tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Error::Cancelled),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// A report whose scan was stopped or interrupted is incomplete: never "no vulnerabilities".
fn check_run_status(task_id: &str, summary: &ReportSummary) -> Result<(), Error> {
    match summary.scan_run_status.as_deref() {
        Some(s @ ("Stopped" | "Interrupted" | "Stop Requested")) => Err(Error::TaskEnded {
            task_id: task_id.to_owned(),
            status: s.to_owned(),
        }),
        _ => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
fn finish(
    gmp_version: String,
    task_id: String,
    task_name: String,
    report_id: String,
    imported: bool,
    reused_task: bool,
    results: Vec<VulnResult>,
    summary: ReportSummary,
    skipped_results: u64,
    deleted_tasks: Vec<String>,
) -> Outcome {
    let read = summary.results_returned.saturating_add(skipped_results);
    let truncated_by_gvmd = summary.results_filtered.is_some_and(|f| f > read);
    if truncated_by_gvmd {
        tracing::warn!(
            report_id = %report_id,
            matched = summary.results_filtered,
            returned = read,
            "gvmd returned fewer results than matched: set the GMP user's \"Max Rows Per Page\" to 0"
        );
    }
    tracing::info!(
        report_id = %report_id,
        results = results.len(),
        skipped = skipped_results,
        imported,
        "gvmd report read"
    );
    Outcome {
        task_id,
        task_name,
        report_id,
        imported,
        reused_task,
        gmp_version,
        results,
        summary,
        skipped_results,
        truncated_by_gvmd,
        deleted_tasks,
    }
}
