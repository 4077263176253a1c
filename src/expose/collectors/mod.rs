//! The state metrics, one collector a file in the manner of node_exporter: each file exports one
//! prometheus-client [`Collector`] that builds its families fresh on every scrape from the
//! in-memory [`State`] — never from RocksDB, never by scanning. This file exports [`register`],
//! the one list of them (in exposition order) that
//! [`metrics::registry`](super::metrics::registry) registers, and holds what they share:
//! [`gauges`] and [`counters`], which pass every label value through [`Clean`] — the one place
//! label values are sanitised — and [`flag`].
//!
//! The files, in exposition order: `build.rs`, `hosts.rs`, `findings.rs`, `ports.rs`,
//! `coverage.rs`, `gmp.rs`, `stages.rs`, `email.rs`, `inventory.rs`, `vms.rs`, `diagnostics.rs`,
//! `exposure.rs`; each opens with the families it exports. A new family goes into the file of its
//! concern (or a new file, added to [`register`]), and into the list of families in `metrics.rs`'
//! tests.
//!
//! # A failing collector never fails the scrape
//!
//! A collector has no failure of its own: it reads memory (no I/O, no parsing) and returns only
//! the [`std::fmt::Error`] the encoder passes up, which reports that the writer failed.
//! [`encode_metrics`](super::encode_metrics) writes into a `String`, whose `fmt::Write` never
//! fails, so today no collector ever returns an error. Should one ever do (an encoder that starts
//! to reject something, a writer that can fail), prometheus-client's `Registry::encode` would stop
//! at it (`collector.encode(..)?`), leave out every collector after it and the scrape would answer
//! 500. So [`register`] registers each collector on its own, wrapped in [`Contained`], which logs
//! the error and returns `Ok`: an early return (`?`) inside one collector ends only that
//! collector's families, and the registry still calls every other. A collector that could fail for
//! a reason of its own must deal with it itself (leave the family out, or say so in a series).
//!
//! Each collector takes the view's read lock for as long as it encodes, so two collectors may see
//! views a write apart; the families of one collector (one concern) always come from one view.

mod build;
mod coverage;
pub(crate) mod diagnostics;
mod email;
mod exposure;
mod findings;
mod gmp;
mod hosts;
mod inventory;
mod ports;
mod shard;
mod stages;
mod vms;

use super::labels::Clean;
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// Register every state collector, each [`Contained`], in exposition order. `dropped` counts the
/// per-finding and per-port series the `max_port_series` budget leaves out (the ports collector
/// encodes it).
pub(crate) fn register(
    reg: &mut Registry,
    state: &Arc<State>,
    dropped: &Counter,
    max_port_series: &Arc<AtomicUsize>,
) {
    let state = || state.clone();
    let all: [(&'static str, Box<dyn Collector>); 13] = [
        ("build", Box::new(build::Build)),
        ("shard", Box::new(shard::Shard)),
        ("hosts", Box::new(hosts::Hosts { state: state() })),
        (
            "findings",
            Box::new(findings::Findings {
                state: state(),
                max_port_series: max_port_series.clone(),
            }),
        ),
        (
            "ports",
            Box::new(ports::Ports {
                state: state(),
                dropped: dropped.clone(),
                max_port_series: max_port_series.clone(),
            }),
        ),
        ("coverage", Box::new(coverage::Coverage { state: state() })),
        ("gmp", Box::new(gmp::Gmp { state: state() })),
        ("stages", Box::new(stages::Stages { state: state() })),
        ("email", Box::new(email::Email { state: state() })),
        (
            "inventory",
            Box::new(inventory::Inventory { state: state() }),
        ),
        ("vms", Box::new(vms::Vms { state: state() })),
        (
            "diagnostics",
            Box::new(diagnostics::Diagnostics { state: state() }),
        ),
        ("exposure", Box::new(exposure::Exposure { state: state() })),
    ];
    for (name, collector) in all {
        reg.register_collector(Box::new(Contained { name, collector }));
    }
}

/// A collector whose error stays its own: logged, and `Ok` to the registry, so the collectors
/// registered after it are still called (see the module documentation).
#[derive(Debug)]
struct Contained {
    name: &'static str,
    collector: Box<dyn Collector>,
}

impl Collector for Contained {
    fn encode(&self, enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        if self.collector.encode(enc).is_err() {
            tracing::warn!(
                collector = self.name,
                "metrics collector failed; the rest of its families are left out of this scrape"
            );
        }
        Ok(())
    }
}

/// Encode one gauge family from (labels, value) pairs.
fn gauges<L, K, V>(
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
    family(enc, name, help, unit, MetricType::Gauge, rows)
}

/// Encode one counter family from (labels, value) pairs.
fn counters<L, K, V>(
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
    family(enc, name, help, unit, MetricType::Counter, rows)
}

/// One family of constant gauges or counters; every label value is
/// [`clean`](super::labels::clean)ed on the way.
fn family<L, K, V>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error>
where
    L: AsRef<[(K, V)]>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    // Registered metrics get a full stop from the client; match them.
    let help = format!("{help}.");
    let mut fam = enc.encode_descriptor(name, &help, unit, kind)?;
    for (labels, v) in rows {
        let labels = Clean(labels.as_ref());
        if kind == MetricType::Counter {
            ConstCounter::new(v).encode(fam.encode_family(&labels)?)?;
        } else {
            ConstGauge::new(v).encode(fam.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

/// A boolean as a gauge value: 1 or 0.
fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Encodes one family, then fails.
    #[derive(Debug)]
    struct Failing;

    impl Collector for Failing {
        fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            gauges(&mut enc, "before", "Encoded", None, [([("a", "1")], 1.0)])?;
            Err(std::fmt::Error)
        }
    }

    #[test]
    fn a_failing_collector_leaves_the_others_in_the_scrape() {
        let mut reg = Registry::with_prefix("stinger");
        for collector in [
            Box::new(Failing) as Box<dyn Collector>,
            Box::new(build::Build),
        ] {
            reg.register_collector(Box::new(Contained {
                name: "test",
                collector,
            }));
        }
        for om in [false, true] {
            let text = crate::expose::encode_metrics(&reg, om).unwrap();
            assert!(text.contains("stinger_before{a=\"1\"} 1"), "{text}");
            assert!(text.contains("stinger_build_info{version="), "{text}");
        }
        // Unwrapped, the same failure fails the whole scrape: what `Contained` is for.
        let mut bare = Registry::with_prefix("stinger");
        bare.register_collector(Box::new(Failing));
        bare.register_collector(Box::new(build::Build));
        assert!(crate::expose::encode_metrics(&bare, false).is_err());
    }
}
