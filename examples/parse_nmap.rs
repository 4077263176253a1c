//! Parser benchmark driver: parses one nmap XML file (`-oX`) with `stinger::scan::nmap_xml`
//! and prints throughput and counts. Used by `benches/parsers.sh`.
//!
//!     cargo build --release --examples
//!     target/release/examples/parse_nmap /tmp/nmap-15mb.xml
//!
//! Output, one line: `bytes=… seconds=… mb_per_s=… hosts=… ports=… services=… vulns=…`
//! (MB = 10^6 bytes; seconds cover opening, reading and parsing the file, not process start-up).
//! Exits 1 if the document does not parse. Streams with `HostParser`: each host is counted
//! and dropped, so memory stays flat however large the document.

use std::fs::File;
use std::io::BufReader;
use std::process::ExitCode;
use std::time::Instant;

use stinger::scan::nmap_xml::{HostParser, Limits};

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
    let mut parser = HostParser::new(
        BufReader::with_capacity(64 * 1024, file),
        &Limits::default(),
    );
    let (mut hosts, mut ports, mut services, mut vulns) = (0usize, 0usize, 0usize, 0usize);
    loop {
        match parser.next_host() {
            Ok(Some(host)) => {
                hosts += 1;
                ports += host.ports.len();
                services += host.ports.iter().filter(|p| p.service.is_some()).count();
                vulns += host.ports.iter().map(|p| p.vulns.len()).sum::<usize>();
            } // host dropped here
            Ok(None) => break,
            Err(e) => {
                eprintln!("parse_nmap: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "bytes={bytes} seconds={secs:.4} mb_per_s={:.1} hosts={hosts} ports={ports} services={services} vulns={vulns}",
        bytes as f64 / 1e6 / secs,
    );
    ExitCode::SUCCESS
}
