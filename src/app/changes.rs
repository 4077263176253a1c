//! Change polls between full passes: every `poll_interval`, each source that polls (the clouds
//! with `poll_interval` set) is asked what changed since the last look ([`Source::poll_changes`]);
//! the changes are applied to its inventory as a full inventory would apply them (VM records and
//! events, the last good targets), and the targets they touch — an address added, a security-group
//! rule opened, port security turned off, a VM booted, and the ones that lost exposure, to resolve
//! what they closed — are scanned at once in a targeted pass. A poll that finds nothing records
//! nothing.

use super::cycle::Focus;
use super::inventory::{self, LastGood, Round};
use crate::expose::metrics::Metrics;
use crate::inventory::openstack::changes::{patch_targets, Change, ChangeKind, Effect, Stamp};
use crate::inventory::openstack::source::Polled;
use crate::inventory::shard::Shard;
use crate::inventory::Source;
use crate::model::{now, ScanRun, Stage, Trigger, UnixSeconds, Vm};
use crate::state::State;
use crate::store::{self, Store};
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What a round of change polls gave: nothing, or what to store and scan.
pub(super) struct Changed {
    pub round: Round,
    pub focus: Focus,
    pub run: ScanRun,
}

impl super::Agent {
    /// The shortest `poll_interval` of the sources (`None`: none polls for changes).
    pub(super) fn poll_interval(&self) -> Option<std::time::Duration> {
        self.sources.iter().filter_map(|s| s.poll_interval()).min()
    }

    /// How long until the clouds are asked what changed (`None`: not before a pass has run, or
    /// no cloud polls).
    pub(super) fn poll_due(&self) -> Option<std::time::Duration> {
        self.poll_interval()?;
        let at = self.next_poll?;
        Some(std::time::Duration::from_secs_f64(
            (at - now()).clamp(0.0, 86_400.0),
        ))
    }

    /// Start a round of change polls as the loop's pass task.
    pub(super) fn start_poll(
        &mut self,
        shutdown: &CancellationToken,
    ) -> tokio::task::JoinHandle<super::discovery::Done> {
        // Until this one is over (its end schedules the next).
        self.next_poll = None;
        let job = super::discovery::Job {
            config: Arc::new(self.config.clone()),
            generation: self.generation,
            run: super::cycle::new_run(&self.config),
            sources: self.sources.clone(),
            last_good: std::mem::take(&mut self.last_good),
            state: self.state.clone(),
            metrics: self.metrics.clone(),
            fd_limit: self.fd_limit,
            nmap: self.nmap.clone(),
            cancel: shutdown.child_token(),
            mode: super::discovery::Mode::Changes(self.store.clone()),
        };
        tokio::spawn(job.run())
    }
}

/// Everything a round of polls needs.
pub(super) struct Polls<'a> {
    pub sources: &'a [Arc<dyn Source>],
    pub shard: &'a Shard,
    pub last_good: &'a mut LastGood,
    pub state: &'a State,
    pub metrics: &'a Metrics,
    pub store: &'a Store,
    pub skeleton: ScanRun,
    pub cancel: &'a CancellationToken,
}

/// Poll every source with polls on. Returns what changed (`None`: nothing), and whether a cloud's
/// answer asks for a full inventory. Only the VMs a change touched are re-joined, compared, stored
/// and replaced in the view; the rest of the inventory stays as it is.
pub(super) async fn poll(p: Polls<'_>) -> (Option<Changed>, bool) {
    let mut polled: Vec<(&Arc<dyn Source>, Polled)> = Vec::new();
    let mut full_needed = false;
    for s in p.sources.iter().filter(|s| s.poll_interval().is_some()) {
        let result = tokio::select! {
            _ = p.cancel.cancelled() => return (None, false),
            r = s.poll_changes() => r,
        };
        match result {
            Ok(None) => {}
            Ok(Some(found)) => polled.push((s, found)),
            Err(e) => {
                p.metrics.error(Stage::Inventory, e.kind());
                if e.needs_full_inventory() {
                    full_needed = true;
                    tracing::warn!(source = %s.name(), error = %e, "cloud change poll failed; a full inventory runs now");
                } else {
                    tracing::warn!(source = %s.name(), error = %e, "cloud change poll failed; polling again at the next interval");
                }
            }
        }
    }
    if polled.is_empty() {
        return (None, full_needed);
    }
    let mut run = p.skeleton;
    run.trigger = Trigger::Change;
    run.stage = Stage::Targeted;
    let run = match store::blocking(p.store, move |st| st.begin_run(run)).await {
        Ok(r) => r,
        Err(e) => {
            // The sources' cursors moved past these changes: a full inventory catches them.
            tracing::error!(error = %e, "cannot record a change pass; a full inventory runs next");
            p.metrics.error(Stage::Store, e.kind());
            return (None, true);
        }
    };
    let t = now();
    let mut round = Round::default();
    let mut focus = Focus::default();
    for (s, found) in polled {
        let Polled {
            inventory: mut inv,
            touched,
            changes,
            seconds,
        } = found;
        let name = s.name();
        // What the view held of the touched VMs.
        let before: BTreeMap<String, Arc<Vm>> = {
            let view = p.state.read();
            touched
                .iter()
                .filter_map(|id| view.vms.get(id))
                .filter(|v| v.cloud == name)
                .map(|v| (v.id.clone(), v.clone()))
                .collect()
        };
        inv.vms.retain(|v| p.shard.owns(&v.id));
        inv.targets.retain(|(_, t)| p.shard.owns(&t.id));
        carry_over(&mut inv.vms, &before);
        tracing::info!(
            source = %name,
            changes = changes.len(),
            vms = touched.len(),
            exposing = changes.iter().filter(|c| c.effect == Effect::CreatesExposure).count(),
            seconds = format!("{seconds:.2}"),
            scan_id = run.id,
            "cloud changes applied"
        );
        let (events, removed) =
            inventory::replace_vms(p.state, p.shard, name, &before, &inv.vms, run.id, t);
        round.events.extend(events);
        round.removed_vms.extend(removed);
        // Only the VM records a change altered are written (a full pass rewrites them all): a
        // poll of a large cloud would otherwise store every VM again for one new floating IP.
        round.vms.extend(changed_vms(inv.vms, &before));
        let targets = p.last_good.entry(name.to_owned()).or_default();
        patch_targets(targets, inv.targets, &touched);
        focus_on(&mut focus, &changes, targets, t);
    }
    round.to_scan = inventory::cached(p.sources, p.last_good, p.cancel)
        .await
        .to_scan;
    (Some(Changed { round, focus, run }), full_needed)
}

/// The VMs whose records differ from the last ones in more than `last_seen`.
fn changed_vms(vms: Vec<Arc<Vm>>, prev: &BTreeMap<String, Arc<Vm>>) -> Vec<Arc<Vm>> {
    vms.into_iter()
        .filter(|v| prev.get(&v.id).is_none_or(|old| !old.same_facts(v)))
        .collect()
}

/// A VM a poll re-joined keeps when it was first seen, and its last diagnostics (they come with
/// full inventories only).
fn carry_over(vms: &mut [Arc<Vm>], prev: &BTreeMap<String, Arc<Vm>>) {
    for v in vms.iter_mut() {
        let Some(old) = prev.get(&v.id) else {
            continue;
        };
        if let Some(v) = Arc::get_mut(v) {
            v.first_seen = old.first_seen;
            if v.diagnostics.is_none() && old.diagnostics.is_some() {
                v.diagnostics = old.diagnostics.clone();
                v.diagnostics_error = old.diagnostics_error.clone();
            }
        }
    }
}

/// Seconds since the epoch of a cloud timestamp.
fn seconds(s: Stamp) -> UnixSeconds {
    s.as_millisecond() as f64 / 1000.0
}

/// Add to `focus` the targets `changes` touch (by instance or address), when the latest exposing
/// change of each happened, and the VMs deleted.
fn focus_on(
    focus: &mut Focus,
    changes: &[Change],
    targets: &[(Option<String>, crate::model::Target)],
    t: UnixSeconds,
) {
    for c in changes {
        tracing::debug!(kind = ?c.kind, effect = ?c.effect, instances = ?c.instances, addresses = ?c.addresses, updated_at = ?c.updated_at, "cloud change");
        if matches!(c.kind, ChangeKind::VmDeleted) {
            focus.gone.extend(c.instances.iter().cloned());
            continue;
        }
        let at = c.updated_at.map_or(t, seconds);
        for (_, target) in targets {
            let instance = crate::inventory::shard::key(&target.id);
            let touched =
                c.instances.iter().any(|i| i == instance) || c.addresses.contains(&target.address);
            if !touched {
                continue;
            }
            focus.hosts.insert(target.id.clone());
            if c.effect == Effect::CreatesExposure {
                // The latest exposing change is the one that completed the exposure (a server
                // listed for its new address still carries its older `updated`).
                let since = focus.since.entry(target.id.clone()).or_insert(at);
                *since = since.max(at);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Target;

    fn target(id: &str) -> (Option<String>, Target) {
        let address = id.rsplit('/').next().unwrap().parse().unwrap();
        (
            None,
            Target {
                id: id.into(),
                ..Target::address(address, "cloud")
            },
        )
    }

    fn change(kind: ChangeKind, effect: Effect, instances: &[&str], at: Option<i64>) -> Change {
        Change {
            kind,
            effect,
            instances: instances.iter().map(|i| i.to_string()).collect(),
            addresses: Vec::new(),
            ports: Vec::new(),
            updated_at: at.map(|s| Stamp::from_second(s).unwrap()),
        }
    }

    #[test]
    fn only_vms_a_change_altered_are_written_again() {
        let vm = |id: &str, name: &str, seen: f64| {
            Arc::new(Vm {
                name: name.into(),
                last_seen: seen,
                ..crate::app::inventory::tests::vm(id, "c")
            })
        };
        let prev = BTreeMap::from([
            ("a".to_owned(), vm("a", "web", 1.0)),
            ("b".to_owned(), vm("b", "db", 1.0)),
        ]);
        // a: only seen again; b: renamed; c: new.
        let now = vec![
            vm("a", "web", 9.0),
            vm("b", "db-2", 9.0),
            vm("c", "new", 9.0),
        ];
        let written: Vec<String> = changed_vms(now, &prev)
            .iter()
            .map(|v| v.id.clone())
            .collect();
        assert_eq!(written, ["b", "c"]);
    }

    #[test]
    fn changes_focus_on_the_targets_they_touch() {
        let targets = [
            target("a/p1/10.0.0.1"),
            target("a/p2/10.0.0.2"),
            target("b/p3/10.0.0.3"),
            target("c/p4/10.0.0.4"),
        ];
        let mut by_address = change(ChangeKind::VmChanged, Effect::Neutral, &[], Some(50));
        by_address.addresses = vec!["10.0.0.3".parse().unwrap()];
        let changes = [
            // An old stamp on the server, then the address that completed the exposure.
            change(
                ChangeKind::VmChanged,
                Effect::CreatesExposure,
                &["a"],
                Some(100),
            ),
            change(
                ChangeKind::VmChanged,
                Effect::CreatesExposure,
                &["a"],
                Some(400),
            ),
            by_address,
            change(
                ChangeKind::VmDeleted,
                Effect::RemovesExposure,
                &["d"],
                Some(500),
            ),
            change(ChangeKind::VmChanged, Effect::CreatesExposure, &["c"], None),
        ];
        let mut focus = Focus::default();
        focus_on(&mut focus, &changes, &targets, 900.0);
        let mut hosts: Vec<&str> = focus.hosts.iter().map(String::as_str).collect();
        hosts.sort();
        assert_eq!(
            hosts,
            [
                "a/p1/10.0.0.1",
                "a/p2/10.0.0.2",
                "b/p3/10.0.0.3",
                "c/p4/10.0.0.4"
            ]
        );
        assert_eq!(focus.since.get("a/p1/10.0.0.1"), Some(&400.0));
        assert_eq!(focus.since.get("a/p2/10.0.0.2"), Some(&400.0));
        // A change that exposes nothing rescans without a latency; one without a stamp counts
        // from when it was seen.
        assert_eq!(focus.since.get("b/p3/10.0.0.3"), None);
        assert_eq!(focus.since.get("c/p4/10.0.0.4"), Some(&900.0));
        assert!(focus.gone.contains("d") && focus.gone.len() == 1);
    }
}
