//! OpenStack inventory: credentials (clouds.yaml, OS_* variables), Keystone, Nova, Neutron — one file
//! each.
//!
//! - [`clouds`]: clouds.yaml, secure.yaml and OS_* variables → one typed
//!   [`CloudConfig`](clouds::CloudConfig), resolved the way openstacksdk resolves them. Pure: no
//!   network, and the environment is passed in.

pub mod clouds;
