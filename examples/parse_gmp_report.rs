//! Parser benchmark driver: streams one GMP report (`get_reports_response` or a bare `<report>`
//! export) through `stinger::scan::gmp_xml::ReportParser` and prints throughput and counts.
//! Used by `benches/parsers.sh`.
//!
//!     cargo build --release --examples
//!     target/release/examples/parse_gmp_report /tmp/gmp-report.xml
//!
//! Output, one line: `bytes=… seconds=… mb_per_s=… results=… cves=… result_errors=… hosts=…
//! complete=…` (MB = 10^6 bytes; seconds cover opening, reading and parsing the file).
//! Results are counted and dropped, as the agent does. Exits 1 on a fatal parse error.

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;
use std::time::Instant;

use stinger::scan::gmp_xml::{ReportLimits, ReportParser};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: parse_gmp_report <report.xml>");
        return ExitCode::from(2);
    };
    let t0 = Instant::now();
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("parse_gmp_report: {}: {e}", path.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut parser = ReportParser::new(
        BufReader::with_capacity(64 * 1024, file),
        ReportLimits::default(),
    );
    let (mut results, mut cves, mut result_errors) = (0u64, 0u64, 0u64);
    loop {
        match parser.next_result() {
            Ok(Some(r)) => {
                results += 1;
                cves += r.cves.len() as u64;
            }
            Ok(None) => break,
            // A per-result error leaves the parser usable; a fatal one ends it (next call: None).
            Err(e) => {
                result_errors += 1;
                if result_errors <= 3 {
                    eprintln!("parse_gmp_report: {e}");
                }
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let summary = parser.summary();
    println!(
        "bytes={bytes} seconds={secs:.4} mb_per_s={:.1} results={results} cves={cves} result_errors={result_errors} hosts={} complete={}",
        bytes as f64 / 1e6 / secs,
        summary.hosts.len(),
        summary.complete,
    );
    if summary.complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
