//! Self-test of the fake Nova + Neutron (`stinger_testsupport::fake_cloud`), driven over plain HTTP
//! with a tiny `TcpStream` client: paging, microversions, tokens (static and Keystone), faults,
//! diagnostics, the sample-based cloud and the 10 000-server cloud. Binds only 127.0.80.1–127.0.80.30.

use serde_json::Value;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stinger_testsupport::fake_cloud::{
    Cloud, DiagnosticsReply, FakeCloud, FakeConfig, Fault, FaultKind, ServerSpec, Service,
    TokenCheck, SAMPLE_FIXED_IP, SAMPLE_FLOATING_IP, SAMPLE_PROJECT, SAMPLE_SERVER_ID,
};

const ADMIN: &str = "tok-admin";

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 80, last))
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The body ended as the headers announced.
    complete: bool,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "HTTP {} body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// GET an absolute `http://host:port/path?query` URL with HTTP/1.1 and `Connection: close`.
fn get_url(url: &str, headers: &[(&str, &str)]) -> Resp {
    let rest = url.strip_prefix("http://").expect("http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let addr: SocketAddr = authority.parse().expect("host:port");
    assert!(addr.ip().is_loopback(), "test traffic stays on loopback");
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    for _ in 0..1_000_000 {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP head");
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = raw[end + 4..].to_vec();
    let mut resp = Resp {
        status,
        headers,
        body,
        complete: true,
    };
    if let Some(len) = resp
        .header("content-length")
        .and_then(|l| l.parse::<usize>().ok())
    {
        resp.complete = resp.body.len() == len;
    }
    assert!(
        resp.header("transfer-encoding").is_none(),
        "the fake answers with Content-Length"
    );
    resp
}

fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    get_url(&format!("http://{addr}{path}"), headers)
}

fn admin_get(addr: SocketAddr, path: &str) -> Resp {
    get(addr, path, &[("X-Auth-Token", ADMIN)])
}

fn next_link(body: &Value, key: &str) -> Option<String> {
    body.get(format!("{key}_links"))?
        .as_array()?
        .iter()
        .find(|l| l["rel"] == "next")
        .and_then(|l| l["href"].as_str())
        .map(str::to_string)
}

fn ids(body: &Value, key: &str) -> Vec<String> {
    body[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} array in {body}"))
        .iter()
        .map(|s| s["id"].as_str().expect("id").to_string())
        .collect()
}

/// Follow next links from `first`, at most `max_pages`; returns the page sizes and all ids.
fn walk(
    first: &str,
    key: &str,
    headers: &[(&str, &str)],
    max_pages: usize,
) -> (Vec<usize>, Vec<String>) {
    let mut url = first.to_string();
    let mut sizes = Vec::new();
    let mut all = Vec::new();
    for _ in 0..max_pages {
        let r = get_url(&url, headers);
        assert_eq!(r.status, 200, "{url}: {}", String::from_utf8_lossy(&r.body));
        let body = r.json();
        let page = ids(&body, key);
        sizes.push(page.len());
        all.extend(page);
        match next_link(&body, key) {
            Some(next) => url = next,
            None => return (sizes, all),
        }
    }
    panic!("pagination from {first} did not end within {max_pages} pages");
}

fn cloud_with(n: usize, project: impl Fn(usize) -> String) -> Cloud {
    let mut cloud = Cloud::empty().unwrap();
    for i in 0..n {
        let spec = ServerSpec::new(&format!("srv-{i:03}"), &format!("vm{i}"), &project(i))
            .fixed("net-a", IpAddr::V4(Ipv4Addr::new(127, 201, 0, i as u8 + 1)));
        cloud.add_server(spec).unwrap();
    }
    cloud
}

fn start(last: u8, cloud: Cloud, tokens: TokenCheck) -> FakeCloud {
    FakeCloud::start(FakeConfig::new(ip(last), cloud, tokens)).unwrap()
}

#[test]
fn nova_pages_with_links_until_a_short_or_empty_page() {
    let fake = start(
        1,
        cloud_with(25, |_| "p1".into()),
        TokenCheck::admin(&[ADMIN]),
    );
    let c = fake.compute_addr();
    let expected = fake.with_cloud(|c| c.server_ids()).unwrap();
    let first = format!("http://{c}/v2.1/servers/detail?all_tenants=1&limit=10");
    let (sizes, got) = walk(&first, "servers", &[("X-Auth-Token", ADMIN)], 10);
    assert_eq!(sizes, vec![10, 10, 5]);
    assert_eq!(got, expected, "every server once, newest first");

    // Links are absolute, keep the query and carry the last id as marker.
    let body = admin_get(c, "/v2.1/servers/detail?all_tenants=1&limit=10").json();
    let created: Vec<&str> = body["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["created"].as_str().unwrap())
        .collect();
    assert!(
        created.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {created:?}"
    );
    let next = next_link(&body, "servers").unwrap();
    let last = ids(&body, "servers").pop().unwrap();
    assert!(
        next.starts_with(&format!("http://{c}/v2.1/servers/detail?")),
        "{next}"
    );
    assert!(
        next.contains("all_tenants=1") && next.contains("limit=10"),
        "{next}"
    );
    assert!(next.ends_with(&format!("marker={last}")), "{next}");

    // Exactly full last page: one more request that comes back empty.
    fake.with_cloud(|c| {
        for id in c.server_ids().into_iter().take(5) {
            assert!(c.remove_server(&id));
        }
    });
    let (sizes, got) = walk(&first, "servers", &[("X-Auth-Token", ADMIN)], 10);
    assert_eq!(sizes, vec![10, 10, 0]);
    assert_eq!(got.len(), 20);
    // Project-id prefixed paths work too (catalog URLs may end in the project id).
    let r = admin_get(c, "/v2.1/p1/servers/detail?all_tenants=1&limit=3");
    assert_eq!(ids(&r.json(), "servers").len(), 3);
}

#[test]
fn nova_limit_defaults_to_and_is_capped_by_max_limit() {
    let mut config = FakeConfig::new(
        ip(2),
        cloud_with(20, |_| "p".into()),
        TokenCheck::admin(&[ADMIN]),
    );
    config.max_limit = 7;
    let fake = FakeCloud::start(config).unwrap();
    let c = fake.compute_addr();
    for q in ["", "&limit=50", "&limit=0"] {
        let body = admin_get(c, &format!("/v2.1/servers/detail?all_tenants=1{q}")).json();
        assert_eq!(ids(&body, "servers").len(), 7, "query {q:?}");
        assert!(
            next_link(&body, "servers").is_some(),
            "a full page has a next link ({q:?})"
        );
    }
    let (sizes, _) = walk(
        &format!("http://{c}/v2.1/servers/detail?all_tenants"),
        "servers",
        &[("X-Auth-Token", ADMIN)],
        10,
    );
    assert_eq!(sizes, vec![7, 7, 6]);
    let r = admin_get(c, "/v2.1/servers/detail?limit=abc");
    assert_eq!(r.status, 400);
}

#[test]
fn nova_bad_marker_is_400() {
    let fake = start(
        3,
        cloud_with(3, |_| "p".into()),
        TokenCheck::admin(&[ADMIN]),
    );
    let r = admin_get(
        fake.compute_addr(),
        "/v2.1/servers/detail?all_tenants=1&marker=no-such-id",
    );
    assert_eq!(r.status, 400);
    assert!(r.json()["badRequest"]["message"]
        .as_str()
        .unwrap()
        .contains("no-such-id"));
    let good = fake.with_cloud(|c| c.server_ids()[0].clone()).unwrap();
    let r = admin_get(
        fake.compute_addr(),
        &format!("/v2.1/servers/detail?all_tenants=1&marker={good}"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(ids(&r.json(), "servers").len(), 2);
}

#[test]
fn nova_microversions_are_negotiated_and_echoed() {
    let fake = start(
        4,
        Cloud::from_samples().unwrap(),
        TokenCheck::admin(&[ADMIN]),
    );
    let c = fake.compute_addr();
    let path = "/v2.1/servers/detail?all_tenants=1";
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[], "compute 2.1"),
        (
            &[("OpenStack-API-Version", "compute 2.100")],
            "compute 2.100",
        ),
        (
            &[("OpenStack-API-Version", "compute latest")],
            "compute 2.104",
        ),
        (&[("X-OpenStack-Nova-API-Version", "2.46")], "compute 2.46"),
        (
            &[
                ("X-OpenStack-Nova-API-Version", "2.3"),
                ("OpenStack-API-Version", "compute 2.60"),
            ],
            "compute 2.60",
        ),
    ];
    for (extra, echo) in cases {
        let mut h = vec![("X-Auth-Token", ADMIN)];
        h.extend_from_slice(extra);
        let r = get(c, path, &h);
        assert_eq!(r.status, 200, "{extra:?}");
        assert_eq!(r.header("openstack-api-version"), Some(echo), "{extra:?}");
        assert!(r.header("vary").unwrap().contains("OpenStack-API-Version"));
        let minor: u32 = echo.trim_start_matches("compute 2.").parse().unwrap();
        let server = &r.json()["servers"][0];
        assert_eq!(
            server["flavor"].get("original_name").is_some(),
            minor >= 47,
            "flavor shape at 2.{minor}: {}",
            server["flavor"]
        );
        assert_eq!(server["flavor"].get("id").is_some(), minor < 47);
        assert_eq!(
            server.get("pinned_availability_zone").is_some(),
            minor >= 96
        );
        assert_eq!(server.get("scheduler_hints").is_some(), minor >= 100);
    }
    for bad in ["compute 2.105", "compute 2.0", "compute 3.1"] {
        let r = get(
            c,
            path,
            &[("X-Auth-Token", ADMIN), ("OpenStack-API-Version", bad)],
        );
        assert_eq!(r.status, 406, "{bad}");
    }
    let r = get(
        c,
        path,
        &[
            ("X-Auth-Token", ADMIN),
            ("OpenStack-API-Version", "compute two"),
        ],
    );
    assert_eq!(r.status, 400);
    // 2.75+ rejects unknown query parameters; older versions ignore them.
    let r = get(
        c,
        "/v2.1/servers/detail?bogus=1",
        &[
            ("X-Auth-Token", ADMIN),
            ("OpenStack-API-Version", "compute 2.75"),
        ],
    );
    assert_eq!(r.status, 400);
    assert_eq!(admin_get(c, "/v2.1/servers/detail?bogus=1").status, 200);
    // The version documents need no token and point at this host.
    let r = get(c, "/v2.1/", &[]);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["version"]["version"], "2.104");
    assert_eq!(v["version"]["min_version"], "2.1");
    assert_eq!(
        v["version"]["links"][0]["href"],
        format!("http://{c}/v2.1/")
    );
    let r = get(c, "/", &[]);
    assert_eq!(r.status, 300);
    assert_eq!(r.json()["versions"].as_array().unwrap().len(), 2);
}

#[test]
fn tokens_are_required_and_checked() {
    let fake = start(
        5,
        cloud_with(6, |i| format!("p{}", i % 2)),
        TokenCheck::admin(&[ADMIN]),
    );
    let c = fake.compute_addr();
    let n = fake.network_addr();
    assert_eq!(get(c, "/v2.1/servers/detail", &[]).status, 401);
    assert_eq!(get(n, "/v2.0/ports", &[]).status, 401);
    assert_eq!(
        get(c, "/v2.1/servers/detail", &[("X-Auth-Token", "wrong")]).status,
        401
    );
    assert_eq!(admin_get(c, "/v2.1/servers/detail").status, 200);
    assert_eq!(admin_get(n, "/v2.0/ports").status, 200);

    // A project member: no all_tenants, sees only its project.
    let member = start(
        6,
        cloud_with(6, |i| format!("p{}", i % 2)),
        TokenCheck::Static {
            tokens: ["tok-member".to_string()].into_iter().collect(),
            admin: false,
            project_id: Some("p1".into()),
        },
    );
    let h = [("X-Auth-Token", "tok-member")];
    assert_eq!(
        get(
            member.compute_addr(),
            "/v2.1/servers/detail?all_tenants=1",
            &h
        )
        .status,
        403
    );
    let own = get(member.compute_addr(), "/v2.1/servers/detail", &h).json();
    let own_ids = ids(&own, "servers");
    assert_eq!(own_ids.len(), 3);
    assert!(own["servers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["tenant_id"] == "p1"));
    let ports = get(member.network_addr(), "/v2.0/ports", &h).json();
    assert_eq!(ids(&ports, "ports").len(), 3);
    // Admin-only fields are hidden from members.
    assert!(own["servers"][0].get("OS-EXT-SRV-ATTR:host").is_none());
    let adm = admin_get(c, "/v2.1/servers/detail?all_tenants=1").json();
    assert!(adm["servers"][0].get("OS-EXT-SRV-ATTR:host").is_some());
}

#[test]
fn expired_tokens_get_one_401_and_requests_are_counted() {
    let fake = start(
        7,
        cloud_with(2, |_| "p".into()),
        TokenCheck::admin(&[ADMIN, "other"]),
    );
    let c = fake.compute_addr();
    assert_eq!(admin_get(c, "/v2.1/servers/detail").status, 200);
    fake.expire_tokens();
    assert_eq!(admin_get(c, "/v2.1/servers/detail").status, 401);
    assert_eq!(admin_get(c, "/v2.1/servers/detail").status, 200);
    // Tokens known but not used yet are expired too.
    assert_eq!(
        get(
            fake.network_addr(),
            "/v2.0/networks",
            &[("X-Auth-Token", "other")]
        )
        .status,
        401
    );
    assert_eq!(fake.requests_to("/v2.1/servers/detail"), 3);
    assert_eq!(fake.requests_to("/v2.0/networks"), 1);
    assert_eq!(fake.requests_with_token(ADMIN), 3);
    assert_eq!(fake.requests_with_token("other"), 1);
    let log = fake.request_log();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![200, 401, 200, 401]
    );
    fake.reset_counts();
    assert_eq!(fake.requests_to("/v2.1/servers/detail"), 0);
}

#[test]
fn faults_apply_once_or_stick() {
    let fake = start(
        8,
        cloud_with(5, |_| "p".into()),
        TokenCheck::admin(&[ADMIN]),
    );
    let c = fake.compute_addr();
    let n = fake.network_addr();
    let list = "/v2.1/servers/detail?all_tenants=1&limit=2";
    let f = fake.faults();

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::Delay(Duration::from_millis(300)),
    ));
    let t = Instant::now();
    assert_eq!(admin_get(c, list).status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "delayed {:?}",
        t.elapsed()
    );

    for code in [500, 503] {
        f.set(Fault::once(
            Service::Compute,
            "/v2.1/servers",
            FaultKind::Status(code),
        ));
        assert_eq!(admin_get(c, list).status, code);
        assert_eq!(admin_get(c, list).status, 200, "one-shot fault is used up");
    }

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::InvalidJson,
    ));
    let r = admin_get(c, list);
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::MissingCollection,
    ));
    let body = admin_get(c, list).json();
    assert!(body.get("servers").is_none(), "{body}");

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::ItemWithoutId,
    ));
    let body = admin_get(c, list).json();
    assert!(body["servers"][0].get("id").is_none());
    assert!(body["servers"][1].get("id").is_some());

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::PaginationLoop,
    ));
    let body = admin_get(
        c,
        &format!(
            "{list}&marker={}",
            fake.with_cloud(|c| c.server_ids()[1].clone()).unwrap()
        ),
    )
    .json();
    assert_eq!(
        next_link(&body, "servers").unwrap(),
        format!("http://{c}{list}")
    );

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::DropMidBody,
    ));
    let r = admin_get(c, list);
    assert_eq!(r.status, 200);
    assert!(!r.complete, "body cut short: {} bytes", r.body.len());
    assert!(!r.body.is_empty(), "half the body arrives first");
    assert!(admin_get(c, list).complete);

    // Faults only hit their service and prefix; sticky ones stay until cleared.
    f.set(Fault::sticky(
        Service::Network,
        "/v2.0/ports",
        FaultKind::Status(503),
    ));
    assert_eq!(admin_get(c, list).status, 200);
    assert_eq!(admin_get(n, "/v2.0/networks").status, 200);
    assert_eq!(admin_get(n, "/v2.0/ports").status, 503);
    assert_eq!(admin_get(n, "/v2.0/ports?limit=1").status, 503);
    assert_eq!(f.pending(), 1);
    f.clear();
    assert_eq!(admin_get(n, "/v2.0/ports").status, 200);
    assert_eq!(
        f.fired(),
        10,
        "8 one-shot faults + 2 hits of the sticky one"
    );
}

#[test]
fn neutron_pages_and_filters() {
    let fake = start(
        9,
        Cloud::generated(30).unwrap(),
        TokenCheck::admin(&[ADMIN]),
    );
    let n = fake.network_addr();
    let h = [("X-Auth-Token", ADMIN)];
    let (sizes, all) = walk(&format!("http://{n}/v2.0/ports?limit=7"), "ports", &h, 10);
    assert_eq!(sizes, vec![7, 7, 7, 7, 2]);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "Neutron sorts by id");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 30);
    let body = admin_get(n, "/v2.0/ports?limit=7").json();
    let next = next_link(&body, "ports").unwrap();
    assert!(
        next.starts_with(&format!("http://{n}/v2.0/ports?")) && next.contains("limit=7"),
        "{next}"
    );

    let servers = fake.with_cloud(|c| c.server_ids()).unwrap();
    let q = format!(
        "/v2.0/ports?device_id={}&device_id={}",
        servers[0], servers[1]
    );
    let body = admin_get(n, &q).json();
    let devices: HashSet<&str> = body["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        devices,
        [servers[0].as_str(), servers[1].as_str()]
            .into_iter()
            .collect()
    );
    assert!(body["ports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["device_owner"] == "compute:nova"));

    let project = body["ports"][0]["project_id"].as_str().unwrap().to_string();
    let body = admin_get(
        n,
        &format!("/v2.0/ports?project_id={project}&device_id={}", servers[0]),
    )
    .json();
    assert!(
        ids(&body, "ports").len() <= 1,
        "filters on different fields AND"
    );
    let body = admin_get(n, &format!("/v2.0/ports?tenant_id={project}")).json();
    assert!(!ids(&body, "ports").is_empty());
    assert!(body["ports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["project_id"] == project.as_str()));

    let fips = admin_get(n, "/v2.0/floatingips").json();
    assert_eq!(
        ids(&fips, "floatingips").len(),
        6,
        "every fifth server has one"
    );
    assert!(
        fips.get("floatingips_links").is_none(),
        "no limit, no paging"
    );
    let sgs = admin_get(n, "/v2.0/security-groups?limit=100").json();
    assert_eq!(ids(&sgs, "security_groups").len(), 100);
    assert!(next_link(&sgs, "security_groups").is_some());
    assert!(
        sgs["security_groups"][0]["security_group_rules"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    assert_eq!(admin_get(n, "/v2.0/networks?marker=nope").status, 400);
}

#[test]
fn samples_are_rewritten_to_loopback_and_consistent() {
    let fake = start(
        10,
        Cloud::from_samples().unwrap(),
        TokenCheck::admin(&[ADMIN]),
    );
    let (c, n) = (fake.compute_addr(), fake.network_addr());
    let server =
        admin_get(c, &format!("/v2.1/servers/{SAMPLE_SERVER_ID}")).json()["server"].clone();
    assert_eq!(server["tenant_id"], SAMPLE_PROJECT);
    assert_eq!(server["metadata"]["My Server Name"], "Apache1");
    let addrs = &server["addresses"]["private"];
    assert_eq!(addrs[0]["addr"], SAMPLE_FIXED_IP.to_string());
    assert_eq!(addrs[0]["OS-EXT-IPS:type"], "fixed");
    assert_eq!(addrs[1]["addr"], SAMPLE_FLOATING_IP.to_string());
    assert_eq!(addrs[1]["OS-EXT-IPS:type"], "floating");

    let ports = admin_get(n, &format!("/v2.0/ports?device_id={SAMPLE_SERVER_ID}")).json();
    let port = &ports["ports"][0];
    assert_eq!(
        port["fixed_ips"][0]["ip_address"],
        SAMPLE_FIXED_IP.to_string()
    );
    assert_eq!(port["mac_address"], addrs[0]["OS-EXT-IPS-MAC:mac_addr"]);
    let fips = admin_get(
        n,
        &format!("/v2.0/floatingips?port_id={}", port["id"].as_str().unwrap()),
    )
    .json();
    assert_eq!(
        fips["floatingips"][0]["floating_ip_address"],
        SAMPLE_FLOATING_IP.to_string()
    );
    assert_eq!(
        fips["floatingips"][0]["fixed_ip_address"],
        SAMPLE_FIXED_IP.to_string()
    );
    let sg_ids: Vec<&str> = port["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let sgs = admin_get(n, "/v2.0/security-groups").json();
    let sg = sgs["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == sg_ids[0])
        .unwrap();
    assert_eq!(sg["name"], "default");
    assert_eq!(sg["project_id"], SAMPLE_PROJECT);

    // Every address anywhere in Neutron is loopback (router ports and free floating IPs included).
    let all_ports = admin_get(n, "/v2.0/ports").json();
    assert!(all_ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["device_owner"] == "network:router_gateway"));
    for p in all_ports["ports"].as_array().unwrap() {
        let a: IpAddr = p["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(a.is_loopback(), "{a}");
    }
    for f in admin_get(n, "/v2.0/floatingips").json()["floatingips"]
        .as_array()
        .unwrap()
    {
        let a: IpAddr = f["floating_ip_address"].as_str().unwrap().parse().unwrap();
        assert!(a.is_loopback(), "{a}");
    }
    let nets = admin_get(n, "/v2.0/networks?router:external=true").json();
    assert_eq!(nets["networks"][0]["name"], "public");
}

#[test]
fn diagnostics_follow_the_microversion_and_overrides() {
    let fake = start(
        11,
        cloud_with(3, |_| "p".into()),
        TokenCheck::admin(&[ADMIN]),
    );
    let c = fake.compute_addr();
    let ids = fake.with_cloud(|c| c.server_ids()).unwrap();
    let path = format!("/v2.1/servers/{}/diagnostics", ids[0]);
    let legacy = admin_get(c, &path).json();
    assert!(legacy.get("cpu0_time").is_some() && legacy.get("cpu_details").is_none());
    let std = get(
        c,
        &path,
        &[
            ("X-Auth-Token", ADMIN),
            ("OpenStack-API-Version", "compute 2.48"),
        ],
    )
    .json();
    assert!(std.get("cpu_details").is_some() && std.get("cpu0_time").is_none());
    fake.with_cloud(|cl| {
        cl.set_diagnostics(&ids[1], DiagnosticsReply::Status(501));
        cl.set_diagnostics(&ids[2], DiagnosticsReply::Status(403));
    });
    assert_eq!(
        admin_get(c, &format!("/v2.1/servers/{}/diagnostics", ids[1])).status,
        501
    );
    assert_eq!(
        admin_get(c, &format!("/v2.1/servers/{}/diagnostics", ids[2])).status,
        403
    );
    fake.with_cloud(|cl| cl.set_status(&ids[0], "SHUTOFF"));
    assert_eq!(admin_get(c, &path).status, 409);
    assert_eq!(admin_get(c, "/v2.1/servers/nope/diagnostics").status, 404);
}

/// A one-route Keystone on loopback: `GET /v3/auth/tokens` answers 200 for the known tokens (admin
/// role for `ks-admin`), 404 for any other; counts the requests.
struct FakeKeystone {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeKeystone {
    fn start(addr: &str) -> FakeKeystone {
        let l = TcpListener::bind(addr).unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut conn, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                h.fetch_add(1, Ordering::Relaxed);
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                let subject = text
                    .lines()
                    .find_map(|l| l.strip_prefix("x-subject-token:"))
                    .map(str::trim)
                    .unwrap_or("");
                let auth = text
                    .lines()
                    .find_map(|l| l.strip_prefix("x-auth-token:"))
                    .map(str::trim)
                    .unwrap_or("");
                let ok_path = text.starts_with("get /v3/auth/tokens ");
                let (status, body) = match subject {
                    _ if !ok_path || auth != subject => ("404 Not Found", "{}".to_string()),
                    "ks-admin" => ("200 OK", r#"{"token":{"roles":[{"id":"r1","name":"admin"}],"project":{"id":"pa"}}}"#.to_string()),
                    "ks-member" => ("200 OK", r#"{"token":{"roles":[{"id":"r2","name":"member"}],"project":{"id":"pm"}}}"#.to_string()),
                    _ => ("404 Not Found", r#"{"error":{"code":404}}"#.to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes());
            }
        });
        FakeKeystone {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeKeystone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn keystone_token_check_validates_caches_and_reads_roles() {
    let ks = FakeKeystone::start("127.0.80.20:0");
    let fake = start(
        12,
        cloud_with(4, |i| if i < 2 { "pa".into() } else { "pm".into() }),
        TokenCheck::Keystone {
            url: format!("http://{}/v3", ks.addr),
        },
    );
    let c = fake.compute_addr();
    let admin = [("X-Auth-Token", "ks-admin")];
    let member = [("X-Auth-Token", "ks-member")];
    assert_eq!(
        get(c, "/v2.1/servers/detail?all_tenants=1", &admin).status,
        200
    );
    assert_eq!(
        get(c, "/v2.1/servers/detail?all_tenants=1", &admin).status,
        200
    );
    assert_eq!(
        ks.hits.load(Ordering::Relaxed),
        1,
        "a good answer is cached"
    );
    assert_eq!(
        get(c, "/v2.1/servers/detail?all_tenants=1", &member).status,
        403
    );
    let own = get(c, "/v2.1/servers/detail", &member).json();
    assert_eq!(ids(&own, "servers").len(), 2);
    assert!(own["servers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["tenant_id"] == "pm"));
    assert_eq!(
        get(c, "/v2.1/servers/detail", &[("X-Auth-Token", "ks-unknown")]).status,
        401
    );
    assert_eq!(fake.keystone_validations(), 3);
    fake.expire_tokens();
    assert_eq!(get(c, "/v2.1/servers/detail", &admin).status, 401);
    assert_eq!(get(c, "/v2.1/servers/detail", &admin).status, 200);
    assert_eq!(fake.keystone_validations(), 4, "expiry empties the cache");
}

#[test]
fn generated_10k_servers_in_ten_pages() {
    let t0 = Instant::now();
    let cloud = Cloud::generated(10_000).unwrap();
    let built = t0.elapsed();
    let fake = start(13, cloud, TokenCheck::admin(&[ADMIN]));
    let c = fake.compute_addr();
    let t1 = Instant::now();
    let (sizes, all) = walk(
        &format!("http://{c}/v2.1/servers/detail?all_tenants=1"),
        "servers",
        &[
            ("X-Auth-Token", ADMIN),
            ("OpenStack-API-Version", "compute 2.100"),
        ],
        20,
    );
    let served = t1.elapsed();
    // Again: now every server's JSON is cached, as in the benchmark's later cycles.
    let t2 = Instant::now();
    let (sizes2, _) = walk(
        &format!("http://{c}/v2.1/servers/detail?all_tenants=1"),
        "servers",
        &[
            ("X-Auth-Token", ADMIN),
            ("OpenStack-API-Version", "compute 2.100"),
        ],
        20,
    );
    let again = t2.elapsed();
    assert_eq!(sizes2, sizes);
    println!(
        "fake cloud: built 10 000 servers in {built:?}; listed them in {} pages in {served:?} \
         (cold), {again:?} (cached; both include this client's JSON parsing)",
        sizes.len()
    );
    assert_eq!(&sizes[..10], &[1000; 10]);
    assert!(sizes[10..].iter().all(|&s| s == 0), "{sizes:?}");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 10_000);

    let (projects, addrs) = fake
        .with_cloud(|cl| {
            let mut addrs = HashSet::new();
            for id in cl.server_ids() {
                for a in cl.server_addresses(&id) {
                    assert!(addrs.insert(a), "address {a} used twice");
                }
            }
            let p: HashSet<String> = (0..10_000)
                .map(|i| format!("57170000{:024x}", i % 50))
                .collect();
            (p, addrs)
        })
        .unwrap();
    assert_eq!(projects.len(), 50);
    assert_eq!(addrs.len(), 12_000, "10 000 fixed + 2 000 floating");
    for a in &addrs {
        let IpAddr::V4(v4) = a else { panic!("{a}") };
        let o = v4.octets();
        assert!(
            o[0] == 127 && (200..=203).contains(&o[1]),
            "{a} outside 127.200.0.0/14"
        );
    }
}
