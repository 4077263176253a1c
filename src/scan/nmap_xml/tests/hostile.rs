//! Hostile input: entity bombs, deep nesting, oversized tokens and lists, failing readers,
//! wrong roots and invalid values all fail fast with a named error.

use std::io::{self, BufRead, Read};
use std::time::{Duration, Instant};

use super::*;

/// BufRead over a slice that records how much the parser consumed.
struct Counting<'a> {
    data: &'a [u8],
    consumed: usize,
}

impl Read for Counting<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = (&self.data[self.consumed..]).read(out)?;
        self.consumed += n;
        Ok(n)
    }
}

impl BufRead for Counting<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(&self.data[self.consumed..])
    }
    fn consume(&mut self, amt: usize) {
        self.consumed += amt;
    }
}

/// Parses hostile input; returns the error, the bytes consumed and the time taken.
fn hostile(doc: &[u8]) -> (Error, usize, Duration) {
    let mut input = Counting {
        data: doc,
        consumed: 0,
    };
    let t = Instant::now();
    let err = parse(&mut input, &Limits::default()).expect_err("hostile input must fail");
    (err, input.consumed, t.elapsed())
}

const LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE nmaprun [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"#;

#[test]
fn billion_laughs_in_kept_attribute_is_an_error_not_an_expansion() {
    let doc = format!("{LAUGHS}<nmaprun scanner=\"nmap\" args=\"&lol9;\"></nmaprun>");
    let (err, _, took) = hostile(doc.as_bytes());
    let Error::Xml { message, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(message.contains("lol9"), "{message}");
    assert!(took < Duration::from_secs(2));
}

#[test]
fn billion_laughs_in_kept_text_is_an_error() {
    let doc = format!(
        "{LAUGHS}<nmaprun><host><ports><port protocol=\"tcp\" portid=\"1\"><state state=\"open\"/>\
         <service name=\"x\"><cpe>&lol9;</cpe></service></port></ports></host></nmaprun>"
    );
    let (err, _, _) = hostile(doc.as_bytes());
    assert!(
        matches!(&err, Error::Xml { message, .. } if message.contains("never expanded")),
        "{err:?}"
    );
}

#[test]
fn billion_laughs_in_skipped_content_is_left_alone() {
    let doc = format!("{LAUGHS}<nmaprun><verbose level=\"&lol9;\">&lol9;</verbose><host><status state=\"up\"/></host></nmaprun>");
    let run = parse(doc.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(run.hosts.len(), 1);
}

#[test]
fn predefined_entities_and_char_refs_are_decoded() {
    let doc = "<nmaprun args=\"a &amp; b&#x41;&#10;\"><host><ports><port protocol=\"tcp\" portid=\"1\">\
               <state state=\"open\"/><service name=\"x\"><cpe> cpe:/a:x&amp;y&#58;z </cpe></service>\
               </port></ports></host></nmaprun>";
    let run = parse(doc.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(run.args.as_deref(), Some("a & bA\n"));
    assert_eq!(svc(&run.hosts[0].ports[0]).cpes, ["cpe:/a:x&y:z"]);
}

#[test]
fn deep_nesting_hits_depth_limit_early() {
    let n = 100_000;
    let doc = format!("<nmaprun>{}{}</nmaprun>", "<a>".repeat(n), "</a>".repeat(n));
    let (err, consumed, took) = hostile(doc.as_bytes());
    assert!(
        matches!(
            err,
            Error::Limit {
                what: "depth",
                limit: 64,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(consumed < 1024, "stopped after {consumed} bytes");
    assert!(took < Duration::from_secs(2));
}

#[test]
fn huge_skipped_attribute_is_capped_while_reading() {
    let doc = format!(
        "<nmaprun><verbose level=\"{}\"/></nmaprun>",
        "A".repeat(10 << 20)
    );
    let (err, consumed, took) = hostile(doc.as_bytes());
    assert!(
        matches!(
            err,
            Error::Limit {
                what: "markup",
                limit: 1_048_576,
                offset: 9
            }
        ),
        "{err:?}"
    );
    assert!(
        consumed <= (1 << 20) + 64,
        "read {consumed} bytes into one event"
    );
    assert!(took < Duration::from_secs(5));
}

#[test]
fn kept_attribute_over_max_attr_len() {
    let doc = format!("<nmaprun args=\"{}\"></nmaprun>", "A".repeat(100 << 10));
    let (err, _, _) = hostile(doc.as_bytes());
    assert_eq!(
        err,
        Error::Limit {
            offset: 0,
            what: "attribute",
            limit: 64 << 10
        }
    );
}

#[test]
fn huge_text_and_unclosed_comment_are_capped() {
    let text = format!("<nmaprun>{}</nmaprun>", "A".repeat(10 << 20));
    let (err, consumed, _) = hostile(text.as_bytes());
    assert!(matches!(err, Error::Limit { what: "text", .. }), "{err:?}");
    assert!(consumed <= (1 << 20) + 64);
    let comment = format!("<nmaprun><!--{}", "A".repeat(10 << 20));
    let (err, consumed, _) = hostile(comment.as_bytes());
    assert!(
        matches!(err, Error::Limit { what: "markup", .. }),
        "{err:?}"
    );
    assert!(consumed <= (1 << 20) + 64);
}

#[test]
fn other_roots_are_not_nmap() {
    let err = parse(
        &b"<?xml version=\"1.0\"?><get_reports_response status=\"200\"/>"[..],
        &Limits::default(),
    );
    assert_eq!(
        err,
        Err(Error::NotNmap {
            root: "get_reports_response".into()
        })
    );
    let long = format!("<{}/>", "x".repeat(1000));
    let Err(Error::NotNmap { root }) = parse(long.as_bytes(), &Limits::default()) else {
        panic!()
    };
    assert!(root.len() < 140, "root name is clipped");
}

#[test]
fn caps_on_hosts_ports_scripts_vulns_and_progress() {
    let lim = |f: fn(&mut Limits)| {
        let mut l = Limits::default();
        f(&mut l);
        l
    };
    let sudo = fixture("libnmap-full_sudo6.xml");
    let (run, err) = parse_partial(&sudo[..], &lim(|l| l.max_hosts = 2));
    assert!(
        matches!(
            err,
            Some(Error::Limit {
                what: "hosts",
                limit: 2,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(run.hosts.len(), 2);
    let dionaea = fixture("libnmap-dionaea_scan.xml");
    let err = parse(&dionaea[..], &lim(|l| l.max_ports_per_host = 3)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                what: "ports",
                limit: 3,
                ..
            }
        ),
        "{err:?}"
    );
    let err = parse(&dionaea[..], &lim(|l| l.max_scripts_per_port = 1)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                what: "scripts",
                limit: 1,
                ..
            }
        ),
        "{err:?}"
    );
    let issue = fixture("defectdojo-issue4406-vulners.xml");
    let err = parse(&issue[..], &lim(|l| l.max_vulns_per_port = 10)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Limit {
                what: "vulns",
                limit: 10,
                ..
            }
        ),
        "{err:?}"
    );
    let ruby = fixture("ruby-nmap-scan.xml");
    let run = parse(&ruby[..], &lim(|l| l.max_list_len = 4)).unwrap_err();
    assert!(
        matches!(
            run,
            Error::Limit {
                what: "os matches",
                limit: 4,
                ..
            }
        ),
        "{run:?}"
    );
    let run = parse(&ruby[..], &lim(|l| l.max_list_len = 12)).unwrap();
    assert!(run.progress.len() <= 12);
    let last = run.progress.last().unwrap();
    assert_eq!(
        (last.task.as_str(), last.percent),
        ("Service scan", 30.0),
        "newest entries kept"
    );
}

#[test]
fn input_read_failure_is_io_error() {
    /// Yields its bytes, then fails like a broken pipe.
    struct Failing(&'static [u8]);
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::other("pipe broke"))
        }
    }
    impl BufRead for Failing {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            match self.0 {
                [] => Err(io::Error::other("pipe broke")),
                rest => Ok(rest),
            }
        }
        fn consume(&mut self, amt: usize) {
            self.0 = &self.0[amt..];
        }
    }
    let err = parse(Failing(b"<nmaprun><host>"), &Limits::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Io { offset: 15, message } if message.contains("pipe broke")),
        "{err:?}"
    );
    assert_eq!(err.kind(), "io");
}

fn one_port(port: &str, state: &str) -> String {
    format!("<nmaprun><host><ports><port {port}><state state=\"{state}\"/></port></ports></host></nmaprun>")
}

#[test]
fn invalid_and_missing_values_are_named() {
    let cases = [
        (
            one_port("protocol=\"tcp\" portid=\"70000\"", "open"),
            "port",
            "portid",
            "70000",
        ),
        (
            one_port("protocol=\"tcp\" portid=\"-1\"", "open"),
            "port",
            "portid",
            "-1",
        ),
        (
            one_port("protocol=\"icmp\" portid=\"1\"", "open"),
            "port",
            "protocol",
            "icmp",
        ),
        (
            one_port("protocol=\"tcp\" portid=\"1\"", "bogus"),
            "state",
            "state",
            "bogus",
        ),
    ];
    for (doc, element, attribute, value) in cases {
        let err = parse(doc.as_bytes(), &Limits::default()).unwrap_err();
        let Error::InvalidValue {
            element: e,
            attribute: a,
            value: v,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!((*e, *a, v.as_str()), (element, attribute, value));
    }
    let doc = "<nmaprun><host><ports><port protocol=\"tcp\" portid=\"1\"></port></ports></host></nmaprun>";
    let err = parse(doc.as_bytes(), &Limits::default()).unwrap_err();
    assert_eq!(
        err,
        Error::Missing {
            offset: 22,
            element: "port",
            attribute: "state"
        }
    );
    let doc = "<nmaprun><host><address addrtype=\"ipv4\"/></host></nmaprun>";
    assert!(matches!(
        parse(doc.as_bytes(), &Limits::default()),
        Err(Error::Missing {
            element: "address",
            ..
        })
    ));
}

#[test]
fn mismatched_end_tag_is_xml_error() {
    let doc = "<nmaprun><host></ports></nmaprun>";
    let err = parse(doc.as_bytes(), &Limits::default()).unwrap_err();
    assert!(matches!(err, Error::Xml { offset: 15, .. }), "{err:?}");
    assert_eq!(err.kind(), "xml");
}

#[test]
fn error_exit_progress_without_eta_and_trailing_junk() {
    let doc = "<nmaprun><taskprogress task=\"SYN Stealth Scan\" time=\"1\" percent=\"0.50\"/>\
               <runstats><finished time=\"2\" exit=\"error\" errormsg=\"Failed to open device eth9\"/>\
               <hosts up=\"0\" down=\"0\" total=\"0\"/></runstats></nmaprun>\n<not closed";
    let run = parse(doc.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(
        run.progress,
        [TaskProgress {
            task: "SYN Stealth Scan".into(),
            percent: 0.5,
            remaining: None,
            etc: None
        }]
    );
    let f = run.finished.unwrap();
    assert_eq!(
        (f.exit, f.error_message.as_deref()),
        (ExitStatus::Error, Some("Failed to open device eth9"))
    );
}
