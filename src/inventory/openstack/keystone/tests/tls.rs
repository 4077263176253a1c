//! The TLS settings: CA and client-certificate files checked up front, and end to end against a
//! one-request-per-connection HTTPS fake Keystone whose certificate comes from a test CA (and
//! which can demand a client certificate from that CA).

use super::*;
use std::path::PathBuf;
use stinger_testsupport::tls::{self, Ca};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn tls_files_are_checked_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cloud(
        AuthType::V3Password,
        password_auth("https://k.example/v3", "a", PASSWORD),
    );
    let missing = dir.path().join("missing-ca.pem");
    c.cacert = Some(missing.clone());
    let e = Session::new(&c, SessionOptions::default()).unwrap_err();
    assert_eq!(e.kind(), "openstack_config");
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );
    let empty = dir.path().join("empty-ca.pem");
    std::fs::write(&empty, "").unwrap();
    c.cacert = Some(empty.clone());
    let e = Session::new(&c, SessionOptions::default()).unwrap_err();
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    assert!(e.to_string().contains(&empty.display().to_string()), "{e}");
    // A real CA bundle of two certificates is accepted.
    let pem: String = (0..2)
        .map(|i| {
            stinger_testsupport::tls::Ca::new(&format!("CA {i}"))
                .pem()
                .to_owned()
        })
        .collect();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, pem).unwrap();
    c.cacert = Some(bundle);
    Session::new(&c, SessionOptions::default()).unwrap();
    // verify: false builds too.
    c.cacert = None;
    c.verify = false;
    Session::new(&c, SessionOptions::default()).unwrap();
    // The system store.
    c.verify = true;
    Session::new(&c, SessionOptions::default()).unwrap();
}

struct TlsFake {
    base: String,
    _dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

/// Answers one request per connection: any POST is a successful authentication whose catalog
/// points back here, any GET `{"served_by": "tls"}`.
async fn handle<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(mut conn: S, base: &str) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let Ok(n) = conn.read(&mut chunk).await else {
            return;
        };
        if n == 0 || buf.len() > 1 << 20 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        match conn.read(&mut chunk).await {
            Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
    let (status, extra, body) = if head.starts_with("post") {
        let expires = SystemTime::now() + Duration::from_secs(3600);
        let body = json!({"token": {
            "expires_at": humantime::format_rfc3339_micros(expires).to_string(),
            "catalog": [{"type": "compute", "endpoints": [
                {"interface": "public", "region_id": "RegionOne", "url": format!("{base}/compute")}
            ]}],
            "project": {"id": PROJECT_ID, "name": "alpha"},
            "user": {"id": USER_ID, "name": "alice"}
        }});
        ("201 Created", "x-subject-token: tls-token\r\n", body)
    } else {
        ("200 OK", "", json!({"served_by": "tls"}))
    };
    let body = body.to_string();
    let reply = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(reply.as_bytes()).await;
    let _ = conn.shutdown().await;
}

async fn start(require_client_cert: bool) -> TlsFake {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("fake keystone CA");
    let other = Ca::new("some other CA");
    let leaf = ca.server(&["127.0.0.1"]);
    let client = ca.client("stinger");
    let paths = ["ca.pem", "other-ca.pem", "client.pem", "client-key.pem"]
        .map(|name| dir.path().join(name));
    std::fs::write(&paths[0], ca.pem()).unwrap();
    std::fs::write(&paths[1], other.pem()).unwrap();
    std::fs::write(&paths[2], client.cert_pem()).unwrap();
    std::fs::write(&paths[3], client.key_pem()).unwrap();
    let config = tls::server_config(&leaf, require_client_cert.then_some(&ca));
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("https://{}", listener.local_addr().unwrap());
    let b = base.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let b = b.clone();
            tokio::spawn(async move {
                if let Ok(conn) = acceptor.accept(tcp).await {
                    handle(conn, &b).await;
                }
            });
        }
    });
    let [ca, other_ca, client_cert, client_key] = paths;
    TlsFake {
        base,
        _dir: dir,
        ca,
        other_ca,
        client_cert,
        client_key,
    }
}

fn tls_cloud(f: &TlsFake) -> CloudConfig {
    let auth = password_auth(&format!("{}/v3", f.base), "alice", PASSWORD);
    cloud(AuthType::V3Password, auth)
}

async fn try_get(c: &CloudConfig) -> Result<String, Error> {
    let s = Session::new(c, SessionOptions::default())?;
    let reply = s.get(ServiceType::Compute, "/servers", &[]).await?;
    Ok(served_by(&reply))
}

fn assert_tls_refused(r: Result<String, Error>) {
    let e = r.unwrap_err();
    assert_eq!(e.kind(), "openstack_transport", "{e}");
    assert!(e.to_string().contains("/v3/auth/tokens"), "{e}");
}

#[tokio::test]
async fn cacert_verify_and_system_roots() {
    let f = start(false).await;
    let mut c = tls_cloud(&f);
    c.cacert = Some(f.ca.clone());
    assert_eq!(try_get(&c).await.unwrap(), "tls");
    // Another CA, and the system store, do not know the server.
    c.cacert = Some(f.other_ca.clone());
    let e = try_get(&c).await.unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert_tls_refused(Err(e));
    c.cacert = None;
    assert_tls_refused(try_get(&c).await);
    // verify: false accepts it.
    c.verify = false;
    assert_eq!(try_get(&c).await.unwrap(), "tls");
}

#[tokio::test]
async fn client_certificates() {
    let f = start(true).await;
    let mut c = tls_cloud(&f);
    c.cacert = Some(f.ca.clone());
    assert_tls_refused(try_get(&c).await);
    c.cert = Some(f.client_cert.clone());
    c.key = Some(f.client_key.clone());
    assert_eq!(try_get(&c).await.unwrap(), "tls");
    c.cacert = None;
    c.verify = false;
    assert_eq!(try_get(&c).await.unwrap(), "tls");
    // A key that is not one.
    c.key = Some(f.ca.clone());
    let e = Session::new(&c, SessionOptions::default()).unwrap_err();
    assert_eq!(e.kind(), "openstack_config");
    assert!(e.to_string().contains(&f.ca.display().to_string()), "{e}");
}
