//! A new configuration while running: SIGHUP loads and validates the file again and applies it (an
//! invalid one keeps the old, and says why), re-judging every known host under the new policy at
//! once; a pass that ran under the old configuration is judged again when it lands.

use super::restore::{exceptions_of, group_status};
use super::{cycle, findings, inventory, Agent};
use crate::config;
use crate::judge;
use crate::model::{now, HostState, Stage};
use crate::state::StageStatus;
use crate::store::{self, Commit};
use std::sync::atomic::Ordering;

impl Agent {
    /// Judge every known host again under `policy`; store and publish what changed. Returns how
    /// many hosts changed, or `None` when the store refused them (nothing published then).
    pub(super) async fn rejudge(&mut self, policy: &crate::judge::policy::Policy) -> Option<usize> {
        let t = now();
        let mut changed: Vec<HostState> = Vec::new();
        let mut events = Vec::new();
        {
            let view = self.state.read();
            for h in view.hosts.values() {
                let metadata =
                    h.vm.as_ref()
                        .and_then(|l| view.vms.get(&l.vm_id))
                        .map(|v| &v.metadata);
                let j = judge::rejudge(h, policy, metadata, t);
                if !j.events.is_empty() {
                    events.extend(j.events);
                    changed.extend(j.state);
                }
            }
        }
        let n = changed.len();
        // Findings follow the new verdicts, and the new exceptions, at once: every known host's
        // state (re-judged or not) under the new policy.
        let state = self.state.clone();
        let _findings_lock = state.lock_findings().await;
        let findings: Vec<crate::model::Finding> = {
            let ctx = crate::judge::findings::Context {
                settings: &self.config.findings,
                policy,
                scan_id: None,
                now: t,
            };
            let view = self.state.read();
            let rejudged: std::collections::HashMap<&str, &HostState> =
                changed.iter().map(|h| (h.id.as_str(), h)).collect();
            let hosts: Vec<HostState> = view
                .hosts
                .values()
                .map(|h| (*rejudged.get(h.id.as_str()).unwrap_or(&h)).clone())
                .collect();
            let mut out = findings::changed_by(
                &view.findings,
                &hosts,
                &[],
                crate::judge::findings::Covers::Policy,
                &ctx,
            );
            // Findings of hosts no longer in the view: only their acknowledgements change.
            out.extend(
                view.findings
                    .values()
                    .filter(|f| !view.hosts.contains_key(&f.host))
                    .filter_map(|f| crate::judge::findings::review(f, &ctx)),
            );
            out
        };
        let commit = Commit {
            run: None,
            hosts: changed.clone(),
            removed_hosts: Vec::new(),
            events,
            findings: findings.clone(),
            ..Default::default()
        };
        if let Err(e) = store::blocking(&self.store, move |s| s.commit(&commit)).await {
            tracing::error!(error = %e, "cannot store re-judged verdicts; keeping the running configuration");
            self.metrics.error(Stage::Store, e.kind());
            return None;
        }
        let mut view = self.state.write();
        for h in changed {
            view.hosts.insert(h.id.clone(), h);
        }
        findings::publish(&mut view, findings);
        Some(n)
    }

    /// SIGHUP: load and validate the file again; apply it, or keep the old one and say why.
    pub(super) async fn reload(&mut self) {
        let new = match config::load(self.config_path.as_deref(), &self.overrides) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "configuration reload failed; keeping the running configuration");
                self.metrics.error(Stage::Config, "reload");
                return;
            }
        };
        // The listener, its TLS/auth file and the telemetry path are set up once; `max_port_series`,
        // `vm_metadata` and `max_device_series` apply now.
        let (w, old) = (&new.web, &self.config.web);
        let web_moved = w.listen != old.listen
            || w.config_file != old.config_file
            || w.telemetry_path != old.telemetry_path;
        if new.storage.path != self.config.storage.path || web_moved {
            tracing::warn!(
                "storage.path and web.listen_address, web.config_file and web.telemetry_path change only on restart; the rest is applied now"
            );
        }
        self.max_port_series
            .store(new.web.max_port_series, Ordering::Relaxed);
        {
            let mut view = self.state.write();
            view.max_ack = new.max_ack;
            view.vm_metadata = new.web.vm_metadata;
            view.max_device_series = new.web.max_device_series;
            view.scans_per_minute = new.scans_per_minute;
            view.exceptions = exceptions_of(&new.policy);
        }
        // Re-judge the known state under the new policy so verdicts change at once.
        let Some(changed) = self.rejudge(&new.policy).await else {
            return;
        };
        self.generation += 1;
        let recent = store::blocking(&self.store, |s| s.scans(None, 200))
            .await
            .unwrap_or_default();
        {
            let mut view = self.state.write();
            view.groups = group_status(&new, &recent);
            if let Some(s) = view.stages.get_mut(&Stage::Discovery) {
                s.interval = new.discovery_interval;
                s.jitter = new.jitter;
            }
            match &new.gmp {
                Some((_, interval)) => {
                    let s = view
                        .stages
                        .entry(Stage::Vulnerabilities)
                        .or_insert(StageStatus {
                            interval: *interval,
                            ..StageStatus::default()
                        });
                    s.interval = *interval;
                }
                None => {
                    view.stages.remove(&Stage::Vulnerabilities);
                }
            }
        }
        tracing::info!(
            config = %new.source,
            verdicts_changed = changed,
            "configuration reloaded"
        );
        // Clouds get new sessions (a changed clouds.yaml or password applies too); a source that
        // keeps its name keeps its last good inventory. The CIDR groups follow the new
        // configuration whatever happens to the clouds.
        match inventory::build(&new) {
            Ok(sources) => {
                self.last_good
                    .retain(|name, _| sources.iter().any(|s| s.live() && s.name() == name));
                self.sources = sources;
            }
            Err((e, static_sources)) => {
                tracing::error!(error = %format!("{e:#}"), "cannot set up the reloaded OpenStack sources; keeping the running ones");
                self.metrics.error(Stage::Config, "reload");
                let running = self.sources.iter().filter(|s| s.live()).cloned();
                self.sources = static_sources.into_iter().chain(running).collect();
            }
        }
        self.nmap = cycle::nmap_capabilities(&new).await;
        self.config = new;
        // The digest follows the new [email] at once; its window survives in the store either way.
        if self.config.email.is_none() {
            self.state.write().email = None;
            self.email_retry_at = None;
        } else {
            // Windows of recipient sets the reload added start now (their first digest is a
            // summary); known ones keep theirs.
            self.load_email_state().await;
        }
    }
}
