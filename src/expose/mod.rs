//! Expose stage: who is told. The HTTP server (axum): `/metrics` (or `--web.telemetry-path`) with
//! content negotiation, the JSON API under `/api/v1/`, `/-/healthy`, `/-/ready` and a landing page.
//! Everything here reads, except acknowledging findings (`api::findings`, written to the store
//! under the findings lock); nothing here scans.

pub mod api;
pub(crate) mod collectors;
pub mod digest;
pub mod email;
#[cfg(test)]
mod hostile_tests;
pub mod labels;
pub mod metrics;
#[cfg(test)]
mod readme_tests;
#[cfg(test)]
mod testdata;
pub mod textformat;
#[cfg(test)]
mod vm_metrics;
pub mod webconfig;

use crate::state::State;
use crate::store::Store;
use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The OpenAPI description of the JSON API, served at `/api/v1/openapi.yaml`.
pub const OPENAPI: &str = include_str!("openapi.yaml");

/// What the handlers share.
pub struct Shared {
    pub state: Arc<State>,
    pub store: Store,
    pub registry: Registry,
    pub telemetry_path: String,
}

/// Expose errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {address}: {source}; is another process using the port? Choose another with --web.listen-address")]
    Bind {
        address: std::net::SocketAddr,
        source: std::io::Error,
    },
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Bind { .. } => "bind",
        }
    }
}

/// Build the router.
pub fn router(shared: Arc<Shared>) -> Router {
    let telemetry = shared.telemetry_path.clone();
    Router::new()
        .route("/", get(landing))
        .route(&telemetry, get(metrics_handler))
        .route("/-/healthy", get(|| async { "Healthy\n" }))
        .route("/-/ready", get(ready))
        .route("/api/v1/vms", get(api::vms))
        // `{*id}`: host ids of cloud VMs contain slashes (`<vm>/<port>/<address>`); `%2F` works too.
        .route("/api/v1/vms/{*id}", get(api::vm))
        .route(
            "/api/v1/scans",
            get(api::scans)
                .post(api::request_scan)
                .layer(axum::extract::DefaultBodyLimit::max(api::SCAN_BODY_LIMIT)),
        )
        .route("/api/v1/scans/{id}", get(api::scan))
        .route("/api/v1/changes", get(api::changes))
        .route("/api/v1/vulnerabilities", get(api::vulnerabilities))
        .route("/api/v1/digest", get(api::digest))
        .route("/api/v1/findings", get(api::findings))
        .route("/api/v1/findings/{id}", get(api::finding))
        .route(
            "/api/v1/findings/{id}/ack",
            post(api::ack)
                .delete(api::unack)
                .layer(axum::extract::DefaultBodyLimit::max(api::ACK_BODY_LIMIT)),
        )
        .route(
            "/api/v1/openapi.yaml",
            get(|| async { ([(header::CONTENT_TYPE, "application/yaml")], OPENAPI) }),
        )
        .fallback(|| async { api::not_found("no such endpoint; see / for the list") })
        .with_state(shared)
}

/// Bind the listener (before any scan starts, so a busy port fails fast).
pub async fn bind(address: std::net::SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(address)
        .await
        .map_err(|source| Error::Bind { address, source })
}

/// Encode the registry in the format the client asked for: OpenMetrics, or Prometheus' text format
/// 0.0.4. Both encoders are prometheus-client's, which escape label values and (0.0.4) HELP text.
pub fn encode_metrics(registry: &Registry, openmetrics: bool) -> Result<String, std::fmt::Error> {
    let mut out = String::new();
    if openmetrics {
        prometheus_client::encoding::text::encode(&mut out, registry)?;
    } else {
        prometheus_client::encoding::prometheus_text::encode(&mut out, registry)?;
    }
    Ok(out)
}

async fn metrics_handler(AxState(s): AxState<Arc<Shared>>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let om = textformat::wants_openmetrics(accept);
    match encode_metrics(&s.registry, om) {
        Ok(body) => {
            let ct = if om {
                textformat::OPENMETRICS
            } else {
                textformat::TEXT
            };
            ([(header::CONTENT_TYPE, ct)], body).into_response()
        }
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics encoding failed\n",
        )
            .into_response(),
    }
}

async fn ready(AxState(s): AxState<Arc<Shared>>) -> Response {
    if s.state.is_ready() {
        "Ready\n".into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready: opening the store\n",
        )
            .into_response()
    }
}

async fn landing(AxState(s): AxState<Arc<Shared>>) -> Html<String> {
    let m = &s.telemetry_path;
    Html(format!(
        "<!doctype html><html><head><title>Stinger</title></head><body>\
         <h1>Stinger {v}</h1><p>Watches a cloud's attack surface.</p><ul>\
         <li><a href=\"{m}\">Metrics</a></li>\
         <li><a href=\"/api/v1/vms\">Hosts and VMs</a> (<a href=\"/api/v1/vms?unexpected=true\">with unexpected open ports</a>)</li>\
         <li><a href=\"/api/v1/scans\">Scan runs</a></li>\
         <li><a href=\"/api/v1/changes\">Changes</a></li>\
         <li><a href=\"/api/v1/vulnerabilities\">Vulnerabilities</a></li>\
         <li><a href=\"/api/v1/digest\">Digest (what the e-mail says)</a></li>\
         <li><a href=\"/api/v1/openapi.yaml\">API description (OpenAPI)</a></li>\
         <li><a href=\"/-/healthy\">Health</a> and <a href=\"/-/ready\">readiness</a></li>\
         </ul></body></html>\n",
        v = crate::build::VERSION
    ))
}
