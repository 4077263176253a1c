//! The GMP workflow of one cycle: [`scan`] (plan, create or reuse the task, start, poll, fetch the
//! report, retention) or the import of an existing task's latest report; the live [`Progress`] it
//! updates and the [`Outcome`] it returns.

use std::net::IpAddr;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::client::{call, Client};
use super::plan::{ensure_task, plan};
use super::retention::retention;
use super::{Error, ReportSummary, Session, Settings, TaskStatus, VulnResult};

/// Live counters of a running [`scan`], readable from other tasks.
#[derive(Debug)]
pub struct Progress {
    /// gvmd's task progress: -1 while no report runs (not started yet, or Done), else 0–100.
    pub(crate) percent: AtomicI32,
    pub(crate) polls: AtomicU64,
    pub(crate) retries: AtomicU64,
    /// Report bytes received and results parsed so far.
    pub(crate) report_bytes: AtomicU64,
    pub(crate) results: AtomicU64,
    /// Results gvmd sent that could not be read (see the warning logged with them).
    pub(crate) skipped_results: AtomicU64,
}

impl crate::model::StageProgress for Progress {
    /// gvmd's task progress (0 before a report runs).
    fn ratio(&self) -> f64 {
        let pct = self.percent.load(Ordering::Relaxed);
        (f64::from(pct.max(0)) / 100.0).clamp(0.0, 1.0)
    }
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

#[cfg(test)]
impl Progress {
    pub(crate) fn percent(&self) -> i32 {
        self.percent.load(Ordering::Relaxed)
    }
}

/// What [`scan`] brought back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    pub(crate) task_id: String,
    pub(crate) task_name: String,
    pub(crate) report_id: String,
    /// `import_task` mode: an existing report was read, nothing was started.
    pub(crate) imported: bool,
    /// The `stinger-` task for this host set existed already.
    pub(crate) reused_task: bool,
    /// gvmd's GMP version, e.g. "22.7".
    pub(crate) gmp_version: String,
    pub(crate) results: Vec<VulnResult>,
    pub(crate) summary: ReportSummary,
    /// Results in the report that could not be read (skipped, logged).
    pub(crate) skipped_results: u64,
    /// gvmd returned fewer results than matched (its "Max Rows Per Page" setting caps rows=-1;
    /// set it to 0 for the GMP user).
    pub(crate) truncated_by_gvmd: bool,
    /// Names of old `stinger-` tasks deleted by retention.
    pub(crate) deleted_tasks: Vec<String>,
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
pub(crate) async fn scan(
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
