//! exporter-toolkit web configuration (`--web.config.file`): TLS and bcrypt basic auth for the
//! HTTP server; read strictly, re-read when it changes (the file or the certificates it names,
//! checked at most once a second when a connection arrives).
//!
//! Layout: `config` reads and checks the file, `tls` builds the rustls server config,
//! `auth` is the basic-auth middleware, `reload` watches the files; serving is here.

mod auth;
mod config;
mod reload;
#[cfg(test)]
mod tests;
mod tls;

pub use auth::AuthenticatedUser;
use auth::{guard, Peer, Shared};
use axum::Router;
use config::{load, Loaded};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use reload::Reloader;
use rustls::ServerConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A TLS handshake must finish within this.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request's headers must arrive within this (slow-loris guard).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Most HTTP connections served at once; past it the listener waits (the kernel's backlog holds new
/// ones). Well inside the file descriptors the scanner leaves free (`scan::tcp`'s reserve of 256),
/// so scrapes and API calls never starve a scan of sockets, nor a scan them.
pub const MAX_CONNECTIONS: usize = 128;
/// After shutdown, open connections get this long to finish their requests (the app waits 10 s).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

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

/// Read and check a web config file (TLS files included) without serving; for a start-up check.
pub fn validate(path: &Path) -> Result<(), WebConfigError> {
    load(path).map(|_| ())
}

// ---------------------------------------------------------------------------------------------
// Serving.

/// Serve `router` on `listener` until `shutdown` fires, then drain open connections (at most 8 s).
///
/// Connections are accepted here, with or without a web config: at most [`MAX_CONNECTIONS`] at once,
/// each with a header-read timeout (slow-loris guard). With a web config the file is checked first
/// (an error is returned before anything is served): TLS if the file has a `tls_server_config`,
/// basic auth if it has users, extra headers if it has any. When the file or
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
        return accept_loop(listener, router, None, shutdown).await;
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
    let reloader = Reloader::new(path, &loaded);
    let shared = Arc::new(Shared::new(loaded));
    let router = router.layer(axum::middleware::from_fn_with_state(shared.clone(), guard));
    accept_loop(listener, router, Some((reloader, shared)), shutdown).await
}

/// Accept connections until `shutdown`, at most [`MAX_CONNECTIONS`] at once, then drain them.
/// `web` is the web config's reloader and state (TLS and auth), when there is one.
async fn accept_loop(
    listener: TcpListener,
    router: Router,
    mut web: Option<(Reloader, Arc<Shared>)>,
    shutdown: CancellationToken,
) -> Result<(), WebConfigError> {
    let tracker = TaskTracker::new();
    let hard_stop = CancellationToken::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = slots.clone().acquire_owned() => s,
        };
        let Ok(slot) = slot else { break };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
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
        let tls = match &mut web {
            Some((reloader, shared)) => {
                reloader.maybe_reload(shared).await;
                shared.current().tls.clone()
            }
            None => None,
        };
        // Basic auth bounds its bcrypt checks per client address (see `auth`).
        let router = match &web {
            Some(_) => router.clone().layer(axum::Extension(Peer(peer.ip()))),
            None => router.clone(),
        };
        let conn = connection(tcp, tls, router, shutdown.clone(), hard_stop.clone());
        tracker.spawn(async move {
            conn.await;
            drop(slot);
        });
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
