//! The digest e-mail through the real binary and a real SMTP server (aiosmtpd from Debian's
//! python3-aiosmtpd, driven by `smtp_server.py`): STARTTLS against a test CA, AUTH, the message as
//! Python's MIME parser reads it (text and HTML alternatives, the JSON attached), the first digest's
//! summary of a confirmed finding, the e-mail metrics, no second digest after a restart, a refused
//! password counted and retried without the password in the log, a quiet window sending nothing;
//! per-project digests in `email/projects.rs`.

use crate::util::*;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use stinger_testsupport::net::free_port;
use stinger_testsupport::tls::Ca;

mod projects;

/// Debian's interpreter: python3-aiosmtpd installs into its dist-packages only.
const PYTHON: &str = "/usr/bin/python3";

/// aiosmtpd on a loopback address, writing what it accepts into `outdir`.
struct SmtpServer {
    child: Child,
    outdir: PathBuf,
}

impl SmtpServer {
    fn start(
        addr: &str,
        dir: &Path,
        tls: Option<(&Path, &Path)>,
        auth: Option<(&str, &str)>,
    ) -> SmtpServer {
        let outdir = dir.join("mail");
        std::fs::create_dir_all(&outdir).unwrap();
        let mut cmd = Command::new(PYTHON);
        cmd.arg(repo().join("tests/integration/smtp_server.py"))
            .args(["--listen", addr, "--lifetime", "300", "--outdir"])
            .arg(&outdir);
        if let Some((cert, key)) = tls {
            cmd.arg("--cert").arg(cert).arg("--key").arg(key);
        }
        if let Some((user, password)) = auth {
            cmd.args(["--user", user, "--password", password]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{PYTHON} (needs Debian's python3-aiosmtpd): {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        assert_eq!(
            line.trim(),
            "READY",
            "smtp_server.py did not start on {addr}"
        );
        SmtpServer { child, outdir }
    }

    /// Every message accepted so far, oldest first, as `smtp_server.py` decoded it.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.outdir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for `ip`, written into `dir`: (ca, cert, key) paths.
fn pki(dir: &Path, ip: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca = Ca::new("stinger test CA");
    let cert = ca.server(&[ip]);
    let paths = (
        dir.join("ca.pem"),
        dir.join("smtp.pem"),
        dir.join("smtp.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.cert_pem()).unwrap();
    std::fs::write(&paths.2, cert.key_pem()).unwrap();
    paths
}

/// The decoded text of the message's leaf part of `content_type`.
fn part<'a>(m: &'a Value, content_type: &str) -> &'a str {
    m["parts"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["content_type"] == content_type))
        .and_then(|p| p["text"].as_str())
        .unwrap_or_else(|| panic!("no {content_type} part in {m}"))
}

/// Check the MIME tree every digest has — text and HTML as alternatives, the JSON attached — and
/// return the text, the HTML and the digest the attachment holds.
fn digest_parts(m: &Value) -> (String, String, Value) {
    assert_eq!(
        m["structure"],
        serde_json::json!([
            "multipart/mixed",
            "  multipart/alternative",
            "    text/plain",
            "    text/html",
            "  application/json"
        ]),
        "{m}"
    );
    // Lines end in CRLF on the wire; any other control character came from a value.
    let text = part(m, "text/plain").replace("\r\n", "\n");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters in the text part: {text:?}"
    );
    let html = part(m, "text/html").replace("\r\n", "\n");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    let attachment = m["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["content_type"] == "application/json")
        .unwrap();
    assert!(
        attachment["filename"]
            .as_str()
            .unwrap()
            .starts_with("stinger-digest-"),
        "{attachment}"
    );
    let digest = serde_json::from_str(attachment["text"].as_str().unwrap()).unwrap();
    (text, html, digest)
}

const PASSWORD: &str = "smtp-Pw-7qZ";

impl SmtpServer {
    /// On a free port of `ip`: STARTTLS required, with a certificate from a test CA, and AUTH as
    /// `stinger` / [`PASSWORD`]. Returns the server, its `ip:port` and the CA file.
    fn with_tls_and_auth(dir: &Path, ip: &str) -> (SmtpServer, String, PathBuf) {
        let (ca, cert, key) = pki(dir, ip);
        let addr = format!("{ip}:{}", free_port(ip));
        let tls = Some((cert.as_path(), key.as_path()));
        let server = SmtpServer::start(&addr, dir, tls, Some(("stinger", PASSWORD)));
        (server, addr, ca)
    }
}

#[test]
fn the_digest_goes_out_over_starttls_with_auth_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, smtp_addr, ca) = SmtpServer::with_tls_and_auth(dir.path(), "127.0.120.1");
    let open_port = free_port("127.0.120.2");
    let _open = Listener::new(&format!("127.0.120.2:{open_port}"));
    let pw = dir.path().join("smtp-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"[[targets]]
name = "mail"
cidrs = ["127.0.120.2"]
ports = "22,{open_port}"

[email]
enabled = true
smtp_server = "{smtp_addr}"
tls = "starttls"
ca_file = "{ca}"
username = "stinger"
password_file = "{pw}"
from = "Stinger <stinger@example.org>"
to = ["Cloud admins <admins@example.org>", "sec@example.org"]
interval = "1h"
"#,
            ca = ca.display(),
            pw = pw.display()
        ),
    );
    let agent = Agent::start(&config);
    let msgs = wait_for("the digest e-mail", Duration::from_secs(60), || {
        let m = smtp.messages();
        (!m.is_empty()).then_some(m)
    });
    let m = &msgs[0];
    assert_eq!(m["tls"], true, "STARTTLS: {m}");
    assert_eq!(m["authenticated"], true, "AUTH: {m}");
    assert_eq!(m["mail_from"], "stinger@example.org");
    assert_eq!(
        m["rcpt_to"],
        serde_json::json!(["admins@example.org", "sec@example.org"])
    );
    // The first digest summarises: the counts, and the confirmed finding among the most severe.
    let subject = m["subject"].as_str().unwrap();
    assert!(
        subject.starts_with("[stinger] first digest: 1 confirmed finding"),
        "{subject}"
    );
    let (text, html, digest) = digest_parts(m);
    let line = format!("unexpected_port  tcp/{open_port} on 127.0.120.2  group mail");
    assert!(text.contains(&line), "{line:?} in:\n{text}");
    assert!(
        text.contains("FINDINGS BY KIND, SEVERITY AND STATE"),
        "{text}"
    );
    assert!(
        html.contains(&format!("tcp/{open_port} on 127.0.120.2")),
        "{html}"
    );
    assert_eq!(digest["first"], true, "{digest}");
    let top = &digest["top"][0];
    assert_eq!(top["kind"], "unexpected_port", "{digest}");
    assert_eq!(top["address"], "127.0.120.2");
    assert_eq!(top["port"], open_port);
    let api = top["api"].as_str().unwrap();
    assert!(text.contains(api) && html.contains(api), "{api}");
    let (status, body) = agent.get(api);
    assert_eq!(status, 200, "the digest's link to the finding: {body}");
    assert!(digest["counts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["kind"] == "unexpected_port" && c["state"] == "confirmed"));

    let metrics = wait_for("the e-mail metrics", Duration::from_secs(10), || {
        let m = agent.metrics();
        (sample(&m, "stinger_emails_sent_total") == Some(1.0)).then_some(m)
    });
    assert_eq!(
        sample(&metrics, "stinger_email_last_send_success"),
        Some(1.0)
    );
    stinger_testsupport::promtool::check_metrics(&metrics).unwrap();
    let last = sample(&metrics, "stinger_email_last_digest_timestamp_seconds").unwrap();
    assert!(last > 1.7e9, "{metrics}");
    assert!(agent.log().contains("digest e-mail sent"));
    assert!(
        !agent.log().contains(PASSWORD),
        "the password is never logged"
    );
    assert!(agent.stop().success());

    // A restart within the hour sends nothing: the window is remembered (a digest due at start
    // would go out at once, as the first one did).
    let agent = Agent::start(&config);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        smtp.messages().len(),
        1,
        "no second digest within the interval"
    );
    let metrics = agent.metrics();
    assert_eq!(
        sample(&metrics, "stinger_email_last_digest_timestamp_seconds"),
        Some(last),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "stinger_emails_sent_total"), Some(0.0));
    assert!(agent.stop().success());
}

#[test]
fn a_refused_password_is_counted_and_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let (smtp, smtp_addr, ca) = SmtpServer::with_tls_and_auth(dir.path(), "127.0.120.11");
    let port = free_port("127.0.120.12");
    let _open = Listener::new(&format!("127.0.120.12:{port}"));
    let wrong = "wrong-Pw-x81";
    let config = write_config(
        dir.path(),
        &format!(
            r#"[[targets]]
name = "mail"
cidrs = ["127.0.120.12"]
ports = "{port}"

[email]
enabled = true
smtp_server = "{smtp_addr}"
ca_file = "{ca}"
username = "stinger"
password_env = "STINGER_TEST_SMTP_PASSWORD"
to = ["admins@example.org"]
send_empty = true
"#,
            ca = ca.display()
        ),
    );
    let agent = Agent::start_env(&config, &[], &[("STINGER_TEST_SMTP_PASSWORD", wrong)]);
    let metrics = wait_for("the failed delivery", Duration::from_secs(60), || {
        let m = agent.metrics();
        (sample(&m, "stinger_email_last_send_success") == Some(0.0)).then_some(m)
    });
    assert_eq!(
        sample(
            &metrics,
            r#"stinger_errors_total{stage="email",kind="smtp"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, "stinger_emails_sent_total"), Some(0.0));
    assert_eq!(
        sample(&metrics, "stinger_email_last_digest_timestamp_seconds"),
        Some(0.0),
        "the window stays open for the retry"
    );
    let log = agent.log();
    assert!(
        log.contains("digest e-mail not sent") && log.contains(&smtp_addr),
        "the error names the relay:\n{log}"
    );
    assert!(!log.contains(wrong), "the password is never logged");
    assert!(smtp.messages().is_empty());
}

#[test]
fn a_quiet_window_sends_nothing_over_plain_smtp_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let smtp_addr = format!("127.0.120.21:{}", free_port("127.0.120.21"));
    let smtp = SmtpServer::start(&smtp_addr, dir.path(), None, None);
    // Nothing listens on the scanned port: no unexpected port, no change.
    let port = free_port("127.0.120.22");
    let body = |send_empty: bool| {
        format!(
            r#"[[targets]]
name = "quiet"
cidrs = ["127.0.120.22"]
ports = "{port}"

[email]
enabled = true
smtp_server = "{smtp_addr}"
tls = "none"
to = ["admins@example.org"]
send_empty = {send_empty}
"#
        )
    };
    let config = write_config(dir.path(), &body(false));
    let agent = Agent::start(&config);
    wait_for("the quiet digest", Duration::from_secs(60), || {
        agent
            .log()
            .contains("digest e-mail not sent: nothing changed")
            .then_some(())
    });
    let metrics = agent.metrics();
    assert!(sample(&metrics, "stinger_email_last_digest_timestamp_seconds").unwrap() > 1.7e9);
    assert!(
        smtp.messages().is_empty(),
        "nothing to report, nothing sent"
    );
    assert!(agent.stop().success());

    // With send_empty and a fresh store, the same quiet state is mailed, in plain SMTP.
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let config = write_config(dir.path(), &body(true));
    let agent = Agent::start(&config);
    let msgs = wait_for("the empty digest", Duration::from_secs(60), || {
        let m = smtp.messages();
        (!m.is_empty()).then_some(m)
    });
    assert_eq!(msgs[0]["tls"], false);
    assert_eq!(
        msgs[0]["subject"],
        "[stinger] first digest: 0 confirmed findings"
    );
    let (text, html, digest) = digest_parts(&msgs[0]);
    assert!(
        text.contains("Now: 0 confirmed findings (0 acknowledged), 0 open, 0 stale."),
        "{text}"
    );
    assert!(html.contains("<h2>Stinger&#39;s first digest, "), "{html}");
    assert_eq!(digest["first"], true);
    assert!(digest["since"].is_null());
    assert_eq!(digest["counts"], serde_json::json!([]));
    assert!(agent.stop().success());
}

#[test]
fn a_relay_that_never_answers_does_not_hold_up_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    // Bound and listening but never accepting: the kernel completes the handshake, no banner comes.
    let silent = std::net::TcpListener::bind("127.0.120.31:0").unwrap();
    let smtp_addr = silent.local_addr().unwrap().to_string();
    let port = free_port("127.0.120.32");
    let config = write_config(
        dir.path(),
        &format!(
            r#"[[targets]]
name = "quiet"
cidrs = ["127.0.120.32"]
ports = "{port}"

[email]
enabled = true
smtp_server = "{smtp_addr}"
tls = "none"
to = ["admins@example.org"]
send_empty = true
timeout = "5m"
"#
        ),
    );
    let agent = Agent::start(&config);
    agent.wait_successes(1);
    std::thread::sleep(Duration::from_millis(500));
    let started = std::time::Instant::now();
    let (status, log) = agent.stop_with_log();
    assert!(status.success());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?} for the relay",
        started.elapsed()
    );
    assert!(
        log.contains("digest e-mail abandoned: shutting down"),
        "{log}"
    );
    drop(silent);
}
