//! Tests of the nmap driver, one file per topic; the shared helpers (settings, jobs, fake
//! services on loopback, fake nmap scripts, process lookup) live here. Most need /usr/bin/nmap.

mod binary;
mod loopback;
mod prober;
mod pure;
mod timeouts;

use super::args::{args, port_spec};
use super::plan::{plan, MAX_PORTS_PER_UNIT};
use super::privileges::{parse_version, privileges};
use super::task_progress::TaskScan;
use super::*;
use crate::scan::nmap_xml::Protocol;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const NMAP: &str = "/usr/bin/nmap";
const LIMIT: Duration = Duration::from_secs(90);

fn caps(privileged: bool) -> Capabilities {
    Capabilities {
        version: "7.93".into(),
        privileged,
        root: true,
    }
}

fn settings() -> Settings {
    Settings {
        path: NMAP.into(),
        stats_every: Duration::from_secs(1),
        ..Settings::default()
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn job(a: &str, ports: &[u16]) -> Job {
    Job {
        address: ip(a),
        tcp_ports: ports.to_vec(),
    }
}

/// A listener that writes `banner` as soon as it accepts (nmap's NULL probe matches at once),
/// or, with `http`, once the client has sent something.
async fn serve(addr: &str, port: u16, banner: &'static [u8], http: bool) -> u16 {
    let l = TcpListener::bind((ip(addr), port)).await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                // Like a real server, answer whatever the client sent (nmap's binary
                // probes too, or each would wait out its full timeout).
                if http && !matches!(s.read(&mut [0u8; 4096]).await, Ok(n) if n > 0) {
                    return;
                }
                let _ = s.write_all(banner).await;
                let _ = s.shutdown().await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            });
        }
    });
    port
}

/// A port whose connections are accepted by the kernel and never answered.
fn silent(addr: &str) -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind((ip(addr), 0)).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

/// nmap under a unique name, so its processes can be found in /proc.
fn marked_nmap(dir: &Path) -> (PathBuf, String) {
    static N: AtomicU64 = AtomicU64::new(0);
    let marker = format!(
        "nmap-stinger-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let path = dir.join(&marker);
    std::os::unix::fs::symlink(NMAP, &path).unwrap();
    (path, marker)
}

fn live_processes(marker: &str) -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(marker) {
                found.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    found
}

fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn port(ports: &[Port], n: u16) -> &Port {
    ports
        .iter()
        .find(|p| p.port == n)
        .unwrap_or_else(|| panic!("port {n} missing in {ports:?}"))
}
