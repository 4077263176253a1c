//! On-demand scans in the loop: a run the API queued (`POST /api/v1/scans`) starts as a targeted
//! pass when no pass is under way — the clouds' last good inventories and the CIDR groups, only the
//! requested targets (and ports) — and is stored like any pass, changing no other host.

use super::{cycle, discovery, Agent};
use crate::model::{now, Outcome, ScanRun, Stage};
use crate::store;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

impl Agent {
    /// Start the queued on-demand run `run` as a targeted pass; `None` when it cannot start (its
    /// record then says why).
    pub(super) async fn start_targeted(
        &mut self,
        mut run: ScanRun,
        shutdown: &CancellationToken,
    ) -> Option<JoinHandle<discovery::Done>> {
        let request = run.request.clone()?;
        run.outcome = Outcome::Running;
        run.started = now();
        run.groups = self.config.groups.iter().map(|g| g.name.clone()).collect();
        let ports = match request.ports.as_deref().map(crate::ports::PortList::parse) {
            None => None,
            Some(Ok(p)) => Some(p),
            Some(Err(e)) => {
                // The API checked the list; a reload cannot change it. Recorded, not run.
                self.fail_queued(run, format!("ports {:?}: {e}", request.ports))
                    .await;
                return None;
            }
        };
        let record = run.clone();
        if let Err(e) = store::blocking(&self.store, move |s| s.put_run(&record)).await {
            tracing::error!(error = %e, scan_id = run.id, "cannot record the on-demand scan's start; skipping it");
            self.metrics.error(Stage::Store, e.kind());
            return None;
        }
        tracing::info!(
            scan_id = run.id,
            user = %request.by,
            targets = request.hosts.len(),
            ports = request.ports.as_deref().unwrap_or("(each group's)"),
            waited = format!("{:.1}", now() - request.at),
            "on-demand scan started"
        );
        let job = discovery::Job {
            config: Arc::new(self.config.clone()),
            generation: self.generation,
            run,
            sources: self.sources.clone(),
            last_good: std::mem::take(&mut self.last_good),
            state: self.state.clone(),
            metrics: self.metrics.clone(),
            fd_limit: self.fd_limit,
            nmap: self.nmap.clone(),
            cancel: shutdown.child_token(),
            mode: discovery::Mode::Focused(cycle::Focus {
                since: request
                    .hosts
                    .iter()
                    .map(|h| (h.clone(), request.at))
                    .collect(),
                hosts: request.hosts.into_iter().collect(),
                ports,
                gone: Default::default(),
            }),
        };
        Some(tokio::spawn(job.run()))
    }

    /// Record a queued run as failed without running it.
    async fn fail_queued(&mut self, mut run: ScanRun, error: String) {
        tracing::warn!(scan_id = run.id, error = %error, "on-demand scan not run");
        run.outcome = Outcome::Failed;
        run.finished = Some(now());
        run.errors.push(error);
        self.metrics.run(Stage::Targeted, "failed", 0.0);
        if let Err(e) = store::blocking(&self.store, move |s| s.put_run(&run)).await {
            tracing::error!(error = %e, "cannot record the failed on-demand scan");
            self.metrics.error(Stage::Store, e.kind());
        }
    }
}
