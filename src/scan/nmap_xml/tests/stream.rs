//! The pull API: [`HostParser`] hands out hosts one at a time, agrees with [`parse`], and
//! keeps the limits, the truncation report and the run info.

use super::*;

const DOC: &str = r#"<?xml version="1.0"?>
<nmaprun scanner="nmap" args="nmap -oX - 10.0.0.0/30" start="1700000000" version="7.95">
<taskprogress task="SYN Stealth Scan" time="1700000001" percent="50.00" remaining="2" etc="1700000003"/>
<host><status state="up" reason="echo-reply"/><address addr="10.0.0.1" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack"/><service name="ssh"/></port></ports></host>
<host><status state="down" reason="no-response"/><address addr="10.0.0.2" addrtype="ipv4"/></host>
<host><status state="up" reason="echo-reply"/><address addr="10.0.0.3" addrtype="ipv4"/>
<ports><port protocol="udp" portid="53"><state state="open|filtered" reason="no-response"/></port></ports></host>
<runstats><finished time="1700000009" elapsed="9.00" exit="success" summary="done"/><hosts up="2" down="1" total="3"/></runstats>
</nmaprun>
"#;

fn addr(h: &Host) -> &str {
    &h.addresses[0].addr
}

fn drain<R: std::io::BufRead>(p: &mut HostParser<R>) -> (Vec<Host>, Option<Error>) {
    let mut hosts = Vec::new();
    loop {
        match p.next_host() {
            Ok(Some(h)) => hosts.push(h),
            Ok(None) => return (hosts, None),
            Err(e) => return (hosts, Some(e)),
        }
    }
}

#[test]
fn hosts_come_one_at_a_time_in_document_order() {
    let mut p = HostParser::new(DOC.as_bytes(), &Limits::default());
    assert_eq!(
        p.run_info(),
        &NmapRun::default(),
        "nothing read before next_host"
    );
    let h = p.next_host().unwrap().expect("first host");
    assert_eq!(p.run_info().scanner_version.as_deref(), Some("7.95"));
    assert_eq!(addr(&h), "10.0.0.1");
    assert!(h.complete);
    assert_eq!(h.ports[0].port, 22);
    assert!(p.run_info().finished.is_none(), "runstats not read yet");
    let h = p.next_host().unwrap().expect("second host");
    assert_eq!((addr(&h), h.status), ("10.0.0.2", HostStatus::Down));
    let h = p.next_host().unwrap().expect("third host");
    assert_eq!(addr(&h), "10.0.0.3");
    assert_eq!(h.ports[0].state, PortState::OpenFiltered);
    assert_eq!(p.next_host(), Ok(None));
    assert_eq!(p.next_host(), Ok(None), "stays at the end");
}

#[test]
fn run_info_after_the_end_has_everything_but_hosts() {
    let mut p = HostParser::new(DOC.as_bytes(), &Limits::default());
    let (hosts, err) = drain(&mut p);
    assert_eq!((hosts.len(), err), (3, None));
    let info = p.run_info();
    assert!(info.hosts.is_empty());
    assert_eq!(info.args.as_deref(), Some("nmap -oX - 10.0.0.0/30"));
    assert_eq!(info.start, Some(1_700_000_000));
    assert_eq!(info.progress.len(), 1);
    assert_eq!(
        info.finished.as_ref().map(|f| f.exit),
        Some(ExitStatus::Success)
    );
    assert_eq!(
        info.host_counts,
        Some(HostCounts {
            up: 2,
            down: 1,
            total: 3
        })
    );
    let mut whole = parse(DOC.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(whole.hosts, hosts);
    whole.hosts.clear();
    assert_eq!(&whole, info);
}

#[test]
fn agrees_with_parse_partial_on_every_fixture() {
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !name.ends_with(".xml") {
            continue;
        }
        let raw = fixture(&name);
        let (mut run, want_err) = parse_partial(&raw[..], &Limits::default());
        let mut p = HostParser::new(&raw[..], &Limits::default());
        let (hosts, err) = drain(&mut p);
        assert_eq!(err, want_err, "{name}");
        assert_eq!(hosts, run.hosts, "{name}");
        run.hosts.clear();
        assert_eq!(p.run_info(), &run, "{name}");
    }
}

#[test]
fn truncated_document_gives_complete_hosts_then_truncated() {
    let cut = DOC
        .find("<host><status state=\"up\" reason=\"echo-reply\"/><address addr=\"10.0.0.3\"")
        .unwrap()
        + 60;
    let mut p = HostParser::new(&DOC.as_bytes()[..cut], &Limits::default());
    assert_eq!(addr(&p.next_host().unwrap().unwrap()), "10.0.0.1");
    assert_eq!(addr(&p.next_host().unwrap().unwrap()), "10.0.0.2");
    let err = p.next_host().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Truncated {
                hosts_complete: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(p.next_host(), Ok(None), "nothing after an error");
    assert!(p.run_info().finished.is_none());
    assert_eq!(p.run_info().scanner_version.as_deref(), Some("7.95"));
}

#[test]
fn max_hosts_bounds_the_total_not_the_hosts_held() {
    let lim = Limits {
        max_hosts: 2,
        ..Limits::default()
    };
    let mut p = HostParser::new(DOC.as_bytes(), &lim);
    assert!(p.next_host().unwrap().is_some());
    assert!(p.next_host().unwrap().is_some()); // both dropped: the count still applies
    let err = p.next_host().unwrap_err();
    let third = DOC.rfind("<host>").unwrap() as u64;
    assert_eq!(
        err,
        Error::Limit {
            offset: third,
            what: "hosts",
            limit: 2
        }
    );
    assert_eq!(parse(DOC.as_bytes(), &lim), Err(err));
}

#[test]
fn per_host_limits_and_offsets_apply_to_the_host_being_read() {
    let lim = Limits {
        max_ports_per_host: 0,
        ..Limits::default()
    };
    let mut p = HostParser::new(DOC.as_bytes(), &lim);
    let err = p.next_host().unwrap_err();
    let first_port = DOC.find("<port ").unwrap() as u64;
    assert_eq!(
        err,
        Error::Limit {
            offset: first_port,
            what: "ports",
            limit: 0
        }
    );
    assert_eq!(p.next_host(), Ok(None));

    let lim = Limits {
        max_depth: 1,
        ..Limits::default()
    };
    let mut p = HostParser::new(DOC.as_bytes(), &lim);
    assert!(matches!(
        p.next_host(),
        Err(Error::Limit { what: "depth", .. })
    ));
}

#[test]
fn not_nmap_is_reported_before_any_host() {
    let mut p = HostParser::new(&b"<report><host/></report>"[..], &Limits::default());
    assert_eq!(
        p.next_host(),
        Err(Error::NotNmap {
            root: "report".into()
        })
    );
    assert_eq!(p.run_info(), &NmapRun::default());
}
