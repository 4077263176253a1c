//! The fuzz harness of the API's query and path parsers ([`super::query`]), shared by the
//! `api_query` fuzz target (`fuzz/` includes this file by path, beside `query.rs`) and the corpus
//! test in `query_tests.rs`. Input bytes up to the first NUL are a raw query string (given to every
//! endpoint's parser), and the whole input is also the value of every parameter of every endpoint
//! (percent-encoded, so any byte, invalid UTF-8 included, reaches the value parser); the bytes
//! after the first NUL (else all of them) are a path parameter (scan id, finding id, a VM id to
//! redirect to). Checks: nothing panics; every error names a parameter (the endpoint's, or one
//! the query gave) and says what is accepted; every accepted request is within documented bounds.
//! Test code: it asserts.

use super::query::{self, BadRequest};

/// Each endpoint's parameters.
pub const ENDPOINTS: [(&str, &[&str]); 6] = [
    ("vulnerabilities", query::VULN_PARAMS),
    ("scans", query::SCANS_PARAMS),
    ("digest", query::DIGEST_PARAMS),
    ("changes", query::CHANGES_PARAMS),
    ("vms", query::VMS_PARAMS),
    ("findings", query::FINDINGS_PARAMS),
];

/// Run every parser on `data`; panics on a violated invariant.
pub fn run(data: &[u8]) {
    let (raw, path) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, data),
    };
    // A raw query reaches the handlers as a `String`: the URI was valid, so at worst lossy here.
    let raw = String::from_utf8_lossy(raw);
    for (endpoint, _) in ENDPOINTS {
        endpoint_query(endpoint, &raw);
    }
    let value = percent_encode(data);
    for (endpoint, params) in ENDPOINTS {
        for p in params {
            endpoint_query(endpoint, &format!("{p}={value}"));
        }
    }
    path_param(&String::from_utf8_lossy(path));
}

/// Parse `raw` as `endpoint`'s query and check the outcome.
pub fn endpoint_query(endpoint: &str, raw: &str) {
    let q = Some(raw);
    let (allowed, outcome) = match endpoint {
        "vulnerabilities" => (
            query::VULN_PARAMS,
            query::vulnerabilities(q).map(|v| {
                assert!((1..=10_000).contains(&v.limit), "{raw:?}: {v:?}");
                assert!(v.min_cvss.is_none_or(|c| (0.0..=10.0).contains(&c)));
                assert!(v.cve.as_ref().is_none_or(|s| !s.is_empty()));
                assert!(v.vm.as_ref().is_none_or(|s| !s.is_empty()));
            }),
        ),
        "scans" => (
            query::SCANS_PARAMS,
            query::scans(q).map(|s| assert!((1..=1000).contains(&s.limit), "{raw:?}: {s:?}")),
        ),
        "digest" => (
            query::DIGEST_PARAMS,
            query::digest(q).map(|d| {
                assert!((1..=10_000).contains(&d.limit), "{raw:?}: {d:?}");
                assert!((0.0..=10.0).contains(&d.min_cvss), "{raw:?}: {d:?}");
                assert!(d.since.is_none_or(f64::is_finite), "{raw:?}: {d:?}");
                assert!(d.project.as_ref().is_none_or(|s| !s.is_empty()));
            }),
        ),
        "changes" => (
            query::CHANGES_PARAMS,
            query::changes(q).map(|c| {
                assert!((1..=1000).contains(&c.limit), "{raw:?}: {c:?}");
                assert!(c.since.is_none_or(f64::is_finite) && c.until.is_none_or(f64::is_finite));
                if let (Some(a), Some(b)) = (c.since, c.until) {
                    assert!(a <= b, "{raw:?}: {c:?}");
                }
                let key = crate::store::schema::EVENT_KEY_LEN;
                assert!(c.after.as_ref().is_none_or(|k| k.len() == key));
            }),
        ),
        "vms" => (
            query::VMS_PARAMS,
            query::vms(q).map(|v| {
                assert!((1..=1000).contains(&v.limit), "{raw:?}: {v:?}");
                assert!(v.port != Some(0));
                assert!(v.cve.as_ref().is_none_or(|c| c.len() > 4
                    && c.is_char_boundary(4)
                    && c[..4].eq_ignore_ascii_case("CVE-")));
                let lower = |s: &String| *s == s.to_ascii_lowercase() && !s.is_empty();
                assert!(v.service.as_ref().is_none_or(lower), "{raw:?}: {v:?}");
            }),
        ),
        "findings" => (
            query::FINDINGS_PARAMS,
            query::findings(q).map(|f| {
                assert!((1..=1000).contains(&f.limit), "{raw:?}: {f:?}");
                let filter = &f.filter;
                assert!(filter.states.as_ref().is_none_or(|l| !l.is_empty()));
                assert!(filter.kinds.as_ref().is_none_or(|l| !l.is_empty()));
                assert!(filter.severities.as_ref().is_none_or(|l| !l.is_empty()));
                assert!(filter.port != Some(0));
                assert!(f.cursor.as_ref().is_none_or(|c| !c.id.is_empty()));
            }),
        ),
        other => panic!("no endpoint {other}"),
    };
    if let Err(e) = outcome {
        check_error(raw, allowed, &e);
    }
}

/// A refusal names a parameter: one the endpoint takes, or (unknown) one the query gave; and it
/// says what is wrong and what is accepted.
pub fn check_error(raw: &str, allowed: &[&str], e: &BadRequest) {
    assert!(
        !e.message.is_empty() && !e.expected.is_empty(),
        "{raw:?}: {e:?}"
    );
    if allowed.contains(&e.parameter.as_str()) {
        return;
    }
    let given: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
    assert!(
        given.iter().any(|(k, _)| *k == e.parameter) && e.message == "unknown parameter",
        "{raw:?}: the error names no parameter of the request: {e:?}"
    );
}

/// A decoded path parameter.
fn path_param(id: &str) {
    match query::scan_id(id) {
        Ok(n) => assert_eq!(id.trim_start_matches('+').parse::<u64>().ok(), Some(n)),
        Err(e) => assert_eq!(e.parameter, "id", "{id:?}: {e:?}"),
    }
    match query::finding_id(id) {
        Ok(got) => assert_eq!(got, id),
        Err(e) => assert!(id.is_empty() && e.parameter == "id", "{id:?}: {e:?}"),
    }
    let escaped = query::path_escape(id);
    assert!(
        escaped
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~/:@%".contains(&b)),
        "{id:?} escaped to {escaped:?}"
    );
    assert_eq!(percent_decode(&escaped), id.as_bytes(), "{escaped:?}");
}

/// Every byte but unreserved ones as `%XX`.
fn percent_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 3);
    for &b in data {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `%XX` decoded (a `%` not followed by two hex digits stays).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}
