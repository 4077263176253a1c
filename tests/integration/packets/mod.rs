//! Issue 17's packet proofs. `stinger scan --once` runs (through nsenter) in a network namespace of
//! the test's own whose OUTPUT chain counts every packet leaving it, with default routes over
//! loopback so that a packet to any address really goes out (and is counted) instead of failing
//! with "network unreachable"; nothing leaves the namespace.
//!
//! - Scope: a full pass over two CIDR groups and an IPv6 group, a cloud (the real Keystone,
//!   forwarded into the namespace, and the fake Nova/Neutron, started inside) naming out-of-scope
//!   and special addresses, UDP and nmap on: every in-scope address gets TCP, UDP and (where open) nmap packets,
//!   and not one packet goes anywhere else (iptables and ip6tables catch-alls stay at 0).
//! - Rates: against a filtered host (its packets dropped on arrival) the TCP connect scan and the
//!   UDP probes, and nmap against a host whose ports discovery found open but nmap finds closed,
//!   keep `max_rate` (and, in the second test, `max_host_rate`) within 10% over the steady part.
//!   (Against filtered ports nmap's own congestion control holds it near 20 connects a second,
//!   whatever `--max-rate` says, so its rate limit shows only where it gets answers.)
//!
//! What a rate counts: a TCP probe is a connect attempt, so the TCP and nmap figures count
//! connections (the first SYN of each (address, source port, port), an iptables hashlimit), not
//! the kernel's SYN retransmissions within one connect (which no rate limit governs; with a 500 ms
//! probe timeout there are none, and the test prints both counts); a UDP probe is a datagram,
//! retries included. nmap runs as `nobody` through a wrapper, so its packets can be told from
//! stinger's by owner.

use crate::keystone_server::{keystone, keystone_call, register_region};
use crate::util::{bin, write_config, Listener};
use nix::sched::{setns, CloneFlags};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use stinger_testsupport::fake_cloud::{Cloud, FakeCloud, FakeConfig, ServerSpec, TokenCheck};
use stinger_testsupport::netns::{privileged, TestNs};

/// `nobody`: the user nmap runs as (see [`nmap_as_nobody`]).
const NMAP_UID: &str = "65534";
/// The longest one `scan --once` may take before the test fails.
const SCAN_LIMIT: Duration = Duration::from_secs(120);

// === The namespace ===

/// Runs `f` on a thread that entered `ns`: sockets it opens, and threads it starts, live there.
fn in_ns<T: Send>(ns: &TestNs, f: impl FnOnce() -> T + Send) -> T {
    let file = std::fs::File::open(&ns.path).unwrap_or_else(|e| panic!("open {:?}: {e}", ns.path));
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(&file, CloneFlags::CLONE_NEWNET).expect("setns into the test namespace");
            f()
        })
        .join()
        .expect("the thread in the test namespace panicked")
    })
}

/// A namespace whose netfilter can count what these tests count, or `None` (having said why)
/// where namespaces or the iptables matches are unavailable.
fn counting_namespace(test: &str) -> Option<TestNs> {
    if !privileged(test) {
        return None;
    }
    let ns = TestNs::create();
    let probes = [
        format!(
            "iptables -w -A OUTPUT -d 127.0.0.99 -p tcp -m owner --uid-owner {NMAP_UID} \
             -m conntrack --ctstate NEW -m comment --comment probe {} -j REJECT --reject-with tcp-reset",
            first_syn("probe")
        ),
        "ip6tables -w -A OUTPUT -d ::1 -j DROP".to_string(),
        "ip -6 route add default dev lo".to_string(),
    ];
    for probe in probes {
        let argv: Vec<&str> = probe.split_whitespace().collect();
        let (ok, stderr) = ns.exec(&argv, false);
        if !ok {
            eprintln!(
                "SKIPPING {test}: `{probe}` fails in a network namespace ({}); it needs iptables and \
                 ip6tables with the owner, conntrack, hashlimit, comment and REJECT matches, and IPv6",
                stderr.trim()
            );
            return None;
        }
    }
    ns.exec(&["iptables", "-w", "-F"], true);
    ns.exec(&["ip6tables", "-w", "-F"], true);
    // Everything goes out over loopback (and is counted in OUTPUT on the way); what is not local
    // is dropped on arrival, so nothing leaves the namespace.
    ns.exec(&["ip", "route", "add", "default", "dev", "lo"], true);
    Some(ns)
}

/// Appends a rule to `chain`: `spec` (whitespace-separated; it ends in `-j …` or only counts), its
/// counter named by `comment`.
fn rule(ns: &TestNs, v6: bool, chain: &str, comment: &str, spec: &str) {
    let cmd = if v6 { "ip6tables" } else { "iptables" };
    let mut argv = vec![cmd, "-w", "-A", chain];
    argv.extend(spec.split_whitespace());
    argv.extend(["-m", "comment", "--comment", comment]);
    ns.exec(&argv, true);
}

/// The `spec` that matches each connection's first SYN only, one per (address, source port,
/// port), not the kernel's retransmissions of it; `name` names its hash table.
fn first_syn(name: &str) -> String {
    format!(
        "--syn -m hashlimit --hashlimit-upto 1/hour --hashlimit-burst 1 --hashlimit-name {name} \
         --hashlimit-mode dstip,srcport,dstport --hashlimit-htable-size 65536 \
         --hashlimit-htable-max 262144"
    )
}

/// Every commented rule's packet count, IPv4 and (with `v6`) IPv6, all chains.
fn counters(ns: &TestNs, v6: bool) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let families: &[&str] = if v6 {
        &["iptables", "ip6tables"]
    } else {
        &["iptables"]
    };
    for cmd in families {
        let text = ns.output(&[cmd, "-w", "-L", "-v", "-n", "-x"]);
        for line in text.lines() {
            let (Some(start), Some(end)) = (line.find("/* "), line.rfind(" */")) else {
                continue;
            };
            let Some(packets) = line.split_whitespace().next().and_then(|n| n.parse().ok()) else {
                continue;
            };
            out.insert(line[start + 3..end].to_string(), packets);
        }
    }
    out
}

/// Connections to `addr` inside the namespace are relayed to `addr` in the test's own namespace
/// (Keystone listens there), until dropped.
struct Forward {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Forward {
    fn new(ns: &TestNs, addr: SocketAddr) -> Forward {
        let listener = in_ns(ns, || TcpListener::bind(addr))
            .unwrap_or_else(|e| panic!("bind {addr} in the namespace: {e}"));
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        // Started from this thread, so its outgoing connections are made from this namespace.
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((inner, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let Ok(outer) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
                    continue;
                };
                for (from, to) in [(&inner, &outer), (&outer, &inner)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    let _ = from.set_nonblocking(false);
                    let _ = from.set_read_timeout(Some(Duration::from_secs(60)));
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 * 1024];
                        while let Ok(n @ 1..) = from.read(&mut buf) {
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Forward {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// === stinger and nmap ===

/// How `scan --once` ended.
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "scan --once printed no JSON ({e}): {}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// `stinger --config.file <config> scan --once --output json` inside `ns`, killed (failing the
/// test) after [`SCAN_LIMIT`].
fn scan_once(ns: &TestNs, config: &Path, env: &[(&str, &str)]) -> Ran {
    let mut child = Command::new("nsenter")
        .arg(format!("--net={}", ns.path.display()))
        .arg(bin())
        .arg("--config.file")
        .arg(config)
        .args(["scan", "--once", "--output", "json"])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run nsenter stinger");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + SCAN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "scan --once ran over {SCAN_LIMIT:?}:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Ran {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// An nmap that runs as `nobody` (for `[scan.nmap] path`), so iptables can match its packets by
/// owner.
fn nmap_as_nobody(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("nmap-as-nobody");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nexec setpriv --reuid={NMAP_UID} --regid={NMAP_UID} --clear-groups nmap \"$@\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// `N:dns,N+1:dns,…`: `n` UDP ports from `first`, each probed as DNS (one request a probe).
fn udp_ports(first: u16, n: u16) -> String {
    (first..first + n)
        .map(|p| format!("{p}:dns"))
        .collect::<Vec<_>>()
        .join(",")
}

mod rates;
mod scope;
