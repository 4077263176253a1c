//! Nova (compute) client: microversion negotiation, `GET /servers/detail` across every page, and the
//! parsing of servers into [`types::Server`](super::types::Server). Also owns the pagination walk
//! (`*_links` rel=next, loop detection) that [`neutron`](super::neutron) reuses, and the microversion
//! headers that [`diagnostics`](super::diagnostics) sends.
//!
//! Every compute request carries both `OpenStack-API-Version: compute 2.N` and the legacy
//! `X-OpenStack-Nova-API-Version: 2.N` (except at 2.0, the pre-microversion API, which gets neither).

use super::api::{Api, Error, Reply, ServiceType};
use super::paging::{paginate, parse_page, Page};
use super::types::{AddressKind, Metadata, Server, ServerAddress};
use serde_json::{Map, Value};
use std::net::IpAddr;

/// A compute API microversion, `major.minor` (always 2.N in practice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Microversion {
    pub major: u32,
    pub minor: u32,
}

impl Microversion {
    /// The legacy v2.0 API (no microversions): no version headers are sent.
    pub const LEGACY: Microversion = Microversion { major: 2, minor: 0 };
    /// The newest microversion with a `servers-details` API sample; the default wanted version.
    pub const DEFAULT: Microversion = Microversion {
        major: 2,
        minor: 100,
    };
    /// From here on `flavor` is embedded (`original_name`).
    pub const EMBEDDED_FLAVOR: Microversion = Microversion {
        major: 2,
        minor: 47,
    };
    /// From here on diagnostics come in the standardized format.
    pub const STANDARD_DIAGNOSTICS: Microversion = Microversion {
        major: 2,
        minor: 48,
    };

    /// Whether requests at this version carry the microversion headers (all but 2.0).
    pub fn sends_headers(self) -> bool {
        self != Self::LEGACY
    }
}

impl Default for Microversion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl std::fmt::Display for Microversion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl std::str::FromStr for Microversion {
    type Err = String;

    /// `"2.100"`. An empty string is the legacy 2.0.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Ok(Self::LEGACY);
        }
        let bad = || format!("{s:?} is not a compute microversion; write it as 2.N (e.g. 2.100)");
        let (major, minor) = s.split_once('.').ok_or_else(bad)?;
        let major: u32 = major.parse().map_err(|_| bad())?;
        let minor: u32 = minor.parse().map_err(|_| bad())?;
        Ok(Microversion { major, minor })
    }
}

const OPENSTACK_API_VERSION: &str = "OpenStack-API-Version";
const NOVA_API_VERSION: &str = "X-OpenStack-Nova-API-Version";

/// The header values for one microversion; borrow them with [`VersionHeaders::pairs`].
pub(super) struct VersionHeaders {
    send: bool,
    new: String,
    legacy: String,
}

impl VersionHeaders {
    pub(super) fn new(mv: Microversion) -> Self {
        VersionHeaders {
            send: mv.sends_headers(),
            new: format!("compute {mv}"),
            legacy: mv.to_string(),
        }
    }

    pub(super) fn pairs(&self) -> Vec<(&str, &str)> {
        if self.send {
            vec![
                (OPENSTACK_API_VERSION, self.new.as_str()),
                (NOVA_API_VERSION, self.legacy.as_str()),
            ]
        } else {
            Vec::new()
        }
    }
}

/// A 406 from Nova means the microversion is outside the server's range: say so and what to do.
pub(super) fn explain_406(e: Error, mv: Microversion) -> Error {
    match e {
        Error::Status {
            service,
            path,
            status: 406,
            message,
        } => Error::Status {
            service,
            path,
            status: 406,
            message: format!(
                "{message} (the cloud does not accept compute microversion {mv}; configure a lower \
                 compute microversion, or leave it to negotiation)"
            ),
        },
        other => other,
    }
}

/// GET a compute path with the microversion headers.
pub(super) async fn compute_get(
    api: &impl Api,
    mv: Microversion,
    path: &str,
) -> Result<Reply, Error> {
    let headers = VersionHeaders::new(mv);
    api.get(ServiceType::Compute, path, &headers.pairs())
        .await
        .map_err(|e| explain_406(e, mv))
}

// ---------------------------------------------------------------------------------------------
// Microversion negotiation
// ---------------------------------------------------------------------------------------------

/// The microversions a compute endpoint accepts. `None` from [`parse_version_document`] is the
/// legacy v2.0 API (no microversions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    pub min: Microversion,
    pub max: Microversion,
}

/// Parses the answer to `GET /` on the compute endpoint: the single-version document
/// (`{"version": {...}}`, what `.../v2.1/` returns) or the multi-version one (`{"versions": [...]}`),
/// from which the `v2.1` entry (else the newest with a `version`) is taken.
pub fn parse_version_document(body: &[u8]) -> Result<Option<VersionRange>, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("version document is not JSON: {e}"))?;
    let entry = if let Some(v) = doc.get("version") {
        v.clone()
    } else if let Some(list) = doc.get("versions").and_then(Value::as_array) {
        let v21 = list
            .iter()
            .find(|v| v.get("id").and_then(Value::as_str) == Some("v2.1"));
        let newest = list
            .iter()
            .filter_map(|v| {
                let max = v.get("version").and_then(Value::as_str)?;
                let max: Microversion = max.parse().ok()?;
                Some((max, v))
            })
            .max_by_key(|(max, _)| *max)
            .map(|(_, v)| v);
        match v21.or(newest).or(list.first()) {
            Some(v) => v.clone(),
            None => return Err("the `versions` list is empty".into()),
        }
    } else {
        return Err("neither `version` nor `versions` in the version document".into());
    };
    let field = |k: &str| -> Result<Microversion, String> {
        match entry.get(k) {
            None | Some(Value::Null) => Ok(Microversion::LEGACY),
            Some(Value::String(s)) => s.parse(),
            Some(other) => Err(format!("`{k}` is not a string: {other}")),
        }
    };
    let max = field("version")?;
    if max == Microversion::LEGACY {
        return Ok(None);
    }
    let min = field("min_version")?;
    Ok(Some(VersionRange { min, max }))
}

/// The microversion to use: `wanted`, capped at the server's maximum; an error if below its
/// minimum. A legacy endpoint (no range) gets 2.0.
pub fn choose(wanted: Microversion, range: Option<VersionRange>) -> Result<Microversion, String> {
    let Some(range) = range else {
        return Ok(Microversion::LEGACY);
    };
    if wanted < range.min {
        return Err(format!(
            "the compute API accepts microversions {} to {}, and the configured {wanted} is below \
             that; configure a compute microversion in that range",
            range.min, range.max
        ));
    }
    Ok(wanted.min(range.max))
}

/// Asks the compute endpoint which microversions it speaks (`GET /` relative to the catalog URL,
/// which for a `.../v2.1[/project]` endpoint is the v2.1 version document) and picks one.
pub async fn negotiate(api: &impl Api, wanted: Microversion) -> Result<Microversion, Error> {
    let path = "/";
    let invalid = |reason: String| Error::Invalid {
        service: ServiceType::Compute,
        path: path.to_string(),
        reason,
    };
    let reply = api.get(ServiceType::Compute, path, &[]).await?;
    let range = parse_version_document(&reply.body).map_err(invalid)?;
    let mv = choose(wanted, range).map_err(invalid)?;
    match range {
        Some(r) => {
            tracing::info!(min = %r.min, max = %r.max, wanted = %wanted, using = %mv, "compute microversion negotiated")
        }
        None => tracing::info!(using = %mv, "compute endpoint has no microversions (legacy v2.0)"),
    }
    Ok(mv)
}

// ---------------------------------------------------------------------------------------------
// Servers
// ---------------------------------------------------------------------------------------------

/// How `GET /servers/detail` is paged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListOptions {
    /// `limit=` (Nova caps it at `[api]max_limit`, default 1000).
    pub page_size: u32,
    /// `all_tenants=1` (admin only by default policy; a non-admin gets 403).
    pub all_projects: bool,
    /// Give up (as [`Error::Pagination`]) when there is still a next page after this many.
    pub max_pages: u32,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            page_size: 1000,
            all_projects: true,
            max_pages: 10_000,
        }
    }
}

/// The servers of every page.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerList {
    pub servers: Vec<Server>,
}

/// The first request of a server listing.
pub fn servers_path(opts: &ListOptions) -> String {
    let limit = opts.page_size.max(1);
    if opts.all_projects {
        format!("/servers/detail?all_tenants=1&limit={limit}")
    } else {
        format!("/servers/detail?limit={limit}")
    }
}

/// Lists every server (of every project with [`ListOptions::all_projects`]), page by page.
pub async fn list_servers(
    api: &impl Api,
    mv: Microversion,
    opts: &ListOptions,
) -> Result<ServerList, Error> {
    let first = servers_path(opts);
    let headers = VersionHeaders::new(mv);
    let listed = paginate(
        api,
        ServiceType::Compute,
        &first,
        "servers",
        &headers.pairs(),
        opts.max_pages,
        parse_server,
    )
    .await
    .map_err(|e| explain_406(e, mv))?;
    Ok(ServerList {
        servers: listed.items,
    })
}

/// Parses one page of `GET /servers/detail`.
pub fn parse_servers_page(body: &[u8]) -> Result<Page<Server>, String> {
    parse_page(body, "servers", parse_server)
}

fn text(obj: &Map<String, Value>, key: &str) -> String {
    match obj.get(key) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    }
}

fn opt_text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    Some(text(obj, key)).filter(|s| !s.is_empty())
}

/// Parses one server object (of `servers` in `/servers/detail`, or `server` in `/servers/{id}`).
/// It needs an `id`, and every address must be an IP address.
pub fn parse_server(v: &Value) -> Result<Server, String> {
    let obj = v.as_object().ok_or("the server is not a JSON object")?;
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("the server has no id")?
        .to_string();
    let metadata: Metadata = match obj.get("metadata") {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                (k.clone(), v)
            })
            .collect(),
        _ => Metadata::default(),
    };
    let mut addresses = Vec::new();
    match obj.get("addresses") {
        None | Some(Value::Null) => {}
        Some(Value::Object(networks)) => {
            for (network, list) in networks {
                let list = list
                    .as_array()
                    .ok_or_else(|| format!("addresses of network {network:?} are not a list"))?;
                for a in list {
                    addresses.push(parse_address(network, a)?);
                }
            }
        }
        Some(_) => return Err("`addresses` is not an object".into()),
    }
    addresses.shrink_to_fit(); // kept until the join: no spare room for ten thousand servers
    let flavor = match obj.get("flavor") {
        Some(Value::Object(f)) => opt_text(f, "original_name").or_else(|| opt_text(f, "id")),
        _ => None,
    };
    Ok(Server {
        id,
        name: text(obj, "name"),
        status: text(obj, "status"),
        project_id: text(obj, "tenant_id"),
        user_id: text(obj, "user_id"),
        metadata,
        addresses,
        flavor,
        created: opt_text(obj, "created"),
        updated: opt_text(obj, "updated"),
        host: opt_text(obj, "OS-EXT-SRV-ATTR:host"),
    })
}

fn parse_address(network: &str, a: &Value) -> Result<ServerAddress, String> {
    let obj = a
        .as_object()
        .ok_or_else(|| format!("an address of network {network:?} is not an object"))?;
    let addr = obj.get("addr").and_then(Value::as_str).unwrap_or_default();
    let address: IpAddr = addr
        .parse()
        .map_err(|_| format!("network {network:?}: {addr:?} is not an IP address"))?;
    let kind = match obj.get("OS-EXT-IPS:type").and_then(Value::as_str) {
        Some("floating") => AddressKind::Floating,
        _ => AddressKind::Fixed,
    };
    Ok(ServerAddress {
        network: network.to_string(),
        address,
        kind,
        mac: opt_text(obj, "OS-EXT-IPS-MAC:mac_addr"),
    })
}

/// A canned [`Api`] for the unit tests of nova, neutron and diagnostics: replies queued by path,
/// and every request recorded.
#[cfg(test)]
pub(crate) mod fake;

#[cfg(test)]
mod tests;
