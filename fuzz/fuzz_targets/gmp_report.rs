//! GMP streaming report parser drained on arbitrary bytes, with small limits.
//! Invariants: never panics or hangs (each `next_result` call makes progress, so the number of
//! calls is bounded by the input length); results and CVE lists respect their caps;
//! `results_returned` counts the results handed out; the parser never claims to have consumed
//! more bytes than it was given; the outcome does not depend on the read size.
#![no_main]

use std::io::{BufRead, BufReader};

use libfuzzer_sys::fuzz_target;
use stinger_fuzz::scan::gmp_xml::{ReportLimits, ReportParser};

fn limits() -> ReportLimits {
    ReportLimits {
        max_bytes: 1 << 20,
        max_depth: 16,
        max_token_bytes: 512,
        max_results: 16,
        max_cves_per_result: 8,
        max_hosts: 8,
    }
}

/// Drains the parser; returns a transcript (results, errors, summary) for comparison.
fn drain<R: BufRead>(input: R, len: usize) -> String {
    let l = limits();
    let mut p = ReportParser::new(input, l.clone());
    let mut out = String::new();
    let mut returned = 0u64;
    let mut calls = 0usize;
    loop {
        calls += 1;
        assert!(
            calls <= len + 2,
            "next_result keeps returning without reaching the end"
        );
        match p.next_result() {
            Ok(Some(r)) => {
                returned += 1;
                assert!(r.cves.len() <= l.max_cves_per_result, "cves over cap");
                out.push_str(&format!("R {r:?}\n"));
            }
            Ok(None) => break,
            Err(e) => out.push_str(&format!("E {e:?}\n")),
        }
        assert!(p.offset() <= len as u64, "offset past end of input");
    }
    let s = p.summary().clone();
    assert!(returned <= l.max_results, "results over cap");
    assert_eq!(s.results_returned, returned, "results_returned miscounted");
    assert!(s.hosts.len() <= l.max_hosts, "hosts over cap");
    // Once finished, it stays finished.
    assert!(
        matches!(p.next_result(), Ok(None)),
        "parser resumed after the end"
    );
    out.push_str(&format!("S {s:?}\n"));
    out
}

fuzz_target!(|data: &[u8]| {
    let whole = drain(data, data.len());
    let cap = 1 + data.first().map_or(0, |b| usize::from(*b) % 64);
    let small = drain(BufReader::with_capacity(cap, data), data.len());
    assert_eq!(small, whole, "outcome depends on read size {cap}");
});
