//! The JSON API's query strings and path parameters, parsed into typed requests, or a
//! [`BadRequest`] naming the parameter and the accepted form. Pure: std, `serde_urlencoded`,
//! `humantime`, `ipnetwork`, [`crate::model`] types and the store's cursor encoding
//! ([`crate::store::schema`]) only, so `fuzz/` compiles this file on its own (the `api_query`
//! target). Not here: what a request finds (the handlers beside this file).

use crate::model::{EventKind, FindingKind, FindingState, Severity, UnixSeconds, VulnSource};
use crate::store::schema;
use ipnetwork::IpNetwork;

/// A client error: which parameter, what is wrong, what is accepted.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRequest {
    pub parameter: String,
    pub message: String,
    pub expected: &'static str,
}

/// Query parameters, parsed strictly: unknown or repeated parameters are errors too.
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// `raw`: the query string as received (percent-encoded; `None`: no `?`).
    pub fn parse(raw: Option<&str>, allowed: &[&'static str]) -> Result<Params, BadRequest> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.unwrap_or("")).map_err(|e| BadRequest {
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

    /// Parameter `name` through `parse`; `None` when absent, a 400 naming it when `parse` refuses.
    pub fn get<T>(
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

    /// `limit`: 1 to 1000, default 100.
    pub fn limit(&self) -> Result<usize, BadRequest> {
        Ok(self
            .get("limit", "an integer from 1 to 1000", |v| {
                v.parse::<usize>().ok().filter(|n| (1..=1000).contains(n))
            })?
            .unwrap_or(100))
    }

    /// `limit` of the endpoints whose answer is one bounded list: 1 to 10000, default 1000.
    fn big_limit(&self) -> Result<usize, BadRequest> {
        Ok(self
            .get("limit", "an integer from 1 to 10000", |v| {
                v.parse::<usize>().ok().filter(|n| (1..=10_000).contains(n))
            })?
            .unwrap_or(1000))
    }
}

pub fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "true" | "1" => Some(true),
        "false" | "0" => Some(false),
        _ => None,
    }
}

/// RFC 3339 (`2026-11-24T10:00:00Z`) or Unix seconds (finite).
pub fn parse_time(v: &str) -> Option<UnixSeconds> {
    if let Ok(t) = v.parse::<f64>() {
        return t.is_finite().then_some(t);
    }
    humantime::parse_rfc3339_weak(v)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs_f64())
}

pub const TIME_FORM: &str = "RFC 3339 (2026-11-24T10:00:00Z) or Unix seconds";

/// Every [`EventKind`], as the `kind` parameter accepts them (a test keeps it complete).
pub const EVENT_KINDS: &str = "port_opened, port_closed, host_appeared, host_disappeared, \
     verdict_changed, service_changed, vuln_found, vuln_remediated, vm_appeared, vm_gone, \
     answers_everything_started or answers_everything_stopped";

fn non_empty(v: &str) -> Option<String> {
    (!v.is_empty()).then(|| v.to_string())
}

fn cvss(v: &str) -> Option<f64> {
    v.parse::<f64>().ok().filter(|c| (0.0..=10.0).contains(c))
}

fn port(v: &str) -> Option<u16> {
    v.parse::<u16>().ok().filter(|&n| n > 0)
}

fn cidr(v: &str) -> Option<IpNetwork> {
    v.parse::<IpNetwork>().ok()
}

const CVSS_FORM: &str = "a CVSS score from 0 to 10";
const PORT_FORM: &str = "a port number from 1 to 65535";
const CIDR_FORM: &str = "an address or CIDR, e.g. 10.0.0.0/24";
const PROJECT_FORM: &str = "an OpenStack project name or id";

/// A comma-separated list, each item parsed (duplicates once); `None` if any item is empty or
/// does not parse.
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

// === /api/v1/vulnerabilities ===

/// `GET /api/v1/vulnerabilities`.
#[derive(Debug, PartialEq)]
pub struct VulnQuery {
    pub min_cvss: Option<f64>,
    pub cve: Option<String>,
    /// A host id.
    pub vm: Option<String>,
    pub source: Option<VulnSource>,
    /// 1 to 10000, default 1000.
    pub limit: usize,
}

pub const VULN_PARAMS: &[&str] = &["min_cvss", "cve", "vm", "source", "limit"];

pub fn vulnerabilities(q: Option<&str>) -> Result<VulnQuery, BadRequest> {
    let p = Params::parse(q, VULN_PARAMS)?;
    Ok(VulnQuery {
        min_cvss: p.get("min_cvss", CVSS_FORM, cvss)?,
        cve: p.get("cve", "a vulnerability id, e.g. CVE-2023-38408", non_empty)?,
        vm: p.get("vm", "a host id", non_empty)?,
        source: p.get("source", "nmap_vulners or greenbone", |v| match v {
            "nmap_vulners" => Some(VulnSource::NmapVulners),
            "greenbone" => Some(VulnSource::Greenbone),
            _ => None,
        })?,
        limit: p.big_limit()?,
    })
}

// === /api/v1/scans ===

/// `GET /api/v1/scans`.
#[derive(Debug, PartialEq)]
pub struct ScansQuery {
    pub limit: usize,
    /// Continue below this scan id.
    pub before: Option<u64>,
}

pub const SCANS_PARAMS: &[&str] = &["limit", "before"];

pub fn scans(q: Option<&str>) -> Result<ScansQuery, BadRequest> {
    let p = Params::parse(q, SCANS_PARAMS)?;
    Ok(ScansQuery {
        limit: p.limit()?,
        before: p.get("before", "a scan id (continue below it)", |v| {
            v.parse::<u64>().ok()
        })?,
    })
}

// === /api/v1/digest ===

/// `GET /api/v1/digest`.
#[derive(Debug, PartialEq)]
pub struct DigestQuery {
    /// `None`: since the last digest to the same recipients.
    pub since: Option<UnixSeconds>,
    /// Default 7.
    pub min_cvss: f64,
    pub project: Option<String>,
    /// Most entries listed per section: 1 to 10000, default 1000.
    pub limit: usize,
}

pub const DIGEST_PARAMS: &[&str] = &["since", "min_cvss", "project", "limit"];

pub fn digest(q: Option<&str>) -> Result<DigestQuery, BadRequest> {
    let p = Params::parse(q, DIGEST_PARAMS)?;
    Ok(DigestQuery {
        since: p.get("since", TIME_FORM, parse_time)?,
        min_cvss: p.get("min_cvss", CVSS_FORM, cvss)?.unwrap_or(7.0),
        project: p.get("project", PROJECT_FORM, non_empty)?,
        limit: p.big_limit()?,
    })
}

// === /api/v1/changes ===

/// `GET /api/v1/changes`.
#[derive(Debug, Default, PartialEq)]
pub struct ChangesQuery {
    pub since: Option<UnixSeconds>,
    /// Not before `since`.
    pub until: Option<UnixSeconds>,
    /// A host id or a cloud VM's instance id.
    pub vm: Option<String>,
    pub kind: Option<EventKind>,
    /// An event key ([`schema::EVENT_KEY_LEN`] bytes): continue after it.
    pub after: Option<Vec<u8>>,
    pub limit: usize,
}

pub const CHANGES_PARAMS: &[&str] = &["since", "until", "vm", "kind", "limit", "cursor"];

pub fn changes(q: Option<&str>) -> Result<ChangesQuery, BadRequest> {
    let p = Params::parse(q, CHANGES_PARAMS)?;
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
    Ok(ChangesQuery {
        since,
        until,
        vm: p.get("vm", "a host or VM id", non_empty)?,
        kind: p.get("kind", EVENT_KINDS, EventKind::parse)?,
        after: p.get("cursor", "the next_cursor of a previous page", |v| {
            schema::from_hex(v).filter(|k| k.len() == schema::EVENT_KEY_LEN)
        })?,
        limit: p.limit()?,
    })
}

// === /api/v1/vms ===

/// The query parameters of `GET /api/v1/vms` (a test checks openapi.yaml documents exactly these).
pub const VMS_PARAMS: &[&str] = &[
    "cidr",
    "port",
    "project",
    "vm",
    "world",
    "unexpected",
    "service",
    "cve",
    "min_cvss",
    "limit",
    "cursor",
];

/// `GET /api/v1/vms`: the filters (all ANDed) and the page.
#[derive(Debug, Default, PartialEq)]
pub struct VmsQuery {
    /// Starts with `CVE-` (any case).
    pub cve: Option<String>,
    /// Lower case.
    pub service: Option<String>,
    pub cidr: Option<IpNetwork>,
    pub port: Option<u16>,
    pub project: Option<String>,
    /// An instance id.
    pub vm: Option<String>,
    pub world: Option<bool>,
    pub unexpected: Option<bool>,
    pub min_cvss: Option<f64>,
    pub limit: usize,
    /// The host id the page continues after.
    pub cursor: Option<String>,
}

pub fn vms(q: Option<&str>) -> Result<VmsQuery, BadRequest> {
    let p = Params::parse(q, VMS_PARAMS)?;
    Ok(VmsQuery {
        cve: p.get("cve", "a CVE id, e.g. CVE-2023-38408", |v| {
            // `get`, not `[..4]`: the fourth byte may be inside a character (`abc€`).
            (v.len() > 4 && v.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("CVE-")))
                .then(|| v.to_string())
        })?,
        service: p.get(
            "service",
            "a service name as nmap gives it, e.g. ssh or http",
            |v| (!v.is_empty()).then(|| v.to_ascii_lowercase()),
        )?,
        cidr: p.get("cidr", CIDR_FORM, cidr)?,
        port: p.get("port", PORT_FORM, port)?,
        project: p.get("project", PROJECT_FORM, non_empty)?,
        vm: p.get("vm", "an OpenStack instance (server) id", non_empty)?,
        world: p.get("world", "true or false", parse_bool)?,
        unexpected: p.get("unexpected", "true or false", parse_bool)?,
        min_cvss: p.get("min_cvss", CVSS_FORM, cvss)?,
        limit: p.limit()?,
        cursor: p.get("cursor", "the next_cursor of a previous page", |v| {
            Some(v.to_string())
        })?,
    })
}

// === /api/v1/findings ===

/// The query parameters of `GET /api/v1/findings` (a test checks openapi.yaml documents exactly
/// these).
pub const FINDINGS_PARAMS: &[&str] = &[
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

const STATES: &str = "open, confirmed, stale or resolved (several: comma-separated)";
const FINDING_KINDS: &str = "unexpected_port, world_open, sg_not_enforced, amplifier, \
     vulnerability or answers_everything (several: comma-separated)";
const SEVERITIES: &str = "low, medium, high or critical (several: comma-separated)";

/// The findings list's filters, all ANDed; `None` matches every finding.
#[derive(Debug, Default, PartialEq)]
pub struct Filter {
    pub states: Option<Vec<FindingState>>,
    pub kinds: Option<Vec<FindingKind>>,
    pub severities: Option<Vec<Severity>>,
    pub min_severity: Option<Severity>,
    pub project: Option<String>,
    /// An instance id or name.
    pub vm: Option<String>,
    pub cidr: Option<IpNetwork>,
    pub port: Option<u16>,
    pub cve: Option<String>,
    pub acknowledged: Option<bool>,
    /// Last changed at or after.
    pub since: Option<UnixSeconds>,
}

/// Where a findings page continues: after this finding in the list's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub severity: Severity,
    pub id: String,
}

impl Cursor {
    /// `<severity>:<id>`, as the previous page's `next_cursor`.
    pub fn parse(v: &str) -> Option<Cursor> {
        let (severity, id) = v.split_once(':')?;
        Some(Cursor {
            severity: Severity::parse(severity)?,
            id: non_empty(id)?,
        })
    }
}

/// `GET /api/v1/findings`.
#[derive(Debug, PartialEq)]
pub struct FindingsQuery {
    pub filter: Filter,
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

pub fn findings(q: Option<&str>) -> Result<FindingsQuery, BadRequest> {
    let p = Params::parse(q, FINDINGS_PARAMS)?;
    let filter = Filter {
        states: p.get("state", STATES, |v| list_of(v, FindingState::parse))?,
        kinds: p.get("kind", FINDING_KINDS, |v| list_of(v, FindingKind::parse))?,
        severities: p.get("severity", SEVERITIES, |v| list_of(v, Severity::parse))?,
        min_severity: p.get(
            "min_severity",
            "low, medium, high or critical",
            Severity::parse,
        )?,
        project: p.get("project", PROJECT_FORM, non_empty)?,
        vm: p.get("vm", "an OpenStack instance id or name", non_empty)?,
        cidr: p.get("cidr", CIDR_FORM, cidr)?,
        port: p.get("port", PORT_FORM, port)?,
        cve: p.get("cve", "a vulnerability id, e.g. CVE-2023-38408", non_empty)?,
        acknowledged: p.get("acknowledged", "true or false", parse_bool)?,
        since: p.get("since", TIME_FORM, parse_time)?,
    };
    Ok(FindingsQuery {
        filter,
        limit: p.limit()?,
        cursor: p.get(
            "cursor",
            "the next_cursor of a previous page (<severity>:<id>)",
            Cursor::parse,
        )?,
    })
}

// === path parameters ===

/// `{id}` of `/api/v1/scans/{id}`.
pub fn scan_id(id: &str) -> Result<u64, BadRequest> {
    id.parse::<u64>().map_err(|_| BadRequest {
        parameter: "id".into(),
        message: format!("{id:?} is not a scan id"),
        expected: "a positive integer",
    })
}

/// `{id}` of `/api/v1/findings/{id}` (decoded): any non-empty string.
pub fn finding_id(id: &str) -> Result<&str, BadRequest> {
    if id.is_empty() {
        return Err(BadRequest {
            parameter: "id".into(),
            message: "is empty".into(),
            expected: FINDING_ID_FORM,
        });
    }
    Ok(id)
}

pub const FINDING_ID_FORM: &str = "a finding id, as listed by /api/v1/findings";

/// Percent-encode what may not stand raw in a path segment (ids keep their `/` and `:`): the
/// `{id}` of a `/api/v1/vms/{id}` redirect.
pub fn path_escape(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/:@".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
