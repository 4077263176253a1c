//! Test data for the expose tests: one hand-built [`View`] with a cloud inventory (two sources, one
//! failing; VMs with diagnostics in both Nova formats and without), cloud hosts whose security
//! groups were judged with the real exposure code, and a plain CIDR host.

use crate::inventory::openstack::diagnostics::parse_diagnostics;
use crate::inventory::openstack::source::DiagnosticsCounts;
use crate::inventory::openstack::types::{Direction, SecurityGroup, SecurityGroupRule};
use crate::judge::exposure::{self, IpFamily};
use crate::model::{
    AddressKind, HostState, PortFinding, Protocol, ServiceInfo, Verdict, Vm, VmAddress, VmLink,
    VulnSource, Vulnerability,
};
use crate::state::{SourceStatus, View};
use std::net::IpAddr;

pub const FIXED_A: &str = "vm-a/port-a/10.0.0.5";
pub const FLOATING_A: &str = "vm-a/port-a/203.0.113.5";
pub const FIXED_B: &str = "vm-b/port-b/2001:db8::7";
/// A host whose VM is no longer in the inventory (gone, hosts not yet retired).
pub const ORPHAN: &str = "vm-z/port-z/10.0.9.9";
pub const CIDR_HOST: &str = "192.0.2.10";

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/openstack/nova/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn rule(id: &str, port: u16, prefix: &str) -> SecurityGroupRule {
    SecurityGroupRule {
        id: id.into(),
        direction: Direction::Ingress,
        ethertype: if prefix.contains(':') { "IPv6" } else { "IPv4" }.into(),
        protocol: Some("tcp".into()),
        port_range_min: Some(port),
        port_range_max: Some(port),
        remote_ip_prefix: Some(prefix.into()),
        remote_group_id: None,
        remote_address_group_id: None,
    }
}

/// `web`: SSH, HTTP and HTTPS from anywhere; PostgreSQL from the LAN only.
pub fn web_group() -> SecurityGroup {
    SecurityGroup {
        id: "sg-web".into(),
        name: "web".into(),
        project_id: "p-1".into(),
        stateful: true,
        rules: vec![
            rule("r-ssh", 22, "0.0.0.0/0"),
            rule("r-http", 80, "0.0.0.0/0"),
            rule("r-https", 443, "0.0.0.0/0"),
            rule("r-pg", 5432, "10.0.0.0/8"),
        ],
    }
}

fn port(port: u16, verdict: Verdict, service: Option<&str>) -> PortFinding {
    PortFinding {
        port,
        protocol: Protocol::Tcp,
        verdict,
        rule: if verdict == Verdict::Expected {
            "global".into()
        } else {
            "default".into()
        },
        since: 1_700_000_000.0,
        service: service.map(|n| ServiceInfo {
            name: Some(n.into()),
            ..ServiceInfo::default()
        }),
        vulns: vec![],
        world: None,
        amplification: None,
        udp: None,
    }
}

fn link(vm: &Vm, port_id: &str, kind: AddressKind) -> VmLink {
    VmLink {
        vm_id: vm.id.clone(),
        vm_name: vm.name.clone(),
        project_id: vm.project_id.clone(),
        project_name: vm.project_name.clone(),
        port_id: Some(port_id.into()),
        kind,
        network: "private".into(),
        namespace: None,
    }
}

/// A cloud host judged as the judge does: exposure from the groups, `world` copied onto each port.
fn cloud_host(
    id: &str,
    source: &str,
    link: VmLink,
    mut ports: Vec<PortFinding>,
    groups: &[&SecurityGroup],
    port_security: bool,
) -> HostState {
    let address: IpAddr = id.rsplit('/').next().unwrap().parse().unwrap();
    let open: Vec<_> = ports.iter().map(|p| (p.protocol, p.port)).collect();
    let e = exposure::assess(
        groups,
        port_security,
        IpFamily::of(address),
        Some("192.168.0.9".parse().unwrap()),
        &open,
    );
    for p in &mut ports {
        p.world = e
            .ports
            .iter()
            .find(|x| (x.protocol, x.port) == (p.protocol, p.port))
            .and_then(|x| x.world.clone());
    }
    HostState {
        id: id.into(),
        address,
        group: source.into(),
        up: true,
        ports,
        first_seen: 1_700_000_000.0,
        last_seen: 1_800_000_000.0,
        last_scan: 1_800_000_000.0,
        last_scan_id: 7,
        udp_open_filtered: vec![],
        os: vec![],
        vulns: vec![],
        vm: Some(link),
        exposure: Some(e),
        answers_everything: None,
    }
}

fn vm(
    id: &str,
    cloud: &str,
    name: &str,
    project: (&str, Option<&str>),
    user: (&str, Option<&str>),
) -> Vm {
    Vm {
        id: id.into(),
        cloud: cloud.into(),
        name: name.into(),
        status: "ACTIVE".into(),
        project_id: project.0.into(),
        project_name: project.1.map(Into::into),
        user_id: user.0.into(),
        user_name: user.1.map(Into::into),
        metadata: Default::default(),
        flavor: None,
        created: None,
        updated: None,
        addresses: vec![],
        diagnostics: None,
        diagnostics_error: None,
        first_seen: 1_700_000_000.0,
        last_seen: 1_800_000_000.0,
    }
}

/// The view every expose test reads:
/// - source `east` (up; 3 targets; diagnostics: 2 ok, 1 conflict; names complete) with `vm-a`
///   (`web-1`, project `demo`/p-1, user `alice`/u-1, 2.48 diagnostics) and `vm-b` (`db-1`, unnamed
///   project p-2 and user u-2, SHUTOFF, legacy diagnostics);
/// - source `west` (down, never succeeded; diagnostics: 1 forbidden) with `vm-c` (no diagnostics);
/// - hosts: `vm-a`'s fixed address (22 world-open via r-ssh, 5432 unexpected and LAN-only; 80 and
///   443 open to the world with nothing listening; the scanner reached 5432 although no rule admits
///   it), `vm-a`'s floating address (port security off: 22 and unexpected 8080, both world-open),
///   `vm-b`'s IPv6 address (no groups: 3306 unexpected; the scanner's source is IPv4, so
///   nothing is called unfiltered), an orphan host of a VM gone from
///   the inventory, and the CIDR host 192.0.2.10 (80 expected, a vulnerability).
pub fn view() -> View {
    let mut a = vm(
        "vm-a",
        "east",
        "web-1",
        ("p-1", Some("demo")),
        ("u-1", Some("alice")),
    );
    a.metadata = [("role".to_string(), "web".to_string())].into();
    a.flavor = Some("m1.small".into());
    a.diagnostics = Some(Box::new(
        parse_diagnostics(&fixture("server-diagnostics-get-resp-v2.48.json"), true).unwrap(),
    ));
    a.addresses = vec![
        VmAddress {
            address: "10.0.0.5".parse().unwrap(),
            kind: AddressKind::Fixed,
            network: "private".into(),
            port_id: Some("port-a".into()),
            security_groups: vec!["web".into()],
            host: Some(FIXED_A.into()),
            namespace: None,
        },
        VmAddress {
            address: "203.0.113.5".parse().unwrap(),
            kind: AddressKind::Floating,
            network: "private".into(),
            port_id: Some("port-a".into()),
            security_groups: vec!["web".into()],
            host: Some(FLOATING_A.into()),
            namespace: None,
        },
    ];
    let mut b = vm("vm-b", "east", "db-1", ("p-2", None), ("u-2", None));
    b.status = "SHUTOFF".into();
    b.diagnostics = Some(Box::new(
        parse_diagnostics(&fixture("server-diagnostics-get-resp-legacy.json"), false).unwrap(),
    ));
    b.addresses = vec![VmAddress {
        address: "2001:db8::7".parse().unwrap(),
        kind: AddressKind::Fixed,
        network: "private".into(),
        port_id: Some("port-b".into()),
        security_groups: vec![],
        host: Some(FIXED_B.into()),
        namespace: None,
    }];
    let mut c = vm("vm-c", "west", "batch", ("p-3", None), ("u-3", None));
    c.diagnostics_error = Some("HTTP 403: Policy doesn't allow diagnostics".into());

    let web = web_group();
    let hosts = vec![
        cloud_host(
            FIXED_A,
            "east",
            link(&a, "port-a", AddressKind::Fixed),
            vec![
                port(22, Verdict::Expected, Some("ssh")),
                port(5432, Verdict::Unexpected, Some("postgresql")),
            ],
            &[&web],
            true,
        ),
        cloud_host(
            FLOATING_A,
            "east",
            link(&a, "port-a", AddressKind::Floating),
            vec![
                port(22, Verdict::Expected, Some("ssh")),
                port(8080, Verdict::Unexpected, None),
            ],
            &[&web],
            false,
        ),
        cloud_host(
            FIXED_B,
            "east",
            link(&b, "port-b", AddressKind::Fixed),
            vec![port(3306, Verdict::Unexpected, Some("mysql"))],
            &[],
            true,
        ),
        {
            let z = vm("vm-z", "east", "old", ("p-1", Some("demo")), ("u-1", None));
            cloud_host(
                ORPHAN,
                "east",
                link(&z, "port-z", AddressKind::Fixed),
                vec![port(22, Verdict::Expected, Some("ssh"))],
                &[&web],
                true,
            )
        },
        {
            let mut h = HostState {
                id: CIDR_HOST.into(),
                address: CIDR_HOST.parse().unwrap(),
                group: "dmz".into(),
                up: true,
                ports: vec![port(80, Verdict::Expected, Some("http"))],
                first_seen: 1_700_000_000.0,
                last_seen: 1_800_000_000.0,
                last_scan: 1_800_000_000.0,
                last_scan_id: 7,
                udp_open_filtered: vec![],
                os: vec![],
                vulns: vec![],
                vm: None,
                exposure: None,
                answers_everything: None,
            };
            h.ports[0].vulns.push(Vulnerability {
                id: "CVE-2023-44487".into(),
                cvss: Some(7.5),
                source: VulnSource::NmapVulners,
                exploit: false,
                name: None,
                first_seen: 1_700_000_000.0,
                last_seen: 1_800_000_000.0,
            });
            h
        },
    ];

    let mut view = View::default();
    for h in hosts {
        view.hosts.insert(h.id.clone(), h);
    }
    for v in [a, b, c] {
        view.vms.insert(v.id.clone(), std::sync::Arc::new(v));
    }
    view.sources.insert(
        "east".into(),
        SourceStatus {
            up: true,
            last_success: Some(1_800_000_000.0),
            last_attempt: Some(1_800_000_000.0),
            duration: 12.5,
            error: None,
            servers: 2,
            targets: 3,
            diagnostics: DiagnosticsCounts {
                ok: 2,
                conflict: 1,
                ..DiagnosticsCounts::default()
            },
            names_complete: true,
            drift: 2,
        },
    );
    view.sources.insert(
        "west".into(),
        SourceStatus {
            up: false,
            last_success: None,
            last_attempt: Some(1_800_000_000.0),
            duration: 0.0,
            error: Some("Keystone answered 401".into()),
            servers: 0,
            targets: 0,
            diagnostics: DiagnosticsCounts {
                forbidden: 1,
                ..DiagnosticsCounts::default()
            },
            names_complete: false,
            drift: 0,
        },
    );
    view.email = Some(crate::state::EmailStatus {
        last_digest: Some(1_800_000_100.0),
        last_attempt_ok: Some(true),
        sent: 2,
    });
    view
}
