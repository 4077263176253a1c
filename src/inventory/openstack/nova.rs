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
pub(crate) mod fake {
    use super::super::api::{Api, Error, Reply, ServiceType};
    use std::collections::{HashMap, VecDeque};
    use std::future::Future;
    use std::sync::Mutex;

    /// What one request gets.
    pub(crate) enum Canned {
        Ok(Vec<u8>),
        Status(u16, &'static str),
    }

    /// One request as the client made it.
    #[derive(Debug, Clone)]
    pub(crate) struct Request {
        pub service: ServiceType,
        pub path: String,
        pub headers: Vec<(String, String)>,
    }

    #[derive(Default)]
    pub(crate) struct FakeApi {
        replies: Mutex<HashMap<String, VecDeque<Canned>>>,
        requests: Mutex<Vec<Request>>,
    }

    impl FakeApi {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// Queue a reply for `path` (as the client passes it: a path or an absolute URL).
        pub(crate) fn on(&self, path: &str, reply: Canned) -> &Self {
            if let Ok(mut r) = self.replies.lock() {
                r.entry(path.to_string()).or_default().push_back(reply);
            }
            self
        }

        pub(crate) fn ok(&self, path: &str, body: impl Into<Vec<u8>>) -> &Self {
            self.on(path, Canned::Ok(body.into()))
        }

        pub(crate) fn requests(&self) -> Vec<Request> {
            self.requests.lock().map(|r| r.clone()).unwrap_or_default()
        }

        fn answer(
            &self,
            service: ServiceType,
            path: &str,
            headers: &[(&str, &str)],
        ) -> Result<Reply, Error> {
            if let Ok(mut r) = self.requests.lock() {
                r.push(Request {
                    service,
                    path: path.to_string(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                });
            }
            let next = self
                .replies
                .lock()
                .ok()
                .and_then(|mut r| r.get_mut(path).and_then(VecDeque::pop_front));
            match next {
                Some(Canned::Ok(body)) => Ok(Reply {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body,
                }),
                Some(Canned::Status(status, message)) => Err(Error::Status {
                    service,
                    path: path.to_string(),
                    status,
                    message: message.to_string(),
                }),
                None => Err(Error::Status {
                    service,
                    path: path.to_string(),
                    status: 404,
                    message: "no canned reply".into(),
                }),
            }
        }
    }

    impl Api for FakeApi {
        fn get(
            &self,
            service: ServiceType,
            path: &str,
            headers: &[(&str, &str)],
        ) -> impl Future<Output = Result<Reply, Error>> + Send {
            let reply = self.answer(service, path, headers);
            async move { reply }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{Canned, FakeApi};
    use super::*;

    macro_rules! fixture {
        ($name:literal) => {
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/openstack/nova/",
                $name
            ))
        };
    }

    const MV: Microversion = Microversion::DEFAULT;

    fn mv(s: &str) -> Microversion {
        match s.parse() {
            Ok(m) => m,
            Err(e) => panic!("{e}"),
        }
    }

    // --- microversions -------------------------------------------------------------------

    #[test]
    fn microversion_parse_display_order() {
        assert_eq!(
            mv("2.100"),
            Microversion {
                major: 2,
                minor: 100
            }
        );
        assert_eq!(mv("2.100").to_string(), "2.100");
        assert!(mv("2.9") < mv("2.10"), "numeric, not lexical");
        assert_eq!(mv(""), Microversion::LEGACY);
        for bad in ["2", "two.1", "2.x", "2.1.1", "latest"] {
            assert!(bad.parse::<Microversion>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn version_documents() {
        let single = parse_version_document(fixture!("v21-version-get-resp.json"));
        let multi = parse_version_document(fixture!("versions-get-resp.json"));
        let want = Some(VersionRange {
            min: mv("2.1"),
            max: mv("2.104"),
        });
        assert_eq!(single, Ok(want));
        assert_eq!(multi, Ok(want), "the v2.1 entry, not the legacy v2.0 one");
        let legacy =
            br#"{"versions":[{"id":"v2.0","status":"DEPRECATED","version":"","min_version":""}]}"#;
        assert_eq!(parse_version_document(legacy), Ok(None));
        let legacy1 = br#"{"version":{"id":"v2.0","version":"","min_version":""}}"#;
        assert_eq!(parse_version_document(legacy1), Ok(None));
        for bad in [
            &b"<html>"[..],
            b"{}",
            br#"{"versions":[]}"#,
            br#"{"version":{"version":"x.y"}}"#,
        ] {
            assert!(
                parse_version_document(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn choosing() {
        let r = Some(VersionRange {
            min: mv("2.1"),
            max: mv("2.104"),
        });
        assert_eq!(choose(mv("2.100"), r), Ok(mv("2.100")));
        assert_eq!(choose(mv("2.200"), r), Ok(mv("2.104")));
        assert_eq!(choose(mv("2.1"), r), Ok(mv("2.1")));
        let old = Some(VersionRange {
            min: mv("2.60"),
            max: mv("2.90"),
        });
        assert_eq!(choose(mv("2.100"), old), Ok(mv("2.90")));
        let err = choose(mv("2.50"), old).err().unwrap_or_default();
        assert!(err.contains("2.60") && err.contains("2.50"), "{err}");
        assert_eq!(choose(mv("2.100"), None), Ok(Microversion::LEGACY));
    }

    #[tokio::test]
    async fn negotiate_against_both_documents() {
        let api = FakeApi::new();
        api.ok("/", &fixture!("v21-version-get-resp.json")[..]);
        assert_eq!(negotiate(&api, MV).await.ok(), Some(MV));
        api.ok("/", &fixture!("versions-get-resp.json")[..]);
        assert_eq!(negotiate(&api, mv("2.999")).await.ok(), Some(mv("2.104")));
        let reqs = api.requests();
        assert_eq!(reqs.len(), 2);
        assert!(reqs
            .iter()
            .all(|r| r.service == ServiceType::Compute && r.path == "/"));

        api.ok("/", "not json");
        match negotiate(&api, MV).await {
            Err(Error::Invalid { path, .. }) => assert_eq!(path, "/"),
            other => panic!("{other:?}"),
        }
        api.ok(
            "/",
            r#"{"version":{"version":"2.90","min_version":"2.60"}}"#,
        );
        match negotiate(&api, mv("2.10")).await {
            Err(e @ Error::Invalid { .. }) => assert!(e.to_string().contains("2.60"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    // --- parsing servers -----------------------------------------------------------------

    fn expected_fixture_server(
        user: &str,
        flavor: &str,
        host: Option<&str>,
        updated: &str,
    ) -> Server {
        Server {
            id: "f5dc173b-6804-445a-a6d8-c705dad5b5eb".into(),
            name: "new-server-test".into(),
            status: "ACTIVE".into(),
            project_id: "6f70656e737461636b20342065766572".into(),
            user_id: user.into(),
            metadata: [("My Server Name".to_string(), "Apache1".to_string())].into(),
            addresses: vec![ServerAddress {
                network: "private".into(),
                address: IpAddr::from([192, 168, 1, 30]),
                kind: AddressKind::Fixed,
                mac: Some("00:0c:29:0d:11:74".into()),
            }],
            flavor: Some(flavor.into()),
            created: Some("2013-09-03T04:01:32Z".into()),
            updated: Some(updated.into()),
            host: host.map(str::to_string),
        }
    }

    #[test]
    fn servers_details_fixtures() {
        let next = "http://openstack.example.com/v2.1/6f70656e737461636b20342065766572/servers/detail?limit=1&marker=f5dc173b-6804-445a-a6d8-c705dad5b5eb";
        let cases: [(&[u8], Server); 3] = [
            (
                fixture!("servers-details-resp-v2.1.json"),
                expected_fixture_server(
                    "admin",
                    "1",
                    Some("c3f14e9812ad496baf92ccfb3c61e15f"),
                    "2013-09-03T04:01:32Z",
                ),
            ),
            (
                fixture!("servers-details-resp-v2.96.json"),
                expected_fixture_server("fake", "m1.tiny", None, "2013-09-03T04:01:32Z"),
            ),
            (
                fixture!("servers-details-resp-v2.100.json"),
                expected_fixture_server("fake", "m1.tiny", None, "2013-09-03T04:01:32Z"),
            ),
        ];
        for (body, want) in cases {
            let page = match parse_servers_page(body) {
                Ok(p) => p,
                Err(e) => panic!("{e}"),
            };
            assert_eq!(page.items, vec![want]);
            assert!(page.skipped.is_empty());
            assert_eq!(page.listed, 1);
            assert_eq!(page.next.as_deref(), Some(next));
            assert_eq!(
                page.last_id.as_deref(),
                Some("f5dc173b-6804-445a-a6d8-c705dad5b5eb")
            );
        }
    }

    #[test]
    fn server_get_fixtures() {
        for (body, user, flavor, host) in [
            (
                &fixture!("server-get-resp-v2.1.json")[..],
                "admin",
                "1",
                Some("b8b357f7100d4391828f2177c922ef93"),
            ),
            (
                &fixture!("server-get-resp-v2.100.json")[..],
                "fake",
                "m1.tiny",
                None,
            ),
        ] {
            let doc: Value = serde_json::from_slice(body).unwrap_or_default();
            let got = parse_server(&doc["server"]);
            let mut want = expected_fixture_server(user, flavor, host, "2013-09-03T04:01:33Z");
            want.id = "0e44cc9c-e052-415d-afbf-469b0d384170".into();
            assert_eq!(got, Ok(want));
        }
    }

    #[test]
    fn server_edge_cases() {
        let body = br#"{"servers":[
            {"name":"no-id","addresses":{}},
            {"id":"bad-addr","name":"b","addresses":{"net":[{"addr":"300.1.1.1","version":4}]}},
            {"id":"ok","addresses":{
                "net-a":[{"addr":"10.0.0.5","version":4},
                         {"addr":"2001:db8::1","version":6,"OS-EXT-IPS:type":"floating"},
                         {"addr":"203.0.113.9","OS-EXT-IPS:type":"weird"}]},
             "metadata":{"n":5,"b":true,"s":"x","z":null},
             "flavor":{"original_name":"m1.small","id":"ignored"},
             "OS-EXT-SRV-ATTR:host":null},
            {"id":"partial","status":"UNKNOWN"}
        ]}"#;
        let page = match parse_servers_page(body) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(page.listed, 4);
        assert_eq!(page.skipped.len(), 2, "{:?}", page.skipped);
        assert!(page.skipped[0].contains("no-id") && page.skipped[0].contains("no id"));
        assert!(page.skipped[1].contains("bad-addr") && page.skipped[1].contains("300.1.1.1"));
        assert_eq!(page.next, None);
        assert_eq!(page.last_id.as_deref(), Some("partial"));
        let ok = &page.items[0];
        let kinds: Vec<_> = ok
            .addresses
            .iter()
            .map(|a| (a.address.to_string(), a.kind))
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("10.0.0.5".to_string(), AddressKind::Fixed),
                ("2001:db8::1".to_string(), AddressKind::Floating),
                ("203.0.113.9".to_string(), AddressKind::Fixed),
            ]
        );
        assert_eq!(ok.metadata.get("n").map(String::as_str), Some("5"));
        assert_eq!(ok.metadata.get("b").map(String::as_str), Some("true"));
        assert_eq!(ok.metadata.get("z").map(String::as_str), Some(""));
        assert_eq!(ok.flavor.as_deref(), Some("m1.small"));
        assert_eq!(ok.host, None);
        let partial = &page.items[1];
        assert_eq!(
            (partial.status.as_str(), partial.name.as_str()),
            ("UNKNOWN", "")
        );
        assert!(partial.addresses.is_empty() && partial.flavor.is_none());

        for bad in [&b"nope"[..], b"{}", br#"{"servers":{}}"#, br#"[]"#] {
            assert!(parse_servers_page(bad).is_err());
        }
    }

    // --- listing servers -----------------------------------------------------------------

    fn page(ids: &[&str], next: Option<&str>) -> String {
        let servers: Vec<Value> = ids
            .iter()
            .map(|id| serde_json::json!({"id": id, "name": format!("vm-{id}"), "status": "ACTIVE"}))
            .collect();
        let mut doc = serde_json::json!({ "servers": servers });
        if let Some(n) = next {
            doc["servers_links"] = serde_json::json!([{"rel": "next", "href": n}]);
        }
        doc.to_string()
    }

    const P2: &str = "http://nova:8774/v2.1/servers/detail?all_tenants=1&limit=2&marker=b";
    const P3: &str = "http://nova:8774/v2.1/servers/detail?all_tenants=1&limit=2&marker=d";

    fn opts(page_size: u32) -> ListOptions {
        ListOptions {
            page_size,
            ..ListOptions::default()
        }
    }

    #[tokio::test]
    async fn three_pages_with_headers() {
        let api = FakeApi::new();
        api.ok(
            "/servers/detail?all_tenants=1&limit=2",
            page(&["a", "b"], Some(P2)),
        )
        .ok(P2, page(&["c", "d"], Some(P3)))
        .ok(P3, page(&["e"], None));
        let list = match list_servers(&api, MV, &opts(2)).await {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        let ids: Vec<_> = list.servers.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "d", "e"]);
        let reqs = api.requests();
        let paths: Vec<_> = reqs.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/servers/detail?all_tenants=1&limit=2", P2, P3]);
        for r in &reqs {
            assert_eq!(r.service, ServiceType::Compute);
            let h = |name: &str| {
                r.headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(h("openstack-api-version").as_deref(), Some("compute 2.100"));
            assert_eq!(h("x-openstack-nova-api-version").as_deref(), Some("2.100"));
        }
    }

    #[tokio::test]
    async fn stops_on_empty_page() {
        let api = FakeApi::new();
        let p1 = r#"{"servers":[{"id":"a"},{"id":"b"}],"servers_links":[{"rel":"next","href":"http://n/servers/detail?limit=2&marker=b"}]}"#;
        api.ok("/servers/detail?limit=2", p1).ok(
            "http://n/servers/detail?limit=2&marker=b",
            page(&[], Some("http://n/never")),
        );
        let o = ListOptions {
            all_projects: false,
            ..opts(2)
        };
        let list = match list_servers(&api, Microversion::LEGACY, &o).await {
            Ok(l) => l,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(list.servers.len(), 2);
        let reqs = api.requests();
        assert_eq!(
            reqs.len(),
            2,
            "the empty page ends it, its next link is not followed"
        );
        assert!(
            reqs.iter().all(|r| r.headers.is_empty()),
            "2.0 sends no microversion"
        );
    }

    /// A server that cannot be used fails the listing (naming it): skipping it would report a VM
    /// that still exists as gone.
    #[tokio::test]
    async fn an_unusable_server_fails_the_listing() {
        let api = FakeApi::new();
        let p1 = r#"{"servers":[{"id":"a"},{"name":"vm-7"},{"id":"c","addresses":{"n":[{"addr":"300.1.1.1"}]}}]}"#;
        api.ok("/servers/detail?limit=3", p1);
        let o = ListOptions {
            all_projects: false,
            ..opts(3)
        };
        match list_servers(&api, Microversion::LEGACY, &o).await {
            Err(e @ Error::Invalid { .. }) => {
                let s = e.to_string();
                for part in [
                    "compute",
                    "/servers/detail?limit=3",
                    "name vm-7",
                    "no id",
                    "and 1 more",
                ] {
                    assert!(s.contains(part), "{part:?} missing from {s}");
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn repeated_next_link_is_a_loop() {
        let api = FakeApi::new();
        api.ok(
            "/servers/detail?all_tenants=1&limit=2",
            page(&["a", "b"], Some(P2)),
        )
        .ok(P2, page(&["c", "d"], Some(P2)));
        match list_servers(&api, MV, &opts(2)).await {
            Err(e @ Error::Pagination { .. }) => {
                assert_eq!(e.kind(), "openstack_pagination");
                let s = e.to_string();
                assert!(s.contains("already fetched"), "{s}");
                assert!(!s.contains("nova:8774"), "no host in errors: {s}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(api.requests().len(), 2);
    }

    #[tokio::test]
    async fn repeated_marker_is_a_loop() {
        let api = FakeApi::new();
        api.ok(
            "/servers/detail?all_tenants=1&limit=2",
            page(&["a", "b"], Some(P2)),
        )
        .ok(P2, page(&["x", "b"], Some(P3)));
        match list_servers(&api, MV, &opts(2)).await {
            Err(Error::Pagination { reason, .. }) => assert!(reason.contains(" b,"), "{reason}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn too_many_pages() {
        let api = FakeApi::new();
        api.ok(
            "/servers/detail?all_tenants=1&limit=2",
            page(&["a", "b"], Some(P2)),
        )
        .ok(P2, page(&["c", "d"], Some(P3)))
        .ok(P3, page(&["e"], None));
        let o = ListOptions {
            max_pages: 2,
            ..opts(2)
        };
        match list_servers(&api, MV, &o).await {
            Err(Error::Pagination { path, reason, .. }) => {
                assert!(reason.contains("2 pages"), "{reason}");
                assert_eq!(path, "/v2.1/servers/detail?all_tenants=1&limit=2&marker=b");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(api.requests().len(), 2);
    }

    #[tokio::test]
    async fn status_and_invalid_replies() {
        let api = FakeApi::new();
        api.on(
            "/servers/detail?all_tenants=1&limit=1000",
            Canned::Status(406, "Version 2.100 is not supported by the API"),
        );
        match list_servers(&api, MV, &ListOptions::default()).await {
            Err(e @ Error::Status { status: 406, .. }) => {
                let s = e.to_string();
                assert!(
                    s.contains("microversion 2.100") && s.contains("not supported"),
                    "{s}"
                );
            }
            other => panic!("{other:?}"),
        }
        api.on(
            "/servers/detail?all_tenants=1&limit=1000",
            Canned::Status(403, "Policy doesn't allow"),
        );
        assert_eq!(
            list_servers(&api, MV, &ListOptions::default())
                .await
                .err()
                .and_then(|e| e.status()),
            Some(403)
        );

        api.ok(
            "/servers/detail?all_tenants=1&limit=2",
            page(&["a", "b"], Some(P2)),
        )
        .ok(P2, "<html>proxy error</html>");
        match list_servers(&api, MV, &opts(2)).await {
            Err(e @ Error::Invalid { .. }) => {
                let s = e.to_string();
                assert!(
                    s.contains("/v2.1/servers/detail?all_tenants=1&limit=2&marker=b"),
                    "{s}"
                );
                assert!(s.contains("not JSON"), "{s}");
            }
            other => panic!("{other:?}"),
        }
        api.ok("/servers/detail?all_tenants=1&limit=2", r#"{"server":[]}"#);
        match list_servers(&api, MV, &opts(2)).await {
            Err(Error::Invalid { path, reason, .. }) => {
                assert_eq!(path, "/servers/detail?all_tenants=1&limit=2");
                assert!(reason.contains("`servers`"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        api.ok(
            "/servers/detail?all_tenants=1&limit=2",
            page(&["a", "b"], Some("/relative?marker=b")),
        );
        assert!(matches!(
            list_servers(&api, MV, &opts(2)).await,
            Err(Error::Invalid { .. })
        ));
    }
}
