//! Tests of the incremental inventory over the upstream Nova / Neutron samples
//! (`tests/fixtures/openstack/`): parsing change lists, applying deltas (the result must equal a
//! full join of the changed cloud), the Neutron fallback, and refusing time travel and garbage.

use super::poll::{parse_fip_change, parse_group_change, parse_port_change, parse_server_change};
use super::*;
use crate::inventory::openstack::join::{self, CloudInventory, Fetched, JoinOptions};
use crate::inventory::openstack::neutron;
use crate::inventory::openstack::nova::fake::{Canned, FakeApi};
use crate::inventory::openstack::nova::{self, Microversion};
use crate::inventory::openstack::settings::AddressChoice;

use serde_json::json;
use serde_json::Value;
use std::collections::BTreeMap;

macro_rules! fixture {
    ($dir:literal, $name:literal) => {
        include_bytes!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/openstack/",
            $dir,
            "/",
            $name
        ))
    };
}

const VM: &str = "f5dc173b-6804-445a-a6d8-c705dad5b5eb";
const PORT: &str = "d80b1a3b-4fc1-49f3-952e-1e2ab7081d8b";
const FIP: &str = "2f245a7b-796b-4f26-9cf9-9e82d248fda7";
const SG: &str = "85cc3048-abc3-43cc-89b3-377341426ac5";
const LATER: &str = "2026-01-01T00:00:00Z";

fn items(body: &[u8], key: &str) -> Vec<Value> {
    let doc: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    doc.get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

fn t(s: &str) -> Stamp {
    match parse_stamp(s) {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    }
}

/// The samples as one small cloud: the Nova sample server, the first sample port moved onto it
/// (its fixed address and MAC, the sample `default` group, port security on), the sample floating
/// IPs (all unassociated) and security groups.
#[derive(Clone)]
struct Cloud {
    servers: Vec<Value>,
    ports: Vec<Value>,
    fips: Vec<Value>,
    groups: Vec<Value>,
    networks: Vec<Value>,
}

fn cloud() -> Cloud {
    let mut ports = items(fixture!("neutron", "ports-list-response.json"), "ports");
    ports.truncate(1);
    for (k, v) in [
        ("device_id", json!(VM)),
        ("fixed_ips", json!([{"ip_address": "192.168.1.30"}])),
        ("mac_address", json!("00:0c:29:0d:11:74")),
        ("security_groups", json!([SG])),
        ("port_security_enabled", json!(true)),
    ] {
        ports[0][k] = v;
    }
    let mut fips = items(
        fixture!("neutron", "floating-ips-list-response.json"),
        "floatingips",
    );
    for f in &mut fips {
        f["port_id"] = Value::Null;
        f["fixed_ip_address"] = Value::Null;
    }
    Cloud {
        servers: items(
            fixture!("nova", "servers-details-resp-v2.100.json"),
            "servers",
        ),
        ports,
        fips,
        groups: items(
            fixture!("neutron", "security-groups-list-response.json"),
            "security_groups",
        ),
        networks: items(
            fixture!("neutron", "networks-list-response.json"),
            "networks",
        ),
    }
}

fn fetched(c: &Cloud) -> Fetched {
    Fetched {
        servers: c
            .servers
            .iter()
            .map(|v| ok(nova::parse_server(v)))
            .collect(),
        ports: c.ports.iter().map(|v| ok(neutron::parse_port(v))).collect(),
        floating_ips: c
            .fips
            .iter()
            .map(|v| ok(neutron::parse_floating_ip(v)))
            .collect(),
        networks: c
            .networks
            .iter()
            .map(|v| ok(neutron::parse_network(v)))
            .collect(),
        security_groups: c
            .groups
            .iter()
            .map(|v| ok(neutron::parse_security_group(v)))
            .collect(),
        ..Fetched::default()
    }
}

fn join_opts() -> JoinOptions {
    JoinOptions {
        group: "prod".into(),
        addresses: AddressChoice::Both,
        statuses: vec!["ACTIVE".into()],
        namespaces: false,
        scanner_source: None,
    }
}

/// What a full inventory of `c` gives (servers in id order, as the state keeps them).
fn full(c: &Cloud) -> CloudInventory {
    let mut f = fetched(c);
    f.servers.sort_by(|a, b| a.id.cmp(&b.id));
    join::join(&join_opts(), &f, &BTreeMap::new(), 1.0)
}

fn statuses() -> Vec<String> {
    vec!["ACTIVE".into()]
}

/// A poll from `since` that lists these items.
fn polled(
    since: Cursor,
    servers: &[Value],
    ports: &[Value],
    fips: &[Value],
    groups: &[Value],
) -> Polled {
    Polled {
        since,
        servers: servers.iter().map(|v| ok(parse_server_change(v))).collect(),
        ports: ports.iter().map(|v| ok(parse_port_change(v))).collect(),
        floating_ips: fips.iter().map(|v| ok(parse_fip_change(v))).collect(),
        security_groups: groups.iter().map(|v| ok(parse_group_change(v))).collect(),
        nova_full: false,
        neutron_full: false,
    }
}

fn since(state: &CloudState) -> Cursor {
    Cursor {
        nova: state.cursor.nova,
        neutron: Some(t("2018-03-19T19:16:56Z")),
    }
}

/// Diff, check the delta against a full inventory of the changed cloud, return it.
/// Also checks that re-joining only the servers the delta touched, laid over the inventory from
/// before, gives the same (what a poll does).
fn step(state: &mut CloudState, make: impl FnOnce(&CloudState) -> Polled, after: &Cloud) -> Delta {
    let before = state.inventory(&join_opts(), &BTreeMap::new(), 1.0);
    let p = make(state);
    let delta = ok(diff(state, p, &statuses()));
    let touched = state.touched(&delta);
    apply(state, delta.clone());
    let inv = state.inventory(&join_opts(), &BTreeMap::new(), 1.0);
    let want = full(after);
    assert_eq!(
        inv.vms, want.vms,
        "a delta applied must equal a full inventory"
    );
    assert_eq!(inv.targets, want.targets);

    let part = state.inventory_of(&touched, &join_opts(), &BTreeMap::new(), 1.0);
    assert!(
        part.vms.iter().all(|v| touched.contains(&v.id)),
        "only touched servers are re-joined"
    );
    let mut vms = before.vms;
    vms.retain(|v| !touched.contains(&v.id));
    vms.extend(part.vms);
    vms.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        vms, want.vms,
        "the touched servers re-joined over the old inventory ({touched:?})"
    );
    let mut targets = before.targets;
    patch_targets(&mut targets, part.targets, &touched);
    let by_id = |a: &(Option<String>, crate::model::Target),
                 b: &(Option<String>, crate::model::Target)| a.1.id.cmp(&b.1.id);
    targets.sort_by(by_id);
    let mut want_targets = want.targets;
    want_targets.sort_by(by_id);
    assert_eq!(
        targets, want_targets,
        "targets of the touched servers re-joined ({touched:?})"
    );
    delta
}

#[test]
fn stamps_parse_in_every_form_the_apis_write() {
    let z = t("2013-09-03T04:01:32Z");
    assert_eq!(t("2013-09-03T04:01:32"), z, "no offset is UTC");
    assert_eq!(t("2013-09-03T06:01:32+02:00"), z);
    assert_eq!(
        format_stamp(t("2013-09-23T13:53:12.774549")),
        "2013-09-23T13:53:12Z"
    );
    for bad in ["", "yesterday", "2013-13-03T04:01:32Z", "1378180892"] {
        assert!(parse_stamp(bad).is_err(), "{bad:?}");
    }
    let state = CloudState::new(fetched(&cloud()), DEFAULT_MARGIN);
    assert_eq!(
        state.cursor,
        Cursor {
            nova: Some(t("2013-09-03T04:01:27Z")),
            neutron: None
        },
        "the cloud's newest `updated` minus the margin, never the agent's clock"
    );

    // Neutron's cursor: its `Date` minus the margin; a date far in the future is not believed.
    let reply = |date: &str| crate::inventory::openstack::api::Reply {
        status: 200,
        headers: vec![("date".into(), date.into())],
        body: Vec::new(),
    };
    let date = reply("Mon, 07 Dec 2026 18:25:16 GMT").date();
    assert_eq!(date, Some(t("2026-12-07T18:25:16Z")));
    assert_eq!(reply("yesterday").date(), None);
    let mut f = fetched(&cloud());
    f.neutron_date = date;
    let state = CloudState::new(f.clone(), DEFAULT_MARGIN);
    assert_eq!(state.cursor.neutron, Some(t("2026-12-07T18:25:11Z")));
    f.neutron_date = Some(t("2999-01-01T00:00:00Z"));
    let state = CloudState::new(f, DEFAULT_MARGIN);
    assert_eq!(state.cursor.neutron, None);
}

#[test]
fn extensions_say_whether_neutron_filters() {
    let with =
        json!({"extensions": [{"alias": "pagination"}, {"alias": "standard-attr-timestamp"}]});
    let without = json!({"extensions": [{"alias": "pagination"}]});
    assert_eq!(parse_extensions(with.to_string().as_bytes()), Ok(true));
    assert_eq!(parse_extensions(without.to_string().as_bytes()), Ok(false));
    assert!(parse_extensions(b"<html>").is_err());
    assert!(parse_extensions(b"{}").is_err());
}

const EXT: &str = r#"{"extensions":[{"alias":"standard-attr-timestamp"}]}"#;

fn page(key: &str, list: &[Value]) -> String {
    json!({ key: list }).to_string()
}

fn opts() -> PollOptions {
    PollOptions {
        cloud: "prod".into(),
        page_size: 50,
        max_pages: 10,
        all_projects: true,
    }
}

#[tokio::test]
async fn a_poll_asks_for_changes_since_the_cursor_and_parses_the_samples() {
    let c = cloud();
    let since = Cursor {
        nova: Some(t("2013-09-03T04:01:27Z")),
        neutron: Some(t("2016-01-01T00:00:00Z")),
    };
    let api = FakeApi::new();
    let rules_fixture = fixture!("neutron", "security-groups-list-response.json");
    api.ok("/v2.0/extensions", EXT)
        .ok(
            "/servers/detail?all_tenants=1&changes-since=2013-09-03T04:01:27Z&limit=50",
            &fixture!("nova", "servers-details-resp-v2.100.json")[..],
        )
        .ok(
            "http://openstack.example.com/v2.1/6f70656e737461636b20342065766572/servers/detail?limit=1&marker=f5dc173b-6804-445a-a6d8-c705dad5b5eb",
            page("servers", &[]),
        )
        .ok(
            "/v2.0/ports?changed_since=2016-01-01T00:00:00Z&limit=50",
            page("ports", &c.ports),
        )
        .ok(
            "/v2.0/floatingips?changed_since=2016-01-01T00:00:00Z&limit=50",
            &fixture!("neutron", "floating-ips-list-response.json")[..],
        )
        .ok(
            "/v2.0/security-groups?changed_since=2016-01-01T00:00:00Z&limit=50",
            &rules_fixture[..],
        );
    let mut feed = Feed::new();
    let p = ok(poll(&api, &mut feed, Microversion::DEFAULT, since, &opts()).await);
    assert_eq!(feed.neutron_filters(), Some(true));
    assert!(!p.nova_full && !p.neutron_full);
    assert_eq!(p.since, since);
    assert_eq!(p.servers.len(), 1);
    assert_eq!(p.servers[0].updated_at, Some(t("2013-09-03T04:01:32Z")));
    assert!(!p.servers[0].deleted);
    assert_eq!(p.ports[0].updated_at, Some(t("2016-03-08T20:19:41Z")));
    let fip_stamps: Vec<_> = p.floating_ips.iter().map(|f| f.updated_at).collect();
    assert_eq!(
        fip_stamps,
        vec![
            Some(t("2016-12-21T10:55:53Z")),
            Some(t("2016-12-21T11:55:53Z")),
            Some(t("2018-06-15T02:12:57Z"))
        ]
    );
    let g = &p.security_groups[0];
    assert_eq!(g.item.id, SG);
    assert_eq!(g.rule_stamps.len(), g.item.rules.len());
    let nova_req = api
        .requests()
        .into_iter()
        .find(|r| r.path.starts_with("/servers/detail"));
    let has_mv = nova_req.is_some_and(|r| {
        r.headers
            .iter()
            .any(|(k, v)| k == "OpenStack-API-Version" && v == "compute 2.100")
    });
    assert!(has_mv, "the microversion of the full inventory is sent");
}

#[tokio::test]
async fn without_the_timestamp_extension_neutron_is_listed_in_full_and_probed_once() {
    let c = cloud();
    let since = Cursor {
        nova: Some(t("2013-09-03T04:01:27Z")),
        neutron: Some(t("2016-01-01T00:00:00Z")),
    };
    let api = FakeApi::new();
    api.ok(
        "/v2.0/extensions",
        r#"{"extensions":[{"alias":"pagination"}]}"#,
    );
    for _ in 0..2 {
        api.ok(
            "/servers/detail?all_tenants=1&changes-since=2013-09-03T04:01:27Z&limit=50",
            page("servers", &[]),
        )
        .ok("/v2.0/ports?limit=50", page("ports", &c.ports))
        .ok("/v2.0/floatingips?limit=50", page("floatingips", &c.fips))
        .ok(
            "/v2.0/security-groups?limit=50",
            page("security_groups", &c.groups),
        );
    }
    let mut feed = Feed::new();
    for _ in 0..2 {
        let p = ok(poll(&api, &mut feed, Microversion::DEFAULT, since, &opts()).await);
        assert!(p.neutron_full && !p.nova_full);
        assert_eq!(p.ports.len(), 1);
    }
    assert_eq!(feed.neutron_filters(), Some(false));
    let reqs = api.requests();
    let probes = reqs.iter().filter(|r| r.path == "/v2.0/extensions").count();
    assert_eq!(probes, 1, "the extension is probed once per cloud");
    assert!(!reqs.iter().any(|r| r.path.contains("changed_since")));
}

#[tokio::test]
async fn a_400_on_changed_since_falls_back_to_full_listings() {
    let since = Cursor {
        nova: None,
        neutron: Some(t("2016-01-01T00:00:00Z")),
    };
    let api = FakeApi::new();
    api.ok("/v2.0/extensions", EXT)
        .ok(
            "/servers/detail?all_tenants=1&limit=50",
            page("servers", &[]),
        )
        .on(
            "/v2.0/ports?changed_since=2016-01-01T00:00:00Z&limit=50",
            Canned::Status(400, "['changed_since'] is invalid"),
        )
        .ok(
            "/v2.0/floatingips?changed_since=2016-01-01T00:00:00Z&limit=50",
            page("floatingips", &[]),
        )
        .ok(
            "/v2.0/security-groups?changed_since=2016-01-01T00:00:00Z&limit=50",
            page("security_groups", &[]),
        )
        .ok("/v2.0/ports?limit=50", page("ports", &[]))
        .ok("/v2.0/floatingips?limit=50", page("floatingips", &[]))
        .ok(
            "/v2.0/security-groups?limit=50",
            page("security_groups", &[]),
        );
    let mut feed = Feed::new();
    let p = ok(poll(&api, &mut feed, Microversion::DEFAULT, since, &opts()).await);
    assert!(
        p.neutron_full && p.nova_full,
        "no Nova cursor: Nova is listed in full too"
    );
    assert_eq!(feed.neutron_filters(), Some(false));
}

/// A canned Nova reply, a second page for it, whether it is garbage, what the error says.
type Case<'a> = (Canned, Option<(&'a str, String)>, bool, &'a str);

#[tokio::test]
async fn garbage_and_failures_are_told_apart() {
    let since = Cursor {
        nova: Some(t("2013-09-03T04:01:27Z")),
        neutron: Some(t("2016-01-01T00:00:00Z")),
    };
    let nova = "/servers/detail?all_tenants=1&changes-since=2013-09-03T04:01:27Z&limit=50";
    let neutron_ok = |api: &FakeApi| {
        for coll in ["ports", "floatingips", "security-groups"] {
            let key = if coll == "security-groups" {
                "security_groups"
            } else {
                coll
            };
            api.ok(
                &format!("/v2.0/{coll}?changed_since=2016-01-01T00:00:00Z&limit=50"),
                page(key, &[]),
            );
        }
    };
    let next = "http://nova/v2.1/servers/detail?limit=50&marker=a";
    let looped = json!({"servers": [{"id": "a", "updated": LATER}],
                        "servers_links": [{"rel": "next", "href": next}]})
    .to_string();
    let cases: Vec<Case<'_>> = vec![
        (Canned::Ok(b"<html>".to_vec()), None, true, "not JSON"),
        (
            Canned::Ok(br#"{"servers":[{"id":"a","updated":"last tuesday"}]}"#.to_vec()),
            None,
            true,
            "last tuesday",
        ),
        (
            Canned::Ok(looped.clone().into_bytes()),
            Some((next, looped)),
            true,
            "already ended an earlier page",
        ),
        (Canned::Status(503, "down"), None, false, "503"),
    ];
    for (reply, more, full, says) in cases {
        let api = FakeApi::new();
        api.ok("/v2.0/extensions", EXT).on(nova, reply);
        if let Some((path, body)) = more {
            api.ok(path, body);
        }
        neutron_ok(&api);
        let mut feed = Feed::new();
        match poll(&api, &mut feed, Microversion::DEFAULT, since, &opts()).await {
            Err(e) => {
                assert_eq!(e.needs_full_inventory(), full, "{e}");
                assert!(e.to_string().contains(says), "{says:?} missing from {e}");
            }
            Ok(p) => panic!("{says}: accepted {p:?}"),
        }
    }
}

mod apply;
