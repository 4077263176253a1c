//! The Keystone v3 session: authenticates a [`CloudConfig`] (password or application credential),
//! keeps the token and its service catalog, picks endpoints, and implements [`Api`] for the service
//! clients — the part of keystoneauth's `Session` Stinger needs.
//!
//! - Authentication: `POST <auth_url>/auth/tokens` with the v3 body, 201 and the token in
//!   `X-Subject-Token`. The generic `password` auth type first GETs `auth_url` and uses the v3 entry of
//!   the version document (only when it points at the same scheme, host and port as `auth_url`; else,
//!   or when the GET fails, [`Auth::v3_token_url`]). `auth_url` works with and without `/v3`.
//! - The token is renewed when less than [`SessionOptions::refresh_before`] remains, and after a 401
//!   from a service (once per request). Concurrent callers wait for one authentication.
//! - Endpoints: catalog entry of the service's `type`, `interface` per
//!   [`CloudConfig::interface_for`], and the cloud's region when it has one; trailing `/` stripped and
//!   the request path appended unchanged — except that for `identity` a `/v3` prefix of the path is
//!   dropped when the endpoint already ends in `/v3` (catalogs list Keystone both ways).
//! - The token only ever goes to the origins (scheme, host, port) of the catalog's endpoints and of
//!   `auth_url`; absolute URLs (pagination links) elsewhere are refused, redirects elsewhere are not
//!   followed.
//! - Errors and logs never hold the token, the password or the secret: error bodies are scrubbed of
//!   them, and `Debug` prints neither.

use super::api::{Api, Error, Reply, ServiceType};
use super::clouds::{AppCredRef, Auth, CloudConfig, DomainRef, Interface, ProjectScope, UserRef};
use super::http::{self, BodyError, Origin};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

#[cfg(test)]
mod tests;

/// How a [`Session`] talks to the cloud.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Per request: connecting, sending and reading the whole reply.
    pub timeout: Duration,
    pub user_agent: String,
    /// A token with less than this left is renewed before use (keystoneauth: 120 s).
    pub refresh_before: Duration,
    /// Longest reply body accepted; longer is [`Error::Invalid`].
    pub max_body_bytes: usize,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            timeout: Duration::from_secs(30),
            user_agent: format!("stinger/{}", crate::build::VERSION),
            refresh_before: Duration::from_secs(120),
            max_body_bytes: 64 << 20,
        }
    }
}

/// Project or user names by id. `complete: false` when Keystone's policy forbade the listing and
/// only what the session's own token tells is there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub map: HashMap<String, String>,
    pub complete: bool,
}

/// Pages followed when listing projects or users.
const MAX_NAME_PAGES: usize = 1000;

/// An authenticated Keystone v3 session for one cloud.
pub struct Session {
    cloud: CloudConfig,
    options: SessionOptions,
    client: reqwest::Client,
    auth_origin: Option<Origin>,
    state: tokio::sync::Mutex<State>,
    /// The current token, for the synchronous accessors (never locked across an await).
    current: std::sync::Mutex<Option<Arc<Token>>>,
}

#[derive(Default)]
struct State {
    token: Option<Arc<Token>>,
    /// Counts authentications; tells a stale token from its replacement.
    generation: u64,
    /// Where to POST, once the generic plugin's discovery found it.
    token_url: Option<String>,
}

struct Token {
    value: String,
    generation: u64,
    expires_at: SystemTime,
    catalog: Vec<CatalogEntry>,
    project: Option<NamedRef>,
    user: NamedRef,
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
struct NamedRef {
    id: String,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct CatalogEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Deserialize)]
struct Endpoint {
    interface: String,
    url: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

impl Endpoint {
    fn region(&self) -> Option<&str> {
        self.region_id.as_deref().or(self.region.as_deref())
    }
}

impl Session {
    /// A session for `cloud`; nothing is sent until the first request (or [`Session::authenticate`]).
    /// Fails only on the cloud's TLS files.
    pub fn new(cloud: &CloudConfig, options: SessionOptions) -> Result<Session, Error> {
        let client = http::client(cloud, options.timeout, &options.user_agent)?;
        let auth_origin = Origin::parse(cloud.auth.auth_url());
        if auth_origin.is_none() {
            return Err(Error::Config {
                cloud: cloud.name.clone(),
                reason: "auth_url is not a valid URL".into(),
            });
        }
        Ok(Session {
            cloud: cloud.clone(),
            options,
            client,
            auth_origin,
            state: tokio::sync::Mutex::new(State::default()),
            current: std::sync::Mutex::new(None),
        })
    }

    /// Makes sure a valid token is held (authenticating if needed).
    pub async fn authenticate(&self) -> Result<(), Error> {
        self.token().await.map(|_| ())
    }

    /// The cloud's name.
    pub fn cloud_name(&self) -> &str {
        &self.cloud.name
    }

    /// The cloud's default interface (`interface`).
    pub fn interface(&self) -> Interface {
        self.cloud.interface
    }

    /// The interface used for one service.
    pub fn interface_for(&self, service: ServiceType) -> Interface {
        self.cloud.interface_for(service.as_str())
    }

    /// The region endpoints are chosen in, if the cloud has one.
    pub fn region(&self) -> Option<&str> {
        self.cloud.region.as_deref()
    }

    fn current(&self) -> Option<Arc<Token>> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The token's project id (None before the first authentication, or for an unscoped token).
    pub fn project_id(&self) -> Option<String> {
        self.current()?.project.as_ref().map(|p| p.id.clone())
    }

    /// The token's project name.
    pub fn project_name(&self) -> Option<String> {
        self.current()?.project.as_ref()?.name.clone()
    }

    /// The token's user id.
    pub fn user_id(&self) -> Option<String> {
        self.current().map(|t| t.user.id.clone())
    }

    /// The token's user name.
    pub fn user_name(&self) -> Option<String> {
        self.current()?.user.name.clone()
    }

    /// When the current token expires.
    pub fn token_expires_at(&self) -> Option<SystemTime> {
        self.current().map(|t| t.expires_at)
    }

    /// The catalog endpoint (without trailing `/`) requests for `service` go to, authenticating first
    /// if needed.
    pub async fn endpoint(&self, service: ServiceType) -> Result<String, Error> {
        let token = self.token().await?;
        select_endpoint(
            &token.catalog,
            service,
            self.interface_for(service),
            self.cloud.region.as_deref(),
        )
    }

    /// The token held (even a stale one), authenticating only when there is none. For tests that
    /// revoke it or watch it change.
    #[doc(hidden)]
    pub async fn current_token_for_tests(&self) -> Result<String, Error> {
        if let Some(token) = &self.state.lock().await.token {
            return Ok(token.value.clone());
        }
        Ok(self.token().await?.value.clone())
    }

    /// Project names by id (`GET /v3/projects`, all pages). When policy forbids the listing (403):
    /// the session's own project, `complete: false`.
    pub async fn project_names(&self) -> Result<Names, Error> {
        self.names("projects", |t| t.project.clone()).await
    }

    /// User names by id (`GET /v3/users`, all pages). When policy forbids the listing (403): the
    /// session's own user, `complete: false`.
    pub async fn user_names(&self) -> Result<Names, Error> {
        self.names("users", |t| Some(t.user.clone())).await
    }

    async fn names(
        &self,
        collection: &str,
        own: impl Fn(&Token) -> Option<NamedRef>,
    ) -> Result<Names, Error> {
        let first = format!("/v3/{collection}");
        let mut next = first.clone();
        let mut seen = HashSet::new();
        let mut map = HashMap::new();
        for _ in 0..MAX_NAME_PAGES {
            let reply = match self.get_inner(ServiceType::Identity, &next, &[]).await {
                Ok(reply) => reply,
                Err(Error::Status { status: 403, .. }) => {
                    tracing::debug!(
                        cloud = %self.cloud.name,
                        "listing {collection} is forbidden by Keystone's policy; using the token's own"
                    );
                    let token = self.token().await?;
                    let map = own(&token)
                        .map(|r| (r.id.clone(), r.name.clone().unwrap_or(r.id)))
                        .into_iter()
                        .collect();
                    return Ok(Names {
                        map,
                        complete: false,
                    });
                }
                Err(e) => return Err(e),
            };
            let path = display_path(&next);
            let invalid = |reason: String| Error::Invalid {
                service: ServiceType::Identity,
                path: path.clone(),
                reason,
            };
            let page: Value = serde_json::from_slice(&reply.body)
                .map_err(|e| invalid(format!("not JSON: {e}")))?;
            let items = page
                .get(collection)
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(format!("no `{collection}` list")))?;
            for item in items {
                let (Some(id), Some(name)) = (
                    item.get("id").and_then(Value::as_str),
                    item.get("name").and_then(Value::as_str),
                ) else {
                    return Err(invalid(format!(
                        "an entry of `{collection}` lacks a string id or name"
                    )));
                };
                map.insert(id.to_owned(), name.to_owned());
            }
            match page.pointer("/links/next").and_then(Value::as_str) {
                Some(link) if !link.is_empty() && !items.is_empty() => {
                    if !seen.insert(link.to_owned()) {
                        return Err(Error::Pagination {
                            service: ServiceType::Identity,
                            path: display_path(&first),
                            reason: format!("next link {} repeats", display_path(link)),
                        });
                    }
                    next = link.to_owned();
                }
                _ => {
                    return Ok(Names {
                        map,
                        complete: true,
                    })
                }
            }
        }
        Err(Error::Pagination {
            service: ServiceType::Identity,
            path: display_path(&first),
            reason: format!("more than {MAX_NAME_PAGES} pages"),
        })
    }

    /// A token with more than `refresh_before` left, authenticating when there is none.
    async fn token(&self) -> Result<Arc<Token>, Error> {
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
    async fn discard(&self, stale: &Token) {
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

    /// A reply body under the cap.
    async fn body(
        &self,
        service: ServiceType,
        path: &str,
        resp: &mut reqwest::Response,
    ) -> Result<Vec<u8>, Error> {
        http::read_body(resp, self.options.max_body_bytes)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge(cap) => Error::Invalid {
                    service,
                    path: path.to_owned(),
                    reason: format!("reply body larger than {cap} bytes"),
                },
                BodyError::Http(e) => http::transport_error(
                    service,
                    path,
                    self.options.timeout,
                    "reading the reply: ",
                    e,
                ),
            })
    }

    /// `text` with the password or secret, and `token`, replaced by `***`.
    fn scrub(&self, text: &str, token: Option<&str>) -> String {
        let secret = match &self.cloud.auth {
            Auth::Password { password, .. } => password.expose(),
            Auth::ApplicationCredential { secret, .. } => secret.expose(),
        };
        let mut text = text.to_owned();
        for s in [Some(secret), token].into_iter().flatten() {
            if s.len() >= 4 {
                text = text.replace(s, "***");
            }
        }
        text
    }

    /// The URL a request goes to: the service endpoint plus `path`, or `path` itself when absolute and
    /// at a known origin.
    fn url_for(
        &self,
        token: &Token,
        service: ServiceType,
        path: &str,
    ) -> Result<reqwest::Url, Error> {
        let shown = display_path(path);
        let invalid = |reason: String| Error::Invalid {
            service,
            path: shown.clone(),
            reason,
        };
        if path.starts_with("http://") || path.starts_with("https://") {
            let url = reqwest::Url::parse(path).map_err(|e| invalid(format!("bad URL: {e}")))?;
            let origin = Origin::of(&url);
            let known = self.auth_origin.as_ref() == Some(&origin)
                || token
                    .catalog
                    .iter()
                    .flat_map(|entry| &entry.endpoints)
                    .any(|ep| Origin::parse(&ep.url).as_ref() == Some(&origin));
            if !known {
                return Err(invalid(format!(
                    "link to {origin}, which is neither auth_url nor an endpoint of the catalog; \
                     the token is not sent there"
                )));
            }
            return Ok(url);
        }
        if !path.starts_with('/') {
            return Err(invalid(
                "request path must start with / or be an http(s) URL".into(),
            ));
        }
        let endpoint = select_endpoint(
            &token.catalog,
            service,
            self.interface_for(service),
            self.cloud.region.as_deref(),
        )?;
        let mut path = path;
        if service == ServiceType::Identity && endpoint.ends_with("/v3") {
            if let Some(rest) = path.strip_prefix("/v3") {
                if rest.is_empty() || rest.starts_with(['/', '?']) {
                    path = rest;
                }
            }
        }
        reqwest::Url::parse(&format!("{endpoint}{path}"))
            .map_err(|e| invalid(format!("endpoint {endpoint} plus path is no URL: {e}")))
    }

    async fn get_inner(
        &self,
        service: ServiceType,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, Error> {
        let shown = display_path(path);
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let url = self.url_for(&token, service, path)?;
            let mut request = self
                .client
                .get(url)
                .header("X-Auth-Token", &token.value)
                .header("Accept", "application/json");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let mut resp = request
                .send()
                .await
                .map_err(|e| http::transport_error(service, &shown, self.options.timeout, "", e))?;
            let status = resp.status().as_u16();
            if status == 401 && !retried {
                tracing::debug!(cloud = %self.cloud.name, %service, path = %shown, "401 from the service; authenticating again");
                retried = true;
                self.discard(&token).await;
                continue;
            }
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            let body = self.body(service, &shown, &mut resp).await?;
            if !(200..300).contains(&status) {
                return Err(Error::Status {
                    service,
                    path: shown,
                    status,
                    message: self.scrub(&http::error_message(&body, status), Some(&token.value)),
                });
            }
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
    }
}

impl Api for Session {
    async fn get(
        &self,
        service: ServiceType,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, Error> {
        self.get_inner(service, path, headers).await
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let current = self.current();
        f.debug_struct("Session")
            .field("cloud", &self.cloud.name)
            .field("auth_type", &self.cloud.auth_type)
            .field(
                "auth_origin",
                &self.auth_origin.as_ref().map(|o| o.to_string()),
            )
            .field("interface", &self.cloud.interface)
            .field("region", &self.cloud.region)
            .field("token", &current.as_ref().map(|_| "***"))
            .field("expires_at", &current.as_ref().map(|t| t.expires_at))
            .field(
                "project_id",
                &current
                    .as_ref()
                    .and_then(|t| t.project.as_ref().map(|p| &p.id)),
            )
            .finish_non_exhaustive()
    }
}

/// The endpoint URL (without trailing `/`) for a service, interface and optional region.
fn select_endpoint(
    catalog: &[CatalogEntry],
    service: ServiceType,
    interface: Interface,
    region: Option<&str>,
) -> Result<String, Error> {
    let entries: Vec<&CatalogEntry> = catalog
        .iter()
        .filter(|e| e.kind == service.as_str())
        .collect();
    let found = entries.iter().flat_map(|e| &e.endpoints).find(|ep| {
        ep.interface == interface.as_str() && region.is_none_or(|r| ep.region() == Some(r))
    });
    if let Some(ep) = found {
        return Ok(ep.url.trim_end_matches('/').to_owned());
    }
    let available = if catalog.is_empty() {
        "the catalog is empty (an unscoped token has none: set project_name or project_id)".into()
    } else if entries.is_empty() {
        let mut types: Vec<&str> = catalog.iter().map(|e| e.kind.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        format!("no {service} service; the catalog has {}", types.join(", "))
    } else {
        let list: Vec<String> = entries
            .iter()
            .flat_map(|e| &e.endpoints)
            .map(|ep| format!("{} in {}", ep.interface, ep.region().unwrap_or("no region")))
            .collect();
        http::truncate(&list.join(", "), 400)
    };
    Err(Error::NoEndpoint {
        service,
        interface: interface.as_str(),
        region: region.map(str::to_owned),
        available,
    })
}

/// The `POST /v3/auth/tokens` body.
fn auth_body(auth: &Auth) -> Value {
    fn domain(d: &DomainRef) -> Value {
        match d {
            DomainRef::Id(id) => json!({ "id": id }),
            DomainRef::Name(name) => json!({ "name": name }),
        }
    }
    fn user(u: &UserRef) -> serde_json::Map<String, Value> {
        let v = match u {
            UserRef::Id(id) => json!({ "id": id }),
            UserRef::Name { name, domain: d } => json!({ "name": name, "domain": domain(d) }),
        };
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }
    match auth {
        Auth::Password {
            user: u,
            password,
            scope,
            ..
        } => {
            let mut user = user(u);
            user.insert("password".into(), json!(password.expose()));
            let mut body = json!({
                "auth": {
                    "identity": { "methods": ["password"], "password": { "user": user } }
                }
            });
            if let (Some(scope), Some(auth)) = (scope, body.get_mut("auth")) {
                let project = match scope {
                    ProjectScope::Id(id) => json!({ "id": id }),
                    ProjectScope::Name { name, domain: d } => {
                        json!({ "name": name, "domain": domain(d) })
                    }
                };
                auth["scope"] = json!({ "project": project });
            }
            body
        }
        Auth::ApplicationCredential { cred, secret, .. } => {
            let credential = match cred {
                AppCredRef::Id(id) => json!({ "id": id, "secret": secret.expose() }),
                AppCredRef::Name { name, user: u } => {
                    json!({ "name": name, "secret": secret.expose(), "user": user(u) })
                }
            };
            json!({
                "auth": {
                    "identity": {
                        "methods": ["application_credential"],
                        "application_credential": credential
                    }
                }
            })
        }
    }
}

/// The first v3 entry of a version document (`{"version": ..}` or `{"versions": {"values": [..]}}`):
/// its `self` link.
fn v3_link(doc: &Value) -> Option<String> {
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
fn parse_expiry(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339_weak(s.trim()).ok()
}

/// The path and query of a URL or request path, for errors: never the host or user info.
fn display_path(path: &str) -> String {
    match reqwest::Url::parse(path) {
        Ok(url) if path.starts_with("http://") || path.starts_with("https://") => {
            match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            }
        }
        _ => path.to_owned(),
    }
}
