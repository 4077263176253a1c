//! A port that answers every other scan pages once (issue 14). A loopback listener is bound during
//! the agent's odd passes and closed during its even ones, for six passes (the test watches
//! `/api/v1/scans` and switches it between passes), then stays closed. The agent confirms the
//! finding at the first pass (a re-probe) and resolves it only after `[findings] resolve_after`
//! (2) passes in a row without it, so through the flapping the finding stays one confirmed
//! finding and its alert one firing notification at the webhook of the module's Alertmanager —
//! and it resolves once the port stays closed for two passes. About 30 s (seven passes 4 s apart).

use super::stack::{self, AGENTS};
use crate::util::{wait_for, write_config, Agent, Listener};
use serde_json::Value;
use std::time::{Duration, Instant};

/// This test's agent (scraped by the module's Prometheus).
const AGENT: &str = AGENTS[1];
/// Where the flapping listener binds (127.0.83.0/24 belongs to this test).
const ADDRESS: &str = "127.0.83.10";
const PORT: &str = "8081";
/// The agent's discovery interval: longer than the fast rules' `for:` and `keep_firing_for:`
/// (2 s), so a finding missing for one pass would show at the webhook as a resolved alert.
const INTERVAL: Duration = Duration::from_secs(4);
/// Passes with the listener switched: bound in the odd ones, closed in the even ones.
const FLAPS: usize = 6;

/// How many discovery runs of the agent have succeeded; a failed one fails the test (it would
/// break the odd/even rhythm).
fn successes(agent: &Agent) -> usize {
    let scans = agent.json("/api/v1/scans");
    let list = scans["scans"].as_array().cloned().unwrap_or_default();
    let failed: Vec<&Value> = list
        .iter()
        .filter(|s| matches!(s["outcome"].as_str(), Some("failed" | "cancelled")))
        .collect();
    assert!(failed.is_empty(), "a scan did not succeed: {failed:#?}");
    list.iter().filter(|s| s["outcome"] == "success").count()
}

#[test]
fn a_listener_that_answers_every_other_pass_pages_once() {
    let started = Instant::now();
    let stack = stack::shared();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[[targets]]
name = "flap"
cidrs = ["{ADDRESS}/32"]
ports = "{PORT}"

[schedule]
discovery = "{}s"
jitter = "0s"

[scan.udp]
enabled = false

[policy]
expected = ["22/tcp"]
"#,
            INTERVAL.as_secs()
        ),
    );
    super::listen_on(&config, AGENT);
    let mark = stack.mark();
    let bind = || Listener::new(&format!("{ADDRESS}:{PORT}"));
    // Pass 1 (right at start) finds the port open.
    let mut listener = Some(bind());
    let agent = Agent::start(&config);
    assert_eq!(agent.addr, AGENT);
    for pass in 1..=FLAPS + 1 {
        wait_for(
            &format!("scan pass {pass} of the flapping agent"),
            INTERVAL * 3 + Duration::from_secs(10),
            || (successes(&agent) >= pass).then_some(()),
        );
        // The next pass: bound if odd and still flapping, else closed.
        let next = pass + 1;
        if let Some(l) = listener.take() {
            assert!(
                l.accepts() > 0,
                "pass {pass} did not connect to the listener"
            );
        }
        if next % 2 == 1 && next <= FLAPS {
            listener = Some(bind());
        }
    }

    let on_port = [("instance", AGENT), ("address", ADDRESS), ("port", PORT)];
    let fired = stack.wait_note(
        mark,
        "StingerUnexpectedOpenPort",
        "firing",
        &on_port,
        Duration::from_secs(10),
    );
    let id = fired.label("id").to_owned();
    let f = super::finding_of(&fired, AGENT);
    assert_eq!(f["group"], "flap", "{f}");
    // Two closed passes in a row (FLAPS, FLAPS + 1): resolved.
    stack.wait_note(
        mark,
        "StingerUnexpectedOpenPort",
        "resolved",
        &[("instance", AGENT), ("id", &id)],
        Duration::from_secs(20),
    );
    // Notifications about this listener (the agent's own StingerDown while it started is
    // another matter).
    let notes: Vec<String> = stack
        .notes_since(mark, &[("instance", AGENT), ("address", ADDRESS)])
        .iter()
        .map(|n| format!("{} {} {}", n.status, n.name(), n.label("id")))
        .collect();
    assert_eq!(
        notes,
        [
            format!("firing StingerUnexpectedOpenPort {id}"),
            format!("resolved StingerUnexpectedOpenPort {id}"),
        ],
        "across {FLAPS} flapping passes the finding must page once, and resolve once"
    );
    // The agent's side: one occurrence, confirmed once, resolved after the flapping.
    let v = agent.json(&format!("/api/v1/findings/{id}"));
    let f = &v["finding"];
    assert_eq!(f["state"], "resolved", "{v}");
    assert_eq!(f["occurrence"], 1, "{v}");
    let confirmed = f["history"]
        .as_array()
        .map_or(0, |h| h.iter().filter(|e| e["kind"] == "confirmed").count());
    assert_eq!(confirmed, 1, "{v}");
    eprintln!(
        "flapping test: {:.0}s, {} passes",
        started.elapsed().as_secs_f64(),
        FLAPS + 1
    );
}
