//! Damaged input: non-UTF-8 bytes, interrupted scans, and cuts or bit flips anywhere in a fixture.

use super::*;

/// Real non-UTF-8 bytes anywhere (even in an attribute we skip) are an Xml error with
/// the offset of the element that holds them: quick-xml 0.42 validates every event.
#[test]
fn non_utf8_bytes_are_xml_error_with_offset() {
    let raw = fixture("nmap-zenmap-nmap-output-error.xml");
    let tag_start = 2566;
    assert!(raw[tag_start..].starts_with(b"<taskbegin task=\"RPCGrind"));
    let mut bad = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        if raw[i..].starts_with(&[0xEF, 0xBF, 0xBD]) {
            bad.push(0xE9); // latin-1 'é', what Windows nmap 4.22 really wrote
            i += 3;
        } else {
            bad.push(raw[i]);
            i += 1;
        }
    }
    let err = parse(&bad[..], &Limits::default()).unwrap_err();
    let Error::Xml { offset, message } = &err else {
        panic!("{err:?}")
    };
    assert!(
        (tag_start as u64..tag_start as u64 + 80).contains(offset),
        "{offset}: {message}"
    );
    assert!(message.to_lowercase().contains("utf-8"), "{message}");
}

#[test]
fn goad_truncated_keeps_complete_host() {
    let raw = fixture("scans2any-goad-mini-incomplete.xml");
    let err = parse(&raw[..], &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        Error::Truncated {
            offset: raw.len() as u64,
            hosts_complete: 1
        }
    );
    let (run, err) = parse_partial(&raw[..], &Limits::default());
    assert!(matches!(
        err,
        Some(Error::Truncated {
            hosts_complete: 1,
            ..
        })
    ));
    assert_eq!(run.hosts.len(), 1, "two <hosthint>s are not hosts");
    assert!(run.finished.is_none());
    let h = &run.hosts[0];
    assert!(h.complete);
    assert_eq!(h.addresses[0].addr, "192.168.56.10");
    assert_eq!(
        h.addresses[1].vendor.as_deref(),
        Some("PCS Systemtechnik/Oracle VirtualBox virtual NIC")
    );
    assert_eq!(h.ports.len(), 15);
    let iis = svc(port(h, Protocol::Tcp, 80));
    assert_eq!(
        (iis.product.as_deref(), iis.version.as_deref()),
        (Some("Microsoft IIS httpd"), Some("10.0"))
    );
    assert_eq!(
        svc(port(h, Protocol::Tcp, 53)).cpes,
        [
            "cpe:/a:jh_software:simple_dns_plus",
            "cpe:/o:microsoft:windows"
        ]
    );
    assert_eq!(
        (h.os_matches[0].name.as_str(), h.os_matches[0].accuracy),
        ("Microsoft Windows Server 2019", 100)
    );
}

#[test]
fn cut_inside_a_host_drops_that_host() {
    let raw = fixture("scans2any-goad-mini-incomplete.xml");
    let port88 = 9979;
    assert!(raw[port88..].starts_with(b"<port protocol=\"tcp\" portid=\"88\""));
    for cut in [port88, port88 + 12] {
        // between two tags, and inside a tag
        let (run, err) = parse_partial(&raw[..cut], &Limits::default());
        assert!(run.hosts.is_empty(), "cut at {cut}");
        assert!(
            matches!(
                err,
                Some(Error::Truncated {
                    hosts_complete: 0,
                    ..
                })
            ),
            "cut at {cut}: {err:?}"
        );
    }
    assert_eq!(
        parse(&b""[..], &Limits::default()),
        Err(Error::Truncated {
            offset: 0,
            hosts_complete: 0
        })
    );
}

#[test]
fn truncating_or_corrupting_any_fixture_never_panics() {
    for entry in std::fs::read_dir(FIXTURES).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        for cut in (0..raw.len()).step_by(211) {
            let (run, _) = parse_partial(&raw[..cut], &Limits::default());
            assert!(run.hosts.iter().all(|h| h.complete));
            let mut flipped = raw.clone();
            flipped[cut] ^= 0x20 | (cut as u8 & 0x5f);
            let _ = parse_partial(&flipped[..], &Limits::default());
        }
    }
}
