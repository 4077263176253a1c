//! Exposure found from the cloud's own change feed, within a poll and a targeted pass, not at the
//! next full pass: a floating IP associated with a VM that listens is a confirmed finding seconds
//! later, marked `trigger: change` with its latency from the cloud's `updated_at` (and in
//! `stinger_detection_latency_seconds`); a deleted VM's host leaves the state and its finding
//! resolves; no full pass runs meanwhile. Addresses: floating IPs 127.97.0.1-2, the cloud's API
//! on 127.97.0.250.

use crate::keystone_server::{keystone, keystone_call, register_region};
use crate::util::{wait_for, write_config, Agent, Listener};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use stinger_testsupport::fake_cloud::{Cloud, FakeCloud, FakeConfig, ServerSpec, TokenCheck};

const PORT: u16 = 19601;
const WEB: &str = "6c0a0000-0000-4000-8000-000000000001";
const DB: &str = "6c0a0000-0000-4000-8000-000000000002";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The findings on hosts of `vm`.
fn findings_of(agent: &Agent, vm: &str) -> Vec<Value> {
    let v = agent.json("/api/v1/findings?limit=1000");
    v["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter(|f| f["host"].as_str().is_some_and(|h| h.starts_with(vm)))
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_floating_ip_associated_is_a_finding_within_seconds_and_a_deleted_vm_resolves() {
    let _web = Listener::new(&format!("127.97.0.1:{PORT}"));
    let _db = Listener::new(&format!("127.97.0.2:{PORT}"));
    let ks = keystone();
    let (st, projects) = keystone_call("GET", "/projects?name=admin", &Value::Null);
    assert_eq!(st, 200);
    let project = projects["projects"][0]["id"].as_str().unwrap().to_owned();
    let mut cloud = Cloud::empty().unwrap();
    cloud
        .add_server(
            ServerSpec::new(WEB, "web", &project)
                .fixed("private", "127.97.1.1".parse().unwrap())
                .floating("127.97.0.1".parse().unwrap()),
        )
        .unwrap();
    // The database VM has no floating IP yet: nothing of it is scanned.
    cloud
        .add_server(
            ServerSpec::new(DB, "db", &project).fixed("private", "127.97.1.2".parse().unwrap()),
        )
        .unwrap();
    let fake = FakeCloud::start(FakeConfig::new(
        "127.97.0.250".parse().unwrap(),
        cloud,
        TokenCheck::Keystone {
            url: ks.url.clone(),
        },
    ))
    .expect("start the fake cloud");
    let region = format!("CHANGES-{}", std::process::id());
    register_region(&region, &fake.compute_url(), &fake.network_url());
    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  t:\n    region_name: {region}\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n",
            ks.url
        ),
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[schedule]\ndiscovery = \"1h\"\njitter = \"0s\"\n\
             [policy]\nexpected = []\n\
             [scan.udp]\nenabled = false\n\
             [[openstack]]\nname = \"cloud\"\ncloud = \"t\"\naddresses = \"floating\"\nports = \"{PORT}\"\n\
             retries = 0\ntimeout = \"5s\"\npoll_interval = \"1s\"\ndiagnostics = false\n"
        ),
    );
    let clouds_env = clouds.display().to_string();
    let agent = Agent::start_env(
        &config,
        &[],
        &[("OS_CLIENT_CONFIG_FILE", clouds_env.as_str())],
    );
    // The full pass: web's finding, found by it.
    let web = wait_for("web's finding", Duration::from_secs(60), || {
        findings_of(&agent, WEB)
            .into_iter()
            .find(|f| f["state"] == "confirmed")
    });
    assert_eq!(web["trigger"], "full_pass", "{web}");
    assert!(web.get("detection_latency").is_none(), "{web}");
    assert!(findings_of(&agent, DB).is_empty());

    // db gets a floating IP: the cloud stamps the change now.
    let changed_at = unix_now();
    fake.with_cloud(|c| {
        c.set_clock(changed_at);
        c.associate_floating_ip(DB, "127.97.0.2".parse().unwrap())
    })
    .expect("the fake cloud")
    .expect("associate");
    let db = wait_for(
        "db's finding from the change feed",
        Duration::from_secs(30),
        || {
            findings_of(&agent, DB)
                .into_iter()
                .find(|f| f["state"] == "confirmed")
        },
    );
    assert_eq!(db["trigger"], "change", "{db}");
    assert_eq!(db["address"], "127.97.0.2", "{db}");
    let latency = db["detection_latency"].as_f64().expect("a latency");
    let bound = (unix_now() - changed_at + 2) as f64;
    assert!(
        latency >= 0.0 && latency <= bound,
        "{latency} > {bound}: {}",
        agent.log()
    );
    let m = agent.metrics();
    assert!(
        m.contains("stinger_detection_latency_seconds_count{trigger=\"change\"} 1"),
        "{m}"
    );

    // web is deleted: its host leaves, its finding resolves, still without a full pass.
    fake.with_cloud(|c| {
        c.set_clock(unix_now());
        c.remove_server(WEB)
    })
    .expect("the fake cloud");
    wait_for("web's finding to resolve", Duration::from_secs(30), || {
        findings_of(&agent, WEB)
            .into_iter()
            .find(|f| f["state"] == "resolved")
    });
    let runs = agent.json("/api/v1/scans?limit=100");
    let runs = runs["scans"].as_array().expect("scans");
    let full = runs.iter().filter(|r| r["trigger"] == "full_pass").count();
    let change = runs.iter().filter(|r| r["trigger"] == "change").count();
    assert_eq!(full, 1, "{runs:?}");
    assert!(change >= 2, "{runs:?}");
    let changes = agent.json(&format!("/api/v1/changes?vm={WEB}&limit=100"));
    let kinds: Vec<&str> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"vm_gone"), "{kinds:?}");
    assert!(kinds.contains(&"host_disappeared"), "{kinds:?}");
    agent.stop();
}
