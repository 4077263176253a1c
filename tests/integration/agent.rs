//! The agent end to end: real listeners on loopback → native scan → policy → RocksDB → /metrics and the
//! JSON API; restarts, SIGKILL mid-scan, history between scans and SIGHUP reloads.

use crate::util::*;
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use stinger_testsupport::promtool;

/// Open ports per host id, with (verdict, rule), from /api/v1/vms.
fn ports(vms: &Value) -> BTreeMap<String, Vec<(u64, String, String)>> {
    vms["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let ports = v["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["port"].as_u64().unwrap(),
                        p["verdict"].as_str().unwrap().to_string(),
                        p["rule"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (v["id"].as_str().unwrap().to_string(), ports)
        })
        .collect()
}

fn ids(v: &Value) -> Vec<String> {
    v["vms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

const POLICY: &str = r#"
[policy]
expected = ["20001"]

[[policy.rules]]
name = "db"
cidrs = ["127.0.60.2/32"]
allow = ["20003"]
"#;

#[test]
fn scan_judge_store_expose_end_to_end_and_restart() {
    let _a1 = Listener::new("127.0.60.1:20001");
    let _a2 = Listener::new("127.0.60.1:20002");
    let _b3 = Listener::new("127.0.60.2:20003");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[targets]]\nname = \"t\"\ncidrs = [\"127.0.60.0/29\"]\nports = \"20000-20010\"\n\
             [schedule]\ndiscovery = \"1h\"\njitter = \"0s\"\n{POLICY}"
        ),
    );
    let agent = Agent::start(&config);
    assert_eq!(agent.get("/-/ready").0, 200);
    assert_eq!(agent.get("/-/healthy").0, 200);
    let scans = agent.wait_successes(1);
    let run = &scans["scans"][0];
    assert_eq!(run["targets"], 8);
    assert_eq!(run["probes"]["open"], 3);
    assert_eq!(run["probes"]["closed"], 85, "8 hosts × 11 ports, 3 open");
    assert_eq!(run["unexpected_ports"], 1);

    // Found ports are exactly the listeners; verdicts name their rule.
    let vms = agent.json("/api/v1/vms");
    let expected: BTreeMap<String, Vec<(u64, String, String)>> = [
        (
            "127.0.60.1".to_string(),
            vec![
                (20001, "expected".into(), "global".into()),
                (20002, "unexpected".into(), "default".into()),
            ],
        ),
        (
            "127.0.60.2".to_string(),
            vec![(20003, "expected".into(), "db".into())],
        ),
    ]
    .into();
    assert_eq!(ports(&vms), expected);

    // /metrics: values, promtool, and OpenMetrics by negotiation.
    let m = agent.metrics();
    let g = "group=\"t\"";
    assert_eq!(
        sample(
            &m,
            &format!("stinger_host_unexpected_ports{{host=\"127.0.60.1\",{g}}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            &format!("stinger_host_open_ports{{host=\"127.0.60.2\",{g}}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "stinger_open_port_info{host=\"127.0.60.2\",address=\"127.0.60.2\",group=\"t\",protocol=\"tcp\",port=\"20003\",expected=\"true\",rule=\"db\",service=\"\",product=\"\",version=\"\",world=\"unknown\"}"),
        Some(1.0)
    );
    assert_eq!(sample(&m, &format!("stinger_targets{{{g}}}")), Some(8.0));
    assert_eq!(
        sample(&m, &format!("stinger_targets_scanned{{{g}}}")),
        Some(8.0)
    );
    assert_eq!(
        sample(&m, "stinger_scan_run_success{stage=\"discovery\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "stinger_scan_probes_total{result=\"open\"}"),
        Some(3.0)
    );
    assert_eq!(
        sample(&m, "stinger_scan_interval_seconds{stage=\"discovery\"}"),
        Some(3600.0)
    );
    assert_eq!(sample(&m, "stinger_state_hosts"), Some(2.0));
    assert!(
        sample(
            &m,
            "stinger_scan_last_success_timestamp_seconds{stage=\"discovery\"}"
        )
        .unwrap()
            > 1.7e9
    );
    assert!(m.contains("stinger_scan_duration_seconds_bucket{"), "{m}");
    assert!(
        !m.contains("# EOF"),
        "the default is the Prometheus text format"
    );
    promtool::check_metrics(&m).unwrap();
    let (_, head, om) = http_get(
        &agent.addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3"),
    );
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.ends_with("# EOF\n"));
    let (_, head, _) = http_get(&agent.addr, "/metrics", None);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );

    // API filters and paging.
    assert_eq!(
        ids(&agent.json("/api/v1/vms?unexpected=true")),
        ["127.0.60.1"]
    );
    assert_eq!(
        ids(&agent.json("/api/v1/vms?unexpected=false")),
        ["127.0.60.2"]
    );
    assert_eq!(ids(&agent.json("/api/v1/vms?port=20003")), ["127.0.60.2"]);
    assert_eq!(
        ids(&agent.json("/api/v1/vms?cidr=127.0.60.2/32")),
        ["127.0.60.2"]
    );
    assert_eq!(
        ids(&agent.json("/api/v1/vms?cidr=127.0.61.0/24")),
        Vec::<String>::new()
    );
    assert!(ids(&agent.json("/api/v1/vms?project=demo")).is_empty());
    assert!(ids(&agent.json("/api/v1/vms?min_cvss=5")).is_empty());
    assert!(ids(&agent.json("/api/v1/vms?cve=CVE-2023-38408")).is_empty());
    let page1 = agent.json("/api/v1/vms?limit=1");
    assert_eq!(ids(&page1), ["127.0.60.1"]);
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2 = agent.json(&format!("/api/v1/vms?limit=1&cursor={cursor}"));
    assert_eq!(ids(&page2), ["127.0.60.2"]);
    assert!(page2["next_cursor"].is_null());

    // One host in full, with its history.
    let one = agent.json("/api/v1/vms/127.0.60.1");
    assert_eq!(one["vm"]["unexpected_ports"], 1);
    let kinds: Vec<&str> = one["recent_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "port_opened").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&"host_appeared"));
    assert_eq!(agent.get("/api/v1/vms/127.0.60.7").0, 404);
    let id = run["id"].as_u64().unwrap();
    assert_eq!(
        agent.json(&format!("/api/v1/scans/{id}"))["scan"]["outcome"],
        "success"
    );
    assert_eq!(agent.get("/api/v1/scans/999").0, 404);

    // Bad query strings: 400 with the parameter and the accepted form.
    for (path, param) in [
        ("/api/v1/vms?port=70000", "port"),
        ("/api/v1/vms?port=http", "port"),
        ("/api/v1/vms?cidr=10.0.0.0/33", "cidr"),
        ("/api/v1/vms?unexpected=maybe", "unexpected"),
        ("/api/v1/vms?min_cvss=11", "min_cvss"),
        ("/api/v1/vms?cve=heartbleed", "cve"),
        ("/api/v1/vms?limit=0", "limit"),
        ("/api/v1/vms?colour=red", "colour"),
        ("/api/v1/vms?port=1&port=2", "port"),
        ("/api/v1/changes?since=yesterday", "since"),
        ("/api/v1/changes?kind=exploded", "kind"),
        ("/api/v1/scans?before=x", "before"),
        ("/api/v1/scans/abc", "id"),
    ] {
        let (status, body) = agent.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["parameter"], param, "{path}: {body}");
        assert!(!v["expected"].as_str().unwrap().is_empty());
    }

    // Every metric the shipped alerts and dashboards use exists in this exposition (but the
    // stinger_email_* series, which exist only with [email] on: tests/integration/email.rs).
    let mut names = std::collections::BTreeSet::new();
    for f in [
        "alerts/stinger.rules.yml",
        "dashboards/stinger-overview.json",
        "dashboards/stinger-vm.json",
    ] {
        let text = std::fs::read_to_string(repo().join(f)).unwrap();
        let mut rest = text.as_str();
        while let Some(i) = rest.find("stinger_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let base = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(base.to_string());
            rest = &tail[end..];
        }
    }
    assert!(names.len() > 10, "{names:?}");
    for n in names.iter().filter(|n| !n.starts_with("stinger_email")) {
        assert!(
            m.contains(&format!("# TYPE {n} ")),
            "{n} is used by alerts/ or dashboards/ but not exported"
        );
    }

    // Restart: the last known state is served at once, before any new scan.
    assert!(agent.stop().success());
    let again = Agent::start(&config);
    assert_eq!(ports(&again.json("/api/v1/vms")), expected);
    let m = again.metrics();
    assert_eq!(
        sample(
            &m,
            &format!("stinger_host_unexpected_ports{{host=\"127.0.60.1\",{g}}}")
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, &format!("stinger_targets_scanned{{{g}}}")),
        Some(8.0),
        "recent scan still counts"
    );
    assert_eq!(
        again.json("/api/v1/scans")["scans"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "no new scan"
    );
}

#[test]
fn history_records_ports_that_close_and_open_between_scans() {
    let _keep = Listener::new("127.0.61.1:20001");
    let closing = Listener::new("127.0.61.1:20002");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[targets]]\nname = \"h\"\ncidrs = [\"127.0.61.0/30\"]\nports = \"20000-20005\"\n\
         [schedule]\ndiscovery = \"1s\"\njitter = \"0s\"\n[policy]\nexpected = [\"20001\"]\n",
    );
    let agent = Agent::start(&config);
    agent.wait_successes(1);
    drop(closing);
    let _opened = Listener::new("127.0.61.1:20004");
    let changes = |q: &str| -> Vec<(String, u64)> {
        agent.json(&format!("/api/v1/changes?{q}"))["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    e["port"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    wait_for(
        "port 20002 closed and 20004 opened",
        Duration::from_secs(30),
        || {
            let c = changes("vm=127.0.61.1");
            (c.contains(&("port_closed".into(), 20002))
                && c.contains(&("port_opened".into(), 20004)))
            .then_some(())
        },
    );
    assert_eq!(
        changes("kind=port_closed"),
        [("port_closed".to_string(), 20002)]
    );
    assert_eq!(changes("kind=host_appeared").len(), 1);
    let all = changes("vm=127.0.61.1");
    assert_eq!(
        all.iter().filter(|(k, _)| k == "port_opened").count(),
        3,
        "20001, 20002, then 20004: {all:?}"
    );
    assert!(changes("vm=127.0.61.2").is_empty());
    // Time windows and paging.
    assert!(
        changes("until=1000000000").is_empty(),
        "nothing before 2001"
    );
    let page = agent.json("/api/v1/changes?limit=1");
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a full page has a cursor");
    let next = agent.json(&format!("/api/v1/changes?limit=1&cursor={cursor}"));
    assert_ne!(page["changes"][0], next["changes"][0]);
    // The host stays in the state with the new port set.
    let vms = ports(&agent.json("/api/v1/vms"));
    assert_eq!(
        vms["127.0.61.1"].iter().map(|p| p.0).collect::<Vec<_>>(),
        [20001, 20004]
    );
}

#[test]
fn sigkill_in_the_middle_of_a_scan_loses_no_committed_state() {
    let _l = Listener::new("127.0.62.1:20001");
    let dir = tempfile::tempdir().unwrap();
    let fast = "[[targets]]\nname = \"k\"\ncidrs = [\"127.0.62.0/30\"]\nports = \"20000-20005\"\n\
                [schedule]\ndiscovery = \"1h\"\njitter = \"0s\"\n[policy]\nexpected = [\"20001\"]\n";
    let config = write_config(dir.path(), fast);
    let first = Agent::start(&config);
    first.wait_successes(1);
    assert!(first.stop().success());

    // A slow scan (rate-limited over all ports), started at once because the interval is short.
    let slow = fast
        .replace("20000-20005", "1-65535")
        .replace("\"1h\"", "\"1s\"")
        + "[scan.tcp]\nmax_rate = 500\n";
    write_config(dir.path(), &slow);
    let second = Agent::start(&config);
    wait_for(
        "the slow scan to be under way",
        Duration::from_secs(30),
        || {
            let m = second.metrics();
            (sample(&m, "stinger_scan_in_progress{stage=\"discovery\"}") == Some(1.0)
                && sample(&m, "stinger_scan_progress_ratio{stage=\"discovery\"}")? > 0.0)
                .then_some(())
        },
    );
    second.kill();

    write_config(dir.path(), fast);
    let third = Agent::start(&config);
    let vms = ports(&third.json("/api/v1/vms"));
    assert_eq!(
        vms["127.0.62.1"],
        [(20001, "expected".to_string(), "global".to_string())]
    );
    let scans = third.json("/api/v1/scans");
    let outcomes: Vec<&str> = scans["scans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["interrupted", "success"]);
    assert!(third.log().contains("marked interrupted"));
}

#[test]
fn sighup_reloads_the_policy_and_a_bad_reload_keeps_the_old_one() {
    let _l = Listener::new("127.0.63.1:20002");
    let dir = tempfile::tempdir().unwrap();
    let base = "[[targets]]\nname = \"r\"\ncidrs = [\"127.0.63.1\"]\nports = \"20000-20003\"\n\
                [schedule]\ndiscovery = \"1h\"\njitter = \"0s\"\n";
    let config = write_config(
        dir.path(),
        &format!("{base}[policy]\nexpected = [\"20001\"]\n"),
    );
    let agent = Agent::start(&config);
    agent.wait_successes(1);
    assert_eq!(
        ids(&agent.json("/api/v1/vms?unexpected=true")),
        ["127.0.63.1"]
    );

    write_config(
        dir.path(),
        &format!("{base}[[policy.rules]]\nname = \"cache\"\ncidrs = [\"127.0.63.0/24\"]\nallow = [\"20002\"]\n"),
    );
    agent.signal("HUP");
    wait_for("the new verdict", Duration::from_secs(20), || {
        ids(&agent.json("/api/v1/vms?unexpected=true"))
            .is_empty()
            .then_some(())
    });
    let v = agent.json("/api/v1/vms/127.0.63.1");
    assert_eq!(v["vm"]["ports"][0]["rule"], "cache");
    let changes = agent.json("/api/v1/changes?kind=verdict_changed");
    assert_eq!(changes["changes"][0]["port"], 20002);

    std::fs::write(&config, "[[targets]\nthis is not toml").unwrap();
    agent.signal("HUP");
    wait_for(
        "the failed reload to be logged",
        Duration::from_secs(20),
        || {
            agent
                .log()
                .contains("configuration reload failed")
                .then_some(())
        },
    );
    assert_eq!(agent.get("/-/healthy").0, 200);
    assert_eq!(
        agent.json("/api/v1/vms/127.0.63.1")["vm"]["ports"][0]["rule"],
        "cache"
    );
    assert!(agent.stop().success());
}

#[test]
fn a_second_agent_on_the_same_store_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[targets]]\nname = \"l\"\ncidrs = [\"127.0.65.1\"]\nports = \"20000\"\n",
    );
    let _first = Agent::start(&config);
    let out = std::process::Command::new(bin())
        .arg("--config.file")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the store") && err.contains("another stinger process"),
        "{err}"
    );
}

#[test]
fn sigterm_stops_a_running_scan_promptly_and_records_it_cancelled() {
    let _l = Listener::new("127.0.66.1:20001");
    let dir = tempfile::tempdir().unwrap();
    // Rate-limited over every port: minutes of work unless cancelled.
    let config = write_config(
        dir.path(),
        "[[targets]]\nname = \"c\"\ncidrs = [\"127.0.66.0/30\"]\nports = \"1-65535\"\n\
         [schedule]\ndiscovery = \"1h\"\njitter = \"0s\"\n[scan.tcp]\nmax_rate = 500\n",
    );
    let agent = Agent::start(&config);
    wait_for("the scan to be under way", Duration::from_secs(30), || {
        let m = agent.metrics();
        (sample(&m, "stinger_scan_in_progress{stage=\"discovery\"}") == Some(1.0)
            && sample(&m, "stinger_scan_progress_ratio{stage=\"discovery\"}")? > 0.0)
            .then_some(())
    });
    let started = std::time::Instant::now();
    assert!(agent.stop().success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        started.elapsed()
    );
    let again = Agent::start(&config);
    let first = again.json("/api/v1/scans/1");
    assert_eq!(first["scan"]["outcome"], "cancelled", "{first}");
    assert!(
        first["scan"]["probes"]["closed"].as_u64().unwrap() > 0,
        "work done before the stop is counted"
    );
    assert!(
        again.json("/api/v1/vms")["vms"]
            .as_array()
            .unwrap()
            .is_empty(),
        "a cancelled scan commits no hosts"
    );
    // With no success on record, the restarted agent scans again at once.
    wait_for("a new scan to start", Duration::from_secs(20), || {
        (sample(
            &again.metrics(),
            "stinger_scan_in_progress{stage=\"discovery\"}",
        ) == Some(1.0))
        .then_some(())
    });
}

#[test]
fn an_unusable_storage_path_is_a_clear_start_up_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-directory");
    std::fs::write(&file, "x").unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!(
            "[[targets]]\nname = \"s\"\ncidrs = [\"127.0.67.1\"]\n[storage]\npath = \"{}\"\n[web]\nlisten_address = \"127.0.0.1:0\"\n",
            file.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(bin())
        .arg("--config.file")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the store") && err.contains("not-a-directory"),
        "{err}"
    );
}

#[test]
fn the_landing_page_links_every_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[targets]]\nname = \"p\"\ncidrs = [\"127.0.68.1\"]\nports = \"20000\"\n",
    );
    let agent = Agent::start(&config);
    let (status, page) = agent.get("/");
    assert_eq!(status, 200);
    for link in [
        "/metrics",
        "/api/v1/vms",
        "/api/v1/scans",
        "/api/v1/changes",
        "/-/healthy",
        "/-/ready",
        "/api/v1/openapi.yaml",
    ] {
        assert!(
            page.contains(&format!("href=\"{link}")),
            "{link} missing from {page}"
        );
    }
    let (status, spec) = agent.get("/api/v1/openapi.yaml");
    assert_eq!(status, 200);
    assert!(spec.contains("/api/v1/changes"));
    let (status, body) = agent.get("/no/such/thing");
    assert_eq!(status, 404);
    assert!(body.contains("error"));
}
