//! Tests of the web config, one file per topic; the shared helpers (a throw-away PKI, YAML
//! snippets, a server on a free port, raw HTTP and HTTPS clients) live here.

mod parsing;
mod serving;
mod tls;

use super::auth::basic_credentials;
use super::*;
use axum::extract::Request;
use axum::http::header::AUTHORIZATION;
use axum::routing::get;
use base64::Engine as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::time::Instant;
use stinger_testsupport::tls::Ca;
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

fn pki(dir: &Path) -> Pki {
    let ca = Ca::new("stinger test CA");
    let server = ca.server(&["localhost", "127.0.0.1"]);
    let client = ca.client("client");
    let stranger = Ca::new("some other CA").client("stranger");
    write(dir, "ca.pem", ca.pem());
    write(dir, "server.pem", server.cert_pem());
    write(dir, "server.key", server.key_pem());
    Pki {
        ca: ca.pem().to_owned(),
        client_cert: client.cert_pem().to_owned(),
        client_key: client.key_pem().to_owned(),
        stranger_cert: stranger.cert_pem().to_owned(),
        stranger_key: stranger.key_pem().to_owned(),
    }
}

fn tls_yaml(extra_tls: &str, rest: &str) -> String {
    format!(
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n{extra_tls}{rest}"
    )
}

fn users_yaml(users: &[(&str, &str)]) -> String {
    users_yaml_cost(users, 4)
}

fn users_yaml_cost(users: &[(&str, &str)], cost: u32) -> String {
    let mut s = String::from("basic_auth_users:\n");
    for (u, pw) in users {
        s.push_str(&format!("  {u}: '{}'\n", bcrypt::hash(pw, cost).unwrap()));
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
    http_from("127.0.0.1", addr, auth).await
}

/// [`http`] from the loopback address `source` (a client of its own, as the server sees it).
async fn http_from(
    source: &str,
    addr: SocketAddr,
    auth: Option<(&str, &str)>,
) -> Result<Reply, String> {
    let go = async {
        let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
        let source: std::net::IpAddr = source.parse().map_err(|e| format!("{e}"))?;
        socket
            .bind(SocketAddr::new(source, 0))
            .map_err(|e| e.to_string())?;
        let tcp = socket.connect(addr).await.map_err(|e| e.to_string())?;
        exchange(tcp, auth).await
    };
    tokio::time::timeout(WAIT, go)
        .await
        .map_err(|_| "timed out".to_owned())?
}
