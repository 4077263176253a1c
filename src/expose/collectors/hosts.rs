//! Exports the per-host series of every known host: `stinger_state_hosts` (how many),
//! `stinger_host_open_ports`, `stinger_host_unexpected_ports`, `stinger_host_max_cvss`,
//! `stinger_host_vulnerabilities` (by CVSS v3 severity band) and
//! `stinger_host_last_scan_timestamp_seconds`. Not subject to the per-port series budget.

use super::gauges;
use crate::model::HostState;
use crate::state::{State, View};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::sync::Arc;

/// Encodes the per-host families.
#[derive(Debug)]
pub(crate) struct Hosts {
    pub(super) state: Arc<State>,
}

/// CVSS v3 severity bands, most severe first: the `severity` label's values, in series order.
const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// The index in [`SEVERITIES`] of a (positive) CVSS score.
fn band(cvss: f64) -> usize {
    match cvss {
        c if c >= 9.0 => 0,
        c if c >= 7.0 => 1,
        c if c >= 4.0 => 2,
        _ => 3,
    }
}

/// Per host with any scored vulnerability: one series per severity band (zeros included).
fn by_severity(view: &View) -> Vec<([(&str, &str); 3], f64)> {
    let mut rows = Vec::new();
    for h in view.hosts.values() {
        let mut counts = [0u32; 4];
        for v in h.all_vulns() {
            if let Some(c) = v.cvss.filter(|c| *c > 0.0) {
                counts[band(c)] += 1;
            }
        }
        if counts.iter().any(|&n| n > 0) {
            for (sev, n) in SEVERITIES.iter().zip(counts) {
                rows.push((
                    [
                        ("host", h.id.as_str()),
                        ("group", h.group.as_str()),
                        ("severity", *sev),
                    ],
                    n as f64,
                ));
            }
        }
    }
    rows
}

impl Collector for Hosts {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        ConstGauge::new(view.hosts.len() as f64).encode(enc.encode_descriptor(
            "state_hosts",
            "Hosts known in the stored state (seen with an open port at least once).",
            None,
            MetricType::Gauge,
        )?)?;
        let host_rows = |f: fn(&HostState) -> f64| {
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
        gauges(
            &mut enc,
            "host_vulnerabilities",
            "Vulnerabilities reported on the host, by CVSS v3 severity band (hosts with any)",
            None,
            by_severity(&view),
        )?;
        gauges(
            &mut enc,
            "host_last_scan_timestamp",
            "When the last scan covering the host finished, in Unix seconds",
            Some(&Unit::Seconds),
            host_rows(|h| h.last_scan),
        )
    }
}
