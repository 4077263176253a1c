//! The seam between the OpenStack service clients and the HTTP session under them: which service a
//! request goes to, what comes back, and every way it can fail. The Keystone [`Session`](super::keystone)
//! implements [`Api`]; Nova and Neutron code is written against the trait, so unit tests can hand it
//! canned replies. Errors name the service and the URL path, never a token or a password.

use std::future::Future;
use std::time::Duration;

/// A service of the catalog, by its `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceType {
    Identity,
    Compute,
    Network,
}

impl ServiceType {
    /// The catalog `type` (also the service's name in errors and metric labels).
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::Identity => "identity",
            ServiceType::Compute => "compute",
            ServiceType::Network => "network",
        }
    }
}

impl std::fmt::Display for ServiceType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A 2xx reply.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    /// Response headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The server's clock when it answered: the `Date` header (RFC 9110), if it sent a valid one.
    pub fn date(&self) -> Option<jiff::Timestamp> {
        let v = self.header("date")?;
        jiff::fmt::rfc2822::DateTimeParser::new()
            .parse_timestamp(v)
            .ok()
    }

    /// The first header of that (lower-case) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An authenticated GET against a catalog service.
pub trait Api: Send + Sync {
    /// GET `path` from the service's catalog endpoint (`path` starts with `/` and may carry a query;
    /// it is appended to the endpoint URL unchanged), or the absolute `http(s)://` URL a pagination
    /// link gave. `headers` are added (e.g. the microversion). Sends the token; on a 401 it
    /// authenticates again and retries once. Any reply outside 2xx is [`Error::Status`].
    fn get(
        &self,
        service: ServiceType,
        path: &str,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = Result<Reply, Error>> + Send;
}

/// Everything that can go wrong talking to a cloud. `path` is a URL path with its query (no host, no
/// credentials; tokens travel in headers and are never part of it).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cloud's configuration is unusable (clouds.yaml, OS_*, the CA file, ...).
    #[error("cloud {cloud:?}: {reason}")]
    Config { cloud: String, reason: String },
    /// Keystone refused the credentials (401/403 on POST /v3/auth/tokens) or answered oddly.
    #[error("{service}: authentication failed at {path}: HTTP {status}: {message}; check the cloud's credentials (clouds.yaml auth: or the OS_* variables)")]
    Auth {
        service: ServiceType,
        path: String,
        status: u16,
        message: String,
    },
    /// No catalog endpoint for the service with that interface and region.
    #[error("{service}: no {interface} endpoint{} in the service catalog (available: {available}); set interface / region_name for the cloud", region.as_deref().map(|r| format!(" in region {r:?}")).unwrap_or_default())]
    NoEndpoint {
        service: ServiceType,
        interface: &'static str,
        region: Option<String>,
        available: String,
    },
    /// Connecting, sending or reading failed.
    #[error("{service}: GET {path}: {reason}")]
    Transport {
        service: ServiceType,
        path: String,
        reason: String,
    },
    /// No complete answer in time.
    #[error("{service}: GET {path}: no answer within {after:?}")]
    Timeout {
        service: ServiceType,
        path: String,
        after: Duration,
    },
    /// A reply outside 2xx (after the one re-authentication a 401 gets).
    #[error("{service}: GET {path}: HTTP {status}: {message}")]
    Status {
        service: ServiceType,
        path: String,
        status: u16,
        message: String,
    },
    /// A 2xx reply whose body is not what the API documents (bad JSON, missing or mistyped field).
    #[error("{service}: GET {path}: invalid reply: {reason}")]
    Invalid {
        service: ServiceType,
        path: String,
        reason: String,
    },
    /// Pagination that does not end (a repeated marker or next link, or too many pages).
    #[error("{service}: GET {path}: pagination does not end: {reason}")]
    Pagination {
        service: ServiceType,
        path: String,
        reason: String,
    },
}

impl Error {
    /// Stable label for `stinger_errors_total{stage="inventory",kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. } => "openstack_config",
            Error::Auth { .. } => "openstack_auth",
            Error::NoEndpoint { .. } => "openstack_no_endpoint",
            Error::Transport { .. } => "openstack_transport",
            Error::Timeout { .. } => "openstack_timeout",
            Error::Status { .. } => "openstack_status",
            Error::Invalid { .. } => "openstack_invalid_reply",
            Error::Pagination { .. } => "openstack_pagination",
        }
    }

    /// The HTTP status, for [`Error::Status`] and [`Error::Auth`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } | Error::Auth { status, .. } => Some(*status),
            _ => None,
        }
    }
}
