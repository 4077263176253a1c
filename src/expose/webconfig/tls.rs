//! `tls_server_config`: certificates, key and client CA read into a rustls [`ServerConfig`], and
//! the client-certificate verifier for each `client_auth_type` (the unverified ones are
//! [`crate::tls::AcceptAnyClientCert`]).

use super::config::{set, ClientAuth, Ctx, RawTls};
use super::WebConfigError;
use crate::tls::AcceptAnyClientCert;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::path::PathBuf;
use std::sync::Arc;

const CLIENT_AUTH_TYPES: &str = "NoClientCert, RequestClientCert, RequireAnyClientCert, \
                                 VerifyClientCertIfGiven, RequireAndVerifyClientCert";

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

pub(super) fn build_tls(ctx: &Ctx<'_>, t: RawTls) -> Result<TlsParts, WebConfigError> {
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
            Arc::new(AcceptAnyClientCert::new(
                client_auth == ClientAuth::RequireAnyClientCert,
                roots.map(|r| r.subjects()).unwrap_or_default(),
                &provider,
            ))
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
