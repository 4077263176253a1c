//! exporter-toolkit web configuration (`--web.config.file`): TLS and bcrypt basic auth for the
//! HTTP server; read strictly, re-read when it changes (the file or the certificates it names,
//! checked at most once a second when a connection arrives).

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use base64::Engine as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
};
use serde::de::IgnoredAny;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The realm sent with a 401.
const REALM_HEADER: &str = "Basic realm=\"stinger\"";
/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// After shutdown, open connections get this long to finish their requests (the app waits 10 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);
/// The files are looked at no more often than this.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Successful verifications remembered; the cache is emptied when it grows past this.
const AUTH_CACHE_MAX: usize = 1024;
/// The only headers `http_server_config.headers` may set, with their allowed values (empty: any).
const ALLOWED_HEADERS: [(&str, &[&str]); 5] = [
    ("Content-Security-Policy", &[]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-XSS-Protection", &[]),
    ("Strict-Transport-Security", &[]),
];
const CLIENT_AUTH_TYPES: &str = "NoClientCert, RequestClientCert, RequireAnyClientCert, \
                                 VerifyClientCertIfGiven, RequireAndVerifyClientCert";

/// Web config errors. Each names the file, the key and what is wrong; none contains a password,
/// a hash or key material.
#[derive(Debug, thiserror::Error)]
pub enum WebConfigError {
    #[error("web config file {}: cannot read it: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// YAML syntax, a wrong type, or an unknown key (the message names it).
    #[error("web config file {}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("web config file {}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
    #[error("web config file {}: {key} is not supported by stinger ({why}); remove it", path.display())]
    Unsupported {
        path: PathBuf,
        key: &'static str,
        why: &'static str,
    },
    #[error("web config file {}: {key}: cannot read {}: {source}", path.display(), file.display())]
    File {
        path: PathBuf,
        key: &'static str,
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("the HTTP server failed: {0}")]
    Serve(std::io::Error),
}

impl WebConfigError {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            WebConfigError::Read { .. } => "web_config_read",
            WebConfigError::Syntax { .. } => "web_config_syntax",
            WebConfigError::Invalid { .. } => "web_config_invalid",
            WebConfigError::Unsupported { .. } => "web_config_unsupported",
            WebConfigError::File { .. } => "web_config_file",
            WebConfigError::Serve(_) => "serve",
        }
    }
}

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
struct RawTls {
    cert_file: Option<String>,
    key_file: Option<String>,
    cert: Option<String>,
    key: Option<String>,
    client_auth_type: Option<String>,
    client_ca_file: Option<String>,
    client_ca: Option<String>,
    min_version: Option<String>,
    max_version: Option<String>,
    prefer_server_cipher_suites: Option<bool>,
    cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<BTreeMap<String, String>>,
}

/// exporter-toolkit's `client_auth_type` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientAuth {
    NoClientCert,
    RequestClientCert,
    RequireAnyClientCert,
    VerifyClientCertIfGiven,
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Option<ClientAuth> {
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

    fn as_str(self) -> &'static str {
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
struct Loaded {
    /// `None`: plain HTTP.
    tls: Option<Arc<ServerConfig>>,
    client_auth: ClientAuth,
    /// user → bcrypt hash. Empty: no authentication.
    users: HashMap<String, String>,
    /// A hash of a throw-away password at the users' highest cost, checked for unknown users so
    /// that timing does not tell which names exist.
    dummy_hash: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// Whether the file asked for HTTP/2 (default true); we serve HTTP/1.1 only.
    http2: bool,
    /// The files this config was built from besides the config file itself (certificates, key, CA).
    referenced: Vec<PathBuf>,
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

/// Read and check a web config file (TLS files included) without serving; for a start-up check.
pub fn validate(path: &Path) -> Result<(), WebConfigError> {
    load(path).map(|_| ())
}

struct Ctx<'a> {
    path: &'a Path,
    dir: &'a Path,
}

impl Ctx<'_> {
    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> WebConfigError {
        WebConfigError::Invalid {
            path: self.path.to_owned(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn unsupported(&self, key: &'static str, why: &'static str) -> WebConfigError {
        WebConfigError::Unsupported {
            path: self.path.to_owned(),
            key,
            why,
        }
    }

    /// Read a referenced file (`key` names the setting), relative to the config file's directory.
    fn read(&self, key: &'static str, file: &Path) -> Result<Vec<u8>, WebConfigError> {
        std::fs::read(file).map_err(|source| WebConfigError::File {
            path: self.path.to_owned(),
            key,
            file: file.to_owned(),
            source,
        })
    }
}

/// Empty strings count as unset, as in exporter-toolkit.
fn set(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn load(path: &Path) -> Result<Loaded, WebConfigError> {
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

/// Where PEM text came from: a file (resolved against the config's directory) or inline text.
enum Pem {
    File(PathBuf),
    Inline,
}

/// PEM text and the setting it came from.
struct PemInput {
    key: &'static str,
    source: Pem,
    bytes: Vec<u8>,
}

/// Pick `file_key` or `inline_key` (at most one may be set) and return the PEM bytes.
fn pem_source(
    ctx: &Ctx<'_>,
    file_key: &'static str,
    file: Option<String>,
    inline_key: &'static str,
    inline: Option<String>,
) -> Result<Option<PemInput>, WebConfigError> {
    match (set(file), set(inline)) {
        (Some(_), Some(_)) => Err(ctx.invalid(
            file_key,
            format!("set {file_key} or {inline_key}, not both"),
        )),
        (Some(f), None) => {
            let p = ctx.dir.join(f);
            let bytes = ctx.read(file_key, &p)?;
            Ok(Some(PemInput {
                key: file_key,
                source: Pem::File(p),
                bytes,
            }))
        }
        (None, Some(text)) => Ok(Some(PemInput {
            key: inline_key,
            source: Pem::Inline,
            bytes: text.into_bytes(),
        })),
        (None, None) => Ok(None),
    }
}

fn describe(pem: &Pem) -> String {
    match pem {
        Pem::File(p) => p.display().to_string(),
        Pem::Inline => "the inline PEM".to_owned(),
    }
}

fn parse_certs(
    ctx: &Ctx<'_>,
    pem: &PemInput,
) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let certs = CertificateDer::pem_slice_iter(&pem.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ctx.invalid(pem.key, format!("{}: bad PEM: {e}", describe(&pem.source))))?;
    if certs.is_empty() {
        return Err(ctx.invalid(
            pem.key,
            format!("{}: no CERTIFICATE block found", describe(&pem.source)),
        ));
    }
    Ok(certs)
}

fn parse_version(
    ctx: &Ctx<'_>,
    key: &'static str,
    v: Option<String>,
    default: &'static rustls::SupportedProtocolVersion,
) -> Result<&'static rustls::SupportedProtocolVersion, WebConfigError> {
    match set(v).as_deref() {
        None => Ok(default),
        Some("TLS12") => Ok(&rustls::version::TLS12),
        Some("TLS13") => Ok(&rustls::version::TLS13),
        Some("TLS10" | "TLS11") => Err(ctx.invalid(
            key,
            "TLS 1.0 and 1.1 are not supported (rustls implements TLS12 and TLS13)",
        )),
        Some(other) => Err(ctx.invalid(
            key,
            format!("unknown TLS version {other:?}; use TLS12 or TLS13"),
        )),
    }
}

type TlsParts = (Option<Arc<ServerConfig>>, ClientAuth, Vec<PathBuf>);

fn build_tls(ctx: &Ctx<'_>, t: RawTls) -> Result<TlsParts, WebConfigError> {
    if t.cipher_suites.is_some() {
        return Err(ctx.unsupported(
            "tls_server_config.cipher_suites",
            "rustls only offers its own safe cipher suites",
        ));
    }
    if t.curve_preferences.is_some() {
        return Err(ctx.unsupported(
            "tls_server_config.curve_preferences",
            "rustls only offers its own safe key-exchange groups",
        ));
    }
    if t.client_allowed_sans.is_some() {
        return Err(ctx.unsupported(
            "tls_server_config.client_allowed_sans",
            "client certificates are checked against client_ca_file only",
        ));
    }
    let min = parse_version(
        ctx,
        "tls_server_config.min_version",
        t.min_version,
        &rustls::version::TLS12,
    )?;
    let max = parse_version(
        ctx,
        "tls_server_config.max_version",
        t.max_version,
        &rustls::version::TLS13,
    )?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match (min.version, max.version)
    {
        (a, b) if a == b => vec![min],
        (rustls::ProtocolVersion::TLSv1_2, rustls::ProtocolVersion::TLSv1_3) => vec![max, min],
        _ => return Err(ctx.invalid("tls_server_config.max_version", "is lower than min_version")),
    };
    let client_auth_type = set(t.client_auth_type);
    let client_auth = match client_auth_type.as_deref() {
        None => ClientAuth::NoClientCert,
        Some(s) => ClientAuth::parse(s).ok_or_else(|| {
            ctx.invalid(
                "tls_server_config.client_auth_type",
                format!("unknown value {s:?}; use one of {CLIENT_AUTH_TYPES}"),
            )
        })?,
    };

    // exporter-toolkit: TLS is on as soon as any certificate, key, CA or client auth is set.
    let enabled = [
        &t.cert_file,
        &t.cert,
        &t.key_file,
        &t.key,
        &t.client_ca_file,
        &t.client_ca,
    ]
    .iter()
    .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
        || client_auth_type.is_some();
    if !enabled {
        return Ok((None, ClientAuth::NoClientCert, Vec::new()));
    }

    let mut referenced = Vec::new();
    let cert = pem_source(
        ctx,
        "tls_server_config.cert_file",
        t.cert_file,
        "tls_server_config.cert",
        t.cert,
    )?
    .ok_or_else(|| {
        ctx.invalid(
            "tls_server_config.cert_file",
            "missing: set cert_file (or cert), or leave tls_server_config out to serve plain HTTP",
        )
    })?;
    let key_input = pem_source(
        ctx,
        "tls_server_config.key_file",
        t.key_file,
        "tls_server_config.key",
        t.key,
    )?
    .ok_or_else(|| {
        ctx.invalid(
            "tls_server_config.key_file",
            "missing: set key_file (or key) next to the certificate",
        )
    })?;
    let chain = parse_certs(ctx, &cert)?;
    let key = PrivateKeyDer::from_pem_slice(&key_input.bytes).map_err(|e| {
        ctx.invalid(
            key_input.key,
            format!(
                "{}: no usable PRIVATE KEY block: {e}",
                describe(&key_input.source)
            ),
        )
    })?;
    let pair_keys = format!("{}/{}", cert.key, key_input.key);
    for pem in [cert.source, key_input.source] {
        if let Pem::File(p) = pem {
            referenced.push(p);
        }
    }

    let ca = pem_source(
        ctx,
        "tls_server_config.client_ca_file",
        t.client_ca_file,
        "tls_server_config.client_ca",
        t.client_ca,
    )?;
    let roots = match ca {
        None => None,
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for der in parse_certs(ctx, &ca)? {
                roots.add(der).map_err(|e| {
                    ctx.invalid(
                        ca.key,
                        format!("{}: not a usable CA certificate: {e}", describe(&ca.source)),
                    )
                })?;
            }
            if let Pem::File(p) = ca.source {
                referenced.push(p);
            }
            Some(roots)
        }
    };

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier: Arc<dyn ClientCertVerifier> = match (client_auth, roots) {
        (ClientAuth::NoClientCert, Some(_)) => {
            return Err(ctx.invalid(
                "tls_server_config.client_ca_file",
                "a client CA is set but client_auth_type is NoClientCert; set client_auth_type \
                 (RequireAndVerifyClientCert for mTLS) or remove the CA",
            ))
        }
        (ClientAuth::NoClientCert, None) => Arc::new(rustls::server::NoClientAuth),
        (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, roots) => {
            Arc::new(AnyClientCert {
                mandatory: client_auth == ClientAuth::RequireAnyClientCert,
                hints: roots.map(|r| r.subjects()).unwrap_or_default(),
                algorithms: provider.signature_verification_algorithms,
            })
        }
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, None) => {
            return Err(ctx.invalid(
                "tls_server_config.client_ca_file",
                format!(
                    "required when client_auth_type is {} (stinger does not fall back to the system CAs)",
                    client_auth.as_str()
                ),
            ))
        }
        (ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert, Some(r)) => {
            let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(r), provider.clone());
            let builder = if client_auth == ClientAuth::VerifyClientCertIfGiven {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            builder.build().map_err(|e| {
                ctx.invalid("tls_server_config.client_ca_file", e.to_string())
            })?
        }
    };

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| ctx.invalid("tls_server_config.min_version", e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| {
            ctx.invalid(
                pair_keys,
                format!("the certificate and key cannot be used together: {e}"),
            )
        })?;
    // Go's PreferServerCipherSuites (default true there) is rustls' ignore_client_order.
    config.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    // We speak HTTP/1.1 only; saying so keeps ALPN-capable clients from trying h2.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Some(Arc::new(config)), client_auth, referenced))
}

/// RequestClientCert / RequireAnyClientCert, as in Go's crypto/tls: a client certificate is asked
/// for (and, for RequireAny, must be sent) but its chain is NOT verified against any CA. What is
/// checked: the handshake signature, with the certificate's key, so the client holds the private key
/// of a well-formed X.509 certificate. A configured client CA is only sent as a hint.
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

// ---------------------------------------------------------------------------------------------
// Basic auth and headers.

/// What the middleware and the accept loop share.
struct Shared {
    current: RwLock<Arc<Loaded>>,
    /// SHA-256 of (user, configured hash, password) for verifications that succeeded.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time (it is CPU-bound by design), as in exporter-toolkit.
    bcrypt_gate: tokio::sync::Semaphore,
}

impl Shared {
    fn new(loaded: Loaded) -> Shared {
        Shared {
            current: RwLock::new(Arc::new(loaded)),
            verified: Mutex::new(HashSet::new()),
            bcrypt_gate: tokio::sync::Semaphore::new(1),
        }
    }

    fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn replace(&self, loaded: Loaded) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Does the request carry valid basic-auth credentials for `config`?
    async fn authorized(&self, config: &Loaded, credentials: Option<(String, Vec<u8>)>) -> bool {
        let Some((user, password)) = credentials else {
            return false;
        };
        let (hash, known) = match config.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (config.dummy_hash.as_str(), false),
        };
        let key = cache_key(&user, hash, &password);
        if known
            && self
                .verified
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&key)
        {
            return true;
        }
        let Ok(_permit) = self.bcrypt_gate.acquire().await else {
            return false;
        };
        let hash = hash.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false)
            && known;
        if ok {
            let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified.len() >= AUTH_CACHE_MAX {
                verified.clear();
            }
            verified.insert(key);
        }
        ok
    }
}

/// `Authorization: Basic base64(user:password)`.
fn basic_credentials(req: &Request) -> Option<(String, Vec<u8>)> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let colon = decoded.iter().position(|b| *b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

fn cache_key(user: &str, hash: &str, password: &[u8]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user.as_bytes(), hash.as_bytes(), password] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The middleware: basic auth on every path (as exporter-toolkit), then the configured headers on
/// every response, 401s included.
async fn guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let config = shared.current();
    let allowed =
        config.users.is_empty() || shared.authorized(&config, basic_credentials(&req)).await;
    let mut response = if allowed {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, REALM_HEADER)],
            "Unauthorized\n",
        )
            .into_response()
    };
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Serving.

/// Serve `router` on `listener` until `shutdown` fires, then drain open connections (at most 8 s).
///
/// Without a web config this is plain `axum::serve`. With one, the file is checked first (an error
/// is returned before anything is served), then connections are accepted here: TLS if the file has
/// a `tls_server_config`, basic auth if it has users, extra headers if it has any. When the file or
/// a certificate, key or CA file it names changes (looked at no more than once a second, when a
/// connection arrives), it is read again; an invalid new version is logged and the old one kept.
/// Turning TLS on or off needs a restart.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    web_config: Option<PathBuf>,
    shutdown: CancellationToken,
) -> Result<(), WebConfigError> {
    let Some(path) = web_config else {
        return axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .map_err(WebConfigError::Serve);
    };
    let loaded = load_blocking(path.clone()).await?;
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        file = %path.display(),
        %address,
        tls = loaded.tls.is_some(),
        client_auth = loaded.client_auth.as_str(),
        basic_auth = !loaded.users.is_empty(),
        http2 = false,
        "web config loaded"
    );
    if loaded.http2 && loaded.tls.is_some() {
        tracing::debug!("http_server_config.http2 is ignored: stinger serves HTTP/1.1 only");
    }
    let mut reloader = Reloader::new(path, &loaded);
    let shared = Arc::new(Shared::new(loaded));
    let router = router.layer(axum::middleware::from_fn_with_state(shared.clone(), guard));

    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let tcp = match accepted {
            Ok((tcp, _peer)) => tcp,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait a little instead of spinning.
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
        };
        let _ = tcp.set_nodelay(true);
        reloader.maybe_reload(&shared).await;
        let tls = shared.current().tls.clone();
        tracker.spawn(connection(
            tcp,
            tls,
            router.clone(),
            shutdown.clone(),
            hard_stop.clone(),
        ));
    }
    drop(listener);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "HTTP connections did not drain in time; closing them"
        );
        hard_stop.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
    }
    Ok(())
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

async fn load_blocking(path: PathBuf) -> Result<Loaded, WebConfigError> {
    let p = path.clone();
    tokio::task::spawn_blocking(move || load(&p))
        .await
        .map_err(|e| WebConfigError::Read {
            path,
            source: std::io::Error::other(e.to_string()),
        })?
}

/// One connection: TLS handshake (bounded), then HTTP/1.1 until done or shut down.
async fn connection(
    tcp: TcpStream,
    tls: Option<Arc<ServerConfig>>,
    router: Router,
    shutdown: CancellationToken,
    hard_stop: CancellationToken,
) {
    match tls {
        None => http1(tcp, router, shutdown, hard_stop).await,
        Some(config) => {
            let handshake =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(config).accept(tcp));
            let stream = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = handshake => r,
            };
            match stream {
                Ok(Ok(stream)) => http1(stream, router, shutdown, hard_stop).await,
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        }
    }
}

async fn http1<I>(io: I, router: Router, shutdown: CancellationToken, hard_stop: CancellationToken)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(router));
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            // Finish the request in flight, then close; idle keep-alive connections close now.
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                r = conn.as_mut() => r,
                _ = hard_stop.cancelled() => return,
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "HTTP connection ended with an error");
    }
}

/// Re-reads the config when it or a file it names changes.
struct Reloader {
    path: PathBuf,
    referenced: Vec<PathBuf>,
    fingerprint: Vec<Option<(SystemTime, u64)>>,
    last_check: Instant,
}

fn fingerprint(files: &[PathBuf]) -> Vec<Option<(SystemTime, u64)>> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

impl Reloader {
    fn new(path: PathBuf, loaded: &Loaded) -> Reloader {
        let referenced = loaded.referenced.clone();
        let fingerprint = fingerprint(&Self::files(&path, &referenced));
        Reloader {
            path,
            referenced,
            fingerprint,
            last_check: Instant::now(),
        }
    }

    fn files(path: &Path, referenced: &[PathBuf]) -> Vec<PathBuf> {
        std::iter::once(path.to_owned())
            .chain(referenced.iter().cloned())
            .collect()
    }

    async fn maybe_reload(&mut self, shared: &Shared) {
        if self.last_check.elapsed() < RELOAD_CHECK_INTERVAL {
            return;
        }
        self.last_check = Instant::now();
        let files = Self::files(&self.path, &self.referenced);
        let path = self.path.clone();
        let old = self.fingerprint.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let now = fingerprint(&files);
            if now == old {
                None
            } else {
                Some((now, load(&path)))
            }
        })
        .await;
        let Ok(Some((now, result))) = checked else {
            return;
        };
        // Remember what we looked at even when it fails, so a broken file is logged once, not
        // every second; the next change is tried again.
        self.fingerprint = now;
        let file = self.path.display().to_string();
        match result {
            Ok(loaded) if loaded.tls.is_some() != shared.current().tls.is_some() => {
                tracing::error!(
                    %file,
                    "web config changed: turning TLS on or off needs a restart; keeping the previous configuration"
                );
            }
            Ok(loaded) => {
                tracing::info!(
                    %file,
                    tls = loaded.tls.is_some(),
                    client_auth = loaded.client_auth.as_str(),
                    basic_auth = !loaded.users.is_empty(),
                    "web config reloaded"
                );
                if loaded.referenced != self.referenced {
                    self.referenced = loaded.referenced.clone();
                    self.fingerprint = fingerprint(&Self::files(&self.path, &self.referenced));
                }
                shared.replace(loaded);
            }
            Err(e) => {
                tracing::error!(
                    %file,
                    error = %e,
                    kind = e.kind(),
                    "web config reload failed; keeping the previous configuration"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::ServerName;
    use rustls::ClientConfig;
    use std::net::SocketAddr;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::task::JoinHandle;
    use tokio_rustls::TlsConnector;

    const WAIT: Duration = Duration::from_secs(10);

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    fn load_str(dir: &Path, yaml: &str) -> Result<Loaded, WebConfigError> {
        load(&write(dir, "web.yml", yaml))
    }

    /// A CA, a server certificate for localhost/127.0.0.1, a client certificate from the same CA
    /// and one from an unrelated CA; all written into `dir` as PEM.
    struct Pki {
        ca: String,
        client_cert: String,
        client_key: String,
        stranger_cert: String,
        stranger_key: String,
    }

    fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    }

    fn leaf(
        issuer: &Issuer<'static, KeyPair>,
        names: &[&str],
        eku: ExtendedKeyUsagePurpose,
    ) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, "leaf");
        params.extended_key_usages = vec![eku];
        let cert = params.signed_by(&key, issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn pki(dir: &Path) -> Pki {
        let (ca_pem, issuer) = ca("stinger test CA");
        let (server_cert, server_key) = leaf(
            &issuer,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            leaf(&issuer, &["client"], ExtendedKeyUsagePurpose::ClientAuth);
        let (_, other) = ca("some other CA");
        let (stranger_cert, stranger_key) =
            leaf(&other, &["stranger"], ExtendedKeyUsagePurpose::ClientAuth);
        write(dir, "ca.pem", &ca_pem);
        write(dir, "server.pem", &server_cert);
        write(dir, "server.key", &server_key);
        Pki {
            ca: ca_pem,
            client_cert,
            client_key,
            stranger_cert,
            stranger_key,
        }
    }

    fn tls_yaml(extra_tls: &str, rest: &str) -> String {
        format!("tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{extra_tls}{rest}")
    }

    fn users_yaml(users: &[(&str, &str)]) -> String {
        let mut s = String::from("basic_auth_users:\n");
        for (u, pw) in users {
            s.push_str(&format!("  {u}: '{}'\n", bcrypt::hash(pw, 4).unwrap()));
        }
        s
    }

    async fn start(
        config: Option<PathBuf>,
    ) -> (
        SocketAddr,
        CancellationToken,
        JoinHandle<Result<(), WebConfigError>>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route("/-/healthy", get(|| async { "Healthy\n" }));
        let token = CancellationToken::new();
        let handle = tokio::spawn(serve(listener, router, config, token.clone()));
        (addr, token, handle)
    }

    async fn stop(token: CancellationToken, handle: JoinHandle<Result<(), WebConfigError>>) {
        token.cancel();
        let r = tokio::time::timeout(WAIT, handle)
            .await
            .expect("server stops in time");
        r.unwrap().unwrap();
    }

    fn client(pki: &Pki, cert: Option<(&str, &str)>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pki.ca.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
        let config = match cert {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    CertificateDer::pem_slice_iter(cert.as_bytes())
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap(),
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
        };
        Arc::new(config)
    }

    /// Status line + headers (lower-cased names) + body, or an error string.
    struct Reply {
        status: u16,
        head: String,
        body: String,
    }

    fn request_text(auth: Option<(&str, &str)>) -> String {
        let mut req =
            String::from("GET /-/healthy HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        if let Some((u, p)) = auth {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            req.push_str(&format!("Authorization: Basic {b}\r\n"));
        }
        req.push_str("\r\n");
        req
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        mut s: S,
        auth: Option<(&str, &str)>,
    ) -> Result<Reply, String> {
        s.write_all(request_text(auth).as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        if let Err(e) = s.read_to_end(&mut buf).await {
            if buf.is_empty() {
                return Err(e.to_string());
            }
        }
        let text = String::from_utf8_lossy(&buf).to_string();
        let (head, body) = text
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("no HTTP response: {text:?}"))?;
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status: {head:?}"))?;
        Ok(Reply {
            status,
            head: head.to_ascii_lowercase(),
            body: body.to_owned(),
        })
    }

    async fn https(
        addr: SocketAddr,
        config: Arc<ClientConfig>,
        auth: Option<(&str, &str)>,
    ) -> Result<Reply, String> {
        let go = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = ServerName::try_from("localhost").unwrap();
            let tls = TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            exchange(tls, auth).await
        };
        tokio::time::timeout(WAIT, go)
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    async fn http(addr: SocketAddr, auth: Option<(&str, &str)>) -> Result<Reply, String> {
        let go = async {
            let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            exchange(tcp, auth).await
        };
        tokio::time::timeout(WAIT, go)
            .await
            .map_err(|_| "timed out".to_owned())?
    }

    // --- strict parsing ---------------------------------------------------------------------

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_str(
            dir.path(),
            "tls_server_config:\n  cert_file: a\n  bogus_key: 1\n",
        )
        .unwrap_err();
        assert_eq!(e.kind(), "web_config_syntax");
        let m = e.to_string();
        assert!(m.contains("bogus_key") && m.contains("web.yml"), "{m}");
        let e = load_str(dir.path(), "basic_auth_user: {}\n").unwrap_err();
        assert!(e.to_string().contains("basic_auth_user"), "{e}");
        let e = load_str(dir.path(), "http_server_config:\n  http3: true\n").unwrap_err();
        assert!(e.to_string().contains("http3"), "{e}");
    }

    #[test]
    fn bad_client_auth_type() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        let e = load_str(
            dir.path(),
            &tls_yaml("  client_auth_type: RequireEverything\n", ""),
        )
        .unwrap_err();
        assert_eq!(e.kind(), "web_config_invalid");
        let m = e.to_string();
        assert!(m.contains("tls_server_config.client_auth_type"), "{m}");
        assert!(
            m.contains("RequireEverything") && m.contains("RequireAndVerifyClientCert"),
            "{m}"
        );
    }

    #[test]
    fn relative_paths_resolve_against_the_config_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("conf");
        std::fs::create_dir(&sub).unwrap();
        pki(&sub);
        // The working directory is the crate, not `sub`: this only loads if paths are resolved.
        let loaded = load(&write(&sub, "web.yml", &tls_yaml("", ""))).unwrap();
        assert!(loaded.tls.is_some());
        assert_eq!(
            loaded.referenced,
            vec![sub.join("server.pem"), sub.join("server.key")]
        );
    }

    #[test]
    fn missing_cert_file_names_key_and_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_str(
            dir.path(),
            "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n",
        )
        .unwrap_err();
        assert_eq!(e.kind(), "web_config_file");
        let m = e.to_string();
        assert!(m.contains("web.yml"), "{m}");
        assert!(m.contains("tls_server_config.cert_file"), "{m}");
        assert!(
            m.contains(&dir.path().join("nope.pem").display().to_string()),
            "{m}"
        );
    }

    #[test]
    fn unsupported_settings_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        for (extra, rest, key) in [
            (
                "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
                "",
                "cipher_suites",
            ),
            ("  curve_preferences: [X25519]\n", "", "curve_preferences"),
            ("  client_allowed_sans: [a]\n", "", "client_allowed_sans"),
            (
                "",
                "rate_limit:\n  interval: 1s\n  burst: 2\n",
                "rate_limit",
            ),
        ] {
            let e = load_str(dir.path(), &tls_yaml(extra, rest)).unwrap_err();
            assert_eq!(e.kind(), "web_config_unsupported", "{e}");
            let m = e.to_string();
            assert!(m.contains(key) && m.contains("not supported"), "{m}");
        }
    }

    #[test]
    fn other_checks() {
        let dir = tempfile::tempdir().unwrap();
        pki(dir.path());
        // Empty file: plain HTTP, no auth.
        let l = load_str(dir.path(), "# nothing\n").unwrap();
        assert!(l.tls.is_none() && l.users.is_empty());
        // A password where a hash belongs: error, and the value is not echoed.
        let e = load_str(dir.path(), "basic_auth_users:\n  alice: hunter2\n").unwrap_err();
        assert!(e.to_string().contains("basic_auth_users.alice"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // Headers: only the five, with their fixed values.
        let e = load_str(
            dir.path(),
            "http_server_config:\n  headers:\n    Server: x\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("http_server_config.headers.Server"),
            "{e}"
        );
        let e = load_str(
            dir.path(),
            "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("deny"), "{e}");
        // TLS versions.
        let e = load_str(
            dir.path(),
            &tls_yaml("  min_version: TLS13\n  max_version: TLS12\n", ""),
        )
        .unwrap_err();
        assert!(e.to_string().contains("max_version"), "{e}");
        let e = load_str(dir.path(), &tls_yaml("  min_version: TLS10\n", "")).unwrap_err();
        assert!(e.to_string().contains("min_version"), "{e}");
        assert!(load_str(dir.path(), &tls_yaml("  min_version: TLS13\n", "")).is_ok());
        // Client CA without client auth, verification without CA.
        let e = load_str(dir.path(), &tls_yaml("  client_ca_file: ca.pem\n", "")).unwrap_err();
        assert!(e.to_string().contains("NoClientCert"), "{e}");
        let e = load_str(
            dir.path(),
            &tls_yaml("  client_auth_type: RequireAndVerifyClientCert\n", ""),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("tls_server_config.client_ca_file"),
            "{e}"
        );
        // A key that does not belong to the certificate.
        let other = KeyPair::generate().unwrap().serialize_pem();
        write(dir.path(), "other.key", &other);
        let e = load_str(
            dir.path(),
            "tls_server_config:\n  cert_file: server.pem\n  key_file: other.key\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("key_file"), "{e}");
        // Inline PEM works like the files.
        let inline = format!(
            "tls_server_config:\n  cert: |\n{}  key_file: server.key\n",
            std::fs::read_to_string(dir.path().join("server.pem"))
                .unwrap()
                .lines()
                .map(|l| format!("    {l}\n"))
                .collect::<String>()
        );
        assert!(load_str(dir.path(), &inline).unwrap().tls.is_some());
        // Debug never shows a hash.
        let l = load_str(dir.path(), &users_yaml(&[("alice", "pw")])).unwrap();
        assert!(!format!("{l:?}").contains("$2"), "{l:?}");
        assert!(validate(&dir.path().join("web.yml")).is_ok());
        assert_eq!(
            validate(&dir.path().join("missing.yml"))
                .unwrap_err()
                .kind(),
            "web_config_read"
        );
    }

    #[test]
    fn credentials_parsing() {
        let req = |v: &str| {
            Request::builder()
                .header(AUTHORIZATION, v)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let b = base64::engine::general_purpose::STANDARD.encode("al:ice:pa:ss");
        assert_eq!(
            basic_credentials(&req(&format!("basic {b}"))),
            Some(("al".to_owned(), b"ice:pa:ss".to_vec()))
        );
        assert_eq!(basic_credentials(&req(&format!("Bearer {b}"))), None);
        assert_eq!(basic_credentials(&req("Basic !!!")), None);
    }

    // --- real sockets ------------------------------------------------------------------------

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_with_basic_auth() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        let yaml = tls_yaml(
            "",
            &format!(
                "http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n{}",
                users_yaml(&[("alice", "s3cret")])
            ),
        );
        let cfg = write(dir.path(), "web.yml", &yaml);
        let (addr, token, handle) = start(Some(cfg)).await;
        let c = client(&pki, None);

        for auth in [None, Some(("alice", "wrong")), Some(("mallory", "s3cret"))] {
            let r = https(addr, c.clone(), auth).await.unwrap();
            assert_eq!(r.status, 401, "{auth:?}");
            assert!(
                r.head.contains("www-authenticate: basic realm=\"stinger\""),
                "{}",
                r.head
            );
            assert!(r.head.contains("x-frame-options: deny"), "{}", r.head);
        }
        for _ in 0..2 {
            // The second time comes from the cache.
            let r = https(addr, c.clone(), Some(("alice", "s3cret")))
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.body, "Healthy\n");
            assert!(r.head.contains("x-frame-options: deny"), "{}", r.head);
        }
        // Plain HTTP to the TLS port gets no HTTP answer.
        assert!(http(addr, Some(("alice", "s3cret"))).await.is_err());
        stop(token, handle).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mtls_require_and_verify() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        let cfg = write(
            dir.path(),
            "web.yml",
            &tls_yaml(
                "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
                "",
            ),
        );
        let (addr, token, handle) = start(Some(cfg)).await;
        let e = https(addr, client(&pki, None), None)
            .await
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("CertificateRequired"),
            "no client cert must fail: {e}"
        );
        let stranger = client(&pki, Some((&pki.stranger_cert, &pki.stranger_key)));
        let e = https(addr, stranger, None).await.err().unwrap_or_default();
        assert!(
            e.contains("UnknownCA"),
            "a cert from another CA must fail: {e}"
        );
        let good = client(&pki, Some((&pki.client_cert, &pki.client_key)));
        assert_eq!(https(addr, good, None).await.unwrap().status, 200);
        stop(token, handle).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn verify_if_given_and_require_any() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        let stranger = || client(&pki, Some((&pki.stranger_cert, &pki.stranger_key)));

        let cfg = write(
            dir.path(),
            "web.yml",
            &tls_yaml(
                "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n",
                "",
            ),
        );
        let (addr, token, handle) = start(Some(cfg)).await;
        assert_eq!(
            https(addr, client(&pki, None), None).await.unwrap().status,
            200
        );
        let e = https(addr, stranger(), None)
            .await
            .err()
            .unwrap_or_default();
        assert!(e.contains("UnknownCA"), "{e}");
        stop(token, handle).await;

        let cfg = write(
            dir.path(),
            "web.yml",
            &tls_yaml("  client_auth_type: RequireAnyClientCert\n", ""),
        );
        let (addr, token, handle) = start(Some(cfg)).await;
        let e = https(addr, client(&pki, None), None)
            .await
            .err()
            .unwrap_or_default();
        assert!(e.contains("CertificateRequired"), "{e}");
        // Not verified against any CA (Go's RequireAnyClientCert), but the key must match.
        assert_eq!(https(addr, stranger(), None).await.unwrap().status, 200);
        stop(token, handle).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reload_applies_new_users_and_keeps_old_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        let cfg = write(
            dir.path(),
            "web.yml",
            &tls_yaml("", &users_yaml(&[("alice", "a")])),
        );
        let (addr, token, handle) = start(Some(cfg.clone())).await;
        let c = client(&pki, None);
        assert_eq!(
            https(addr, c.clone(), Some(("alice", "a")))
                .await
                .unwrap()
                .status,
            200
        );
        assert_eq!(
            https(addr, c.clone(), Some(("bob", "b")))
                .await
                .unwrap()
                .status,
            401
        );

        write(
            dir.path(),
            "web.yml",
            &tls_yaml("", &users_yaml(&[("bob", "b")])),
        );
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            https(addr, c.clone(), Some(("bob", "b")))
                .await
                .unwrap()
                .status,
            200
        );
        assert_eq!(
            https(addr, c.clone(), Some(("alice", "a")))
                .await
                .unwrap()
                .status,
            401
        );

        // A broken file is logged and ignored: bob still works.
        write(dir.path(), "web.yml", "tls_server_config:\n  typo: 1\n");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            https(addr, c.clone(), Some(("bob", "b")))
                .await
                .unwrap()
                .status,
            200
        );

        // Turning TLS off needs a restart: still TLS, still bob.
        write(dir.path(), "web.yml", &users_yaml(&[("carol", "c")]));
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            https(addr, c.clone(), Some(("bob", "b")))
                .await
                .unwrap()
                .status,
            200
        );
        stop(token, handle).await;
        drop(cfg);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reload_picks_up_a_renewed_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let old = pki(dir.path());
        let cfg = write(dir.path(), "web.yml", &tls_yaml("", ""));
        let (addr, token, handle) = start(Some(cfg)).await;
        assert_eq!(
            https(addr, client(&old, None), None).await.unwrap().status,
            200
        );

        // New CA, certificate and key in the same files; the config file itself is untouched.
        let new = pki(dir.path());
        tokio::time::sleep(Duration::from_millis(1200)).await;
        assert_eq!(
            https(addr, client(&new, None), None).await.unwrap().status,
            200
        );
        let e = https(addr, client(&old, None), None)
            .await
            .err()
            .unwrap_or_default();
        assert!(e.contains("invalid peer certificate"), "{e}");
        stop(token, handle).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plain_http_with_basic_auth_and_without_config() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), "web.yml", &users_yaml(&[("alice", "a")]));
        let (addr, token, handle) = start(Some(cfg)).await;
        assert_eq!(http(addr, None).await.unwrap().status, 401);
        assert_eq!(http(addr, Some(("alice", "a"))).await.unwrap().status, 200);
        stop(token, handle).await;

        let (addr, token, handle) = start(None).await;
        assert_eq!(http(addr, None).await.unwrap().status, 200);
        stop(token, handle).await;

        // A bad file fails before serving.
        let bad = write(dir.path(), "bad.yml", "nonsense: true\n");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let e = serve(listener, Router::new(), Some(bad), CancellationToken::new())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("nonsense"), "{e}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_closes_idle_keepalive_connections() {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki(dir.path());
        let cfg = write(dir.path(), "web.yml", &tls_yaml("", ""));
        let (addr, token, handle) = start(Some(cfg)).await;
        // An open TLS connection that sent nothing yet must not hold shutdown up.
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let _idle = tokio::time::timeout(
            WAIT,
            TlsConnector::from(client(&pki, None)).connect(name, tcp),
        )
        .await
        .unwrap()
        .unwrap();
        let started = Instant::now();
        stop(token, handle).await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
