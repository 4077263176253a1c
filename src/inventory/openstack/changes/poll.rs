//! Fetching one poll: Nova `changes-since` and Neutron `changed_since` (or full listings when the
//! cloud has no cursor yet, or Neutron lacks `standard-attr-timestamp`), every page through the
//! full inventory's [`paginate`] and microversion headers, each item parsed by the full
//! inventory's own parser plus its `updated_at`.

use super::{classify, format_stamp, parse_stamp, ChangeError, Cursor, Stamp};
use crate::inventory::openstack::api::{Api, Error, ServiceType};
use crate::inventory::openstack::neutron;
use crate::inventory::openstack::nova::{self, Microversion, VersionHeaders};
use crate::inventory::openstack::paging::paginate;
use crate::inventory::openstack::types::{FloatingIp, Port, SecurityGroup, Server};
use serde_json::Value;
use std::collections::BTreeMap;

/// The `standard-attr-timestamp` alias, and the older one it replaced.
const TIMESTAMP_EXTENSIONS: [&str; 2] = ["standard-attr-timestamp", "timestamp_core"];

/// One item of a change list with the cloud's `updated` / `updated_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped<T> {
    pub item: T,
    pub updated_at: Option<Stamp>,
    /// Nova only: status `DELETED` (or vm_state `deleted`).
    pub deleted: bool,
    /// Security groups only: each embedded rule's own `updated_at`, by rule id.
    pub rule_stamps: BTreeMap<String, Stamp>,
}

impl<T> Stamped<T> {
    fn new(item: T, updated_at: Option<Stamp>) -> Self {
        Stamped {
            item,
            updated_at,
            deleted: false,
            rule_stamps: BTreeMap::new(),
        }
    }
}

fn stamp_field(v: &Value, key: &str) -> Result<Option<Stamp>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => parse_stamp(s)
            .map(Some)
            .map_err(|e| format!("`{key}`: {e}")),
        Some(other) => Err(format!("`{key}` is not a time: {other}")),
    }
}

pub(super) fn parse_server_change(v: &Value) -> Result<Stamped<Server>, String> {
    let server = nova::parse_server(v)?;
    let deleted = server.status.eq_ignore_ascii_case("DELETED")
        || v.get("OS-EXT-STS:vm_state").and_then(Value::as_str) == Some("deleted");
    let mut s = Stamped::new(server, stamp_field(v, "updated")?);
    s.deleted = deleted;
    Ok(s)
}

pub(super) fn parse_port_change(v: &Value) -> Result<Stamped<Port>, String> {
    Ok(Stamped::new(
        neutron::parse_port(v)?,
        stamp_field(v, "updated_at")?,
    ))
}

pub(super) fn parse_fip_change(v: &Value) -> Result<Stamped<FloatingIp>, String> {
    Ok(Stamped::new(
        neutron::parse_floating_ip(v)?,
        stamp_field(v, "updated_at")?,
    ))
}

pub(super) fn parse_group_change(v: &Value) -> Result<Stamped<SecurityGroup>, String> {
    let mut s = Stamped::new(
        neutron::parse_security_group(v)?,
        stamp_field(v, "updated_at")?,
    );
    for r in v
        .get("security_group_rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(id), Some(t)) = (
            r.get("id").and_then(Value::as_str),
            stamp_field(r, "updated_at")?,
        ) {
            s.rule_stamps.insert(id.to_string(), t);
        }
    }
    Ok(s)
}

/// Whether Neutron filters on `changed_since`; remembered per cloud so that the fallback is
/// probed and logged once.
#[derive(Debug, Clone, Default)]
pub struct Feed {
    /// `None` until `/v2.0/extensions` was read.
    neutron_filters: Option<bool>,
}

impl Feed {
    pub fn new() -> Feed {
        Feed::default()
    }

    /// What the cloud said: `Some(true)` with `standard-attr-timestamp`, `Some(false)` when
    /// Neutron is listed in full instead, `None` before the first poll.
    pub fn neutron_filters(&self) -> Option<bool> {
        self.neutron_filters
    }

    fn fall_back(&mut self, cloud: &str, why: &str) {
        if self.neutron_filters != Some(false) {
            tracing::warn!(
                cloud,
                reason = why,
                "Neutron cannot list changes (changed_since); ports, floating IPs and security \
                 groups are listed in full at every poll instead (enable Neutron's `timestamp` \
                 service plugin to avoid that)"
            );
        }
        self.neutron_filters = Some(false);
    }
}

/// Whether `/v2.0/extensions` lists the timestamp extension.
pub fn parse_extensions(body: &[u8]) -> Result<bool, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("extensions are not JSON: {e}"))?;
    let list = doc
        .get("extensions")
        .and_then(Value::as_array)
        .ok_or("no `extensions` list in the reply")?;
    Ok(list.iter().any(|x| {
        x.get("alias")
            .and_then(Value::as_str)
            .is_some_and(|a| TIMESTAMP_EXTENSIONS.contains(&a))
    }))
}

/// How a poll lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollOptions {
    /// The cloud's name, for the log.
    pub cloud: String,
    pub page_size: u32,
    pub max_pages: u32,
    /// Nova `all_tenants=1`.
    pub all_projects: bool,
}

/// What one poll fetched, not yet compared with anything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Polled {
    /// The cursor the poll asked from.
    pub since: Cursor,
    pub servers: Vec<Stamped<Server>>,
    pub ports: Vec<Stamped<Port>>,
    pub floating_ips: Vec<Stamped<FloatingIp>>,
    pub security_groups: Vec<Stamped<SecurityGroup>>,
    /// Nova was listed in full (no cursor): a server missing from it is gone.
    pub nova_full: bool,
    /// Neutron was listed in full (no cursor, or no `changed_since`): what is missing is gone.
    pub neutron_full: bool,
}

/// Lists what changed since `since`: Nova and Neutron concurrently, every page. The first poll of
/// a cloud reads `/v2.0/extensions`; a Neutron that lacks the timestamp extension, or answers a
/// `changed_since` with 400, is listed in full from then on.
pub async fn poll(
    api: &impl Api,
    feed: &mut Feed,
    mv: Microversion,
    since: Cursor,
    opts: &PollOptions,
) -> Result<Polled, ChangeError> {
    if feed.neutron_filters.is_none() {
        let path = "/v2.0/extensions";
        let reply = api
            .get(ServiceType::Network, path, &[])
            .await
            .map_err(classify)?;
        let has = parse_extensions(&reply.body).map_err(|reason| ChangeError::Garbage {
            service: ServiceType::Network,
            path: path.to_string(),
            reason,
        })?;
        if has {
            feed.neutron_filters = Some(true);
        } else {
            feed.fall_back(
                &opts.cloud,
                "no standard-attr-timestamp in /v2.0/extensions",
            );
        }
    }
    let neutron_since = since.neutron.filter(|_| feed.neutron_filters == Some(true));
    let (servers, net) = tokio::join!(
        poll_nova(api, mv, since.nova, opts),
        poll_neutron(api, neutron_since, opts)
    );
    let servers = servers?;
    let (ports, floating_ips, security_groups, neutron_full) = match net {
        Err(Error::Status {
            status: 400,
            message,
            ..
        }) if neutron_since.is_some() => {
            feed.fall_back(
                &opts.cloud,
                &format!("changed_since answered HTTP 400: {message}"),
            );
            let (p, f, g) = poll_neutron(api, None, opts).await.map_err(classify)?;
            (p, f, g, true)
        }
        Err(e) => return Err(classify(e)),
        Ok((p, f, g)) => (p, f, g, neutron_since.is_none()),
    };
    Ok(Polled {
        since,
        servers,
        ports,
        floating_ips,
        security_groups,
        nova_full: since.nova.is_none(),
        neutron_full,
    })
}

async fn poll_nova(
    api: &impl Api,
    mv: Microversion,
    since: Option<Stamp>,
    opts: &PollOptions,
) -> Result<Vec<Stamped<Server>>, ChangeError> {
    let mut first = String::from("/servers/detail?");
    if opts.all_projects {
        first.push_str("all_tenants=1&");
    }
    if let Some(t) = since {
        first.push_str(&format!("changes-since={}&", format_stamp(t)));
    }
    first.push_str(&format!("limit={}", opts.page_size.max(1)));
    let headers = VersionHeaders::new(mv);
    paginate(
        api,
        ServiceType::Compute,
        &first,
        "servers",
        &headers.pairs(),
        opts.max_pages,
        parse_server_change,
    )
    .await
    .map(|l| l.items)
    .map_err(|e| classify(nova::explain_406(e, mv)))
}

type NeutronLists = (
    Vec<Stamped<Port>>,
    Vec<Stamped<FloatingIp>>,
    Vec<Stamped<SecurityGroup>>,
);

async fn poll_neutron(
    api: &impl Api,
    since: Option<Stamp>,
    opts: &PollOptions,
) -> Result<NeutronLists, Error> {
    let query = match since {
        Some(t) => format!(
            "?changed_since={}&limit={}",
            format_stamp(t),
            opts.page_size.max(1)
        ),
        None => format!("?limit={}", opts.page_size.max(1)),
    };
    let n = ServiceType::Network;
    let (u_ports, u_floatingips, u_security_groups) = (
        format!("/v2.0/ports{query}"),
        format!("/v2.0/floatingips{query}"),
        format!("/v2.0/security-groups{query}"),
    );
    let (ports, fips, groups) = tokio::try_join!(
        paginate(
            api,
            n,
            &u_ports,
            "ports",
            &[],
            opts.max_pages,
            parse_port_change
        ),
        paginate(
            api,
            n,
            &u_floatingips,
            "floatingips",
            &[],
            opts.max_pages,
            parse_fip_change
        ),
        paginate(
            api,
            n,
            &u_security_groups,
            "security_groups",
            &[],
            opts.max_pages,
            parse_group_change
        ),
    )?;
    Ok((ports.items, fips.items, groups.items))
}
