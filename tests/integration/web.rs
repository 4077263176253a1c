//! `--web.config.file` through the real binary: bcrypt basic auth on every endpoint, and a bad web
//! configuration refused at load (TLS and client certificates are tested in src/expose/webconfig.rs).

use crate::util::*;

#[test]
fn basic_auth_guards_every_endpoint_and_bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("s3cret", 4).unwrap();
    let web = dir.path().join("web.yml");
    std::fs::write(&web, format!("basic_auth_users:\n  prometheus: '{hash}'\n")).unwrap();
    let config = write_config(
        dir.path(),
        "[[targets]]\nname = \"w\"\ncidrs = [\"127.0.69.1\"]\nports = \"20000\"\n",
    );
    let agent = Agent::start_with(&config, &["--web.config.file", web.to_str().unwrap()]);
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for path in ["/metrics", "/-/healthy", "/api/v1/vms"] {
        let (status, head, _) = http_request(&agent.addr, path, &[]);
        assert_eq!(status, 401, "{path} without credentials");
        assert!(
            head.contains("www-authenticate: basic realm=\"stinger\""),
            "{head}"
        );
        let wrong = format!("Basic {}", b64("prometheus:guess"));
        assert_eq!(
            http_request(&agent.addr, path, &[("Authorization", &wrong)]).0,
            401
        );
        let right = format!("Basic {}", b64("prometheus:s3cret"));
        let (status, _, body) = http_request(&agent.addr, path, &[("Authorization", &right)]);
        assert_eq!(status, 200, "{path}: {body}");
    }
    assert!(
        !agent.log().contains("s3cret") && !agent.log().contains(&hash),
        "secrets never logged"
    );

    std::fs::write(&web, "basic_auth_users:\n  x: y\ntls_server_confg: {}\n").unwrap();
    let out = std::process::Command::new(bin())
        .args(["--web.config.file", web.to_str().unwrap(), "check-config"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("web.config_file") && err.contains("tls_server_confg"),
        "{err}"
    );
}

#[test]
fn plain_http_on_a_non_loopback_address_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[targets]]\nname = \"w\"\ncidrs = [\"127.0.69.2\"]\nports = \"20000\"\n",
    );
    // Loopback (write_config's 127.0.0.1:0): no warning.
    let (_, log) = Agent::start(&config).stop_with_log();
    assert!(!log.contains("without authentication"), "{log}");
    // Every interface, no --web.config.file: the operator is told.
    let agent = Agent::start_with(&config, &["--web.listen-address", "0.0.0.0:0"]);
    let (_, log) = agent.stop_with_log();
    assert!(
        log.contains("serving plain HTTP without authentication on a non-loopback address"),
        "{log}"
    );
}
