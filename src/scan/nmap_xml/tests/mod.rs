//! Tests of the nmap XML parser, one file per topic; the shared fixture helpers live here.

use super::*;

mod damaged;
mod fixtures;
mod hostile;
mod stream;
mod vulners;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nmap");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn ok(name: &str) -> NmapRun {
    parse(&fixture(name)[..], &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn port(h: &Host, protocol: Protocol, n: u16) -> &Port {
    h.ports
        .iter()
        .find(|p| p.protocol == protocol && p.port == n)
        .unwrap_or_else(|| panic!("no {protocol:?}/{n}"))
}

fn svc(p: &Port) -> &Service {
    p.service.as_ref().expect("service")
}

fn up(run: &NmapRun) -> usize {
    run.hosts
        .iter()
        .filter(|h| h.status == HostStatus::Up)
        .count()
}
