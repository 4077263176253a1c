//! Free TCP ports on a loopback address: for a server another process will start there, or for an
//! address that must refuse connections. The port is bound and released at once, so another test
//! could take it in between; tests keep to their own 127.0.N.0/24 to make that unlikely.

use std::net::{IpAddr, TcpListener};

/// A TCP port free on the loopback address `ip` (bound, then released). Panics, naming the
/// address, when `ip` is not a loopback address or nothing can be bound there.
pub fn free_port(ip: &str) -> u16 {
    let addr: IpAddr = ip
        .parse()
        .unwrap_or_else(|e| panic!("free_port: {ip:?} is not an IP address: {e}"));
    assert!(
        addr.is_loopback(),
        "free_port: {ip} is not a loopback address; tests use 127.0.0.0/8 only"
    );
    TcpListener::bind((addr, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("free_port: cannot bind {ip}:0: {e}"))
}
