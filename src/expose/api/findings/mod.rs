//! Findings in the JSON API. `GET /api/v1/findings` lists them, filtered, most severe first and
//! cursor paged, each without its history; `GET /api/v1/findings/{id}` is one in full, with its
//! history and earlier occurrences. Both read the in-memory view only (never the store, never a
//! 503). Acknowledging and withdrawing (the only writes in the API) are in [`ack`].

mod ack;
pub use ack::{ack, unack, ACK_BODY_LIMIT};

use super::{parse_bool, parse_time, BadRequest, Params, TIME_FORM};
use crate::expose::Shared;
use crate::model::{
    Ack, Finding, FindingKind, FindingState, Protocol, Severity, UnixSeconds, VmLink,
};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use ipnetwork::IpNetwork;
use serde::Serialize;
use serde_json::json;
use std::net::IpAddr;
use std::ops::Bound;
use std::sync::Arc;

/// The query parameters of `GET /api/v1/findings` (a test checks openapi.yaml documents exactly
/// these).
pub(in crate::expose) const LIST_PARAMS: &[&str] = &[
    "state",
    "kind",
    "severity",
    "min_severity",
    "project",
    "vm",
    "cidr",
    "port",
    "cve",
    "acknowledged",
    "since",
    "limit",
    "cursor",
];

/// The list's order: most severe first (then by id).
const ORDER: [Severity; 4] = [
    Severity::Critical,
    Severity::High,
    Severity::Medium,
    Severity::Low,
];

const STATES: &str = "open, confirmed, stale or resolved (several: comma-separated)";
const KINDS: &str = "unexpected_port, world_open, sg_not_enforced, amplifier or vulnerability \
     (several: comma-separated)";
const SEVERITIES: &str = "low, medium, high or critical (several: comma-separated)";

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

/// Where a page continues: after this finding in the list's order.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cursor {
    severity: Severity,
    id: String,
}

impl Cursor {
    fn parse(v: &str) -> Option<Cursor> {
        let (severity, id) = v.split_once(':')?;
        Some(Cursor {
            severity: Severity::parse(severity)?,
            id: (!id.is_empty()).then(|| id.to_string())?,
        })
    }
}

/// The list's filters, all ANDed; `None` matches every finding.
#[derive(Debug, Default)]
struct Filter {
    states: Option<Vec<FindingState>>,
    kinds: Option<Vec<FindingKind>>,
    severities: Option<Vec<Severity>>,
    min_severity: Option<Severity>,
    project: Option<String>,
    vm: Option<String>,
    cidr: Option<IpNetwork>,
    port: Option<u16>,
    cve: Option<String>,
    acknowledged: Option<bool>,
    since: Option<UnixSeconds>,
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

/// A comma-separated list, each item parsed; `None` if any is empty or does not parse.
fn list_of<T: PartialEq>(v: &str, parse: impl Fn(&str) -> Option<T>) -> Option<Vec<T>> {
    let mut out = Vec::new();
    for item in v.split(',') {
        let x = parse(item)?;
        if !out.contains(&x) {
            out.push(x);
        }
    }
    Some(out)
}

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

fn parse_list(q: Option<String>) -> Result<(Filter, usize, Option<Cursor>), BadRequest> {
    let p = Params::parse(q, LIST_PARAMS)?;
    let filter = Filter {
        states: p.get("state", STATES, |v| list_of(v, FindingState::parse))?,
        kinds: p.get("kind", KINDS, |v| list_of(v, FindingKind::parse))?,
        severities: p.get("severity", SEVERITIES, |v| list_of(v, Severity::parse))?,
        min_severity: p.get(
            "min_severity",
            "low, medium, high or critical",
            Severity::parse,
        )?,
        project: p.get("project", "an OpenStack project name or id", non_empty)?,
        vm: p.get("vm", "an OpenStack instance id or name", non_empty)?,
        cidr: p.get("cidr", "an address or CIDR, e.g. 10.0.0.0/24", |v| {
            v.parse::<IpNetwork>().ok()
        })?,
        port: p.get("port", "a port number from 1 to 65535", |v| {
            v.parse::<u16>().ok().filter(|&n| n > 0)
        })?,
        cve: p.get("cve", "a vulnerability id, e.g. CVE-2023-38408", non_empty)?,
        acknowledged: p.get("acknowledged", "true or false", parse_bool)?,
        since: p.get("since", TIME_FORM, parse_time)?,
    };
    let limit = p.limit()?;
    let cursor = p.get(
        "cursor",
        "the next_cursor of a previous page (<severity>:<id>)",
        Cursor::parse,
    )?;
    Ok((filter, limit, cursor))
}

/// `GET /api/v1/findings`.
pub async fn findings(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let (filter, limit, cursor) = match parse_list(q) {
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
    const FORM: &str = "a finding id, as listed by /api/v1/findings";
    match id {
        Ok(Path(id)) if !id.is_empty() => Ok(id),
        Ok(_) => Err(BadRequest {
            parameter: "id".into(),
            message: "is empty".into(),
            expected: FORM,
        }),
        Err(e) => Err(BadRequest {
            parameter: "id".into(),
            message: format!("cannot be decoded: {}", e.body_text()),
            expected: FORM,
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
