//! The Keystone v3 session: authenticates a [`CloudConfig`] (password or application credential),
//! keeps the token and its service catalog, picks endpoints, and implements [`Api`] for the service
//! clients — the part of keystoneauth's `Session` Stinger needs.
//!
//! - Authentication: `POST <auth_url>/auth/tokens` with the v3 body, 201 and the token in
//!   `X-Subject-Token`. The generic `password` auth type first GETs `auth_url` and uses the v3 entry of
//!   the version document (only when it points at the same scheme, host and port as `auth_url`; else,
//!   or when the GET fails, [`Auth::v3_token_url`](super::clouds::Auth::v3_token_url)). `auth_url`
//!   works with and without `/v3`.
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
//!
//! # Layout
//! - [`Session`] and its accessors, [`SessionOptions`], the [`Api`] implementation (this file).
//! - `token`: the token — authentication, version discovery, renewal, the token reply;
//!   `auth_body`: the `POST /v3/auth/tokens` bodies.
//! - `catalog`: the service catalog and where a request goes; `request`: one GET with its token,
//!   401 retry, body cap and scrubbing; `names`: project and user names.

use super::api::{Api, Error, Reply, ServiceType};
use super::clouds::{CloudConfig, Interface};
use super::http::{self, Origin};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

mod auth_body;
mod catalog;
mod names;
mod request;
mod token;

#[cfg(test)]
mod tests;

use catalog::select_endpoint;
pub use names::Names;
use token::{State, Token};

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

    /// The cloud's default interface (`interface`).
    pub fn interface(&self) -> Interface {
        self.cloud.interface
    }

    /// The interface used for one service.
    pub(crate) fn interface_for(&self, service: ServiceType) -> Interface {
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
