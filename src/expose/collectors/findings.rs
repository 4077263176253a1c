//! Exports the findings and what their alerts rest on: `stinger_findings` (every finding by kind,
//! state and severity: all 96 combinations, zeros included), `stinger_findings_acknowledged` (by
//! kind), `stinger_policy_exceptions` (active and expired),
//! `stinger_finding_confirmed_timestamp_seconds` (one series per alerting finding — confirmed, not
//! acknowledged — what the alerts page on), `stinger_hosts_unreachable` (hosts whose findings go
//! stale), `stinger_hosts_answering_everything` (hosts with one finding in place of per-port ones,
//! and no per-port series) and `stinger_targets_scan_overdue` (targets no pass has scanned lately,
//! whose findings can neither appear nor resolve). The per-finding series come first in the
//! `web.max_port_series` budget (most severe first); the per-port series get what is left, and the
//! ports collector counts what both leave out.

use super::gauges;
use crate::model::{Finding, FindingKind, FindingState, Severity, Stage, UnixSeconds};
use crate::state::{State, View};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Encodes the findings families.
#[derive(Debug)]
pub(crate) struct Findings {
    pub(super) state: Arc<State>,
    pub(super) max_port_series: Arc<AtomicUsize>,
}

/// The findings that page (confirmed, not acknowledged) in the order the series budget keeps
/// them: most severe first, then by kind and id, so the same ones stay in from scrape to scrape.
pub(super) fn alerting(view: &View) -> Vec<&Finding> {
    let mut out: Vec<&Finding> = view.findings.values().filter(|f| f.alerting()).collect();
    out.sort_by(|a, b| {
        (Reverse(a.severity), a.kind, &a.id).cmp(&(Reverse(b.severity), b.kind, &b.id))
    });
    out
}

/// How many findings page: the per-finding series the budget is asked for (at most `budget` of
/// them are kept; the per-port series get the rest).
pub(super) fn alerting_count(view: &View) -> usize {
    view.findings.values().filter(|f| f.alerting()).count()
}

/// Whether a target counts in `stinger_targets_scan_overdue`: never scanned by a completed pass
/// since the agent started, or last scanned more than `allowed` seconds ago.
fn is_overdue(last: Option<UnixSeconds>, allowed: f64, now: UnixSeconds) -> bool {
    last.is_none_or(|t| now - t > allowed)
}

/// Overdue after twice the discovery interval plus jitter: one pass may be missed or late, two
/// may not. Without a discovery stage (no schedule known) only never-scanned targets count.
fn overdue_after(view: &View) -> f64 {
    view.stages
        .get(&Stage::Discovery)
        .map_or(f64::INFINITY, |s| {
            2.0 * (s.interval.as_secs_f64() + s.jitter.as_secs_f64())
        })
}

/// A count per group: every group of the inventory (zeros included) and every group `items` name.
fn per_group<'a>(
    view: &'a View,
    items: impl IntoIterator<Item = (&'a str, bool)>,
) -> BTreeMap<&'a str, u64> {
    let mut counts: BTreeMap<&str, u64> =
        view.groups.iter().map(|g| (g.name.as_str(), 0)).collect();
    for (group, counted) in items {
        *counts.entry(group).or_default() += u64::from(counted);
    }
    counts
}

/// The label values of one finding's series that are made, not borrowed from it (`""` where it
/// has no such thing: no VM, a host-wide vulnerability).
struct Labels {
    address: String,
    project: String,
    port: String,
}

impl Labels {
    fn of(f: &Finding) -> Labels {
        Labels {
            address: f.address.to_string(),
            project: f
                .vm
                .as_ref()
                .map(|v| {
                    v.project_name
                        .clone()
                        .unwrap_or_else(|| v.project_id.clone())
                })
                .unwrap_or_default(),
            port: f.port.map(|p| p.to_string()).unwrap_or_default(),
        }
    }
}

impl Collector for Findings {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let t = crate::model::now();
        let view = self.state.read();
        let budget = self.max_port_series.load(Ordering::Relaxed);
        let mut counts: BTreeMap<(FindingKind, FindingState, Severity), u64> = BTreeMap::new();
        let mut acked: BTreeMap<FindingKind, u64> = BTreeMap::new();
        for f in view.findings.values() {
            *counts.entry((f.kind, f.state, f.severity)).or_default() += 1;
            if f.ack.is_some() && f.state != FindingState::Resolved {
                *acked.entry(f.kind).or_default() += 1;
            }
        }
        let combinations = FindingKind::ALL.into_iter().flat_map(|k| {
            FindingState::ALL
                .into_iter()
                .flat_map(move |s| Severity::ALL.into_iter().rev().map(move |v| (k, s, v)))
        });
        gauges(
            &mut enc,
            "findings",
            "Findings by kind, lifecycle state (open, confirmed, stale, resolved) and severity, acknowledged or not; resolved ones until retention removes them",
            None,
            combinations.map(|(k, s, v)| {
                (
                    [
                        ("kind", k.as_str()),
                        ("state", s.as_str()),
                        ("severity", v.as_str()),
                    ],
                    counts.get(&(k, s, v)).copied().unwrap_or(0) as f64,
                )
            }),
        )?;
        gauges(
            &mut enc,
            "findings_acknowledged",
            "Findings not resolved that an acknowledgement (API or a policy exception) keeps out of the alerts, by kind",
            None,
            FindingKind::ALL.into_iter().map(|k| {
                (
                    [("kind", k.as_str())],
                    acked.get(&k).copied().unwrap_or(0) as f64,
                )
            }),
        )?;
        let now = crate::model::now();
        let expired = view.exceptions.iter().filter(|(_, e)| *e <= now).count();
        gauges(
            &mut enc,
            "policy_exceptions",
            "The configuration's [[policy.exceptions]]: active ones, and expired ones (which acknowledge nothing any more: their findings alert again)",
            None,
            [
                ([("state", "active")], (view.exceptions.len() - expired) as f64),
                ([("state", "expired")], expired as f64),
            ],
        )?;
        let paging: Vec<(&Finding, Labels)> = alerting(&view)
            .into_iter()
            .take(budget)
            .map(|f| (f, Labels::of(f)))
            .collect();
        gauges(
            &mut enc,
            "finding_confirmed_timestamp",
            "One series per confirmed, unacknowledged finding (what the alerts page on), most severe first within web.max_port_series: when it was confirmed, in Unix seconds",
            Some(&Unit::Seconds),
            paging.iter().map(|(f, l)| {
                (
                    [
                        ("id", f.id.as_str()),
                        ("kind", f.kind.as_str()),
                        ("severity", f.severity.as_str()),
                        ("host", f.host.as_str()),
                        ("address", l.address.as_str()),
                        ("group", f.group.as_str()),
                        ("vm", f.vm.as_ref().map_or("", |v| v.vm_name.as_str())),
                        ("project", l.project.as_str()),
                        ("protocol", f.protocol.map_or("", |p| p.as_str())),
                        ("port", l.port.as_str()),
                        ("cve", f.cve.as_deref().unwrap_or("")),
                    ],
                    f.confirmed_at.unwrap_or(f.first_seen),
                )
            }),
        )?;
        let unreachable = per_group(
            &view,
            view.hosts.values().map(|h| (h.group.as_str(), !h.up)),
        );
        gauges(
            &mut enc,
            "hosts_unreachable",
            "Known hosts that answered nothing at their last scan, by group: their findings are stale, neither alerting nor resolved",
            None,
            unreachable
                .iter()
                .map(|(g, n)| ([("group", *g)], *n as f64)),
        )?;
        let tarpits = per_group(
            &view,
            view.hosts
                .values()
                .map(|h| (h.group.as_str(), h.answers_everything.is_some())),
        );
        gauges(
            &mut enc,
            "hosts_answering_everything",
            "Known hosts that answer (nearly) every TCP port probed, by group: each is one answers_everything finding, with no per-port records or series",
            None,
            tarpits.iter().map(|(g, n)| ([("group", *g)], *n as f64)),
        )?;
        let allowed = overdue_after(&view);
        let overdue = per_group(
            &view,
            view.target_scans
                .values()
                .map(|s| (s.group.as_str(), is_overdue(s.last, allowed, t))),
        );
        gauges(
            &mut enc,
            "targets_scan_overdue",
            "Targets of the last pass's inventories not scanned within twice the discovery interval plus jitter (or not by any completed pass since the agent started), by group",
            None,
            overdue.iter().map(|(g, n)| ([("group", *g)], *n as f64)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Ack, AckSource, Protocol, VmLink};
    use crate::state::{GroupStatus, StageStatus, TargetScan};
    use std::time::Duration;

    fn finding(id: &str, kind: FindingKind, state: FindingState, severity: Severity) -> Finding {
        Finding {
            id: id.into(),
            kind,
            key: "tcp/8080".into(),
            host: "127.0.0.9".into(),
            address: "127.0.0.9".parse().unwrap(),
            group: "lo".into(),
            vm: None,
            protocol: Some(Protocol::Tcp),
            port: Some(8080),
            cve: None,
            state,
            severity,
            rule: "default".into(),
            evidence: String::new(),
            first_seen: 10.0,
            last_seen: 20.0,
            confirmed_at: (state != FindingState::Open).then_some(15.0),
            resolved_at: None,
            stale_since: None,
            occurrence: 1,
            previous: vec![],
            seen: 1,
            missed: 0,
            ack: None,
            trigger: Default::default(),
            detection_latency: None,
            history: vec![],
        }
    }

    fn scrape(view: View, budget: usize) -> String {
        let state = Arc::new(State::default());
        *state.write() = view;
        let mut reg = prometheus_client::registry::Registry::with_prefix("stinger");
        reg.register_collector(Box::new(Findings {
            state,
            max_port_series: Arc::new(AtomicUsize::new(budget)),
        }));
        crate::expose::encode_metrics(&reg, false).unwrap()
    }

    /// The value of one series (its name and labels exactly as written).
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    fn lines<'a>(text: &'a str, family: &str) -> Vec<&'a str> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")))
            .collect()
    }

    #[test]
    fn counts_cover_every_combination_and_only_alerting_findings_get_a_series() {
        let mut view = View::default();
        let mut cloud = finding(
            "aa",
            FindingKind::Vulnerability,
            FindingState::Confirmed,
            Severity::Critical,
        );
        cloud.vm = Some(VmLink {
            vm_id: "vm-1".into(),
            vm_name: "web-1".into(),
            project_id: "p-1".into(),
            project_name: None,
            port_id: Some("port-1".into()),
            kind: crate::model::AddressKind::Floating,
            network: "private".into(),
            namespace: None,
        });
        cloud.cve = Some("CVE-2023-38408".into());
        let mut acked = finding(
            "bb",
            FindingKind::UnexpectedPort,
            FindingState::Confirmed,
            Severity::High,
        );
        acked.ack = Some(Ack {
            source: AckSource::Api,
            by: "alice".into(),
            reason: "known".into(),
            at: 16.0,
            expires: 1e10,
            owner: None,
            severity: Severity::High,
        });
        for f in [
            cloud,
            acked,
            finding(
                "cc",
                FindingKind::UnexpectedPort,
                FindingState::Open,
                Severity::High,
            ),
            finding(
                "dd",
                FindingKind::UnexpectedPort,
                FindingState::Stale,
                Severity::High,
            ),
            finding(
                "ee",
                FindingKind::UnexpectedPort,
                FindingState::Resolved,
                Severity::High,
            ),
        ] {
            view.findings.insert(f.id.clone(), f);
        }
        let text = scrape(view, 100);
        assert_eq!(lines(&text, "stinger_findings").len(), 96, "{text}");
        for (series, want) in [
            (
                "stinger_findings{kind=\"unexpected_port\",state=\"confirmed\",severity=\"high\"}",
                1.0,
            ),
            (
                "stinger_findings{kind=\"unexpected_port\",state=\"stale\",severity=\"high\"}",
                1.0,
            ),
            (
                "stinger_findings{kind=\"amplifier\",state=\"open\",severity=\"low\"}",
                0.0,
            ),
            (
                "stinger_findings_acknowledged{kind=\"unexpected_port\"}",
                1.0,
            ),
        ] {
            assert_eq!(value(&text, series), Some(want), "{series}: {text}");
        }
        assert_eq!(lines(&text, "stinger_findings_acknowledged").len(), 6);
        let paging = lines(&text, "stinger_finding_confirmed_timestamp_seconds");
        assert_eq!(
            paging,
            ["stinger_finding_confirmed_timestamp_seconds{id=\"aa\",kind=\"vulnerability\",severity=\"critical\",host=\"127.0.0.9\",address=\"127.0.0.9\",group=\"lo\",vm=\"web-1\",project=\"p-1\",protocol=\"tcp\",port=\"8080\",cve=\"CVE-2023-38408\"} 15.0"],
            "{text}"
        );
    }

    #[test]
    fn the_budget_keeps_the_most_severe_findings() {
        let mut view = View::default();
        for (id, sev) in [
            ("a1", Severity::High),
            ("a2", Severity::Critical),
            ("a3", Severity::Medium),
        ] {
            let f = finding(id, FindingKind::Amplifier, FindingState::Confirmed, sev);
            view.findings.insert(f.id.clone(), f);
        }
        assert_eq!(alerting_count(&view), 3);
        let text = scrape(view, 2);
        let paging = lines(&text, "stinger_finding_confirmed_timestamp_seconds");
        assert_eq!(paging.len(), 2, "{text}");
        assert!(paging[0].contains("id=\"a2\"") && paging[1].contains("id=\"a1\""));
    }

    #[test]
    fn overdue_targets_unreachable_hosts_and_hosts_answering_everything_are_counted_per_group() {
        let t = crate::model::now();
        let mut view = View::default();
        view.stages.insert(
            Stage::Discovery,
            StageStatus {
                interval: Duration::from_secs(60),
                jitter: Duration::from_secs(10),
                ..StageStatus::default()
            },
        );
        for name in ["a", "b", "empty"] {
            view.groups.push(GroupStatus {
                name: name.into(),
                targets: 1,
                last_success: None,
                last_duration: 0.0,
            });
        }
        // Allowed: 2 × (60 + 10) = 140 s.
        for (id, group, last) in [
            ("10.0.0.1", "a", Some(t - 10.0)),
            ("10.0.0.2", "a", Some(t - 139.0)),
            ("10.0.0.3", "a", Some(t - 141.0)),
            ("10.0.0.4", "b", None),
        ] {
            view.target_scans.insert(
                id.into(),
                TargetScan {
                    group: group.into(),
                    last,
                },
            );
        }
        let silent = crate::model::HostState {
            id: "10.0.0.3".into(),
            address: "10.0.0.3".parse().unwrap(),
            group: "b".into(),
            up: false,
            ports: vec![],
            first_seen: 1.0,
            last_seen: 1.0,
            last_scan: 1.0,
            last_scan_id: 1,
            udp_open_filtered: vec![],
            os: vec![],
            vulns: vec![],
            vm: None,
            exposure: None,
            answers_everything: None,
        };
        let tarpit = crate::model::HostState {
            id: "10.0.0.1".into(),
            address: "10.0.0.1".parse().unwrap(),
            group: "a".into(),
            up: true,
            answers_everything: Some(crate::model::AnswersEverything {
                open: 65_535,
                probed: 65_535,
                since: 1.0,
            }),
            ..silent.clone()
        };
        view.hosts.insert(silent.id.clone(), silent);
        view.hosts.insert(tarpit.id.clone(), tarpit);
        let text = scrape(view, 10);
        for (series, want) in [
            ("stinger_targets_scan_overdue{group=\"a\"}", 1.0),
            ("stinger_targets_scan_overdue{group=\"b\"}", 1.0),
            ("stinger_targets_scan_overdue{group=\"empty\"}", 0.0),
            ("stinger_hosts_unreachable{group=\"a\"}", 0.0),
            ("stinger_hosts_unreachable{group=\"b\"}", 1.0),
            ("stinger_hosts_answering_everything{group=\"a\"}", 1.0),
            ("stinger_hosts_answering_everything{group=\"b\"}", 0.0),
            ("stinger_hosts_answering_everything{group=\"empty\"}", 0.0),
        ] {
            assert_eq!(value(&text, series), Some(want), "{series}: {text}");
        }
        assert!(!is_overdue(Some(t - 1e9), f64::INFINITY, t));
        assert!(is_overdue(None, f64::INFINITY, t));
    }
}
