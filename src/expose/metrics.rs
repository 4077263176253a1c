//! Prometheus metrics: event counters and histograms updated as work happens, plus a collector that
//! builds the state metrics (hosts, ports, coverage, stage health) fresh on every scrape from the
//! in-memory [`State`] — never from RocksDB, never by scanning. Per-port series are capped by a
//! series budget; what the budget drops is counted. The cloud inventory's series (VMs, their
//! diagnostics, inventory health, security-group exposure) come from
//! [`vm_metrics`](super::vm_metrics), registered here.

use super::labels::Clean;
use crate::model::{now, Stage, Verdict};
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::{AtomicUsize, Ordering};
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
pub struct ErrorLabels {
    pub stage: Stage,
    pub kind: String,
}

/// The (stage, kind) error series exported from the start.
pub const KNOWN_ERRORS: [(Stage, &str); 5] = [
    (Stage::Discovery, "scan"),
    (Stage::Discovery, "cancelled"),
    (Stage::Store, "db"),
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
    pub runs: Family<RunLabels, Counter>,
    pub errors: Family<ErrorLabels, Counter>,
    pub series_dropped: Counter,
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
}

/// Build the registry: event metrics plus the state collector.
pub fn registry(state: Arc<State>, max_port_series: Arc<AtomicUsize>) -> (Registry, Metrics) {
    let mut reg = Registry::with_prefix("stinger");
    let m = Metrics {
        scan_duration: Family::new_with_constructor(duration_histogram),
        probes: Family::default(),
        runs: Family::default(),
        errors: Family::default(),
        series_dropped: Counter::default(),
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
    // metrics_series_dropped is encoded by the state collector, after it counts this scrape's drops.
    reg.register_collector(Box::new(StateCollector {
        state: state.clone(),
        dropped: m.series_dropped.clone(),
        max_port_series,
    }));
    reg.register_collector(Box::new(super::vm_metrics::VmCollector::new(state)));
    (reg, m)
}

/// The `world` label of an open port: whether a security-group rule lets the whole world reach it
/// (`true`/`false` for cloud hosts, whose groups were judged), `unknown` for everything else.
fn world(h: &crate::model::HostState, p: &crate::model::PortFinding) -> &'static str {
    if p.world.is_some() {
        "true"
    } else if h.exposure.is_some() || h.vm.is_some() {
        "false"
    } else {
        "unknown"
    }
}

/// Builds the state metrics on each scrape.
#[derive(Debug)]
struct StateCollector {
    state: Arc<State>,
    dropped: Counter,
    max_port_series: Arc<AtomicUsize>,
}

/// Encode one gauge family from (labels, value) pairs; every label value is
/// [`clean`](super::labels::clean)ed on the way.
pub(super) fn gauges<L, K, V>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error>
where
    L: AsRef<[(K, V)]>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    // Registered metrics get a full stop from the client; match them.
    let help = format!("{help}.");
    let mut fam = enc.encode_descriptor(name, &help, unit, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(v).encode(fam.encode_family(&Clean(labels.as_ref()))?)?;
    }
    Ok(())
}

impl Collector for StateCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let t = now();
        gauges(
            &mut enc,
            "build_info",
            "Stinger's version and git revision; always 1",
            None,
            [(
                [
                    ("version", crate::build::VERSION),
                    ("revision", crate::build::REVISION),
                ],
                1.0,
            )],
        )?;
        let view = self.state.read();
        let secs = Some(&Unit::Seconds);

        ConstGauge::new(view.hosts.len() as f64).encode(enc.encode_descriptor(
            "state_hosts",
            "Hosts known in the stored state (seen with an open port at least once).",
            None,
            MetricType::Gauge,
        )?)?;
        let host_rows = |f: fn(&crate::model::HostState) -> f64| {
            view.hosts
                .values()
                .map(move |h| ([("host", h.id.as_str()), ("group", h.group.as_str())], f(h)))
        };
        gauges(
            &mut enc,
            "host_open_ports",
            "Open ports (TCP and UDP) found on the host at its last scan",
            None,
            host_rows(|h| h.ports.len() as f64),
        )?;
        gauges(
            &mut enc,
            "host_unexpected_ports",
            "Open ports on the host that the port policy does not expect",
            None,
            host_rows(|h| h.unexpected() as f64),
        )?;
        gauges(
            &mut enc,
            "host_max_cvss",
            "Highest CVSS score of the vulnerabilities reported on the host's open ports (hosts with any)",
            None,
            view.hosts.values().filter_map(|h| {
                h.max_cvss()
                    .map(|c| ([("host", h.id.as_str()), ("group", h.group.as_str())], c))
            }),
        )?;
        let class = |c: f64| match c {
            c if c >= 9.0 => "critical",
            c if c >= 7.0 => "high",
            c if c >= 4.0 => "medium",
            _ => "low",
        };
        let mut by_class: Vec<([(&str, &str); 3], f64)> = Vec::new();
        for h in view.hosts.values() {
            let mut counts = [0u32; 4];
            for v in h.all_vulns() {
                if let Some(c) = v.cvss.filter(|c| *c > 0.0) {
                    let i = ["critical", "high", "medium", "low"]
                        .iter()
                        .position(|k| *k == class(c))
                        .unwrap_or(3);
                    counts[i] += 1;
                }
            }
            if counts.iter().any(|&n| n > 0) {
                for (i, sev) in ["critical", "high", "medium", "low"].iter().enumerate() {
                    by_class.push((
                        [
                            ("host", h.id.as_str()),
                            ("group", h.group.as_str()),
                            ("severity", sev),
                        ],
                        counts[i] as f64,
                    ));
                }
            }
        }
        gauges(
            &mut enc,
            "host_vulnerabilities",
            "Vulnerabilities reported on the host, by CVSS v3 severity band (hosts with any)",
            None,
            by_class,
        )?;
        gauges(
            &mut enc,
            "host_last_scan_timestamp",
            "When the last scan covering the host finished, in Unix seconds",
            secs,
            host_rows(|h| h.last_scan),
        )?;

        // Per-port info series, unexpected ports first (world-open ones first among those) so the
        // budget never hides them.
        let budget = self.max_port_series.load(Ordering::Relaxed);
        let mut ports: Vec<_> = view
            .hosts
            .values()
            .flat_map(|h| h.ports.iter().map(move |p| (h, p)))
            .collect();
        ports.sort_by_key(|(_, p)| (p.verdict == Verdict::Expected, p.world.is_none()));
        let dropped = ports.len().saturating_sub(budget);
        if dropped > 0 {
            self.dropped.inc_by(dropped as u64);
        }
        ConstCounter::new(self.dropped.get()).encode(enc.encode_descriptor(
            "metrics_series_dropped",
            "Per-port series left out of a scrape because web.max_port_series was reached.",
            None,
            MetricType::Counter,
        )?)?;
        let port_strings: Vec<(String, String)> = ports
            .iter()
            .take(budget)
            .map(|(h, p)| (h.address.to_string(), p.port.to_string()))
            .collect();
        // Service facts as nmap gave them ("" when unknown); bounded like the ports themselves.
        fn svc(
            p: &crate::model::PortFinding,
            f: fn(&crate::model::ServiceInfo) -> &Option<String>,
        ) -> &str {
            p.service
                .as_ref()
                .and_then(|s| f(s).as_deref())
                .unwrap_or("")
        }
        gauges(
            &mut enc,
            "open_port_info",
            "One series per open port with the policy's verdict, deciding rule, the service nmap identified and whether a security-group rule opens it to the whole world (world: true, false, or unknown outside a cloud inventory); always 1",
            None,
            ports
                .iter()
                .zip(&port_strings)
                .map(|((h, p), (addr, port))| {
                    (
                        [
                            ("host", h.id.as_str()),
                            ("address", addr.as_str()),
                            ("group", h.group.as_str()),
                            ("protocol", p.protocol.as_str()),
                            ("port", port.as_str()),
                            (
                                "expected",
                                if p.verdict == Verdict::Expected {
                                    "true"
                                } else {
                                    "false"
                                },
                            ),
                            ("rule", p.rule.as_str()),
                            ("service", svc(p, |s| &s.name)),
                            ("product", svc(p, |s| &s.product)),
                            ("version", svc(p, |s| &s.version)),
                            ("world", world(h, p)),
                        ],
                        1.0,
                    )
                }),
        )?;
        // The open UDP ports the native probes found, within the same budget.
        let udp = || {
            ports
                .iter()
                .zip(&port_strings)
                .filter_map(|((h, p), (addr, port))| Some((h, p, p.udp.as_ref()?, addr, port)))
        };
        gauges(
            &mut enc,
            "udp_amplification_ratio",
            "Open UDP ports found by the native probes: reply bytes per request byte (above 1, a spoofed request is sent back larger), with the protocol that answered and whether a security-group rule opens the port to the world",
            None,
            udp().map(|(h, p, r, addr, port)| {
                (
                    [
                        ("host", h.id.as_str()),
                        ("address", addr.as_str()),
                        ("group", h.group.as_str()),
                        ("port", port.as_str()),
                        ("service", r.service.as_str()),
                        ("world", world(h, p)),
                    ],
                    p.amplification.unwrap_or(0.0),
                )
            }),
        )?;
        gauges(
            &mut enc,
            "dns_open_resolver",
            "DNS servers that resolved a name outside their zones for the scanner (open resolvers); always 1",
            None,
            udp()
                .filter(|(_, _, r, ..)| r.recursion == Some(true))
                .map(|(h, p, _, addr, port)| {
                    (
                        [
                            ("host", h.id.as_str()),
                            ("address", addr.as_str()),
                            ("group", h.group.as_str()),
                            ("port", port.as_str()),
                            ("world", world(h, p)),
                        ],
                        1.0,
                    )
                }),
        )?;

        let group = |g: &crate::state::GroupStatus| [("group", g.name.clone())];
        gauges(
            &mut enc,
            "targets",
            "Addresses in the inventory, by target group",
            None,
            view.groups.iter().map(|g| (group(g), g.targets as f64)),
        )?;
        gauges(
            &mut enc,
            "targets_scanned",
            "Addresses of the group whose last successful scan is within the discovery interval",
            None,
            view.groups.iter().map(|g| {
                let n = if view.group_is_fresh(g, t) {
                    g.targets
                } else {
                    0
                };
                (group(g), n as f64)
            }),
        )?;
        gauges(
            &mut enc,
            "group_last_scan_timestamp",
            "When the last successful scan of the group finished, in Unix seconds (0 = never)",
            secs,
            view.groups
                .iter()
                .map(|g| (group(g), g.last_success.unwrap_or(0.0))),
        )?;

        gauges(
            &mut enc,
            "gmp_feed_timestamp",
            "Version of gvmd's feed, by feed type, as Unix seconds: an old feed finds nothing new",
            secs,
            view.gmp_feeds
                .iter()
                .map(|(kind, t)| ([("feed", kind.as_str())], *t)),
        )?;
        let stage = |s: &Stage| [("stage", s.as_str())];
        gauges(
            &mut enc,
            "scan_run_success",
            "Whether the last finished run of the stage succeeded (1) or not (0)",
            None,
            view.stages
                .iter()
                .filter_map(|(s, st)| st.last_ok.map(|ok| (stage(s), if ok { 1.0 } else { 0.0 }))),
        )?;
        gauges(
            &mut enc,
            "scan_last_success_timestamp",
            "When the stage last finished successfully, in Unix seconds (0 = never)",
            secs,
            view.stages
                .iter()
                .map(|(s, st)| (stage(s), st.last_success.unwrap_or(0.0))),
        )?;
        gauges(
            &mut enc,
            "scan_interval",
            "Configured interval between runs of the stage",
            secs,
            view.stages
                .iter()
                .map(|(s, st)| (stage(s), st.interval.as_secs_f64())),
        )?;
        gauges(
            &mut enc,
            "scan_in_progress",
            "Whether a run of the stage is in progress",
            None,
            view.stages
                .iter()
                .map(|(s, st)| (stage(s), if st.in_progress { 1.0 } else { 0.0 })),
        )?;
        let discovery = self.state.progress().map_or(0.0, |p| p.ratio());
        let services = self
            .state
            .services_progress()
            .map_or(0.0, |p| (p.percent() / 100.0).clamp(0.0, 1.0));
        let vulnerabilities = self.state.gmp_progress().map_or(0.0, |p| {
            let pct = p.percent.load(std::sync::atomic::Ordering::Relaxed);
            (pct.max(0) as f64 / 100.0).clamp(0.0, 1.0)
        });
        gauges(
            &mut enc,
            "scan_progress_ratio",
            "How far the running stage is, 0 to 1 (discovery: probes done; services: nmap's own estimate); 0 when idle",
            None,
            [
                ([("stage", Stage::Discovery.as_str())], discovery),
                ([("stage", Stage::Services.as_str())], services),
                ([("stage", Stage::Vulnerabilities.as_str())], vulnerabilities),
            ],
        )?;
        if let Some(e) = &view.email {
            ConstGauge::new(e.last_digest.unwrap_or(0.0)).encode(enc.encode_descriptor(
                "email_last_digest_timestamp",
                "When the last digest window closed (a digest sent, or none needed), in Unix seconds (0 = never).",
                secs,
                MetricType::Gauge,
            )?)?;
            if let Some(ok) = e.last_attempt_ok {
                ConstGauge::new(if ok { 1.0 } else { 0.0 }).encode(enc.encode_descriptor(
                    "email_last_send_success",
                    "Whether the last attempt to send a digest e-mail succeeded (1) or not (0).",
                    None,
                    MetricType::Gauge,
                )?)?;
            }
            ConstCounter::new(e.sent).encode(enc.encode_descriptor(
                "emails_sent",
                "Digest e-mails delivered to the relay since the agent started.",
                None,
                MetricType::Counter,
            )?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostState, PortFinding, Protocol};

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
}
