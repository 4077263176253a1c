//! Findings in the JSON API. `GET /api/v1/findings` lists them, filtered, most severe first and
//! cursor paged, each without its history; `GET /api/v1/findings/{id}` is one in full, with its
//! history and earlier occurrences. Both read the in-memory view only (never the store, never a
//! 503). Acknowledging and withdrawing (the only writes in the API) are in [`ack`].

mod ack;
pub use ack::{ack, unack, ACK_BODY_LIMIT};

use super::query::{self, Filter, FindingsQuery};
use super::BadRequest;
use crate::expose::Shared;
use crate::model::{
    Ack, Finding, FindingKind, FindingState, Protocol, Severity, UnixSeconds, VmLink,
};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

/// The list's order: most severe first (then by id).
const ORDER: [Severity; 4] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
];

/// The API path of a finding.
pub(crate) fn api_url(id: &str) -> String {
    format!("/api/v1/findings/{id}")
}

/// When a finding last changed: its newest history event (no history: when it was first seen).
fn last_change(f: &Finding) -> UnixSeconds {
    f.history.last().map_or(f.first_seen, |e| e.time)
}

/// One finding as listed: everything but its history and earlier occurrences (their counts
/// instead), so a page stays bounded.
#[derive(Serialize)]
struct Summary<'a> {
    id: &'a str,
    kind: FindingKind,
    key: &'a str,
    host: &'a str,
    address: IpAddr,
    group: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    vm: Option<&'a VmLink>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<Protocol>,
    #[serde(skip_serializing_if = "Option::is_none")]
    port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cve: Option<&'a str>,
    state: FindingState,
    severity: Severity,
    rule: &'a str,
    evidence: &'a str,
    first_seen: UnixSeconds,
    last_seen: UnixSeconds,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed_at: Option<UnixSeconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at: Option<UnixSeconds>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stale_since: Option<UnixSeconds>,
    occurrence: u32,
    seen: u32,
    missed: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    ack: Option<&'a Ack>,
    trigger: crate::model::Trigger,
    #[serde(skip_serializing_if = "Option::is_none")]
    detection_latency: Option<f64>,
    alerting: bool,
    last_change: UnixSeconds,
    history_events: usize,
    previous_occurrences: usize,
    api_url: String,
}

impl<'a> Summary<'a> {
    fn of(f: &'a Finding) -> Self {
        Summary {
            id: &f.id,
            kind: f.kind,
            key: &f.key,
            host: &f.host,
            address: f.address,
            group: &f.group,
            vm: f.vm.as_ref(),
            protocol: f.protocol,
            port: f.port,
            cve: f.cve.as_deref(),
            state: f.state,
            severity: f.severity,
            rule: &f.rule,
            evidence: &f.evidence,
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            confirmed_at: f.confirmed_at,
            resolved_at: f.resolved_at,
            stale_since: f.stale_since,
            occurrence: f.occurrence,
            seen: f.seen,
            missed: f.missed,
            ack: f.ack.as_ref(),
            trigger: f.trigger,
            detection_latency: f.detection_latency,
            alerting: f.alerting(),
            last_change: last_change(f),
            history_events: f.history.len(),
            previous_occurrences: f.previous.len(),
            api_url: api_url(&f.id),
        }
    }
}

/// One finding in full, as `GET /api/v1/findings/{id}` and the acknowledgement endpoints answer.
#[derive(Serialize)]
struct Detail<'a> {
    #[serde(flatten)]
    finding: &'a Finding,
    alerting: bool,
    last_change: UnixSeconds,
    api_url: String,
}

/// `{"finding": ...}`: the finding in full.
pub(super) fn detail(f: &Finding) -> Response {
    let d = Detail {
        finding: f,
        alerting: f.alerting(),
        last_change: last_change(f),
        api_url: api_url(&f.id),
    };
    Json(One { finding: d }).into_response()
}

/// The answer with one finding.
#[derive(Serialize)]
struct One<'a> {
    finding: Detail<'a>,
}

/// A page of the list.
#[derive(Serialize)]
struct Page<'a> {
    findings: Vec<Summary<'a>>,
    next_cursor: Option<String>,
}

impl Filter {
    fn keeps(&self, f: &Finding) -> bool {
        self.states.as_ref().is_none_or(|s| s.contains(&f.state))
            && self.kinds.as_ref().is_none_or(|k| k.contains(&f.kind))
            && self
                .severities
                .as_ref()
                .is_none_or(|s| s.contains(&f.severity))
            && self.min_severity.is_none_or(|m| f.severity >= m)
            && self.project.as_deref().is_none_or(|p| f.in_project(p))
            && self.vm.as_deref().is_none_or(|v| {
                f.vm.as_ref()
                    .is_some_and(|l| l.vm_id == v || l.vm_name == v)
            })
            && self.cidr.is_none_or(|c| c.contains(f.address))
            && self.port.is_none_or(|p| f.port == Some(p))
            && self
                .cve
                .as_deref()
                .is_none_or(|id| f.cve.as_deref().is_some_and(|c| c.eq_ignore_ascii_case(id)))
            && self.acknowledged.is_none_or(|a| f.ack.is_some() == a)
            && self.since.is_none_or(|t| last_change(f) >= t)
    }
}

/// `GET /api/v1/findings`.
pub async fn findings(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let FindingsQuery {
        filter,
        limit,
        cursor,
    } = match query::findings(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let view = s.state.read();
    let mut out: Vec<Summary<'_>> = Vec::new();
    let mut next = None;
    'severities: for severity in ORDER {
        let start = match &cursor {
            Some(c) if severity > c.severity => continue,
            Some(c) if severity == c.severity => Bound::Excluded(c.id.as_str()),
            _ => Bound::Unbounded,
        };
        let range = view.findings.range::<str, _>((start, Bound::Unbounded));
        for f in range.map(|(_, f)| f) {
            if f.severity != severity || !filter.keeps(f) {
                continue;
            }
            if out.len() == limit {
                next = out.last().map(|l| format!("{}:{}", l.severity, l.id));
                break 'severities;
            }
            out.push(Summary::of(f));
        }
    }
    Json(Page {
        findings: out,
        next_cursor: next,
    })
    .into_response()
}

/// A refused request: a 400 naming what is wrong, or another status with a JSON body. (Small, so
/// that it can be an `Err` where a built `Response` would be too large.)
#[derive(Debug)]
pub(super) enum Refusal {
    Bad(BadRequest),
    Other(StatusCode, serde_json::Value),
}

impl Refusal {
    #[cfg(test)]
    pub(super) fn status(&self) -> StatusCode {
        match self {
            Refusal::Bad(_) => StatusCode::BAD_REQUEST,
            Refusal::Other(status, _) => *status,
        }
    }
}

impl From<BadRequest> for Refusal {
    fn from(b: BadRequest) -> Refusal {
        Refusal::Bad(b)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Bad(b) => b.into_response(),
            Refusal::Other(status, body) => (status, Json(body)).into_response(),
        }
    }
}

/// The `{id}` of a path, or a 400 naming `id` when it does not decode.
pub(super) fn path_id(id: Result<Path<String>, PathRejection>) -> Result<String, BadRequest> {
    match id {
        Ok(Path(id)) => query::finding_id(&id).map(str::to_string),
        Err(e) => Err(BadRequest {
            parameter: "id".into(),
            message: format!("cannot be decoded: {}", e.body_text()),
            expected: query::FINDING_ID_FORM,
        }),
    }
}

/// The 404 of an unknown finding id.
pub(super) fn no_such_finding(id: &str) -> Refusal {
    Refusal::Other(
        StatusCode::NOT_FOUND,
        json!({ "error": format!(
            "no finding with id {id:?} (resolved findings are removed after \
             storage.event_retention); see /api/v1/findings"
        ) }),
    )
}

/// `GET /api/v1/findings/{id}`.
pub async fn finding(
    State(s): State<Arc<Shared>>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match path_id(id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
    };
    let view = s.state.read();
    match view.findings.get(&id) {
        Some(f) => detail(f),
        None => no_such_finding(&id).into_response(),
    }
}

#[cfg(test)]
mod tests;
