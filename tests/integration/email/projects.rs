//! Per-project digests through the real agent: a real Keystone, a fake Nova and Neutron with a VM in
//! each of two projects (one with a hostile name), and `[email.projects]` keyed by a project's name
//! and by the other's id. Each project's recipients get a digest of only their project's findings;
//! the admins get all; a project without findings gets nothing; the hostile name is escaped in the
//! HTML and loses its line break in the text.

use super::{digest_parts, SmtpServer};
use crate::keystone_server::{keystone, keystone_call, register_region};
use crate::util::*;
use serde_json::Value;
use std::time::Duration;
use stinger_testsupport::fake_cloud::{Cloud, FakeCloud, FakeConfig, ServerSpec, TokenCheck};
use stinger_testsupport::net::free_port;

const VM_A: &str = "0e7b1d6e-0000-4000-8000-0000000000a1";
const VM_B: &str = "0e7b1d6e-0000-4000-8000-0000000000a2";
/// A VM name a tenant chose: markup, and a line break with a header after it.
const HOSTILE_VM: &str = "web-a <script>x</script>\r\nBcc: evil@example.org";

/// A Keystone project named `name`; returns its id.
fn project(name: &str) -> String {
    let (st, v) = keystone_call(
        "POST",
        "/projects",
        &serde_json::json!({"project": {"name": name, "domain_id": "default"}}),
    );
    assert_eq!(st, 201, "create project {name}: {v}");
    v["project"]["id"].as_str().unwrap().to_owned()
}

/// The one message delivered to exactly `rcpt`.
fn to<'a>(msgs: &'a [Value], rcpt: &str) -> &'a Value {
    msgs.iter()
        .find(|m| m["rcpt_to"] == serde_json::json!([rcpt]))
        .unwrap_or_else(|| panic!("no message to {rcpt} alone among {msgs:?}"))
}

/// The addresses of a digest's `top` findings.
fn top_addresses(digest: &Value) -> Vec<String> {
    digest["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn project_recipients_get_only_their_projects_findings() {
    let ks = keystone();
    let tag = std::process::id();
    let a_name = format!("mail-a-{tag}");
    let a_id = project(&a_name);
    let b_id = project(&format!("mail-b-{tag}"));
    let port_a = free_port("127.0.121.10");
    let port_b = free_port("127.0.121.11");
    let _a = Listener::new(&format!("127.0.121.10:{port_a}"));
    let _b = Listener::new(&format!("127.0.121.11:{port_b}"));
    let mut cloud = Cloud::empty().expect("fake cloud templates");
    cloud
        .add_server(
            ServerSpec::new(VM_A, HOSTILE_VM, &a_id)
                .fixed("private", "127.0.122.10".parse().unwrap())
                .floating("127.0.121.10".parse().unwrap()),
        )
        .unwrap();
    cloud
        .add_server(
            ServerSpec::new(VM_B, "db-b", &b_id)
                .fixed("private", "127.0.122.11".parse().unwrap())
                .floating("127.0.121.11".parse().unwrap()),
        )
        .unwrap();
    let fake = FakeCloud::start(FakeConfig::new(
        "127.0.121.1".parse().unwrap(),
        cloud,
        TokenCheck::Keystone {
            url: ks.url.clone(),
        },
    ))
    .expect("start the fake cloud");
    register_region("MAIL", &fake.compute_url(), &fake.network_url());

    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  mail:\n    region_name: MAIL\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n",
            ks.url
        ),
    )
    .unwrap();
    let smtp_addr = format!("127.0.121.2:{}", free_port("127.0.121.2"));
    let smtp = SmtpServer::start(&smtp_addr, dir.path(), None, None);
    // The admins get everything; project A by its name, project B by its id; a project without
    // VMs gets nothing (its digest is quiet).
    let config = write_config(
        dir.path(),
        &format!(
            r#"[schedule]
discovery = "1h"
jitter = "0s"

[policy]
expected = ["22/tcp"]

[[openstack]]
name = "cloud"
cloud = "mail"
addresses = "floating"
ports = "{port_a},{port_b}"
retries = 0
timeout = "5s"

[email]
enabled = true
smtp_server = "{smtp_addr}"
tls = "none"
to = ["admins@example.org"]

[email.projects]
"{a_name}" = ["A team <a-team@example.org>"]
"{b_id}" = ["b-team@example.org"]
nobody-here = ["nobody@example.org"]
"#
        ),
    );
    let clouds_env = clouds.display().to_string();
    let agent = Agent::start_env(&config, &[], &[("OS_CLIENT_CONFIG_FILE", &clouds_env)]);
    let msgs = wait_for("three digests", Duration::from_secs(90), || {
        let m = smtp.messages();
        (m.len() >= 3).then_some(m)
    });
    std::thread::sleep(Duration::from_secs(3));
    let msgs_now = smtp.messages();
    assert_eq!(
        msgs_now.len(),
        3,
        "admins, A and B; nothing for a project without findings: {msgs_now:?}"
    );
    assert!(
        !msgs
            .iter()
            .any(|m| m["rcpt_to"].to_string().contains("evil@example.org")),
        "a VM name never adds a recipient"
    );

    // The admins: both projects' findings.
    let admins = to(&msgs, "admins@example.org");
    let (text, _, digest) = digest_parts(admins);
    let mut all = top_addresses(&digest);
    all.sort();
    all.dedup();
    assert_eq!(all, ["127.0.121.10", "127.0.121.11"], "{digest}");
    assert!(digest.get("project").is_none(), "{digest}");
    assert!(text.contains("db-b") && text.contains("web-a"), "{text}");

    // Project A (by name): only its VM, under its own subject and window.
    let a = to(&msgs, "a-team@example.org");
    assert_eq!(a["to"], "A team <a-team@example.org>");
    let subject = a["subject"].as_str().unwrap();
    assert!(
        subject.starts_with(&format!("[stinger] project {a_name}: first digest: ")),
        "{subject}"
    );
    let (text, html, digest) = digest_parts(a);
    assert_eq!(digest["project"], a_name.as_str());
    assert_eq!(top_addresses(&digest), ["127.0.121.10"], "{digest}");
    assert!(digest["top"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["vm"]["project_id"] == a_id.as_str() && e["vm"]["id"] == VM_A));
    assert!(
        !text.contains("127.0.121.11") && !text.contains("db-b"),
        "{text}"
    );
    assert!(
        !html.contains("127.0.121.11") && !html.contains("db-b"),
        "{html}"
    );
    // The hostile name: escaped in the HTML, without its line break in the text.
    assert!(!html.contains("<script>"), "{html}");
    assert!(
        html.contains("web-a &lt;script&gt;x&lt;/script&gt;"),
        "{html}"
    );
    assert!(
        text.contains("web-a <script>x</script>\u{fffd}\u{fffd}Bcc: evil@example.org"),
        "{text}"
    );
    assert!(!text.lines().any(|l| l.starts_with("Bcc:")), "{text}");

    // Project B (by id): only its VM.
    let b = to(&msgs, "b-team@example.org");
    let (text, _, digest) = digest_parts(b);
    assert_eq!(digest["project"], b_id.as_str());
    assert_eq!(top_addresses(&digest), ["127.0.121.11"], "{digest}");
    assert!(
        !text.contains("127.0.121.10") && !text.contains("web-a"),
        "{text}"
    );

    // The API serves each recipient set's next digest: a window of their own, now begun.
    let next = agent.json(&format!("/api/v1/digest?project={a_name}"));
    assert_eq!(next["first"], false, "{next}");
    assert!(next["since"].as_f64().is_some_and(|t| t > 1.7e9), "{next}");
    assert!(agent.stop().success());
}
