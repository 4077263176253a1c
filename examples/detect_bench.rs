//! The detection-latency benchmark's driver (`benches/detect.sh` runs it): a fake cloud of N VMs
//! (default 10 000, generated as `fake_cloud` does) behind a real Keystone, real loopback listeners
//! behind 100 of them, and the agent inventorying and scanning it. Over `--duration` it makes
//! `--changes` exposing changes at random times — a floating IP associated with a VM that listens,
//! a VM booted with one — each stamped by the cloud's clock when made, and reads the agent's
//! confirmed findings until each change's address has one (or the grace period ends). Prints one
//! `DETECT` line: time from change to confirmed finding (p50, p95, max, missed), the requests the
//! fake Nova and Neutron served per minute during the window, and the agent's peak RSS.
//!
//!     cargo run --release --example detect_bench -- --keystone URL --admin-token T \
//!         --stinger target/release/stinger --mode incremental
//!
//! Everything listens on loopback: the fake cloud on 127.0.0.1, the VMs' floating addresses in
//! 127.202.0.0/16 (generated) and 127.206.0.0/16 (changes).
#![forbid(unsafe_code)]

use clap::Parser;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use stinger_testsupport::fake_cloud::{
    loopback_ip, uuid, Cloud, FakeCloud, FakeConfig, ServerSpec, TokenCheck,
};

#[derive(Debug, Parser)]
struct Args {
    /// Keystone's identity URL (with /v3).
    #[arg(long)]
    keystone: String,
    /// A Keystone admin token, to register the fake's endpoints.
    #[arg(long)]
    admin_token: String,
    /// The agent binary.
    #[arg(long)]
    stinger: PathBuf,
    /// `incremental`: change polls every --poll-interval; `full`: full passes only.
    #[arg(long, default_value = "incremental")]
    mode: String,
    #[arg(long, default_value_t = 10_000)]
    servers: usize,
    /// VMs listening from the start (found by the first full pass).
    #[arg(long, default_value_t = 100)]
    listeners: usize,
    /// Exposing changes made during the window.
    #[arg(long, default_value_t = 20)]
    changes: usize,
    /// The window the changes fall in, in seconds.
    #[arg(long, default_value_t = 600)]
    duration: u64,
    /// Full passes every this many seconds (the peers' model: 900).
    #[arg(long, default_value_t = 900)]
    full_interval: u64,
    /// Change polls every this many seconds (incremental mode).
    #[arg(long, default_value_t = 60)]
    poll_interval: u64,
    /// The port every listener uses (the only port scanned).
    #[arg(long, default_value_t = 19_900)]
    port: u16,
    /// Work directory (config, store, log).
    #[arg(long)]
    dir: PathBuf,
    /// Seed of the change times.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A plain-HTTP request to `url` (loopback only); the status and the JSON body.
fn http(method: &str, url: &str, token: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return (0, Value::Null);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\nContent-Type: application/json\r\n",
        body.len()
    );
    if let Some(t) = token {
        head.push_str(&format!("X-Auth-Token: {t}\r\n"));
    }
    if write!(s, "{head}\r\n{body}").is_err() {
        return (0, Value::Null);
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return (0, Value::Null);
    };
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    // Chunked bodies (the agent's API): take the JSON between the chunk sizes.
    let json = serde_json::from_str(body).unwrap_or_else(|_| {
        let start = body.find(['{', '[']).unwrap_or(0);
        let end = body.rfind(['}', ']']).map_or(body.len(), |e| e + 1);
        serde_json::from_str(&body[start..end]).unwrap_or(Value::Null)
    });
    (status, json)
}

/// Register the fake's endpoints in Keystone under `region`.
fn register(a: &Args, region: &str, compute: &str, network: &str) -> Result<(), String> {
    let ks = a.keystone.trim_end_matches('/');
    let t = Some(a.admin_token.as_str());
    let (st, _) = http(
        "POST",
        &format!("{ks}/regions"),
        t,
        Some(&json!({"region": {"id": region}})),
    );
    if st != 201 && st != 409 {
        return Err(format!("cannot create region {region}: HTTP {st}"));
    }
    let service = |kind: &str| -> Result<String, String> {
        let (_, v) = http("GET", &format!("{ks}/services?type={kind}"), t, None);
        if let Some(id) = v["services"][0]["id"].as_str() {
            return Ok(id.to_owned());
        }
        let (_, v) = http(
            "POST",
            &format!("{ks}/services"),
            t,
            Some(&json!({"service": {"type": kind, "name": kind}})),
        );
        v["service"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("cannot create the {kind} service"))
    };
    for (kind, url) in [("compute", compute), ("network", network)] {
        let id = service(kind)?;
        for interface in ["public", "internal", "admin"] {
            let body = json!({"endpoint": {"service_id": id, "interface": interface, "url": url, "region_id": region}});
            let (st, _) = http("POST", &format!("{ks}/endpoints"), t, Some(&body));
            if st != 201 {
                return Err(format!("cannot register the {kind} endpoint: HTTP {st}"));
            }
        }
    }
    Ok(())
}

/// A listener that accepts and closes, on its own thread.
fn listen(ip: IpAddr, port: u16) -> Result<(), String> {
    let l = TcpListener::bind((ip, port)).map_err(|e| format!("bind {ip}:{port}: {e}"))?;
    std::thread::spawn(move || {
        for c in l.incoming() {
            drop(c);
        }
    });
    Ok(())
}

/// xorshift: reproducible change times from the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

/// The agent's address from its log ("serving address=...").
fn agent_addr(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text.lines().find(|l| l.contains("message=serving"))?;
    Some(line.split("address=").nth(1)?.split(' ').next()?.to_owned())
}

/// Addresses with a confirmed finding, and when each was confirmed.
fn confirmed(addr: &str) -> Vec<(String, f64)> {
    let (_, v) = http(
        "GET",
        &format!("http://{addr}/api/v1/findings?state=confirmed&limit=1000"),
        None,
        None,
    );
    v["findings"]
        .as_array()
        .map(|fs| {
            fs.iter()
                .filter_map(|f| {
                    Some((
                        f["address"].as_str()?.to_owned(),
                        f["confirmed_at"].as_f64()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn peak_rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse::<f64>()
                .ok()
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

struct Agent(Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run(a: &Args) -> Result<(), String> {
    let mut cloud = Cloud::generated(a.servers)?;
    // Listeners behind the floating IPs of the first ACTIVE generated VMs (every fifth VM has one,
    // 127.202.0.1 upwards; about 1 in 23 is SHUTOFF and 1 in 97 ERROR, which are not scanned).
    let mut baseline = 0;
    for k in 0.. {
        if baseline == a.listeners || k * 5 >= a.servers {
            break;
        }
        let i = k * 5;
        if i % 97 == 5 || i % 23 == 7 {
            continue;
        }
        listen(IpAddr::V4(loopback(202, k)), a.port)?;
        baseline += 1;
    }
    let project = format!("57170000{:024x}", 0);
    cloud.set_clock(unix_now() as u64);
    let fake = FakeCloud::start(FakeConfig::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        cloud,
        TokenCheck::Keystone {
            url: a.keystone.clone(),
        },
    ))
    .map_err(|e| e.to_string())?;
    let region = format!("Detect-{}-{}", a.mode, std::process::id());
    register(a, &region, &fake.compute_url(), &fake.network_url())?;
    std::fs::create_dir_all(&a.dir).map_err(|e| e.to_string())?;
    let clouds = a.dir.join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  bench:\n    region_name: {region}\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n",
            a.keystone
        ),
    )
    .map_err(|e| e.to_string())?;
    let poll = if a.mode == "incremental" {
        a.poll_interval
    } else {
        0
    };
    let config = a.dir.join("stinger.toml");
    std::fs::write(
        &config,
        format!(
            "[schedule]\ndiscovery = \"{}s\"\njitter = \"0s\"\n\
             [scan.nmap]\nenabled = false\n[scan.udp]\nenabled = false\n\
             [scope]\nallow = [\"127.0.0.0/8\"]\n[policy]\nexpected = []\n\
             [[openstack]]\nname = \"bench\"\ncloud = \"bench\"\naddresses = \"floating\"\n\
             ports = \"{}\"\ndiagnostics = false\npoll_interval = \"{poll}s\"\n\
             [storage]\npath = \"{}\"\n[web]\nlisten_address = \"127.0.0.1:0\"\n",
            a.full_interval,
            a.port,
            a.dir.join("data").display()
        ),
    )
    .map_err(|e| e.to_string())?;
    let log_path = a.dir.join("agent.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let child = Command::new(&a.stinger)
        .arg(format!("--config.file={}", config.display()))
        .env("OS_CLIENT_CONFIG_FILE", &clouds)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("{}: {e}", a.stinger.display()))?;
    let agent = Agent(child);
    let pid = agent.0.id();
    let started = Instant::now();
    let addr = loop {
        if let Some(addr) = agent_addr(&log_path) {
            break addr;
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err("the agent did not serve within 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The first full pass: every baseline listener confirmed.
    loop {
        if confirmed(&addr).len() >= baseline {
            break;
        }
        if started.elapsed() > Duration::from_secs(600) {
            return Err(format!(
                "the first pass did not confirm {baseline} findings in 600 s; see {}",
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    eprintln!(
        "detect: {} mode: first pass confirmed {baseline} listeners after {:.0} s",
        a.mode,
        started.elapsed().as_secs_f64()
    );

    // The changes: at random times in the window, alternating kinds.
    let mut rng = Rng(a.seed.max(1));
    let mut times: Vec<f64> = (0..a.changes)
        .map(|_| rng.next() * a.duration as f64)
        .collect();
    times.sort_by(f64::total_cmp);
    let requests_before = fake.request_log().len();
    let window = Instant::now();
    let mut pending: Vec<(String, f64)> = Vec::new();
    let mut found: Vec<f64> = Vec::new();
    let mut next = 0;
    // Candidates for a floating IP: ACTIVE generated VMs without one (not every fifth).
    let mut candidates = (0..a.servers).filter(|i| i % 5 != 0 && i % 97 != 5 && i % 23 != 7);
    let grace = if a.mode == "incremental" {
        a.poll_interval as f64 * 2.0 + 60.0
    } else {
        a.full_interval as f64 + 60.0
    };
    loop {
        let t = window.elapsed().as_secs_f64();
        while next < times.len() && times[next] <= t {
            let ip = IpAddr::V4(loopback(206, next));
            listen(ip, a.port)?;
            let now = unix_now();
            let made = fake.with_cloud(|c| {
                c.set_clock(now as u64);
                if next % 2 == 0 {
                    let vm = candidates.next().ok_or("no VM left")?;
                    c.associate_floating_ip(&server_uuid(vm), ip).map(|_| ())
                } else {
                    c.add_server(
                        ServerSpec::new(
                            &format!("de7ec700-0000-4000-8000-{next:012}"),
                            &format!("booted-{next}"),
                            &project,
                        )
                        .fixed("net-p00", IpAddr::V4(loopback(207, next)))
                        .floating(ip),
                    )
                }
            });
            match made {
                Some(Ok(())) => pending.push((ip.to_string(), now)),
                Some(Err(e)) => return Err(format!("change {next}: {e}")),
                None => return Err("the fake cloud's lock is poisoned".into()),
            }
            next += 1;
        }
        if !pending.is_empty() {
            let seen = confirmed(&addr);
            pending.retain(|(ip, at)| match seen.iter().find(|(a, _)| a == ip) {
                Some((_, c)) => {
                    found.push(c - at);
                    false
                }
                None => true,
            });
        }
        let all_made = next == times.len();
        if all_made && pending.is_empty() {
            break;
        }
        if all_made && t > a.duration as f64 + grace {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let minutes = window.elapsed().as_secs_f64() / 60.0;
    let requests = fake.request_log().len().saturating_sub(requests_before);
    found.sort_by(f64::total_cmp);
    println!(
        "DETECT mode={} changes={} found={} missed={} p50={:.1} p95={:.1} max={:.1} requests_per_minute={:.1} rss_mb={:.1} window_s={:.0}",
        a.mode,
        a.changes,
        found.len(),
        pending.len(),
        percentile(&found, 0.5),
        percentile(&found, 0.95),
        found.last().copied().unwrap_or(f64::NAN),
        requests as f64 / minutes.max(1e-9),
        peak_rss_mb(pid),
        window.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The generated server `i`'s id (as `Cloud::generated` names it).
fn server_uuid(i: usize) -> String {
    uuid(1, i as u64)
}

/// 127.<second>.x.y for the k-th address (as the generated cloud numbers them).
fn loopback(second: u8, k: usize) -> Ipv4Addr {
    loopback_ip(second, k)
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("detect: {e}");
            ExitCode::FAILURE
        }
    }
}
