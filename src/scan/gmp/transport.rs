//! Where gvmd is and how to reach it: [`Endpoint`] (unix socket or TLS) and the connection it
//! opens, as one boxed byte stream. TLS is rustls on ring; certificate checks are on unless the
//! configuration turns them off (gvmd's default certificate is self-signed).

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

use super::Error;
use crate::tls::AcceptAnyServerCert;

/// gvmd's unix socket when it runs without `--listen`.
pub(crate) const DEFAULT_SOCKET: &str = "/run/gvmd/gvmd.sock";

/// How to reach gvmd.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// gvmd's unix socket (default [`DEFAULT_SOCKET`]); needs the socket's group.
    Unix(PathBuf),
    /// gvmd started with `--listen`: TLS on `addr` (`host:port`, port usually 9390).
    Tls {
        /// `host:port`; a host name is resolved at every connect.
        addr: String,
        /// PEM file with the CA (or the self-signed gvmd certificate) to trust. Required unless
        /// `insecure`.
        ca_file: Option<PathBuf>,
        /// Accept any certificate (logged loudly, once). gvmd's default certificate is
        /// self-signed; prefer `ca_file` with that certificate in it.
        insecure: bool,
        /// Name the certificate must carry (checked only with `ca_file`); empty = the host
        /// part of `addr`.
        server_name: String,
    },
}

impl Default for Endpoint {
    fn default() -> Self {
        Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
            Endpoint::Tls { addr, .. } => write!(f, "tls://{addr}"),
        }
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(path) => f.debug_tuple("Unix").field(path).finish(),
            Endpoint::Tls {
                addr,
                ca_file,
                insecure,
                server_name,
            } => f
                .debug_struct("Tls")
                .field("addr", addr)
                .field("ca_file", ca_file)
                .field("insecure", insecure)
                .field("server_name", server_name)
                .finish(),
        }
    }
}

/// Host part of `host:port` (`[v6]:port` unbracketed).
pub(super) fn host_of(addr: &str) -> &str {
    let host = match addr.rfind(':') {
        Some(i) if !addr[..i].contains(':') || addr[..i].ends_with(']') => &addr[..i],
        _ => addr,
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// An open connection to gvmd.
pub(super) trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

pub(super) type Stream = Box<dyn Io>;

static INSECURE_WARNED: AtomicBool = AtomicBool::new(false);

/// Opens the transport (TLS handshake included) within `connect_timeout`.
pub(super) async fn open(endpoint: &Endpoint, connect_timeout: Duration) -> Result<Stream, Error> {
    let label = endpoint.to_string();
    let timed_out = || Error::Connect {
        endpoint: label.clone(),
        source: io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "no connection within {}s (scan.gmp.connect_timeout)",
                connect_timeout.as_secs_f64()
            ),
        ),
    };
    match endpoint {
        Endpoint::Unix(path) => {
            let s = tokio::time::timeout(connect_timeout, UnixStream::connect(path))
                .await
                .map_err(|_| timed_out())?
                .map_err(|source| Error::Connect {
                    endpoint: label.clone(),
                    source,
                })?;
            Ok(Box::new(s))
        }
        Endpoint::Tls {
            addr,
            ca_file,
            insecure,
            server_name,
        } => {
            // Configuration problems surface before any network traffic.
            let config = client_config(&label, ca_file.as_ref(), *insecure)?;
            let name = if server_name.is_empty() {
                host_of(addr)
            } else {
                server_name.as_str()
            };
            let name = ServerName::try_from(name.to_owned()).map_err(|e| Error::Tls {
                endpoint: label.clone(),
                message: format!("invalid server name {name:?} (scan.gmp.server_name): {e}"),
            })?;
            let deadline = tokio::time::Instant::now() + connect_timeout;
            let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(addr.as_str()))
                .await
                .map_err(|_| timed_out())?
                .map_err(|source| Error::Connect {
                    endpoint: label.clone(),
                    source,
                })?;
            // Small request/response exchanges: do not wait for Nagle.
            let _ = tcp.set_nodelay(true);
            let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
            let tls = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| Error::Tls {
                    endpoint: label.clone(),
                    message: format!(
                        "handshake failed: {e}; check scan.gmp.ca_file and scan.gmp.server_name"
                    ),
                })?;
            Ok(Box::new(tls))
        }
    }
}

fn client_config(
    label: &str,
    ca_file: Option<&PathBuf>,
    insecure: bool,
) -> Result<ClientConfig, Error> {
    let tls_err = |message: String| Error::Tls {
        endpoint: label.to_owned(),
        message,
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(format!("TLS set-up failed: {e}")))?;
    if insecure {
        if !INSECURE_WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                endpoint = label,
                "TLS certificate verification of gvmd is OFF (scan.gmp.insecure); anyone on the path can read the GMP password"
            );
        }
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert::new(&provider)))
            .with_no_client_auth());
    }
    let Some(ca_file) = ca_file else {
        return Err(tls_err(
            "no CA to verify gvmd's certificate: set scan.gmp.ca_file to a PEM file with the CA \
             (or gvmd's self-signed certificate, e.g. /var/lib/gvm/CA/cacert.pem), or set \
             scan.gmp.insecure = true to skip verification"
                .to_owned(),
        ));
    };
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file).map_err(|e| {
        tls_err(format!(
            "cannot read scan.gmp.ca_file {}: {e}",
            ca_file.display()
        ))
    })?;
    for cert in certs {
        let cert = cert.map_err(|e| {
            tls_err(format!(
                "scan.gmp.ca_file {} is not valid PEM: {e}",
                ca_file.display()
            ))
        })?;
        roots.add(cert).map_err(|e| {
            tls_err(format!(
                "scan.gmp.ca_file {} holds an unusable certificate: {e}",
                ca_file.display()
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(tls_err(format!(
            "scan.gmp.ca_file {} holds no PEM certificate",
            ca_file.display()
        )));
    }
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}
