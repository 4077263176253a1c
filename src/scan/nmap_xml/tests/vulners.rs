//! `vulners` NSE script output: entries, CPE groups, CVSS types and the golden fixture.

use super::*;

fn vulners_golden_patched() -> Vec<u8> {
    let raw = String::from_utf8(fixture("nmap-vulners-golden_1x-normalised.xml")).unwrap();
    raw.replace("portid=\"TARGET_PORT\"", "portid=\"8080\"")
        .into_bytes()
}

#[test]
fn defectdojo_vulners_single_port() {
    let run = ok("defectdojo-nmap_script_vulners.xml");
    assert_eq!(run.scanner_version.as_deref(), Some("7.60"));
    assert_eq!(run.start, Some(1581930445));
    assert!(run
        .args
        .as_deref()
        .unwrap()
        .contains("--script=vulners/vulners.nse"));
    assert_eq!(run.hosts.len(), 1);
    let h = &run.hosts[0];
    assert_eq!(
        (h.status, h.status_reason.as_deref()),
        (HostStatus::Up, Some("syn-ack"))
    );
    assert_eq!(
        h.addresses,
        [Address {
            addr: "192.168.0.1".into(),
            kind: AddrKind::Ipv4,
            vendor: None
        }]
    );
    assert!(h.hostnames.is_empty());
    let p = port(h, Protocol::Tcp, 5022);
    assert_eq!(
        (p.state, p.reason.as_deref()),
        (PortState::Open, Some("syn-ack"))
    );
    let s = svc(p);
    assert_eq!(s.name.as_deref(), Some("ssh"));
    assert_eq!(s.product.as_deref(), Some("OpenSSH"));
    assert_eq!(s.version.as_deref(), Some("7.4"));
    assert_eq!(s.extrainfo.as_deref(), Some("protocol 2.0"));
    assert_eq!(
        (s.method.as_deref(), s.confidence),
        (Some("probed"), Some(10))
    );
    assert_eq!(s.cpes, ["cpe:/a:openbsd:openssh:7.4"]);
    let cpe = Some("cpe:/a:openbsd:openssh:7.4".to_string());
    let v = |id: &str| Vuln {
        id: id.into(),
        cvss: Some(5.0),
        kind: Some("cve".into()),
        is_exploit: false,
        cpe: cpe.clone(),
        cvss_type: None,
    };
    assert_eq!(p.vulns, [v("CVE-2018-15919"), v("CVE-2017-15906")]);
    let f = run.finished.unwrap();
    assert_eq!(
        (f.time, f.elapsed, f.exit),
        (Some(1581930455), Some(12.18), ExitStatus::Success)
    );
    assert!(f.summary.unwrap().contains("(1 host up)"));
    assert_eq!(
        run.host_counts,
        Some(HostCounts {
            up: 1,
            down: 0,
            total: 1
        })
    );
}

#[test]
fn defectdojo_issue4406_42_vulners_entries_only_on_ssh() {
    let run = ok("defectdojo-issue4406-vulners.xml");
    let h = &run.hosts[0];
    assert_eq!(h.hostnames, ["ip-10-250-195-71.eu-west-1.compute.internal"]);
    assert_eq!(
        h.extraports,
        [ExtraPorts {
            state: "closed".into(),
            count: 65510
        }]
    );
    assert_eq!(h.ports.len(), 25);
    assert!(h.ports.iter().all(|p| p.state == PortState::Open));
    let ssh = port(h, Protocol::Tcp, 22);
    assert_eq!(ssh.vulns.len(), 42);
    assert_eq!(ssh.vulns.iter().filter(|v| v.is_exploit).count(), 34);
    let first = &ssh.vulns[0];
    assert_eq!(first.id, "MSF:ILITIES/UBUNTU-CVE-2019-6111/");
    assert_eq!(
        (first.cvss, first.kind.as_deref(), first.is_exploit),
        (Some(5.8), Some("metasploit"), true)
    );
    let cves: Vec<_> = ssh
        .vulns
        .iter()
        .filter(|v| v.kind.as_deref() == Some("cve"))
        .map(|v| (v.id.as_str(), v.cvss.unwrap(), v.is_exploit))
        .collect();
    assert_eq!(cves.len(), 8);
    assert_eq!(cves[0], ("CVE-2019-6111", 5.8, false));
    assert_eq!(cves[7], ("CVE-2018-20685", 2.6, false));
    assert!(ssh
        .vulns
        .iter()
        .all(|v| v.cpe.as_deref() == Some("cpe:/a:openbsd:openssh:7.4")));
    // rpcinfo also writes nested <table>/<elem>: it must not turn into vulns
    assert!(h
        .ports
        .iter()
        .filter(|p| p.port != 22)
        .all(|p| p.vulns.is_empty()));
    let etcd = svc(port(h, Protocol::Tcp, 2379));
    assert_eq!(
        (
            etcd.tunnel.as_deref(),
            etcd.method.as_deref(),
            etcd.confidence
        ),
        (Some("ssl"), Some("table"), Some(3))
    );
    let mysql = h
        .ports
        .iter()
        .filter(|p| p.service.as_ref().and_then(|s| s.version.as_deref()) == Some("5.7.32"));
    assert_eq!(mysql.count(), 7);
    assert!(port(h, Protocol::Tcp, 30475).service.is_none());
}

#[test]
fn vulners_golden_portid_placeholder_is_invalid_value() {
    let raw = fixture("nmap-vulners-golden_1x-normalised.xml");
    let err = parse(&raw[..], &Limits::default()).unwrap_err();
    let Error::InvalidValue {
        offset,
        element,
        attribute,
        value,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (*element, *attribute, value.as_str()),
        ("port", "portid", "TARGET_PORT")
    );
    assert!(raw[*offset as usize..].starts_with(b"<port protocol=\"tcp\" portid=\"TARGET_PORT\""));
    let (run, err) = parse_partial(&raw[..], &Limits::default());
    assert!(matches!(err, Some(Error::InvalidValue { .. })));
    assert!(
        run.hosts.is_empty(),
        "the host holding the bad port never completed"
    );
    assert_eq!(run.scanner_version.as_deref(), Some("NORMALISED"));
    assert_eq!(run.start, None, "start=\"NORMALISED\" is not a number");
}

#[test]
fn vulners_golden_structure_with_cvss_type() {
    let run = parse(&vulners_golden_patched()[..], &Limits::default()).unwrap();
    let h = &run.hosts[0];
    assert_eq!(
        (h.status_reason.as_deref(), h.hostnames.as_slice()),
        (Some("user-set"), &["localhost".to_string()][..])
    );
    let p = port(h, Protocol::Tcp, 8080);
    let s = svc(p);
    assert_eq!(
        (s.product.as_deref(), s.version.as_deref()),
        (Some("nginx"), Some("1.13.4"))
    );
    assert_eq!(
        s.cpes,
        [
            "cpe:/a:igor_sysoev:nginx:1.13.4",
            "cpe:/a:f5:nginx:1.13.4",
            "cpe:/a:php:php:5.6.38"
        ]
    );
    // Only script id="vulners" counts: vulners_enterprise and http-vulners-regex are ignored.
    let got: Vec<_> = p
        .vulns
        .iter()
        .map(|v| {
            (
                v.cpe.as_deref().unwrap(),
                v.id.as_str(),
                v.cvss,
                v.kind.as_deref().unwrap(),
                v.is_exploit,
                v.cvss_type.as_deref().unwrap(),
            )
        })
        .collect();
    let nginx = "cpe:/a:igor_sysoev:nginx:1.13.4";
    let php = "cpe:/a:php:php:5.6.38";
    assert_eq!(
        got,
        [
            (nginx, "CVE-2018-16843", Some(7.5), "cve", false, "cvss3.1"),
            (nginx, "CVE-2019-20372", Some(4.3), "cve", false, "cvss3.1"),
            (
                nginx,
                "EDB-ID:45233",
                Some(0.0),
                "exploitdb",
                true,
                "cvss2.0"
            ),
            (php, "CVE-2018-16843", Some(7.5), "cve", false, "cvss3.1"),
            (php, "CVE-2019-20372", Some(4.3), "cve", false, "cvss3.1"),
            (php, "EDB-ID:45233", Some(0.0), "exploitdb", true, "cvss2.0"),
        ]
    );
    let f = run.finished.unwrap();
    assert_eq!(
        (f.time, f.elapsed, f.exit),
        (None, None, ExitStatus::Success)
    );
}
