//! ReportParser on every report fixture: fields, CVEs, summaries, streaming, status errors
//! and per-result errors.

use std::io::BufReader;

use super::*;

#[test]
fn every_report_fixture_parses_to_completion() {
    for rel in REPORTS {
        let (_, summary) = parse_report(&fixture(rel));
        assert!(summary.complete, "{rel}");
        assert_eq!(summary.scan_run_status.as_deref(), Some("Done"), "{rel}");
    }
}

#[test]
fn report_gmp22_8() {
    let bytes = fixture("reports/gmp22.8-report.xml");
    let (results, summary) = parse_report(&bytes);
    // Two results carry a nested detection/result: only the four report/results/result count.
    let got: Vec<_> = results
        .iter()
        .map(|r| {
            (
                r.id.as_deref().unwrap_or(""),
                r.port.as_str(),
                r.port_number,
                r.severity,
                r.qod,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "8bc8ba01-e51a-4dc8-bf65-8ee5962ffad6",
                "25/tcp",
                Some(25),
                5.0,
                Some(99)
            ),
            (
                "a4372005-4a37-44db-b47e-cf83de04b1e0",
                "8083/tcp",
                Some(8083),
                5.0,
                Some(70)
            ),
            (
                "a74c26cc-685e-448c-8d6b-889baf047ff0",
                "25/tcp",
                Some(25),
                4.3,
                Some(98)
            ),
            (
                "2e395840-5aef-46e1-9b26-a0e66175da17",
                "22/tcp",
                Some(22),
                2.6,
                Some(80)
            ),
        ]
    );
    for r in &results {
        assert_eq!(r.host, "127.0.0.1");
        assert_eq!(r.hostname.as_deref(), Some("localhost"));
        assert_eq!(r.protocol.as_deref(), Some("tcp"));
        assert_eq!(r.cvss_base, Some(r.severity));
        assert_eq!(
            (r.cvss_v3, r.cvss_v3_vector.as_deref()),
            (None, None),
            "only cvss_base_v2 here"
        );
    }
    let r = &results[2];
    assert_eq!(r.nvt_oid, "1.3.6.1.4.1.25623.1.0.117274");
    assert_eq!(
        r.nvt_name,
        "SSL/TLS: Deprecated TLSv1.0 and TLSv1.1 Protocol Detection"
    );
    assert_eq!(r.threat.as_deref(), Some("Medium"));
    assert_eq!(
        r.cves,
        [
            "CVE-2011-3389",
            "CVE-2015-0204",
            "CVE-2023-41928",
            "CVE-2024-41270",
            "CVE-2025-3200"
        ]
    );
    assert!(
        results[0].cves.is_empty(),
        "<ref type=\"cve\" id=\"\"> is skipped"
    );
    assert_eq!(results[1].cves, ["CVE-2017-16894"]);
    assert_eq!(results[3].threat.as_deref(), Some("Low"));
    assert_eq!(
        summary,
        ReportSummary {
            report_id: Some("c4d58b60-1c7c-4671-aa54-95752aa69f25".into()),
            scan_run_status: Some("Done".into()),
            result_count: Some(99),
            results_filtered: Some(4),
            results_returned: 4,
            hosts: vec!["127.0.0.1".into()],
            gmp_version: Some("22.8".into()),
            complete: true,
        }
    );
}

#[test]
fn report_streams_through_a_tiny_buffer() {
    let path = format!("{FIXTURES}reports/gmp22.8-report.xml");
    let file = std::fs::File::open(path).unwrap();
    let mut p = ReportParser::new(BufReader::with_capacity(7, file), ReportLimits::default());
    let streamed: Vec<VulnResult> = p.by_ref().collect::<Result<_, _>>().unwrap();
    let (whole, summary) = parse_report(&fixture("reports/gmp22.8-report.xml"));
    assert_eq!(streamed, whole);
    assert_eq!(p.summary(), &summary);
    assert_eq!(
        p.offset(),
        split_whole(&fixture("reports/gmp22.8-report.xml")) as u64
    );
}

#[test]
fn report_gmp22_6_has_cvss3_and_many_cves() {
    let (results, summary) = parse_report(&fixture("reports/gmp22.6-report_detail_v2.xml"));
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(
        r.id.as_deref(),
        Some("ec5f93ff-3447-4171-8485-3b3b3af2edc0")
    );
    assert_eq!(
        (r.host.as_str(), r.hostname.as_deref()),
        ("10.99.99.99", Some("server99"))
    );
    assert_eq!(
        (r.port.as_str(), r.port_number, r.protocol.as_deref()),
        ("42/tcp", Some(42), Some("tcp"))
    );
    assert_eq!(r.nvt_oid, "1.3.6.1.4.1.25623.1.0.836484");
    assert_eq!(
        r.nvt_name,
        "Microsoft Windows Multiple Vulnerabilities (KB5062557)"
    );
    assert_eq!(
        (r.severity, r.cvss_base, r.cvss_v3),
        (9.8, Some(9.8), Some(9.8))
    );
    assert_eq!(
        r.cvss_v3_vector.as_deref(),
        Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
    );
    assert_eq!((r.qod, r.threat.as_deref()), (Some(80), Some("High")));
    assert_eq!(
        r.cves.len(),
        93,
        "epss/…/cve ids are not refs and are not counted twice"
    );
    assert_eq!(r.cves.first().map(String::as_str), Some("CVE-2025-49659"));
    assert_eq!(r.cves.last().map(String::as_str), Some("CVE-2025-49757"));
    assert_eq!(
        summary.report_id.as_deref(),
        Some("88bbda4b-25db-43cf-896d-b90686833b29")
    );
    assert_eq!(summary.gmp_version.as_deref(), Some("22.6"));
    assert_eq!((summary.result_count, summary.hosts.len()), (None, 0));
}

#[test]
fn report_gmp9_bare_report_with_general_port() {
    let (results, summary) = parse_report(&fixture("reports/gmp9.0-one_vuln.xml"));
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert_eq!(r.host, "10.0.101.2");
    assert_eq!(r.hostname, None, "empty <hostname> is None");
    assert_eq!(
        (r.port.as_str(), r.port_number, r.protocol.as_deref()),
        ("general/tcp", None, Some("tcp"))
    );
    assert_eq!(
        (r.severity, r.cvss_base, r.qod),
        (10.0, Some(10.0), Some(97))
    );
    assert_eq!(
        r.nvt_name,
        "Mozilla Firefox Security Update (mfsa_2023-32_2023-36) - Windows"
    );
    assert_eq!(r.cves.len(), 12);
    assert_eq!(r.cves[..2], ["CVE-2023-4573", "CVE-2023-4574"]);
    assert_eq!(r.cves[11], "CVE-2023-4584");
    // The outer export wrapper's id differs from the inner report's here; the outer one wins.
    assert_eq!(
        summary.report_id.as_deref(),
        Some("0b63ae21-1a37-474a-b436-2f6561d36990")
    );
    assert_eq!(summary.gmp_version.as_deref(), Some("9.0"));
    assert_eq!(summary.hosts, ["10.0.101.2"]);
    assert_eq!(summary.result_count, Some(0));
}

#[test]
fn report_omp7_reads_comma_separated_cves() {
    let (results, summary) = parse_report(&fixture("reports/omp7-report_v7.xml"));
    // 8 <result> elements in the file, two of them nested in <detection>.
    let got: Vec<_> = results
        .iter()
        .map(|r| (r.port.as_str(), r.severity, r.cves.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("1443/tcp", 6.8, vec!["CVE-2014-0224".to_owned()]),
            ("8443/tcp", 6.4, vec!["CVE-2010-2227".to_owned()]),
            ("3390/tcp", 5.0, vec![]),
            ("443/tcp", 4.3, vec![]),
            ("1443/tcp", 4.3, vec![]),
            ("8443/tcp", 4.3, vec!["CVE-2010-4172".to_owned()]),
        ]
    );
    assert!(results
        .iter()
        .all(|r| r.host == "10.10.10.10" && r.qod.is_none() && r.hostname.is_none()));
    assert_eq!(results[0].nvt_oid, "1.3.6.1.4.1.25623.1.0.105042");
    assert_eq!(
        results[0].id.as_deref(),
        Some("e68f58e5-1451-43ca-a279-395904bbe03f")
    );
    assert_eq!(
        summary.report_id.as_deref(),
        Some("f3732b63-5257-452b-91a1-b69db4ae7261")
    );
    assert_eq!(summary.gmp_version, None);
    assert!(summary.complete);
}

#[test]
fn report_doc_examples() {
    let (results, summary) = parse_report(&fixture(
        "responses/gmp-doc-examples/get_reports_response-xml.xml",
    ));
    assert_eq!(results.len(), 1, "<truncated> placeholders are ignored");
    let r = &results[0];
    assert_eq!(
        r.id.as_deref(),
        Some("634f7a2e-8ca1-43b7-b6d7-0d4841449508")
    );
    assert_eq!(
        (r.host.as_str(), r.port.as_str()),
        ("127.0.1.1", "general/tcp")
    );
    assert_eq!(
        r.severity, 5.0,
        "no <severity>: falls back to nvt/cvss_base"
    );
    assert_eq!(r.cves, ["CVE-2013-1406"]);
    assert_eq!(r.nvt_oid, "1.3.6.1.4.1.25623.1.0.74");
    assert_eq!(
        summary.report_id.as_deref(),
        Some("f0fdf522-276d-4893-9274-fb8699dc2270")
    );
    assert_eq!(summary.gmp_version.as_deref(), Some("@GMP_VERSION@"));
    assert_eq!(
        (summary.result_count, summary.results_filtered),
        (Some(10), Some(10))
    );
    assert_eq!(summary.hosts, ["127.0.1.1"]);

    let (results, summary) = parse_report(&fixture(
        "responses/gmp-doc-examples/get_reports_response-no-details-gmp22.8.xml",
    ));
    assert!(
        results.is_empty(),
        "errors/error (severity -3) is not a result"
    );
    assert_eq!(
        summary.report_id.as_deref(),
        Some("f2d54f16-5001-4bf4-9b6f-75af1c1cac18")
    );
    assert_eq!(
        (summary.result_count, summary.results_filtered),
        (Some(100), Some(5))
    );
    assert_eq!(summary.gmp_version.as_deref(), Some("22.8"));
    assert!(summary.complete);
}

#[test]
fn report_stops_at_root_end_leaving_the_next_response() {
    let a = fixture("reports/gmp9.0-one_vuln.xml");
    let a = &a[..split_whole(&a)];
    let next = br#"<get_version_response status="200" status_text="OK"><version>22.7</version></get_version_response>"#;
    let stream = [a, next.as_slice()].concat();
    let mut p = ReportParser::new(stream.as_slice(), ReportLimits::default());
    assert!(p.next_result().unwrap().is_some());
    assert!(p.next_result().unwrap().is_none());
    assert_eq!(p.next_result().unwrap(), None, "stays finished");
    assert_eq!(p.into_inner(), next.as_slice());
}

#[test]
fn report_status_errors_and_wrong_roots() {
    let doc = r#"<get_reports_response status="404" status_text="Failed to find report 'x'"/>"#;
    let mut p = ReportParser::new(doc.as_bytes(), ReportLimits::default());
    match p.next_result() {
        Err(Error::Status {
            command,
            code: 404,
            text,
        }) => {
            assert_eq!(command, "get_reports_response");
            assert_eq!(text, "Failed to find report 'x'");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.next_result().unwrap(), None);
    let mut p = ReportParser::new(
        &b"<get_tasks_response status=\"200\"/>"[..],
        ReportLimits::default(),
    );
    assert!(matches!(p.next_result(), Err(Error::Unexpected { .. })));
    let mut p = ReportParser::new(&b"<report id=\"r\"/>"[..], ReportLimits::default());
    assert_eq!(p.next_result().unwrap(), None);
    assert_eq!(p.summary().report_id.as_deref(), Some("r"));
    assert!(p.summary().complete);
}

const MINI: &str = r#"<report id="r1"><report id="r1"><results>
        <result id="bad"><port>80/tcp</port><nvt oid="1.2"/><severity>5</severity></result>
        <result id="fp"><host> 10.0.0.9 <asset asset_id=""/><hostname>h</hostname>
          </host><port>https (443/tcp)</port><nvt oid="1.3"><name>A &amp; B &#x41;</name><cve>CVE-1, CVE-2,NOCVE,CVE-1</cve></nvt>
          <severity>-1</severity><threat>False Positive</threat><delta><result id="nested"><host>9.9.9.9</host></result></delta>
          <overrides><override><nvt oid="9.9"><name>not me</name></nvt></override></overrides></result>
        <result id="nan"><host>10.0.0.1</host><port>1/udp</port><nvt oid="1.4"/><severity>bogus</severity></result>
        <result id="ok"><host>10.0.0.1</host><port>53/udp</port><nvt oid="1.5"/><severity>0.0</severity></result>
        </results><result_count>7<filtered>3</filtered></result_count></report></report>"#;

#[test]
fn report_per_result_errors_are_recoverable() {
    let mut p = ReportParser::new(MINI.as_bytes(), ReportLimits::default());
    let e = p.next_result().unwrap_err();
    assert!(
        matches!(
            e,
            Error::Missing {
                element: "result/host"
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.kind(), "missing");
    let fp = p.next_result().unwrap().unwrap();
    assert_eq!(fp.id.as_deref(), Some("fp"));
    assert_eq!(
        (fp.host.as_str(), fp.hostname.as_deref()),
        ("10.0.0.9", Some("h"))
    );
    assert_eq!(
        (fp.port_number, fp.protocol.as_deref()),
        (Some(443), Some("tcp"))
    );
    assert_eq!(fp.nvt_name, "A & B A");
    assert_eq!(fp.nvt_oid, "1.3");
    assert_eq!(fp.cves, ["CVE-1", "CVE-2"]);
    assert!(fp.is_false_positive() && !fp.is_error());
    assert!(matches!(
        p.next_result(),
        Err(Error::Unexpected {
            expected: "a numeric result/severity",
            ..
        })
    ));
    let ok = p.next_result().unwrap().unwrap();
    assert_eq!(
        (ok.id.as_deref(), ok.port_number, ok.protocol.as_deref()),
        (Some("ok"), Some(53), Some("udp"))
    );
    assert_eq!(p.next_result().unwrap(), None);
    assert_eq!(p.summary().results_returned, 2);
    // Own text counts when there is no <full> child.
    assert_eq!(
        (p.summary().result_count, p.summary().results_filtered),
        (Some(7), Some(3))
    );
}

#[test]
fn pre_gmp8_log_results_with_an_empty_cvss_base_are_severity_zero() {
    // OMP 7 and older exports: no <severity> (or an empty one), an empty cvss_base, threat Log.
    let xml = r#"<report id="r"><report id="r"><results>
        <result id="log"><host>10.0.0.2</host><port>general/tcp</port><nvt oid="1.3.6.1.4.1.25623.1.0.108021"><name>Ping</name><cvss_base></cvss_base></nvt><threat>Log</threat></result>
        <result id="log2"><host>10.0.0.2</host><port>22/tcp</port><nvt oid="1.7"><cvss_base/></nvt><severity></severity><threat>Log</threat></result>
        <result id="high"><host>10.0.0.2</host><port>22/tcp</port><nvt oid="1.8"><cvss_base></cvss_base></nvt><threat>High</threat></result>
        </results></report></report>"#;
    let mut p = ReportParser::new(xml.as_bytes(), ReportLimits::default());
    let log = p.next_result().unwrap().unwrap();
    assert_eq!((log.id.as_deref(), log.severity), (Some("log"), 0.0));
    assert_eq!(log.threat.as_deref(), Some("Log"));
    let log2 = p.next_result().unwrap().unwrap();
    assert_eq!((log2.id.as_deref(), log2.severity), (Some("log2"), 0.0));
    // A High result with no score at all is still an error: its severity is unknown, not zero.
    assert!(matches!(
        p.next_result(),
        Err(Error::Missing {
            element: "result/severity"
        })
    ));
    assert_eq!(p.next_result().unwrap(), None);
}

#[test]
fn split_port_forms() {
    assert_eq!(split_port("443/tcp"), (Some(443), Some("tcp".into())));
    assert_eq!(split_port("general/tcp"), (None, Some("tcp".into())));
    assert_eq!(split_port("general/icmp"), (None, Some("icmp".into())));
    assert_eq!(split_port("general/CPE-T"), (None, None));
    assert_eq!(
        split_port("https (443/tcp)"),
        (Some(443), Some("tcp".into()))
    );
    assert_eq!(split_port("package"), (None, None));
    assert_eq!(split_port("70000/udp"), (None, Some("udp".into())));
}
