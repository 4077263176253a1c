//! Test-only helpers for stinger's unit tests (`src/`), integration tests (`tests/`) and examples:
//! one copy of each, instead of `#[path]` includes and copies. A dev-dependency of `stinger` only,
//! and independent of it (naming `stinger` here would build a second copy of its types into the
//! unit tests); where a fake must agree with stinger (the gvmd scan config id), stinger's own tests
//! check that it does.
//!
//! Layout:
//! - [`tls`]: a test CA issuing server and client certificates (PEM and DER), and a rustls server
//!   configuration for fake TLS servers.
//! - [`promtool`]: finds promtool and checks an exposition, rule files or configurations with it.
//! - [`net`]: free ports on a loopback address.
//! - [`netns`]: Neutron-like test network namespaces and the privilege check that skips tests
//!   needing root.
//! - [`fake_gvmd`]: a fake gvmd speaking GMP over a unix socket and TLS, with switchable faults.
//! - [`fake_cloud`]: a fake OpenStack Nova + Neutron replaying the upstream API samples, with
//!   runtime fault injection and request counting (also the `fake_cloud` and `detect_bench`
//!   examples' server).
#![forbid(unsafe_code)]

pub mod fake_cloud;
pub mod fake_gvmd;
pub mod net;
pub mod netns;
pub mod promtool;
pub mod tls;
