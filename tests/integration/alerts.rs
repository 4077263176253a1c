//! The shipped alerting rules pass promtool's checks and their own unit tests.

use crate::util::repo;
use std::process::Command;

fn promtool(args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(repo())
        .output()
        .expect("promtool is needed (Debian package `prometheus`)");
    assert!(
        out.status.success(),
        "promtool {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn alerting_rules_are_valid_and_their_tests_pass() {
    promtool(&[
        "check",
        "rules",
        "--lint=all",
        "--lint-fatal",
        "alerts/stinger.rules.yml",
    ]);
    promtool(&["test", "rules", "alerts/stinger.rules.test.yml"]);
    promtool(&["check", "config", "alerts/prometheus.example.yml"]);
}
