//! Unit tests of loading and validating the configuration.
use super::*;

#[test]
fn embedded_default_is_valid_and_useful() {
    let c = load(None, &Overrides::default()).unwrap();
    assert_eq!(c.source, Source::Embedded);
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].include[0].to_string(), "127.0.0.1/32");
    assert_eq!(c.groups[0].ports.len(), 1000);
    assert_eq!(c.web.listen.port(), 7864);
    assert_eq!(c.storage.path, PathBuf::from("./stinger-data"));
    let v = c.policy.verdict(
        "127.0.0.1".parse().unwrap(),
        "loopback",
        crate::model::Protocol::Tcp,
        443,
    );
    assert_eq!(v.0, crate::model::Verdict::Expected);
}

#[test]
fn every_problem_is_reported_at_once_with_its_key() {
    let text = r#"
        [[targets]]
        name = "a"
        cidrs = []
        [[targets]]
        name = "a"
        cidrs = ["127.0.0.1"]
        [scan.tcp]
        concurrency = 0
        min_timeout = "5s"
        max_timeout = "1s"
        [web]
        listen_address = "localhost"
        telemetry_path = "metrics"
        [[policy.rules]]
        name = "r"
        groups = ["nope"]
        allow = ["22"]
    "#;
    let e = from_str(text, &Overrides::default()).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    for k in [
        "targets[0].cidrs",
        "targets[1].name",
        "scan.tcp.concurrency",
        "scan.tcp.min_timeout",
        "web.listen_address",
        "web.telemetry_path",
        "policy.rules[0].groups",
    ] {
        assert!(keys.contains(&k), "missing {k} in {keys:?}");
    }
    let shown = e.to_string();
    assert!(
        shown.starts_with("invalid configuration in <string>:"),
        "{shown}"
    );
}

#[test]
fn oversized_groups_are_refused_at_load() {
    let text = r#"
        [[targets]]
        name = "big"
        cidrs = ["10.0.0.0/8"]
        [[targets]]
        name = "small"
        cidrs = ["127.0.0.0/30"]
    "#;
    let e = from_str(text, &Overrides::default()).unwrap_err();
    let p = e.problems.iter().find(|p| p.key == "targets[0].cidrs");
    assert!(
        p.is_some_and(|p| p.message.contains("16777216 addresses")),
        "{:?}",
        e.problems
    );
    // Each group within max_hosts, together above the total.
    let text = r#"
        [[targets]]
        name = "a"
        cidrs = ["10.0.0.0/16"]
        [[targets]]
        name = "b"
        cidrs = ["10.1.0.0/16"]
        [scan.tcp]
        max_total_hosts = 100000
    "#;
    let e = from_str(text, &Overrides::default()).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["targets"], "{:?}", e.problems);
    assert!(e.problems[0].message.contains("131072"));
}

#[test]
fn cli_overrides_replace_targets_and_ports() {
    let o = Overrides {
        targets: vec!["127.0.3.0/30".into()],
        exclude: vec!["127.0.3.1".into()],
        ports: Some("1-10".into()),
        listen_address: Some(":9999".into()),
        ..Default::default()
    };
    let c = load(None, &o).unwrap();
    assert_eq!(c.groups.len(), 1);
    assert_eq!(c.groups[0].name, "cli");
    assert_eq!(c.groups[0].exclude.len(), 1);
    assert_eq!(c.groups[0].ports.len(), 10);
    assert_eq!(c.web.listen.to_string(), "0.0.0.0:9999");
    let bad = Overrides {
        targets: vec!["nonsense".into()],
        ..Default::default()
    };
    let e = load(None, &bad).unwrap_err().to_string();
    assert!(e.contains("--target") && e.contains("nonsense"), "{e}");
}

#[test]
fn unreadable_and_unparsable_files_name_the_file() {
    let e = load(
        Some(Path::new("/nonexistent/stinger.toml")),
        &Overrides::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("/nonexistent/stinger.toml") && e.contains("cannot read"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, "[[targets]]\nname = \"x\"\ncidrs = [\"300.1.1.1\"]\n").unwrap();
    let e = load(Some(&p), &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad.toml") && e.contains("line 3"), "{e}");
}

#[test]
fn the_effective_config_prints_as_loadable_toml() {
    let c = load(None, &Overrides::default()).unwrap();
    let again = from_str(&c.to_toml(), &Overrides::default()).unwrap();
    assert_eq!(again.file, c.file);
}
