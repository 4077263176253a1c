//! The JSON detail API under `/api/v1/` (documented in `../openapi.yaml`): hosts/VMs with filters and
//! cursor paging, one host or one cloud VM in full ([`vms`]), vulnerabilities, scan runs, history
//! changes, and the digest the e-mail carries. Hosts and VMs come from the in-memory view; runs and changes from the store. Every bad
//! query parameter gets a 400 naming the parameter and the accepted form.

mod findings;
mod scan_request;
mod vms;
pub use findings::{ack, finding, findings, unack, ACK_BODY_LIMIT};
pub use scan_request::{request_scan, SCAN_BODY_LIMIT};
pub use vms::{vm, vms};

use super::digest::{Digest, Scope};
use super::Shared;
use crate::model::{Event, EventKind, UnixSeconds};
use crate::store::{self, schema, EventQuery};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::sync::Arc;

/// A client error: which parameter, what is wrong, what is accepted.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRequest {
    pub parameter: String,
    pub message: String,
    pub expected: &'static str,
}

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        let body = json!({
            "error": format!("invalid parameter {:?}: {}", self.parameter, self.message),
            "parameter": self.parameter,
            "expected": self.expected,
        });
        (StatusCode::BAD_REQUEST, Json(body)).into_response()
    }
}

pub(crate) fn not_found(what: &str) -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "error": what }))).into_response()
}

fn server_error(e: store::Error) -> Response {
    tracing::error!(error = %e, "API store read failed");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({ "error": format!("the store could not answer: {e}") })),
    )
        .into_response()
}

/// Query parameters, parsed strictly: unknown or repeated parameters are errors too.
struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    fn parse(raw: Option<String>, allowed: &[&'static str]) -> Result<Params, BadRequest> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
            .map_err(|e| BadRequest {
                parameter: String::new(),
                message: format!("the query string is not URL-encoded: {e}"),
                expected: "name=value pairs joined by &",
            })?;
        for (i, (k, _)) in pairs.iter().enumerate() {
            if !allowed.contains(&k.as_str()) {
                return Err(BadRequest {
                    parameter: k.clone(),
                    message: "unknown parameter".into(),
                    expected:
                        "one of the parameters this endpoint documents (see /api/v1/openapi.yaml)",
                });
            }
            if pairs[..i].iter().any(|(k2, _)| k2 == k) {
                return Err(BadRequest {
                    parameter: k.clone(),
                    message: "given more than once".into(),
                    expected: "each parameter at most once",
                });
            }
        }
        Ok(Params { pairs })
    }

    fn get<T>(
        &self,
        name: &str,
        expected: &'static str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, BadRequest> {
        match self.pairs.iter().find(|(k, _)| k == name) {
            None => Ok(None),
            Some((_, v)) => parse(v).map(Some).ok_or_else(|| BadRequest {
                parameter: name.to_string(),
                message: format!("{v:?} is not valid"),
                expected,
            }),
        }
    }

    fn limit(&self) -> Result<usize, BadRequest> {
        Ok(self
            .get("limit", "an integer from 1 to 1000", |v| {
                v.parse::<usize>().ok().filter(|n| (1..=1000).contains(n))
            })?
            .unwrap_or(100))
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// RFC 3339 (`2026-11-24T10:00:00Z`) or Unix seconds.
pub fn parse_time(v: &str) -> Option<UnixSeconds> {
    if let Ok(t) = v.parse::<f64>() {
        return t.is_finite().then_some(t);
    }
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

const TIME_FORM: &str = "RFC 3339 (2026-11-24T10:00:00Z) or Unix seconds";

/// Every [`EventKind`], as the `kind` parameter accepts them (a test keeps it complete).
const KINDS: &str = "port_opened, port_closed, host_appeared, host_disappeared, verdict_changed, \
     service_changed, vuln_found, vuln_remediated, vm_appeared or vm_gone";

/// Every vulnerability known on every host, highest CVSS first, filtered.
pub async fn vulnerabilities(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    match list_vulnerabilities(&s, q) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn list_vulnerabilities(s: &Shared, q: Option<String>) -> Result<Response, BadRequest> {
    let p = Params::parse(q, &["min_cvss", "cve", "vm", "source", "limit"])?;
    let min_cvss = p.get("min_cvss", "a CVSS score from 0 to 10", |v| {
        v.parse::<f64>().ok().filter(|c| (0.0..=10.0).contains(c))
    })?;
    let cve = p.get("cve", "a vulnerability id, e.g. CVE-2023-38408", |v| {
        (!v.is_empty()).then(|| v.to_string())
    })?;
    let vm = p.get("vm", "a host or VM id", |v| {
        (!v.is_empty()).then(|| v.to_string())
    })?;
    let source = p.get("source", "nmap_vulners or greenbone", |v| match v {
        "nmap_vulners" => Some(crate::model::VulnSource::NmapVulners),
        "greenbone" => Some(crate::model::VulnSource::Greenbone),
        _ => None,
    })?;
    let limit = p
        .get("limit", "an integer from 1 to 10000", |v| {
            v.parse::<usize>().ok().filter(|n| (1..=10_000).contains(n))
        })?
        .unwrap_or(1000);
    let view = s.state.read();
    let mut rows = Vec::new();
    for h in view.hosts.values() {
        if vm.as_deref().is_some_and(|id| id != h.id) {
            continue;
        }
        let on_ports = h
            .ports
            .iter()
            .flat_map(|p| p.vulns.iter().map(move |v| (Some(p), v)));
        for (port, v) in on_ports.chain(h.vulns.iter().map(|v| (None, v))) {
            let keep = min_cvss.is_none_or(|m| v.cvss.is_some_and(|c| c >= m))
                && cve
                    .as_deref()
                    .is_none_or(|id| v.id.eq_ignore_ascii_case(id))
                && source.is_none_or(|src| v.source == src);
            if keep {
                rows.push(json!({
                    "host": h.id, "address": h.address.to_string(), "group": h.group,
                    "port": port.map(|p| p.port), "protocol": port.map(|p| p.protocol),
                    "id": v.id, "cvss": v.cvss, "source": v.source, "exploit": v.exploit,
                    "name": v.name, "first_seen": v.first_seen, "last_seen": v.last_seen,
                }));
            }
        }
    }
    rows.sort_by(|a, b| {
        let c = |r: &serde_json::Value| r["cvss"].as_f64().unwrap_or(0.0);
        c(b).total_cmp(&c(a))
    });
    let truncated = rows.len() > limit;
    rows.truncate(limit);
    Ok(Json(json!({ "vulnerabilities": rows, "truncated": truncated })).into_response())
}

pub async fn scans(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let parsed = Params::parse(q, &["limit", "before"]).and_then(|p| {
        Ok((
            p.limit()?,
            p.get("before", "a scan id (continue below it)", |v| {
                v.parse::<u64>().ok()
            })?,
        ))
    });
    let (limit, before) = match parsed {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    match store::blocking(&s.store, move |st| st.scans(before, limit)).await {
        Ok(runs) => {
            let next = (runs.len() == limit)
                .then(|| runs.last().map(|r| r.id))
                .flatten();
            Json(json!({ "scans": runs, "next_before": next })).into_response()
        }
        Err(e) => server_error(e),
    }
}

pub async fn scan(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return BadRequest {
            parameter: "id".into(),
            message: format!("{id:?} is not a scan id"),
            expected: "a positive integer",
        }
        .into_response();
    };
    match store::blocking(&s.store, move |st| st.scan(id)).await {
        Ok(Some(run)) if run.request.is_some() => Json(on_demand(&s, run)).into_response(),
        Ok(Some(run)) => Json(json!({ "scan": run })).into_response(),
        Ok(None) => not_found(&format!("no scan with id {id}")),
        Err(e) => server_error(e),
    }
}

/// An on-demand scan: its run, where it stands, and (once it ran) the current state of each
/// target it scanned.
fn on_demand(s: &Shared, run: crate::model::ScanRun) -> serde_json::Value {
    use crate::model::Outcome;
    let mut out = json!({ "scan": run });
    match run.outcome {
        Outcome::Queued => {
            let waiting = s.state.on_demand.get(run.id).is_some();
            out["queued"] = json!(waiting);
        }
        Outcome::Running => {
            if let Some(p) = s.state.progress(crate::model::Stage::Discovery) {
                let (done, total) = p.counts().unwrap_or_default();
                out["progress"] = json!({ "done": done, "total": total, "ratio": p.ratio() });
            }
        }
        _ => {
            let view = s.state.read();
            let ids = run.request.as_ref().map_or(&[][..], |r| r.hosts.as_slice());
            let hosts: Vec<&crate::model::HostState> =
                ids.iter().filter_map(|id| view.hosts.get(id)).collect();
            out["hosts"] = json!(hosts);
        }
    }
    out
}

pub async fn changes(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let query = match parse_changes(q) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let limit = query.limit;
    let found = store::blocking(&s.store, move |st| {
        // A cloud VM's instance id stands for the VM and every host (address) it has had.
        let mut query = query;
        if let [id] = query.hosts.as_slice() {
            let under = st.hosts_under(id)?;
            query.hosts.extend(under);
        }
        st.events(&query)
    });
    match found.await {
        Ok(events) => {
            let next = (events.len() == limit)
                .then(|| events.last().map(|(k, _)| schema::to_hex(k)))
                .flatten();
            let changes: Vec<Event> = events.into_iter().map(|(_, e)| e).collect();
            Json(json!({ "changes": changes, "next_cursor": next })).into_response()
        }
        Err(e) => server_error(e),
    }
}

/// The digest as the next e-mail to the admins (or, with `project`, to that project's recipients)
/// would carry it, whether or not e-mail is on: the findings' changes since `since` (default: when
/// the last digest to those recipients went out; none yet: the first digest's summary), with
/// vulnerabilities below `min_cvss` (default 7) left out of the lists.
pub async fn digest(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let (since, min_cvss, project) = match parse_digest(q) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let since = match since {
        Some(t) => Some(t),
        None => {
            let p = project.clone();
            match store::blocking(&s.store, move |st| st.digest_last_sent(p.as_deref())).await {
                Ok(last) => last,
                Err(e) => return server_error(e),
            }
        }
    };
    let scope = Scope {
        since,
        until: crate::model::now(),
        project,
        min_cvss,
    };
    Json(Digest::build(&s.state.read(), &scope)).into_response()
}

type DigestParams = (Option<UnixSeconds>, f64, Option<String>);

fn parse_digest(q: Option<String>) -> Result<DigestParams, BadRequest> {
    let p = Params::parse(q, &["since", "min_cvss", "project"])?;
    let since = p.get("since", TIME_FORM, parse_time)?;
    let min_cvss = p.get("min_cvss", "a CVSS score from 0 to 10", |v| {
        v.parse::<f64>().ok().filter(|c| (0.0..=10.0).contains(c))
    })?;
    let project = p.get("project", "an OpenStack project name or id", |v| {
        (!v.is_empty()).then(|| v.to_string())
    })?;
    Ok((since, min_cvss.unwrap_or(7.0), project))
}

fn parse_changes(q: Option<String>) -> Result<EventQuery, BadRequest> {
    let p = Params::parse(q, &["since", "until", "vm", "kind", "limit", "cursor"])?;
    let since = p.get("since", TIME_FORM, parse_time)?;
    let until = p.get("until", TIME_FORM, parse_time)?;
    if let (Some(a), Some(b)) = (since, until) {
        if a > b {
            return Err(BadRequest {
                parameter: "until".into(),
                message: "is before since".into(),
                expected: TIME_FORM,
            });
        }
    }
    Ok(EventQuery {
        since,
        until,
        hosts: p
            .get("vm", "a host or VM id", |v| {
                (!v.is_empty()).then(|| v.to_string())
            })?
            .into_iter()
            .collect(),
        kind: p.get("kind", KINDS, EventKind::parse)?,
        after: p.get("cursor", "the next_cursor of a previous page", |v| {
            schema::from_hex(v).filter(|k| k.len() == schema::EVENT_KEY_LEN)
        })?,
        limit: p.limit()?,
        newest_first: false,
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn every_event_kind_is_accepted_and_listed() {
        for k in EventKind::ALL {
            assert!(
                KINDS.contains(k.as_str()),
                "{} missing from KINDS",
                k.as_str()
            );
            let q = parse_changes(Some(format!("kind={}", k.as_str())))
                .ok()
                .unwrap();
            assert_eq!(q.kind, Some(k));
        }
        let e = parse_changes(Some("kind=vm_deleted".into())).err().unwrap();
        assert_eq!((e.parameter.as_str(), e.expected), ("kind", KINDS));
    }

    #[test]
    fn params_are_strict_and_name_the_culprit() {
        let e = Params::parse(Some("port=1&bogus=2".into()), &["port"])
            .err()
            .unwrap();
        assert_eq!(e.parameter, "bogus");
        let e = Params::parse(Some("port=1&port=2".into()), &["port"])
            .err()
            .unwrap();
        assert_eq!(e.parameter, "port");
        let p = Params::parse(Some("limit=0".into()), &["limit"])
            .ok()
            .unwrap();
        assert_eq!(p.limit().unwrap_err().parameter, "limit");
    }

    #[test]
    fn changes_queries_parse_times_kinds_and_cursors() {
        let q = parse_changes(Some(
            "since=2026-11-24T10:00:00Z&until=1800000000&kind=port_closed".into(),
        ))
        .ok()
        .unwrap();
        assert_eq!(q.since, Some(1_795_514_400.0));
        assert_eq!(q.kind, Some(EventKind::PortClosed));
        assert_eq!(
            parse_changes(Some("kind=opened".into()))
                .err()
                .unwrap()
                .parameter,
            "kind"
        );
        assert_eq!(
            parse_changes(Some("since=yesterday".into()))
                .err()
                .unwrap()
                .parameter,
            "since"
        );
        assert_eq!(
            parse_changes(Some("cursor=abc".into()))
                .err()
                .unwrap()
                .parameter,
            "cursor"
        );
        assert_eq!(
            parse_changes(Some("since=20&until=10".into()))
                .err()
                .unwrap()
                .parameter,
            "until"
        );
    }
}
