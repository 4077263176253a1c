//! The fake Nova: paging with next links and markers, the limit and its cap, microversion
//! negotiation and the version documents, and server diagnostics.

use super::*;
use stinger_testsupport::fake_cloud::DiagnosticsReply;

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
