//! Findings' lifecycle through the real agent: a host that goes dark makes its findings stale, not
//! resolved, and they come back confirmed (one occurrence) when it answers again; a configuration
//! exception acknowledges a finding until its date, and one already past does not; a finding that
//! goes away resolves after `resolve_after` passes.

use crate::util::{wait_for, write_config, Agent, Listener};
use serde_json::Value;
use std::process::Command;
use std::time::Duration;

/// The agent's findings of one host (from `GET /api/v1/findings`).
fn findings_of(agent: &Agent, host: &str) -> Vec<Value> {
    let v = agent.json("/api/v1/findings?limit=1000");
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array in {v}"))
        .iter()
        .filter(|f| f["host"] == host)
        .cloned()
        .collect()
}

/// Wait for the one finding of `kind` on `host` to satisfy `pred`.
fn wait_finding(
    agent: &Agent,
    host: &str,
    kind: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    wait_for(what, Duration::from_secs(60), || {
        findings_of(agent, host)
            .into_iter()
            .find(|f| f["kind"] == kind && pred(f))
    })
}

/// A DROP rule for one loopback address (the host "goes dark": no answer, not even a reset),
/// removed when dropped. `None` where iptables cannot be used (not root, no netfilter).
struct Dark {
    address: &'static str,
}

impl Dark {
    fn new(address: &'static str) -> Option<Dark> {
        let out = Command::new("iptables")
            .args(["-w", "-I", "OUTPUT", "-d", address, "-j", "DROP"])
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Dark { address }),
            Ok(o) => {
                eprintln!(
                    "SKIPPING the dark-host part: iptables failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPING the dark-host part: cannot run iptables: {e}");
                None
            }
        }
    }
}

impl Drop for Dark {
    fn drop(&mut self) {
        let _ = Command::new("iptables")
            .args(["-w", "-D", "OUTPUT", "-d", self.address, "-j", "DROP"])
            .status();
    }
}

/// Passes the agent has finished, from its scan runs.
fn passes(agent: &Agent) -> usize {
    agent.json("/api/v1/scans?limit=100")["scans"]
        .as_array()
        .map_or(0, |runs| {
            runs.iter()
                .filter(|r| r["stage"] == "discovery" && r["outcome"] == "success")
                .count()
        })
}

fn wait_passes(agent: &Agent, more: usize) {
    let start = passes(agent);
    wait_for("more discovery passes", Duration::from_secs(60), || {
        (passes(agent) >= start + more).then_some(())
    });
}

#[test]
fn a_dark_host_goes_stale_and_a_closed_port_resolves_after_two_passes() {
    let dir = tempfile::tempdir().unwrap();
    let dark_host = "127.88.0.1";
    let gone_host = "127.88.0.2";
    let _a = Listener::new("127.88.0.1:18801");
    let b = Listener::new("127.88.0.2:18802");
    let config = write_config(
        dir.path(),
        r#"
[schedule]
discovery = "1s"
jitter = "0s"

[[targets]]
name = "lab"
cidrs = ["127.88.0.1/32", "127.88.0.2/32"]
ports = "18801,18802,18803"

[policy]
expected = []

[scan.udp]
enabled = false
"#,
    );
    let agent = Agent::start(&config);
    let a = wait_finding(
        &agent,
        dark_host,
        "unexpected_port",
        "a confirmed finding on the first host",
        |f| f["state"] == "confirmed",
    );
    assert_eq!(a["key"], "tcp/18801");
    assert_eq!(a["severity"], "high");
    let b_id = wait_finding(
        &agent,
        gone_host,
        "unexpected_port",
        "a confirmed finding on the second host",
        |f| f["state"] == "confirmed",
    )["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The second host's port closes (the address still answers with resets): missed once, then
    // resolved after the second pass without it.
    drop(b);
    let resolved = wait_finding(
        &agent,
        gone_host,
        "unexpected_port",
        "the closed port's finding to resolve",
        |f| f["state"] == "resolved",
    );
    assert_eq!(resolved["id"], b_id.as_str());
    assert!(resolved["missed"].as_u64().unwrap_or(0) >= 2, "{resolved}");

    // The first host goes dark: stale, never resolved, however many passes.
    if let Some(dark) = Dark::new(dark_host) {
        let stale = wait_finding(
            &agent,
            dark_host,
            "unexpected_port",
            "the dark host's finding to go stale",
            |f| f["state"] == "stale",
        );
        assert!(stale["stale_since"].as_f64().is_some(), "{stale}");
        wait_passes(&agent, 3);
        let still = findings_of(&agent, dark_host);
        assert_eq!(still.len(), 1, "{still:?}");
        assert_eq!(still[0]["state"], "stale", "{still:?}");
        // It answers again with the port still open: confirmed, the same occurrence.
        drop(dark);
        let back = wait_finding(
            &agent,
            dark_host,
            "unexpected_port",
            "the finding to be confirmed again",
            |f| f["state"] == "confirmed",
        );
        assert_eq!(back["occurrence"], 1, "{back}");
        assert_eq!(back["id"], a["id"]);
    }
    agent.stop();
}

#[test]
fn configuration_exceptions_acknowledge_until_their_date() {
    let dir = tempfile::tempdir().unwrap();
    let _l1 = Listener::new("127.88.1.1:18811");
    let _l2 = Listener::new("127.88.1.1:18812");
    let config = write_config(
        dir.path(),
        r#"
[schedule]
discovery = "1s"
jitter = "0s"

[[targets]]
name = "lab"
cidrs = ["127.88.1.1/32"]
ports = "18811,18812"

[policy]
expected = []

[[policy.exceptions]]
name = "legacy-app"
host = "127.88.1.1"
port = 18811
reason = "legacy app, firewall change CHG-1 pending"
expires = "2999-01-01"
owner = "team-a"

[[policy.exceptions]]
name = "lapsed"
host = "127.88.1.1"
port = 18812
reason = "was accepted until 2020"
expires = "2020-01-01"

[scan.udp]
enabled = false
"#,
    );
    let agent = Agent::start(&config);
    let acked = wait_finding(
        &agent,
        "127.88.1.1",
        "unexpected_port",
        "the excepted finding",
        |f| f["key"] == "tcp/18811" && f["state"] == "confirmed",
    );
    assert_eq!(acked["ack"]["source"], "config", "{acked}");
    assert_eq!(acked["ack"]["by"], "legacy-app");
    assert_eq!(acked["ack"]["owner"], "team-a");
    let lapsed = wait_finding(
        &agent,
        "127.88.1.1",
        "unexpected_port",
        "the lapsed exception's finding",
        |f| f["key"] == "tcp/18812" && f["state"] == "confirmed",
    );
    assert!(
        lapsed["ack"].is_null(),
        "an expired exception acknowledges nothing: {lapsed}"
    );
    // Only the unacknowledged one has a paging series.
    let metrics = agent.metrics();
    let series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("stinger_finding_confirmed_timestamp_seconds{"))
        .collect();
    assert!(
        series.iter().any(|l| l.contains("port=\"18812\"")),
        "{series:?}"
    );
    assert!(
        !series.iter().any(|l| l.contains("port=\"18811\"")),
        "{series:?}"
    );
    assert!(
        agent.log().contains("lapsed"),
        "the expired exception is named in the log"
    );
    agent.stop();
}

/// A cloud VM whose metadata declares every port expected: the declaration counts only where the
/// operator lets the VM's project self-declare.
#[test]
fn tenant_metadata_hides_nothing_unless_its_project_may_self_declare() {
    use crate::keystone_server::{keystone, keystone_call, register_region};
    use stinger_testsupport::fake_cloud::{Cloud, FakeCloud, FakeConfig, ServerSpec, TokenCheck};
    let _l = Listener::new("127.88.2.10:18820");
    let ks = keystone();
    let (st, projects) = keystone_call("GET", "/projects?name=admin", &Value::Null);
    assert_eq!(st, 200);
    let project = projects["projects"][0]["id"].as_str().unwrap().to_owned();
    let mut cloud = Cloud::empty().unwrap();
    let mut vm = ServerSpec::new(
        "0e7b1d6e-0000-4000-8000-000000008801",
        "tenant-vm",
        &project,
    )
    .fixed("private", "127.88.3.10".parse().unwrap())
    .floating("127.88.2.10".parse().unwrap());
    vm.metadata
        .insert("stinger_expected_ports".into(), "1-65535".into());
    cloud.add_server(vm).unwrap();
    let fake = FakeCloud::start(FakeConfig::new(
        "127.88.2.250".parse().unwrap(),
        cloud,
        TokenCheck::Keystone {
            url: ks.url.clone(),
        },
    ))
    .expect("start the fake cloud");
    let region = format!("TENANT-{}", std::process::id());
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
    let body = |self_declare: &str| {
        format!(
            "[schedule]\ndiscovery = \"1s\"\njitter = \"0s\"\n\
             [policy]\nexpected = []\n{self_declare}\n\
             [scan.udp]\nenabled = false\n\
             [[openstack]]\nname = \"cloud\"\ncloud = \"t\"\naddresses = \"floating\"\nports = \"18820\"\n\
             retries = 0\ntimeout = \"5s\"\n"
        )
    };
    let clouds_env = clouds.display().to_string();
    let env = [("OS_CLIENT_CONFIG_FILE", clouds_env.as_str())];
    // Default: tenants declare nothing.
    let config = write_config(dir.path(), &body(""));
    let agent = Agent::start_env(&config, &[], &env);
    let f = wait_for(
        "the unexpected port's finding",
        Duration::from_secs(60),
        || {
            let v = agent.json("/api/v1/findings?limit=1000");
            v["findings"]
                .as_array()?
                .iter()
                .find(|f| f["kind"] == "unexpected_port" && f["port"] == 18820)
                .cloned()
        },
    );
    assert_eq!(f["state"], "confirmed", "{f}");
    assert_eq!(f["rule"], "default", "{f}");
    assert_eq!(f["vm"]["vm_name"], "tenant-vm", "{f}");
    agent.stop();
    // The operator lets this project self-declare: the same port is expected, no finding stays.
    let config = write_config(
        dir.path(),
        &body(&format!("self_declare = [\"{project}\"]")),
    );
    let agent = Agent::start_env(&config, &[], &env);
    let f = wait_for("the finding to resolve", Duration::from_secs(60), || {
        let v = agent.json("/api/v1/findings?limit=1000");
        v["findings"]
            .as_array()?
            .iter()
            .find(|f| {
                f["kind"] == "unexpected_port" && f["port"] == 18820 && f["state"] == "resolved"
            })
            .cloned()
    });
    assert!(f["resolved_at"].as_f64().is_some(), "{f}");
    let vms = agent.json("/api/v1/vms");
    let rule = vms["vms"][0]["ports"][0]["rule"].as_str().unwrap_or("");
    assert!(rule.starts_with("metadata:"), "{vms}");
    agent.stop();
}
