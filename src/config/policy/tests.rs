//! Unit tests of `[policy]`: self-declaration and `[[policy.exceptions]]`, through the whole loader
//! (so problems are checked as the user sees them, beside every other section's).
use super::exceptions::parse_expiry;
use crate::config::{from_str, Config, ConfigError, Overrides};
use crate::judge::exceptions::HostSelector;
use crate::model::{FindingKind, Protocol};

fn load(policy: &str) -> Result<Config, ConfigError> {
    from_str(
        &format!("[[targets]]\nname = \"lan\"\ncidrs = [\"127.0.0.1\"]\n\n[policy]\n{policy}\n"),
        &Overrides::default(),
    )
}

/// The problems, as `key: message`.
fn problems(policy: &str) -> Vec<String> {
    match load(policy) {
        Ok(_) => panic!("accepted: {policy}"),
        Err(e) => e
            .problems
            .iter()
            .map(|p| format!("{}: {}", p.key, p.message))
            .collect(),
    }
}

fn has(problems: &[String], key: &str, needle: &str) -> bool {
    problems
        .iter()
        .any(|p| p.starts_with(&format!("{key}: ")) && p.contains(needle))
}

#[test]
fn no_project_self_declares_by_default() {
    let c = load("").unwrap();
    assert!(c.policy.self_declare.is_empty());
    assert_eq!(
        c.policy.metadata_key.as_deref(),
        Some("stinger_expected_ports")
    );
    assert!(c.policy.exceptions.is_empty());
    let c = load("self_declare = [\" billing \", \"0c4e939a\"]").unwrap();
    assert_eq!(c.policy.self_declare, ["billing", "0c4e939a"]);
    assert!(c.policy.may_self_declare(Some("x"), Some("billing")));
    let c = load("self_declare = [\"*\"]").unwrap();
    assert!(c.policy.may_self_declare(Some("any"), None));
}

#[test]
fn a_self_declare_that_cannot_work_is_refused() {
    let p = problems("self_declare = [\"billing\", \"\"]");
    assert!(has(&p, "policy.self_declare[1]", "is empty"), "{p:?}");
    let p = problems("metadata_key = \"\"\nself_declare = [\"billing\"]");
    assert!(
        has(&p, "policy.self_declare", "metadata_key is empty"),
        "{p:?}"
    );
}

#[test]
fn a_full_exception_loads_with_every_selector() {
    let c = load(
        r#"
[[policy.exceptions]]
name = "legacy-db"
host = "inst-1/port-1/10.0.0.5"
vm = "db-1"
project = "billing"
cidr = ["10.0.0.0/8", "2001:db8::/32"]
protocol = "TCP"
port = "5000-5010"
cve = "cve-2023-38408"
kind = "vulnerability"
reason = "vendor appliance, patched in Q1"
expires = "2027-01-31"
owner = "team-db"

[[policy.exceptions]]
port = 21
reason = "ftp until the migration"
expires = "2027-01-31T18:30:00+01:00"
"#,
    )
    .unwrap();
    let [a, b] = c.policy.exceptions.as_slice() else {
        panic!("{:?}", c.policy.exceptions)
    };
    assert_eq!(a.name, "legacy-db");
    assert_eq!(a.reason, "vendor appliance, patched in Q1");
    assert_eq!(a.owner.as_deref(), Some("team-db"));
    assert_eq!(a.expires, 1_801_353_600.0, "2027-01-31 00:00 UTC");
    assert_eq!(a.expires_rfc3339(), "2027-01-31T00:00:00Z");
    let s = &a.selectors;
    assert_eq!(
        s.host,
        Some(HostSelector::Id("inst-1/port-1/10.0.0.5".into()))
    );
    assert_eq!(s.vm.as_deref(), Some("db-1"));
    assert_eq!(s.project.as_deref(), Some("billing"));
    assert_eq!(s.cidrs.len(), 2);
    assert_eq!(s.protocol, Some(Protocol::Tcp));
    assert_eq!(s.ports, Some(5000..=5010));
    assert_eq!(s.cve.as_deref(), Some("CVE-2023-38408"));
    assert_eq!(s.kind, Some(FindingKind::Vulnerability));
    // Defaults: the name from the index, no owner; a timestamp keeps its offset.
    assert_eq!(b.name, "exceptions[1]");
    assert_eq!(b.owner, None);
    assert_eq!(b.selectors.ports, Some(21..=21));
    assert_eq!(b.expires, 1_801_353_600.0 + 17.5 * 3600.0);
    // A single CIDR as a string; TOML's own date and offset date-time values.
    let c = load(
        r#"
[[policy.exceptions]]
cidr = "192.0.2.0/24"
reason = "lab"
expires = 2027-01-31
[[policy.exceptions]]
host = "192.0.2.7"
reason = "lab"
expires = 2027-01-31T00:00:00Z
"#,
    )
    .unwrap();
    let e = &c.policy.exceptions;
    assert_eq!(e[0].selectors.cidrs[0].to_string(), "192.0.2.0/24");
    assert_eq!(e[0].expires, 1_801_353_600.0);
    assert_eq!(e[1].expires, 1_801_353_600.0);
    assert!(matches!(
        e[1].selectors.host,
        Some(HostSelector::Address(_))
    ));
    // It prints back (check-config) to TOML that loads the same.
    let again = from_str(&c.to_toml(), &Overrides::default()).unwrap();
    assert_eq!(again.policy.exceptions, c.policy.exceptions);
}

#[test]
fn dates_and_timestamps() {
    assert_eq!(parse_expiry("1970-01-02"), Some(86_400.0));
    assert_eq!(parse_expiry("1970-01-02T00:00:00Z"), Some(86_400.0));
    assert_eq!(parse_expiry("1970-01-02T01:00:00+01:00"), Some(86_400.0));
    assert_eq!(parse_expiry("1970-01-02T00:00:00.5Z"), Some(86_400.5));
    for bad in [
        "",
        "tomorrow",
        "2027-02-30",
        "2027-01-31T00:00:00",
        "31.01.2027",
        "2027-13-01",
        "1801353600",
    ] {
        assert_eq!(parse_expiry(bad), None, "{bad}");
    }
}

#[test]
fn every_bad_exception_field_is_named_at_once_without_its_value() {
    let p = problems(
        r#"
[scan.tcp]
concurrency = 0

[[policy.exceptions]]
host = "10.0.0.5"
reason = "ok"
expires = "2027-01-31"

[[policy.exceptions]]
name = ""
host = ""
vm = 7
cidr = ["10.0.0.0/8", "hunter2"]
protocol = "sctp"
port = "6000-5000"
cve = "hunter2"
kind = "open_port"
reason = ""
expires = "31.01.2027-hunter2"
owner = ""
colour = "red"

[[policy.exceptions]]
cidr = "10.0.0.300/8"
port = 0

[[policy.exceptions]]
reason = "nothing selected"
expires = "2027-01-31T10:00:00"

[[policy.exceptions]]
port = 70000
cidr = 5
reason = 5
expires = 5
"#,
    );
    let e1 = "policy.exceptions[1]";
    for (key, needle) in [
        ("scan.tcp.concurrency", ""),
        (&format!("{e1}.name") as &str, "non-empty string"),
        (&format!("{e1}.host"), "host id or an address"),
        (&format!("{e1}.vm"), "instance id or name"),
        (&format!("{e1}.cidr[1]"), "\"10.0.0.0/8\""),
        (&format!("{e1}.protocol"), "\"tcp\" or \"udp\""),
        (&format!("{e1}.port"), "\"5000-5010\""),
        (&format!("{e1}.cve"), "CVE-2023-38408"),
        (&format!("{e1}.kind"), "unexpected_port, world_open"),
        (&format!("{e1}.reason"), "why the risk is accepted"),
        (&format!("{e1}.expires"), "\"2027-01-31\""),
        (&format!("{e1}.owner"), "non-empty string"),
        (
            &format!("{e1}.colour"),
            "unknown key; an exception has name,",
        ),
        ("policy.exceptions[2].cidr", "is not a CIDR"),
        ("policy.exceptions[2].port", "1-65535"),
        ("policy.exceptions[2].reason", "is required"),
        ("policy.exceptions[2].expires", "is required"),
        (
            "policy.exceptions[3]",
            "selects nothing; give at least one of host,",
        ),
        ("policy.exceptions[3].expires", "with an offset"),
        ("policy.exceptions[4].port", "1-65535"),
        ("policy.exceptions[4].cidr", "non-empty list"),
        ("policy.exceptions[4].reason", "non-empty string"),
        ("policy.exceptions[4].expires", "RFC 3339"),
    ] {
        assert!(has(&p, key, needle), "{key} ({needle}) in {p:#?}");
    }
    assert!(
        !p.iter().any(|m| m.starts_with("policy.exceptions[0]")),
        "{p:#?}"
    );
    assert!(
        !p.iter().any(|m| m.contains("hunter2")),
        "values are never echoed: {p:#?}"
    );
    // A present but bad selector is reported as bad, not as "selects nothing".
    assert!(
        !has(&p, "policy.exceptions[2]", "selects nothing"),
        "{p:#?}"
    );
}

#[test]
fn exception_names_are_unique() {
    let p = problems(
        r#"
[[policy.exceptions]]
name = "ftp"
port = 21
reason = "r"
expires = "2027-01-31"
[[policy.exceptions]]
name = "exceptions[0]"
port = 22
reason = "r"
expires = "2027-01-31"
[[policy.exceptions]]
name = "ftp"
port = 20
reason = "r"
expires = "2027-01-31"
"#,
    );
    assert!(
        has(
            &p,
            "policy.exceptions[2].name",
            "repeats the name of policy.exceptions[0]"
        ),
        "{p:?}"
    );
    assert_eq!(p.len(), 1, "{p:?}");
}

#[test]
fn an_expired_exception_still_loads_and_is_counted() {
    let c = load(
        r#"
[[policy.exceptions]]
name = "long-gone"
port = 21
reason = "ftp until 2020"
expires = "2020-01-01"
[[policy.exceptions]]
name = "current"
port = 22
reason = "r"
expires = "2999-01-01"
"#,
    )
    .unwrap();
    let now = crate::model::now();
    assert_eq!(c.policy.exceptions.len(), 2);
    assert_eq!(c.policy.expired_exceptions(now), 1);
    assert!(c.policy.exceptions[0].expired(now));
    let summary = c.policy.summary(now).join("\n");
    assert!(
        summary.contains("long-gone: EXPIRED (no longer applies), expires 2020-01-01T00:00:00Z"),
        "{summary}"
    );
    assert!(summary.contains("current: active"), "{summary}");
}
