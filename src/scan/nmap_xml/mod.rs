//! Scan stage: nmap XML (-oX) → typed hosts/ports/services; pure, streaming, bounded.
//! Reads quick-xml events from a `BufRead` it is handed (no DOM, no other I/O, no panics).
//! Every buffer and list is capped by [`Limits`]; only XML's five predefined entities and
//! character references are decoded, so a DOCTYPE can never make the parser expand anything.
#![allow(dead_code)]

mod elements;
mod error;
mod parser;
mod reader;
mod types;
mod vulners;

#[cfg(test)]
mod tests;

use std::io::BufRead;

pub use error::Error;
pub use types::{
    AddrKind, Address, ExitStatus, ExtraPorts, Finished, Host, HostCounts, HostStatus, Limits,
    NmapRun, OsMatch, Port, PortState, Protocol, Service, TaskProgress, Vuln,
};

pub use parser::HostParser;

/// Parses a complete nmap XML document. Any error, including a missing `</nmaprun>`, fails.
pub fn parse<R: BufRead>(input: R, limits: &Limits) -> Result<NmapRun, Error> {
    match parse_partial(input, limits) {
        (run, None) => Ok(run),
        (_, Some(err)) => Err(err),
    }
}

/// Lenient variant for interrupted scans: returns what was parsed plus the error; hosts are
/// kept only if their `</host>` was seen (complete == true).
pub fn parse_partial<R: BufRead>(input: R, limits: &Limits) -> (NmapRun, Option<Error>) {
    let mut parser = HostParser::new(input, limits);
    let mut hosts = Vec::new();
    let err = loop {
        match parser.next_host() {
            Ok(Some(host)) => hosts.push(host),
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    let mut run = parser.into_run_info();
    run.hosts = hosts;
    (run, err)
}
