//! The parts without a process: arguments, port specs, planning, /proc parsing, progress tags.

use super::*;

#[test]
fn args_gate_udp_and_os_on_privileges() {
    let s = Settings {
        udp_ports: vec![161, 53, 53],
        os_detection: true,
        ..settings()
    };
    let a = args(&s, &caps(false), &[443, 22, 80, 81, 82], false);
    let joined = a.join(" ");
    assert!(!a.contains(&"-sU".to_string()), "{joined}");
    assert!(!a.contains(&"-O".to_string()), "{joined}");
    assert!(!joined.contains("U:"), "{joined}");
    assert_eq!(
        joined,
        "-n -Pn -sT -sV --version-intensity 7 -T4 --host-timeout 300s --stats-every 1s \
         -p T:22,80-82,443 -oX - -iL -"
    );

    let v = Settings {
        vulners: true,
        ..settings()
    };
    assert!(args(&v, &caps(false), &[22], false)
        .join(" ")
        .contains("--script vulners -p T:22"));

    let a = args(&s, &caps(true), &[22], true).join(" ");
    assert!(a.contains(" -sU -O -6 -p T:22,U:53,161 -oX - -iL -"), "{a}");
    assert!(
        !a.contains("--privileged"),
        "root needs no --privileged: {a}"
    );

    let ambient = Capabilities {
        root: false,
        ..caps(true)
    };
    let a = args(&s, &ambient, &[22], false);
    assert_eq!(a[0], "--privileged");

    // Clamped values, sub-second times, no --stats-every when zero.
    let s = Settings {
        version_intensity: 12,
        timing: 9,
        host_timeout: Duration::from_millis(1500),
        stats_every: Duration::ZERO,
        ..settings()
    };
    let a = args(&s, &caps(true), &[1], false).join(" ");
    assert!(
        a.contains("--version-intensity 9 -T5 --host-timeout 1500ms -p T:1"),
        "{a}"
    );
    assert!(!a.contains("--stats-every"), "{a}");
}

#[test]
fn the_configured_rates_hold_for_nmap() {
    // No limits: no flags.
    let a = args(&settings(), &caps(false), &[22], false).join(" ");
    assert!(
        !a.contains("--max-rate") && !a.contains("--scan-delay"),
        "{a}"
    );
    // 1000 probes/s shared by 2 batches at once; 3 per second to one host: a delay rounded up.
    let s = Settings {
        max_rate: 1000,
        max_host_rate: 3,
        parallel_batches: 2,
        ..settings()
    };
    let a = args(&s, &caps(false), &[22], false).join(" ");
    assert!(a.contains("--max-rate 500 --scan-delay 334ms"), "{a}");
    // Never below one probe a second or a millisecond's delay.
    let s = Settings {
        max_rate: 1,
        max_host_rate: 5000,
        parallel_batches: 4,
        ..settings()
    };
    let a = args(&s, &caps(false), &[22], false).join(" ");
    assert!(a.contains("--max-rate 1 --scan-delay 1ms"), "{a}");
}

#[test]
fn port_spec_collapses_runs() {
    assert_eq!(
        port_spec(&[3, 1, 2, 5, 0, 65535, 65534], &[]),
        "T:1-3,5,65534-65535"
    );
    assert_eq!(port_spec(&[], &[53]), "U:53");
    assert_eq!(port_spec(&[22], &[53, 54]), "T:22,U:53-54");
    assert_eq!(port_spec(&[], &[]), "");
}

#[test]
fn plan_groups_identical_port_lists() {
    let mut jobs = Vec::new();
    for i in 1..=5 {
        jobs.push(job(&format!("10.0.0.{i}"), &[22, 80]));
    }
    jobs.push(job("10.0.1.1", &[443]));
    jobs.push(job("10.0.1.2", &[]));
    jobs.push(job("2001:db8::1", &[22, 80]));
    jobs.push(job("10.0.0.1", &[80])); // duplicate address: merged
    let b = plan(&jobs, 2, false);
    // Two full same-list batches, then leftovers packed per family.
    assert_eq!(b.len(), 4, "{b:#?}");
    assert_eq!(b[0].tcp_ports, vec![22, 80]);
    assert_eq!(b[0].hosts.len(), 2);
    assert_eq!(b[1].hosts.len(), 2);
    let mixed = &b[2];
    assert!(!mixed.ipv6);
    assert_eq!(mixed.tcp_ports, vec![22, 80, 443]);
    assert_eq!(mixed.hosts[&ip("10.0.0.5")], vec![22, 80]);
    assert_eq!(mixed.hosts[&ip("10.0.1.1")], vec![443]);
    assert!(b[3].ipv6);
    assert!(b.iter().all(|x| !x.hosts.contains_key(&ip("10.0.1.2"))));
    assert_eq!(
        b.iter().map(|x| x.index).collect::<Vec<_>>(),
        vec![0, 1, 2, 3]
    );

    // With UDP on, a host without TCP ports still gets a batch.
    let b = plan(&[job("10.0.1.2", &[])], 16, true);
    assert_eq!(b.len(), 1);
    assert!(b[0].tcp_ports.is_empty());

    // A host with a huge list is split so the -p argument stays small, never twice per batch.
    let all: Vec<u16> = (1..=10_000).collect();
    let b = plan(&[job("10.0.2.1", &all), job("10.0.2.2", &[7])], 16, false);
    assert!(b.iter().all(|x| x.tcp_ports.len() <= MAX_PORTS_PER_UNIT));
    let parts: usize = b
        .iter()
        .filter(|x| x.hosts.contains_key(&ip("10.0.2.1")))
        .count();
    assert_eq!(parts, 3);
}

#[test]
fn scopes_are_planned_apart_and_numbered_across() {
    // 10.0.0.5 in the agent's namespace and in two tenant networks: never one batch.
    let own = [job("10.0.0.5", &[22]), job("10.0.0.6", &[22])];
    let net_a = [job("10.0.0.5", &[22])];
    let net_b = [job("10.0.0.5", &[22]), job("10.0.0.7", &[80])];
    let (a, b) = (
        Path::new("/run/netns/qdhcp-a"),
        Path::new("/run/netns/qdhcp-b"),
    );
    let scopes = [
        Scope {
            namespace: None,
            jobs: &own,
        },
        Scope {
            namespace: Some(a),
            jobs: &net_a,
        },
        Scope {
            namespace: Some(b),
            jobs: &net_b,
        },
        Scope {
            namespace: Some(a),
            jobs: &[],
        },
    ];
    let batches = plan_scopes(&scopes, 16, false);
    let got: Vec<(usize, usize, Vec<IpAddr>)> = batches
        .iter()
        .map(|x| (x.index, x.scope, x.hosts.keys().copied().collect()))
        .collect();
    assert_eq!(
        got,
        [
            (0, 0, vec![ip("10.0.0.5"), ip("10.0.0.6")]),
            (1, 1, vec![ip("10.0.0.5")]),
            (2, 2, vec![ip("10.0.0.5"), ip("10.0.0.7")]),
        ]
    );
}

#[test]
fn errors_inside_a_namespace_name_it_and_keep_their_kind() {
    let e = Error::HostTimeout {
        address: ip("10.0.0.5"),
        after: Duration::from_secs(300),
    }
    .in_namespace("qdhcp-n1");
    assert_eq!(e.kind(), "nmap_host_timeout");
    assert!(matches!(e.innermost(), Error::HostTimeout { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "in network namespace qdhcp-n1: nmap gave up on 10.0.0.5 after 300s \
         (scan.nmap.host_timeout); no services reported for it"
    );
    assert!(matches!(
        Error::Cancelled.in_namespace("qdhcp-n1"),
        Error::Cancelled
    ));
}

#[test]
fn privileges_from_proc_status() {
    let st = |uid: &str, eff: &str, amb: &str| {
        format!("Name:\tx\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\nCapEff:\t{eff}\nCapAmb:\t{amb}\n")
    };
    assert_eq!(
        privileges(&st("0", "000001ffffffffff", "0000000000000000")),
        (true, true)
    );
    // Root in a container without NET_RAW.
    assert_eq!(privileges(&st("0", "00000000a80405fb", "0")), (true, false));
    // Non-root with NET_RAW only in CapEff (file caps on our binary): nmap would not get it.
    assert_eq!(
        privileges(&st("1000", "0000000000002000", "0")),
        (false, false)
    );
    assert_eq!(
        privileges(&st("1000", "0000000000002000", "0000000000002000")),
        (false, true)
    );
    assert_eq!(privileges(&st("1000", "0", "0")), (false, false));
    assert_eq!(privileges("garbage"), (false, false));
    // Real uid 0 but effective uid not: not root.
    assert_eq!(
        privileges("Uid:\t0\t1000\t0\t0\nCapEff:\t0\n"),
        (false, false)
    );
}

#[test]
fn version_line_parses() {
    assert_eq!(
        parse_version("Nmap version 7.93 ( https://nmap.org )\n").as_deref(),
        Some("7.93")
    );
    assert_eq!(
        parse_version("x\nNmap version 7.94SVN ( https://nmap.org )").as_deref(),
        Some("7.94SVN")
    );
    assert_eq!(parse_version("Nmap version ( oops )"), None);
    assert_eq!(parse_version("hello"), None);
}

#[test]
fn task_progress_survives_chunk_splits() {
    let doc = br#"<nmaprun><taskprogress task="Connect Scan" time="1" percent="5.00"/>
<taskprogress task="Service scan" time="2" percent="50.00" remaining="6" etc="3"/>
<host></host><taskprogress task="Service scan" time="3" percent="75.5" remaining="2" etc="4"/>"#;
    for step in [1, 3, 7, 64, doc.len()] {
        let mut buf = Vec::new();
        let mut scan = TaskScan::default();
        let mut got = Vec::new();
        for c in doc.chunks(step) {
            buf.extend_from_slice(c);
            scan.feed(&buf, &mut |t| got.push(t));
        }
        assert_eq!(got.len(), 3, "step {step}: {got:?}");
        assert_eq!(got[0].task, "Connect Scan");
        assert_eq!(got[0].remaining, None);
        assert_eq!(got[1].percent, 50.0);
        assert_eq!(got[1].remaining, Some(6));
        assert_eq!(got[2].percent, 75.5);
    }
}
