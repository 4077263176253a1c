//! The retrying client under the workflow: [`Client`] (re)connects and authenticates on demand,
//! and [`call!`] runs one step on it, racing cancellation and retrying connection failures and 5xx
//! answers with exponential backoff; plus the best-effort `stop_task` after an abort.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::workflow::Progress;
use super::{Error, ReportSummary, Session, Settings, VulnResult};

/// Longest a best-effort `stop_task` may delay the return of a cancelled or timed-out scan.
const STOP_BOUND: Duration = Duration::from_secs(10);

pub(super) fn backoff(base: Duration, attempt: u32) -> Duration {
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
                break Err($crate::scan::gmp::Error::Cancelled);
            }
            let r = tokio::select! {
                biased;
                _ = cancel.cancelled() => Err($crate::scan::gmp::Error::Cancelled),
                r = async {
                    let $s: &mut $crate::scan::gmp::Session = $client.open().await?;
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

pub(super) use call;

/// One logical connection to gvmd for the workflow: (re)connects and authenticates on demand and
/// retries retryable failures on a new connection.
pub(super) struct Client<'a> {
    pub(super) settings: &'a Settings,
    pub(super) progress: Arc<Progress>,
    pub(super) cancel: CancellationToken,
    session: Option<Session>,
    pub(super) gmp_version: String,
}

impl<'a> Client<'a> {
    pub(super) fn new(
        settings: &'a Settings,
        progress: Arc<Progress>,
        cancel: CancellationToken,
    ) -> Self {
        Client {
            settings,
            progress,
            cancel,
            session: None,
            gmp_version: String::new(),
        }
    }

    pub(super) async fn open(&mut self) -> Result<&mut Session, Error> {
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
    pub(super) async fn retry_or_fail(
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
    pub(super) async fn stop(&mut self, task_id: &str, why: &str) {
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

    pub(super) async fn fetch(
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
