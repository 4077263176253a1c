//! Test-only: real Debian UDP servers on loopback for the scanner tests — dnsmasq (dnsmasq-base),
//! snmpd (snmpd) and memcached (memcached) — each started in the foreground with a throw-away
//! config and killed on drop. A missing binary skips the test with a message, except under CI
//! (`CI` set), where it fails so a missing install step cannot hide.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// Where `name` is installed, or `None` (after saying so) when the test should be skipped.
pub(super) fn binary(name: &str, package: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: {name} not found; install the Debian package {package} (apt-get install -y {package})"
        );
        eprintln!("SKIPPING {test}: {name} not found; apt-get install -y {package} to run it");
    }
    found
}

/// A server process, killed (and reaped) on drop, with its scratch directory.
pub(super) struct Daemon {
    name: String,
    child: Child,
    dir: TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `addr` as /proc/net/udp prints a local address: `%08X:%04X` of the raw IPv4 and the port.
fn proc_net_udp_key(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(a.ip().octets()),
            a.port()
        ),
        SocketAddr::V6(_) => panic!("the test servers listen on IPv4 loopback"),
    }
}

impl Daemon {
    /// Start `bin args…` (cwd and `SNMP_PERSISTENT_DIR` in a fresh temporary directory) and wait up
    /// to 10 s until a UDP socket is bound on `addr` (read from /proc/net/udp, without touching
    /// the port); panics with the server's output when it exits or does not bind.
    pub(super) fn start(name: &str, bin: &Path, args: &[String], addr: SocketAddr) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let log = std::fs::File::create(dir.path().join("output")).unwrap();
        let child = Command::new(bin)
            .args(args)
            .current_dir(dir.path())
            .env("SNMP_PERSISTENT_DIR", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", bin.display()));
        let mut d = Daemon {
            name: name.to_string(),
            child,
            dir,
        };
        let key = proc_net_udp_key(addr);
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = d.child.try_wait().unwrap() {
                panic!(
                    "{} exited ({status}) before listening: {}",
                    d.name,
                    d.output()
                );
            }
            let table = std::fs::read_to_string("/proc/net/udp").unwrap_or_default();
            if table
                .lines()
                .any(|l| l.split_whitespace().nth(1) == Some(key.as_str()))
            {
                return d;
            }
            assert!(
                Instant::now() < end,
                "{} did not bind udp {addr} in 10 s: {}",
                d.name,
                d.output()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What the server printed so far.
    pub(super) fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("output")).unwrap_or_default()
    }

    /// dnsmasq in the foreground on `addr`, with no config file, no /etc/hosts and no
    /// /etc/resolv.conf; `extra` adds zones (`--address=…`) or upstreams (`--server=…`).
    pub(super) fn dnsmasq(bin: &Path, addr: SocketAddr, extra: &[&str]) -> Daemon {
        let mut args: Vec<String> = [
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-hosts",
            "--no-resolv",
            "--bind-interfaces",
            "--pid-file=",
            "--user=root",
            "--log-facility=-",
            "--log-queries",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push(format!("--listen-address={}", addr.ip()));
        args.push(format!("--port={}", addr.port()));
        args.extend(extra.iter().map(|s| s.to_string()));
        Daemon::start("dnsmasq", bin, &args, addr)
    }

    /// snmpd in the foreground (`-f -Lo`), reading only its own config (`-C -c`): an agent on
    /// `addr` with a read-only `community`.
    pub(super) fn snmpd(bin: &Path, addr: SocketAddr, community: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("snmpd.conf");
        std::fs::write(
            &conf,
            format!("agentaddress udp:{addr}\nrocommunity {community}\n"),
        )
        .unwrap();
        let args = ["-f", "-Lo", "-C", "-c", &conf.to_string_lossy()]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>();
        let d = Daemon::start("snmpd", bin, &args, addr);
        // The config is read at start-up; the directory may go.
        drop(dir);
        d
    }

    /// memcached with UDP on `addr` (`-U`) and TCP off (`-p 0`).
    pub(super) fn memcached(bin: &Path, addr: SocketAddr) -> Daemon {
        let args = [
            "-U".to_string(),
            addr.port().to_string(),
            "-l".to_string(),
            addr.ip().to_string(),
            "-p".to_string(),
            "0".to_string(),
            // Needed when running as root; ignored otherwise.
            "-u".to_string(),
            "nobody".to_string(),
        ];
        Daemon::start("memcached", bin, &args, addr)
    }
}
