//! The retention benchmark's driver (`benches/retention.sh` runs it): a long run of a changing
//! fleet through the store API on a fake clock. Each pass advances the clock by `--pass-seconds`,
//! opens or closes a port on `--change-percent` of `--hosts` hosts (events, host states and
//! findings, committed with their run as the agent does), then prunes with a retention of
//! `--retention-passes` passes. Every `--report-every` passes it prints the bytes the store
//! directory takes on disk (all files; the SST and WAL shares) and the events kept; at the end
//! whether the size stayed flat: the largest size of the last quarter of the run against the
//! largest of the second quarter (exit 1 when it grew by more than `--flat-tolerance`).
//!
//!     cargo run --release --example retention_bench -- --passes 10000 --hosts 1000
#![forbid(unsafe_code)]

use clap::Parser;
use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;
use stinger::model::{
    finding_id, Event, EventKind, Finding, FindingKind, FindingState, HostState, Outcome,
    PortFinding, Protocol, ScanRun, Severity, Stage, Verdict,
};
use stinger::store::{Commit, EventQuery, Store};

#[derive(Debug, Parser)]
struct Args {
    /// Passes to run.
    #[arg(long, env = "PASSES", default_value_t = 10_000)]
    passes: u64,
    /// Hosts in the fleet.
    #[arg(long, env = "HOSTS", default_value_t = 1_000)]
    hosts: u32,
    /// Share of hosts whose ports change each pass, in percent.
    #[arg(long, env = "CHANGE_PERCENT", default_value_t = 3.0)]
    change_percent: f64,
    /// Fake seconds between passes.
    #[arg(long, env = "PASS_SECONDS", default_value_t = 300.0)]
    pass_seconds: f64,
    /// Events, runs and resolved findings are kept this many passes.
    #[arg(long, env = "RETENTION_PASSES", default_value_t = 50)]
    retention_passes: u64,
    /// Print a line every this many passes.
    #[arg(long, env = "REPORT_EVERY", default_value_t = 500)]
    report_every: u64,
    /// Largest growth of the last quarter's peak over the second quarter's still called flat.
    #[arg(long, env = "FLAT_TOLERANCE", default_value_t = 0.25)]
    flat_tolerance: f64,
    /// The store directory (default: a new temporary directory, deleted at the end).
    #[arg(long, env = "STORE_DIR")]
    dir: Option<PathBuf>,
}

/// Bytes on disk (allocated blocks) of the files directly in `dir`: (all, SST, WAL). A file
/// deleted while it is listed counts as gone.
fn disk_bytes(dir: &Path) -> std::io::Result<(u64, u64, u64)> {
    let (mut all, mut sst, mut wal) = (0, 0, 0);
    for entry in std::fs::read_dir(dir)? {
        // RocksDB deletes obsolete WAL and SST files as it goes: one may be gone already.
        let Ok((entry, meta)) = entry.and_then(|e| e.metadata().map(|m| (e, m))) else {
            continue;
        };
        let bytes = meta.blocks() * 512;
        let name = entry.file_name().to_string_lossy().into_owned();
        all += bytes;
        if name.ends_with(".sst") {
            sst += bytes;
        } else if name.ends_with(".log") {
            wal += bytes;
        }
    }
    Ok((all, sst, wal))
}

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % u64::from(n)) as u32
    }
}

/// The fleet as the store has it: each host's open ports.
struct Fleet {
    ports: Vec<BTreeSet<u16>>,
}

/// Host `i`'s address (10.0.0.0/8), which is also its id.
fn ip(i: u32) -> std::net::IpAddr {
    std::net::Ipv4Addr::from(0x0a00_0000 | (i & 0x00ff_ffff)).into()
}

fn address(i: u32) -> String {
    ip(i).to_string()
}

fn host_state(i: u32, ports: &BTreeSet<u16>, t: f64, run: u64) -> HostState {
    HostState {
        id: address(i),
        address: ip(i),
        group: "fleet".into(),
        up: true,
        ports: ports
            .iter()
            .map(|&port| PortFinding {
                port,
                protocol: Protocol::Tcp,
                verdict: if port == 22 {
                    Verdict::Expected
                } else {
                    Verdict::Unexpected
                },
                rule: "global".into(),
                since: t,
                service: None,
                vulns: vec![],
                world: None,
                amplification: None,
                udp: None,
            })
            .collect(),
        first_seen: t,
        last_seen: t,
        last_scan: t,
        last_scan_id: run,
        udp_open_filtered: vec![],
        os: vec![],
        vulns: vec![],
        vm: None,
        exposure: None,
        answers_everything: None,
    }
}

fn event(i: u32, port: u16, opened: bool, t: f64, run: u64) -> Event {
    Event {
        time: t,
        kind: if opened {
            EventKind::PortOpened
        } else {
            EventKind::PortClosed
        },
        host: address(i),
        address: ip(i),
        group: "fleet".into(),
        port: Some(port),
        protocol: Some(Protocol::Tcp),
        verdict: Some(Verdict::Unexpected),
        rule: Some("global".into()),
        service: None,
        vuln: None,
        scan_id: run,
    }
}

fn finding(i: u32, port: u16, open: bool, t: f64) -> Finding {
    let key = format!("tcp/{port}");
    Finding {
        id: finding_id(&address(i), FindingKind::UnexpectedPort, &key),
        kind: FindingKind::UnexpectedPort,
        key,
        host: address(i),
        address: ip(i),
        group: "fleet".into(),
        vm: None,
        protocol: Some(Protocol::Tcp),
        port: Some(port),
        cve: None,
        state: if open {
            FindingState::Confirmed
        } else {
            FindingState::Resolved
        },
        severity: Severity::High,
        rule: "global".into(),
        evidence: format!("tcp/{port} open"),
        first_seen: t,
        last_seen: t,
        confirmed_at: Some(t),
        resolved_at: (!open).then_some(t),
        stale_since: None,
        occurrence: 1,
        previous: Vec::new(),
        seen: 1,
        missed: 0,
        ack: None,
        trigger: Default::default(),
        detection_latency: None,
        history: Vec::new(),
    }
}

fn run_record(t: f64, hosts: u32) -> ScanRun {
    ScanRun {
        id: 0,
        stage: Stage::Discovery,
        started: t,
        finished: None,
        outcome: Outcome::Running,
        groups: vec!["fleet".into()],
        targets: u64::from(hosts),
        ports: 100,
        probes: Default::default(),
        hosts_up: u64::from(hosts),
        open_ports: 0,
        unexpected_ports: 0,
        errors: vec![],
        request: None,
        trigger: Default::default(),
    }
}

/// One pass at time `t`: some hosts open or close a port; commit it all with the run.
fn pass(store: &Store, fleet: &mut Fleet, rng: &mut Rng, t: f64, a: &Args) -> anyhow::Result<()> {
    let mut run = store.begin_run(run_record(t, a.hosts))?;
    let changes = ((f64::from(a.hosts) * a.change_percent / 100.0).round() as u32).max(1);
    let mut changed = BTreeSet::new();
    let mut commit = Commit::default();
    for _ in 0..changes {
        let i = rng.below(a.hosts);
        let port = 8000 + rng.below(16) as u16;
        let ports = &mut fleet.ports[i as usize];
        let opened = ports.insert(port);
        if !opened {
            ports.remove(&port);
        }
        commit.events.push(event(i, port, opened, t, run.id));
        commit.findings.push(finding(i, port, opened, t));
        changed.insert(i);
    }
    commit.hosts = changed
        .iter()
        .map(|&i| host_state(i, &fleet.ports[i as usize], t, run.id))
        .collect();
    run.outcome = Outcome::Success;
    run.finished = Some(t + 1.0);
    commit.run = Some(run);
    store.commit(&commit)?;
    let keep = a.retention_passes as f64 * a.pass_seconds;
    store.prune(t - keep, t - keep)?;
    store.prune_findings(t - keep)?;
    Ok(())
}

fn main() -> ExitCode {
    match bench(&Args::parse()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("retention_bench: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn bench(a: &Args) -> anyhow::Result<bool> {
    anyhow::ensure!(
        a.hosts > 0 && a.passes >= 4,
        "need --hosts > 0 and --passes >= 4"
    );
    let temp = tempfile::tempdir()?;
    let dir = a.dir.clone().unwrap_or_else(|| temp.path().join("store"));
    let store = Store::open(&dir)?;
    // The first pass puts every host in the store with port 22 open.
    let mut fleet = Fleet {
        ports: (0..a.hosts).map(|_| BTreeSet::from([22])).collect(),
    };
    let t0 = 1.7e9;
    store.commit(&Commit {
        hosts: (0..a.hosts)
            .map(|i| host_state(i, &fleet.ports[i as usize], t0, 0))
            .collect(),
        ..Default::default()
    })?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let mut sizes = Vec::new();
    println!("pass\tseconds\tbytes\tsst_bytes\twal_bytes\tevents");
    for p in 1..=a.passes {
        let t = t0 + p as f64 * a.pass_seconds;
        pass(&store, &mut fleet, &mut rng, t, a)?;
        let (all, sst, wal) = disk_bytes(&dir)?;
        sizes.push(all);
        if p % a.report_every == 0 || p == a.passes {
            let q = EventQuery {
                limit: usize::MAX,
                ..Default::default()
            };
            let events = store.events(&q)?.len();
            println!(
                "{p}\t{:.1}\t{all}\t{sst}\t{wal}\t{events}",
                start.elapsed().as_secs_f64()
            );
        }
    }
    let quarter = sizes.len() / 4;
    let second = sizes[quarter..2 * quarter]
        .iter()
        .max()
        .copied()
        .unwrap_or(0);
    let last = sizes[3 * quarter..].iter().max().copied().unwrap_or(0);
    let growth = last as f64 / second.max(1) as f64 - 1.0;
    let flat = growth <= a.flat_tolerance;
    println!(
        "RETENTION passes={} hosts={} change={}% retention={} passes: second-quarter max {} B, last-quarter max {} B, growth {:+.1}% -> {} ({:.1} s)",
        a.passes,
        a.hosts,
        a.change_percent,
        a.retention_passes,
        second,
        last,
        growth * 100.0,
        if flat { "flat" } else { "GROWING" },
        start.elapsed().as_secs_f64()
    );
    Ok(flat)
}
