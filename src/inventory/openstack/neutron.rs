//! Neutron (network) client: ports, floating IPs, networks and security groups (with their rules),
//! each listed across every page (`<collection>_links` rel=next, with the loop detection of
//! [`nova`](super::nova)), and parsed into [`types`](super::types).
//!
//! Paths are always `/v2.0/...`, appended to the catalog's network endpoint as they are. Catalogs
//! normally register Neutron without the version (`http://host:9696/`, as in Keystone's sample
//! catalog); an endpoint registered as `.../v2.0` would get `/v2.0/v2.0/...` and 404 — that is the
//! session's to correct, since only it sees the endpoint URL.
//!
//! Neutron has no `all_tenants`: an admin token already sees every project's resources.

use super::api::{Api, Error, ServiceType};
use super::paging::{paginate, Listed};
use super::types::{
    Direction, FixedIp, FloatingIp, Network, Port, SecurityGroup, SecurityGroupRule,
};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// How Neutron lists are paged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// `limit=` (Neutron silently caps it at its own maximum).
    pub page_size: u32,
    /// Give up (as [`Error::Pagination`]) when there is still a next page after this many.
    pub max_pages: u32,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            page_size: 1000,
            max_pages: 10_000,
        }
    }
}

/// Everything the inventory needs from Neutron.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkInventory {
    pub ports: Vec<Port>,
    pub floating_ips: Vec<FloatingIp>,
    pub networks: Vec<Network>,
    pub security_groups: Vec<SecurityGroup>,
    /// Neutron's clock when it answered (the earliest `Date` of the four listings' first pages):
    /// changes made after the listing are stamped later, so the change polls can start there.
    pub date: Option<jiff::Timestamp>,
}

/// Lists `path` (e.g. `/v2.0/ports`) with `?limit=`, following `<collection>_links` rel=next.
pub async fn list<T>(
    api: &impl Api,
    path: &str,
    collection: &str,
    opts: &ListOptions,
    parse: fn(&Value) -> Result<T, String>,
) -> Result<Listed<T>, Error> {
    let first = format!("{path}?limit={}", opts.page_size.max(1));
    paginate(
        api,
        ServiceType::Network,
        &first,
        collection,
        &[],
        opts.max_pages,
        parse,
    )
    .await
}

/// Fetches ports, floating IPs, networks and security groups concurrently; the first error wins.
pub async fn inventory(api: &impl Api, opts: &ListOptions) -> Result<NetworkInventory, Error> {
    let (ports, floating_ips, networks, security_groups) = tokio::try_join!(
        list(api, "/v2.0/ports", "ports", opts, parse_port),
        list(
            api,
            "/v2.0/floatingips",
            "floatingips",
            opts,
            parse_floating_ip
        ),
        list(api, "/v2.0/networks", "networks", opts, parse_network),
        list(
            api,
            "/v2.0/security-groups",
            "security_groups",
            opts,
            parse_security_group
        ),
    )?;
    let date = [
        ports.date,
        floating_ips.date,
        networks.date,
        security_groups.date,
    ]
    .into_iter()
    .flatten()
    .min();
    Ok(NetworkInventory {
        date,
        ports: ports.items,
        floating_ips: floating_ips.items,
        networks: networks.items,
        security_groups: security_groups.items,
    })
}

// ---------------------------------------------------------------------------------------------
// Field helpers
// ---------------------------------------------------------------------------------------------

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    v.as_object()
        .ok_or_else(|| format!("the {what} is not a JSON object"))
}

fn id(obj: &Map<String, Value>, what: &str) -> Result<String, String> {
    obj.get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .ok_or_else(|| format!("the {what} has no id"))
}

/// A string field; absent or null is empty, a mistyped one an error.
fn text(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!("`{key}` is not a string: {other}")),
    }
}

/// A string field that may be null; empty counts as null.
fn opt_text(obj: &Map<String, Value>, key: &str) -> Result<Option<String>, String> {
    text(obj, key).map(|s| Some(s).filter(|s| !s.is_empty()))
}

fn flag(obj: &Map<String, Value>, key: &str, default: bool) -> Result<bool, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => Err(format!("`{key}` is not a boolean: {other}")),
    }
}

fn strings(obj: &Map<String, Value>, key: &str) -> Result<Vec<String>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(list)) => list
            .iter()
            .map(|v| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{key}` holds a non-string: {v}"))
            })
            .collect(),
        Some(other) => Err(format!("`{key}` is not a list: {other}")),
    }
}

/// `project_id`, else the older `tenant_id`.
fn project(obj: &Map<String, Value>) -> Result<String, String> {
    match opt_text(obj, "project_id")? {
        Some(p) => Ok(p),
        None => text(obj, "tenant_id"),
    }
}

fn ip(obj: &Map<String, Value>, key: &str) -> Result<Option<IpAddr>, String> {
    match opt_text(obj, key)? {
        None => Ok(None),
        Some(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("`{key}` {s:?} is not an IP address")),
    }
}

fn port_number(obj: &Map<String, Value>, key: &str) -> Result<Option<u16>, String> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| format!("`{key}` is not a port number: {v}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Items
// ---------------------------------------------------------------------------------------------

/// One item of `ports`. `port_security_enabled` absent means true.
pub fn parse_port(v: &Value) -> Result<Port, String> {
    let obj = object(v, "port")?;
    let fixed_ips = match obj.get("fixed_ips") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .map(|f| {
                let f = object(f, "fixed_ips entry")?;
                let ip_address =
                    ip(f, "ip_address")?.ok_or("a fixed_ips entry has no ip_address")?;
                Ok(FixedIp { ip_address })
            })
            .collect::<Result<_, String>>()?,
        Some(other) => return Err(format!("`fixed_ips` is not a list: {other}")),
    };
    Ok(Port {
        id: id(obj, "port")?,
        network_id: text(obj, "network_id")?,
        device_id: text(obj, "device_id")?,
        mac_address: text(obj, "mac_address")?,
        fixed_ips,
        security_groups: strings(obj, "security_groups")?,
        port_security_enabled: flag(obj, "port_security_enabled", true)?,
    })
}

/// One item of `floatingips`; unassociated ones have no fixed address and no port.
pub fn parse_floating_ip(v: &Value) -> Result<FloatingIp, String> {
    let obj = object(v, "floating IP")?;
    Ok(FloatingIp {
        id: id(obj, "floating IP")?,
        floating_ip_address: ip(obj, "floating_ip_address")?
            .ok_or("the floating IP has no floating_ip_address")?,
        fixed_ip_address: ip(obj, "fixed_ip_address")?,
        port_id: opt_text(obj, "port_id")?,
        floating_network_id: text(obj, "floating_network_id")?,
        router_id: opt_text(obj, "router_id")?,
        project_id: project(obj)?,
        status: text(obj, "status")?,
    })
}

/// One item of `networks`.
pub fn parse_network(v: &Value) -> Result<Network, String> {
    let obj = object(v, "network")?;
    Ok(Network {
        id: id(obj, "network")?,
        name: text(obj, "name")?,
        project_id: project(obj)?,
        external: flag(obj, "router:external", false)?,
        shared: flag(obj, "shared", false)?,
        subnets: strings(obj, "subnets")?,
    })
}

/// One item of `security_groups`, with its embedded `security_group_rules`. A rule that does not
/// parse fails the whole group: a group with a rule missing would misstate what it lets through.
pub fn parse_security_group(v: &Value) -> Result<SecurityGroup, String> {
    let obj = object(v, "security group")?;
    let rules = match obj.get("security_group_rules") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => list
            .iter()
            .enumerate()
            .map(|(i, r)| {
                parse_security_group_rule(r).map_err(|e| {
                    let name = r
                        .get("id")
                        .and_then(Value::as_str)
                        .map_or_else(|| format!("#{i}"), str::to_string);
                    format!("rule {name}: {e}")
                })
            })
            .collect::<Result<_, String>>()?,
        Some(other) => return Err(format!("`security_group_rules` is not a list: {other}")),
    };
    Ok(SecurityGroup {
        id: id(obj, "security group")?,
        name: text(obj, "name")?,
        project_id: project(obj)?,
        stateful: flag(obj, "stateful", true)?,
        rules,
    })
}

/// One security group rule (embedded, or an item of `security_group_rules`). `protocol` is kept as
/// Neutron gives it (a name or a number, as text); null or empty is any protocol.
pub fn parse_security_group_rule(v: &Value) -> Result<SecurityGroupRule, String> {
    let obj = object(v, "rule")?;
    let direction = match obj.get("direction").and_then(Value::as_str) {
        Some("ingress") => Direction::Ingress,
        Some("egress") => Direction::Egress,
        _ => {
            return Err(format!(
                "`direction` is {}, not ingress or egress",
                obj.get("direction").unwrap_or(&Value::Null)
            ))
        }
    };
    let protocol = match obj.get("protocol") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.is_empty()),
        Some(Value::Number(n)) if n.is_u64() => Some(n.to_string()),
        Some(other) => {
            return Err(format!(
                "`protocol` is neither a name nor a number: {other}"
            ))
        }
    };
    Ok(SecurityGroupRule {
        id: text(obj, "id")?,
        direction,
        ethertype: text(obj, "ethertype")?,
        protocol,
        port_range_min: port_number(obj, "port_range_min")?,
        port_range_max: port_number(obj, "port_range_max")?,
        remote_ip_prefix: opt_text(obj, "remote_ip_prefix")?,
        remote_group_id: opt_text(obj, "remote_group_id")?,
        remote_address_group_id: opt_text(obj, "remote_address_group_id")?,
    })
}

#[cfg(test)]
mod tests;
