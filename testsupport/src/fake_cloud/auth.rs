//! Token checking in the fake cloud, like keystonemiddleware in front of Nova and Neutron: a fixed
//! set of tokens or validation against a real Keystone (cached 5 s), the identity a good token
//! carries (admin or not, its project), tokens expired on demand, and the 401 a bad one gets.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::Out;
use super::server::Ctx;

/// How the fake decides whether a token is good and what it may do.
#[derive(Debug, Clone)]
pub enum TokenCheck {
    /// Ask Keystone like keystonemiddleware does: `GET {url}/auth/tokens` with `X-Auth-Token` and
    /// `X-Subject-Token` both set to the token (a token may validate itself under Keystone's default
    /// policy). `url` is the identity endpoint including `/v3`, plain `http://`. 200 → good (admin
    /// when the token has the `admin` role; project from `token.project.id`), cached 5 s; 401/404 →
    /// 401; anything else → 503.
    Keystone { url: String },
    /// A fixed set of good tokens. `project_id: None` = a non-`all_tenants` listing shows every
    /// project (real Nova would show only the token's project).
    Static {
        tokens: HashSet<String>,
        admin: bool,
        project_id: Option<String>,
    },
}

impl TokenCheck {
    /// Static admin tokens, no project scope.
    pub fn admin(tokens: &[&str]) -> TokenCheck {
        TokenCheck::Static {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            admin: true,
            project_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// What a good token may do.
pub(super) struct Identity {
    pub(super) admin: bool,
    /// `None`: any project.
    pub(super) project_id: Option<String>,
}

/// How long a Keystone validation is trusted.
const KEYSTONE_CACHE: Duration = Duration::from_secs(5);

/// keystonemiddleware's 401.
pub(super) fn unauthorized() -> Out {
    Out {
        status: 401,
        headers: vec![(
            "www-authenticate",
            "Keystone uri=\"http://127.0.0.1/identity\"".to_string(),
        )],
        body: json!({"error": {"code": 401, "title": "Unauthorized",
                     "message": "The request you have made requires authentication."}}),
        resource: None,
        raw: None,
    }
}

/// The identity of a request's token, or the reply that refuses it.
pub(super) async fn authenticate(ctx: &Ctx, token: Option<&str>) -> Result<Identity, Out> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(unauthorized());
    };
    if ctx
        .expiring
        .lock()
        .map(|mut e| e.remove(token))
        .unwrap_or(false)
    {
        return Err(unauthorized());
    }
    let identity = match &ctx.tokens {
        TokenCheck::Static {
            tokens,
            admin,
            project_id,
        } => {
            if !tokens.contains(token) {
                return Err(unauthorized());
            }
            Identity {
                admin: *admin,
                project_id: project_id.clone(),
            }
        }
        TokenCheck::Keystone { url } => {
            let cached = ctx.cache.lock().ok().and_then(|c| {
                c.get(token)
                    .filter(|(at, _)| at.elapsed() < KEYSTONE_CACHE)
                    .map(|(_, id)| id.clone())
            });
            match cached {
                Some(id) => id,
                None => {
                    if let Ok(mut n) = ctx.keystone_calls.lock() {
                        *n += 1;
                    }
                    let id = keystone_validate(url, token).await?;
                    if let Ok(mut c) = ctx.cache.lock() {
                        c.insert(token.to_string(), (Instant::now(), id.clone()));
                    }
                    id
                }
            }
        }
    };
    if let Ok(mut s) = ctx.seen.lock() {
        s.insert(token.to_string());
    }
    Ok(identity)
}

/// `GET {url}/auth/tokens` over plain HTTP/1.1 (no TLS: the fake Keystone is on loopback).
async fn keystone_validate(url: &str, token: &str) -> Result<Identity, Out> {
    let unavailable = |why: &str| {
        tracing::warn!(reason = why, "fake cloud: token validation failed");
        Out {
            status: 503,
            headers: Vec::new(),
            body: json!({"error": {"code": 503, "title": "Service Unavailable",
                         "message": format!("Authentication service unavailable: {why}")}}),
            resource: None,
            raw: None,
        }
    };
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(unauthorized());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(unavailable("the Keystone URL must start with http://"));
    };
    let (authority, base) = rest.split_once('/').unwrap_or((rest, ""));
    let base = base.trim_end_matches('/');
    let path = if base.is_empty() {
        "/auth/tokens".to_string()
    } else {
        format!("/{base}/auth/tokens")
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nX-Auth-Token: {token}\r\nX-Subject-Token: {token}\r\nConnection: close\r\n\r\n"
    );
    let exchange = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(authority).await?;
        s.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        s.take(4 << 20).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let raw = match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => return Err(unavailable(&format!("GET {authority}{path}: {e}"))),
        Err(_) => {
            return Err(unavailable(&format!(
                "GET {authority}{path}: no answer in 5 s"
            )))
        }
    };
    let (status, body) =
        split_http(&raw).ok_or_else(|| unavailable("Keystone's reply is not HTTP"))?;
    match status {
        200..=299 => {}
        401 | 404 => return Err(unauthorized()),
        s => return Err(unavailable(&format!("Keystone answered HTTP {s}"))),
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| unavailable(&format!("Keystone's token body is not JSON: {e}")))?;
    let t = v.get("token").unwrap_or(&Value::Null);
    let admin = t.get("roles").and_then(Value::as_array).is_some_and(|r| {
        r.iter()
            .any(|r| r.get("name").and_then(Value::as_str) == Some("admin"))
    });
    let project_id = t
        .get("project")
        .and_then(|p| p.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Identity { admin, project_id })
}

/// (status, body) of a raw HTTP/1.x response; de-chunks a chunked body.
fn split_http(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = &raw[end + 4..];
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some((status, out));
        }
        let start = line_end + 2;
        out.extend_from_slice(body.get(start..start + size)?);
        body = body.get(start + size + 2..)?;
    }
    None
}
