//! Basic auth (bcrypt, with a cache of successful verifications) and the configured response
//! headers: the middleware every request passes, and the state it shares with the accept loop. It
//! tells the handlers who is asking through the [`AuthenticatedUser`] request extension.
//!
//! bcrypt is slow by design, so checks that miss the cache are bounded: one at a time in all, and
//! one at a time per client address, which waits its turn behind its own earlier checks (and then
//! finds a password its first check proved in the cache). At most [`PER_CLIENT_WAITING`] wait per
//! address (more are answered 429 at once) and at most [`MAX_WAITING`] addresses wait (503). A flood
//! of wrong passwords from one client therefore holds one place in the shared queue, not thousands,
//! and everyone else's first request is checked after at most one check per other client.

use super::config::Loaded;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

/// The realm sent with a 401.
const REALM_HEADER: &str = "Basic realm=\"stinger\"";
/// Successful verifications remembered; the cache is emptied when it grows past this.
const AUTH_CACHE_MAX: usize = 1024;
/// Client addresses with bcrypt checks waiting or under way, at most (another is answered 503).
pub(super) const MAX_WAITING: usize = 64;
/// Checks of one client address waiting or under way, at most (another is answered 429).
pub(super) const PER_CLIENT_WAITING: usize = 8;

/// The address a connection came from, put on each of its requests by the accept loop.
#[derive(Debug, Clone, Copy)]
pub(super) struct Peer(pub IpAddr);

/// What the middleware decided about a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Denied,
    /// This client already has [`PER_CLIENT_WAITING`] checks waiting (429).
    Busy,
    /// [`MAX_WAITING`] clients are waiting (503).
    Full,
}

/// Who made a request, as the middleware established it; handlers read it as a request extension.
/// `None` when the web config has no `basic_auth_users` (nobody is authenticated). A request that
/// never passed the middleware (no `--web.config.file`) carries no extension at all, which means
/// the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedUser(pub Option<String>);

/// What the middleware and the accept loop share.
pub(super) struct Shared {
    current: RwLock<Arc<Loaded>>,
    /// SHA-256 of (user, configured hash, password) for verifications that succeeded.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time (it is CPU-bound by design), as in exporter-toolkit.
    bcrypt_gate: tokio::sync::Semaphore,
    /// Per client address with checks waiting or under way: its turn, and how many wait for it.
    checking: Mutex<HashMap<Option<IpAddr>, Arc<Client>>>,
}

/// One client address's checks: one at a time.
#[derive(Default)]
struct Client {
    turn: tokio::sync::Mutex<()>,
    waiting: AtomicUsize,
}

/// A check's place in its client's queue; dropping it leaves the queue (and the map, when last).
struct Place<'a> {
    checking: &'a Mutex<HashMap<Option<IpAddr>, Arc<Client>>>,
    peer: Option<IpAddr>,
    client: Arc<Client>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        let mut checking = self.checking.lock().unwrap_or_else(|e| e.into_inner());
        if self.client.waiting.fetch_sub(1, Ordering::AcqRel) == 1 {
            checking.remove(&self.peer);
        }
    }
}

impl Shared {
    pub(super) fn new(loaded: Loaded) -> Shared {
        Shared {
            current: RwLock::new(Arc::new(loaded)),
            verified: Mutex::new(HashSet::new()),
            bcrypt_gate: tokio::sync::Semaphore::new(1),
            checking: Mutex::new(HashMap::new()),
        }
    }

    pub(super) fn current(&self) -> Arc<Loaded> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(super) fn replace(&self, loaded: Loaded) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Whether this (user, hash, password) passed a bcrypt check before.
    fn proved(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    /// Does the request carry valid basic-auth credentials for `config`? `peer` is the client's
    /// address (`None`: unknown, all such share one place).
    async fn authorized(
        &self,
        config: &Loaded,
        credentials: Option<(String, Vec<u8>)>,
        peer: Option<IpAddr>,
    ) -> Verdict {
        let Some((user, password)) = credentials else {
            return Verdict::Denied;
        };
        let (hash, known) = match config.users.get(&user) {
            Some(h) => (h.as_str(), true),
            None => (config.dummy_hash.as_str(), false),
        };
        let key = cache_key(&user, hash, &password);
        if known && self.proved(&key) {
            return Verdict::Allowed;
        }
        let place = {
            let mut checking = self.checking.lock().unwrap_or_else(|e| e.into_inner());
            if !checking.contains_key(&peer) && checking.len() >= MAX_WAITING {
                return Verdict::Full;
            }
            let client = checking.entry(peer).or_default().clone();
            if client.waiting.load(Ordering::Acquire) >= PER_CLIENT_WAITING {
                return Verdict::Busy;
            }
            client.waiting.fetch_add(1, Ordering::AcqRel);
            Place {
                checking: &self.checking,
                peer,
                client,
            }
        };
        let _turn = place.client.turn.lock().await;
        // An earlier check of this client may have proved the same password meanwhile.
        if known && self.proved(&key) {
            return Verdict::Allowed;
        }
        let Ok(_permit) = self.bcrypt_gate.acquire().await else {
            return Verdict::Denied;
        };
        let hash = hash.to_owned();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false)
            && known;
        if !ok {
            return Verdict::Denied;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= AUTH_CACHE_MAX {
            verified.clear();
        }
        verified.insert(key);
        Verdict::Allowed
    }
}

/// `Authorization: Basic base64(user:password)`.
pub(super) fn basic_credentials(req: &Request) -> Option<(String, Vec<u8>)> {
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
pub(super) async fn guard(
    State(shared): State<Arc<Shared>>,
    mut req: Request,
    next: Next,
) -> Response {
    let config = shared.current();
    let (verdict, user) = if config.users.is_empty() {
        (Verdict::Allowed, None)
    } else {
        let credentials = basic_credentials(&req);
        let user = credentials.as_ref().map(|(u, _)| u.clone());
        let peer = req.extensions().get::<Peer>().map(|p| p.0);
        (shared.authorized(&config, credentials, peer).await, user)
    };
    let mut response = match verdict {
        Verdict::Allowed => {
            req.extensions_mut().insert(AuthenticatedUser(user));
            next.run(req).await
        }
        Verdict::Denied => (
            StatusCode::UNAUTHORIZED,
            [(WWW_AUTHENTICATE, REALM_HEADER)],
            "Unauthorized\n",
        )
            .into_response(),
        Verdict::Busy => (
            StatusCode::TOO_MANY_REQUESTS,
            [(RETRY_AFTER, "1")],
            "Too many password checks from this address at once; retry in a second\n",
        )
            .into_response(),
        Verdict::Full => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(RETRY_AFTER, "1")],
            "Too many password checks waiting; retry in a second\n",
        )
            .into_response(),
    };
    for (name, value) in &config.headers {
        response.headers_mut().insert(name.clone(), value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::AuthenticatedUser;
    use axum::routing::get;
    use axum::{Extension, Router};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_util::sync::CancellationToken;

    /// What the handler saw: the extension's user, `-` for none, `absent` without the extension.
    async fn who(user: Option<Extension<AuthenticatedUser>>) -> String {
        match user {
            None => "absent".into(),
            Some(Extension(AuthenticatedUser(u))) => u.unwrap_or_else(|| "-".into()),
        }
    }

    /// Serve `who` with this web config (None: no `--web.config.file`); one GET with `auth`.
    async fn ask(yaml: Option<&str>, auth: Option<&str>) -> (u16, String) {
        let dir = tempfile::tempdir().unwrap();
        let config = yaml.map(|y| {
            let p = dir.path().join("web.yml");
            std::fs::write(&p, y).unwrap();
            p
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = CancellationToken::new();
        let router = Router::new().route("/who", get(who));
        let server = tokio::spawn(super::super::serve(listener, router, config, token.clone()));
        let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!("GET /who HTTP/1.1\r\nHost: t\r\n{auth}Connection: close\r\n\r\n");
        c.write_all(req.as_bytes()).await.unwrap();
        let mut raw = String::new();
        c.read_to_string(&mut raw).await.unwrap();
        token.cancel();
        let _ = server.await;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();
        (head[9..12].parse().unwrap(), body.to_string())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handlers_learn_the_authenticated_user() {
        let hash = bcrypt::hash("pw", 4).unwrap();
        let users = format!("basic_auth_users:\n  alice: '{hash}'\n");
        // alice:pw, alice:no
        let (good, bad) = ("Basic YWxpY2U6cHc=", "Basic YWxpY2U6bm8=");
        assert_eq!(ask(Some(&users), Some(good)).await, (200, "alice".into()));
        assert_eq!(ask(Some(&users), Some(bad)).await.0, 401);
        assert_eq!(ask(Some(&users), None).await.0, 401);
        // Without users nobody is authenticated, whatever the request claims.
        let no_users = "http_server_config:\n  headers:\n    X-Frame-Options: deny\n";
        assert_eq!(ask(Some(no_users), Some(good)).await, (200, "-".into()));
        // Without a web config the middleware is not there at all.
        assert_eq!(ask(None, Some(good)).await, (200, "absent".into()));
    }
}
