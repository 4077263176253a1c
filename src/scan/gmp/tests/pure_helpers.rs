//! Unit tests of the pure helpers: port ranges, plan names and hashes, own task names, retry
//! backoff and policy, secret-free display, and that the scan future is `Send`.

use std::collections::BTreeSet;

use crate::scan::gmp::client::backoff;
use crate::scan::gmp::plan::{fnv1a64, plan, port_range};

use super::*;

#[test]
fn port_ranges_are_sorted_and_collapsed() {
    let set = |v: &[u16]| v.iter().copied().collect::<BTreeSet<u16>>();
    assert_eq!(
        port_range(&set(&[443, 22, 80, 81, 82, 0])),
        "T:22,80-82,443"
    );
    assert_eq!(port_range(&set(&[65534, 65535, 1])), "T:1,65534-65535");
    assert_eq!(port_range(&set(&[7])), "T:7");
}

#[test]
fn plan_names_are_stable_and_depend_on_everything_scanned() {
    let s = Settings::default();
    let a = plan(&s, &hosts()).unwrap();
    assert_eq!(a.hosts, vec!["127.0.0.1", "127.0.0.2"]);
    assert!(is_own_name(&a.name));
    // Order of hosts and ports does not matter.
    let mut shuffled = hosts();
    shuffled.reverse();
    shuffled[1].1.reverse();
    assert_eq!(plan(&s, &shuffled).unwrap(), a);
    // A different port, host or scan config is a different target.
    let mut more = hosts();
    more[0].1.push(9999);
    assert_ne!(plan(&s, &more).unwrap().name, a.name);
    let mut other = s.clone();
    other.scan_config = "x".into();
    assert_ne!(plan(&other, &hosts()).unwrap().name, a.name);
    assert!(plan(&s, &[(ip(1), vec![0])]).is_none());
    // The FNV-1a reference value pins the hash across builds.
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn own_names_are_exact() {
    assert!(is_own_name("stinger-0123456789abcdef"));
    for n in [
        "stinger-0123456789ABCDEF",
        "stinger-0123",
        "stinger-manual",
        "x-0123456789abcdef",
    ] {
        assert!(!is_own_name(n), "{n}");
    }
}

#[test]
fn backoff_doubles_and_is_capped() {
    let b = Duration::from_secs(2);
    assert_eq!(backoff(b, 1), Duration::from_secs(2));
    assert_eq!(backoff(b, 2), Duration::from_secs(4));
    assert_eq!(backoff(b, 3), Duration::from_secs(8));
    assert_eq!(backoff(b, 40), Duration::from_secs(300));
}

#[test]
fn password_is_never_printed() {
    let s = Settings {
        password: Password::new("hunter2"),
        ..Settings::default()
    };
    assert!(!format!("{s:?}").contains("hunter2"));
    assert_eq!(
        session::command_name(&crate::scan::gmp_xml::authenticate("u", "hunter2")),
        "authenticate"
    );
}

#[test]
fn endpoints_display_without_secrets_and_hosts_parse() {
    assert_eq!(Endpoint::default().to_string(), "unix:/run/gvmd/gvmd.sock");
    assert_eq!(transport::host_of("gvmd.example:9390"), "gvmd.example");
    assert_eq!(transport::host_of("[::1]:9390"), "::1");
    assert_eq!(transport::host_of("10.0.0.1:9390"), "10.0.0.1");
    assert_eq!(transport::host_of("gvmd"), "gvmd");
}

#[test]
fn error_kinds_and_retry_policy() {
    let status = |code| Error::Status {
        endpoint: "e".into(),
        command: "c".into(),
        code,
        text: String::new(),
    };
    assert!(status(503).is_retryable() && status(500).is_retryable());
    assert!(!status(400).is_retryable() && !status(404).is_retryable());
    assert!(!Error::AuthFailed {
        endpoint: "e".into()
    }
    .is_retryable());
    assert!(!Error::Cancelled.is_retryable());
}

#[test]
fn scan_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = Settings::default();
    let h = hosts();
    let f = scan(
        &s,
        &h,
        Arc::new(Progress::default()),
        CancellationToken::new(),
    );
    assert_send(&f);
}
