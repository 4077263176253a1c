//! The shipped alerting rules, live: the real agent inventories a fake Nova + Neutron (tokens checked
//! by the real Keystone), scans loopback listeners and asks a fake gvmd for vulnerabilities; a real
//! Prometheus scrapes it (negotiating OpenMetrics, so Prometheus' own parser reads our exposition)
//! and evaluates a copy of `alerts/stinger.rules.yml` whose `for:` are seconds; a real Alertmanager
//! posts to a webhook here. Every paging alert is driven to firing by changing the world, arrives
//! with what it is about — for a finding: its id, VM, project, address and port, and an `api_url`
//! that answers with that finding — and resolves when the world is put right. At the end every
//! expression of `dashboards/*.json` must return data from that Prometheus. `flapping.rs` shows
//! that a port answering every other scan pages once.
//!
//! One Prometheus and one Alertmanager for the module (`stack::shared`), one agent per test (this
//! one restarted once), each test walking its alerts in sequence. Addresses: 127.0.80.0/24 (stack,
//! agents, fake cloud), 127.0.81.10 (the VM's floating address, with its listeners), 127.0.82.10
//! (its fixed address, scanned from the network's DHCP namespace), 127.0.83.10 (the flapping
//! listener), 127.0.84.x (addresses nothing listens on).

mod dashboards;
mod flapping;
mod gvmd_proxy;
mod stack;

use crate::keystone_server::{keystone, keystone_call, register_region};
use crate::util::{http_get, http_request, wait_for, write_config, Agent, Listener};
use gvmd_proxy::GvmdProxy;
use serde_json::Value;
use stack::Note;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use stinger_testsupport::fake_cloud::{
    Cloud, FakeCloud, FakeConfig, Fault, FaultKind, RuleSpec, SecurityGroupSpec, ServerSpec,
    Service, TokenCheck,
};
use stinger_testsupport::fake_gvmd::{FakeGvmd, Faults, PASSWORD, USER};

/// The agent's fixed address (Prometheus' target survives the agent's restart).
const AGENT: &str = stack::AGENTS[0];
const VM_ID: &str = "0e7b1d6e-0000-4000-8000-000000000080";
const VM_NAME: &str = "web-80";
const FLOATING: &str = "127.0.81.10";
const FIXED: &str = "127.0.82.10";
/// Bound of every wait for an alert: two scans (4 s apart: a finding resolves after two passes
/// without it; a target is overdue after two intervals), a scrape and an evaluation (1 s), `for:`
/// and `keep_firing_for:` (2 s each), Alertmanager (1 s), with room for a loaded CI machine.
const ALERT_LIMIT: Duration = Duration::from_secs(45);
/// The finding alerts (labels `id`, `kind`, `address`, `vm`, `project`, … and `api_url`).
const FINDING_ALERTS: [&str; 5] = [
    "StingerUnexpectedOpenPort",
    "StingerWorldOpenUnexpectedPort",
    "StingerUdpAmplifier",
    "StingerCriticalVulnerability",
    "StingerSecurityGroupNotEnforced",
];

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

fn config(dir: &Path, socket: &Path, netns: Option<&Path>) -> PathBuf {
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
self_declare = ["*"]

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
    listen_on(&path, AGENT);
    path
}

/// Pins the agent of a config made by `write_config` to `addr`, an address Prometheus scrapes.
fn listen_on(config: &Path, addr: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let fixed = text.replace(
        "listen_address = \"127.0.0.1:0\"",
        &format!("listen_address = \"{addr}\""),
    );
    assert_ne!(text, fixed, "write_config's listen address changed");
    std::fs::write(config, fixed).unwrap();
}

/// The finding a finding alert is about, through its `api_url` (which must be the agent's
/// `/api/v1/findings/{id}`): the alert's labels must be the finding's.
fn finding_of(n: &Note, agent: &str) -> Value {
    let id = n.label("id");
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{n:?}"
    );
    let path = format!("/api/v1/findings/{id}");
    assert_eq!(
        n.annotation("api_url"),
        format!("http://{agent}{path}"),
        "{n:?}"
    );
    let (status, _, body) = http_get(agent, &path, None);
    assert_eq!(status, 200, "GET {path}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let f = &v["finding"];
    assert_eq!(f["id"], id, "{body}");
    for (label, field) in [("kind", "kind"), ("host", "host"), ("address", "address")] {
        assert_eq!(f[field], n.label(label), "{label}: {n:?}\n{body}");
    }
    assert_eq!(f["severity"], n.label("finding_severity"), "{n:?}\n{body}");
    f.clone()
}

/// Waits for every finding alert of `agent` that fired since `mark` to resolve.
fn wait_findings_resolved(stack: &stack::Stack, mark: usize, agent: &str, limit: Duration) {
    let fired = stack.notes_since(mark, &[("instance", agent)]);
    let mut ids: Vec<(String, String)> = fired
        .iter()
        .filter(|n| n.status == "firing" && FINDING_ALERTS.contains(&n.name()))
        .map(|n| (n.name().to_owned(), n.label("id").to_owned()))
        .collect();
    ids.sort();
    ids.dedup();
    let start = Instant::now();
    for (name, id) in &ids {
        let left = limit.saturating_sub(start.elapsed());
        stack.wait_note(
            mark,
            name,
            "resolved",
            &[("instance", agent), ("id", id)],
            left,
        );
    }
}

#[test]
fn every_paging_alert_fires_and_resolves_through_prometheus_and_alertmanager() {
    let started = Instant::now();
    let t0 = stack::now();
    let stack = stack::shared();
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

    wait_for(
        "Prometheus to scrape the VM's series",
        Duration::from_secs(60),
        || {
            let up = stack.query(&format!("up{{job=\"stinger\",instance=\"{AGENT}\"}} == 1"));
            let vm = stack.query(&format!("stinger_vm_info{{name=\"{VM_NAME}\"}}"));
            let host = stack.query(&format!(
                "stinger_host_open_ports{{host=~\"{VM_ID}/.*/{FLOATING}\"}} > 0"
            ));
            (!up.is_empty() && !vm.is_empty() && !host.is_empty()).then_some(())
        },
    );
    let quiet = stack.query(&format!(
        "ALERTS{{instance=\"{AGENT}\",alertname=~\"{}|StingerInventoryDown|StingerDown|StingerCoverageGap\"}}",
        FINDING_ALERTS.join("|")
    ));
    assert!(
        quiet.is_empty(),
        "alerts before the world changed: {quiet:#?}"
    );
    let on_vm = [
        ("instance", AGENT),
        ("vm", VM_NAME),
        ("project", "admin"),
        ("address", FLOATING),
    ];

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

    // --- Two unexpected ports open on the VM: 3306, which a security-group rule opens to the
    // world, and 8080, which no rule admits the scanner to. Greenbone's report turns critical.
    // Each is a finding, confirmed by a re-probe, and pages on its own with its labels.
    let mark = stack.mark();
    let db = Listener::new(&format!("{FLOATING}:3306"));
    let app = Listener::new(&format!("{FLOATING}:8080"));
    proxy.set_critical(true);
    for (name, port, kind, severity) in [
        (
            "StingerUnexpectedOpenPort",
            "8080",
            "unexpected_port",
            "high",
        ),
        (
            "StingerWorldOpenUnexpectedPort",
            "3306",
            "unexpected_port",
            "critical",
        ),
        (
            "StingerSecurityGroupNotEnforced",
            "8080",
            "sg_not_enforced",
            "high",
        ),
        (
            "StingerCriticalVulnerability",
            "",
            "vulnerability",
            "critical",
        ),
    ] {
        let mut labels = on_vm.to_vec();
        labels.extend([("kind", kind), ("finding_severity", severity)]);
        if !port.is_empty() {
            labels.extend([("port", port), ("protocol", "tcp")]);
        }
        let n = stack.wait_note(mark, name, "firing", &labels, ALERT_LIMIT);
        assert!(n.label("host").starts_with(VM_ID), "{n:?}");
        let f = finding_of(&n, AGENT);
        assert_eq!(f["state"], "confirmed", "{f}");
        assert!(
            n.annotation("description")
                .contains(&format!("VM {VM_NAME} of project admin")),
            "{n:?}"
        );
        if kind == "vulnerability" {
            assert!(!n.label("cve").is_empty(), "{n:?}");
            assert_eq!(f["cve"], n.label("cve"), "{f}");
        }
    }

    // --- The ports close, Greenbone's findings are back to CVSS 5: every finding alert resolves
    // (two scans without the ports; the vulnerabilities drop below critical). Nova fails
    // meanwhile: StingerInventoryDown (the last good inventory is still scanned).
    let resolving = stack.mark();
    drop(db);
    drop(app);
    proxy.set_critical(false);
    fake.faults().set(Fault::sticky(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::Status(500),
    ));
    wait_findings_resolved(&stack, mark, AGENT, ALERT_LIMIT);
    let source = [("instance", AGENT), ("source", "cloud")];
    stack.wait_note(
        resolving,
        "StingerInventoryDown",
        "firing",
        &source,
        ALERT_LIMIT,
    );
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
    let stage = [("instance", AGENT), ("stage", "vulnerabilities")];
    stack.wait_note(mark, "StingerScanFailing", "firing", &stage, ALERT_LIMIT);
    stack.wait_note(mark, "StingerScanStale", "firing", &stage, ALERT_LIMIT);
    let mark = stack.mark();
    gvmd.state().faults.truncate_report = false;
    stack.wait_note(mark, "StingerScanFailing", "resolved", &stage, ALERT_LIMIT);
    stack.wait_note(mark, "StingerScanStale", "resolved", &stage, ALERT_LIMIT);

    // --- The fixed address's namespace vanishes: its target is no longer scanned, and two
    // intervals later it is overdue (a coverage gap of one target in a group that is otherwise
    // scanned); the namespace comes back: the gap closes.
    if let Some(ns) = &netns {
        let mark = stack.mark();
        std::fs::remove_file(ns).unwrap();
        let group = [("instance", AGENT), ("group", "cloud")];
        let n = stack.wait_note(mark, "StingerCoverageGap", "firing", &group, ALERT_LIMIT);
        assert!(
            n.annotation("description")
                .starts_with("1 target(s) of group cloud"),
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
