//! The shipped alerting rules pass promtool's checks and their own unit tests.

use crate::util::repo;
use stinger_testsupport::promtool;

#[test]
fn alerting_rules_are_valid_and_their_tests_pass() {
    let repo = repo();
    promtool::run(
        &repo,
        &[
            "check",
            "rules",
            "--lint=all",
            "--lint-fatal",
            "alerts/stinger.rules.yml",
        ],
    )
    .unwrap();
    promtool::run(&repo, &["test", "rules", "alerts/stinger.rules.test.yml"]).unwrap();
    promtool::run(&repo, &["check", "config", "alerts/prometheus.example.yml"]).unwrap();
}

#[test]
fn every_alert_has_a_row_and_a_runbook_section_in_the_readme() {
    let rules = std::fs::read_to_string(repo().join("alerts/stinger.rules.yml")).unwrap();
    let doc: serde_json::Value = serde_norway::from_str(&rules).expect("the rules file is YAML");
    let alerts: Vec<&str> = doc["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .filter_map(|r| r["alert"].as_str())
        .collect();
    assert!(alerts.len() > 10, "{alerts:?}");
    let readme = std::fs::read_to_string(repo().join("alerts/README.md")).unwrap();
    let lines: Vec<&str> = readme.lines().map(str::trim_end).collect();
    let missing: Vec<String> = alerts
        .iter()
        .flat_map(|a| {
            let row = lines.iter().any(|l| l.starts_with(&format!("| {a} |")));
            let section = lines.iter().any(|l| *l == format!("### {a}"));
            [
                (!row).then(|| format!("{a}: no row in the table of alerts")),
                (!section).then(|| format!("{a}: no `### {a}` runbook section")),
            ]
        })
        .flatten()
        .collect();
    assert!(
        missing.is_empty(),
        "alerts/README.md lacks:\n{}",
        missing.join("\n")
    );
}
