//! The HTTP client under the Keystone [`Session`](super::keystone::Session): reqwest on rustls with
//! the ring provider and the cloud's TLS settings (`cacert` bundle, `verify: false`, client `cert` and
//! `key`), one timeout per request, and a redirect policy that never leaves the origin (a redirect to
//! another scheme, host or port is not followed, so the token never travels there). Also the helpers
//! every reply goes through: reading a body under a size cap, the short message of an error body,
//! and the text of a transport error.
//!
//! Roots: with `cacert`, exactly the certificates of that PEM bundle; otherwise the system store
//! through reqwest's own rustls backend, which verifies with `rustls-platform-verifier` (Stinger cannot
//! name that crate without depending on it directly; reqwest takes the process-wide default rustls
//! provider for it, so ring is installed as that default when none is).

use super::api::{Error, ServiceType};
use super::clouds::CloudConfig;
use crate::tls::AcceptAnyServerCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Redirects followed within one origin, at most.
const MAX_REDIRECTS: usize = 5;

/// A reqwest client for one cloud. Errors are [`Error::Config`] naming the file at fault.
pub(crate) fn client(
    cloud: &CloudConfig,
    timeout: Duration,
    user_agent: &str,
) -> Result<reqwest::Client, Error> {
    let config_err = |reason: String| Error::Config {
        cloud: cloud.name.clone(),
        reason,
    };
    let builder = reqwest::Client::builder()
        .user_agent(user_agent)
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(same_origin_redirects());
    let identity = client_identity(cloud)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = if !cloud.verify || cloud.cacert.is_some() {
        let tls = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| config_err(format!("TLS set-up failed: {e}")))?;
        let tls = if !cloud.verify {
            tracing::warn!(
                cloud = %cloud.name,
                "TLS certificate verification is off for this cloud (verify: false or insecure: \
                 true): anyone on the path can read its token; set cacert instead"
            );
            tls.dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(&provider)))
        } else {
            let path = cloud.cacert.as_deref().unwrap_or(Path::new(""));
            tls.with_root_certificates(roots(path).map_err(config_err)?)
        };
        let tls = match identity {
            Some(id) => tls.with_client_auth_cert(id.certs, id.key).map_err(|e| {
                config_err(format!(
                    "client certificate {} and key {} do not make a usable pair: {e}",
                    id.cert_path, id.key_path
                ))
            })?,
            None => tls.with_no_client_auth(),
        };
        builder.tls_backend_preconfigured(tls)
    } else {
        if CryptoProvider::get_default().is_none() {
            // Err only when another thread installed one first, which is just as good.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let builder = builder.tls_backend_rustls();
        match identity {
            Some(id) => {
                let identity = reqwest::Identity::from_pem(&id.pem).map_err(|e| {
                    config_err(format!(
                        "client certificate {} / key {} not usable: {e}",
                        id.cert_path, id.key_path
                    ))
                })?;
                builder.identity(identity)
            }
            None => builder,
        }
    };
    builder
        .build()
        .map_err(|e| config_err(format!("cannot build the HTTP client: {}", error_chain(&e))))
}

/// Follows a redirect only to the same scheme, host and port, at most [`MAX_REDIRECTS`] times; any
/// other redirect comes back as the 3xx reply itself.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same = attempt
            .previous()
            .last()
            .is_some_and(|prev| Origin::of(prev) == Origin::of(attempt.url()));
        if attempt.previous().len() > MAX_REDIRECTS {
            attempt.error("too many redirects")
        } else if same {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Scheme, host and port of a URL: where a token may be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    scheme: String,
    host: String,
    port: Option<u16>,
}

impl Origin {
    pub(crate) fn of(url: &reqwest::Url) -> Origin {
        Origin {
            scheme: url.scheme().to_ascii_lowercase(),
            host: url.host_str().unwrap_or("").to_ascii_lowercase(),
            port: url.port_or_known_default(),
        }
    }

    /// The origin of a URL string, if it parses.
    pub(crate) fn parse(url: &str) -> Option<Origin> {
        reqwest::Url::parse(url).ok().map(|u| Origin::of(&u))
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

/// The certificates of a PEM bundle; the error names the file.
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let certs = read_certs(path, "cacert")?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            format!(
                "cacert {} holds an unusable certificate: {e}; give a PEM bundle of CA certificates",
                path.display()
            )
        })?;
    }
    Ok(roots)
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let iter = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{what} {} is not valid PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{what} {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

struct ClientIdentity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    /// Certificates and key as one PEM text, for reqwest's own backend.
    pem: Vec<u8>,
    cert_path: String,
    key_path: String,
}

/// `cert` (and `key`, else the key is looked for in the `cert` file).
fn client_identity(cloud: &CloudConfig) -> Result<Option<ClientIdentity>, Error> {
    let Some(cert) = cloud.cert.as_deref() else {
        return Ok(None);
    };
    let key = cloud.key.as_deref().unwrap_or(cert);
    let config_err = |reason: String| Error::Config {
        cloud: cloud.name.clone(),
        reason,
    };
    let certs = read_certs(cert, "cert").map_err(config_err)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        config_err(format!(
            "cannot read a PEM private key from key {}: {e}",
            key.display()
        ))
    })?;
    let mut pem = std::fs::read(cert)
        .map_err(|e| config_err(format!("cannot read cert {}: {e}", cert.display())))?;
    if key != cert {
        pem.push(b'\n');
        pem.extend(
            std::fs::read(key)
                .map_err(|e| config_err(format!("cannot read key {}: {e}", key.display())))?,
        );
    }
    Ok(Some(ClientIdentity {
        certs,
        key: key_der,
        pem,
        cert_path: cert.display().to_string(),
        key_path: key.display().to_string(),
    }))
}

/// Why a body could not be read.
pub(crate) enum BodyError {
    /// Longer than the cap.
    TooLarge(usize),
    Http(reqwest::Error),
}

/// The whole body, refusing more than `cap` bytes.
pub(crate) async fn read_body(
    resp: &mut reqwest::Response,
    cap: usize,
) -> Result<Vec<u8>, BodyError> {
    let announced = resp.content_length();
    if announced.is_some_and(|n| n > u64::try_from(cap).unwrap_or(u64::MAX)) {
        return Err(BodyError::TooLarge(cap));
    }
    // Sized once when the length is announced: a page of a thousand servers is megabytes, and
    // growing it by doubling would hold two copies at a time.
    let mut body = Vec::with_capacity(announced.map_or(0, |n| usize::try_from(n).unwrap_or(0)));
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Http)? {
        if body.len() + chunk.len() > cap {
            return Err(BodyError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error a failed send or read becomes: [`Error::Timeout`] or [`Error::Transport`] (`what`, then
/// the error's source chain without the URL).
pub(crate) fn transport_error(
    service: ServiceType,
    path: &str,
    timeout: Duration,
    what: &str,
    e: reqwest::Error,
) -> Error {
    if e.is_timeout() {
        Error::Timeout {
            service,
            path: path.to_owned(),
            after: timeout,
        }
    } else {
        Error::Transport {
            service,
            path: path.to_owned(),
            reason: format!("{what}{}", error_chain(&e.without_url())),
        }
    }
}

/// An error and its sources, `: `-separated, repeats left out, at most 8 levels.
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        if parts.len() >= 8 {
            break;
        }
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

/// Longest message kept from an error body, in characters.
pub(crate) const MESSAGE_CHARS: usize = 200;

/// The short message of an OpenStack error body: `{"<fault>": {"message": ..}}` (Nova's
/// `itemNotFound`, Neutron's `NeutronError`, Keystone's `error`), a top-level `message`, an HTML
/// `<title>`, else the text itself; truncated to [`MESSAGE_CHARS`]. Empty: the status' reason phrase.
pub(crate) fn error_message(body: &[u8], status: u16) -> String {
    let reason = || {
        reqwest::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("no message")
            .to_owned()
    };
    let text = if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        json_message(&json).unwrap_or_else(|| json.to_string())
    } else {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.starts_with('<') {
            html_title(text).unwrap_or_default()
        } else {
            text.to_owned()
        }
    };
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return reason();
    }
    truncate(&text, MESSAGE_CHARS)
}

fn json_message(json: &serde_json::Value) -> Option<String> {
    let message = |v: &serde_json::Value| {
        ["message", "faultstring", "detail"]
            .iter()
            .find_map(|k| v.get(k).and_then(|m| m.as_str()).map(str::to_owned))
    };
    if let Some(m) = message(json) {
        return Some(m);
    }
    json.as_object()?.values().find_map(message)
}

fn html_title(html: &str) -> Option<String> {
    let lower = html.to_ascii_lowercase();
    let start = lower.find("<title>")? + "<title>".len();
    let end = start + lower[start..].find("</title>")?;
    html.get(start..end).map(str::to_owned)
}

/// At most `max` characters, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
