//! On-demand scans through the real binary: `POST /api/v1/scans` needs a user, refuses targets
//! outside the agent's inventory by name, answers 202 at once, and the targeted pass finds a port
//! opened since the last full pass (confirmed, while the other hosts and ports keep their state);
//! a pass over a few ports keeps the host's other open ports; requests beyond
//! `[scan.targeted] max_per_minute` get 429 with Retry-After.

use crate::findings_api::{basic, send};
use crate::util::{wait_for, write_config, Agent, Listener};
use serde_json::{json, Value};
use std::time::Duration;

const NET: &str = "127.95.0";
const PASSWORD: &str = "correct horse";

/// Wait until the scan `id` has finished; its JSON answer.
fn finished(agent: &Agent, auth: &str, id: u64) -> Value {
    wait_for(
        &format!("on-demand scan {id} to finish"),
        Duration::from_secs(60),
        || {
            let (status, v) = send(
                &agent.addr,
                "GET",
                &format!("/api/v1/scans/{id}"),
                Some(auth),
                None,
            );
            assert_eq!(status, 200, "{v}");
            let outcome = v["scan"]["outcome"].as_str()?.to_owned();
            (outcome != "queued" && outcome != "running").then_some(v)
        },
    )
}

fn open_ports(scan: &Value, host: &str) -> Vec<u64> {
    scan["hosts"]
        .as_array()
        .and_then(|hs| hs.iter().find(|h| h["id"] == host))
        .and_then(|h| h["ports"].as_array())
        .map(|ps| ps.iter().filter_map(|p| p["port"].as_u64()).collect())
        .unwrap_or_default()
}

#[test]
fn an_on_demand_scan_finds_a_new_port_within_its_targets_only() {
    let _first = Listener::new(&format!("{NET}.1:19501"));
    let _other = Listener::new(&format!("{NET}.2:19501"));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[schedule]
discovery = "1h"
jitter = "0s"

[[targets]]
name = "lab"
cidrs = ["{NET}.0/29"]
ports = "19501-19503"

[policy]
expected = []

[scan.udp]
enabled = false

[scan.targeted]
max_per_minute = 3
"#
        ),
    );
    let users = dir.path().join("users.yml");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(&users, format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
    let alice = basic("alice", PASSWORD);
    let agent = Agent::start_with(&config, &["--web.config.file", users.to_str().unwrap()]);
    let auth = Some(alice.as_str());
    // The first full pass: two hosts with 19501.
    wait_for("the first pass", Duration::from_secs(60), || {
        let (_, v) = send(&agent.addr, "GET", "/api/v1/vms", auth, None);
        (v["vms"].as_array()?.len() == 2).then_some(())
    });

    // No user, no scan; unknown targets are refused by name; a bad body names the field.
    let ask = |targets: &[&str], ports: Option<&str>| {
        let mut body = json!({ "targets": targets });
        if let Some(p) = ports {
            body["ports"] = json!(p);
        }
        send(&agent.addr, "POST", "/api/v1/scans", auth, Some(&body))
    };
    let body = json!({ "targets": [format!("{NET}.1")] });
    assert_eq!(
        send(&agent.addr, "POST", "/api/v1/scans", None, Some(&body)).0,
        401
    );
    let (status, v) = ask(&["127.96.0.1"], None);
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["target"], "127.96.0.1", "{v}");
    let (status, v) = ask(&[&format!("{NET}.1")], Some("70000"));
    assert_eq!(
        (status, v["parameter"].as_str()),
        (400, Some("ports")),
        "{v}"
    );

    // A port opens on .1 after the pass; nothing will look before the next pass in an hour but
    // the scan we ask for, of .1 only.
    let _new = Listener::new(&format!("{NET}.1:19502"));
    let _unasked = Listener::new(&format!("{NET}.2:19503"));
    let (status, v) = ask(&[&format!("{NET}.1")], None);
    assert_eq!(status, 202, "{v}");
    let id = v["id"].as_u64().expect("a scan id");
    let scan = finished(&agent, &alice, id);
    assert_eq!(scan["scan"]["outcome"], "success", "{scan}");
    assert_eq!(scan["scan"]["stage"], "targeted", "{scan}");
    assert_eq!(scan["scan"]["request"]["by"], "alice", "{scan}");
    assert_eq!(open_ports(&scan, &format!("{NET}.1")), [19501, 19502]);
    // Its finding is confirmed (re-probed within the pass), and .2 was not scanned.
    let (_, f) = send(
        &agent.addr,
        "GET",
        "/api/v1/findings?state=confirmed",
        auth,
        None,
    );
    let keys: Vec<(String, String)> = f["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["host"].as_str().unwrap_or("").to_owned(),
                f["key"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        keys.contains(&(format!("{NET}.1"), "tcp/19502".into())),
        "{keys:?}"
    );
    assert!(
        !keys.iter().any(|k| k.1 == "tcp/19503"),
        "the unasked host was scanned: {keys:?}"
    );
    let (_, h2) = send(
        &agent.addr,
        "GET",
        &format!("/api/v1/vms/{NET}.2"),
        auth,
        None,
    );
    assert_eq!(h2["unexpected"].as_array().map(Vec::len), Some(1), "{h2}");

    // A pass over one port of .2 finds 19503 and keeps 19501, which it did not probe.
    let (status, v) = ask(&[&format!("{NET}.0/30")], Some("19503"));
    assert_eq!(status, 202, "{v}");
    let scan = finished(&agent, &alice, v["id"].as_u64().unwrap());
    assert_eq!(scan["scan"]["outcome"], "success", "{scan}");
    assert_eq!(open_ports(&scan, &format!("{NET}.2")), [19501, 19503]);
    assert_eq!(open_ports(&scan, &format!("{NET}.1")), [19501, 19502]);

    // Three requests a minute: the fourth waits.
    let (status, v) = ask(&[&format!("{NET}.1")], Some("19501"));
    assert_eq!(status, 202, "{v}");
    let (status, v) = ask(&[&format!("{NET}.2")], Some("19501"));
    assert_eq!(status, 429, "{v}");
    assert!(
        v["retry_after"].as_u64().is_some_and(|s| s > 0 && s <= 60),
        "{v}"
    );
    let log = agent.stop_with_log().1;
    assert!(log.contains("on-demand scan started"), "{log}");
}
