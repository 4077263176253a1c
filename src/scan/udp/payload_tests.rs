//! Validator tests for every entry of the payload table: a positive reply validates; the same reply
//! with another id, our own request reflected back, and truncated or garbage bytes do not.

use super::*;
use crate::scan::udp::dns::build::dns_response;
use crate::scan::udp::fake::answer;

fn params() -> Params {
    Params {
        dns_name: "probe.example.test".parse().unwrap(),
        snmp_community: "public".to_string(),
    }
}

/// Every (protocol, variant) with a request built for id 0x1234_5678.
fn all_requests() -> Vec<(Protocol, &'static Variant, Vec<u8>)> {
    Protocol::ALL
        .iter()
        .flat_map(|&p| {
            p.spec()
                .variants
                .iter()
                .map(move |v| (p, v, (v.build)(&params(), 0x1234_5678)))
        })
        .collect()
}

/// Protocols whose replies carry our transaction id.
fn has_id(p: Protocol, v: &Variant) -> bool {
    !matches!(
        (p, v.name),
        (Protocol::Ntp, "mode7-monlist")
            | (Protocol::Ssdp, _)
            | (Protocol::Chargen, _)
            | (Protocol::WsDiscovery, _)
    )
}

#[test]
fn table_is_complete_and_consistent() {
    assert_eq!(Protocol::ALL.len(), 11);
    let mut names = Vec::new();
    for &p in Protocol::ALL {
        let spec = p.spec();
        assert!(!spec.variants.is_empty(), "{p} has no request");
        assert_eq!(Protocol::for_port(spec.port), Some(p));
        assert_eq!(spec.service.parse::<Protocol>(), Ok(p));
        assert_eq!(p.to_string(), spec.service);
        names.push(spec.service);
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Protocol::ALL.len(), "service names are unique");
    assert_eq!("DNS".parse::<Protocol>(), Ok(Protocol::Dns));
    let err = "gopher".parse::<Protocol>().unwrap_err();
    assert!(err.to_string().contains("dns, ntp, snmp"), "{err}");
    assert_eq!(Protocol::for_port(80), None);
}

#[test]
fn request_sizes() {
    let size = |p: Protocol, i: usize| (p.spec().variants[i].build)(&params(), 0x1234_5678).len();
    assert_eq!(size(Protocol::Ntp, 0), 12);
    assert_eq!(size(Protocol::Ntp, 1), 48);
    assert_eq!(size(Protocol::Memcached, 0), 15);
    assert_eq!(size(Protocol::Portmap, 0), 40);
    assert_eq!(size(Protocol::Chargen, 0), 1);
    assert_eq!(size(Protocol::WsDiscovery, 0), 5);
    assert_eq!(size(Protocol::NetbiosNs, 0), 50);
    assert_eq!(size(Protocol::Mdns, 0), 46);
    assert!(size(Protocol::Ssdp, 0) > 80);
}

#[test]
fn positive_replies_validate() {
    for (p, v, req) in all_requests() {
        let replies = answer(p, &req);
        assert!(!replies.is_empty(), "{p}/{}: no scripted reply", v.name);
        for (i, reply) in replies.iter().enumerate() {
            assert!(
                (v.validate)(&req, reply).is_some(),
                "{p}/{}: reply {i} does not validate: {reply:02x?}",
                v.name
            );
        }
    }
}

#[test]
fn reflected_requests_never_validate() {
    for (p, v, req) in all_requests() {
        assert_eq!(
            (v.validate)(&req, &req),
            None,
            "{p}/{}: echo accepted",
            v.name
        );
    }
}

#[test]
fn replies_to_another_id_do_not_validate() {
    for (p, v, req) in all_requests().into_iter().filter(|(p, v, _)| has_id(*p, v)) {
        let other = (v.build)(&params(), 0x0bad_cafe);
        for reply in answer(p, &other) {
            assert_eq!(
                (v.validate)(&req, &reply),
                None,
                "{p}/{}: a reply to another id was accepted",
                v.name
            );
        }
    }
}

#[test]
fn truncated_and_garbage_replies_do_not_validate() {
    for (p, v, req) in all_requests() {
        for reply in answer(p, &req) {
            // Every strict prefix that cuts a header or length field short is refused; text
            // protocols (SSDP, chargen, WS-Discovery) are allowed to accept a long enough prefix.
            for cut in [0, 1, 3, 7] {
                let short = &reply[..cut.min(reply.len())];
                if p == Protocol::Chargen && !short.is_empty() {
                    continue;
                }
                assert_eq!(
                    (v.validate)(&req, short),
                    None,
                    "{p}/{}: {cut}-byte prefix",
                    v.name
                );
            }
        }
        for garbage in [
            &[0xffu8; 64][..],
            &[0u8; 64][..],
            &b"\x30\x84\xff\xff\xff\xff"[..],
            &b"\xc0"[..],
        ] {
            assert_eq!(
                (v.validate)(&req, garbage),
                None,
                "{p}/{}: garbage {garbage:02x?}",
                v.name
            );
        }
    }
}

#[test]
fn ber_replies_cut_inside_a_length_do_not_validate() {
    for p in [Protocol::Snmp, Protocol::Cldap] {
        for v in p.spec().variants {
            let req = (v.build)(&params(), 42);
            let reply = &answer(p, &req)[0];
            for cut in 8..reply.len() - 1 {
                if p == Protocol::Cldap && cut >= reply.len() / 2 {
                    break; // the first LDAP message (the entry) is complete by then
                }
                assert_eq!((v.validate)(&req, &reply[..cut]), None, "{p}: cut at {cut}");
            }
        }
    }
}

#[test]
fn dns_recursion_needs_ra_noerror_and_an_answer() {
    let v = &Protocol::Dns.spec().variants[0];
    let req = (v.build)(&params(), 7);
    let rec = |flags, answers| (v.validate)(&req, &dns_response(&req, flags, answers));
    // RD|RA, NOERROR, one answer: an open resolver.
    assert_eq!(
        rec(0x0180, 1),
        Some(Reply {
            recursion: Some(true)
        })
    );
    // REFUSED with RA=1 (dnsmasq without upstream): answers DNS, does not recurse.
    assert_eq!(
        rec(0x0185, 0),
        Some(Reply {
            recursion: Some(false)
        })
    );
    // NOERROR without RA (an authoritative-only server), or without answers.
    assert_eq!(
        rec(0x0500, 1),
        Some(Reply {
            recursion: Some(false)
        })
    );
    assert_eq!(
        rec(0x0180, 0),
        Some(Reply {
            recursion: Some(false)
        })
    );
    // Another question echoed back: not an answer to us.
    let mut other = dns_response(&req, 0x0180, 1);
    other[13] = b'q';
    assert_eq!((v.validate)(&req, &other), None);
    // Case may differ (0x20 randomisation on the way back).
    let mut upper = dns_response(&req, 0x0180, 1);
    upper[13..18].make_ascii_uppercase();
    assert!((v.validate)(&req, &upper).is_some());
    // An opcode other than QUERY is not an answer.
    assert_eq!(rec(0x2980, 1), None);
}

#[test]
fn negative_protocol_answers_do_not_validate() {
    // SNMP error-status noSuchName (2).
    let v = &Protocol::Snmp.spec().variants[1];
    let req = (v.build)(&params(), 9);
    let err = crate::scan::udp::ber::build::snmp_response(&req, 2);
    assert_eq!((v.validate)(&req, &err), None);
    // SNMP answer for another community.
    let other = Params {
        snmp_community: "private".to_string(),
        ..params()
    };
    let reply = crate::scan::udp::ber::build::snmp_response(&(v.build)(&other, 9), 0);
    assert_eq!((v.validate)(&req, &reply), None);
    // NTP mode 7 with an error nibble (monlist disabled), mode 6 with the error bit.
    let v7 = &Protocol::Ntp.spec().variants[1];
    let req7 = (v7.build)(&params(), 0);
    let mut r7 = answer(Protocol::Ntp, &req7)[0].clone();
    r7[4] = 0x40;
    assert_eq!((v7.validate)(&req7, &r7), None);
    let v6 = &Protocol::Ntp.spec().variants[0];
    let req6 = (v6.build)(&params(), 5);
    let mut r6 = answer(Protocol::Ntp, &req6)[0].clone();
    r6[1] |= 0x40;
    assert_eq!((v6.validate)(&req6, &r6), None);
    // memcached: a first datagram that is not STAT output (ERROR), or seq beyond total.
    let vm = &Protocol::Memcached.spec().variants[0];
    let reqm = (vm.build)(&params(), 3);
    let mut bad = reqm[..8].to_vec();
    bad.extend_from_slice(b"ERROR\r\n");
    assert_eq!((vm.validate)(&reqm, &bad), None);
    let mut beyond = answer(Protocol::Memcached, &reqm)[1].clone();
    beyond[3] = 5;
    assert_eq!((vm.validate)(&reqm, &beyond), None);
    // SSDP: an error status.
    let vs = &Protocol::Ssdp.spec().variants[0];
    assert_eq!(
        (vs.validate)(b"", b"HTTP/1.1 400 Bad Request\r\n\r\n"),
        None
    );
    // Portmapper: accepted but PROG_UNAVAIL (1).
    let vp = &Protocol::Portmap.spec().variants[0];
    let reqp = (vp.build)(&params(), 77);
    let mut rp = answer(Protocol::Portmap, &reqp)[0].clone();
    rp[23] = 1;
    assert_eq!((vp.validate)(&reqp, &rp), None);
    // chargen: binary bytes are not chargen output.
    let vc = &Protocol::Chargen.spec().variants[0];
    assert_eq!((vc.validate)(b"\x01", b"\x00\x01\x02"), None);
}

#[test]
fn ids_are_fresh() {
    let ids: std::collections::HashSet<u32> = (0..1000).map(|_| fresh_id()).collect();
    assert!(ids.len() > 990, "{} distinct of 1000", ids.len());
}
