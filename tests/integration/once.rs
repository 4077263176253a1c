//! `stinger scan --once`, `check-config` and bad configuration: exit codes, output, and proof that no
//! probe reaches an address outside the targets minus exclusions.

use crate::util::*;
use serde_json::Value;
use std::process::{Command, Output};

fn stinger(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run stinger")
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn scan_once_finds_the_listeners_and_never_probes_outside_the_targets() {
    let inside_expected = Listener::new("127.0.64.1:20001");
    let _inside_unexpected = Listener::new("127.0.64.2:20003");
    let excluded = Listener::new("127.0.64.3:20002");
    let outside = Listener::new("127.0.64.9:20002");
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "c.toml",
        "[[targets]]\nname = \"unused\"\ncidrs = [\"127.0.64.200\"]\n[policy]\nexpected = [\"20001\"]\n[scan.nmap]\nenabled = false\n",
    );
    let out = stinger(&[
        "--config.file",
        &config,
        "scan",
        "--once",
        "--target",
        "127.0.64.0/29",
        "--exclude",
        "127.0.64.3",
        "--ports",
        "20000-20003",
        "--output",
        "json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "unexpected ports → exit 1: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts: Vec<(String, Vec<(u64, String)>)> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["address"].as_str().unwrap().to_string(),
                h["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        (
                            p["port"].as_u64().unwrap(),
                            p["verdict"].as_str().unwrap().to_string(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        hosts,
        [
            (
                "127.0.64.1".to_string(),
                vec![(20001, "expected".to_string())]
            ),
            (
                "127.0.64.2".to_string(),
                vec![(20003, "unexpected".to_string())]
            ),
        ]
    );
    assert_eq!(doc["scan"]["targets"], 7, "a /29 minus one exclusion");
    assert_eq!(doc["scan"]["outcome"], "success");
    // The listeners that count connections prove where probes went (the accepting thread needs a
    // moment to drain its backlog).
    wait_for(
        "the in-target listener to see the probe",
        std::time::Duration::from_secs(5),
        || (inside_expected.accepts() >= 1).then_some(()),
    );
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(excluded.accepts(), 0, "an excluded address was probed");
    assert_eq!(
        outside.accepts(),
        0,
        "an address outside the targets was probed"
    );

    // Only expected ports open: exit 0, and the human table.
    let out = stinger(&[
        "--config.file",
        &config,
        "scan",
        "--once",
        "--target",
        "127.0.64.1",
        "--ports",
        "20000-20002",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("127.0.64.1") && table.contains("20001") && table.contains("expected"),
        "{table}"
    );
    assert!(
        table.contains("1 addresses, 1 up, 1 open ports, 0 unexpected"),
        "{table}"
    );

    // An error: exit 2 with the reason.
    let out = stinger(&["scan", "--once", "--target", "nonsense"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target"));
}

#[test]
fn check_config_prints_the_effective_config_or_names_what_is_wrong() {
    let out = stinger(&["check-config"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("127.0.0.1/32") && text.contains("top1000"),
        "{text}"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("embedded default"));

    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.toml",
        "[[targets]]\nname = \"x\"\ncidrs = [\"127.0.0.1\"]\nports = \"1-70000\"\n",
    );
    let out = stinger(&["--config.file", &bad, "check-config"]);
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("line 4") && err.contains("70000"),
        "{err}"
    );

    let semantic = write(
        dir.path(),
        "semantic.toml",
        "[[targets]]\nname = \"x\"\ncidrs = [\"127.0.0.1\"]\n[scan.tcp]\nconcurrency = 0\n[web]\ntelemetry_path = \"m\"\n",
    );
    let out = stinger(&["--config.file", &semantic]);
    assert_eq!(
        out.status.code(),
        Some(64),
        "the agent refuses to start half-configured"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("scan.tcp.concurrency") && err.contains("web.telemetry_path"),
        "{err}"
    );

    let unknown = write(dir.path(), "unknown.toml", "[scan.tcp]\nconcurency = 10\n");
    let out = stinger(&["--config.file", &unknown, "check-config"]);
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown field `concurency`"));
}

#[test]
fn a_cron_job_can_trust_the_exit_code_and_target_means_exactly_those() {
    let _open = Listener::new("127.0.64.17:20005");
    let dir = tempfile::tempdir().unwrap();
    // A cloud whose Keystone does not answer (nothing listens on that port), beside a CIDR group.
    let clouds = write(
        dir.path(),
        "clouds.yaml",
        "clouds:\n  down:\n    auth:\n      auth_url: http://127.0.64.250:9/v3\n      username: u\n      password: p\n      project_name: p\n      user_domain_name: Default\n      project_domain_name: Default\n",
    );
    let config = write(
        dir.path(),
        "c.toml",
        "[[targets]]\nname = \"lan\"\ncidrs = [\"127.0.64.17\"]\nports = \"20005\"\n\
         [policy]\nexpected = [\"20005\"]\n[scan.nmap]\nenabled = false\n\
         [[openstack]]\nname = \"down\"\ncloud = \"down\"\nretries = 0\ntimeout = \"2s\"\n",
    );
    let run = |extra: &[&str]| {
        let mut args = vec!["--config.file", config.as_str(), "scan", "--once"];
        args.extend_from_slice(extra);
        Command::new(bin())
            .args(&args)
            .env("OS_CLIENT_CONFIG_FILE", &clouds)
            .output()
            .expect("run stinger")
    };
    // The inventory failed: exit 2, the reason on stderr and in the JSON, though every port found
    // is expected.
    let out = run(&["--output", "json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("inventory of down"), "{stderr}");
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["scan"]["errors"].as_array().is_some_and(|e| e
            .iter()
            .any(|m| m.as_str().unwrap_or("").contains("inventory of down"))),
        "{doc}"
    );
    // --target means exactly those targets: the cloud is not asked, all is well (exit 0).
    let out = run(&["--target", "127.0.64.17", "--ports", "20005"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        !stderr.contains("down"),
        "the cloud was not asked: {stderr}"
    );
}
