//! The query parsers ([`super::query`]): each endpoint's parameters, and the fuzz harness
//! ([`super::query_harness`]) over a corpus of hostile inputs (what `fuzz/` runs at random).

use super::query::{self, Params, EVENT_KINDS};
use super::query_harness::{self, ENDPOINTS};
use crate::model::EventKind;

#[test]
fn every_event_kind_is_accepted_and_listed() {
    for k in EventKind::ALL {
        assert!(EVENT_KINDS.contains(k.as_str()), "{} missing", k.as_str());
        let q = query::changes(Some(&format!("kind={}", k.as_str()))).unwrap();
        assert_eq!(q.kind, Some(k));
    }
    let e = query::changes(Some("kind=vm_deleted")).unwrap_err();
    assert_eq!((e.parameter.as_str(), e.expected), ("kind", EVENT_KINDS));
}

#[test]
fn params_are_strict_and_name_the_culprit() {
    let e = Params::parse(Some("port=1&bogus=2"), &["port"])
        .err()
        .unwrap();
    assert_eq!(e.parameter, "bogus");
    let e = Params::parse(Some("port=1&port=2"), &["port"])
        .err()
        .unwrap();
    assert_eq!(e.parameter, "port");
    let p = Params::parse(Some("limit=0"), &["limit"]).ok().unwrap();
    assert_eq!(p.limit().unwrap_err().parameter, "limit");
}

#[test]
fn changes_queries_parse_times_kinds_and_cursors() {
    let q = query::changes(Some(
        "since=2026-11-24T10:00:00Z&until=1800000000&kind=port_closed&vm=vm-a",
    ))
    .unwrap();
    assert_eq!(q.since, Some(1_795_514_400.0));
    assert_eq!(q.kind, Some(EventKind::PortClosed));
    assert_eq!(q.vm.as_deref(), Some("vm-a"));
    let cursor = "00".repeat(crate::store::schema::EVENT_KEY_LEN);
    let q = query::changes(Some(&format!("cursor={cursor}"))).unwrap();
    assert_eq!(q.after, Some(vec![0; crate::store::schema::EVENT_KEY_LEN]));
    for (q, parameter) in [
        ("kind=opened", "kind"),
        ("since=yesterday", "since"),
        ("cursor=abc", "cursor"),
        ("since=20&until=10", "until"),
    ] {
        assert_eq!(
            query::changes(Some(q)).unwrap_err().parameter,
            parameter,
            "{q}"
        );
    }
}

/// Times are finite: NaN, infinities and overflowing numbers are refused, naming the parameter.
#[test]
fn times_must_be_finite() {
    for t in ["NaN", "nan", "inf", "-inf", "infinity", "1e309", "-1e400"] {
        let e = query::changes(Some(&format!("since={t}"))).unwrap_err();
        assert_eq!(e.parameter, "since", "{t}");
        let e = query::digest(Some(&format!("since={t}"))).unwrap_err();
        assert_eq!(e.parameter, "since", "{t}");
    }
    assert_eq!(query::parse_time("1e308"), Some(1e308));
}

#[test]
fn the_digest_takes_a_limit_per_section() {
    let d = query::digest(None).unwrap();
    assert_eq!((d.limit, d.min_cvss, d.since), (1000, 7.0, None));
    assert_eq!(query::digest(Some("limit=10000")).unwrap().limit, 10_000);
    for bad in ["limit=0", "limit=10001", "limit=-1", "limit=1e3"] {
        let e = query::digest(Some(bad)).unwrap_err();
        assert_eq!(
            (e.parameter.as_str(), e.expected),
            ("limit", "an integer from 1 to 10000")
        );
    }
}

/// `cve=` of `/vms` looks at the first four bytes: a character across that boundary is a 400, not
/// a panic (a past bug sliced `[..4]`).
#[test]
fn a_vms_cve_cut_inside_a_character_is_refused() {
    for prefix in ["", "C", "CV", "CVE", "CVE-"] {
        for c in ['é', '€', '𝄞'] {
            let v = format!("{prefix}{c}2023");
            let raw = format!("cve={v}");
            match query::vms(Some(&raw)) {
                Ok(q) => assert_eq!((prefix, q.cve.as_deref()), ("CVE-", Some(v.as_str()))),
                Err(e) => assert_eq!(e.parameter, "cve", "{raw}"),
            }
            query_harness::endpoint_query("vms", &raw);
        }
    }
}

#[test]
fn path_ids_are_checked_and_escaped_reversibly() {
    assert_eq!(query::scan_id("42"), Ok(42));
    assert_eq!(query::scan_id("-1").unwrap_err().parameter, "id");
    assert_eq!(
        query::scan_id("99999999999999999999")
            .unwrap_err()
            .parameter,
        "id"
    );
    assert_eq!(query::finding_id("").unwrap_err().parameter, "id");
    assert_eq!(query::path_escape("a b/c:d%"), "a%20b/c:d%25");
    assert_eq!(query::path_escape("é"), "%C3%A9");
}

/// The harness itself refuses an error that names nothing the request holds.
#[test]
#[should_panic(expected = "names no parameter")]
fn the_harness_catches_an_error_naming_no_parameter() {
    let e = query::BadRequest {
        parameter: "elsewhere".into(),
        message: "is wrong".into(),
        expected: "anything",
    };
    query_harness::check_error("limit=5", query::VULN_PARAMS, &e);
}

/// Hostile inputs, each through every parser (as a raw query, as every parameter's value and as a
/// path parameter): none panics, every error names a parameter.
#[test]
fn hostile_inputs_never_panic_and_errors_name_a_parameter() {
    let mut corpus: Vec<Vec<u8>> = [
        "",
        "=",
        "==",
        "&",
        "&&&",
        "&=&",
        "=x",
        "x",
        "limit",
        "limit=",
        "limit=%",
        "limit=%zz",
        "limit=%ff",
        "%00=%00",
        "+=+",
        "%=%",
        "&limit=5&",
        "a=1;b=2",
        "limit=1&limit=2",
        "kind=vm_gone&kind=vm_gone",
        "limit=99999999999999999999999999",
        "limit=-1",
        "limit=+5",
        "limit=1e3",
        "limit=0x10",
        "since=NaN",
        "since=inf",
        "since=-inf",
        "since=1e309",
        "until=-1e309",
        "since=1e308&until=1e307",
        "since=0x10",
        "since=2026-11-24T10:00:00+01:00",
        "since=9999-12-31T23:59:59Z",
        "since=0000-01-01T00:00:00Z",
        "since=2026-02-30T00:00:00Z",
        "since=1969-12-31T23:59:59Z",
        "since=2026-11-24T10:00:00.99999999999999999999999Z",
        "since=2026-11-24 10:00:00",
        "min_cvss=NaN",
        "min_cvss=10.0000000000000001",
        "min_cvss=-0",
        "min_cvss=1e-400",
        "port=0",
        "port=65536",
        "port=+22",
        "cidr=10.0.0.0/33",
        "cidr=::/129",
        "cidr=1.2.3.4/",
        "cidr=%3A%3A%2F0",
        "state=,",
        "state=open,,confirmed",
        "severity=high,high",
        "kind=,vulnerability",
        "cursor=:",
        "cursor=high:",
        "cursor=:x",
        "cursor=high%3Ax",
        "acknowledged=TRUE",
        "cve=%ff%fe",
        "cve=%C3%28",
        "cve=%E2%82",
        "cve=CVE%E2%82%AC",
        "cve=CVE-",
        "cve=cve-1",
        "service=SSH",
        "service=%C3%89",
        "source=Greenbone",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    // Cursors: hex with signs, of the right length in bytes but not in characters, too long.
    corpus.push(format!("cursor={}", "0".repeat(40)).into_bytes());
    corpus.push(format!("cursor={}", "+f".repeat(20)).into_bytes());
    corpus.push(format!("cursor={}", "é".repeat(20)).into_bytes());
    corpus.push(format!("cursor={}", "00".repeat(21)).into_bytes());
    // Multi-byte characters at every offset of the first bytes, raw and percent-encoded.
    for n in 0..6 {
        for c in ["é", "€", "𝄞"] {
            let v = format!("{}{c}", &"CVE-2"[..n.min(5)]);
            corpus.push(format!("cve={v}").into_bytes());
            corpus.push(v.into_bytes());
        }
    }
    // Invalid UTF-8, raw.
    for b in [
        &b"\xff\xfe"[..],
        b"cve=\xe2\x82",
        b"cve=CVE\xe2",
        b"\xc3=\x28",
        b"a\x00b/c\x00",
    ] {
        corpus.push(b.to_vec());
    }
    // 100 kB strings.
    let big = 100_000;
    corpus.push(vec![b'a'; big]);
    corpus.push(format!("limit={}", "9".repeat(big)).into_bytes());
    corpus.push(format!("since={}", "1".repeat(big)).into_bytes());
    corpus.push(format!("cve={}", "€".repeat(big / 3)).into_bytes());
    corpus.push(format!("x={}", "%ff".repeat(big / 3)).into_bytes());
    corpus.push("&".repeat(big).into_bytes());
    corpus.push("limit=1&".repeat(big / 8).into_bytes());
    // Every endpoint's parameters, each once with a plausible value: what the fuzzer starts from.
    for (_, params) in ENDPOINTS {
        let q: Vec<String> = params.iter().map(|p| format!("{p}=1")).collect();
        corpus.push(q.join("&").into_bytes());
    }
    for input in &corpus {
        query_harness::run(input);
    }
}
