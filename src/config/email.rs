//! The `[email]` section: the digest e-mail's relay, sender, recipients (the admins, and per project
//! in `[email.projects]`) and schedule (an interval, or a time of day in a time zone), as written
//! and as validated. Addresses, the relay, the schedule and the password are checked at load, so a
//! typo is exit 64 naming the key, not a failed delivery a day later.

use super::Problem;
use crate::expose::digest::schedule::{parse_at, parse_tz, Schedule, When};
pub use crate::expose::email::{Audience, EmailConfig, Password, TlsMode};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The interval when neither `interval` nor `at` is given.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

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
    /// The admins: their digest covers every finding.
    pub to: Vec<String>,
    /// How often a digest goes out (each covers the changes since the one before); default 24h.
    /// Not with `at`.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub interval: Option<Duration>,
    /// A digest every day when the clock of `timezone` shows this (`HH:MM`, 24 hours). Not with
    /// `interval`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The IANA time zone `at` is read in and the digest's times are shown in.
    pub timezone: String,
    /// Send a digest even when nothing changed.
    pub send_empty: bool,
    pub subject_prefix: String,
    /// Hosts with a vulnerability of at least this CVSS are listed.
    pub min_cvss: f64,
    /// Lines per section in the text body (the JSON attachment has everything).
    pub max_lines: usize,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Per-project digests: an OpenStack project's name or id → who gets that project's findings
    /// (besides the admins, who get all).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub projects: BTreeMap<String, Vec<String>>,
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
            interval: None,
            at: None,
            timezone: "UTC".into(),
            send_empty: false,
            subject_prefix: "[stinger]".into(),
            min_cvss: 7.0,
            max_lines: 200,
            timeout: Duration::from_secs(30),
            projects: BTreeMap::new(),
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
    if f.to.is_empty() && f.projects.is_empty() {
        problem(
            "to",
            "lists no recipients; give at least one address (or recipients per project in \
             [email.projects])"
                .into(),
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
    let mut projects = Vec::new();
    for (project, list) in &f.projects {
        let key = format!("projects.{}", toml_key(project));
        if project.trim().is_empty() || project.chars().any(char::is_control) {
            problem(
                &key,
                "is not a project name or id; use the OpenStack project's name or id as the key"
                    .into(),
            );
            continue;
        }
        if list.is_empty() {
            problem(
                &key,
                "lists no recipients; give at least one address, or remove the project".into(),
            );
        }
        let mut recipients = Vec::new();
        for (i, t) in list.iter().enumerate() {
            match mailbox(t) {
                Ok(m) => recipients.push(m),
                Err(e) => problem(
                    &format!("{key}[{i}]"),
                    format!("{t:?} is not an e-mail address ({e})"),
                ),
            }
        }
        projects.push(Audience {
            project: Some(project.clone()),
            to: recipients,
        });
    }
    let tz = match parse_tz(&f.timezone) {
        Ok(tz) => Some(tz),
        Err(e) => {
            problem(
                "timezone",
                format!(
                    "{:?} is not a time zone the system knows ({e}); give an IANA name such as \
                     \"Europe/Berlin\" or \"UTC\" (the tzdb is /usr/share/zoneinfo, package tzdata)",
                    f.timezone
                ),
            );
            None
        }
    };
    let when = match (&f.at, f.interval) {
        (Some(_), Some(_)) => {
            problem(
                "at",
                "is set together with email.interval; a digest runs on one schedule: keep at \
                 (a time of day) or interval (a period), not both"
                    .into(),
            );
            None
        }
        (Some(at), None) => match parse_at(at) {
            Some(t) => Some(When::DailyAt(t)),
            None => {
                problem(
                    "at",
                    format!("{at:?} is not a time of day; write HH:MM, 24 hours (e.g. \"07:00\")"),
                );
                None
            }
        },
        (None, interval) => {
            let interval = interval.unwrap_or(DEFAULT_INTERVAL);
            if interval < Duration::from_secs(60) {
                problem("interval", "must be at least 1m (e.g. \"24h\")".into());
            }
            Some(When::Every(interval))
        }
    };
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
        projects,
        schedule: Schedule {
            when: when?,
            tz: tz?,
        },
        send_empty: f.send_empty,
        subject_prefix: f.subject_prefix.clone(),
        min_cvss: f.min_cvss,
        max_lines: f.max_lines,
        timeout: f.timeout,
    })
}

/// A map key as TOML writes it in a dotted key: bare when it can be, else quoted.
fn toml_key(k: &str) -> String {
    if !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        k.to_string()
    } else {
        format!("{k:?}")
    }
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
mod tests;
