//! Tests of one discovery pass: scanning units (in network namespaces too), nmap's service
//! detection matched back by (namespace, address), and what the pass returns.

use super::*;
use crate::model::Protocol;
use crate::scan;
use crate::scan::netns::testns::BannerServer;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use stinger_testsupport::netns::{fresh_id, privileged, TestNs};
use tokio::time::timeout;

/// Longest a services stage may take in these tests.
const LIMIT: Duration = Duration::from_secs(90);
/// nmap's NULL probe matches these at once: ssh, OpenSSH, version "9.2p1 Debian 2" (nmap 7.93
/// folds the Debian revision into the version).
const SSH_92: &[u8] = b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n";
const SSH_84: &[u8] = b"SSH-2.0-OpenSSH_8.4p1 Debian-5\r\n";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

async fn nmap_settings() -> (nmap::Settings, nmap::Capabilities) {
    let settings = nmap::Settings {
        path: "/usr/bin/nmap".into(),
        stats_every: Duration::from_secs(1),
        ..nmap::Settings::default()
    };
    let caps = nmap::probe_nmap(&settings).await.unwrap();
    (settings, caps)
}

fn observed(id: &str, address: IpAddr, open: &[u16], ns: Option<&Path>) -> Observed {
    Observed {
        target: Target {
            id: id.into(),
            ..Target::address(address, "g")
        },
        obs: HostObservation {
            open: open.to_vec(),
            ..HostObservation::default()
        },
        namespace: ns.map(Arc::from),
        answers_everything: false,
    }
}

/// The services stage over `observed`, nmap its one identifying prober.
fn identify<'a>(
    observed: &'a mut [Observed],
    settings: &nmap::Settings,
    caps: &nmap::Capabilities,
    progress: Arc<nmap::Progress>,
    cancel: &'a CancellationToken,
) -> impl std::future::Future<Output = ServicesReport> + 'a {
    let identify: Vec<Arc<dyn scan::Prober>> = vec![Arc::new(nmap::Services::new(
        settings.clone(),
        caps.clone(),
        progress,
    ))];
    async move { services(observed, &identify, cancel).await }
}

/// The services stage over `observed`, bounded by [`LIMIT`].
async fn run_services(
    observed: &mut [Observed],
    settings: &nmap::Settings,
    caps: &nmap::Capabilities,
    progress: &Arc<nmap::Progress>,
) -> ServicesReport {
    let cancel = CancellationToken::new();
    let stage = identify(observed, settings, caps, progress.clone(), &cancel);
    timeout(LIMIT, stage)
        .await
        .expect("services finished in time")
}

/// The (name, product, version) nmap gave a port of an observation.
fn service(o: &Observed, port: u16) -> Option<(String, String, String)> {
    o.obs
        .services
        .iter()
        .find(|(proto, p, _)| *proto == Protocol::Tcp && *p == port)
        .map(|(_, _, s)| {
            let f = |v: &Option<String>| v.clone().unwrap_or_default();
            (f(&s.name), f(&s.product), f(&s.version))
        })
}

fn ssh(version: &str) -> Option<(String, String, String)> {
    Some(("ssh".into(), "OpenSSH".into(), version.into()))
}

/// Connect from this (the root) namespace and read what the server says first.
async fn banner_here(addr: IpAddr, port: u16) -> String {
    use tokio::io::AsyncReadExt;
    let mut s = timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((addr, port)),
    )
    .await
    .expect("connected in time")
    .expect("connected");
    let mut buf = vec![0u8; 256];
    let n = timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("banner in time")
        .expect("read the banner");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_identified_from_each_hosts_own_namespace() {
    if !privileged("services_are_identified_from_each_hosts_own_namespace") {
        return;
    }
    let ns = TestNs::create();
    let addr = ip("127.0.91.7");
    // The same address and port in both namespaces, different servers behind them.
    let root = BannerServer::start(None, addr, 0, SSH_84).await;
    let port = root.port;
    let _inside = BannerServer::start(Some(&ns.path), addr, port, SSH_92).await;
    assert_eq!(
        banner_here(addr, port).await.trim_end(),
        "SSH-2.0-OpenSSH_8.4p1 Debian-5",
        "the root namespace must not reach the namespace's server"
    );

    let (settings, caps) = nmap_settings().await;
    let progress = Arc::new(nmap::Progress::default());
    let mut observed = vec![
        observed("vm-a/port-a/127.0.91.7", addr, &[port], Some(&ns.path)),
        observed("127.0.91.7", addr, &[port], None),
    ];
    let started = Instant::now();
    let report = run_services(&mut observed, &settings, &caps, &progress).await;
    eprintln!("nmap in two namespaces took {:.1?}", started.elapsed());
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.hosts, report.covered), (2, 2));
    assert_eq!(
        service(&observed[0], port),
        ssh("9.2p1 Debian 2"),
        "the namespaced target: {:?}",
        observed[0].obs
    );
    assert_eq!(
        service(&observed[1], port),
        ssh("8.4p1 Debian 5"),
        "the same address in the agent's namespace: {:?}",
        observed[1].obs
    );
    assert!(observed.iter().all(|o| o.obs.services_known));
    assert!(observed.iter().all(|o| o.obs.services.len() == 1));
    assert_all_batches_done(&progress, 2, 0);
}

/// Every one of `total` nmap batches done, `failed` of them failed, and progress at 100 %.
fn assert_all_batches_done(progress: &nmap::Progress, total: u64, failed: u64) {
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    assert_eq!(
        (
            load(&progress.batches_total),
            load(&progress.batches_done),
            load(&progress.failed_batches)
        ),
        (total, total, failed)
    );
    assert_eq!(progress.percent(), 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_identifies_services_inside_a_tenant_namespace() {
    if !privileged("a_pass_identifies_services_inside_a_tenant_namespace") {
        return;
    }
    let ns = TestNs::create();
    let addr = ip("127.0.91.8");
    // Only the namespace has a server: from the root namespace the port is closed.
    let inside = BannerServer::start(Some(&ns.path), addr, 0, SSH_92).await;
    let port = inside.port;
    let refused = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::new(addr, port),
        Duration::from_secs(2),
    );
    assert_eq!(
        refused.as_ref().map_err(std::io::Error::kind).err(),
        Some(std::io::ErrorKind::ConnectionRefused),
        "root namespace connect to {addr}:{port}: {refused:?}"
    );

    let mut config = crate::config::load(None, &Default::default()).unwrap();
    config.groups.clear();
    // The test's "cloud" addresses are on loopback, which [scope] refuses from an API unless
    // allowed.
    config.scope.allow = vec!["127.0.0.0/8".parse().unwrap()];
    let (settings, caps) = nmap_settings().await;
    config.nmap = Some(settings);
    let ports = crate::ports::PortList::parse(&port.to_string()).unwrap();
    let unit = |ns: Option<&Path>, id: &str| Unit {
        group: "cloud".into(),
        namespace: ns.map(Path::to_path_buf),
        targets: vec![Target {
            id: id.into(),
            ..Target::address(addr, "cloud")
        }],
        ports: ports.clone(),
        origin: Origin::Api,
    };
    let cloud = ToScan {
        units: vec![
            unit(None, "vm-b/port-b/127.0.91.8"),
            unit(Some(&ns.path), "vm-a/port-a/127.0.91.8"),
        ],
        ..ToScan::default()
    };
    let ctx = Context {
        fd_limit: 4096,
        nmap: Some(&caps),
        progress: Arc::new(Progress::default()),
        nmap_progress: Arc::new(nmap::Progress::default()),
        cancel: CancellationToken::new(),
        focus: None,
    };
    let pass = timeout(
        LIMIT,
        discovery(&config, new_run(&config), &BTreeMap::new(), cloud, ctx),
    )
    .await
    .expect("the pass finished in time");
    assert_eq!(pass.run.outcome, Outcome::Success, "{:?}", pass.run.errors);
    let report = pass.services.as_ref().expect("services ran");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!((report.hosts, report.covered), (1, 1));
    let host = |id: &str| {
        pass.hosts
            .iter()
            .find(|h| h.id == id)
            .unwrap_or_else(|| panic!("no state for {id}: {:?}", pass.hosts))
    };
    let inside_host = host("vm-a/port-a/127.0.91.8");
    assert_eq!(
        inside_host.ports.iter().map(|p| p.port).collect::<Vec<_>>(),
        [port]
    );
    let svc = inside_host.ports[0].service.as_ref().expect("a service");
    assert_eq!(
        (
            svc.name.as_deref(),
            svc.product.as_deref(),
            svc.version.as_deref()
        ),
        (Some("ssh"), Some("OpenSSH"), Some("9.2p1 Debian 2")),
        "{svc:?}"
    );
    assert!(
        svc.cpes.iter().any(|c| c == "cpe:/a:openbsd:openssh:9.2p1"),
        "{svc:?}"
    );
    // The agent's own namespace found the port closed: no state, or one without ports.
    let outside = pass.hosts.iter().find(|h| h.id == "vm-b/port-b/127.0.91.8");
    assert!(outside.is_none_or(|h| h.ports.is_empty()), "{outside:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_nmap_cannot_enter_costs_only_its_hosts() {
    // Needs no privileges: the namespace file is missing, so nothing is ever entered.
    let root = BannerServer::start(None, ip("127.0.91.9"), 0, SSH_92).await;
    let port = root.port;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("qdhcp-present"), b"").unwrap();
    let name = format!("qdhcp-{}", fresh_id());
    let missing = dir.path().join(&name);
    let (settings, caps) = nmap_settings().await;
    // One batch per host: the namespace has two, and is reported once either way (its second
    // batch skipped, or failing alongside the first).
    for parallel_batches in [1, 3] {
        let settings = nmap::Settings {
            batch_hosts: 1,
            parallel_batches,
            ..settings.clone()
        };
        let progress = Arc::new(nmap::Progress::default());
        let mut observed = vec![
            observed(
                "vm-a/p/127.0.91.9",
                ip("127.0.91.9"),
                &[port],
                Some(&missing),
            ),
            observed(
                "vm-b/p/127.0.91.10",
                ip("127.0.91.10"),
                &[port],
                Some(&missing),
            ),
            observed("127.0.91.9", ip("127.0.91.9"), &[port], None),
        ];
        let report = run_services(&mut observed, &settings, &caps, &progress).await;
        assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
        let (kind, message) = &report.errors[0];
        assert_eq!(*kind, "netns_missing");
        assert!(
            message.contains(&format!("cannot run nmap in network namespace {name}"))
                && message.contains("keep what discovery found")
                && message.contains("available: qdhcp-present"),
            "{message}"
        );
        assert_eq!((report.hosts, report.covered), (3, 1));
        // The agent's own host was identified; the namespace's kept discovery's result.
        assert_eq!(service(&observed[2], port), ssh("9.2p1 Debian 2"));
        assert!(observed[2].obs.services_known);
        for o in &observed[..2] {
            assert!(!o.obs.services_known && o.obs.services.is_empty(), "{o:?}");
            assert_eq!(o.obs.open, [port]);
        }
        assert_all_batches_done(&progress, 3, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_nmap_inside_a_namespace_promptly() {
    if !privileged("cancelling_stops_nmap_inside_a_namespace_promptly") {
        return;
    }
    let ns = TestNs::create();
    let addr = ip("127.0.91.11");
    // A port that accepts and never answers: nmap's probes wait out their timeouts.
    let silent = BannerServer::start(Some(&ns.path), addr, 0, b"").await;
    let (settings, caps) = nmap_settings().await;
    let progress = Arc::new(nmap::Progress::default());
    let cancel = CancellationToken::new();
    let mut observed = vec![observed("vm", addr, &[silent.port], Some(&ns.path))];
    let stage = identify(&mut observed, &settings, &caps, progress.clone(), &cancel);
    let cancelled_at = async {
        // Let nmap get going inside the namespace, then stop it.
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids_in(&ns.name).await.is_empty() {
            assert!(Instant::now() < deadline, "nmap never ran in the namespace");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        cancel.cancel();
        Instant::now()
    };
    let (report, cancelled_at) = timeout(LIMIT, async { tokio::join!(stage, cancelled_at) })
        .await
        .expect("services finished in time");
    let took = cancelled_at.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "stopped {took:?} after the cancel"
    );
    let kinds: Vec<&str> = report.errors.iter().map(|(k, _)| *k).collect();
    assert_eq!(kinds, ["cancelled"], "{:?}", report.errors);
    assert_eq!(report.covered, 0);
    assert!(!observed[0].obs.services_known);
    // nmap was killed: nothing runs in the namespace any more.
    assert_eq!(pids_in(&ns.name).await, Vec::<String>::new());
}

/// Processes in the named namespace (`ip netns pids`): nmap, while it runs there.
async fn pids_in(name: &str) -> Vec<String> {
    let out = timeout(
        Duration::from_secs(10),
        tokio::process::Command::new("ip")
            .args(["netns", "pids", name])
            .output(),
    )
    .await
    .expect("ip netns pids finished in time")
    .expect("ran ip netns pids");
    assert!(out.status.success(), "ip netns pids {name}: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

/// A unit of one CIDR target on `address` scanning `ports`.
fn unit_of(address: IpAddr, ports: &str) -> Unit {
    Unit {
        group: "g".into(),
        namespace: None,
        targets: vec![Target::address(address, "g")],
        ports: crate::ports::PortList::parse(ports).unwrap(),
        origin: Origin::Config,
    }
}

#[tokio::test]
async fn changed_ports_are_re_probed_both_ways() {
    // 18901 listens (newly open: confirmed); 18902 was "seen open" by the scan but nothing listens
    // (a blip: dropped); 18903 was open last time and listens but the scan missed it (recovered);
    // 18904 was open last time and nothing listens (gone).
    let address = ip("127.89.0.1");
    let l1 = std::net::TcpListener::bind("127.89.0.1:18901").unwrap();
    let l3 = std::net::TcpListener::bind("127.89.0.1:18903").unwrap();
    let unit = unit_of(address, "18901,18902,18903,18904");
    let mut prev = BTreeMap::new();
    let mut before = crate::judge::judge_host(
        &unit.targets[0],
        &HostObservation {
            open: vec![18903, 18904],
            ..HostObservation::default()
        },
        None,
        &judge::Policy::default(),
        1,
        1.0,
    )
    .state
    .unwrap();
    before.up = true;
    prev.insert(before.id.clone(), before);
    let mut out = scan::tcp::Output {
        hosts: vec![HostObservation {
            open: vec![18901, 18902],
            closed: 2,
            ..HostObservation::default()
        }],
        counts: ProbeCounts::default(),
        srtt: vec![None],
    };
    let settings = scan::TcpSettings {
        initial_timeout: Duration::from_millis(300),
        max_timeout: Duration::from_millis(300),
        retries: 0,
        ..scan::TcpSettings::default()
    };
    let counts = timeout(
        Duration::from_secs(20),
        reprobe::unit(
            &unit,
            &[address],
            &mut out,
            &prev,
            &settings,
            4096,
            &CancellationToken::new(),
        ),
    )
    .await
    .expect("re-probes finish");
    assert_eq!(
        counts,
        reprobe::Counts {
            confirmed: 1,
            transient: 1,
            recovered: 1,
            gone: 1
        }
    );
    assert_eq!(out.hosts[0].open, [18901, 18903]);
    // A host that answered nothing is not re-probed (it is unreachable, not closed).
    let mut silent = scan::tcp::Output {
        hosts: vec![HostObservation {
            filtered: 4,
            ..HostObservation::default()
        }],
        counts: ProbeCounts::default(),
        srtt: vec![None],
    };
    let counts = reprobe::unit(
        &unit,
        &[address],
        &mut silent,
        &prev,
        &settings,
        4096,
        &CancellationToken::new(),
    )
    .await;
    assert_eq!(counts, reprobe::Counts::default());
    drop((l1, l3));
}

/// The registry: TCP and UDP discover, nmap identifies, and nmap is there only when it can run.
#[test]
fn the_registry_puts_each_scanner_in_its_phase() {
    let config = crate::config::load(None, &Default::default()).unwrap();
    assert!(
        config.udp.is_some() && config.nmap.is_some(),
        "the embedded default"
    );
    let caps = nmap::Capabilities {
        version: "7.93".into(),
        privileged: false,
        root: false,
    };
    let named = |probers: &[Arc<dyn scan::Prober>]| -> Vec<(&'static str, Phase)> {
        probers.iter().map(|p| (p.name(), p.phase())).collect()
    };
    let all = probers(&config, Some((&caps, Arc::default())));
    assert_eq!(
        named(&all),
        [
            ("tcp", Phase::Discover),
            ("udp", Phase::Discover),
            ("nmap", Phase::Identify)
        ]
    );
    assert_eq!(
        named(&of_phase(&all, Phase::Identify)),
        [("nmap", Phase::Identify)]
    );
    assert!(all
        .iter()
        .filter(|p| p.discovers())
        .map(|p| p.name())
        .eq(["tcp"]));
    // nmap missing or too old: discovery goes on without it.
    let without = probers(&config, None);
    assert_eq!(
        named(&without),
        [("tcp", Phase::Discover), ("udp", Phase::Discover)]
    );
}
