//! On-demand scans: `POST /api/v1/scans` with `{"targets": ["<vm id> | <address> | <cidr>", ...],
//! "ports": "..."}` queues a targeted pass over those targets and answers 202 with its scan id at
//! once; `GET /api/v1/scans/{id}` follows it. A write: it exists when the web config has
//! `basic_auth_users` (403 saying how to turn it on otherwise), and the requesting user is the one
//! the middleware authenticated. Targets resolve against this agent's inventory only — an address
//! or network no target group or cloud inventory of this agent names is refused with 403 naming
//! it, so nothing outside the configured scope is ever probed. Each user may ask
//! `[scan.targeted] max_per_minute` times a minute (429 with `Retry-After`), and a request the
//! queue already holds gets that run's id.

use crate::expose::webconfig::AuthenticatedUser;
use crate::expose::Shared;
use crate::model::{now, Outcome, ProbeCounts, ScanRequest, ScanRun, Stage};
use crate::state::on_demand::Refused;
use crate::state::View;
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use ipnetwork::IpNetwork;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// The largest request body accepted (the router sets it as the route's body limit).
pub const SCAN_BODY_LIMIT: usize = 64 * 1024;
/// Most entries in `targets`.
const MAX_TARGETS: usize = 256;
/// Most inventory targets one request may resolve to.
const MAX_HOSTS: usize = 4096;
/// Longest target entry, in bytes.
const MAX_TARGET_LEN: usize = 128;

const BODY_FORM: &str = r#"a JSON object {"targets": ["<vm id> | <address> | <cidr>", ...], "ports": "22,80,8000-8100"} ("ports" optional: each target's configured ports)"#;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    targets: Vec<String>,
    #[serde(default)]
    ports: Option<String>,
}

/// A refusal: status and JSON body.
struct Refusal(StatusCode, Value);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (self.0, Json(self.1)).into_response()
    }
}

fn bad(parameter: &str, message: String) -> Refusal {
    Refusal(
        StatusCode::BAD_REQUEST,
        json!({
            "error": format!("invalid parameter {parameter:?}: {message}"),
            "parameter": parameter,
            "expected": BODY_FORM,
        }),
    )
}

/// `POST /api/v1/scans`.
pub async fn request_scan(
    State(s): State<Arc<Shared>>,
    user: Option<Extension<AuthenticatedUser>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    queue(&s, user, &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn queue(
    s: &Shared,
    user: Option<Extension<AuthenticatedUser>>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let Some(by) = user.and_then(|Extension(AuthenticatedUser(u))| u) else {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            json!({
                "error": "on-demand scans are disabled: they need authenticated users. Give \
                          stinger --web.config.file (or [web] config_file) naming an \
                          exporter-toolkit web config whose basic_auth_users lists users with \
                          bcrypt password hashes, then send the request with HTTP basic auth as \
                          one of them",
                "flag": "--web.config.file",
                "key": "basic_auth_users",
            }),
        ));
    };
    let body = read_body(headers, body)?;
    let (hosts, max_per_minute) = {
        let view = s.state.read();
        (resolve(&view, &body.targets)?, view.scans_per_minute)
    };
    let t = now();
    if let Some(run) = s.state.on_demand.same_as(&hosts, body.ports.as_deref()) {
        return Ok(accepted(&run, true));
    }
    match s.state.on_demand.admit(&by, t, max_per_minute) {
        Ok(()) => {}
        Err(Refused::RateLimited { retry_after }) => {
            let body = json!({
                "error": format!("{by} asked for {max_per_minute} scans within the last minute \
                                  ([scan.targeted] max_per_minute); try again in {retry_after} s"),
                "retry_after": retry_after,
            });
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(RETRY_AFTER, retry_after.to_string())],
                Json(body),
            )
                .into_response());
        }
        Err(Refused::QueueFull) => {
            let body = json!({
                "error": format!("{} on-demand scans are waiting already; try again when they \
                                  have run", crate::state::on_demand::MAX_QUEUED),
                "retry_after": 60,
            });
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(RETRY_AFTER, "60".to_string())],
                Json(body),
            )
                .into_response());
        }
    }
    let run = queued_run(ScanRequest {
        by: by.clone(),
        at: t,
        targets: body.targets,
        ports: body.ports,
        hosts,
    });
    let run = match store::blocking(&s.store, move |st| st.begin_run(run)).await {
        Ok(run) => run,
        Err(e) => {
            tracing::error!(error = %e, "cannot record an on-demand scan");
            return Err(Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": format!("the store could not record the scan: {e}; nothing was queued, try again") }),
            ));
        }
    };
    tracing::info!(
        scan_id = run.id,
        user = %by,
        targets = run.request.as_ref().map_or(0, |r| r.hosts.len()),
        "on-demand scan queued"
    );
    s.state.on_demand.push(run.clone());
    Ok(accepted(&run, false))
}

/// 202 with the run's id and where to follow it.
fn accepted(run: &ScanRun, coalesced: bool) -> Response {
    let url = format!("/api/v1/scans/{}", run.id);
    let body = json!({
        "id": run.id,
        "state": run.outcome.as_str(),
        "url": url,
        "coalesced": coalesced,
        "targets": run.request.as_ref().map_or(0, |r| r.hosts.len()),
    });
    (StatusCode::ACCEPTED, [(LOCATION, url)], Json(body)).into_response()
}

fn queued_run(request: ScanRequest) -> ScanRun {
    ScanRun {
        id: 0,
        stage: Stage::Targeted,
        started: request.at,
        finished: None,
        outcome: Outcome::Queued,
        groups: Vec::new(),
        targets: request.hosts.len() as u64,
        ports: 0,
        probes: ProbeCounts::default(),
        hosts_up: 0,
        open_ports: 0,
        unexpected_ports: 0,
        errors: Vec::new(),
        request: Some(request),
        trigger: crate::model::Trigger::OnDemand,
    }
}

/// The JSON body, checked: `targets` and `ports` well-formed and bounded.
fn read_body(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Body, Refusal> {
    let json_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
    if !json_type {
        return Err(Refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            json!({
                "error": "the body must be JSON: send Content-Type: application/json",
                "parameter": "Content-Type",
                "expected": "application/json",
            }),
        ));
    }
    let bytes = match body {
        Ok(b) => b,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(Refusal(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({ "error": format!("the body is larger than {SCAN_BODY_LIMIT} bytes") }),
            ))
        }
        Err(e) => return Err(bad("body", format!("cannot be read: {}", e.body_text()))),
    };
    let body: Body = serde_json::from_slice(&bytes).map_err(|e| bad("body", e.to_string()))?;
    if body.targets.is_empty() || body.targets.len() > MAX_TARGETS {
        return Err(bad(
            "targets",
            format!(
                "holds {} entries; give 1 to {MAX_TARGETS}",
                body.targets.len()
            ),
        ));
    }
    for t in &body.targets {
        if t.is_empty() || t.len() > MAX_TARGET_LEN || t.chars().any(char::is_control) {
            return Err(bad(
                "targets",
                format!(
                    "{:?} is not a VM id, an address or a CIDR",
                    t.chars().take(MAX_TARGET_LEN).collect::<String>()
                ),
            ));
        }
    }
    if let Some(p) = &body.ports {
        crate::ports::PortList::parse(p).map_err(|e| bad("ports", e.to_string()))?;
    }
    Ok(body)
}

/// The address a target id ends in (`<address>`, or `<instance>/<port>/<address>`).
fn address_of(id: &str) -> Option<IpAddr> {
    id.rsplit('/').next()?.parse().ok()
}

/// The inventory targets the requested entries name, sorted; 403 naming an entry that names none.
fn resolve(view: &View, targets: &[String]) -> Result<Vec<String>, Refusal> {
    let mut hosts: Vec<String> = Vec::new();
    for t in targets {
        let before = hosts.len();
        if let Ok(ip) = t.parse::<IpAddr>() {
            hosts.extend(
                view.target_scans
                    .keys()
                    .filter(|id| address_of(id) == Some(ip))
                    .cloned(),
            );
        } else if let Ok(net) = t.parse::<IpNetwork>() {
            hosts.extend(
                view.target_scans
                    .keys()
                    .filter(|id| address_of(id).is_some_and(|a| net.contains(a)))
                    .cloned(),
            );
        } else {
            let prefix = format!("{t}/");
            hosts.extend(
                view.target_scans
                    .keys()
                    .filter(|id| id.starts_with(&prefix))
                    .cloned(),
            );
        }
        if hosts.len() == before {
            return Err(Refusal(
                StatusCode::FORBIDDEN,
                json!({
                    "error": format!(
                        "{t:?} is not in this agent's scope: no target group or cloud inventory \
                         of its last discovery pass names it (as an address, a network or a VM \
                         id), and only those are ever scanned"
                    ),
                    "target": t,
                }),
            ));
        }
        if hosts.len() > MAX_HOSTS {
            return Err(bad(
                "targets",
                format!("name more than {MAX_HOSTS} targets; ask for fewer at a time"),
            ));
        }
    }
    hosts.sort();
    hosts.dedup();
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::TargetScan;

    fn view(ids: &[&str]) -> View {
        let mut v = View::default();
        for id in ids {
            v.target_scans.insert(
                id.to_string(),
                TargetScan {
                    group: "g".into(),
                    last: None,
                },
            );
        }
        v
    }

    fn targets(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn targets_resolve_to_inventory_ids() {
        let v = view(&[
            "127.0.0.1",
            "127.0.0.2",
            "10.1.0.7",
            "4b1c/port-a/192.0.2.5",
            "4b1c/port-b/2001:db8::5",
            "77aa/port-c/192.0.2.9",
        ]);
        let got = resolve(&v, &targets(&["127.0.0.2"])).ok().unwrap();
        assert_eq!(got, ["127.0.0.2"]);
        let got = resolve(&v, &targets(&["127.0.0.0/30", "127.0.0.1"]))
            .ok()
            .unwrap();
        assert_eq!(got, ["127.0.0.1", "127.0.0.2"]);
        let got = resolve(&v, &targets(&["4b1c"])).ok().unwrap();
        assert_eq!(got, ["4b1c/port-a/192.0.2.5", "4b1c/port-b/2001:db8::5"]);
        // A cloud VM's address names its host too.
        let got = resolve(&v, &targets(&["192.0.2.9"])).ok().unwrap();
        assert_eq!(got, ["77aa/port-c/192.0.2.9"]);
    }

    #[test]
    fn anything_outside_the_inventory_is_refused_by_name() {
        let v = view(&["127.0.0.1", "4b1c/port-a/192.0.2.5"]);
        for t in ["8.8.8.8", "10.0.0.0/8", "4b1", "127.0.0.1/port"] {
            let Err(Refusal(status, body)) = resolve(&v, &targets(&["127.0.0.1", t])) else {
                panic!("{t} accepted");
            };
            assert_eq!(status, StatusCode::FORBIDDEN, "{t}");
            assert_eq!(body["target"], t);
        }
    }

    #[test]
    fn bodies_are_checked() {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, "application/json".parse().unwrap());
        let read = |b: &str| read_body(&headers, Ok(Bytes::from(b.to_owned())));
        assert!(read(r#"{"targets": ["127.0.0.1"], "ports": "22,80"}"#).is_ok());
        for b in [
            r#"{"targets": []}"#,
            r#"{"targets": ["127.0.0.1"], "ports": "99999"}"#,
            r#"{"targets": ["127.0.0.1"], "extra": 1}"#,
            r#"{"targets": "127.0.0.1"}"#,
            r#"{"targets": ["a\u0000b"]}"#,
            "not json",
        ] {
            let Err(Refusal(status, _)) = read(b) else {
                panic!("{b} accepted");
            };
            assert_eq!(status, StatusCode::BAD_REQUEST, "{b}");
        }
        let many = format!(
            r#"{{"targets": [{}]}}"#,
            vec![r#""127.0.0.1""#; 257].join(",")
        );
        assert!(read(&many).is_err());
        let Err(Refusal(status, _)) = read_body(&HeaderMap::new(), Ok(Bytes::new())) else {
            panic!("no content type accepted");
        };
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
