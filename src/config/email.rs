//! The `[email]` section: the digest e-mail's relay, sender, recipients and schedule, as written and
//! as validated. Addresses, the relay and the password are checked at load, so a typo is exit 64
//! naming the key, not a failed delivery a day later.

use super::Problem;
pub use crate::expose::email::{EmailConfig, Password, TlsMode};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// `[email]` as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmailFile {
    pub enabled: bool,
    /// The relay's `host:port`.
    pub smtp_server: String,
    pub tls: TlsMode,
    /// CA (or the relay's own certificate) to trust besides the system's roots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user; empty: no authentication.
    pub username: String,
    /// File whose first line is the SMTP password (preferred), else the environment variable below.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    pub password_env: String,
    /// Allow SMTP AUTH with `tls = "none"`, which sends the password in clear: only for a relay on
    /// this host.
    pub allow_plaintext_auth: bool,
    /// `Name <address>` or `address`.
    pub from: String,
    pub to: Vec<String>,
    /// How often a digest goes out; it covers the changes since the last one sent.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Send a digest even when no port is unexpected and nothing changed.
    pub send_empty: bool,
    pub subject_prefix: String,
    /// Hosts with a vulnerability of at least this CVSS are listed.
    pub min_cvss: f64,
    /// Lines per section in the text body (the JSON attachment has everything).
    pub max_lines: usize,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for EmailFile {
    fn default() -> Self {
        EmailFile {
            enabled: false,
            smtp_server: "127.0.0.1:25".into(),
            tls: TlsMode::Starttls,
            ca_file: None,
            username: String::new(),
            password_file: None,
            password_env: "STINGER_SMTP_PASSWORD".into(),
            allow_plaintext_auth: false,
            from: "stinger@localhost".into(),
            to: Vec::new(),
            interval: Duration::from_secs(24 * 3600),
            send_empty: false,
            subject_prefix: "[stinger]".into(),
            min_cvss: 7.0,
            max_lines: 200,
            timeout: Duration::from_secs(30),
        }
    }
}

/// Validate `[email]`: `None` when disabled (or invalid, with the problems pushed).
pub fn build(f: &EmailFile, problems: &mut Vec<Problem>) -> Option<EmailConfig> {
    if !f.enabled {
        return None;
    }
    let before = problems.len();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: format!("email.{key}"),
            message,
        })
    };
    let (host, port) = match split_host_port(&f.smtp_server) {
        Ok(hp) => hp,
        Err(m) => {
            problem("smtp_server", m);
            (String::new(), 0)
        }
    };
    let mailbox = |s: &str| s.trim().parse::<Mailbox>().map_err(|e| e.to_string());
    let from = match mailbox(&f.from) {
        Ok(m) => Some(m),
        Err(e) => {
            problem(
                "from",
                format!("{:?} is not an e-mail address ({e})", f.from),
            );
            None
        }
    };
    if f.to.is_empty() {
        problem(
            "to",
            "lists no recipients; give at least one address".into(),
        );
    }
    let mut to = Vec::new();
    for (i, t) in f.to.iter().enumerate() {
        match mailbox(t) {
            Ok(m) => to.push(m),
            Err(e) => problem(
                &format!("to[{i}]"),
                format!("{t:?} is not an e-mail address ({e})"),
            ),
        }
    }
    if f.interval < Duration::from_secs(60) {
        problem("interval", "must be at least 1m (e.g. \"24h\")".into());
    }
    if f.timeout.is_zero() {
        problem("timeout", "must be above zero (e.g. \"30s\")".into());
    }
    if !(0.0..=10.0).contains(&f.min_cvss) {
        problem("min_cvss", "must be 0 to 10".into());
    }
    if f.max_lines == 0 {
        problem("max_lines", "must be at least 1".into());
    }
    let ca_pem = f.ca_file.as_ref().and_then(|p| match std::fs::read(p) {
        Ok(pem)
            if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----")
                && lettre::transport::smtp::client::Certificate::from_pem(&pem).is_ok() =>
        {
            Some(pem)
        }
        Ok(_) => {
            problem(
                "ca_file",
                format!("{} holds no PEM certificate (or a broken one)", p.display()),
            );
            None
        }
        Err(e) => {
            problem("ca_file", format!("cannot read {}: {e}", p.display()));
            None
        }
    });
    if ca_pem.is_some() && f.tls == TlsMode::None {
        problem(
            "ca_file",
            "is set but tls = \"none\" never uses it; choose tls = \"starttls\" or \"tls\"".into(),
        );
    }
    if !f.username.is_empty() && f.tls == TlsMode::None && !f.allow_plaintext_auth {
        problem(
            "tls",
            "is \"none\" with email.username set: the SMTP password would cross the network in clear; \
             choose tls = \"starttls\" or \"tls\", or (for a relay on this host only) set \
             email.allow_plaintext_auth = true"
                .into(),
        );
    }
    let credentials = if f.username.is_empty() {
        if f.password_file.is_some() {
            problem(
                "password_file",
                "is set but email.username is empty; set both or neither".into(),
            );
        }
        None
    } else {
        match super::read_password("email", f.password_file.as_deref(), &f.password_env) {
            Ok(pw) => Some((f.username.clone(), Password::new(pw))),
            Err(p) => {
                problems.push(p);
                None
            }
        }
    };
    if problems.len() > before {
        return None;
    }
    Some(EmailConfig {
        host,
        port,
        tls: f.tls,
        ca_pem,
        credentials,
        from: from?,
        to,
        interval: f.interval,
        send_empty: f.send_empty,
        subject_prefix: f.subject_prefix.clone(),
        min_cvss: f.min_cvss,
        max_lines: f.max_lines,
        timeout: f.timeout,
    })
}

/// `host:port` or `[v6]:port`, with a port.
fn split_host_port(s: &str) -> Result<(String, u16), String> {
    let bad = || format!("{s:?} is not host:port (e.g. \"smtp.example.org:587\")");
    let (host, port) = s.trim().rsplit_once(':').ok_or_else(bad)?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> EmailFile {
        EmailFile {
            enabled: true,
            to: vec!["Ops <ops@example.org>".into()],
            ..Default::default()
        }
    }

    fn keys(p: &[Problem]) -> Vec<&str> {
        p.iter().map(|p| p.key.as_str()).collect()
    }

    #[test]
    fn disabled_is_none_and_never_checked() {
        let mut problems = Vec::new();
        let f = EmailFile {
            from: "not an address".into(),
            ..Default::default()
        };
        assert_eq!(build(&f, &mut problems), None);
        assert!(problems.is_empty());
    }

    #[test]
    fn a_good_section_builds() {
        let mut problems = Vec::new();
        let c = build(&enabled(), &mut problems).expect("valid");
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 25));
        assert_eq!(c.to[0].email.to_string(), "ops@example.org");
        assert_eq!(c.to[0].name.as_deref(), Some("Ops"));
        assert_eq!(c.credentials, None);
    }

    #[test]
    fn every_bad_key_is_named() {
        let mut problems = Vec::new();
        let f = EmailFile {
            smtp_server: "mail.example.org".into(),
            from: "stinger at example".into(),
            to: vec!["ok@example.org".into(), "@@".into()],
            interval: Duration::from_secs(5),
            min_cvss: 11.0,
            max_lines: 0,
            password_file: Some("/nonexistent".into()),
            ..enabled()
        };
        assert_eq!(build(&f, &mut problems), None);
        assert_eq!(
            keys(&problems),
            [
                "email.smtp_server",
                "email.from",
                "email.to[1]",
                "email.interval",
                "email.min_cvss",
                "email.max_lines",
                "email.password_file"
            ]
        );
        assert!(problems[0].message.contains("host:port"), "{problems:?}");
        let f = EmailFile {
            to: Vec::new(),
            ..enabled()
        };
        assert_eq!(build(&f, &mut problems), None);
        assert!(keys(&problems).contains(&"email.to"));
    }

    #[test]
    fn the_password_comes_from_its_file_and_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret-smtp\nignored\n").unwrap();
        let mut problems = Vec::new();
        let f = EmailFile {
            username: "stinger".into(),
            password_file: Some(pw),
            ..enabled()
        };
        let c = build(&f, &mut problems).expect("valid");
        let (user, password) = c.credentials.clone().expect("credentials");
        assert_eq!(
            (user.as_str(), password.expose()),
            ("stinger", "s3cret-smtp")
        );
        assert!(!format!("{c:?}").contains("s3cret"));

        let f = EmailFile {
            username: "stinger".into(),
            password_env: "STINGER_TEST_SURELY_UNSET_SMTP_PW".into(),
            ..enabled()
        };
        assert_eq!(build(&f, &mut problems), None);
        assert!(problems[0]
            .message
            .contains("STINGER_TEST_SURELY_UNSET_SMTP_PW"));
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("[::1]:587"), Ok(("::1".to_string(), 587)));
        assert_eq!(
            split_host_port("smtp.example.org:465"),
            Ok(("smtp.example.org".to_string(), 465))
        );
        assert!(split_host_port(":25").is_err());
        assert!(split_host_port("host:0").is_err());
        assert!(split_host_port("host:smtp").is_err());
    }

    #[test]
    fn a_ca_file_must_hold_pem_and_needs_tls() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let mut problems = Vec::new();
        let f = EmailFile {
            ca_file: Some(ca.clone()),
            ..enabled()
        };
        assert_eq!(build(&f, &mut problems), None);
        assert!(problems[0].message.contains("no PEM"), "{problems:?}");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
        problems.clear();
        let f = EmailFile {
            ca_file: Some(ca.clone()),
            ..enabled()
        };
        assert_eq!(build(&f, &mut problems), None);
        assert!(problems[0].message.contains("broken"), "{problems:?}");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        problems.clear();
        let f = EmailFile {
            ca_file: Some(ca.clone()),
            ..enabled()
        };
        assert!(build(&f, &mut problems).is_some(), "{problems:?}");
        problems.clear();
        let f = EmailFile {
            ca_file: Some(ca),
            tls: TlsMode::None,
            ..enabled()
        };
        assert_eq!(build(&f, &mut problems), None);
        assert_eq!(keys(&problems), ["email.ca_file"]);
    }

    #[test]
    fn auth_without_tls_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let mut problems = Vec::new();
        let f = EmailFile {
            tls: TlsMode::None,
            username: "stinger".into(),
            password_file: Some(pw.clone()),
            ..enabled()
        };
        assert_eq!(build(&f, &mut problems), None);
        assert_eq!(keys(&problems), ["email.tls"]);
        let msg = format!("{problems:?}");
        assert!(msg.contains("allow_plaintext_auth"), "{msg}");
        assert!(!msg.contains("s3cret"), "{msg}");
        problems.clear();
        let f = EmailFile {
            allow_plaintext_auth: true,
            ..f
        };
        assert!(build(&f, &mut problems).is_some(), "{problems:?}");
        // Without a user there is nothing to protect.
        problems.clear();
        let f = EmailFile {
            tls: TlsMode::None,
            ..enabled()
        };
        assert!(build(&f, &mut problems).is_some(), "{problems:?}");
    }
}
