//! The JSON detail API under `/api/v1/` (documented in `../openapi.yaml`): hosts/VMs with filters and
//! cursor paging, one host or one cloud VM in full ([`vms`]), vulnerabilities, scan runs, history
//! changes, and the digest the e-mail carries. Hosts and VMs come from the in-memory view; runs and changes from the store. Every bad
//! query parameter gets a 400 naming the parameter and the accepted form: the parsing is [`query`]
//! (pure, fuzzed by `fuzz/`). The queries that scan the whole view (vulnerabilities, the digest)
//! build at most `limit` rows, however many match.

mod findings;
pub(crate) mod query;
mod scan_request;
mod vms;
pub use findings::{ack, finding, findings, unack, ACK_BODY_LIMIT};
pub use query::BadRequest;
pub use scan_request::{request_scan, SCAN_BODY_LIMIT};
pub use vms::{vm, vms};

use super::digest::top::Top;
use super::digest::{Digest, Scope};
use super::Shared;
use crate::model::{Event, HostState, PortFinding, Vulnerability};
use crate::state::View;
use crate::store::{self, schema, EventQuery};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use std::cmp::Ordering;
use std::sync::Arc;

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

/// Every vulnerability known on every host, highest CVSS first, filtered.
pub async fn vulnerabilities(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    match list_vulnerabilities(&s, q) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// One vulnerability as matched: where it is, and its place among the matches (ties in CVSS keep
/// that order).
struct VulnRow<'a> {
    seq: usize,
    host: &'a HostState,
    port: Option<&'a PortFinding>,
    vuln: &'a Vulnerability,
}

/// Highest CVSS first (none counts as 0), then in host and port order.
fn by_cvss(a: &VulnRow<'_>, b: &VulnRow<'_>) -> Ordering {
    let c = |r: &VulnRow<'_>| r.vuln.cvss.unwrap_or(0.0);
    c(b).total_cmp(&c(a)).then(a.seq.cmp(&b.seq))
}

/// The matches of `q`, of which the first `q.limit` in [`by_cvss`] order are kept. Every
/// vulnerability is compared, but at most twice `limit` rows are held, and only the `limit` kept
/// are turned into JSON.
fn top_vulns<'a>(view: &'a View, q: &query::VulnQuery) -> Top<VulnRow<'a>> {
    let hosts: Box<dyn Iterator<Item = &HostState>> = match q.vm.as_deref() {
        Some(id) => Box::new(view.hosts.get(id).into_iter()),
        None => Box::new(view.hosts.values()),
    };
    let mut top = Top::new(q.limit, by_cvss);
    for host in hosts {
        let on_ports = host
            .ports
            .iter()
            .flat_map(|p| p.vulns.iter().map(move |v| (Some(p), v)));
        for (port, vuln) in on_ports.chain(host.vulns.iter().map(|v| (None, v))) {
            let keep = q.min_cvss.is_none_or(|m| vuln.cvss.is_some_and(|c| c >= m))
                && q.cve
                    .as_deref()
                    .is_none_or(|id| vuln.id.eq_ignore_ascii_case(id))
                && q.source.is_none_or(|src| vuln.source == src);
            if keep {
                let seq = top.seen();
                top.push(VulnRow {
                    seq,
                    host,
                    port,
                    vuln,
                });
            }
        }
    }
    top
}

fn list_vulnerabilities(s: &Shared, q: Option<String>) -> Result<Response, BadRequest> {
    let q = query::vulnerabilities(q.as_deref())?;
    let view = s.state.read();
    let top = top_vulns(&view, &q);
    let matched = top.seen();
    let rows: Vec<serde_json::Value> = top
        .into_sorted()
        .iter()
        .map(|r| {
            let (h, v, port) = (r.host, r.vuln, r.port);
            json!({
                "host": h.id, "address": h.address.to_string(), "group": h.group,
                "port": port.map(|p| p.port), "protocol": port.map(|p| p.protocol),
                "id": v.id, "cvss": v.cvss, "source": v.source, "exploit": v.exploit,
                "name": v.name, "first_seen": v.first_seen, "last_seen": v.last_seen,
            })
        })
        .collect();
    let truncated = matched > q.limit;
    Ok(Json(json!({ "vulnerabilities": rows, "truncated": truncated })).into_response())
}

pub async fn scans(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let (limit, before) = match query::scans(q.as_deref()) {
        Ok(q) => (q.limit, q.before),
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
    let id = match query::scan_id(&id) {
        Ok(id) => id,
        Err(e) => return e.into_response(),
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
    let query = match query::changes(q.as_deref()) {
        Ok(q) => EventQuery {
            since: q.since,
            until: q.until,
            hosts: q.vm.into_iter().collect(),
            kind: q.kind,
            after: q.after,
            limit: q.limit,
            newest_first: false,
        },
        Err(e) => return e.into_response(),
    };
    let found = store::blocking(&s.store, move |st| {
        // A cloud VM's instance id stands for the VM and every host (address) it has had.
        let mut query = query;
        if let [id] = query.hosts.as_slice() {
            let under = st.hosts_under(id)?;
            query.hosts.extend(under);
        }
        // A bounded walk: a rare `kind` is found a page at a time, never by reading the whole
        // history in one request.
        st.events_page(&query)
    });
    match found.await {
        Ok(page) => {
            let next = page.next.as_deref().map(schema::to_hex);
            let changes: Vec<Event> = page.events.into_iter().map(|(_, e)| e).collect();
            Json(json!({ "changes": changes, "next_cursor": next })).into_response()
        }
        Err(e) => server_error(e),
    }
}

/// The digest as the next e-mail to the admins (or, with `project`, to that project's recipients)
/// would carry it, whether or not e-mail is on: the findings' changes since `since` (default: when
/// the last digest to those recipients went out; none yet: the first digest's summary), with
/// vulnerabilities below `min_cvss` (default 7) left out of the lists, and at most `limit`
/// (default 1000) entries a section (`truncated` when a section had more).
pub async fn digest(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let q = match query::digest(q.as_deref()) {
        Ok(p) => p,
        Err(e) => return e.into_response(),
    };
    let since = match q.since {
        Some(t) => Some(t),
        None => {
            let p = q.project.clone();
            match store::blocking(&s.store, move |st| st.digest_last_sent(p.as_deref())).await {
                Ok(last) => last,
                Err(e) => return server_error(e),
            }
        }
    };
    let scope = Scope {
        since,
        until: crate::model::now(),
        project: q.project,
        min_cvss: q.min_cvss,
    };
    Json(Digest::build_at_most(&s.state.read(), &scope, q.limit)).into_response()
}

#[cfg(test)]
mod query_harness;
#[cfg(test)]
mod query_tests;
#[cfg(test)]
mod scale_tests;
#[cfg(test)]
mod tests;
