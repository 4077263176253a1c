//! Incremental inventory of one cloud (issue 15, part 1): what changed since a cloud-side time.
//! Nova `GET /servers/detail?changes-since=` (deleted servers come back as `DELETED`), Neutron
//! `changed_since=` on ports, floating IPs and security groups (the `standard-attr-timestamp`
//! extension; without it, full listings diffed against the last state, said once in the log).
//!
//! [`poll`] fetches ([`Polled`]), [`diff`](diff::diff) turns that into a typed [`Delta`] (what
//! changed, and which changes can create or remove exposure), [`apply`] folds it into the raw lists
//! a full inventory fetched ([`CloudState`]), and [`CloudState::inventory_of`] re-joins the VMs a
//! delta touched with [`join`](super::join) so the same judgement applies. The next `since` comes from the cloud's own
//! `updated_at` values ([`Cursor`]). Not here: the schedule, targeted rescans, metrics.

mod diff;
mod poll;
mod state;
#[cfg(test)]
mod tests;
mod view;

pub use diff::diff;
pub use poll::{parse_extensions, poll, Feed, PollOptions, Polled, Stamped};
use state::back;
pub use state::{apply, CloudState, DEFAULT_MARGIN};

use super::api::{Error, ServiceType};
use super::types::{FloatingIp, Port, SecurityGroup, Server};
use std::net::IpAddr;

/// Lay the targets of the touched servers ([`CloudState::inventory_of`]) over the targets of a whole
/// inventory: every target of a touched server is replaced by what it has now (target ids start
/// with the server's id).
pub fn patch_targets(
    targets: &mut Vec<(Option<String>, crate::model::Target)>,
    part: Vec<(Option<String>, crate::model::Target)>,
    touched: &std::collections::BTreeSet<String>,
) {
    targets.retain(|(_, t)| !touched.contains(crate::inventory::shard::key(&t.id)));
    targets.extend(part);
}

/// A time as the cloud wrote it (UTC).
pub type Stamp = jiff::Timestamp;

/// Parses an ISO 8601 time as Nova and Neutron write it: with `Z` or an offset, or with neither
/// (then UTC, as both APIs document).
pub fn parse_stamp(s: &str) -> Result<Stamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Stamp>() {
        return Ok(t);
    }
    s.parse::<jiff::civil::DateTime>()
        .ok()
        .and_then(|dt| dt.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| format!("{s:?} is not an ISO 8601 time"))
}

/// The latest stamp believed: a day after the agent's clock (a sanity bound on the cloud's times,
/// never a cursor).
pub(crate) fn future_limit() -> Stamp {
    let now = Stamp::now();
    now.checked_add(jiff::SignedDuration::from_hours(24))
        .unwrap_or(now)
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the fraction cut off (the filters are inclusive, so this only widens
/// them), `Z` rather than `+00:00` so that nothing needs escaping in a query.
pub fn format_stamp(t: Stamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Where the next poll starts, per service, in the cloud's own time. `None`: list everything and
/// diff (no cloud time known yet for that service).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub nova: Option<Stamp>,
    pub neutron: Option<Stamp>,
}

/// The kinds of resource a poll reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Server,
    Port,
    FloatingIp,
    SecurityGroup,
}

impl Resource {
    pub fn as_str(self) -> &'static str {
        match self {
            Resource::Server => "server",
            Resource::Port => "port",
            Resource::FloatingIp => "floating IP",
            Resource::SecurityGroup => "security group",
        }
    }
}

/// Why a poll's answer cannot be used. [`ChangeError::needs_full_inventory`] says whether the
/// caller should run a full inventory now (the answer was garbage) or just poll again later.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The request failed (transport, timeout, a status outside 2xx): nothing was learnt.
    #[error("{0}; the change poll is retried at the next interval")]
    Api(Error),
    /// The cloud answered, but not with a change list that can be trusted: not JSON, an item
    /// that does not parse, a missing or unparseable `updated_at`, a page loop.
    #[error("{service}: GET {path}: the change list cannot be used: {reason}; run a full inventory instead")]
    Garbage {
        service: ServiceType,
        path: String,
        reason: String,
    },
    /// An `updated_at` before the `since` the cloud was asked for, or before what the same
    /// resource showed earlier: the cloud's clock (or its filter) went back in time, so changes
    /// may have been stamped where the next poll would not look.
    #[error("{service}: {} {id} has updated_at {updated_at}, {why} {bound}; the cloud's clock or its changes filter went back in time, run a full inventory instead", resource.as_str())]
    TimeTravel {
        service: ServiceType,
        resource: Resource,
        id: String,
        updated_at: String,
        why: &'static str,
        bound: String,
    },
}

impl ChangeError {
    /// Stable label for `stinger_errors_total{stage="inventory",kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            ChangeError::Api(e) => e.kind(),
            ChangeError::Garbage { .. } => "openstack_changes_garbage",
            ChangeError::TimeTravel { .. } => "openstack_changes_time_travel",
        }
    }

    /// True when the answer was garbage (fall back to a full inventory now); false when the
    /// request merely failed (poll again at the next interval).
    pub fn needs_full_inventory(&self) -> bool {
        !matches!(self, ChangeError::Api(_))
    }
}

/// Invalid replies, page loops and 400s (the cloud rejected our own `since`) are garbage;
/// everything else is a failed request.
fn classify(e: Error) -> ChangeError {
    match e {
        Error::Invalid {
            service,
            path,
            reason,
        }
        | Error::Pagination {
            service,
            path,
            reason,
        } => ChangeError::Garbage {
            service,
            path,
            reason,
        },
        Error::Status {
            service,
            path,
            status: 400,
            message,
        } => ChangeError::Garbage {
            service,
            path,
            reason: format!("HTTP 400: {message}"),
        },
        other => ChangeError::Api(other),
    }
}

// === The delta ===

/// Whether a change can open something up (scan the affected addresses now), close something
/// (re-probe to resolve findings), or neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    CreatesExposure,
    RemovesExposure,
    Neutral,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A server not known before (booted, or created since the full inventory).
    VmAdded {
        status: String,
    },
    /// Status moved, e.g. `BUILD`/`REBUILD`/`SHUTOFF` → `ACTIVE` (booted, rebuilt, started).
    VmStatus {
        from: String,
        to: String,
    },
    /// Something else of the server changed (name, metadata, ...).
    VmChanged,
    VmDeleted,
    AddressAdded,
    AddressRemoved,
    RuleAdded {
        group: String,
        rule: String,
    },
    /// Same rule id, now letting through something it did not.
    RuleWidened {
        group: String,
        rule: String,
    },
    /// Same rule id, now letting through only part of what it did.
    RuleNarrowed {
        group: String,
        rule: String,
    },
    RuleRemoved {
        group: String,
        rule: String,
    },
    /// A port's `port_security_enabled` flipped.
    PortSecurity {
        enabled: bool,
    },
    /// A port's security groups were bound or unbound.
    PortGroups {
        added: Vec<String>,
        removed: Vec<String>,
    },
}

/// One change, with what it affects and when the cloud says it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    pub effect: Effect,
    /// The servers affected.
    pub instances: Vec<String>,
    pub addresses: Vec<IpAddr>,
    pub ports: Vec<String>,
    /// The triggering item's `updated_at` (`None` when the cloud gives none, or the change was
    /// only seen as an absence in a full listing).
    pub updated_at: Option<Stamp>,
}

/// What one poll changed: the typed [`Change`]s, and what [`apply`] writes into the state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    pub changes: Vec<Change>,
    /// The cursor of the next poll (never earlier than this poll's).
    pub next: Cursor,
    pub(crate) servers: Vec<Server>,
    pub(crate) removed_servers: Vec<String>,
    pub(crate) ports: Vec<Port>,
    pub(crate) removed_ports: Vec<String>,
    pub(crate) floating_ips: Vec<FloatingIp>,
    pub(crate) removed_floating_ips: Vec<String>,
    pub(crate) security_groups: Vec<SecurityGroup>,
    pub(crate) removed_security_groups: Vec<String>,
    /// The stamps of the ports, floating IPs and security groups listed (a server's is its record).
    pub(crate) stamps: Vec<((Resource, String), Stamp)>,
}

impl Delta {
    /// Whether the inventory stays as it was.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
            && self.removed_servers.is_empty()
            && self.ports.is_empty()
            && self.removed_ports.is_empty()
            && self.floating_ips.is_empty()
            && self.removed_floating_ips.is_empty()
            && self.security_groups.is_empty()
            && self.removed_security_groups.is_empty()
    }

    /// New address, rule added or widened, port security off, VM booted or rebuilt, ...
    pub fn exposure_creating(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.effect == Effect::CreatesExposure)
    }

    /// Address gone, rule removed or narrowed, port security on, VM stopped or deleted, ...
    pub fn exposure_removing(&self) -> impl Iterator<Item = &Change> {
        self.changes
            .iter()
            .filter(|c| c.effect == Effect::RemovesExposure)
    }
}
