//! The agent's digest e-mail: when the next one is due, and sending it — the view and the events
//! since the last digest become a [`Digest`], the mailer delivers it, and the store remembers when,
//! so a restart neither sends twice nor skips a window. A failed delivery is retried, not fatal.

use super::Agent;
use crate::expose::digest::{Digest, Scope};
use crate::expose::email;
use crate::model::{now, Stage, UnixSeconds};
use crate::state::EmailStatus;
use crate::store;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

impl Agent {
    /// Load when the last digest went out (start-up).
    pub(super) async fn load_email_state(&mut self) {
        if self.config.email.is_none() {
            return;
        }
        let last = match store::blocking(&self.store, |s| s.email_last_sent()).await {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot read when the last digest e-mail went out; the next one covers one interval");
                None
            }
        };
        self.publish_email(|s| s.last_digest = last);
    }

    /// How long until the next digest is due; `None` when e-mail is off or nothing was scanned yet.
    pub(super) fn email_due(&self) -> Option<Duration> {
        let cfg = self.config.email.as_ref()?;
        let discovered = self
            .state
            .read()
            .stages
            .get(&Stage::Discovery)
            .and_then(|s| s.last_success)
            .is_some();
        let t = now();
        let due = email::due_in(self.email_last_sent(), discovered, t, cfg.interval)?;
        let retry = self.email_retry_at.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64((r - t).max(0.0))
        });
        Some(due.max(retry))
    }

    /// Build the digest of the window since the last one and send it (abandoned on shutdown: the
    /// window stays open for the next start).
    pub(super) async fn send_digest(&mut self, shutdown: &CancellationToken) {
        let Some(cfg) = self.config.email.clone() else {
            return;
        };
        let t = now();
        let since = email::window_start(self.email_last_sent(), t, cfg.interval);
        let scope = Scope {
            since,
            now: t,
            min_cvss: cfg.min_cvss,
        };
        let query = scope.changes_query();
        let events = match store::blocking(&self.store, move |s| s.events(&query)).await {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the changes for the digest e-mail; retrying later");
                self.metrics.error(Stage::Store, e.kind());
                self.email_failed(t, cfg.interval);
                return;
            }
        };
        let digest = Digest::from_window(&self.state.read(), events, scope);
        if digest.is_quiet() && !cfg.send_empty {
            tracing::info!(
                "digest e-mail not sent: nothing unexpected, no vulnerable host, no change (email.send_empty = false)"
            );
            self.record_sent(t).await;
            return;
        }
        let subject = digest.subject();
        let sent = tokio::select! {
            r = email::send(&cfg, &digest) => r,
            _ = shutdown.cancelled() => {
                tracing::info!("digest e-mail abandoned: shutting down");
                return;
            }
        };
        match sent {
            Ok(()) => {
                tracing::info!(
                    recipients = cfg.to.len(),
                    server = %format!("{}:{}", cfg.host, cfg.port),
                    %subject,
                    "digest e-mail sent"
                );
                self.publish_email(|s| {
                    s.last_attempt_ok = Some(true);
                    s.sent += 1;
                });
                self.record_sent(t).await;
            }
            Err(e) => {
                let wait = self.email_failed(t, cfg.interval);
                tracing::error!(error = %e, retry_in = %humantime::format_duration(wait), "digest e-mail not sent");
                self.metrics.error(Stage::Email, e.kind());
            }
        }
    }

    /// The window is closed at `t`: remember it, durably.
    async fn record_sent(&mut self, t: UnixSeconds) {
        self.email_retry_at = None;
        self.email_failures = 0;
        self.publish_email(|s| s.last_digest = Some(t));
        if let Err(e) = store::blocking(&self.store, move |s| s.set_email_last_sent(t)).await {
            tracing::error!(error = %e, "cannot record that the digest e-mail went out; a restart may send it again");
            self.metrics.error(Stage::Store, e.kind());
        }
    }

    /// A send failed at `t`: the next attempt waits as the stages' backoff says. Returns the wait.
    fn email_failed(&mut self, t: UnixSeconds, interval: Duration) -> Duration {
        self.email_failures = self.email_failures.saturating_add(1);
        let wait = super::schedule::retry_after(self.email_failures, interval);
        self.email_retry_at = Some(t + wait.as_secs_f64());
        self.publish_email(|s| s.last_attempt_ok = Some(false));
        wait
    }

    /// When the last digest window closed (kept in the view, which /metrics reads too).
    fn email_last_sent(&self) -> Option<UnixSeconds> {
        self.state.read().email.as_ref().and_then(|e| e.last_digest)
    }

    fn publish_email(&self, f: impl FnOnce(&mut EmailStatus)) {
        f(self
            .state
            .write()
            .email
            .get_or_insert_with(EmailStatus::default));
    }
}
