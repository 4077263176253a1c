//! Storing a finished pass: the hosts, events, VM records and findings it changed in one batch, then
//! the view and the metrics (a targeted pass touches only its own hosts); retention after it.

use super::{cycle, findings, inventory, schedule, Agent};
use crate::model::{now, Outcome, Stage};
use crate::state::StageStatus;
use crate::store::{self, Commit};

impl Agent {
    /// Store a pass atomically, then publish it to the view and the metrics.
    pub(super) async fn commit(&mut self, mut pass: cycle::Pass, round: inventory::Round) {
        let run = pass.run.clone();
        let ok = run.outcome == Outcome::Success;
        // An on-demand pass over a few targets: it touches their hosts only, and neither the
        // groups' coverage nor discovery's schedule.
        let targeted = !run.trigger.is_full_pass();
        let stage = if targeted {
            Stage::Targeted
        } else {
            Stage::Discovery
        };
        let mut events = round.events;
        events.extend(pass.events.iter().cloned());
        // Findings change in the same batch as the hosts that change them.
        let findings_lock = self.state.clone();
        let findings_guard = findings_lock.lock_findings().await;
        // Hosts another shard owns now are handed over: their findings leave, unresolved.
        let (handed_over, left): (Vec<String>, Vec<String>) = if ok {
            let ids = self.handed_over(&pass.removed);
            let shard = &self.config.shard;
            (
                ids,
                pass.removed
                    .iter()
                    .filter(|h| shard.owns(h))
                    .cloned()
                    .collect(),
            )
        } else {
            (Vec::new(), Vec::new())
        };
        // The findings' changes are stamped now, under the findings lock, not at the pass's end: a
        // digest may close its window while a pass runs (it takes its time under the same lock),
        // and what this pass changed then belongs to the next window, never to a closed one.
        let changed_at = now().max(run.finished.unwrap_or(0.0));
        let findings = if ok {
            self.findings_of(
                &pass.hosts,
                &left,
                crate::judge::findings::Covers::All,
                Some(run.id),
                changed_at,
            )
        } else {
            Vec::new()
        };
        let mut findings = findings;
        self.mark_detection(&mut findings, run.trigger, &pass.since);
        let commit = Commit {
            run: Some(run.clone()),
            // Moved, not copied: a full pass of a large cloud holds megabytes of host states,
            // and they come back with the batch for the view.
            hosts: std::mem::take(&mut pass.hosts),
            removed_hosts: pass.removed.clone(),
            events,
            vms: round.vms,
            removed_vms: round.removed_vms,
            findings,
            handed_over: handed_over.clone(),
        };
        let (stored, commit) =
            match store::blocking(&self.store, move |s| Ok((s.commit(&commit), commit))).await {
                Ok((stored, commit)) => (stored, Some(commit)),
                Err(e) => (Err(e), None),
            };
        if let Some(r) = &pass.services {
            let ok = r.errors.is_empty();
            self.metrics.run(
                Stage::Services,
                if ok { "success" } else { "failed" },
                r.seconds,
            );
            for (kind, _) in &r.errors {
                self.metrics.error(Stage::Services, kind);
            }
            let finished = r.started + r.seconds;
            let mut view = self.state.write();
            let interval = self.config.discovery_interval;
            let jitter = self.config.jitter;
            let s = view.stages.entry(Stage::Services).or_insert(StageStatus {
                interval,
                jitter,
                ..StageStatus::default()
            });
            schedule::record(s, ok, finished);
        }
        let seconds = run.finished.unwrap_or_else(now) - run.started;
        self.metrics.run(stage, run.outcome.as_str(), seconds);
        self.metrics.probes(&run.probes);
        let r = pass.reprobes;
        self.metrics
            .reprobes(r.confirmed, r.transient, r.recovered, r.gone);
        let commit = match (stored, commit) {
            (Ok(()), Some(commit)) => commit,
            (Err(e), _) => {
                tracing::error!(error = %e, scan_id = run.id, "cannot store the scan; serving the previous state");
                self.metrics.error(Stage::Store, e.kind());
                if !targeted {
                    self.set_stage(|s| schedule::record(s, false, now()));
                }
                return;
            }
            (Ok(()), None) => return, // not reached: a stored batch comes back
        };
        if !ok {
            for e in &run.errors {
                let kind = if run.outcome == Outcome::Cancelled {
                    "cancelled"
                } else {
                    "scan"
                };
                self.metrics.error(stage, kind);
                tracing::warn!(scan_id = run.id, error = %e, "discovery run did not complete");
            }
        }
        {
            let mut view = self.state.write();
            if ok {
                for id in &pass.removed {
                    view.hosts.remove(id);
                }
                for h in commit.hosts {
                    view.hosts.insert(h.id.clone(), h);
                }
                findings::publish(&mut view, commit.findings);
                for id in &handed_over {
                    view.findings.remove(id);
                }
                if !handed_over.is_empty() {
                    tracing::info!(
                        findings = handed_over.len(),
                        "findings of hosts another shard owns now handed over"
                    );
                }
            }
            let finished = run.finished.unwrap_or_else(now);
            if ok && targeted {
                for (id, group, scanned) in &pass.targets {
                    if *scanned {
                        let scan = crate::state::TargetScan {
                            group: group.clone(),
                            last: Some(finished),
                        };
                        view.target_scans.insert(id.clone(), scan);
                    }
                }
            } else if ok {
                let previous = std::mem::take(&mut view.target_scans);
                view.target_scans = pass
                    .targets
                    .iter()
                    .map(|(id, group, scanned)| {
                        let last = if *scanned {
                            Some(finished)
                        } else {
                            previous.get(id).and_then(|t| t.last)
                        };
                        (
                            id.clone(),
                            crate::state::TargetScan {
                                group: group.clone(),
                                last,
                            },
                        )
                    })
                    .collect();
            }
            if targeted {
                // Neither the groups' coverage nor discovery's schedule is a targeted pass's.
            } else {
                view.out_of_scope = pass.out_of_scope.clone();
            }
            for (name, targets, complete) in pass.groups.iter().filter(|_| !targeted) {
                if let Some(g) = view.groups.iter_mut().find(|g| &g.name == name) {
                    g.targets = *targets;
                    if ok && *complete {
                        g.last_success = Some(finished);
                        g.last_duration = seconds;
                    }
                }
            }
            if let Some(s) = view.stages.get_mut(&Stage::Discovery).filter(|_| !targeted) {
                schedule::record(s, ok, finished);
            }
        }
        tracing::info!(
            scan_id = run.id,
            outcome = run.outcome.as_str(),
            seconds = format!("{seconds:.2}"),
            targets = run.targets,
            hosts_up = run.hosts_up,
            open_ports = run.open_ports,
            unexpected_ports = run.unexpected_ports,
            events = pass.events.len(),
            targeted,
            "discovery run finished"
        );
        drop(findings_guard);
        self.prune().await;
    }

    pub(super) async fn prune(&self) {
        let t = now();
        let scans_before = t - self.config.storage.scan_retention.as_secs_f64();
        let events_before = t - self.config.storage.event_retention.as_secs_f64();
        match store::blocking(&self.store, move |s| s.prune(scans_before, events_before)).await {
            Ok((0, 0)) => {}
            Ok((scans, events)) => tracing::info!(scans, events, "retention removed old records"),
            Err(e) => {
                tracing::warn!(error = %e, "retention failed; will try again after the next scan");
                self.metrics.error(Stage::Store, e.kind());
            }
        }
        // Resolved findings are kept as long as events.
        let _findings_lock = self.state.lock_findings().await;
        match store::blocking(&self.store, move |s| s.prune_findings(events_before)).await {
            Ok(gone) if gone.is_empty() => {}
            Ok(gone) => {
                tracing::info!(findings = gone.len(), "retention removed resolved findings");
                let mut view = self.state.write();
                for id in gone {
                    view.findings.remove(&id);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "retention of findings failed; will try again after the next scan");
                self.metrics.error(Stage::Store, e.kind());
            }
        }
    }
}
