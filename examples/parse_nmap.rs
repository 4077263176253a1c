//! Parser benchmark driver: parses one nmap XML file (`-oX`) with `stinger::scan::nmap_xml`
//! and prints throughput and counts. Used by `benches/parsers.sh`.
//!
//!     cargo build --release --examples
//!     target/release/examples/parse_nmap /tmp/nmap-15mb.xml
//!
//! Output, one line: `bytes=… seconds=… mb_per_s=… hosts=… ports=… services=… vulns=…`
//! (MB = 10^6 bytes; seconds cover opening, reading and parsing the file, not process start-up).
//! Exits 1 if the document does not parse.

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;
use std::time::Instant;

use stinger::scan::nmap_xml::{parse, Limits};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: parse_nmap <nmap.xml>");
        return ExitCode::from(2);
    };
    let t0 = Instant::now();
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("parse_nmap: {}: {e}", path.to_string_lossy());
            return ExitCode::from(2);
        }
    };
    let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
    let run = match parse(
        BufReader::with_capacity(64 * 1024, file),
        &Limits::default(),
    ) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("parse_nmap: {e}");
            return ExitCode::from(1);
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    let ports: usize = run.hosts.iter().map(|h| h.ports.len()).sum();
    let services = run
        .hosts
        .iter()
        .flat_map(|h| &h.ports)
        .filter(|p| p.service.is_some())
        .count();
    let vulns: usize = run
        .hosts
        .iter()
        .flat_map(|h| &h.ports)
        .map(|p| p.vulns.len())
        .sum();
    println!(
        "bytes={bytes} seconds={secs:.4} mb_per_s={:.1} hosts={} ports={ports} services={services} vulns={vulns}",
        bytes as f64 / 1e6 / secs,
        run.hosts.len(),
    );
    ExitCode::SUCCESS
}
