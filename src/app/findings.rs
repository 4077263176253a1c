//! The agent's side of findings: which findings a stored pass, a Greenbone report or a reload
//! changes (the judge decides how; here they are grouped by host and handed over), publishing them
//! to the view, and the timer that enforces acknowledgement expiry. Whoever changes findings holds
//! the state's findings lock from reading them to publishing them, so an API ack and a pass never
//! overwrite each other.

use super::Agent;
use crate::judge::findings::{self, Context, Covers};
use crate::model::Stage;
use crate::model::{now, Finding, FindingEventKind, FindingState, HostState, UnixSeconds};
use crate::state::View;
use crate::store;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The findings changed by judged `hosts` (each scanned now, per `covers`) and by `removed` hosts
/// (left the inventory), given every current finding.
pub(super) fn changed_by(
    current: &BTreeMap<String, Finding>,
    hosts: &[HostState],
    removed: &[String],
    covers: Covers,
    ctx: &Context<'_>,
) -> Vec<Finding> {
    let mut by_host: HashMap<&str, Vec<&Finding>> = HashMap::new();
    for f in current.values() {
        by_host.entry(f.host.as_str()).or_default().push(f);
    }
    let mut out = Vec::new();
    for h in hosts {
        let prev = by_host.get(h.id.as_str()).map_or(&[][..], Vec::as_slice);
        out.extend(findings::observe(prev, h, covers, ctx));
    }
    for id in removed {
        if let Some(prev) = by_host.get(id.as_str()) {
            out.extend(findings::host_removed(prev, ctx));
        }
    }
    out
}

/// Put changed findings into the view, and log what pages or stops paging.
pub(super) fn publish(view: &mut View, changed: Vec<Finding>) {
    let (mut confirmed, mut resolved) = (0usize, 0usize);
    for f in changed {
        let before = view.findings.get(&f.id).map(|o| o.state);
        if f.state != before.unwrap_or(FindingState::Resolved) {
            match f.state {
                FindingState::Confirmed if before != Some(FindingState::Stale) => {
                    confirmed += 1;
                    if confirmed <= 20 {
                        tracing::info!(finding = %f.id, kind = f.kind.as_str(), host = %f.host, key = %f.key, severity = f.severity.as_str(), "finding confirmed");
                    }
                }
                FindingState::Resolved => {
                    resolved += 1;
                    if resolved <= 20 {
                        tracing::info!(finding = %f.id, kind = f.kind.as_str(), host = %f.host, key = %f.key, "finding resolved");
                    }
                }
                _ => {}
            }
        }
        if let Some(e) = f.history.last() {
            if e.kind == FindingEventKind::AckExpired {
                tracing::info!(finding = %f.id, by = e.by.as_deref().unwrap_or("-"), "acknowledgement expired: the finding alerts again");
            }
        }
        view.findings.insert(f.id.clone(), f);
    }
    if confirmed > 20 || resolved > 20 {
        tracing::info!(
            confirmed,
            resolved,
            "findings changed (the first 20 of each are logged)"
        );
    }
}

impl Agent {
    /// The judge's context for a change made now.
    fn context(&self, scan_id: Option<u64>, t: UnixSeconds) -> Context<'_> {
        Context {
            settings: &self.config.findings,
            policy: &self.config.policy,
            scan_id,
            now: t,
        }
    }

    /// Findings changed by hosts judged in run `scan_id` (read under the findings lock, which the
    /// caller holds until it publishes).
    pub(super) fn findings_of(
        &self,
        hosts: &[HostState],
        removed: &[String],
        covers: Covers,
        scan_id: Option<u64>,
        t: UnixSeconds,
    ) -> Vec<Finding> {
        let ctx = self.context(scan_id, t);
        let view = self.state.read();
        changed_by(&view.findings, hosts, removed, covers, &ctx)
    }

    /// The ids of findings on hosts in `removed` that another shard owns now (`shard.count`
    /// changed): they are handed over (deleted here, found again by their new owner), not resolved.
    pub(super) fn handed_over(&self, removed: &[String]) -> Vec<String> {
        let shard = &self.config.shard;
        let gone: std::collections::HashSet<&str> = removed
            .iter()
            .filter(|id| !shard.owns(id))
            .map(String::as_str)
            .collect();
        if gone.is_empty() {
            return Vec::new();
        }
        let view = self.state.read();
        view.findings
            .values()
            .filter(|f| gone.contains(f.host.as_str()))
            .map(|f| f.id.clone())
            .collect()
    }

    /// Findings that a targeted pass confirmed now carry what triggered it and how long after the
    /// triggering change (or request) they were confirmed; the latency is observed in
    /// `stinger_detection_latency_seconds`. A full pass's findings say `full_pass`.
    pub(super) fn mark_detection(
        &self,
        changed: &mut [Finding],
        trigger: crate::model::Trigger,
        since: &BTreeMap<String, UnixSeconds>,
    ) {
        let view = self.state.read();
        for f in changed.iter_mut() {
            if f.state != FindingState::Confirmed {
                continue;
            }
            let was_confirmed = view.findings.get(&f.id).is_some_and(|o| {
                o.occurrence == f.occurrence
                    && matches!(o.state, FindingState::Confirmed | FindingState::Stale)
            });
            if was_confirmed {
                continue;
            }
            f.trigger = trigger;
            f.detection_latency = None;
            if let (Some(at), Some(confirmed)) = (since.get(&f.host), f.confirmed_at) {
                let latency = (confirmed - at).max(0.0);
                f.detection_latency = Some(latency);
                self.metrics.detected(trigger, latency);
            }
        }
    }

    /// How long until the next acknowledgement expires (the loop wakes then to enforce it).
    pub(super) fn findings_due(&self) -> Option<Duration> {
        let next = findings::next_expiry(self.state.read().findings.values())?;
        Some(Duration::from_secs_f64((next - now()).clamp(0.0, 86_400.0)))
    }

    /// Review every finding's acknowledgement against the clock and the configuration's
    /// exceptions; store and publish what changed. Returns how many changed.
    pub(super) async fn review_findings(&mut self) -> usize {
        let _lock = self.state.lock_findings().await;
        let t = now();
        let changed: Vec<Finding> = {
            let ctx = self.context(None, t);
            let view = self.state.read();
            view.findings
                .values()
                .filter_map(|f| findings::review(f, &ctx))
                .collect()
        };
        if changed.is_empty() {
            return 0;
        }
        let n = changed.len();
        let write = changed.clone();
        if let Err(e) = store::blocking(&self.store, move |s| s.put_findings(&write)).await {
            tracing::error!(error = %e, "cannot store acknowledgement changes; will try again");
            self.metrics.error(Stage::Store, e.kind());
            return 0;
        }
        publish(&mut self.state.write(), changed);
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::judge::findings::Settings;
    use crate::judge::Policy;
    use crate::model::{PortFinding, Protocol, Verdict};

    fn host(id: &str, up: bool, ports: &[u16]) -> HostState {
        HostState {
            id: id.into(),
            address: std::net::IpAddr::from([127, 0, 0, 9]),
            group: "g".into(),
            up,
            ports: ports
                .iter()
                .map(|&port| PortFinding {
                    port,
                    protocol: Protocol::Tcp,
                    verdict: Verdict::Unexpected,
                    rule: "default".into(),
                    since: 0.0,
                    service: None,
                    vulns: Vec::new(),
                    world: None,
                    amplification: None,
                    udp: None,
                })
                .collect(),
            first_seen: 0.0,
            last_seen: 0.0,
            last_scan: 0.0,
            last_scan_id: 1,
            udp_open_filtered: Vec::new(),
            os: Vec::new(),
            vulns: Vec::new(),
            vm: None,
            exposure: None,
            answers_everything: None,
        }
    }

    #[test]
    fn findings_follow_their_own_host_and_resolve_when_it_leaves() {
        let settings = Settings::default();
        let policy = Policy::default();
        let ctx = Context {
            settings: &settings,
            policy: &policy,
            scan_id: Some(1),
            now: 1.0,
        };
        let mut view = View::default();
        let a = host("127.0.0.9", true, &[8080]);
        let b = host("127.0.0.10", true, &[9090, 9091]);
        let changed = changed_by(&view.findings, &[a, b], &[], Covers::All, &ctx);
        assert_eq!(changed.len(), 3);
        publish(&mut view, changed);
        // Only host a is scanned again, without its port: b's findings are untouched.
        let a = host("127.0.0.9", true, &[]);
        let changed = changed_by(&view.findings, &[a], &[], Covers::All, &ctx);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].host, "127.0.0.9");
        assert_eq!(changed[0].missed, 1);
        publish(&mut view, changed);
        let gone = changed_by(
            &view.findings,
            &[],
            &["127.0.0.10".into()],
            Covers::All,
            &ctx,
        );
        assert_eq!(gone.len(), 2);
        assert!(gone.iter().all(|f| f.state == FindingState::Resolved));
    }
}
