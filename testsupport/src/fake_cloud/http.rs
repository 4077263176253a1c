//! One request to the fake cloud: faults applied (delays, statuses, broken bodies, a connection
//! dropped mid-body), dispatch to Nova or Neutron, counting and logging, and the reply written
//! with the services' own error bodies; plus the query-string helpers both services use.

use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::{json, Value};

use super::faults::{FaultKind, Service};
use super::neutron::neutron;
use super::nova::nova;
use super::server::{LoggedRequest, Svc, LOG_CAP};

/// A reply before faults and serialization.
pub(super) struct Out {
    pub(super) status: u16,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: Value,
    /// The top-level resource key, for the body faults.
    pub(super) resource: Option<&'static str>,
    /// The body already serialized (then `body` is unused): the server list is assembled from
    /// cached per-server JSON.
    pub(super) raw: Option<Vec<u8>>,
}

impl Out {
    pub(super) fn ok(body: Value, resource: Option<&'static str>) -> Out {
        Out {
            status: 200,
            headers: Vec::new(),
            body,
            resource,
            raw: None,
        }
    }
}

pub(super) fn nova_error(status: u16, message: &str) -> Out {
    let name = match status {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    };
    Out {
        status,
        headers: Vec::new(),
        body: json!({ name: {"code": status, "message": message} }),
        resource: None,
        raw: None,
    }
}

pub(super) fn neutron_error(status: u16, message: &str) -> Out {
    let kind = match status {
        400 => "HTTPBadRequest",
        403 => "HTTPForbidden",
        404 => "HTTPNotFound",
        405 => "HTTPMethodNotAllowed",
        503 => "HTTPServiceUnavailable",
        _ => "HTTPInternalServerError",
    };
    Out {
        status,
        headers: Vec::new(),
        body: json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}),
        resource: None,
        raw: None,
    }
}

fn service_error(service: Service, status: u16, message: &str) -> Out {
    match service {
        Service::Compute => nova_error(status, message),
        Service::Network => neutron_error(status, message),
    }
}

/// Every request to either service.
pub(super) async fn handle(
    State(svc): State<Svc>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let ctx = &svc.ctx;
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let token = header(&headers, "x-auth-token");
    let host = header(&headers, "host").unwrap_or_else(|| svc.addr.to_string());
    let mv_header = header(&headers, "openstack-api-version")
        .or_else(|| header(&headers, "x-openstack-nova-api-version"));

    let faults = ctx.faults.take(svc.service, &path);
    for f in &faults {
        if let FaultKind::Delay(d) = f {
            tokio::time::sleep(*d).await;
        }
    }
    let status_fault = faults.iter().find_map(|f| match f {
        FaultKind::Status(s) => Some(*s),
        _ => None,
    });
    let body_fault = faults
        .iter()
        .find(|f| !matches!(f, FaultKind::Delay(_) | FaultKind::Status(_)))
        .cloned();

    let mut out = if let Some(s) = status_fault {
        service_error(svc.service, s, "injected fault")
    } else if method != Method::GET {
        service_error(svc.service, 405, "only GET is implemented by the fake")
    } else {
        match svc.service {
            Service::Compute => nova(ctx, &path, &query, token.as_deref(), &headers, &host).await,
            Service::Network => neutron(ctx, &path, &query, token.as_deref(), &host).await,
        }
    };

    // The reply's `Date` is the cloud's clock, not the machine's (which hyper would add): the
    // agent starts its change polls from it, and tests move that clock.
    if let Some(date) = ctx.cloud.read().ok().and_then(|c| http_date(c.now_secs())) {
        out.headers.push(("date", date));
    }
    if let Ok(mut c) = ctx.counts.lock() {
        *c.by_path.entry(path.clone()).or_insert(0) += 1;
        if let Some(t) = &token {
            *c.by_token.entry(t.clone()).or_insert(0) += 1;
        }
        if c.log.len() < LOG_CAP {
            c.log.push(LoggedRequest {
                service: svc.service,
                path: path.clone(),
                query: query.clone(),
                had_token: token.is_some(),
                microversion: mv_header.clone(),
                status: out.status,
            });
        }
    }
    tracing::debug!(service = ?svc.service, %path, status = out.status, "fake cloud request");
    finish(out, body_fault, &host, &path, &query)
}

/// `secs` as an RFC 9110 HTTP date (`Mon, 07 Dec 2026 18:25:16 GMT`).
fn http_date(secs: u64) -> Option<String> {
    let t = jiff::Timestamp::from_second(i64::try_from(secs).ok()?).ok()?;
    jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&t)
        .ok()
}

pub(super) fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn finish(mut out: Out, fault: Option<FaultKind>, host: &str, path: &str, query: &str) -> Response {
    let ok = (200..300).contains(&out.status);
    let mut drop_mid_body = false;
    let mut invalid_json = false;
    let structural = matches!(
        fault,
        Some(FaultKind::MissingCollection | FaultKind::ItemWithoutId | FaultKind::PaginationLoop)
    );
    if ok && structural {
        if let Some(raw) = out.raw.take() {
            out.body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        }
    }
    if let (true, Some(f)) = (ok, fault) {
        let key = out.resource;
        match f {
            FaultKind::MissingCollection => {
                if let (Some(o), Some(k)) = (out.body.as_object_mut(), key) {
                    o.remove(k);
                }
            }
            FaultKind::ItemWithoutId => {
                if let Some(item) = key.and_then(|k| out.body.get_mut(k)) {
                    let target = match item {
                        Value::Array(a) => a.first_mut(),
                        other => Some(other),
                    };
                    if let Some(Value::Object(o)) = target {
                        o.remove("id");
                    }
                }
            }
            FaultKind::PaginationLoop => {
                if let (Some(o), Some(k)) = (out.body.as_object_mut(), key) {
                    let first: Vec<(String, String)> = parse_query(query)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(k, _)| k != "marker")
                        .collect();
                    let href = absolute(host, path, &first);
                    o.insert(
                        format!("{}_links", k),
                        json!([{"href": href, "rel": "next"}]),
                    );
                }
            }
            FaultKind::InvalidJson => invalid_json = true,
            FaultKind::DropMidBody => drop_mid_body = true,
            FaultKind::Delay(_) | FaultKind::Status(_) => {}
        }
    }
    let mut bytes = match out.raw.take() {
        Some(raw) => raw,
        None => serde_json::to_vec(&out.body).unwrap_or_default(),
    };
    if invalid_json {
        bytes.truncate(bytes.len() / 2);
        bytes.extend_from_slice(b"<html>not json</html>");
    }
    let full_len = bytes.len();
    let body = if drop_mid_body {
        let half = Bytes::from(bytes[..full_len / 2].to_vec());
        Body::new(DropBody {
            first: Some(half),
            pause: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
        })
    } else {
        Body::from(bytes)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() =
        StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if drop_mid_body {
        h.insert(
            axum::http::header::CONTENT_LENGTH,
            HeaderValue::from(full_len),
        );
    }
    for (k, v) in out.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(name, value);
        }
    }
    resp
}

/// A body that sends its first chunk, waits a moment (so it is flushed), then fails, which makes
/// hyper drop the connection short of the announced `Content-Length`.
struct DropBody {
    first: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for DropBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        if let Some(b) = self.first.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(b))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "injected fault: connection dropped mid-body",
            )))),
        }
    }
}

pub(super) fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .map_err(|e| format!("query string is not valid: {e}"))
}

/// An absolute URL on the host the client used (for `*_links`).
pub(super) fn absolute(host: &str, path: &str, params: &[(String, String)]) -> String {
    let q = serde_urlencoded::to_string(params).unwrap_or_default();
    if q.is_empty() {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}{path}?{q}")
    }
}

/// An OpenStack boolean query value (`None`: not one).
pub(super) fn truthy(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}
