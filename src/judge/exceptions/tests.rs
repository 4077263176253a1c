//! Unit tests of exception matching and expiry.
use super::*;
use crate::model::{finding_id, finding_key, AddressKind, FindingState, Severity, VmLink};

const VM_HOST: &str = "inst-1/port-1/10.5.0.7";

fn vm_link() -> VmLink {
    VmLink {
        vm_id: "inst-1".into(),
        vm_name: "db-1".into(),
        project_id: "p-0c4e".into(),
        project_name: Some("billing".into()),
        port_id: Some("port-1".into()),
        kind: AddressKind::Floating,
        network: "public".into(),
        namespace: None,
    }
}

/// A finding on a cloud VM (`10.5.0.7`) or, without `vm`, on a CIDR host known by its address.
fn finding(kind: FindingKind, at: Option<(Protocol, u16)>, cve: Option<&str>, vm: bool) -> Finding {
    let address: IpAddr = "10.5.0.7".parse().unwrap();
    let host = if vm {
        VM_HOST.to_string()
    } else {
        address.to_string()
    };
    let key = finding_key(at.map(|a| a.0), at.map(|a| a.1), cve);
    Finding {
        id: finding_id(&host, kind, &key),
        kind,
        key,
        host,
        address,
        group: "cloud".into(),
        vm: vm.then(vm_link),
        protocol: at.map(|a| a.0),
        port: at.map(|a| a.1),
        cve: cve.map(String::from),
        state: FindingState::Confirmed,
        severity: Severity::High,
        rule: "default".into(),
        evidence: String::new(),
        first_seen: 0.0,
        last_seen: 0.0,
        confirmed_at: None,
        resolved_at: None,
        stale_since: None,
        occurrence: 1,
        previous: Vec::new(),
        seen: 2,
        missed: 0,
        ack: None,
        trigger: Default::default(),
        detection_latency: None,
        history: Vec::new(),
    }
}

fn port(p: u16) -> Finding {
    finding(
        FindingKind::UnexpectedPort,
        Some((Protocol::Tcp, p)),
        None,
        true,
    )
}

fn vuln(cve: &str, at: Option<(Protocol, u16)>) -> Finding {
    finding(FindingKind::Vulnerability, at, Some(cve), true)
}

fn exception(selectors: Selectors) -> Exception {
    Exception {
        name: "x".into(),
        reason: "accepted".into(),
        expires: 2_000_000_000.0,
        owner: None,
        selectors,
    }
}

fn covers(s: Selectors, f: &Finding) -> bool {
    exception(s).matches(f)
}

#[test]
fn host_matches_the_host_id_or_the_address() {
    let by_id = Selectors {
        host: Some(HostSelector::parse(VM_HOST)),
        ..Selectors::default()
    };
    assert_eq!(
        HostSelector::parse(VM_HOST),
        HostSelector::Id(VM_HOST.into())
    );
    assert!(covers(by_id.clone(), &port(22)));
    let mut other_vm = port(22);
    other_vm.host = "inst-2/port-9/10.5.0.7".into();
    assert!(
        !covers(by_id, &other_vm),
        "another VM behind the same address"
    );
    let by_address = Selectors {
        host: Some(HostSelector::parse("10.5.0.7")),
        ..Selectors::default()
    };
    assert!(matches!(
        HostSelector::parse("10.5.0.7"),
        HostSelector::Address(_)
    ));
    assert!(covers(by_address.clone(), &port(22)), "a VM's address");
    assert!(
        covers(by_address.clone(), &other_vm),
        "every host id behind it"
    );
    let cidr_host = finding(
        FindingKind::UnexpectedPort,
        Some((Protocol::Tcp, 22)),
        None,
        false,
    );
    assert!(covers(by_address, &cidr_host), "a CIDR host");
    let elsewhere = Selectors {
        host: Some(HostSelector::parse("10.5.0.8")),
        ..Selectors::default()
    };
    assert!(!covers(elsewhere, &port(22)));
    // IPv6 in any spelling.
    let mut v6 = port(22);
    v6.address = "2001:db8::7".parse().unwrap();
    let long = Selectors {
        host: Some(HostSelector::parse("2001:0db8:0:0::7")),
        ..Selectors::default()
    };
    assert!(covers(long, &v6));
}

#[test]
fn vm_project_and_cidr_selectors() {
    let f = port(8080);
    let cidr_host = finding(
        FindingKind::UnexpectedPort,
        Some((Protocol::Tcp, 8080)),
        None,
        false,
    );
    let vm = |v: &str| Selectors {
        vm: Some(v.into()),
        ..Selectors::default()
    };
    assert!(covers(vm("inst-1"), &f), "by instance id");
    assert!(covers(vm("db-1"), &f), "by name");
    assert!(!covers(vm("db-2"), &f));
    assert!(!covers(vm("db-1"), &cidr_host), "a CIDR host has no VM");
    let project = |p: &str| Selectors {
        project: Some(p.into()),
        ..Selectors::default()
    };
    assert!(covers(project("p-0c4e"), &f), "by id");
    assert!(covers(project("billing"), &f), "by name");
    assert!(!covers(project("Billing"), &f), "exactly");
    assert!(!covers(project("billing"), &cidr_host));
    let cidr = |c: &[&str]| Selectors {
        cidrs: c.iter().map(|c| c.parse().unwrap()).collect(),
        ..Selectors::default()
    };
    assert!(covers(cidr(&["10.5.0.0/16"]), &f));
    assert!(covers(cidr(&["192.0.2.0/24", "10.5.0.7/32"]), &cidr_host));
    assert!(!covers(cidr(&["10.6.0.0/16"]), &f));
}

#[test]
fn port_protocol_and_kind_selectors() {
    let ports = |a: u16, b: u16| Selectors {
        ports: Some(a..=b),
        ..Selectors::default()
    };
    assert!(covers(ports(5432, 5432), &port(5432)));
    assert!(covers(ports(5000, 5010), &port(5000)));
    assert!(covers(ports(5000, 5010), &port(5010)));
    assert!(!covers(ports(5000, 5010), &port(5011)));
    // Any kind on that port, a vulnerability included; a host-wide one has no port.
    let world = finding(
        FindingKind::WorldOpen,
        Some((Protocol::Tcp, 5432)),
        None,
        true,
    );
    assert!(covers(ports(5432, 5432), &world));
    assert!(covers(
        ports(5432, 5432),
        &vuln("CVE-2023-1", Some((Protocol::Tcp, 5432)))
    ));
    assert!(!covers(ports(5432, 5432), &vuln("CVE-2023-1", None)));
    let udp = finding(
        FindingKind::Amplifier,
        Some((Protocol::Udp, 123)),
        None,
        true,
    );
    let proto = |p: Protocol| Selectors {
        protocol: Some(p),
        ..Selectors::default()
    };
    assert!(covers(proto(Protocol::Udp), &udp));
    assert!(!covers(proto(Protocol::Tcp), &udp));
    assert!(!covers(proto(Protocol::Udp), &vuln("CVE-2023-1", None)));
    let kind = |k: FindingKind| Selectors {
        kind: Some(k),
        ..Selectors::default()
    };
    assert!(covers(kind(FindingKind::Amplifier), &udp));
    assert!(!covers(kind(FindingKind::WorldOpen), &udp));
}

#[test]
fn a_cve_selector_covers_only_vulnerabilities_of_that_cve() {
    let cve = Selectors {
        cve: Some("CVE-2023-38408".into()),
        ..Selectors::default()
    };
    assert!(covers(
        cve.clone(),
        &vuln("CVE-2023-38408", Some((Protocol::Tcp, 22)))
    ));
    assert!(
        covers(cve.clone(), &vuln("cve-2023-38408", None)),
        "any case, host-wide too"
    );
    assert!(!covers(cve.clone(), &vuln("CVE-2023-38409", None)));
    // Same port, other kinds: not covered.
    assert!(!covers(cve.clone(), &port(22)));
    let mut odd = port(22);
    odd.cve = Some("CVE-2023-38408".into());
    assert!(!covers(cve, &odd), "only vulnerability findings");
}

#[test]
fn every_given_selector_must_match() {
    let s = Selectors {
        project: Some("billing".into()),
        protocol: Some(Protocol::Tcp),
        ports: Some(5432..=5432),
        kind: Some(FindingKind::UnexpectedPort),
        ..Selectors::default()
    };
    assert!(covers(s.clone(), &port(5432)));
    assert!(!covers(s.clone(), &port(5433)), "port");
    let mut other_project = port(5432);
    if let Some(v) = other_project.vm.as_mut() {
        v.project_id = "p-ffff".into();
        v.project_name = Some("web".into());
    }
    assert!(!covers(s.clone(), &other_project), "project");
    let world = finding(
        FindingKind::WorldOpen,
        Some((Protocol::Tcp, 5432)),
        None,
        true,
    );
    assert!(!covers(s.clone(), &world), "kind");
    assert!(Selectors::default().is_empty());
    assert!(!s.is_empty());
    assert_eq!(
        s.to_string(),
        "project=billing protocol=tcp port=5432 kind=unexpected_port"
    );
    let range = Selectors {
        host: Some(HostSelector::parse("10.5.0.7")),
        cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        ports: Some(5000..=5010),
        cve: Some("CVE-2023-1234".into()),
        ..Selectors::default()
    };
    assert_eq!(
        range.to_string(),
        "host=10.5.0.7 cidr=10.0.0.0/8 port=5000-5010 cve=CVE-2023-1234"
    );
}

#[test]
fn expiry_is_now_at_or_past_expires() {
    let e = Exception {
        expires: 1_800_000_000.0,
        ..exception(Selectors::default())
    };
    assert!(!e.expired(1_799_999_999.5));
    assert!(e.expired(1_800_000_000.0));
    assert!(e.expired(1_900_000_000.0));
    assert_eq!(e.expires_rfc3339(), "2027-01-15T08:00:00Z");
}
