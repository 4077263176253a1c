//! The shipped alerting rules, live: the real agent inventories a fake Nova + Neutron (tokens checked
//! by the real Keystone), scans loopback listeners and asks a fake gvmd for vulnerabilities; a real
//! Prometheus scrapes it (negotiating OpenMetrics, so Prometheus' own parser reads our exposition)
//! and evaluates a copy of `alerts/stinger.rules.yml` whose `for:` are seconds; a real Alertmanager
//! posts to a webhook here. Every paging alert is driven to firing by changing the world, arrives
//! with the VM, project, address and port it is about, and resolves when the world is put right.
//! At the end every expression of `dashboards/*.json` must return data from that Prometheus.
//!
//! One Prometheus, one Alertmanager, one agent (restarted once), one test walking the alerts in
//! sequence. Addresses: 127.0.80.0/24 (stack, agent, fake cloud), 127.0.81.10 (the VM's floating
//! address, with its listeners), 127.0.82.10 (its fixed address, scanned from the network's DHCP
//! namespace), 127.0.84.x (addresses nothing listens on).

mod dashboards;
mod gvmd_proxy;
mod stack;

use crate::fake_cloud::{
    Cloud, FakeCloud, FakeConfig, Fault, FaultKind, RuleSpec, SecurityGroupSpec, ServerSpec,
    Service, TokenCheck,
};
use crate::fake_gvmd::{FakeGvmd, Faults, PASSWORD, USER};
use crate::keystone_server::{keystone, keystone_call, register_region};
use crate::util::{http_request, wait_for, write_config, Agent, Listener};
use gvmd_proxy::GvmdProxy;
use serde_json::Value;
use stack::Stack;
use std::path::Path;
use std::time::{Duration, Instant};

/// The agent's fixed address (Prometheus' target survives the agent's restart).
const AGENT: &str = "127.0.80.2:19180";
const VM_ID: &str = "0e7b1d6e-0000-4000-8000-000000000080";
const VM_NAME: &str = "web-80";
const FLOATING: &str = "127.0.81.10";
const FIXED: &str = "127.0.82.10";
/// Bound of every wait for an alert: a scan (4 s apart), a scrape and an evaluation (1 s), `for:`
/// (2 s), Alertmanager (1 s), with room for a loaded CI machine.
const ALERT_LIMIT: Duration = Duration::from_secs(45);
/// The agent counts a group as scanned for its interval + jitter + the scan's duration + 60 s
/// after its last complete scan (state.rs), so a coverage gap opens a minute after scans stop.
const GAP_LIMIT: Duration = Duration::from_secs(110);

/// Whether this process may enter network namespaces (CAP_SYS_ADMIN): the coverage-gap part needs
/// the agent to scan the VM's fixed address from a namespace.
fn can_enter_namespaces() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|h| u64::from_str_radix(h.trim(), 16).ok())
        .is_some_and(|m| m & (1 << 21) != 0)
}

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
        ]),
    })
    .unwrap();
    let mut web = ServerSpec::new(VM_ID, VM_NAME, project)
        .fixed("private", FIXED.parse().unwrap())
        .floating(FLOATING.parse().unwrap());
    web.security_groups = vec!["web".into()];
    web.metadata
        .insert("stinger_expected_ports".into(), "2222/tcp".into());
    c.add_server(web).unwrap();
    c
}

/// The id of the fake cloud's network `private`, asked from its Neutron.
fn private_network(fake: &FakeCloud, token: &str) -> String {
    let (status, _, body) = http_request(
        &fake.network_addr().to_string(),
        "/v2.0/networks?name=private",
        &[("X-Auth-Token", token)],
    );
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(status, 200, "list networks: {body}");
    v["networks"]
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == "private"))
        .and_then(|n| n["id"].as_str())
        .unwrap_or_else(|| panic!("no network private: {body}"))
        .to_owned()
}

fn config(dir: &Path, socket: &Path, netns: Option<&Path>) -> std::path::PathBuf {
    let pw = dir.join("gmp-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let addresses = match netns {
        Some(d) => format!(
            "addresses = \"both\"\nnamespaces = true\nnamespace_dir = \"{}\"",
            d.display()
        ),
        None => "addresses = \"floating\"".into(),
    };
    let path = write_config(
        dir,
        &format!(
            r#"
[schedule]
discovery = "4s"
jitter = "0s"

[policy]
expected = ["22/tcp"]

[[openstack]]
name = "cloud"
cloud = "live"
{addresses}
ports = "2222,3306,8080"
scanner_source = "127.0.0.1"
retries = 0
timeout = "5s"

[scan.gmp]
enabled = true
socket = "{}"
username = "{USER}"
password_file = "{}"
interval = "2s"
poll_interval = "100ms"
retries = 0

[email]
enabled = true
smtp_server = "127.0.84.25:2525"
tls = "none"
to = ["ops@example.org"]
send_empty = true
"#,
            socket.display(),
            pw.display()
        ),
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let fixed = text.replace(
        "listen_address = \"127.0.0.1:0\"",
        &format!("listen_address = \"{AGENT}\""),
    );
    assert_ne!(text, fixed, "write_config's listen address changed");
    std::fs::write(&path, fixed).unwrap();
    path
}

#[test]
fn every_paging_alert_fires_and_resolves_through_prometheus_and_alertmanager() {
    let started = Instant::now();
    let t0 = stack::now();
    let ks = keystone();
    let (st, projects) = keystone_call("GET", "/projects?name=admin", &Value::Null);
    assert_eq!(st, 200);
    let project = projects["projects"][0]["id"].as_str().unwrap().to_owned();
    let fake = FakeCloud::start(FakeConfig::new(
        "127.0.80.5".parse().unwrap(),
        cloud(&project),
        TokenCheck::Keystone {
            url: ks.url.clone(),
        },
    ))
    .expect("start the fake cloud");
    register_region("LIVE", &fake.compute_url(), &fake.network_url());

    // The VM listens on its expected port only; Greenbone finds nothing worse than CVSS 5 on it.
    let _ssh = Listener::new(&format!("{FLOATING}:2222"));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let gvmd = rt.block_on(FakeGvmd::start(Faults {
        report_host: Some(FLOATING.into()),
        ..Faults::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let proxy = GvmdProxy::start(&dir.path().join("gvmd-proxy.sock"), &gvmd.socket);
    // The fixed address is probed from the network's DHCP namespace; here that "namespace" is the
    // agent's own (a link to /proc/self/ns/net), so it reaches the loopback address, until the
    // link goes away like a namespace that vanished from the node.
    let privileged = can_enter_namespaces();
    let netns_dir = dir.path().join("netns");
    std::fs::create_dir(&netns_dir).unwrap();
    let netns = privileged.then(|| {
        let ns = netns_dir.join(format!("qdhcp-{}", private_network(&fake, &ks.admin_token)));
        std::os::unix::fs::symlink("/proc/self/ns/net", &ns).unwrap();
        ns
    });
    if !privileged {
        eprintln!("no CAP_SYS_ADMIN: StingerCoverageGap (a namespace that vanished) is not driven");
    }
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  live:\n    region_name: LIVE\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n",
            ks.url
        ),
    )
    .unwrap();
    let config = config(
        dir.path(),
        &proxy.socket,
        privileged.then_some(netns_dir.as_path()),
    );
    let clouds_env = clouds.display().to_string();
    let env = [("OS_CLIENT_CONFIG_FILE", clouds_env.as_str())];
    let mut agent = Agent::start_env(&config, &[], &env);
    assert_eq!(agent.addr, AGENT);

    let stack = Stack::start(dir.path(), AGENT);
    wait_for(
        "Prometheus to scrape the VM's series",
        Duration::from_secs(60),
        || {
            let up = stack.query("up{job=\"stinger\"} == 1");
            let vm = stack.query(&format!("stinger_vm_info{{name=\"{VM_NAME}\"}}"));
            let host = stack.query(&format!(
                "stinger_host_open_ports{{host=~\"{VM_ID}/.*/{FLOATING}\"}} > 0"
            ));
            (!up.is_empty() && !vm.is_empty() && !host.is_empty()).then_some(())
        },
    );
    let quiet = stack.query("ALERTS{alertname=~\"StingerUnexpectedOpenPort|StingerWorldOpenUnexpectedPort|StingerSecurityGroupNotEnforced|StingerCriticalVulnerability|StingerInventoryDown|StingerDown\"}");
    assert!(
        quiet.is_empty(),
        "alerts before the world changed: {quiet:#?}"
    );
    let vm = [("vm", VM_NAME), ("project", "admin"), ("address", FLOATING)];

    // --- The agent goes away: StingerDown; it comes back: resolved.
    let mark = stack.mark();
    agent.stop();
    stack.wait_note(
        mark,
        "StingerDown",
        "firing",
        &[("instance", AGENT)],
        ALERT_LIMIT,
    );
    agent = Agent::start_env(&config, &[], &env);
    stack.wait_note(
        mark,
        "StingerDown",
        "resolved",
        &[("instance", AGENT)],
        ALERT_LIMIT,
    );

    // --- The fixed address's namespace vanishes: a coverage gap opens (a minute later, see
    // GAP_LIMIT); the rest of the walk happens meanwhile.
    let gap = netns.as_ref().map(|ns| {
        wait_for(
            "a complete scan of the cloud group by the restarted agent",
            Duration::from_secs(30),
            || {
                let r = stack.query(
                    "stinger_group_last_scan_timestamp_seconds{group=\"cloud\"} > 0 and on (instance, group) stinger_targets_scanned == stinger_targets",
                );
                (!r.is_empty()).then_some(())
            },
        );
        std::fs::remove_file(ns).unwrap();
        (Instant::now(), stack.mark())
    });

    // --- Two unexpected ports open on the VM: 3306, which a security-group rule opens to the
    // world, and 8080, which no rule admits the scanner to. Greenbone's report turns critical.
    let mark = stack.mark();
    let db = Listener::new(&format!("{FLOATING}:3306"));
    let app = Listener::new(&format!("{FLOATING}:8080"));
    proxy.set_critical(true);
    let n = stack.wait_note(
        mark,
        "StingerUnexpectedOpenPort",
        "firing",
        &vm,
        ALERT_LIMIT,
    );
    let d = n.annotation("description");
    for p in ["3306", "8080"] {
        assert!(d.contains(&format!("{FLOATING}:{p}/tcp")), "{d}");
    }
    assert!(n.label("host").starts_with(VM_ID), "{n:?}");
    let n = stack.wait_note(
        mark,
        "StingerWorldOpenUnexpectedPort",
        "firing",
        &[vm[0], vm[1], vm[2], ("port", "3306")],
        ALERT_LIMIT,
    );
    assert!(
        n.annotation("description")
            .contains(&format!("VM {VM_NAME} of project admin")),
        "{n:?}"
    );
    let n = stack.wait_note(
        mark,
        "StingerSecurityGroupNotEnforced",
        "firing",
        &vm,
        ALERT_LIMIT,
    );
    let d = n.annotation("description");
    assert!(d.contains(&format!("{FLOATING}:8080/tcp")), "{d}");
    let n = stack.wait_note(
        mark,
        "StingerCriticalVulnerability",
        "firing",
        &vm,
        ALERT_LIMIT,
    );
    assert!(n.annotation("summary").contains("CVSS 9.8"), "{n:?}");
    let d = n.annotation("description");
    assert!(d.contains(&format!("{FLOATING}:2222/tcp")), "{d}");

    // --- The ports close, Greenbone's findings are back to CVSS 5: all four resolve. Nova fails
    // meanwhile: StingerInventoryDown (the last good inventory is still scanned).
    let mark = stack.mark();
    drop(db);
    drop(app);
    proxy.set_critical(false);
    fake.faults().set(Fault::sticky(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::Status(500),
    ));
    for name in [
        "StingerUnexpectedOpenPort",
        "StingerWorldOpenUnexpectedPort",
        "StingerSecurityGroupNotEnforced",
        "StingerCriticalVulnerability",
    ] {
        stack.wait_note(mark, name, "resolved", &vm, ALERT_LIMIT);
    }
    let source = [("source", "cloud")];
    stack.wait_note(mark, "StingerInventoryDown", "firing", &source, ALERT_LIMIT);
    let mark = stack.mark();
    fake.faults().clear();
    stack.wait_note(
        mark,
        "StingerInventoryDown",
        "resolved",
        &source,
        ALERT_LIMIT,
    );

    // --- gvmd cuts its reports short: the vulnerabilities stage fails, then goes stale
    // (2 intervals of 2 s); whole reports again: both resolve. (The agent retries a failed
    // Greenbone run one interval after its loop last woke up, and discovery wakes it: the
    // Greenbone interval must be shorter than the quiet time between discovery runs, or the
    // retry never comes.)
    let mark = stack.mark();
    gvmd.state().faults.truncate_report = true;
    let stage = [("stage", "vulnerabilities")];
    stack.wait_note(mark, "StingerScanFailing", "firing", &stage, ALERT_LIMIT);
    stack.wait_note(mark, "StingerScanStale", "firing", &stage, ALERT_LIMIT);
    let mark = stack.mark();
    gvmd.state().faults.truncate_report = false;
    stack.wait_note(mark, "StingerScanFailing", "resolved", &stage, ALERT_LIMIT);
    stack.wait_note(mark, "StingerScanStale", "resolved", &stage, ALERT_LIMIT);

    // --- The coverage gap, and its end when the namespace is back.
    if let (Some((since, mark)), Some(ns)) = (gap, &netns) {
        let group = [("group", "cloud")];
        let left = GAP_LIMIT.saturating_sub(since.elapsed());
        let n = stack.wait_note(mark, "StingerCoverageGap", "firing", &group, left);
        assert!(
            n.annotation("description").contains("last complete scan"),
            "{n:?}"
        );
        let mark = stack.mark();
        std::os::unix::fs::symlink("/proc/self/ns/net", ns).unwrap();
        stack.wait_note(mark, "StingerCoverageGap", "resolved", &group, ALERT_LIMIT);
    }

    // --- Every dashboard expression returns data from this Prometheus.
    let (empty, ran) = dashboards::check(&stack, t0);
    assert!(ran > 0, "no dashboard expression found");
    assert!(
        empty.is_empty(),
        "{} of {ran} dashboard expressions returned no data:\n{}",
        empty.len(),
        empty
            .iter()
            .map(|(f, p, q)| format!("{f} / {p}: {q}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    eprintln!(
        "live alerting test: {:.0}s, {ran} dashboard expressions",
        started.elapsed().as_secs_f64()
    );
    drop(agent);
}
