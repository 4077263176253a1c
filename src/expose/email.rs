//! The digest e-mail's schedule and delivery: when the next digest is due, and how it reaches the
//! relay (lettre over SMTP; STARTTLS or TLS through rustls; AUTH when configured). One connection a
//! digest, bounded by the configured timeout. Errors name the relay and what went wrong, never the
//! password.

use super::digest::Digest;
use crate::model::UnixSeconds;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::message::{Attachment, MultiPart, SinglePart};
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
    pub to: Vec<Mailbox>,
    pub interval: Duration,
    pub send_empty: bool,
    pub subject_prefix: String,
    pub min_cvss: f64,
    pub max_lines: usize,
    pub timeout: Duration,
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

/// How long until the next digest is due: `interval` after the last one sent; with none sent yet, as
/// soon as a discovery run has succeeded (so the first digest reports a scan), else not yet (`None`).
pub fn due_in(
    last_sent: Option<UnixSeconds>,
    discovered: bool,
    now: UnixSeconds,
    interval: Duration,
) -> Option<Duration> {
    match last_sent {
        Some(last) => {
            let next = last + interval.as_secs_f64();
            // A clock set back far behind the last digest: wait one interval, not forever.
            let wait = if now < last {
                interval.as_secs_f64()
            } else {
                next - now
            };
            Some(Duration::from_secs_f64(wait.max(0.0)))
        }
        None if discovered => Some(Duration::ZERO),
        None => None,
    }
}

/// The changes window of the next digest: from the last one sent, or one interval back for the first.
pub fn window_start(
    last_sent: Option<UnixSeconds>,
    now: UnixSeconds,
    interval: Duration,
) -> UnixSeconds {
    last_sent.unwrap_or(now - interval.as_secs_f64())
}

/// The e-mail for a digest: the text body, and the JSON attached as `stinger-digest-<date>.json`.
pub fn message(cfg: &EmailConfig, d: &Digest) -> Result<Message, Error> {
    let prefix = cfg.subject_prefix.trim();
    let subject = if prefix.is_empty() {
        d.subject()
    } else {
        format!("{prefix} {}", d.subject())
    };
    let mut b = Message::builder()
        .from(cfg.from.clone())
        .subject(subject)
        .date_now();
    for to in &cfg.to {
        b = b.to(to.clone());
    }
    let name = d.attachment_name();
    let json = ContentType::parse("application/json").map_err(|e| Error::Message(e.to_string()))?;
    b.multipart(
        MultiPart::mixed()
            .singlepart(SinglePart::plain(d.text(cfg.max_lines)))
            .singlepart(Attachment::new(name).body(d.json(), json)),
    )
    .map_err(|e| Error::Message(e.to_string()))
}

/// A transport to the configured relay (no connection is made until a send).
fn transport(cfg: &EmailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, Error> {
    let server = format!("{}:{}", cfg.host, cfg.port);
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

/// Deliver one digest to every recipient.
pub async fn send(cfg: &EmailConfig, d: &Digest) -> Result<(), Error> {
    let msg = message(cfg, d)?;
    let t = transport(cfg)?;
    let server = format!("{}:{}", cfg.host, cfg.port);
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
    use crate::expose::digest::Scope;
    use crate::state::View;

    const DAY: Duration = Duration::from_secs(86_400);

    /// A valid, enabled config from `f`.
    fn config(f: EmailFile) -> EmailConfig {
        let mut problems = Vec::new();
        let f = EmailFile { enabled: true, ..f };
        build(&f, &mut problems).unwrap_or_else(|| panic!("invalid: {problems:?}"))
    }

    /// The digest of an empty state at `now`.
    fn empty_digest(now: UnixSeconds) -> Digest {
        let scope = Scope {
            since: 0.0,
            now,
            min_cvss: 7.0,
        };
        Digest::build(&View::default(), Vec::new(), false, scope)
    }

    #[test]
    fn due_after_an_interval_or_after_the_first_scan() {
        assert_eq!(due_in(None, false, 1000.0, DAY), None);
        assert_eq!(due_in(None, true, 1000.0, DAY), Some(Duration::ZERO));
        assert_eq!(
            due_in(Some(1000.0), true, 1000.0 + 3600.0, DAY),
            Some(DAY - Duration::from_secs(3600))
        );
        assert_eq!(
            due_in(Some(1000.0), true, 1000.0 + 2.0 * 86_400.0, DAY),
            Some(Duration::ZERO),
            "overdue: at once"
        );
        assert_eq!(
            due_in(Some(1_000_000.0), true, 1000.0, DAY),
            Some(DAY),
            "clock set back"
        );
        assert_eq!(window_start(Some(5.0), 100_000.0, DAY), 5.0);
        assert_eq!(window_start(None, 100_000.0, DAY), 100_000.0 - 86_400.0);
    }

    #[test]
    fn the_message_has_subject_recipients_body_and_json_attachment() {
        let cfg = config(EmailFile {
            to: vec!["Ops <ops@example.org>".into(), "sec@example.org".into()],
            from: "Stinger <stinger@example.org>".into(),
            ..Default::default()
        });
        let d = empty_digest(1_764_000_000.0);
        let raw = String::from_utf8(message(&cfg, &d).unwrap().formatted()).unwrap();
        assert!(
            raw.contains("Subject: [stinger] nothing unexpected, no changes"),
            "{raw}"
        );
        assert!(
            raw.contains("To: Ops <ops@example.org>, sec@example.org"),
            "{raw}"
        );
        assert!(raw.contains("From: Stinger <stinger@example.org>"), "{raw}");
        assert!(raw.contains("multipart/mixed"), "{raw}");
        assert!(
            raw.contains("filename=\"stinger-digest-2025-11-24.json\""),
            "{raw}"
        );
        assert!(raw.contains("0 hosts scanned"), "{raw}");
    }

    #[tokio::test]
    async fn a_relay_that_refuses_connections_is_a_clear_error() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let cfg = config(EmailFile {
            smtp_server: format!("127.0.0.1:{port}"),
            tls: TlsMode::None,
            to: vec!["ops@example.org".into()],
            timeout: Duration::from_secs(5),
            ..Default::default()
        });
        let d = empty_digest(1.0);
        let e = send(&cfg, &d).await.unwrap_err();
        assert_eq!(e.kind(), "smtp");
        assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    }
}
