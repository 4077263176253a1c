//! The whole OpenStack path through the real agent: a real Keystone (its catalog pointing at a fake
//! Nova + Neutron that validate every token against that Keystone), VMs whose floating addresses are
//! 127.0.100.x listeners, and the agent's inventory → scan → judge → store → expose. Also: a vanished
//! server is recorded as gone, a failing Nova leaves the last good inventory served, and no secret
//! reaches the log or the API.

use crate::keystone_server::{keystone, keystone_call, register_region};
use crate::util::{sample, wait_for, write_config, Agent, Listener};
use serde_json::Value;
use std::time::Duration;
use stinger_testsupport::fake_cloud::{
    Cloud, FakeCloud, FakeConfig, Fault, FaultKind, RuleSpec, SecurityGroupSpec, ServerSpec,
    Service, TokenCheck,
};

const WEB: &str = "0e7b1d6e-0000-4000-8000-000000000001";
const DB: &str = "0e7b1d6e-0000-4000-8000-000000000002";
const OFF: &str = "0e7b1d6e-0000-4000-8000-000000000003";

fn cloud(project: &str) -> Cloud {
    let mut c = Cloud::empty().expect("fake cloud templates");
    c.add_security_group(SecurityGroupSpec {
        id: None,
        name: "web".into(),
        project_id: project.into(),
        stateful: true,
        rules: Some(vec![
            RuleSpec::ingress_tcp(2222, 2222, "0.0.0.0/0"),
            RuleSpec::ingress_tcp(3306, 3306, "0.0.0.0/0"),
            RuleSpec::ingress_tcp(5432, 5432, "0.0.0.0/0"),
        ]),
    })
    .unwrap();
    let mut web = ServerSpec::new(WEB, "web-1", project)
        .fixed("private", "127.0.101.10".parse().unwrap())
        .floating("127.0.100.10".parse().unwrap());
    web.security_groups = vec!["web".into()];
    web.metadata
        .insert("stinger_expected_ports".into(), "2222/tcp".into());
    c.add_server(web).unwrap();
    let db = ServerSpec::new(DB, "db-1", project)
        .fixed("private", "127.0.101.11".parse().unwrap())
        .floating("127.0.100.11".parse().unwrap());
    c.add_server(db).unwrap();
    let mut off = ServerSpec::new(OFF, "off-1", project)
        .fixed("private", "127.0.101.12".parse().unwrap())
        .floating("127.0.100.12".parse().unwrap());
    off.status = "SHUTOFF".into();
    c.add_server(off).unwrap();
    c
}

fn port(host: &Value, n: u64) -> &Value {
    host["ports"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["port"] == n))
        .unwrap_or_else(|| panic!("port {n} not in {host}"))
}

#[test]
fn cloud_vms_are_inventoried_scanned_judged_and_exposed() {
    let ks = keystone();
    // Listeners on the VMs' floating addresses (and on the SHUTOFF one, which must not be probed).
    let web_ssh = Listener::new("127.0.100.10:2222");
    let web_db = Listener::new("127.0.100.10:3306");
    let web_app = Listener::new("127.0.100.10:8080");
    let db_pg = Listener::new("127.0.100.11:5432");
    let off = Listener::new("127.0.100.12:2222");

    let (st, projects) = keystone_call("GET", "/projects?name=admin", &Value::Null);
    assert_eq!(st, 200);
    let admin_project = projects["projects"][0]["id"].as_str().unwrap().to_owned();
    let fake = FakeCloud::start(FakeConfig::new(
        "127.0.100.1".parse().unwrap(),
        cloud(&admin_project),
        TokenCheck::Keystone {
            url: ks.url.clone(),
        },
    ))
    .expect("start the fake cloud");
    register_region("E2E", &fake.compute_url(), &fake.network_url());

    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  e2e:\n    region_name: E2E\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n",
            ks.url
        ),
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        r#"
[schedule]
discovery = "2s"
jitter = "0s"

[policy]
expected = ["22/tcp"]
self_declare = ["*"]

[[openstack]]
name = "cloud"
cloud = "e2e"
addresses = "floating"
ports = "2222,3306,5432,8080"
scanner_source = "127.0.0.1"
retries = 0
timeout = "5s"
"#,
    );
    let clouds_env = clouds.display().to_string();
    let agent = Agent::start_env(&config, &[], &[("OS_CLIENT_CONFIG_FILE", &clouds_env)]);
    agent.wait_successes(1);

    // The VM in full: names from Keystone, diagnostics from Nova, ports judged with their rules.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let vm = loop {
        let (status, body) = agent.get(&format!("/api/v1/vms/{WEB}"));
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if status == 200 && v["hosts"].as_array().is_some_and(|h| !h.is_empty()) {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no web VM with a scanned host after 30s; last answer HTTP {status}: {body}\nagent log:\n{}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let text = vm.to_string();
    assert!(text.contains("web-1"), "{vm}");
    assert!(
        text.contains("\"project_name\":\"admin\""),
        "project name from Keystone: {vm}"
    );
    assert!(vm.to_string().contains("cpu_seconds"), "diagnostics: {vm}");
    let host = &vm["hosts"][0];
    assert_eq!(host["address"], "127.0.100.10");
    assert!(
        host["id"].as_str().unwrap().starts_with(&format!("{WEB}/")),
        "host keyed by instance and port: {}",
        host["id"]
    );
    let p2222 = port(host, 2222);
    assert_eq!(p2222["verdict"], "expected");
    assert_eq!(p2222["rule"], "metadata:stinger_expected_ports");
    let p3306 = port(host, 3306);
    assert_eq!(p3306["verdict"], "unexpected");
    assert!(p3306["world"].is_object(), "3306 is world-open: {p3306}");
    let p8080 = port(host, 8080);
    assert!(p8080["world"].is_null(), "no rule opens 8080: {p8080}");
    let exposure = &host["exposure"];
    assert!(
        exposure["waiting"].to_string().contains("5432"),
        "5432 is open to the world with nothing listening: {exposure}"
    );
    assert!(
        exposure["unfiltered"].to_string().contains("8080"),
        "8080 answers though no rule admits the scanner: {exposure}"
    );
    // The digest names the VM, its project and its user, as the nightly mail did.
    let digest = agent.json("/api/v1/digest?since=0");
    let entry = digest["confirmed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["address"] == "127.0.100.10" && e["port"] == 3306 && e["kind"] == "unexpected_port"
        })
        .unwrap_or_else(|| panic!("web-1's unexpected 3306 is in the digest: {digest}"));
    assert_eq!(entry["vm"]["name"], "web-1", "{entry}");
    assert_eq!(entry["vm"]["project"], "admin", "{entry}");
    // The fake servers' user id is unknown to Keystone: the id stands in for the name.
    assert_eq!(entry["vm"]["user"], "fake", "{entry}");
    assert!(
        entry["api"]
            .as_str()
            .is_some_and(|a| a.starts_with("/api/v1/findings/")),
        "{entry}"
    );
    // The SHUTOFF VM is inventoried, not scanned.
    assert_eq!(off.accepts(), 0, "a SHUTOFF VM's address was probed");
    assert!(web_ssh.accepts() > 0 && web_db.accepts() > 0 && web_app.accepts() > 0);
    assert!(db_pg.accepts() > 0);
    // Tokens were checked against the real Keystone.
    assert!(fake.keystone_validations() > 0);

    // /metrics: the VM's info series and the inventory's health.
    let m = agent.metrics();
    assert!(
        m.lines()
            .any(|l| l.starts_with("stinger_vm_info{") && l.contains("web-1")),
        "no stinger_vm_info for web-1"
    );
    assert_eq!(
        sample(&m, "stinger_inventory_up{source=\"cloud\"}"),
        Some(1.0)
    );

    // A server that vanished is recorded as gone.
    fake.with_cloud(|c| assert!(c.remove_server(DB)));
    wait_for("a vm_gone event", Duration::from_secs(40), || {
        let v = agent.json("/api/v1/changes?kind=vm_gone");
        v.to_string().contains(DB).then_some(())
    });

    // Nova fails: the inventory is down, the last good VMs are still served.
    fake.faults().set(Fault::sticky(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::Status(500),
    ));
    wait_for("the inventory to be down", Duration::from_secs(60), || {
        let m = agent.metrics();
        (sample(&m, "stinger_inventory_up{source=\"cloud\"}") == Some(0.0)).then_some(())
    });
    let (status, body) = agent.get(&format!("/api/v1/vms/{WEB}"));
    assert_eq!(status, 200, "the last good VM is still served: {body}");
    let log = agent.log();
    assert!(
        log.contains("OpenStack inventory failed") && log.contains("HTTP 500"),
        "the failure is logged with its cause"
    );

    // No secret anywhere: not the password, not a token.
    for secret in ["secret", &ks.admin_token] {
        assert!(
            !log.contains(&format!("={secret}")) && !log.contains(&format!("\"{secret}\"")),
            "a secret is in the log"
        );
        assert!(!agent.get("/api/v1/vms").1.contains(secret));
    }
    drop(agent);
}
