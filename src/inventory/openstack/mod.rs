//! OpenStack inventory: credentials (clouds.yaml, OS_* variables), Keystone, Nova, Neutron — one file
//! each.
//!
//! - [`clouds`]: clouds.yaml, secure.yaml and OS_* variables → one typed
//!   [`CloudConfig`](clouds::CloudConfig), resolved the way openstacksdk resolves them. Pure: no
//!   network, and the environment is passed in.
//! - [`api`]: the [`Api`](api::Api) seam (authenticated GET) and the error type of every client.
//! - [`keystone`]: the Keystone v3 [`Session`](keystone::Session): authentication, token renewal,
//!   endpoint selection from the catalog, project and user names; implements [`Api`](api::Api).
//! - [`http`]: its HTTP client (rustls on ring, the cloud's CA bundle / `verify` / client certificate)
//!   and reply helpers.
//! - [`nova`]: compute microversion negotiation, `/servers/detail` across every page, servers parsed
//!   into [`types`].
//! - [`paging`]: the pagination walk Nova and Neutron share, pages parsed an item at a time.
//! - [`diagnostics`]: `/servers/{id}/diagnostics` in both formats (2.48+ standard, legacy libvirt keys),
//!   in seconds and bytes.
//! - [`neutron`]: ports, floating IPs, networks and security groups with their rules, fetched
//!   concurrently across every page.
//! - [`join`]: servers + ports + floating IPs + names → VMs and scan targets keyed by instance and
//!   port (pure).
//! - [`source`]: one `[[openstack]]` cloud: fetch everything, join, diagnostics, retries, change
//!   polls; the cloud as an inventory `Source`.
//! - [`types`]: servers, ports, floating IPs, networks, security groups, diagnostics as plain data.

pub mod api;
pub mod changes;
pub mod clouds;
pub mod diagnostics;
pub mod http;
pub mod join;
pub mod keystone;
pub mod neutron;
pub mod nova;
pub mod paging;
pub mod settings;
pub mod source;
pub mod types;
