//! The UDP stage through the real agent: a real memcached with UDP on and a real recursive dnsmasq
//! (forwarding to a second dnsmasq that owns a zone) on loopback, found by the native probes on
//! every target (no TCP port open there), judged by the policy (unexpected unless a rule says so),
//! stored with `port_opened`/`port_closed` history (protocol `udp`), shown in `/metrics` with the
//! amplification factor and the open resolver, and in the API's port records. Stopping memcached
//! (ICMP port unreachable) closes its port.

use crate::util::*;
use serde_json::Value;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const HOST: &str = "127.0.93.1";
const UPSTREAM: &str = "127.0.93.2";

/// A server killed (and reaped) when dropped; its output goes to a file for the failure message.
struct Daemon {
    child: Child,
    log: tempfile::NamedTempFile,
    name: String,
}

impl Daemon {
    /// Whether it still runs, else its exit status and output.
    fn health(&mut self) -> String {
        match self.child.try_wait() {
            Ok(None) => format!("{} runs", self.name),
            other => format!(
                "{} ended ({other:?}): {}",
                self.name,
                std::fs::read_to_string(self.log.path()).unwrap_or_default()
            ),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn daemon(bin: &str, package: &str, args: &[&str]) -> Daemon {
    let log = tempfile::NamedTempFile::new().unwrap();
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{bin} is needed (Debian package {package}; .ci/run installs it): {e}")
        });
    Daemon {
        child,
        log,
        name: format!("{bin} {}", args.join(" ")),
    }
}

/// Whether something has bound UDP `port` on `ip` (from /proc/net/udp, without sending to it).
fn udp_bound(ip: &str, port: u16) -> bool {
    let ip: std::net::Ipv4Addr = ip.parse().unwrap();
    let key = format!("{:08X}:{:04X}", u32::from_ne_bytes(ip.octets()), port);
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| t.contains(&key))
}

fn port(host: &Value, n: u64) -> Option<&Value> {
    host["ports"]
        .as_array()?
        .iter()
        .find(|p| p["port"] == n && p["protocol"] == "udp")
}

#[test]
fn udp_amplifiers_and_open_resolvers_are_found_judged_stored_and_exposed() {
    let memcached = daemon(
        "/usr/bin/memcached",
        "memcached",
        &["-U", "15211", "-p", "0", "-l", HOST, "-u", "root"],
    );
    let mut memcached = memcached;
    let mut upstream = daemon(
        "/usr/sbin/dnsmasq",
        "dnsmasq-base",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--port=15354",
            &format!("--listen-address={UPSTREAM}"),
            "--bind-interfaces",
            "--no-resolv",
            "--address=/example.com/127.0.93.99",
        ],
    );
    let mut resolver = daemon(
        "/usr/sbin/dnsmasq",
        "dnsmasq-base",
        &[
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--port=15353",
            &format!("--listen-address={HOST}"),
            "--bind-interfaces",
            "--no-resolv",
            &format!("--server={UPSTREAM}#15354"),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !(udp_bound(HOST, 15211) && udp_bound(HOST, 15353) && udp_bound(UPSTREAM, 15354)) {
        assert!(
            std::time::Instant::now() < deadline,
            "the UDP servers did not bind in 20 s: {}; {}; {}",
            memcached.health(),
            upstream.health(),
            resolver.health()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[[targets]]\nname = \"udp\"\ncidrs = [\"{HOST}\"]\nports = \"20900\"\n\
             [schedule]\ndiscovery = \"2s\"\njitter = \"0s\"\n\
             [scan.udp]\nports = \"15211:memcached,15353:dns,15161:snmp\"\n"
        ),
    );
    let agent = Agent::start(&config);
    let vm = wait_for("the UDP findings", Duration::from_secs(60), || {
        let (status, body) = agent.get(&format!("/api/v1/vms/{HOST}"));
        let v: Value = serde_json::from_str(&body).ok()?;
        let host = &v["vm"];
        (status == 200 && port(host, 15211).is_some() && port(host, 15353).is_some())
            .then(|| host.clone())
    });
    let mc = port(&vm, 15211).unwrap();
    assert_eq!(mc["verdict"], "unexpected", "{mc}");
    assert_eq!(mc["udp"]["service"], "memcached", "{mc}");
    assert_eq!(mc["service"]["name"], "memcached", "{mc}");
    let amp = mc["amplification"].as_f64().unwrap();
    assert!(amp > 10.0, "memcached stats amplifies: {mc}");
    let dns = port(&vm, 15353).unwrap();
    assert_eq!(dns["udp"]["recursion"], true, "an open resolver: {dns}");
    // Nothing on 15161: ICMP port unreachable, no port.
    assert!(port(&vm, 15161).is_none(), "{vm}");

    let m = agent.metrics();
    let series = |name: &str, port: &str| {
        m.lines()
            .find(|l| l.starts_with(name) && l.contains(&format!("port=\"{port}\"")))
            .map(str::to_owned)
    };
    let ratio = series("stinger_udp_amplification_ratio{", "15211").expect(&m);
    assert!(ratio.contains("service=\"memcached\""), "{ratio}");
    assert!(
        series("stinger_dns_open_resolver{", "15353").is_some(),
        "{m}"
    );
    assert!(
        series("stinger_open_port_info{", "15211")
            .is_some_and(|l| l.contains("protocol=\"udp\"") && l.contains("expected=\"false\"")),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            &format!("stinger_host_unexpected_ports{{host=\"{HOST}\",group=\"udp\"}}")
        ),
        Some(2.0),
        "{m}"
    );

    // memcached stops: the next pass gets ICMP port unreachable and closes the port.
    drop(memcached);
    wait_for("memcached's port to close", Duration::from_secs(60), || {
        let (_, body) = agent.get(&format!("/api/v1/vms/{HOST}"));
        let v: Value = serde_json::from_str(&body).ok()?;
        port(&v["vm"], 15211).is_none().then_some(())
    });
    let changes = agent.json("/api/v1/changes?limit=200");
    let events: Vec<(String, u64, String)> = changes["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["protocol"] == "udp")
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or_default().to_owned(),
                e["port"].as_u64().unwrap_or(0),
                e["protocol"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    for want in [
        ("port_opened", 15211),
        ("port_opened", 15353),
        ("port_closed", 15211),
    ] {
        assert!(
            events.iter().any(|(k, p, _)| k == want.0 && *p == want.1),
            "{want:?} in {changes}"
        );
    }
}
