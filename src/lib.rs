//! Stinger watches a cloud's attack surface and turns it into Prometheus metrics and alerts.
//!
//! Data flows one way, one stage a module; stages share only the plain types of [`model`], and only
//! [`app`] wires them together. A module names only modules below it (`src/layers_tests.rs` holds
//! the table of allowed edges and checks every file against it).
//!
//! # Layout
//! Bottom to top; the stages of one row never name each other.
//! - [`model`]: the plain data every stage shares — targets, observations, verdicts, host state, scan
//!   runs, history events; a cloud's metadata, security groups and diagnostics; a port's
//!   security-group exposure. Depends on nothing else in the crate. Beside it, depending on nothing
//!   either: `tls` (the rustls verifiers that accept any certificate — the insecure client modes, and
//!   the web server's unverified client certificates — shared by inventory, scan and expose),
//!   [`shutdown`] (the shutdown token and the reload signal) and [`build`] (version and revision).
//! - [`ports`]: port lists and nmap's port ranking, shared by config, scan and judge.
//! - The stages, each on the rows above only:
//!   - [`inventory`]: what to scan — CIDR target groups minus exclusions, expanded to addresses; the
//!     OpenStack clouds' VMs and their addresses. Each kind of source implements one trait
//!     (`inventory::Source`), and the agent builds them from one registry (`app::inventory`).
//!   - [`scan`]: how to look — the native async TCP connect scanner (port discovery), the native UDP
//!     probes, nmap for services and versions, Greenbone through GMP for vulnerabilities; with their
//!     pure parsers. Each scanner implements one trait (`scan::Prober`) and returns model
//!     observations; the agent builds them from a registry (`app::cycle::probers`,
//!     `app::vulns::scanner`).
//!   - [`judge`]: what it means — the port policy, a verdict and its deciding rule for every open port,
//!     what a port's security groups expose, a host that answers every port (one record, not one a
//!     port), and the differences between two scans (history events).
//!   - [`store`]: what is remembered — RocksDB: latest state per host, scan runs, history events.
//! - [`state`]: the in-memory view that `/metrics` and the API read (with the running scans'
//!   progress).
//! - [`expose`]: who is told — `/metrics`, the JSON API, health endpoints, the digest e-mail.
//! - [`config`]: the TOML file and command-line flags, parsed, validated and built into the typed
//!   settings each stage defines, before anything binds a socket or opens the store.
//! - [`telemetry`]: the tracing set-up (from config's `--log.format`).
//! - [`app`]: the agent — the discovery cycle, the Greenbone stage beside it, SIGHUP reload, graceful
//!   shutdown; and `scan --once`.
#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod app;
pub mod config;
pub mod expose;
pub mod inventory;
pub mod judge;
#[cfg(test)]
mod layers_tests;
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
