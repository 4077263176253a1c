//! Exports the per-port series, within one series budget (`web.max_port_series`) that they share
//! with the per-finding series (`findings.rs`, which come first: the alerts page on them):
//! `stinger_open_port_info`, `stinger_udp_amplification_ratio` and `stinger_dns_open_resolver`,
//! and `stinger_metrics_series_dropped_total`, what the budget left out of both. Of the ports,
//! unexpected ones come first (world-open ones first among those).

use super::gauges;
use crate::model::{HostState, PortFinding, ServiceInfo, Verdict};
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Encodes the per-port families; counts into `dropped` what the budget leaves out of each scrape.
#[derive(Debug)]
pub(crate) struct Ports {
    pub(super) state: Arc<State>,
    pub(super) dropped: Counter,
    pub(super) max_port_series: Arc<AtomicUsize>,
}

/// The `world` label of an open port: whether a security-group rule lets the whole world reach it
/// (`true`/`false` for cloud hosts, whose groups were judged), `unknown` for everything else.
fn world(h: &HostState, p: &PortFinding) -> &'static str {
    if p.world.is_some() {
        "true"
    } else if h.exposure.is_some() || h.vm.is_some() {
        "false"
    } else {
        "unknown"
    }
}

/// A service fact as nmap gave it ("" when unknown); bounded like the ports themselves.
fn svc(p: &PortFinding, f: fn(&ServiceInfo) -> &Option<String>) -> &str {
    p.service
        .as_ref()
        .and_then(|s| f(s).as_deref())
        .unwrap_or("")
}

impl Collector for Ports {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        let budget = self.max_port_series.load(Ordering::Relaxed);
        // The per-finding series take their share first; the ports get what is left.
        let findings = super::findings::alerting_count(&view);
        let kept_findings = findings.min(budget);
        let budget = budget.saturating_sub(kept_findings);
        let mut ports: Vec<_> = view
            .hosts
            .values()
            .flat_map(|h| h.ports.iter().map(move |p| (h, p)))
            .collect();
        ports.sort_by_key(|(_, p)| (p.verdict == Verdict::Expected, p.world.is_none()));
        let dropped = ports.len().saturating_sub(budget) + findings.saturating_sub(kept_findings);
        if dropped > 0 {
            self.dropped.inc_by(dropped as u64);
        }
        // Encoded after this scrape's drops are counted.
        ConstCounter::new(self.dropped.get()).encode(enc.encode_descriptor(
            "metrics_series_dropped",
            "Per-port and per-finding series left out of a scrape because web.max_port_series was reached.",
            None,
            MetricType::Counter,
        )?)?;
        let port_strings: Vec<(String, String)> = ports
            .iter()
            .take(budget)
            .map(|(h, p)| (h.address.to_string(), p.port.to_string()))
            .collect();
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
        )
    }
}
