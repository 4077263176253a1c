//! Every nmap fixture, and what each real-world scan must parse to.

use super::*;

#[test]
fn every_fixture_parses_or_fails_with_the_expected_named_error() {
    let mut seen = 0;
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let res = parse(&fixture(&name)[..], &Limits::default());
        match name.as_str() {
            "scans2any-goad-mini-incomplete.xml" => {
                assert!(
                    matches!(
                        res,
                        Err(Error::Truncated {
                            hosts_complete: 1,
                            ..
                        })
                    ),
                    "{res:?}"
                )
            }
            "nmap-vulners-golden_1x-normalised.xml" => assert!(
                matches!(
                    &res,
                    Err(Error::InvalidValue {
                        attribute: "portid",
                        ..
                    })
                ),
                "{res:?}"
            ),
            "defectdojo-issue4406-vulners.xml"
            | "defectdojo-nmap_script_vulners.xml"
            | "libnmap-1_host_ping.xml"
            | "libnmap-dionaea_scan.xml"
            | "libnmap-full_sudo6.xml"
            | "nmap-ndiff-down.xml"
            | "nmap-zenmap-nmap-output-error.xml"
            | "ruby-nmap-down_host_scan.xml"
            | "ruby-nmap-scan.xml"
            | "scans2any-ipv6-google.xml" => {
                let run = res.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(run.finished.is_some(), "{name}");
                assert!(run.hosts.iter().all(|h| h.complete), "{name}");
            }
            other => panic!("fixture {other} has no expectation here; add one"),
        }
        seen += 1;
    }
    assert_eq!(seen, 12);
}

#[test]
fn ping_scan_has_mac_and_no_ports() {
    let run = ok("libnmap-1_host_ping.xml");
    let h = &run.hosts[0];
    assert_eq!(
        (h.status, h.status_reason.as_deref()),
        (HostStatus::Up, Some("arp-response"))
    );
    assert_eq!(
        h.addresses,
        [
            Address {
                addr: "172.28.1.3".into(),
                kind: AddrKind::Ipv4,
                vendor: None
            },
            Address {
                addr: "02:42:AC:1C:01:03".into(),
                kind: AddrKind::Mac,
                vendor: None
            },
        ]
    );
    assert_eq!(h.hostnames, ["dionaea", "dionaea.honeynet_testing_net"]);
    assert!(h.ports.is_empty() && h.extraports.is_empty() && h.os_matches.is_empty());
    assert_eq!(run.finished.unwrap().elapsed, Some(0.19));
}

#[test]
fn dionaea_services_os_and_hosthint_ignored() {
    let run = ok("libnmap-dionaea_scan.xml");
    assert_eq!(run.hosts.len(), 1, "<hosthint> is not a host");
    let h = &run.hosts[0];
    assert_eq!(h.addresses.len(), 2);
    assert_eq!(
        h.extraports,
        [ExtraPorts {
            state: "closed".into(),
            count: 65519
        }]
    );
    assert_eq!(h.ports.len(), 16);
    assert_eq!(
        svc(port(h, Protocol::Tcp, 21)).product.as_deref(),
        Some("Synology DiskStation NAS ftpd")
    );
    let pptp = svc(port(h, Protocol::Tcp, 1723));
    assert_eq!(
        (pptp.product.as_deref(), pptp.version.as_deref()),
        (None, Some("(Firmware: 1)")),
        "product=\"\" is None"
    );
    let mysql = svc(port(h, Protocol::Tcp, 3306));
    assert_eq!(
        (mysql.product.as_deref(), mysql.version.as_deref()),
        (Some("MySQL"), Some("5.7.16"))
    );
    assert_eq!(mysql.cpes, ["cpe:/a:mysql:mysql:5.7.16"]);
    let mc = svc(port(h, Protocol::Tcp, 11211));
    assert_eq!(mc.extrainfo.as_deref(), Some("uptime 132 seconds"));
    assert_eq!(
        h.os_matches,
        [OsMatch {
            name: "Linux 4.15 - 5.6".into(),
            accuracy: 100,
            cpes: vec![
                "cpe:/o:linux:linux_kernel:4".into(),
                "cpe:/o:linux:linux_kernel:5".into()
            ],
        }]
    );
    // `--script default,safe` ran vulners (category safe) against memcached only.
    let mc_vulns: Vec<_> = port(h, Protocol::Tcp, 11211)
        .vulns
        .iter()
        .map(|v| (v.id.as_str(), v.cvss, v.kind.as_deref(), v.is_exploit))
        .collect();
    assert_eq!(mc_vulns.len(), 6);
    assert_eq!(
        mc_vulns[0],
        ("CVE-2016-8705", Some(7.5), Some("cve"), false)
    );
    assert_eq!(
        mc_vulns[5],
        ("PACKETSTORM:139572", Some(0.0), Some("packetstorm"), true)
    );
    assert_eq!(h.ports.iter().map(|p| p.vulns.len()).sum::<usize>(), 6);
}

#[test]
fn full_sudo6_256_hosts_4_up() {
    let run = ok("libnmap-full_sudo6.xml");
    assert_eq!(run.hosts.len(), 256);
    assert_eq!(up(&run), 4);
    assert_eq!(
        run.hosts
            .iter()
            .filter(|h| h.status == HostStatus::Down)
            .count(),
        252
    );
    assert_eq!(
        run.host_counts,
        Some(HostCounts {
            up: 4,
            down: 252,
            total: 256
        })
    );
    assert_eq!(run.hosts.iter().map(|h| h.ports.len()).sum::<usize>(), 12);
    let router = run
        .hosts
        .iter()
        .find(|h| h.addresses[0].addr == "192.168.1.1")
        .unwrap();
    assert_eq!(
        router.addresses[1],
        Address {
            addr: "6C:2E:85:19:AF:00".into(),
            kind: AddrKind::Mac,
            vendor: Some("Sagemcom".into())
        }
    );
    assert_eq!(
        svc(port(router, Protocol::Tcp, 23)).product.as_deref(),
        Some("Sagem router telnetd")
    );
    assert_eq!(router.os_matches[0].name, "Linux 2.6.13 (embedded)");
    assert_eq!(router.os_matches[0].accuracy, 100);
    let win = run
        .hosts
        .iter()
        .find(|h| h.addresses[0].addr == "192.168.1.5")
        .unwrap();
    assert_eq!(
        win.extraports,
        [ExtraPorts {
            state: "filtered".into(),
            count: 998
        }]
    );
    let http = svc(port(win, Protocol::Tcp, 2869));
    assert_eq!(
        (http.ostype.as_deref(), http.cpes.as_slice()),
        (
            Some("Windows"),
            &["cpe:/o:microsoft:windows".to_string()][..]
        )
    );
    assert_eq!(win.os_matches.len(), 5);
    assert_eq!(
        win.os_matches[3].cpes.len(),
        4,
        "CPEs of all osclass children"
    );
    let mac = run
        .hosts
        .iter()
        .find(|h| h.addresses[0].addr == "192.168.1.3")
        .unwrap();
    assert_eq!(mac.status_reason.as_deref(), Some("localhost-response"));
    assert_eq!(
        run.progress,
        [TaskProgress {
            task: "NSE".into(),
            percent: 98.78,
            remaining: Some(1),
            etc: Some(1399586590)
        }]
    );
}

#[test]
fn ndiff_down_has_no_host_element() {
    let run = ok("nmap-ndiff-down.xml");
    assert!(run.hosts.is_empty());
    assert_eq!(run.scanner_version.as_deref(), Some("4.90RC2"));
    assert_eq!(
        run.host_counts,
        Some(HostCounts {
            up: 0,
            down: 1,
            total: 1
        })
    );
    let f = run.finished.unwrap();
    assert_eq!(
        (f.time, f.elapsed, f.exit, f.summary),
        (Some(1247268099), Some(2.33), ExitStatus::Unknown, None)
    );
}

#[test]
fn ruby_down_host() {
    let run = ok("ruby-nmap-down_host_scan.xml");
    assert_eq!(run.hosts.len(), 1);
    let h = &run.hosts[0];
    assert_eq!(
        (h.status, h.status_reason.as_deref()),
        (HostStatus::Down, Some("no-response"))
    );
    assert_eq!(h.addresses[0].addr, "225.0.0.1");
    assert!(h.ports.is_empty());
    assert_eq!(up(&run), 0);
    assert_eq!(
        run.host_counts,
        Some(HostCounts {
            up: 0,
            down: 1,
            total: 1
        })
    );
}

#[test]
fn ruby_scan_udp_open_filtered_is_not_open() {
    let run = ok("ruby-nmap-scan.xml");
    let h = &run.hosts[0];
    assert_eq!(
        h.hostnames,
        ["scanme.nmap.org", "li982-156.members.linode.com"]
    );
    assert_eq!(h.ports.len(), 20);
    assert_eq!(
        h.ports
            .iter()
            .filter(|p| p.state == PortState::Open)
            .count(),
        5
    );
    assert_eq!(
        h.ports
            .iter()
            .filter(|p| p.state == PortState::OpenFiltered)
            .count(),
        15
    );
    let dhcp = port(h, Protocol::Udp, 68);
    assert_eq!(
        (dhcp.state, dhcp.reason.as_deref()),
        (PortState::OpenFiltered, Some("no-response"))
    );
    let ntp = port(h, Protocol::Udp, 123);
    assert_eq!(ntp.state, PortState::Open);
    assert_eq!(
        (svc(ntp).product.as_deref(), svc(ntp).version.as_deref()),
        (Some("NTP"), Some("v4"))
    );
    let http = svc(port(h, Protocol::Tcp, 80));
    assert_eq!(
        (http.product.as_deref(), http.version.as_deref()),
        (Some("Apache httpd"), Some("2.4.7"))
    );
    assert_eq!(http.cpes, ["cpe:/a:apache:http_server:2.4.7"]);
    assert_eq!(
        svc(port(h, Protocol::Tcp, 31337)).tunnel.as_deref(),
        Some("ssl")
    );
    assert_eq!(
        h.extraports,
        [
            ExtraPorts {
                state: "closed".into(),
                count: 1909
            },
            ExtraPorts {
                state: "filtered".into(),
                count: 71
            }
        ]
    );
    assert_eq!(h.os_matches.len(), 10);
    assert_eq!(
        (h.os_matches[0].name.as_str(), h.os_matches[0].accuracy),
        ("Linux 3.0", 94)
    );
    assert_eq!(
        h.os_matches[5].cpes,
        ["cpe:/h:netgear:dg834g", "cpe:/o:westerndigital:wd_tv"]
    );
    assert_eq!(run.progress.len(), 20);
    assert_eq!(
        run.progress[0],
        TaskProgress {
            task: "UDP Scan".into(),
            percent: 4.56,
            remaining: Some(649),
            etc: Some(1429302883)
        }
    );
    assert_eq!(run.progress[19].task, "Service scan");
    assert_eq!(run.progress[19].percent, 30.0);
}

#[test]
fn ipv6_address_kind() {
    let run = ok("scans2any-ipv6-google.xml");
    let h = &run.hosts[0];
    assert_eq!(
        h.addresses,
        [Address {
            addr: "2a00:1450:4001:828::200e".into(),
            kind: AddrKind::Ipv6,
            vendor: None
        }]
    );
    assert_eq!(h.hostnames, ["fra24s05-in-x0e.1e100.net"]);
    let ports: Vec<_> = h.ports.iter().map(|p| (p.port, p.state)).collect();
    assert_eq!(ports, [(80, PortState::Open), (443, PortState::Open)]);
    assert_eq!(
        h.extraports,
        [ExtraPorts {
            state: "filtered".into(),
            count: 998
        }]
    );
}

/// The bytes upstream called "invalid" are U+FFFD (valid UTF-8) plus a 0x05 control
/// character in an ignored <taskbegin> attribute. The parser is not a validating XML
/// processor: control characters are not rejected, so the file parses.
#[test]
fn zenmap_output_error_fixture_parses() {
    let raw = fixture("nmap-zenmap-nmap-output-error.xml");
    assert!(std::str::from_utf8(&raw).is_ok() && raw.contains(&0x05));
    let run = parse(&raw[..], &Limits::default()).unwrap();
    let h = &run.hosts[0];
    assert_eq!(h.addresses[0].addr, "192.168.0.100");
    assert_eq!(h.hostnames, ["flog.yuma.net"]);
    assert_eq!(h.ports.len(), 6);
    let ssh = svc(port(h, Protocol::Tcp, 22));
    assert_eq!(
        (ssh.product.as_deref(), ssh.version.as_deref()),
        (Some("OpenSSH"), Some("4.3"))
    );
    assert_eq!(
        svc(port(h, Protocol::Tcp, 139)).version.as_deref(),
        Some("3.X")
    );
    assert_eq!(run.finished.unwrap().exit, ExitStatus::Unknown);
}
