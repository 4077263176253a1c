//! Tests of the GMP XML builders and parsers, one file per topic; the shared fixture lists
//! and helpers live here.

use super::*;

mod commands;
mod framing;
mod hostile;
mod report;
mod responses;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gvm/");

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}{rel}")).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
}

const RESPONSES: &[&str] = &[
    "responses/authenticate_response-with-severity.xml",
    "responses/create_task_response-201.xml",
    "responses/get_targets_response-gvm-tools-example_target.xml",
    "responses/get_tasks_response-gvm-tools-example_task.xml",
    "responses/omp7-get_tasks_response-all.xml",
    "responses/omp7-get_version_response.xml",
    "responses/start_task_response-202.xml",
    "responses/gmp-doc-examples/authenticate_response-200.xml",
    "responses/gmp-doc-examples/authenticate_response-400.xml",
    "responses/gmp-doc-examples/create_target_response.xml",
    "responses/gmp-doc-examples/create_task_response.xml",
    "responses/gmp-doc-examples/get_reports_response-no-details-gmp22.8.xml",
    "responses/gmp-doc-examples/get_reports_response-xml.xml",
    "responses/gmp-doc-examples/get_tasks_response.xml",
    "responses/gmp-doc-examples/get_version_response.xml",
    "responses/gmp-doc-examples/start_task_response.xml",
];

const REPORTS: &[&str] = &[
    "reports/gmp22.6-report_detail_v2.xml",
    "reports/gmp22.8-report.xml",
    "reports/gmp9.0-one_vuln.xml",
    "reports/omp7-report_v7.xml",
    "responses/gmp-doc-examples/get_reports_response-xml.xml",
    "responses/gmp-doc-examples/get_reports_response-no-details-gmp22.8.xml",
];

/// All results of a report plus its summary; panics on any error.
fn parse_report(bytes: &[u8]) -> (Vec<VulnResult>, ReportSummary) {
    let mut p = ReportParser::new(bytes, ReportLimits::default());
    let mut out = Vec::new();
    while let Some(r) = p.next_result().unwrap() {
        out.push(r);
    }
    (out, p.summary().clone())
}

/// Where the document ends when `bytes` arrive in one chunk; the rest must be whitespace.
fn split_whole(bytes: &[u8]) -> usize {
    let mut s = ResponseSplitter::new(1 << 20);
    let n = s.push(bytes).unwrap().expect("document completes");
    assert!(
        bytes[n..].iter().all(u8::is_ascii_whitespace),
        "junk after root"
    );
    assert!(!s.in_progress());
    n
}
