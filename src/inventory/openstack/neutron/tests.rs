//! Tests of the Neutron client against canned replies: every collection across pages, parsing of
//! ports, floating IPs, networks and security groups, and what a bad reply costs.

use super::super::nova::fake::{Canned, FakeApi};
use super::super::paging::parse_page;
use super::*;
use serde_json::json;

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openstack/neutron/",
            $name
        ))
    };
}

fn page<T>(body: &[u8], collection: &str, parse: fn(&Value) -> Result<T, String>) -> Vec<T> {
    match parse_page(body, collection, parse) {
        Ok(p) => {
            assert!(p.skipped.is_empty(), "{:?}", p.skipped);
            assert_eq!(p.next, None);
            p.items
        }
        Err(e) => panic!("{e}"),
    }
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
}

#[test]
fn ports_fixture() {
    let ports = page(fixture!("ports-list-response.json"), "ports", parse_port);
    assert_eq!(
        ports,
        vec![
            Port {
                id: "d80b1a3b-4fc1-49f3-952e-1e2ab7081d8b".into(),
                network_id: "70c1db1f-b701-45bd-96e0-a313ee3430b3".into(),
                device_id: "9ae135f4-b6e0-4dad-9e91-3c223e385824".into(),
                mac_address: "fa:16:3e:58:42:ed".into(),
                fixed_ips: vec![FixedIp {
                    ip_address: addr("172.24.4.2"),
                }],
                security_groups: vec![],
                port_security_enabled: false,
            },
            Port {
                id: "f71a6703-d6de-4be1-a91a-a570ede1d159".into(),
                network_id: "f27aa545-cbdd-4907-b0c6-c9e8b039dcc2".into(),
                device_id: "9ae135f4-b6e0-4dad-9e91-3c223e385824".into(),
                mac_address: "fa:16:3e:bb:3c:e4".into(),
                fixed_ips: vec![FixedIp {
                    ip_address: addr("10.0.0.1"),
                }],
                security_groups: vec![],
                port_security_enabled: false,
            },
        ]
    );
}

#[test]
fn floating_ips_fixture() {
    let fips = page(
        fixture!("floating-ips-list-response.json"),
        "floatingips",
        parse_floating_ip,
    );
    let project = "4969c491a3c74ee4af974e6d800c62de";
    let net = "376da547-b977-4cfe-9cba-275c80debf57";
    assert_eq!(
        fips,
        vec![
            FloatingIp {
                id: "2f245a7b-796b-4f26-9cf9-9e82d248fda7".into(),
                floating_ip_address: addr("172.24.4.228"),
                fixed_ip_address: Some(addr("10.0.0.3")),
                port_id: Some("ce705c24-c1ef-408a-bda3-7bbd946164ab".into()),
                floating_network_id: net.into(),
                router_id: Some("d23abc8d-2991-4a55-ba98-2aaea84cc72f".into()),
                project_id: project.into(),
                status: "ACTIVE".into(),
            },
            FloatingIp {
                id: "61cea855-49cb-4846-997d-801b70c71bdd".into(),
                floating_ip_address: addr("172.24.4.227"),
                fixed_ip_address: None,
                port_id: None,
                floating_network_id: net.into(),
                router_id: None,
                project_id: project.into(),
                status: "DOWN".into(),
            },
            FloatingIp {
                id: "898b198e-49f7-47d6-a7e1-53f626a548e6".into(),
                floating_ip_address: addr("172.24.4.42"),
                fixed_ip_address: None,
                port_id: None,
                floating_network_id: net.into(),
                router_id: Some("0303bf18-2c52-479c-bd68-e0ad712a1639".into()),
                project_id: project.into(),
                status: "ACTIVE".into(),
            },
        ]
    );
}

#[test]
fn networks_fixture() {
    let nets = page(
        fixture!("networks-list-response.json"),
        "networks",
        parse_network,
    );
    assert_eq!(
        nets,
        vec![
            Network {
                id: "d32019d3-bc6e-4319-9c1d-6722fc136a22".into(),
                name: "net1".into(),
                project_id: "4fd44f30292945e481c7b8a0c8908869".into(),
                external: false,
                shared: false,
                subnets: vec!["54d6f61d-db07-451c-9ab3-b9609b6b6f0b".into()],
            },
            Network {
                id: "db193ab3-96e3-4cb3-8fc5-05f4296d0324".into(),
                name: "net2".into(),
                project_id: "26a7980765d0414dbc1fc1f88cdb7e6e".into(),
                external: false,
                shared: false,
                subnets: vec!["08eae331-0402-425a-923c-34f7cfe39c1b".into()],
            },
        ]
    );
}

fn default_rules() -> Vec<SecurityGroupRule> {
    let sg = "85cc3048-abc3-43cc-89b3-377341426ac5";
    [
        (
            "3c0e45ff-adaf-4124-b083-bf390e5482ff",
            Direction::Egress,
            "IPv6",
            None,
        ),
        (
            "93aa42e5-80db-4581-9391-3a608bd0e448",
            Direction::Egress,
            "IPv4",
            None,
        ),
        (
            "c0b09f00-1d49-4e64-a0a7-8a186d928138",
            Direction::Ingress,
            "IPv6",
            Some(sg),
        ),
        (
            "f7d45c89-008e-4bab-88ad-d6811724c51c",
            Direction::Ingress,
            "IPv4",
            Some(sg),
        ),
    ]
    .into_iter()
    .map(|(id, direction, ethertype, remote)| SecurityGroupRule {
        id: id.into(),
        direction,
        ethertype: ethertype.into(),
        protocol: None,
        port_range_min: None,
        port_range_max: None,
        remote_ip_prefix: None,
        remote_group_id: remote.map(str::to_string),
        remote_address_group_id: None,
    })
    .collect()
}

#[test]
fn security_groups_fixture() {
    let groups = page(
        fixture!("security-groups-list-response.json"),
        "security_groups",
        parse_security_group,
    );
    assert_eq!(
        groups,
        vec![SecurityGroup {
            id: "85cc3048-abc3-43cc-89b3-377341426ac5".into(),
            name: "default".into(),
            project_id: "e4f50856753b4dc6afee5fa6b9b6c550".into(),
            stateful: true,
            rules: default_rules(),
        }]
    );
    let rules = page(
        fixture!("security-group-rules-list-response.json"),
        "security_group_rules",
        parse_security_group_rule,
    );
    assert_eq!(rules, default_rules());
}

#[test]
fn hand_made_items() {
    // port_security_enabled absent, IPv6.
    let p = parse_port(
        &json!({"id":"p","tenant_id":"t","fixed_ips":[{"subnet_id":"s","ip_address":"2001:db8::5"}],"security_groups":["g1","g2"]}),
    );
    let p = p.unwrap_or_else(|e| panic!("{e}"));
    assert!(p.port_security_enabled);
    assert_eq!(p.fixed_ips[0].ip_address, addr("2001:db8::5"));
    assert_eq!(p.security_groups, ["g1", "g2"]);
    for bad in [
        json!({"fixed_ips":[]}),
        json!({"id":"p","fixed_ips":[{"ip_address":"10.0.0.300"}]}),
        json!({"id":"p","fixed_ips":[{"subnet_id":"s"}]}),
        json!({"id":"p","port_security_enabled":"yes"}),
        json!({"id":"p","security_groups":[1]}),
        json!("p"),
    ] {
        assert!(parse_port(&bad).is_err(), "{bad}");
    }
    assert!(
        parse_floating_ip(&json!({"id":"f"})).is_err(),
        "needs its address"
    );
    assert!(parse_floating_ip(&json!({"id":"f","floating_ip_address":"x"})).is_err());
    let n = parse_network(&json!({"id":"n","router:external":true,"shared":true}))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(n.external && n.shared && n.subnets.is_empty());

    let rule = |r: Value| parse_security_group_rule(&r);
    let ssh = rule(
        json!({"id":"r","direction":"ingress","ethertype":"IPv4","protocol":"tcp",
        "port_range_min":22,"port_range_max":22,"remote_ip_prefix":"0.0.0.0/0"}),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ssh.protocol.as_deref(), Some("tcp"));
    assert_eq!(
        (ssh.port_range_min, ssh.port_range_max),
        (Some(22), Some(22))
    );
    assert_eq!(ssh.remote_ip_prefix.as_deref(), Some("0.0.0.0/0"));
    assert_eq!(
        rule(json!({"direction":"ingress","protocol":"6"})).map(|r| r.protocol),
        Ok(Some("6".into()))
    );
    assert_eq!(
        rule(json!({"direction":"ingress","protocol":17})).map(|r| r.protocol),
        Ok(Some("17".into()))
    );
    assert_eq!(
        rule(json!({"direction":"egress","protocol":""})).map(|r| r.protocol),
        Ok(None)
    );
    for bad in [
        json!({"direction":"sideways"}),
        json!({"protocol":"tcp"}),
        json!({"direction":"ingress","protocol":true}),
        json!({"direction":"ingress","protocol":-1}),
        json!({"direction":"ingress","port_range_min":70000}),
        json!({"direction":"ingress","port_range_max":"22"}),
    ] {
        assert!(rule(bad.clone()).is_err(), "{bad}");
    }
    let sg = parse_security_group(
        &json!({"id":"g","security_group_rules":[{"id":"ok","direction":"egress"},{"id":"bad","direction":"up"}]}),
    );
    let err = sg.err().unwrap_or_default();
    assert!(err.contains("rule bad"), "{err}");
    let sg =
        parse_security_group(&json!({"id":"g","stateful":false})).unwrap_or_else(|e| panic!("{e}"));
    assert!(!sg.stateful && sg.rules.is_empty());
}

// --- listing -------------------------------------------------------------------------

fn ports_page(ids: &[&str], next: Option<&str>) -> String {
    let ports: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "network_id": "n"}))
        .collect();
    let mut doc = json!({ "ports": ports });
    if let Some(n) = next {
        doc["ports_links"] = json!([{"rel": "previous", "href": "http://neutron:9696/v2.0/ports?page_reverse=True"}, {"rel": "next", "href": n}]);
    }
    doc.to_string()
}

const N2: &str = "http://neutron:9696/v2.0/ports?limit=2&marker=b";
const N3: &str = "http://neutron:9696/v2.0/ports?limit=2&marker=d";

fn opts(page_size: u32) -> ListOptions {
    ListOptions {
        page_size,
        ..ListOptions::default()
    }
}

async fn port_ids(api: &FakeApi, o: &ListOptions) -> Result<Vec<String>, Error> {
    list(api, "/v2.0/ports", "ports", o, parse_port)
        .await
        .map(|l| l.items.into_iter().map(|p| p.id).collect())
}

#[tokio::test]
async fn three_pages() {
    let api = FakeApi::new();
    api.ok("/v2.0/ports?limit=2", ports_page(&["a", "b"], Some(N2)))
        .ok(N2, ports_page(&["c", "d"], Some(N3)))
        .ok(N3, ports_page(&["e"], None));
    assert_eq!(
        port_ids(&api, &opts(2)).await.ok(),
        Some(vec![
            "a".into(),
            "b".into(),
            "c".into(),
            "d".into(),
            "e".into()
        ])
    );
    let reqs = api.requests();
    let paths: Vec<_> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/v2.0/ports?limit=2", N2, N3]);
    assert!(reqs
        .iter()
        .all(|r| r.service == ServiceType::Network && r.headers.is_empty()));
}

#[tokio::test]
async fn empty_page_ends_it() {
    let api = FakeApi::new();
    api.ok("/v2.0/ports?limit=2", ports_page(&["a", "b"], Some(N2)))
        .ok(N2, ports_page(&[], Some(N3)));
    assert_eq!(
        port_ids(&api, &opts(2)).await.map(|v| v.len()).ok(),
        Some(2)
    );
    assert_eq!(api.requests().len(), 2);
}

#[tokio::test]
async fn loops_and_limits() {
    let api = FakeApi::new();
    api.ok("/v2.0/ports?limit=2", ports_page(&["a", "b"], Some(N2)))
        .ok(N2, ports_page(&["c", "d"], Some(N2)));
    match port_ids(&api, &opts(2)).await {
        Err(e @ Error::Pagination { .. }) => {
            assert!(
                e.to_string()
                    .starts_with("network: GET /v2.0/ports?limit=2&marker=b"),
                "{e}"
            );
        }
        other => panic!("{other:?}"),
    }
    api.ok("/v2.0/ports?limit=2", ports_page(&["a", "b"], Some(N2)))
        .ok(N2, ports_page(&["c", "d"], Some(N3)));
    let one = ListOptions {
        max_pages: 1,
        ..opts(2)
    };
    assert!(matches!(
        port_ids(&api, &one).await,
        Err(Error::Pagination { .. })
    ));
}

#[tokio::test]
async fn bad_pages_and_items() {
    let api = FakeApi::new();
    api.ok("/v2.0/ports?limit=1000", "{\"ports\": [");
    match port_ids(&api, &ListOptions::default()).await {
        Err(e @ Error::Invalid { .. }) => {
            assert_eq!(e.kind(), "openstack_invalid_reply");
            assert!(e.to_string().contains("/v2.0/ports?limit=1000"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    api.ok(
        "/v2.0/ports?limit=1000",
        r#"{"NeutronError": {"message": "x"}}"#,
    );
    assert!(matches!(
        port_ids(&api, &ListOptions::default()).await,
        Err(Error::Invalid { .. })
    ));

    api.ok("/v2.0/ports?limit=1000", r#"{"ports":[{"id":"a"},{"id":"b","fixed_ips":[{"ip_address":"nope"}]},{"network_id":"x"}]}"#);
    let listed = list(
        &api,
        "/v2.0/ports",
        "ports",
        &ListOptions::default(),
        parse_port,
    )
    .await;
    match listed {
        Err(e @ Error::Invalid { .. }) => {
            let s = e.to_string();
            assert!(
                s.contains("/v2.0/ports?limit=1000") && s.contains("id b"),
                "{s}"
            );
            assert!(s.contains("nope") && s.contains("and 1 more"), "{s}");
        }
        other => panic!("{other:?}"),
    }
}

/// The app spawns these on a multi-threaded runtime: their futures must be `Send`.
#[test]
fn futures_are_send() {
    fn assert_send<F: std::future::Future + Send>(_: F) {}
    let api = FakeApi::new();
    let o = ListOptions::default();
    let mv = super::super::nova::Microversion::DEFAULT;
    assert_send(inventory(&api, &o));
    assert_send(super::super::nova::negotiate(&api, mv));
    assert_send(super::super::nova::list_servers(
        &api,
        mv,
        &super::super::nova::ListOptions::default(),
    ));
    assert_send(super::super::diagnostics::diagnostics(&api, mv, "id"));
}

#[tokio::test]
async fn inventory_of_fixtures() {
    let api = FakeApi::new();
    api.ok(
        "/v2.0/ports?limit=1000",
        &fixture!("ports-list-response.json")[..],
    )
    .ok(
        "/v2.0/floatingips?limit=1000",
        &fixture!("floating-ips-list-response.json")[..],
    )
    .ok(
        "/v2.0/networks?limit=1000",
        &fixture!("networks-list-response.json")[..],
    )
    .ok(
        "/v2.0/security-groups?limit=1000",
        &fixture!("security-groups-list-response.json")[..],
    );
    let inv = match inventory(&api, &ListOptions::default()).await {
        Ok(i) => i,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(
        (
            inv.ports.len(),
            inv.floating_ips.len(),
            inv.networks.len(),
            inv.security_groups.len(),
        ),
        (2, 3, 2, 1)
    );
    assert_eq!(inv.security_groups[0].rules.len(), 4);
    assert!(api
        .requests()
        .iter()
        .all(|r| r.service == ServiceType::Network));

    // One failing list fails the whole inventory.
    api.ok(
        "/v2.0/ports?limit=1000",
        &fixture!("ports-list-response.json")[..],
    )
    .ok(
        "/v2.0/floatingips?limit=1000",
        &fixture!("floating-ips-list-response.json")[..],
    )
    .ok(
        "/v2.0/networks?limit=1000",
        &fixture!("networks-list-response.json")[..],
    )
    .on(
        "/v2.0/security-groups?limit=1000",
        Canned::Status(503, "unavailable"),
    );
    assert_eq!(
        inventory(&api, &ListOptions::default())
            .await
            .err()
            .and_then(|e| e.status()),
        Some(503)
    );
}
