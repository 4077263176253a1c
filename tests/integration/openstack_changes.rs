//! Incremental inventory (issue 15, part 1) against the fake Nova + Neutron over HTTP: changes
//! made in the fake cloud (a floating IP associated, a rule opened to the world, port security
//! off, a VM stopped, a VM deleted) come back from `changes-since` / `changed_since` as typed
//! changes with the cloud's own times, and the state they are applied to joins into exactly what a
//! new full inventory gives — with Neutron's timestamp extension and without it. Binds only
//! 127.0.86.1–127.0.86.2.

use crate::util::http_request;
use std::collections::BTreeMap;
use std::future::Future;
use stinger::inventory::openstack::api::{Api, Error, Reply, ServiceType};
use stinger::inventory::openstack::changes::{
    self, ChangeKind, CloudState, Feed, PollOptions, DEFAULT_MARGIN,
};
use stinger::inventory::openstack::join::{self, CloudInventory, Fetched, JoinOptions};
use stinger::inventory::openstack::neutron;
use stinger::inventory::openstack::nova::{self, Microversion};
use stinger::inventory::openstack::settings::AddressChoice;
use stinger_testsupport::fake_cloud::{
    Cloud, FakeCloud, FakeConfig, RuleSpec, ServerSpec, TokenCheck,
};

const TOKEN: &str = "tok-changes";
const PROJECT: &str = "0e7b1d6e00004000800000000000c0de";
const WEB: &str = "0e7b1d6e-0000-4000-8000-00000000c001";
const DB: &str = "0e7b1d6e-0000-4000-8000-00000000c002";
const BOOTED: &str = "0e7b1d6e-0000-4000-8000-00000000c003";
/// 2026-01-01T00:00:00Z.
const T0: u64 = 1_767_225_600;

/// The fake's two services, GET only, with a static admin token (no Keystone).
struct FakeApi {
    compute: String,
    network: String,
}

impl FakeApi {
    fn get_blocking(
        &self,
        service: ServiceType,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, Error> {
        let url = if path.starts_with("http://") {
            path.to_string()
        } else if service == ServiceType::Compute {
            format!("{}{path}", self.compute)
        } else {
            format!("{}{path}", self.network)
        };
        let rest = url.strip_prefix("http://").unwrap_or(&url);
        let (addr, target) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let mut h = vec![("X-Auth-Token", TOKEN)];
        h.extend_from_slice(headers);
        let (status, head, body) = http_request(addr, target, &h);
        if (200..300).contains(&status) {
            // `head` is lower-cased: names as the agent's client gives them, values too (a
            // date parses either way).
            let headers = head
                .lines()
                .skip(1)
                .filter_map(|l| l.split_once(':'))
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .collect();
            Ok(Reply {
                status,
                headers,
                body: body.into_bytes(),
            })
        } else {
            Err(Error::Status {
                service,
                path: target.to_string(),
                status,
                message: body,
            })
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
        let r = self.get_blocking(service, path, headers);
        async move { r }
    }
}

fn cloud() -> Cloud {
    let mut c = Cloud::empty().expect("fake cloud templates");
    let mut web =
        ServerSpec::new(WEB, "web-1", PROJECT).fixed("private", "127.0.87.10".parse().unwrap());
    web.security_groups.push("web".into());
    c.add_server(web).unwrap();
    let db = ServerSpec::new(DB, "db-1", PROJECT).fixed("private", "127.0.87.11".parse().unwrap());
    c.add_server(db).unwrap();
    c
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

async fn full(api: &FakeApi) -> Fetched {
    let servers = nova::list_servers(api, Microversion::DEFAULT, &nova::ListOptions::default())
        .await
        .expect("list servers");
    let net = neutron::inventory(api, &neutron::ListOptions::default())
        .await
        .expect("list Neutron");
    Fetched {
        servers: servers.servers,
        ports: net.ports,
        floating_ips: net.floating_ips,
        networks: net.networks,
        security_groups: net.security_groups,
        neutron_date: net.date,
        ..Fetched::default()
    }
}

async fn full_inventory(api: &FakeApi) -> CloudInventory {
    let mut f = full(api).await;
    f.servers.sort_by(|a, b| a.id.cmp(&b.id));
    join::join(&join_opts(), &f, &BTreeMap::new(), 1.0)
}

/// One poll → diff → apply; the result must equal a new full inventory.
async fn poll(api: &FakeApi, feed: &mut Feed, state: &mut CloudState) -> changes::Delta {
    let opts = PollOptions {
        cloud: "prod".into(),
        page_size: 1,
        max_pages: 100,
        all_projects: true,
    };
    let polled = changes::poll(api, feed, Microversion::DEFAULT, state.cursor, &opts)
        .await
        .unwrap_or_else(|e| panic!("poll: {e}"));
    let delta = changes::diff(state, polled, &["ACTIVE".to_string()])
        .unwrap_or_else(|e| panic!("diff: {e}"));
    changes::apply(state, delta.clone());
    let inv = state.inventory(&join_opts(), &BTreeMap::new(), 1.0);
    let want = full_inventory(api).await;
    assert_eq!(
        inv.vms, want.vms,
        "delta applied ≠ full inventory: {:?}",
        delta.changes
    );
    assert_eq!(inv.targets, want.targets);
    delta
}

fn stamp(secs: u64) -> changes::Stamp {
    changes::Stamp::from_second(secs as i64).expect("a time")
}

async fn scenario(timestamps: bool, last: u8) {
    let mut config = FakeConfig::new(
        format!("127.0.86.{last}").parse().unwrap(),
        cloud(),
        TokenCheck::admin(&[TOKEN]),
    );
    config.neutron_timestamps = timestamps;
    config.max_limit = 1;
    config.neutron_max_limit = Some(1);
    let fake = FakeCloud::start(config).expect("start the fake cloud");
    let api = FakeApi {
        compute: fake.compute_url(),
        network: fake.network_url(),
    };
    let cloud_now = fake
        .with_cloud(|c| c.now_secs())
        .expect("the cloud's clock");
    let mut state = CloudState::new(full(&api).await, DEFAULT_MARGIN);
    let mut feed = Feed::new();
    assert!(state.cursor.nova.is_some());
    assert_eq!(
        state.cursor.neutron,
        Some(stamp(cloud_now - DEFAULT_MARGIN.as_secs())),
        "Neutron's cursor is Neutron's own clock (its Date) minus the margin"
    );

    // Nothing changed yet: an empty delta. With the timestamp extension the very first poll
    // already asks Neutron only for what changed since the listing (a large cloud is not
    // listed again); without it Neutron is listed in full.
    fake.reset_counts();
    let delta = poll(&api, &mut feed, &mut state).await;
    assert!(delta.changes.is_empty(), "{:?}", delta.changes);
    assert_eq!(feed.neutron_filters(), Some(timestamps));
    // The poll's pages are of one item; the full inventory `poll` compares with lists 1000.
    let ports: Vec<String> = fake
        .request_log()
        .into_iter()
        .filter(|r| r.path == "/v2.0/ports" && !r.query.contains("limit=1000"))
        .map(|r| r.query)
        .collect();
    assert!(!ports.is_empty());
    assert_eq!(
        ports.iter().all(|q| q.contains("changed_since=")),
        timestamps,
        "{ports:?}"
    );

    // A floating IP on web-1.
    let web_port = fake
        .with_cloud(|c| {
            c.set_clock(T0);
            c.associate_floating_ip(WEB, "127.0.87.100".parse().unwrap())
                .unwrap();
            c.server_ports(WEB).remove(0)
        })
        .unwrap();
    let delta = poll(&api, &mut feed, &mut state).await;
    let added: Vec<_> = delta
        .exposure_creating()
        .filter(|c| c.kind == ChangeKind::AddressAdded)
        .collect();
    assert_eq!(added.len(), 1, "{:?}", delta.changes);
    assert_eq!(added[0].instances, [WEB]);
    assert_eq!(
        added[0].addresses,
        ["127.0.87.100".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(added[0].ports, [web_port]);
    let want_time = timestamps.then(|| stamp(T0));
    assert_eq!(added[0].updated_at, want_time, "the cloud's own time");

    // A VM booted with a floating IP (its port and the address come from Neutron).
    fake.with_cloud(|c| {
        c.set_clock(T0 + 30);
        c.add_server(
            ServerSpec::new(BOOTED, "booted-1", PROJECT)
                .fixed("private", "127.0.87.11".parse().unwrap())
                .floating("127.0.87.101".parse().unwrap()),
        )
    })
    .unwrap()
    .unwrap();
    let delta = poll(&api, &mut feed, &mut state).await;
    assert!(
        delta
            .exposure_creating()
            .any(|c| matches!(c.kind, ChangeKind::VmAdded { .. }) && c.instances == [BOOTED]),
        "{:?}",
        delta.changes
    );

    // A rule open to the world in web-1's group `web`; db-1 stopped.
    let group = {
        let inv = state.inventory(&join_opts(), &BTreeMap::new(), 1.0);
        let t = inv
            .targets
            .iter()
            .find(|(_, t)| t.id.starts_with(WEB))
            .expect("web-1 target")
            .1
            .clone();
        let vm = t.vm.expect("a VM target");
        vm.security_groups
            .iter()
            .find(|g| g.name == "web")
            .expect("group web")
            .id
            .clone()
    };
    fake.with_cloud(|c| {
        c.set_clock(T0 + 60);
        c.add_security_group_rule(&group, RuleSpec::ingress_tcp(8080, 8080, "0.0.0.0/0"))
            .unwrap();
        c.set_status(DB, "SHUTOFF");
    });
    let delta = poll(&api, &mut feed, &mut state).await;
    let opened: Vec<_> = delta
        .exposure_creating()
        .filter(|c| matches!(c.kind, ChangeKind::RuleAdded { .. }))
        .collect();
    assert_eq!(opened.len(), 1, "{:?}", delta.changes);
    assert_eq!(opened[0].instances, [WEB]);
    let stopped: Vec<_> = delta
        .exposure_removing()
        .filter(|c| c.instances == [DB])
        .collect();
    assert!(
        matches!(stopped[0].kind, ChangeKind::VmStatus { .. }),
        "{:?}",
        delta.changes
    );
    assert!(
        state.cursor.nova >= Some(stamp(T0 + 55)),
        "Nova's cursor follows Nova's time"
    );

    // Port security off on web-1, db-1 deleted (Nova lists it as DELETED).
    fake.with_cloud(|c| {
        c.set_clock(T0 + 120);
        let port = c.server_ports(WEB).remove(0);
        c.set_port_security(&port, false);
        c.remove_server(DB);
    });
    let delta = poll(&api, &mut feed, &mut state).await;
    let kinds: Vec<_> = delta
        .changes
        .iter()
        .map(|c| (c.kind.clone(), c.effect))
        .collect();
    assert!(
        kinds.contains(&(
            ChangeKind::PortSecurity { enabled: false },
            changes::Effect::CreatesExposure
        )),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&(ChangeKind::VmDeleted, changes::Effect::RemovesExposure)),
        "{kinds:?}"
    );
    assert_eq!(state.server_count(), 2, "web-1 and booted-1 are left");

    // The polls asked for changes, not for everything (Nova always; Neutron with the extension).
    let log = fake.request_log();
    let nova_polls = log
        .iter()
        .filter(|r| r.query.contains("changes-since"))
        .count();
    let neutron_polls = log
        .iter()
        .filter(|r| r.query.contains("changed_since"))
        .count();
    assert!(nova_polls >= 4, "{nova_polls}");
    assert_eq!(neutron_polls > 0, timestamps, "{neutron_polls}");
}

#[tokio::test]
async fn changes_since_with_and_without_neutron_timestamps() {
    scenario(true, 1).await;
    scenario(false, 2).await;
}
