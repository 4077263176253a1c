//! Hostile or broken input: entity bombs, deep nesting, truncation, byte and token caps, read
//! errors, and stable error kinds.

use std::io::{self, BufReader, Read};
use std::time::{Duration, Instant};

use super::super::error::snippet;
use super::*;

const LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<get_version_response status="200" status_text="OK"><version>&lol9;</version></get_version_response>"#;

#[test]
fn billion_laughs_is_rejected_not_expanded() {
    // Framing sees one small document (the internal subset's '>' do not confuse it).
    let mut s = ResponseSplitter::new(4096);
    assert_eq!(s.push(LAUGHS.as_bytes()).unwrap(), Some(LAUGHS.len()));
    assert!(matches!(
        parse_version(LAUGHS),
        Err(Error::Unexpected { .. })
    ));
    assert!(matches!(
        parse_status(LAUGHS),
        Err(Error::Unexpected { .. })
    ));
    let report = LAUGHS
        .replace("get_version_response", "report")
        .replace("version>", "scan_run_status>");
    let mut p = ReportParser::new(report.as_bytes(), ReportLimits::default());
    assert!(matches!(p.next_result(), Err(Error::Unexpected { .. })));
    assert_eq!(p.summary().scan_run_status, None);
    // Without a DOCTYPE an undefined entity is just an error.
    let doc =
        r#"<get_version_response status="200"><version>&lol9;</version></get_version_response>"#;
    assert!(matches!(parse_version(doc), Err(Error::Xml { .. })));
}

#[test]
fn deep_nesting_hits_the_depth_limit_quickly() {
    let deep = format!("<report>{}", "<a>".repeat(100_000));
    let t = Instant::now();
    let mut p = ReportParser::new(deep.as_bytes(), ReportLimits::default());
    match p.next_result() {
        Err(Error::Limit {
            what: "element depth",
            limit: 64,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(p.offset() < 1024, "stopped early, at byte {}", p.offset());
    let tasks = format!(
        r#"<get_tasks_response status="200">{}"#,
        "<a>".repeat(100_000)
    );
    assert!(matches!(
        parse_tasks(&tasks),
        Err(Error::Limit {
            what: "element depth",
            ..
        })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn truncated_report_yields_results_before_the_cut() {
    let bytes = fixture("reports/gmp22.8-report.xml");
    let third = std::str::from_utf8(&bytes)
        .unwrap()
        .find("a74c26cc-685e-448c-8d6b-889baf047ff0")
        .unwrap();
    for cut in [third + 2000, third - 3 /* inside the id attribute */] {
        let mut p = ReportParser::new(&bytes[..cut], ReportLimits::default());
        let ids: Vec<_> = (0..2)
            .map(|_| p.next_result().unwrap().unwrap().id.unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "8bc8ba01-e51a-4dc8-bf65-8ee5962ffad6",
                "a4372005-4a37-44db-b47e-cf83de04b1e0"
            ]
        );
        let err = p.next_result().unwrap_err();
        assert!(
            matches!(err, Error::Truncated { offset } if offset <= cut as u64),
            "{err:?}"
        );
        assert_eq!(err.kind(), "truncated");
        assert_eq!(p.next_result().unwrap(), None);
        assert!(!p.summary().complete);
    }
    let mut p = ReportParser::new(&b""[..], ReportLimits::default());
    assert!(matches!(
        p.next_result(),
        Err(Error::Truncated { offset: 0 })
    ));
}

#[test]
fn byte_and_token_caps() {
    let bytes = fixture("reports/gmp22.8-report.xml");
    let limits = ReportLimits {
        max_bytes: 10_000,
        ..ReportLimits::default()
    };
    let mut p = ReportParser::new(bytes.as_slice(), limits);
    let err = loop {
        match p.next_result() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("cap not enforced"),
            Err(e) => break e,
        }
    };
    assert!(
        matches!(
            err,
            Error::Limit {
                what: "document bytes",
                limit: 10_000
            }
        ),
        "{err:?}"
    );
    assert!(p.offset() <= 10_000);

    // The token cap is per token, not per document: 4 KiB tokens suffice for the 257 KB fixture.
    let limits = ReportLimits {
        max_token_bytes: 4 << 10,
        ..ReportLimits::default()
    };
    let mut p = ReportParser::new(bytes.as_slice(), limits);
    assert_eq!(p.by_ref().count(), 4);
    assert!(p.summary().complete);

    let huge = format!(
        "<report><results><result><description>{}</description></result></results></report>",
        "x".repeat(1 << 20)
    );
    let limits = ReportLimits {
        max_token_bytes: 64 << 10,
        ..ReportLimits::default()
    };
    let mut p = ReportParser::new(huge.as_bytes(), limits);
    assert!(matches!(
        p.next_result(),
        Err(Error::Limit {
            what: "token bytes",
            ..
        })
    ));
    assert!(
        p.offset() <= (64 << 10) + 100,
        "buffered only about one token: {}",
        p.offset()
    );

    let limits = ReportLimits {
        max_results: 2,
        ..ReportLimits::default()
    };
    let mut p = ReportParser::new(bytes.as_slice(), limits);
    assert!(p.next_result().unwrap().is_some());
    assert!(p.next_result().unwrap().is_some());
    assert!(matches!(
        p.next_result(),
        Err(Error::Limit {
            what: "results",
            limit: 2
        })
    ));

    let limits = ReportLimits {
        max_cves_per_result: 3,
        ..ReportLimits::default()
    };
    let mut p = ReportParser::new(bytes.as_slice(), limits);
    let mut kinds = Vec::new();
    for r in p.by_ref() {
        kinds.push(r.map(|r| r.cves.len()).map_err(|e| e.kind()));
    }
    assert_eq!(
        kinds,
        [Ok(0), Ok(1), Err("limit"), Ok(0)],
        "the over-cap result is skipped, the rest continue"
    );
}

#[test]
fn read_errors_surface_as_io() {
    struct Reset;
    impl Read for Reset {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::ErrorKind::ConnectionReset.into())
        }
    }
    let bytes = fixture("reports/gmp22.8-report.xml");
    let third = std::str::from_utf8(&bytes)
        .unwrap()
        .find("a74c26cc")
        .unwrap();
    let input = BufReader::new(Read::chain(&bytes[..third], Reset));
    let mut p = ReportParser::new(input, ReportLimits::default());
    assert!(p.next_result().unwrap().is_some());
    assert!(p.next_result().unwrap().is_some());
    let err = p.next_result().unwrap_err();
    assert!(
        matches!(&err, Error::Io { offset, .. } if *offset <= third as u64),
        "{err:?}"
    );
    assert_eq!(err.kind(), "io");
}

#[test]
fn error_kinds_are_stable() {
    let all = [
        Error::Xml {
            offset: 1,
            message: String::new(),
        },
        Error::Truncated { offset: 1 },
        Error::Status {
            command: String::new(),
            code: 400,
            text: String::new(),
        },
        Error::Unexpected {
            expected: "x",
            found: String::new(),
        },
        Error::Limit {
            what: "x",
            limit: 1,
        },
        Error::Missing { element: "x" },
        Error::Io {
            offset: 1,
            message: String::new(),
        },
    ];
    let kinds: Vec<_> = all.iter().map(Error::kind).collect();
    assert_eq!(
        kinds,
        [
            "xml",
            "truncated",
            "status",
            "unexpected",
            "limit",
            "missing",
            "io"
        ]
    );
    let long = "é".repeat(500);
    assert!(snippet(&long).chars().count() <= 81);
}
