//! OpenStack inventory: credentials (clouds.yaml, OS_* variables), Keystone, Nova, Neutron — one file
//! each.
//!
//! - [`clouds`]: clouds.yaml, secure.yaml and OS_* variables → one typed
//!   [`CloudConfig`](clouds::CloudConfig), resolved the way openstacksdk resolves them. Pure: no
//!   network, and the environment is passed in.
//! - [`api`]: the [`Api`](api::Api) seam (authenticated GET) and the error type of every client.
//! - [`types`]: servers, ports, floating IPs, networks, security groups, diagnostics as plain data.

pub mod api;
pub mod clouds;
pub mod types;
