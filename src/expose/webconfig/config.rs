//! The file: its YAML shape (strict, unknown keys are errors), checked and built into `Loaded`;
//! the TLS part is built by `tls`.

use super::tls::build_tls;
use super::WebConfigError;
use axum::http::{HeaderName, HeaderValue};
use rustls::ServerConfig;
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The only headers `http_server_config.headers` may set, with their allowed values (empty: any).
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Content-Security-Policy", &[]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-XSS-Protection", &[]),
    ("Strict-Transport-Security", &[]),
];

// ---------------------------------------------------------------------------------------------
// The file, as written (strict: every struct denies unknown keys). No `Debug`: `key` is secret.

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
    rate_limit: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    pub(super) cert_file: Option<String>,
    pub(super) key_file: Option<String>,
    pub(super) cert: Option<String>,
    pub(super) key: Option<String>,
    pub(super) client_auth_type: Option<String>,
    pub(super) client_ca_file: Option<String>,
    pub(super) client_ca: Option<String>,
    pub(super) min_version: Option<String>,
    pub(super) max_version: Option<String>,
    pub(super) prefer_server_cipher_suites: Option<bool>,
    pub(super) cipher_suites: Option<IgnoredAny>,
    pub(super) curve_preferences: Option<IgnoredAny>,
    pub(super) client_allowed_sans: Option<IgnoredAny>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// exporter-toolkit's `client_auth_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    pub(super) fn parse(s: &str) -> Option<ClientAuth> {
        Some(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            // "RequireClientCert" is exporter-toolkit's old spelling, kept there for compatibility.
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            _ => return None,
        })
    }

    pub(super) fn as_str(self) -> &'static str {
        match self {
            ClientAuth::NoClientCert => "NoClientCert",
            ClientAuth::RequestClientCert => "RequestClientCert",
            ClientAuth::RequireAnyClientCert => "RequireAnyClientCert",
            ClientAuth::VerifyClientCertIfGiven => "VerifyClientCertIfGiven",
            ClientAuth::RequireAndVerifyClientCert => "RequireAndVerifyClientCert",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The file, checked and built.

/// A checked web config, ready to serve with.
pub(super) struct Loaded {
    /// `None`: plain HTTP.
    pub(super) tls: Option<Arc<ServerConfig>>,
    pub(super) client_auth: ClientAuth,
    /// user → bcrypt hash. Empty: no authentication.
    pub(super) users: HashMap<String, String>,
    /// A hash of a throw-away password at the users' highest cost, checked for unknown users so
    /// that timing does not tell which names exist.
    pub(super) dummy_hash: String,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    /// Whether the file asked for HTTP/2 (default true); we serve HTTP/1.1 only.
    pub(super) http2: bool,
    /// The files this config was built from besides the config file itself (certificates, key, CA).
    pub(super) referenced: Vec<PathBuf>,
}

impl std::fmt::Debug for Loaded {
    // By hand: never print a hash.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("Loaded")
            .field("tls", &self.tls.is_some())
            .field("client_auth", &self.client_auth)
            .field("users", &users)
            .field("headers", &self.headers)
            .field("http2", &self.http2)
            .field("referenced", &self.referenced)
            .finish()
    }
}

pub(super) struct Ctx<'a> {
    path: &'a Path,
    pub(super) dir: &'a Path,
}

impl Ctx<'_> {
    pub(super) fn invalid(
        &self,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    pub(super) fn unsupported(&self, key: &'static str, why: &'static str) -> WebConfigError {
        WebConfigError::Unsupported {
            path: self.path.to_owned(),
            key,
            why,
        }
    }

    /// Read a referenced file (`key` names the setting), relative to the config file's directory.
    pub(super) fn read(&self, key: &'static str, file: &Path) -> Result<Vec<u8>, WebConfigError> {
        std::fs::read(file).map_err(|source| WebConfigError::File {
            path: self.path.to_owned(),
            key,
            file: file.to_owned(),
            source,
        })
    }
}

/// Empty strings count as unset, as in exporter-toolkit.
pub(super) fn set(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

pub(super) fn load(path: &Path) -> Result<Loaded, WebConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| WebConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    // An empty file (or one holding only comments) is a valid, empty config.
    let raw: Option<RawConfig> =
        serde_norway::from_str(&text).map_err(|e| WebConfigError::Syntax {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let raw = raw.unwrap_or_default();
    let ctx = Ctx {
        path,
        dir: path.parent().unwrap_or(Path::new("")),
    };

    if raw.rate_limit.is_some() {
        return Err(ctx.unsupported(
            "rate_limit",
            "put a rate-limiting reverse proxy in front instead",
        ));
    }
    let http = raw.http_server_config.unwrap_or_default();
    let headers = check_headers(&ctx, http.headers.unwrap_or_default())?;
    let (users, dummy_hash) = check_users(&ctx, raw.basic_auth_users.unwrap_or_default())?;
    let (tls, client_auth, referenced) = match raw.tls_server_config {
        Some(t) => build_tls(&ctx, t)?,
        None => (None, ClientAuth::NoClientCert, Vec::new()),
    };
    Ok(Loaded {
        tls,
        client_auth,
        users,
        dummy_hash,
        headers,
        http2: http.http2.unwrap_or(true),
        referenced,
    })
}

fn check_headers(
    ctx: &Ctx<'_>,
    headers: BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(ctx.invalid(
                key,
                format!("this header cannot be set; allowed: {}", names.join(", ")),
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(ctx.invalid(
                key,
                format!(
                    "{value:?} is not allowed; use one of {}",
                    allowed.join(", ")
                ),
            ));
        }
        let header_name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| ctx.invalid(key.clone(), e.to_string()))?;
        let header_value = HeaderValue::from_str(&value)
            .map_err(|_| ctx.invalid(key, "not a valid header value"))?;
        out.push((header_name, header_value));
    }
    Ok(out)
}

/// Check the users; also returns the dummy hash for unknown users (empty when there are none).
fn check_users(
    ctx: &Ctx<'_>,
    users: BTreeMap<String, String>,
) -> Result<(HashMap<String, String>, String), WebConfigError> {
    let mut max_cost = None;
    for (user, hash) in &users {
        let key = format!("basic_auth_users.{user}");
        if user.contains(':') {
            return Err(ctx.invalid(
                key,
                "a user name cannot contain ':' (basic auth splits at it)",
            ));
        }
        match hash.parse::<bcrypt::HashParts>() {
            Ok(parts) => max_cost = max_cost.max(Some(parts.get_cost())),
            // Never echo the value: it may be a plain password put there by mistake.
            Err(_) => {
                return Err(ctx.invalid(
                    key,
                    "not a bcrypt hash ($2y$…/$2b$…/$2a$…); make one with `htpasswd -nBC 10 \"\" | tr -d ':\\n'`",
                ))
            }
        }
    }
    let dummy_hash = match max_cost {
        None => String::new(),
        Some(cost) => bcrypt::hash("stinger: not a password", cost)
            .map_err(|e| ctx.invalid("basic_auth_users", format!("unusable bcrypt cost: {e}")))?,
    };
    Ok((users.into_iter().collect(), dummy_hash))
}
