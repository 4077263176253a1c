//! nmap XML parser on arbitrary bytes, with small limits so every cap is reachable.
//! Invariants: never panics or hangs; `parse_partial` only returns complete hosts; every list
//! respects its cap; `parse` succeeds exactly when `parse_partial` reports no error; the result
//! does not depend on how the input is split into reads (a 1..=64-byte BufReader gives the same
//! run and error as one slice).
#![no_main]

use std::io::BufReader;

use libfuzzer_sys::fuzz_target;
use stinger_fuzz::scan::nmap_xml::{parse, parse_partial, Limits, NmapRun};

fn limits() -> Limits {
    Limits {
        max_depth: 12,
        max_attr_len: 64,
        max_text_len: 256,
        max_hosts: 8,
        max_ports_per_host: 8,
        max_scripts_per_port: 4,
        max_vulns_per_port: 8,
        max_list_len: 4,
    }
}

fn check_caps(run: &NmapRun, l: &Limits) {
    assert!(run.hosts.len() <= l.max_hosts, "hosts over cap");
    assert!(run.progress.len() <= l.max_list_len, "progress over cap");
    for h in &run.hosts {
        assert!(h.complete, "parse_partial returned an incomplete host");
        assert!(h.ports.len() <= l.max_ports_per_host, "ports over cap");
        assert!(h.addresses.len() <= l.max_list_len, "addresses over cap");
        assert!(h.hostnames.len() <= l.max_list_len, "hostnames over cap");
        assert!(h.extraports.len() <= l.max_list_len, "extraports over cap");
        assert!(h.os_matches.len() <= l.max_list_len, "os matches over cap");
        for p in &h.ports {
            assert!(p.vulns.len() <= l.max_vulns_per_port, "vulns over cap");
            if let Some(s) = &p.service {
                assert!(s.cpes.len() <= l.max_list_len, "service cpes over cap");
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let l = limits();
    let (run, err) = parse_partial(data, &l);
    check_caps(&run, &l);

    // `parse` agrees with `parse_partial`.
    match (parse(data, &l), &err) {
        (Ok(r), None) => assert_eq!(format!("{r:?}"), format!("{run:?}")),
        (Err(e), Some(e2)) => assert_eq!(&e, e2),
        (a, b) => panic!("parse {:?} vs parse_partial error {b:?}", a.map(|_| ())),
    }

    // Same answer when the bytes arrive in small reads (Debug: f64 NaN != NaN under PartialEq).
    let cap = 1 + data.first().map_or(0, |b| usize::from(*b) % 64);
    let (run2, err2) = parse_partial(BufReader::with_capacity(cap, data), &l);
    assert_eq!(
        format!("{run2:?}"),
        format!("{run:?}"),
        "run depends on read size {cap}"
    );
    assert_eq!(err2, err, "error depends on read size {cap}");
});
