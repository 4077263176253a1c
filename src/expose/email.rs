//! The digest e-mail's settings and delivery: who gets which digest (the admins everything, each
//! configured project its own findings), and how a digest reaches the relay (lettre over SMTP;
//! STARTTLS or TLS through rustls; AUTH when configured) as text and HTML alternatives with the JSON
//! attached. One connection a digest, bounded by the configured timeout. Errors name the relay and
//! what went wrong, never the password. When digests are due: [`super::digest::schedule`].

use super::digest::schedule::Schedule;
use super::digest::{clean, Digest, Render};
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::message::{Attachment, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the connection to the relay is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain SMTP, then STARTTLS, required (port 587 or 25).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
    /// No TLS at all: only for a relay on the same host (e.g. a local Postfix on 127.0.0.1:25).
    None,
}

/// An SMTP password. Prints as `***`; read it with [`Password::expose`] only to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(password: String) -> Password {
        Password(password)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The validated digest settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EmailConfig {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// PEM certificates read from `ca_file`.
    pub ca_pem: Option<Vec<u8>>,
    pub credentials: Option<(String, Password)>,
    pub from: Mailbox,
    /// The admins: every finding (may be empty when projects have recipients).
    pub to: Vec<Mailbox>,
    /// Per-project recipients (`[email.projects]`), in the order of their keys.
    pub projects: Vec<Audience>,
    pub schedule: Schedule,
    pub send_empty: bool,
    pub subject_prefix: String,
    pub min_cvss: f64,
    pub max_lines: usize,
    pub timeout: Duration,
}

/// One set of recipients and what their digest covers. Each set has its own window: when its last
/// digest went out is kept in the store under its project (none: the admins).
#[derive(Debug, Clone, PartialEq)]
pub struct Audience {
    /// Only this project's findings (an OpenStack project name or id, as configured); `None`: all.
    pub project: Option<String>,
    pub to: Vec<Mailbox>,
}

impl EmailConfig {
    /// Every set of recipients: the admins (when `to` names any), then each project.
    pub fn audiences(&self) -> Vec<Audience> {
        let admins = (!self.to.is_empty()).then(|| Audience {
            project: None,
            to: self.to.clone(),
        });
        admins.into_iter().chain(self.projects.clone()).collect()
    }

    /// How digests are rendered: `max_lines` a section, times in the schedule's zone.
    pub fn render(&self) -> Render {
        Render {
            max_lines: self.max_lines,
            tz: self.schedule.tz.clone(),
        }
    }

    /// `host:port` of the relay.
    pub fn server(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// Why a digest was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the digest message: {0}")]
    Message(String),
    #[error("cannot set up TLS for the SMTP relay {server}: {message}")]
    Tls { server: String, message: String },
    #[error("the SMTP relay {server} did not take the digest: {message}")]
    Smtp { server: String, message: String },
}

impl Error {
    /// Stable label for `stinger_errors_total{stage="email",kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Message(_) => "message",
            Error::Tls { .. } => "tls",
            Error::Smtp { .. } => "smtp",
        }
    }
}

/// The e-mail for a digest to `to`: text and HTML as alternatives, and the JSON attached as
/// `stinger-digest-<date>.json`.
pub fn message(cfg: &EmailConfig, to: &[Mailbox], d: &Digest) -> Result<Message, Error> {
    let prefix = cfg.subject_prefix.trim();
    // The subject names a configured project: cleaned like every value that reaches a header.
    let subject = clean(&if prefix.is_empty() {
        d.subject()
    } else {
        format!("{prefix} {}", d.subject())
    });
    let mut b = Message::builder()
        .from(cfg.from.clone())
        .subject(subject)
        .date_now();
    for m in to {
        b = b.to(m.clone());
    }
    let render = cfg.render();
    let name = d.attachment_name(&render.tz);
    let json = ContentType::parse("application/json").map_err(|e| Error::Message(e.to_string()))?;
    b.multipart(
        MultiPart::mixed()
            .multipart(MultiPart::alternative_plain_html(
                d.text(&render),
                d.html(&render),
            ))
            .singlepart(Attachment::new(name).body(d.json(), json)),
    )
    .map_err(|e| Error::Message(e.to_string()))
}

/// A transport to the configured relay (no connection is made until a send).
fn transport(cfg: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, Error> {
    let server = cfg.server();
    let tls_error = |e: lettre::transport::smtp::Error| Error::Tls {
        server: server.clone(),
        message: e.to_string(),
    };
    let tls = match cfg.tls {
        TlsMode::None => Tls::None,
        mode => {
            let mut p = TlsParameters::builder(cfg.host.clone());
            if let Some(pem) = &cfg.ca_pem {
                p = p.add_root_certificate(Certificate::from_pem(pem).map_err(tls_error)?);
            }
            let params = p.build_rustls().map_err(tls_error)?;
            if mode == TlsMode::Tls {
                Tls::Wrapper(params)
            } else {
                Tls::Required(params)
            }
        }
    };
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.as_str())
        .port(cfg.port)
        .tls(tls)
        .timeout(Some(cfg.timeout));
    if let Some((user, password)) = &cfg.credentials {
        b = b.credentials(Credentials::new(
            user.clone(),
            password.expose().to_string(),
        ));
    }
    Ok(b.build())
}

/// Deliver one digest to `to`.
pub async fn send(cfg: &EmailConfig, to: &[Mailbox], d: &Digest) -> Result<(), Error> {
    let msg = message(cfg, to, d)?;
    let t = transport(cfg)?;
    let server = cfg.server();
    // lettre's own timeout covers each command; this bounds the whole exchange.
    let whole = cfg.timeout.saturating_mul(4);
    match tokio::time::timeout(whole, t.send(msg)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Smtp {
            server,
            message: e.to_string(),
        }),
        Err(_) => Err(Error::Smtp {
            server,
            message: format!("no answer within {}", humantime::format_duration(whole)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::email::{build, EmailFile};
    use crate::expose::digest::fixtures::{finding, on_vm, view, with, T0};
    use crate::expose::digest::Scope;
    use crate::model::{FindingEventKind, FindingKind, FindingState, Severity};

    /// A valid, enabled config from `f`.
    fn config(f: EmailFile) -> EmailConfig {
        let mut problems = Vec::new();
        let f = EmailFile { enabled: true, ..f };
        build(&f, &mut problems).unwrap_or_else(|| panic!("invalid: {problems:?}"))
    }

    /// A digest of one finding confirmed on VM web-1 of project acme.
    fn digest(project: Option<&str>) -> Digest {
        let f = on_vm(
            with(
                finding(
                    1,
                    FindingKind::UnexpectedPort,
                    Severity::High,
                    FindingState::Confirmed,
                ),
                &[(FindingEventKind::Confirmed, T0 + 1.0)],
            ),
            "i-1",
            "web-1 <b>",
            ("acme", "p-acme"),
        );
        let scope = Scope {
            since: Some(T0),
            until: T0 + 3600.0,
            project: project.map(str::to_string),
            min_cvss: 7.0,
        };
        Digest::build(&view(vec![f]), &scope)
    }

    #[test]
    fn the_message_has_text_and_html_alternatives_and_the_json_attached() {
        let cfg = config(EmailFile {
            to: vec!["Ops <ops@example.org>".into(), "sec@example.org".into()],
            from: "Stinger <stinger@example.org>".into(),
            timezone: "Europe/Berlin".into(),
            ..Default::default()
        });
        let d = digest(None);
        let raw = String::from_utf8(message(&cfg, &cfg.to, &d).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Subject: [stinger] 1 new confirmed (1 high)"),
            "{raw}"
        );
        assert!(
            raw.contains("To: Ops <ops@example.org>, sec@example.org"),
            "{raw}"
        );
        assert!(raw.contains("From: Stinger <stinger@example.org>"), "{raw}");
        // mixed [ alternative [ text/plain, text/html ], application/json ], in that order.
        let at = |needle: &str| {
            raw.find(needle)
                .unwrap_or_else(|| panic!("{needle} in {raw}"))
        };
        assert!(at("multipart/mixed") < at("multipart/alternative"));
        assert!(at("multipart/alternative") < at("text/plain"));
        assert!(at("text/plain") < at("text/html"));
        assert!(at("text/html") < at("application/json"));
        assert!(
            raw.contains("filename=\"stinger-digest-2025-11-24.json\""),
            "{raw}"
        );
        assert!(
            raw.contains("Content-Type: text/html; charset=utf-8"),
            "{raw}"
        );
    }

    #[test]
    fn a_project_digest_goes_to_its_own_recipients_and_says_so() {
        let f: EmailFile = toml::from_str(
            "enabled = true\nto = [\"admins@example.org\"]\n\
             [projects]\nacme = [\"Acme <ops@acme.example>\"]\n",
        )
        .unwrap();
        let cfg = config(f);
        let audiences = cfg.audiences();
        let acme = &audiences[1];
        let d = digest(acme.project.as_deref());
        let raw = String::from_utf8(message(&cfg, &acme.to, &d).unwrap().formatted()).unwrap();
        assert!(raw.contains("To: Acme <ops@acme.example>\r\n"), "{raw}");
        assert!(!raw.contains("admins@example.org"), "{raw}");
        assert!(
            raw.contains("Subject: [stinger] project acme: 1 new confirmed"),
            "{raw}"
        );
    }

    #[tokio::test]
    async fn a_relay_that_refuses_connections_is_a_clear_error() {
        let port = stinger_testsupport::net::free_port("127.0.0.1");
        let cfg = config(EmailFile {
            smtp_server: format!("127.0.0.1:{port}"),
            tls: TlsMode::None,
            to: vec!["ops@example.org".into()],
            timeout: Duration::from_secs(5),
            ..Default::default()
        });
        let e = send(&cfg, &cfg.to, &digest(None)).await.unwrap_err();
        assert_eq!(e.kind(), "smtp");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
