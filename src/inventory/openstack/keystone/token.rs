//! The Keystone token of a [`Session`]: authenticating (`POST /v3/auth/tokens`, after the generic
//! plugin's version discovery), renewing it before it expires or after a 401, and reading the token
//! reply (expiry, catalog, project, user). Concurrent callers wait for one authentication.

use super::auth_body::auth_body;
use super::catalog::CatalogEntry;
use super::request::display_path;
use super::{http, Error, Origin, ServiceType, Session};
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Default)]
pub(super) struct State {
    pub(super) token: Option<Arc<Token>>,
    /// Counts authentications; tells a stale token from its replacement.
    generation: u64,
    /// Where to POST, once the generic plugin's discovery found it.
    token_url: Option<String>,
}

pub(super) struct Token {
    pub(super) value: String,
    pub(super) generation: u64,
    pub(super) expires_at: SystemTime,
    pub(super) catalog: Vec<CatalogEntry>,
    pub(super) project: Option<NamedRef>,
    pub(super) user: NamedRef,
}

#[derive(Debug, Deserialize)]
struct TokenBody {
    token: TokenInfo,
}

#[derive(Debug, Deserialize)]
struct TokenInfo {
    expires_at: String,
    #[serde(default)]
    catalog: Option<Vec<CatalogEntry>>,
    #[serde(default)]
    project: Option<NamedRef>,
    user: NamedRef,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct NamedRef {
    pub(super) id: String,
    #[serde(default)]
    pub(super) name: Option<String>,
}

impl Session {
    /// A token with more than `refresh_before` left, authenticating when there is none.
    pub(super) async fn token(&self) -> Result<Arc<Token>, Error> {
        let mut state = self.state.lock().await;
        if let Some(token) = &state.token {
            let fresh = token
                .expires_at
                .duration_since(SystemTime::now())
                .is_ok_and(|left| left > self.options.refresh_before);
            if fresh {
                return Ok(token.clone());
            }
            tracing::debug!(cloud = %self.cloud.name, "token expires soon; authenticating again");
        }
        state.generation += 1;
        let token = Arc::new(self.authenticate_now(&mut state).await?);
        state.token = Some(token.clone());
        *self
            .current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(token.clone());
        Ok(token)
    }

    /// Forgets `stale` unless another caller has replaced it already.
    pub(super) async fn discard(&self, stale: &Token) {
        let mut state = self.state.lock().await;
        if state
            .token
            .as_ref()
            .is_some_and(|t| t.generation == stale.generation)
        {
            state.token = None;
        }
    }

    async fn token_url(&self, state: &mut State) -> String {
        if let Some(url) = &state.token_url {
            return url.clone();
        }
        if !self.cloud.auth_type.discovers_version() {
            return self.cloud.auth.v3_token_url();
        }
        match self.discover().await {
            Some(url) => {
                state.token_url = Some(url.clone());
                url
            }
            None => self.cloud.auth.v3_token_url(),
        }
    }

    /// The generic plugin's version discovery: GET `auth_url`, the v3 entry's `self` link.
    async fn discover(&self) -> Option<String> {
        let auth_url = self.cloud.auth.auth_url();
        let reply = self
            .client
            .get(auth_url)
            .header("Accept", "application/json")
            .send()
            .await;
        let mut resp = match reply {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!(cloud = %self.cloud.name, error = %http::error_chain(&e.without_url()), "identity version discovery failed");
                return None;
            }
        };
        let status = resp.status().as_u16();
        let body = match http::read_body(&mut resp, 1 << 20).await {
            Ok(body) if status == 200 || status == 300 => body,
            _ => {
                tracing::debug!(cloud = %self.cloud.name, status, "identity version discovery gave no document");
                return None;
            }
        };
        let doc: Value = serde_json::from_slice(&body).ok()?;
        let base = v3_link(&doc)?;
        if Origin::parse(&base) != self.auth_origin {
            tracing::warn!(
                cloud = %self.cloud.name,
                "Keystone's version document names another host for v3; authenticating at auth_url instead"
            );
            return None;
        }
        Some(format!("{}/auth/tokens", base.trim_end_matches('/')))
    }

    /// POSTs the credentials; a new [`Token`] of generation `state.generation`.
    async fn authenticate_now(&self, state: &mut State) -> Result<Token, Error> {
        let url = self.token_url(state).await;
        let path = display_path(&url);
        let service = ServiceType::Identity;
        let body = auth_body(&self.cloud.auth);
        let send = self
            .client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .body(body.to_string())
            .send()
            .await;
        let mut resp = send.map_err(|e| {
            http::transport_error(
                service,
                &path,
                self.options.timeout,
                "POST for a token: ",
                e,
            )
        })?;
        let status = resp.status().as_u16();
        let subject = resp
            .headers()
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = self.body(service, &path, &mut resp).await?;
        if !matches!(status, 200 | 201) {
            let message = self.scrub(&http::error_message(&body, status), None);
            return Err(if matches!(status, 400 | 401 | 403 | 404) {
                Error::Auth {
                    service,
                    path,
                    status,
                    message,
                }
            } else {
                Error::Status {
                    service,
                    path,
                    status,
                    message,
                }
            });
        }
        let invalid = |reason: String| Error::Invalid {
            service,
            path: path.clone(),
            reason,
        };
        let value = subject
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("no X-Subject-Token header in the token reply".into()))?;
        let info: TokenBody =
            serde_json::from_slice(&body).map_err(|e| invalid(format!("token body: {e}")))?;
        let info = info.token;
        let expires_at = parse_expiry(&info.expires_at).ok_or_else(|| {
            invalid(format!(
                "token.expires_at {:?} is not an ISO 8601 UTC time",
                http::truncate(&info.expires_at, 40)
            ))
        })?;
        tracing::debug!(
            cloud = %self.cloud.name,
            user = %info.user.id,
            project = ?info.project.as_ref().map(|p| &p.id),
            "authenticated with Keystone"
        );
        Ok(Token {
            value,
            generation: state.generation,
            expires_at,
            catalog: info.catalog.unwrap_or_default(),
            project: info.project,
            user: info.user,
        })
    }
}

/// The first v3 entry of a version document (`{"version": ..}` or `{"versions": {"values": [..]}}`):
/// its `self` link.
pub(super) fn v3_link(doc: &Value) -> Option<String> {
    let mut candidates: Vec<&Value> = Vec::new();
    if let Some(v) = doc.get("version") {
        candidates.push(v);
    }
    match doc.get("versions") {
        Some(Value::Object(o)) => {
            if let Some(Value::Array(values)) = o.get("values") {
                candidates.extend(values);
            }
        }
        Some(Value::Array(values)) => candidates.extend(values),
        _ => {}
    }
    candidates
        .into_iter()
        .filter(|v| {
            v.get("id")
                .and_then(Value::as_str)
                .is_some_and(|id| id.starts_with("v3"))
        })
        .find_map(|v| {
            v.get("links")?.as_array()?.iter().find_map(|l| {
                if l.get("rel")?.as_str()? == "self" {
                    l.get("href")?.as_str().map(str::to_owned)
                } else {
                    None
                }
            })
        })
}

/// Keystone's `expires_at`: `2026-11-24T12:16:17.000000Z` (also without fraction, or `+00:00`).
pub(super) fn parse_expiry(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim()).ok()
}
