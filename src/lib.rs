//! Stinger watches a cloud's attack surface and turns it into Prometheus metrics and alerts.
//!
//! Data flows one way, one stage a module; stages share only the plain types of [`model`], and only
//! [`app`] wires them together:
//!
//! # Layout
//! - [`config`]: the TOML file and command-line flags, parsed, validated and built into typed per-stage
//!   configs before anything binds a socket or opens the store.
//! - [`inventory`]: what to scan — CIDR target groups minus exclusions, expanded to addresses.
//! - [`scan`]: how to look — the native async TCP connect scanner (port discovery), nmap for services
//!   and versions, Greenbone through GMP for vulnerabilities; with their pure XML parsers.
//! - [`judge`]: what it means — the port policy, a verdict and its deciding rule for every open port,
//!   and the differences between two scans (history events).
//! - [`store`]: what is remembered — RocksDB: latest state per host, scan runs, history events.
//! - [`expose`]: who is told — `/metrics`, the JSON API and health endpoints.
//! - [`app`]: the agent — the discovery cycle, the Greenbone stage beside it, SIGHUP reload, graceful
//!   shutdown; and `scan --once`.
//! - [`state`]: the in-memory view that `/metrics` and the API read.
//! - [`ports`]: port lists and nmap's port ranking, shared by config, scan and judge.
//! - [`shutdown`], [`telemetry`]: the shutdown token and the tracing set-up.
//! - `tls`: the rustls verifiers that accept any certificate (the insecure client modes, and the web
//!   server's unverified client certificates), shared by inventory, scan and expose.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod app;
pub mod config;
pub mod expose;
pub mod inventory;
pub mod judge;
pub mod model;
pub mod ports;
pub mod scan;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;
pub(crate) mod tls;

/// The version and git revision baked in at build time, as `stinger_build_info` reports them.
pub mod build {
    /// Crate version from Cargo.toml.
    pub const VERSION: &str = env!("CARGO_PKG_VERSION");
    /// Git revision, when the build had one (set `STINGER_REVISION` at build time), else "unknown".
    pub const REVISION: &str = match option_env!("STINGER_REVISION") {
        Some(r) => r,
        None => "unknown",
    };
}
