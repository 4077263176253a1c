//! Greenbone through the real agent: discovery on a loopback listener → GMP against a fake gvmd (unix
//! socket) replaying the upstream 22.8 sample report, rewritten onto that host → store → /metrics and
//! the JSON API with the report's CVEs and CVSS.

use crate::util::*;
use std::time::Duration;
use stinger_testsupport::fake_gvmd::{FakeGvmd, Faults, PASSWORD, USER};

#[test]
fn greenbone_findings_reach_the_api_metrics_and_history() {
    let _web = Listener::new("127.0.73.1:8083");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeGvmd::start(Faults {
        report_host: Some("127.0.73.1".into()),
        ..Faults::default()
    }));
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("gmp-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[targets]]\nname = \"g\"\ncidrs = [\"127.0.73.1\"]\nports = \"8080-8090\"\n\
             [schedule]\ndiscovery = \"1h\"\njitter = \"0s\"\n\
             [scan.gmp]\nenabled = true\nsocket = \"{}\"\nusername = \"{USER}\"\n\
             password_file = \"{}\"\ninterval = \"1h\"\npoll_interval = \"100ms\"\n",
            fake.socket.display(),
            pw.display()
        ),
    );
    let agent = Agent::start(&config);
    let vm = wait_for("Greenbone's findings", Duration::from_secs(90), || {
        // 404 until discovery has found the host: keep waiting.
        let (status, body) = agent.get("/api/v1/vms/127.0.73.1");
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        (status == 200 && v["vm"]["max_cvss"].is_number()).then_some(v)
    });
    // Findings on the open port 8083 attach to it; those on ports that are not open stay host-wide.
    let port = &vm["vm"]["ports"][0];
    assert_eq!(port["port"], 8083);
    let on_port = port["vulns"].as_array().unwrap();
    assert!(!on_port.is_empty(), "{vm}");
    assert!(on_port.iter().all(|v| v["source"] == "greenbone"));
    let max = vm["vm"]["max_cvss"].as_f64().unwrap();
    assert!(max > 0.0 && max <= 10.0);
    let log = agent.log();
    assert!(!log.contains(PASSWORD), "the GMP password reached the log");

    let m = agent.metrics();
    assert_eq!(
        sample(&m, "stinger_host_max_cvss{host=\"127.0.73.1\",group=\"g\"}"),
        Some(max)
    );
    let classes: f64 = ["critical", "high", "medium", "low"]
        .iter()
        .filter_map(|c| {
            sample(
                &m,
                &format!("stinger_host_vulnerabilities{{host=\"127.0.73.1\",group=\"g\",severity=\"{c}\"}}"),
            )
        })
        .sum();
    assert!(classes >= on_port.len() as f64, "{m}");
    assert_eq!(
        sample(&m, "stinger_scan_run_success{stage=\"vulnerabilities\"}"),
        Some(1.0)
    );

    // Filters and history.
    // The sample report carries CVEs (host-wide or on ports): one of them finds the host.
    let all = agent.json("/api/v1/vulnerabilities");
    let cve = all["vulnerabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|v| v["id"].as_str().filter(|id| id.starts_with("CVE-")))
        .expect("the 22.8 sample report has CVEs")
        .to_string();
    let hits = agent.json(&format!("/api/v1/vms?cve={cve}"));
    assert_eq!(hits["vms"].as_array().unwrap().len(), 1, "{cve}");
    let hits = agent.json(&format!("/api/v1/vms?min_cvss={max}"));
    assert_eq!(hits["vms"].as_array().unwrap().len(), 1);
    let above = agent.json("/api/v1/vms?min_cvss=10");
    assert_eq!(
        above["vms"].as_array().unwrap().len(),
        usize::from(max >= 10.0)
    );
    let found = agent.json("/api/v1/changes?kind=vuln_found");
    assert!(!found["changes"].as_array().unwrap().is_empty());
    let scans = agent.json("/api/v1/scans");
    assert!(scans["scans"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["stage"] == "vulnerabilities" && s["outcome"] == "success"));
    let list = agent.json("/api/v1/vulnerabilities?source=greenbone");
    let rows = list["vulnerabilities"].as_array().unwrap();
    assert!(
        rows.len() > on_port.len(),
        "port and host-wide findings: {list}"
    );
    assert_eq!(rows[0]["cvss"].as_f64(), Some(max), "highest first");
    assert!(
        agent.json("/api/v1/vulnerabilities?source=nmap_vulners")["vulnerabilities"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert_eq!(agent.get("/api/v1/vulnerabilities?source=nessus").0, 400);
    assert_eq!(
        sample(&m, "stinger_gmp_feed_timestamp_seconds{feed=\"NVT\"}"),
        Some(1_735_689_600.0),
        "the fake's feed version 202501010000"
    );
    // The fake saw the agent's target: the discovered host and its open port.
    let st = fake.state();
    assert!(st
        .targets
        .iter()
        .any(|t| t.hosts.contains("127.0.73.1") && t.port_range.contains("8083")));
}
