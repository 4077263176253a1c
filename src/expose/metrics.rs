//! Prometheus metrics: the event counters and histograms the stages update as work happens
//! ([`Metrics`]), and [`registry`], which registers them and then the state collectors of
//! `expose::collectors` — hosts, findings, ports, coverage, stage health, e-mail and the cloud
//! inventory, built fresh on every scrape from the in-memory [`State`], one collector a file.

use crate::model::Stage;
use crate::state::State;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabels {
    pub stage: Stage,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub stage: Stage,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TriggerLabels {
    pub trigger: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub stage: Stage,
    pub kind: String,
}

/// The (stage, kind) error series exported from the start.
pub const KNOWN_ERRORS: [(Stage, &str); 6] = [
    (Stage::Discovery, "scan"),
    (Stage::Discovery, "cancelled"),
    (Stage::Store, "db"),
    (Stage::Store, "no_space"),
    (Stage::Store, "task"),
    (Stage::Config, "reload"),
];

impl EncodeLabelValue for Stage {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        self.as_str().encode(encoder)
    }
}

/// Counters and histograms the stages update.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub scan_duration: Family<StageLabels, Histogram>,
    pub probes: Family<ResultLabels, Counter>,
    /// Re-probes of changed TCP ports, by result (see [`Metrics::reprobes`]).
    pub reprobes: Family<ResultLabels, Counter>,
    pub runs: Family<RunLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub series_dropped: Counter,
    /// Seconds from a cloud change (or an on-demand request) to the confirmed finding it exposed.
    pub detection_latency: Family<TriggerLabels, Histogram>,
}

fn latency_histogram() -> Histogram {
    // 1 s … ~68 min: a change is found within a poll interval and a pass, a full pass later.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 13,
    ))
}

fn duration_histogram() -> Histogram {
    // 1 s … ~4.5 h: a loopback scan takes seconds, a large cloud hours.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 15,
    ))
}

impl Metrics {
    pub fn error(&self, stage: Stage, kind: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                stage,
                kind: kind.into(),
            })
            .inc();
    }

    pub fn run(&self, stage: Stage, outcome: &str, seconds: f64) {
        self.runs
            .get_or_create(&RunLabels {
                stage,
                outcome: outcome.into(),
            })
            .inc();
        self.scan_duration
            .get_or_create(&StageLabels { stage })
            .observe(seconds);
    }

    /// A finding confirmed `seconds` after the change or request that triggered its scan.
    pub fn detected(&self, trigger: crate::model::Trigger, seconds: f64) {
        self.detection_latency
            .get_or_create(&TriggerLabels {
                trigger: trigger.as_str().into(),
            })
            .observe(seconds.max(0.0));
    }

    pub fn probes(&self, counts: &crate::model::ProbeCounts) {
        for (result, n) in [
            ("open", counts.open),
            ("closed", counts.closed),
            ("filtered", counts.filtered),
            ("error", counts.error),
        ] {
            self.probes
                .get_or_create(&ResultLabels {
                    result: result.into(),
                })
                .inc_by(n);
        }
    }

    /// Count one pass's re-probes of changed TCP ports: newly open ports that answered again
    /// (`confirmed`) or not (`transient`), and ports open before that the scan missed and that
    /// answered the re-probe (`recovered`) or stayed silent (`gone`).
    pub fn reprobes(&self, confirmed: u64, transient: u64, recovered: u64, gone: u64) {
        for (result, n) in REPROBE_RESULTS
            .into_iter()
            .zip([confirmed, transient, recovered, gone])
        {
            if n > 0 {
                self.reprobes
                    .get_or_create(&ResultLabels {
                        result: result.into(),
                    })
                    .inc_by(n);
            }
        }
    }
}

/// The `result` label values of `stinger_reprobes_total`, each created at start.
const REPROBE_RESULTS: [&str; 4] = ["confirmed", "transient", "recovered", "gone"];

/// Build the registry: the event metrics, then every state collector (in that order when encoded).
pub fn registry(state: Arc<State>, max_port_series: Arc<AtomicUsize>) -> (Registry, Metrics) {
    let mut reg = Registry::with_prefix("stinger");
    let m = Metrics {
        scan_duration: Family::new_with_constructor(duration_histogram),
        probes: Family::default(),
        reprobes: Family::default(),
        runs: Family::default(),
        errors: Family::default(),
        series_dropped: Counter::default(),
        detection_latency: Family::new_with_constructor(latency_histogram),
    };
    reg.register_with_unit(
        "scan_duration",
        "Duration of finished scan runs, by stage",
        Unit::Seconds,
        m.scan_duration.clone(),
    );
    reg.register(
        "scan_probes",
        "TCP probes sent, by result (open, closed, filtered = no answer, error = local failure)",
        m.probes.clone(),
    );
    for result in ["open", "closed", "filtered", "error"] {
        // Create every result's series up front, so rate() works from the first scrape.
        let _ = m.probes.get_or_create(&ResultLabels {
            result: result.into(),
        });
    }
    reg.register(
        "reprobes",
        "Re-probes of TCP ports that changed since the host's last state, made in the same pass, by result (confirmed: a newly open port answered again; transient: it did not; recovered: a port open before that the scan missed answered; gone: it stayed silent)",
        m.reprobes.clone(),
    );
    for result in REPROBE_RESULTS {
        let _ = m.reprobes.get_or_create(&ResultLabels {
            result: result.into(),
        });
    }
    reg.register_with_unit(
        "detection_latency",
        "Time from a cloud change (its updated_at) or an on-demand request to the confirmation of a finding it exposed, by trigger (change, on_demand)",
        Unit::Seconds,
        m.detection_latency.clone(),
    );
    for trigger in [
        crate::model::Trigger::Change,
        crate::model::Trigger::OnDemand,
    ] {
        let _ = m.detection_latency.get_or_create(&TriggerLabels {
            trigger: trigger.as_str().into(),
        });
    }
    reg.register(
        "scan_runs",
        "Finished scan runs, by stage and outcome",
        m.runs.clone(),
    );
    reg.register("errors", "Errors, by stage and kind", m.errors.clone());
    // Known series start at zero, so increase() and alerts see the first error.
    for (stage, kind) in KNOWN_ERRORS {
        let _ = m.errors.get_or_create(&ErrorLabels {
            stage,
            kind: kind.into(),
        });
    }
    // metrics_series_dropped is encoded by the ports collector, after counting this scrape's drops.
    super::collectors::register(&mut reg, &state, &m.series_dropped, &max_port_series);
    (reg, m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostState, PortFinding, Protocol, Verdict};

    fn host(id: &str, ports: &[(u16, Verdict)]) -> HostState {
        HostState {
            id: id.into(),
            address: id.parse().unwrap(),
            group: "g".into(),
            up: true,
            ports: ports
                .iter()
                .map(|&(port, verdict)| PortFinding {
                    port,
                    protocol: Protocol::Tcp,
                    verdict,
                    rule: "r".into(),
                    since: 1.0,
                    service: None,
                    vulns: vec![],
                    world: None,
                    amplification: None,
                    udp: None,
                })
                .collect(),
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
        }
    }

    #[test]
    fn the_series_budget_keeps_unexpected_ports_and_counts_the_rest() {
        let state = Arc::new(State::default());
        {
            let mut v = state.write();
            for h in [
                host(
                    "127.0.0.1",
                    &[(22, Verdict::Expected), (80, Verdict::Expected)],
                ),
                host("127.0.0.2", &[(6379, Verdict::Unexpected)]),
            ] {
                v.hosts.insert(h.id.clone(), h);
            }
        }
        let budget = Arc::new(AtomicUsize::new(2));
        let (reg, m) = registry(state, budget);
        let text = crate::expose::encode_metrics(&reg, false).unwrap();
        let ports: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("stinger_open_port_info{"))
            .collect();
        assert_eq!(ports.len(), 2, "{text}");
        assert!(ports
            .iter()
            .any(|l| l.contains("port=\"6379\"") && l.contains("expected=\"false\"")));
        assert_eq!(m.series_dropped.get(), 1);
        assert!(
            text.contains("stinger_metrics_series_dropped_total 1"),
            "{text}"
        );
        // Per-host series are not subject to the budget.
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("stinger_host_open_ports{"))
                .count(),
            2
        );
    }

    #[test]
    fn alerting_findings_take_the_series_budget_before_ports() {
        use crate::judge::findings::{observe, Context, Covers, Settings};
        let state = Arc::new(State::default());
        {
            let mut v = state.write();
            let settings = Settings::default();
            let policy = crate::judge::Policy::default();
            let ctx = Context {
                settings: &settings,
                policy: &policy,
                scan_id: Some(1),
                now: 100.0,
            };
            for h in [
                host("127.0.0.1", &[(22, Verdict::Expected)]),
                host(
                    "127.0.0.2",
                    &[(6379, Verdict::Unexpected), (8080, Verdict::Unexpected)],
                ),
            ] {
                for f in observe(&[], &h, Covers::All, &ctx) {
                    v.findings.insert(f.id.clone(), f);
                }
                v.hosts.insert(h.id.clone(), h);
            }
        }
        // Two confirmed findings and three open ports in a budget of three: both findings, one port.
        let (reg, m) = registry(state, Arc::new(AtomicUsize::new(3)));
        let text = crate::expose::encode_metrics(&reg, false).unwrap();
        let count = |family: &str| {
            text.lines()
                .filter(|l| l.starts_with(&format!("{family}{{")))
                .count()
        };
        assert_eq!(
            count("stinger_finding_confirmed_timestamp_seconds"),
            2,
            "{text}"
        );
        assert_eq!(count("stinger_open_port_info"), 1, "{text}");
        assert!(text.contains("port=\"6379\",expected=\"false\""), "{text}");
        assert_eq!(m.series_dropped.get(), 2);
    }

    #[test]
    fn reprobe_results_start_at_zero_and_count() {
        let (reg, m) = registry(Arc::new(State::default()), Arc::new(AtomicUsize::new(10)));
        let text = crate::expose::encode_metrics(&reg, false).unwrap();
        assert!(
            text.contains("stinger_reprobes_total{result=\"gone\"} 0"),
            "{text}"
        );
        m.reprobes(2, 1, 0, 3);
        m.reprobes(1, 0, 0, 0);
        let text = crate::expose::encode_metrics(&reg, false).unwrap();
        for want in [
            "stinger_reprobes_total{result=\"confirmed\"} 3",
            "stinger_reprobes_total{result=\"transient\"} 1",
            "stinger_reprobes_total{result=\"recovered\"} 0",
            "stinger_reprobes_total{result=\"gone\"} 3",
        ] {
            assert!(text.contains(want), "{want}: {text}");
        }
    }

    /// Every family the registry exports, in exposition order: (name as registered, unit, type).
    /// A new metric is added here too; `tests/integration/dashboards.rs` also reads its names here.
    const FAMILIES: [(&str, &str, &str); 67] = [
        ("scan_duration", "seconds", "histogram"),
        ("scan_probes", "", "counter"),
        ("reprobes", "", "counter"),
        ("detection_latency", "seconds", "histogram"),
        ("scan_runs", "", "counter"),
        ("errors", "", "counter"),
        ("build_info", "", "gauge"),
        ("shard_info", "", "gauge"),
        ("state_hosts", "", "gauge"),
        ("host_open_ports", "", "gauge"),
        ("host_unexpected_ports", "", "gauge"),
        ("host_max_cvss", "", "gauge"),
        ("host_vulnerabilities", "", "gauge"),
        ("host_last_scan_timestamp", "seconds", "gauge"),
        ("findings", "", "gauge"),
        ("findings_acknowledged", "", "gauge"),
        ("policy_exceptions", "", "gauge"),
        ("finding_confirmed_timestamp", "seconds", "gauge"),
        ("hosts_unreachable", "", "gauge"),
        ("hosts_answering_everything", "", "gauge"),
        ("targets_scan_overdue", "", "gauge"),
        ("metrics_series_dropped", "", "counter"),
        ("open_port_info", "", "gauge"),
        ("udp_amplification_ratio", "", "gauge"),
        ("dns_open_resolver", "", "gauge"),
        ("targets", "", "gauge"),
        ("targets_scanned", "", "gauge"),
        ("group_last_scan_timestamp", "seconds", "gauge"),
        ("targets_out_of_scope", "", "gauge"),
        ("gmp_feed_timestamp", "seconds", "gauge"),
        ("scan_run_success", "", "gauge"),
        ("scan_last_success_timestamp", "seconds", "gauge"),
        ("scan_interval", "seconds", "gauge"),
        ("scan_in_progress", "", "gauge"),
        ("scan_progress_ratio", "", "gauge"),
        ("email_last_digest_timestamp", "seconds", "gauge"),
        ("email_last_send_success", "", "gauge"),
        ("emails_sent", "", "counter"),
        ("inventory_up", "", "gauge"),
        ("inventory_last_success_timestamp", "seconds", "gauge"),
        ("inventory_duration", "seconds", "gauge"),
        ("inventory_vms", "", "gauge"),
        ("inventory_targets", "", "gauge"),
        ("vm_diagnostics_failed", "", "gauge"),
        ("inventory_drift", "", "counter"),
        ("inventory_names_complete", "", "gauge"),
        ("vm_info", "", "gauge"),
        ("vm_cpu", "seconds", "counter"),
        ("vm_memory", "bytes", "gauge"),
        ("vm_memory_used", "bytes", "gauge"),
        ("vm_network_receive", "bytes", "counter"),
        ("vm_network_transmit", "bytes", "counter"),
        ("vm_network_receive_packets", "", "counter"),
        ("vm_network_transmit_packets", "", "counter"),
        ("vm_network_receive_drops", "", "counter"),
        ("vm_network_transmit_drops", "", "counter"),
        ("vm_network_receive_errors", "", "counter"),
        ("vm_network_transmit_errors", "", "counter"),
        ("vm_disk_read", "bytes", "counter"),
        ("vm_disk_written", "bytes", "counter"),
        ("vm_disk_reads_completed", "", "counter"),
        ("vm_disk_writes_completed", "", "counter"),
        ("vm_disk_errors", "", "counter"),
        ("vm_devices_not_exported", "", "gauge"),
        ("host_world_open_ports", "", "gauge"),
        ("host_exposure_waiting_ranges", "", "gauge"),
        ("host_unfiltered_ports", "", "gauge"),
    ];

    #[test]
    fn the_exposition_has_exactly_these_families_in_this_order() {
        let state = Arc::new(State::default());
        *state.write() = crate::expose::testdata::view();
        let (reg, m) = registry(state, Arc::new(AtomicUsize::new(10)));
        // Event families appear once they have a series.
        m.run(Stage::Discovery, "success", 3.0);
        m.error(Stage::Email, "smtp");
        let text = crate::expose::encode_metrics(&reg, true).unwrap();
        let got: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        let want: Vec<String> = FAMILIES
            .iter()
            .map(|(name, unit, kind)| match *unit {
                "" => format!("stinger_{name} {kind}"),
                unit => format!("stinger_{name}_{unit} {kind}"),
            })
            .collect();
        assert_eq!(got, want, "{text}");
    }
}
