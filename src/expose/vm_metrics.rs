//! Holds no code, only a test: the cloud inventory's collectors are in
//! [`collectors`](super::collectors) (`inventory.rs`, `vms.rs`, `diagnostics.rs`, `exposure.rs`).
//! What stays here is their end-to-end test, `vm_metrics/tests.rs` (a scrape of
//! [`metrics::registry`](super::metrics::registry) over the test view, checked series by series,
//! by promtool and against the shipped alerts and dashboards).

mod tests;
