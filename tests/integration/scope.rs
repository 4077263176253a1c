//! `[scope]` through the real agent: a CIDR group and a cloud (the real Keystone, the fake Nova and
//! Neutron) name addresses inside and outside it — the global exclusion, outside `allow`, and
//! addresses no API should hand a scanner (unspecified, multicast, broadcast). Only
//! the in-scope listeners are ever connected to, every stage included (TCP, UDP, nmap); the
//! out-of-scope hosts never reach the state, and the drops are counted by group and reason. (Which
//! special addresses a cloud may not name is unit-tested in `inventory::scope`.)

use crate::keystone_server::{keystone, keystone_call, register_region};
use crate::util::{wait_for, write_config, Agent, Listener};
use serde_json::Value;
use std::time::Duration;
use stinger_testsupport::fake_cloud::{Cloud, FakeCloud, FakeConfig, ServerSpec, TokenCheck};

fn vm(id: u8, floating: &str, project: &str) -> ServerSpec {
    ServerSpec::new(
        &format!("0e7b1d6e-0000-4000-8000-0000000009{id:02}"),
        &format!("scope-{id}"),
        project,
    )
    .fixed("private", format!("127.0.97.{id}").parse().unwrap())
    .floating(floating.parse().unwrap())
}

#[test]
fn nothing_outside_the_scope_is_ever_probed_by_any_stage() {
    // In scope: one CIDR host, one cloud VM.
    let cidr_in = Listener::new("127.0.95.1:20810");
    let cloud_in = Listener::new("127.0.95.2:20810");
    // Listed by the group, but excluded globally / outside allow.
    let cidr_excluded = Listener::new("127.0.95.3:20810");
    let cidr_outside = Listener::new("127.0.96.1:20810");
    // Named by the cloud, but excluded globally / outside allow.
    let cloud_excluded = Listener::new("127.0.95.4:20810");
    let cloud_outside = Listener::new("127.0.96.2:20810");

    let ks = keystone();
    let (st, projects) = keystone_call("GET", "/projects?name=admin", &Value::Null);
    assert_eq!(st, 200);
    let project = projects["projects"][0]["id"].as_str().unwrap().to_owned();
    let mut cloud = Cloud::empty().unwrap();
    for (id, floating) in [
        (2, "127.0.95.2"),
        (4, "127.0.95.4"),
        (5, "127.0.96.2"),
        (6, "0.0.0.0"),
        (7, "224.0.0.251"),
        (9, "255.255.255.255"),
    ] {
        cloud.add_server(vm(id, floating, &project)).unwrap();
    }
    let fake = FakeCloud::start(FakeConfig::new(
        "127.0.95.250".parse().unwrap(),
        cloud,
        TokenCheck::Keystone {
            url: ks.url.clone(),
        },
    ))
    .expect("start the fake cloud");
    let region = format!("SCOPE-{}", std::process::id());
    register_region(&region, &fake.compute_url(), &fake.network_url());

    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  scope:\n    region_name: {region}\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n",
            ks.url
        ),
    )
    .unwrap();
    // Only loopback addresses are ever in scope here; the special ones the cloud names (0.0.0.0,
    // multicast, broadcast) are refused before any stage, and would fail locally even if tried —
    // this test names no address a mistake could send a packet to outside 127.0.0.0/8.
    let config = write_config(
        dir.path(),
        "[scope]\nallow = [\"127.0.95.0/24\"]\nexclude = [\"127.0.95.3\", \"127.0.95.4\"]\n\
         [schedule]\ndiscovery = \"2s\"\njitter = \"0s\"\n\
         [[targets]]\nname = \"lan\"\ncidrs = [\"127.0.95.1\", \"127.0.95.3\", \"127.0.96.1\"]\nports = \"20810\"\n\
         [scan.nmap]\nenabled = true\nbatch_timeout = \"60s\"\n\
         [[openstack]]\nname = \"cloud\"\ncloud = \"scope\"\naddresses = \"floating\"\nports = \"20810\"\n\
         scanner_source = \"127.0.0.1\"\nretries = 0\ntimeout = \"5s\"\n",
    );
    let clouds_env = clouds.display().to_string();
    let agent = Agent::start_env(&config, &[], &[("OS_CLIENT_CONFIG_FILE", &clouds_env)]);
    agent.wait_successes(2);
    wait_for(
        "nmap on the in-scope hosts",
        Duration::from_secs(60),
        || {
            let v = agent.json("/api/v1/vms");
            let hosts = v["vms"].as_array()?.clone();
            let done =
                hosts.len() == 2 && hosts.iter().all(|h| h["ports"][0]["service"].is_object());
            done.then_some(())
        },
    );

    let v = agent.json("/api/v1/vms");
    let mut addresses: Vec<&str> = v["vms"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["address"].as_str())
        .collect();
    addresses.sort();
    assert_eq!(addresses, ["127.0.95.1", "127.0.95.2"], "{v}");
    assert!(cidr_in.accepts() > 0 && cloud_in.accepts() > 0);
    for (l, what) in [
        (&cidr_excluded, "the group's address excluded by [scope]"),
        (&cidr_outside, "the group's address outside allow"),
        (&cloud_excluded, "the cloud's address excluded by [scope]"),
        (&cloud_outside, "the cloud's address outside allow"),
    ] {
        assert_eq!(l.accepts(), 0, "{what} was probed");
    }
    let m = agent.metrics();
    for (group, reason, n) in [
        ("lan", "excluded", 1),
        ("lan", "not_allowed", 1),
        ("cloud", "excluded", 1),
        ("cloud", "not_allowed", 4),
    ] {
        let series =
            format!("stinger_targets_out_of_scope{{group=\"{group}\",reason=\"{reason}\"}} {n}");
        assert!(m.contains(&series), "{series} in\n{m}");
    }
    let log = agent.log();
    assert!(
        log.contains("address outside [scope]") && log.contains("224.0.0.251"),
        "each dropped address is logged: {log}"
    );
    assert_eq!(
        log.matches("address=224.0.0.251").count(),
        1,
        "logged once, not on every pass"
    );
}
