//! A host that answers every port (issue 17), through the real agent: 2 000 listeners on one
//! loopback address, scanned on exactly those ports, make one `answers_everything` finding, one
//! event and no per-port records, findings or series; when all but three close, the finding
//! resolves and the three are judged one by one; `scan --once` shows it as one row and exits 1.
//! Addresses: 127.0.140.1 (the "tarpit") and 127.0.140.2 (an ordinary host beside it).

use crate::util::{bin, sample, wait_for, write_config, Agent, Listener};
use serde_json::Value;
use std::net::TcpListener;
use std::time::Duration;
use stinger_testsupport::promtool;

const TARPIT: &str = "127.0.140.1";
const PLAIN: &str = "127.0.140.2";
const FIRST: u16 = 20_000;
const LAST: u16 = 21_999;
/// The ports still listening after the tarpit stops.
const KEPT: [u16; 3] = [20_000, 20_500, 21_999];

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

/// The kinds of the host's changes, sorted (one pass's events share a time).
fn changes_of(agent: &Agent, host: &str) -> Vec<String> {
    let v = agent.json(&format!("/api/v1/changes?vm={host}&limit=1000"));
    let mut kinds: Vec<String> = v["changes"]
        .as_array()
        .unwrap_or_else(|| panic!("no changes array in {v}"))
        .iter()
        .map(|c| c["kind"].as_str().unwrap_or("?").to_string())
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn a_host_answering_every_port_is_one_finding_until_it_stops() {
    // 2 000 listening sockets in this process: more than a default soft limit of 1 024 allows.
    let fds = stinger::scan::raise_nofile_limit();
    if fds < 2_500 {
        eprintln!("SKIPPING tarpit test: the open-file limit is {fds} (hard limit), 2 500 needed");
        return;
    }
    let mut listeners: Vec<(u16, TcpListener)> = (FIRST..=LAST)
        .map(|p| {
            let l = TcpListener::bind((TARPIT, p)).unwrap_or_else(|e| panic!("bind {p}: {e}"));
            (p, l)
        })
        .collect();
    let _plain = Listener::new(&format!("{PLAIN}:{FIRST}"));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[schedule]
discovery = "1s"
jitter = "0s"

[[targets]]
name = "lab"
cidrs = ["{TARPIT}/32", "{PLAIN}/32"]
ports = "{FIRST}-{LAST}"

[policy]
expected = []

[scan.udp]
enabled = false
"#
        ),
    );
    let agent = Agent::start(&config);
    let tarpit = wait_for(
        "a confirmed answers_everything finding",
        Duration::from_secs(30),
        || {
            findings_of(&agent, TARPIT)
                .into_iter()
                .find(|f| f["kind"] == "answers_everything" && f["state"] == "confirmed")
        },
    );
    assert_eq!(tarpit["severity"], "high", "{tarpit}");
    assert!(
        tarpit["evidence"]
            .as_str()
            .unwrap_or("")
            .starts_with("2000 of 2000 TCP ports"),
        "{tarpit}"
    );
    // One finding on the tarpit, none a port; the plain host beside it is judged port by port.
    assert_eq!(findings_of(&agent, TARPIT).len(), 1);
    let plain = wait_for("the plain host's finding", Duration::from_secs(30), || {
        findings_of(&agent, PLAIN)
            .into_iter()
            .find(|f| f["state"] == "confirmed")
    });
    assert_eq!(
        (&plain["kind"], &plain["key"]),
        (&Value::from("unexpected_port"), &Value::from("tcp/20000"))
    );
    // One record without port entries, one event.
    let host = agent.json(&format!("/api/v1/vms/{TARPIT}"));
    assert_eq!(host["vm"]["answers_everything"]["open"], 2000, "{host}");
    assert_eq!(host["vm"]["ports"], Value::Array(vec![]), "{host}");
    assert_eq!(
        changes_of(&agent, TARPIT),
        ["answers_everything_started", "host_appeared"]
    );
    // Metrics: a count, no per-port series for it, and promtool is content.
    let m = agent.metrics();
    assert_eq!(
        sample(&m, "stinger_hosts_answering_everything{group=\"lab\"}"),
        Some(1.0),
        "{m}"
    );
    let tarpit_series = m
        .lines()
        .filter(|l| l.starts_with("stinger_open_port_info") && l.contains(TARPIT))
        .count();
    assert_eq!(tarpit_series, 0, "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("stinger_open_port_info") && l.contains(PLAIN)),
        "{m}"
    );
    promtool::check_metrics(&m).unwrap();
    // `scan --once`: one host with the counts, no port rows, and exit 1 (not "all expected").
    let once = std::process::Command::new(bin())
        .arg("--config.file")
        .arg(&config)
        .args(["scan", "--once", "--target", TARPIT, "--output", "json"])
        .args(["--ports", &format!("{FIRST}-{LAST}")])
        .output()
        .expect("run stinger scan --once");
    let doc: Value = serde_json::from_slice(&once.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&once.stderr)));
    assert_eq!(once.status.code(), Some(1), "{doc}");
    assert_eq!(doc["hosts"][0]["answers_everything"]["open"], 2000, "{doc}");
    assert_eq!(doc["hosts"][0]["ports"], Value::Array(vec![]), "{doc}");

    // All but three stop listening: the finding resolves and the three are judged one by one.
    listeners.retain(|(p, _)| KEPT.contains(p));
    let resolved = wait_for(
        "the tarpit finding to resolve",
        Duration::from_secs(30),
        || {
            findings_of(&agent, TARPIT)
                .into_iter()
                .find(|f| f["kind"] == "answers_everything" && f["state"] == "resolved")
        },
    );
    assert_eq!(resolved["id"], tarpit["id"]);
    let ports = wait_for(
        "three confirmed port findings",
        Duration::from_secs(30),
        || {
            let mut keys: Vec<String> = findings_of(&agent, TARPIT)
                .into_iter()
                .filter(|f| f["kind"] == "unexpected_port" && f["state"] == "confirmed")
                .filter_map(|f| f["key"].as_str().map(str::to_string))
                .collect();
            keys.sort();
            (keys.len() == 3).then_some(keys)
        },
    );
    assert_eq!(ports, ["tcp/20000", "tcp/20500", "tcp/21999"]);
    // No port_closed for the 1 997 that closed: they were never port records.
    assert_eq!(
        changes_of(&agent, TARPIT),
        [
            "answers_everything_started",
            "answers_everything_stopped",
            "host_appeared",
            "port_opened",
            "port_opened",
            "port_opened"
        ]
    );
    let m = agent.metrics();
    assert_eq!(
        sample(&m, "stinger_hosts_answering_everything{group=\"lab\"}"),
        Some(0.0),
        "{m}"
    );
    promtool::check_metrics(&m).unwrap();
    drop(listeners);
}
