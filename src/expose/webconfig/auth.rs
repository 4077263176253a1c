//! Basic auth (bcrypt, with a cache of successful verifications) and the configured response
//! headers: the middleware every request passes, and the state it shares with the accept loop.

use super::config::Loaded;
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

/// The realm sent with a 401.
const REALM_HEADER: &str = "Basic realm=\"stinger\"";
/// Successful verifications remembered; the cache is emptied when it grows past this.
const AUTH_CACHE_MAX: usize = 1024;

/// What the middleware and the accept loop share.
pub(super) struct Shared {
    current: RwLock<Arc<Loaded>>,
    /// SHA-256 of (user, configured hash, password) for verifications that succeeded.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// One bcrypt at a time (it is CPU-bound by design), as in exporter-toolkit.
    bcrypt_gate: tokio::sync::Semaphore,
}

impl Shared {
    pub(super) fn new(loaded: Loaded) -> Shared {
        Shared {
            current: RwLock::new(Arc::new(loaded)),
            verified: Mutex::new(HashSet::new()),
            bcrypt_gate: tokio::sync::Semaphore::new(1),
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
pub(super) async fn guard(State(shared): State<Arc<Shared>>, req: Request, next: Next) -> Response {
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
