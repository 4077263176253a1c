//! A fake OpenStack Nova + Neutron for tests and benchmarks: the [`Cloud`] model (built from the
//! upstream API samples in `tests/fixtures/openstack/`, every VM address rewritten to 127.0.0.0/8),
//! the HTTP servers that replay it ([`FakeCloud`], one listener per service, own thread and tokio
//! runtime, stopped on drop), token checking ([`TokenCheck`]), runtime fault injection ([`Faults`])
//! and request counting. Used by the integration tests and the `fake_cloud` and `detect_bench`
//! examples.
//!
//! Behaviour follows the real services where the client could notice (see `/work/shared/PROTOCOLS.md`
//! §1c, §1d): Nova microversions (2.1–2.104, 406 outside, echoed with `Vary`), `servers/detail`
//! newest first with `servers_links` whenever a page is exactly full, `max_limit`, 400 on a bad
//! marker, 403 for `all_tenants` without the admin role; Neutron `limit`/`marker` paging sorted by
//! id with `<collection>_links`, filters ANDed across fields and ORed within one. Version documents
//! (`/`, `/v2.1`, `/v2.1/`) need no token, like the real services; everything else does.
//!
//! Incremental listing (§7): Nova `changes-since` (`updated >= T`, deleted servers listed after the
//! live ones with status `DELETED`), Neutron `changed_since` (`updated_at >= T`) on every collection
//! including `security-group-rules`, and the `standard-attr-timestamp` extension, which
//! [`FakeConfig::neutron_timestamps`] can take away (then `changed_since` gets a 400, as with
//! Neutron's filter validation). Changes made through [`Cloud`]'s methods are stamped with its
//! clock ([`Cloud::set_clock`]).
//!
//! Layout: the model is `samples` (the upstream documents everything is cloned from), `spec` (what
//! a test asks for), `cloud` (the [`Cloud`] and its queries), `add` (adding servers and security
//! groups), `change` (changes while serving) and `values` (ids, addresses, times, JSON edits). The
//! servers are `server` ([`FakeCloud`]: start-up, counting, control), `http` (one request: faults,
//! dispatch, the reply), `auth` (tokens, Keystone), `faults`, `nova`, `nova_list` (`servers` and
//! `servers/detail`) and `neutron`.

mod add;
mod auth;
mod change;
mod cloud;
mod faults;
mod http;
mod neutron;
mod nova;
mod nova_list;
mod samples;
mod server;
mod spec;
mod values;

pub use auth::TokenCheck;
pub use cloud::Cloud;
pub use faults::{Fault, FaultKind, Faults, Service};
pub use nova::{NOVA_MAX_MINOR, NOVA_MIN_MINOR};
pub use samples::{SAMPLE_FIXED_IP, SAMPLE_FLOATING_IP, SAMPLE_PROJECT, SAMPLE_SERVER_ID};
pub use server::{FakeCloud, FakeConfig, LoggedRequest};
pub use spec::{DiagnosticsReply, RuleSpec, SecurityGroupSpec, ServerSpec};
pub use values::{loopback_ip, uuid};
