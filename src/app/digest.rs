//! The agent's digest e-mails: when the next is due, and sending them. Each set of recipients (the
//! admins, each `[email.projects]` project) has its own window in the store, so a restart neither
//! sends twice nor skips one, and a set whose delivery failed is retried (the stages' backoff)
//! without mailing the others again. `View.email.last_digest` is the oldest window: the next digest
//! is due from it.

use super::Agent;
use crate::expose::digest::{Digest, Scope};
use crate::expose::email::{self, Audience};
use crate::model::{now, Stage, UnixSeconds};
use crate::state::EmailStatus;
use crate::store::{self, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// When each audience's last digest went out, in the order given (`None`: never).
fn read_marks(s: &Store, audiences: &[Audience]) -> store::Result<Vec<Option<UnixSeconds>>> {
    audiences
        .iter()
        .map(|a| s.digest_last_sent(a.project.as_deref()))
        .collect()
}

/// The oldest of the audiences' last digests; `None` when one never had one (or there is none).
fn oldest(marks: &[Option<UnixSeconds>]) -> Option<UnixSeconds> {
    if marks.is_empty() {
        return None;
    }
    marks
        .iter()
        .try_fold(f64::INFINITY, |acc, m| m.map(|t| acc.min(t)))
}

/// Who a log line is about: `admins`, or the project.
fn audience_name(a: &Audience) -> &str {
    a.project.as_deref().unwrap_or("admins")
}

impl Agent {
    /// Load when the last digests went out (start-up, and e-mail turned on by a reload).
    pub(super) async fn load_email_state(&mut self) {
        let Some(cfg) = &self.config.email else {
            return;
        };
        let audiences = cfg.audiences();
        let last = match store::blocking(&self.store, move |s| read_marks(s, &audiences)).await {
            Ok(marks) => oldest(&marks),
            Err(e) => {
                tracing::error!(error = %e, "cannot read when the last digest e-mails went out; sending first digests (summaries) after the next scan");
                None
            }
        };
        self.publish_email(|s| s.last_digest = last);
    }

    /// How long until the next digest is due; `None` when e-mail is off or nothing was scanned yet.
    /// A running discovery pass does not hold it up: the findings a pass changes are stamped when
    /// it is stored, so they fall in the window after a digest sent meanwhile.
    pub(super) fn email_due(&self) -> Option<Duration> {
        let cfg = self.config.email.as_ref()?;
        let discovered = self
            .state
            .read()
            .stages
            .get(&Stage::Discovery)
            .is_some_and(|s| s.last_success.is_some());
        let t = now();
        let due = cfg.schedule.due_in(self.email_last_sent(), discovered, t)?;
        let retry = self.email_retry_at.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64((r - t).max(0.0))
        });
        Some(due.max(retry))
    }

    /// Build and send the digest of every audience that is due (abandoned on shutdown: the windows
    /// not yet sent stay open for the next start).
    pub(super) async fn send_digest(&mut self, shutdown: &CancellationToken) {
        let Some(cfg) = self.config.email.clone() else {
            return;
        };
        let audiences = cfg.audiences();
        let wanted = audiences.clone();
        let mut marks = match store::blocking(&self.store, move |s| read_marks(s, &wanted)).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(error = %e, "cannot read when the last digest e-mails went out; retrying later");
                self.metrics.error(Stage::Store, e.kind());
                self.email_failed(now(), cfg.schedule.period());
                return;
            }
        };
        // Built under the findings lock, so every change stamped before `t` is in the view.
        let (t, digests) = {
            let _lock = self.state.lock_findings().await;
            let t = now();
            let view = self.state.read();
            let digests: Vec<(usize, Digest)> = audiences
                .iter()
                .zip(&marks)
                .enumerate()
                .filter(|(_, (_, last))| cfg.schedule.is_due(**last, t))
                .map(|(i, (a, last))| {
                    let scope = Scope {
                        since: *last,
                        until: t,
                        project: a.project.clone(),
                        min_cvss: cfg.min_cvss,
                    };
                    (i, Digest::build(&view, &scope))
                })
                .collect();
            (t, digests)
        };
        let mut failed = false;
        let mut attempted = false;
        for (i, digest) in digests {
            let a = &audiences[i];
            if digest.is_quiet() && !cfg.send_empty {
                tracing::info!(
                    to = audience_name(a),
                    first = digest.first,
                    "digest e-mail not sent: nothing changed since the last one (email.send_empty = false)"
                );
                self.record_sent(a, t).await;
                marks[i] = Some(t);
                continue;
            }
            attempted = true;
            let subject = digest.subject();
            let sent = tokio::select! {
                r = email::send(&cfg, &a.to, &digest) => r,
                _ = shutdown.cancelled() => {
                    tracing::info!("digest e-mail abandoned: shutting down");
                    self.publish_email(|s| s.last_digest = oldest(&marks));
                    return;
                }
            };
            match sent {
                Ok(()) => {
                    tracing::info!(
                        to = audience_name(a),
                        recipients = a.to.len(),
                        server = %cfg.server(),
                        %subject,
                        "digest e-mail sent"
                    );
                    // Counted and marked a success at once (unless another audience's failed
                    // this time): a scrape never sees the count without the success.
                    let all_ok = !failed;
                    self.publish_email(|s| {
                        s.sent += 1;
                        if all_ok {
                            s.last_attempt_ok = Some(true);
                        }
                    });
                    self.record_sent(a, t).await;
                    marks[i] = Some(t);
                }
                Err(e) => {
                    failed = true;
                    tracing::error!(error = %e, to = audience_name(a), "digest e-mail not sent");
                    self.metrics.error(Stage::Email, e.kind());
                }
            }
        }
        if failed {
            let wait = self.email_failed(t, cfg.schedule.period());
            tracing::warn!(retry_in = %humantime::format_duration(wait), "retrying the digest e-mails not sent");
        } else {
            self.email_retry_at = None;
            self.email_failures = 0;
            if attempted {
                self.publish_email(|s| s.last_attempt_ok = Some(true));
            }
        }
        self.publish_email(|s| s.last_digest = oldest(&marks));
    }

    /// `a`'s window is closed at `t`: remember it, durably.
    async fn record_sent(&mut self, a: &Audience, t: UnixSeconds) {
        let project = a.project.clone();
        if let Err(e) = store::blocking(&self.store, move |s| {
            s.set_digest_last_sent(project.as_deref(), t)
        })
        .await
        {
            tracing::error!(error = %e, to = audience_name(a), "cannot record that the digest e-mail went out; a restart may send it again");
            self.metrics.error(Stage::Store, e.kind());
        }
    }

    /// A send failed at `t`: the next attempt waits as the stages' backoff says. Returns the wait.
    fn email_failed(&mut self, t: UnixSeconds, period: Duration) -> Duration {
        self.email_failures = self.email_failures.saturating_add(1);
        let wait = super::schedule::retry_after(self.email_failures, period);
        self.email_retry_at = Some(t + wait.as_secs_f64());
        self.publish_email(|s| s.last_attempt_ok = Some(false));
        wait
    }

    /// The oldest last digest of any audience (kept in the view, which /metrics reads too).
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

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::message::Mailbox;

    fn audience(project: Option<&str>) -> Audience {
        Audience {
            project: project.map(str::to_string),
            to: vec!["ops@example.org".parse::<Mailbox>().unwrap()],
        }
    }

    #[test]
    fn the_oldest_window_decides_and_a_set_never_served_makes_it_none() {
        assert_eq!(oldest(&[]), None);
        assert_eq!(oldest(&[Some(5.0), Some(3.0)]), Some(3.0));
        assert_eq!(oldest(&[Some(5.0), None]), None);
    }

    #[test]
    fn each_audience_keeps_its_own_window_in_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let all = [
            audience(None),
            audience(Some("acme")),
            audience(Some("p-1")),
        ];
        assert_eq!(read_marks(&s, &all).unwrap(), [None, None, None]);
        s.set_digest_last_sent(None, 1_764_000_000.25).unwrap();
        s.set_digest_last_sent(Some("acme"), 1_764_000_100.5)
            .unwrap();
        assert_eq!(
            read_marks(&s, &all).unwrap(),
            [Some(1_764_000_000.25), Some(1_764_000_100.5), None]
        );
        // The digest before findings kept its own key; it is not a findings digest's window.
        s.set_email_last_sent(1.0).unwrap();
        assert_eq!(read_marks(&s, &all[..1]).unwrap(), [Some(1_764_000_000.25)]);
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(
            read_marks(&s, &all[1..2]).unwrap(),
            [Some(1_764_000_100.5)],
            "kept across a restart"
        );
        assert_eq!(audience_name(&all[0]), "admins");
        assert_eq!(audience_name(&all[1]), "acme");
    }
}
