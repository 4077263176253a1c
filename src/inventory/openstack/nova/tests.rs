//! Tests of the Nova client against canned replies: microversion negotiation, server parsing,
//! pagination and its loop detection, and what a bad reply costs.

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

fn expected_fixture_server(user: &str, flavor: &str, host: Option<&str>, updated: &str) -> Server {
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
