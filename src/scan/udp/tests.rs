//! Scanner tests on loopback only (127.0.110.0–127.0.119.255, ports 15000–15999): real dnsmasq,
//! snmpd and memcached; scripted responders for NTP and the other protocols, a reflector, a
//! counting sink for the rate limits; closed ports (ICMP) and dropped ones (iptables in a network
//! namespace).

use super::fake::{eventually, Behaviour, FakeServer};
use super::servers::{binary, Daemon};
use super::*;
use std::net::SocketAddr;
use stinger_testsupport::netns::{privileged, TestNs};
use tokio::time::timeout;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn settings(ports: Vec<(u16, Protocol)>) -> Settings {
    Settings {
        ports,
        concurrency: 64,
        initial_timeout: Duration::from_millis(300),
        retries: 1,
        gather: Duration::from_millis(200),
        ..Settings::default()
    }
}

/// Scan, bounded at 30 s.
async fn run(addrs: &[IpAddr], s: &Settings) -> (Output, Arc<Progress>) {
    let progress = Arc::new(Progress::default());
    let out = timeout(
        Duration::from_secs(30),
        scan(addrs, s, 4096, progress.clone(), CancellationToken::new()),
    )
    .await
    .expect("the scan finished within 30 s")
    .expect("the scan succeeded");
    (out, progress)
}

fn exposure(out: &Output, host: usize, port: usize) -> &Exposure {
    match &out.hosts[host].ports[port].status {
        Status::Open(e) => e,
        other => panic!("host {host} port {port}: expected open, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dnsmasq_forwarder_is_an_open_resolver_and_its_upstream_is_not() {
    let test = "dnsmasq_forwarder_is_an_open_resolver_and_its_upstream_is_not";
    let Some(bin) = binary("dnsmasq", "dnsmasq-base", test) else {
        return;
    };
    let (up, fwd) = (sa("127.0.110.1:15053"), sa("127.0.110.2:15053"));
    // The upstream serves only example.test and has no upstream of its own; the forwarder sends
    // everything to it, so it answers names outside its own (empty) zones: it recurses.
    let _up = Daemon::dnsmasq(&bin, up, &["--address=/example.test/127.0.0.99"]);
    let _fwd = Daemon::dnsmasq(&bin, fwd, &["--server=127.0.110.1#15053"]);
    let mut s = settings(vec![(15053, Protocol::Dns)]);
    s.dns_query_name = "probe.example.test".parse().unwrap();
    let (out, _) = run(&[fwd.ip()], &s).await;
    let e = exposure(&out, 0, 0);
    assert_eq!((e.service, e.variant), ("dns", "a-query"));
    assert_eq!(e.recursion, Some(true), "{e:?}");
    assert_eq!(e.request_bytes, 12 + 20 + 4);
    assert!(e.reply_bytes > e.request_bytes, "{e:?}");
    assert!((e.amplification - e.reply_bytes as f64 / 36.0).abs() < 1e-9);
    assert!(out.srtt[0].is_some());

    // A name outside the upstream's zone: it answers REFUSED (with RA=1), and so does the
    // forwarder. Both speak DNS to anyone (open, ~1x), neither recurses.
    s.dns_query_name = "probe.elsewhere.test".parse().unwrap();
    let (out, _) = run(&[up.ip(), fwd.ip()], &s).await;
    for h in 0..2 {
        let e = exposure(&out, h, 0);
        assert_eq!(e.recursion, Some(false), "host {h}: {e:?}");
        assert!(e.amplification < 2.0, "host {h}: {e:?}");
    }
    assert_eq!(out.counts.open, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snmpd_answers_its_community_only() {
    let test = "snmpd_answers_its_community_only";
    let Some(bin) = binary("snmpd", "snmpd", test) else {
        return;
    };
    let addr = sa("127.0.111.1:15161");
    let _snmpd = Daemon::snmpd(&bin, addr, "public");
    let s = settings(vec![(15161, Protocol::Snmp)]);
    let (out, _) = run(&[addr.ip()], &s).await;
    let e = exposure(&out, 0, 0);
    assert_eq!(e.service, "snmp");
    assert_eq!(e.answered, vec!["v2c-getbulk", "v1-get"]);
    assert_eq!(e.variant, "v2c-getbulk", "GetBulk amplifies most: {e:?}");
    assert!(e.amplification > 3.0, "{e:?}");
    assert_eq!(e.recursion, None);

    // A wrong community gets silence (an authentication failure is not answered): unknown.
    let mut wrong = s.clone();
    wrong.snmp_community = "not-the-community".to_string();
    let (out, _) = run(&[addr.ip()], &wrong).await;
    assert_eq!(out.hosts[0].ports[0].status, Status::Unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_udp_is_a_huge_amplifier() {
    let Some(bin) = binary(
        "memcached",
        "memcached",
        "memcached_udp_is_a_huge_amplifier",
    ) else {
        return;
    };
    let addr = sa("127.0.112.1:15211");
    let _memcached = Daemon::memcached(&bin, addr);
    let (out, progress) = run(&[addr.ip()], &settings(vec![(15211, Protocol::Memcached)])).await;
    let e = exposure(&out, 0, 0);
    assert_eq!(
        (e.service, e.variant, e.request_bytes),
        ("memcached", "stats", 15)
    );
    // memcached 1.6.18 answers `stats` with ~2.2 kB in 2 datagrams.
    assert!(e.reply_bytes > 1000 && e.datagrams >= 2, "{e:?}");
    assert!(e.amplification > 60.0, "{e:?}");
    assert_eq!(progress.open.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntp_reports_the_bigger_mode_and_which_answered() {
    // ntpsec can only listen on port 123 and never answers mode 7: a scripted responder stands in
    // (mode 6 READVAR text; mode 7 monlist in three datagrams of six 72-byte entries).
    let both = FakeServer::start(sa("127.0.113.1:15123"), Behaviour::Answer(Protocol::Ntp)).await;
    let only6 = FakeServer::start(
        sa("127.0.113.2:15123"),
        Behaviour::OnlyFirstByte(Protocol::Ntp, 0x16),
    )
    .await;
    let s = settings(vec![(15123, Protocol::Ntp)]);
    let (out, _) = run(&[both.addr.ip(), only6.addr.ip()], &s).await;
    let e = exposure(&out, 0, 0);
    assert_eq!(e.answered, vec!["mode6-readvar", "mode7-monlist"]);
    assert_eq!(
        (e.variant, e.request_bytes, e.datagrams),
        ("mode7-monlist", 48, 3)
    );
    assert_eq!(e.reply_bytes, 3 * (8 + 6 * 72));
    assert!((e.amplification - 1320.0 / 48.0).abs() < 1e-9, "{e:?}");
    let e = exposure(&out, 1, 0);
    assert_eq!(e.answered, vec!["mode6-readvar"]);
    assert_eq!(
        (e.variant, e.request_bytes, e.datagrams),
        ("mode6-readvar", 12, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protocol_is_found_by_its_own_responder() {
    let mut servers = Vec::new();
    let mut ports = Vec::new();
    for (i, &p) in Protocol::ALL.iter().enumerate() {
        let port = 15400 + i as u16;
        servers.push(
            FakeServer::start(
                SocketAddr::new(ip("127.0.114.1"), port),
                Behaviour::Answer(p),
            )
            .await,
        );
        ports.push((port, p));
    }
    // A duplicate pair is probed once.
    ports.push(ports[0]);
    let (out, progress) = run(&[ip("127.0.114.1")], &settings(ports)).await;
    assert_eq!(out.hosts[0].ports.len(), Protocol::ALL.len());
    for (i, &p) in Protocol::ALL.iter().enumerate() {
        let e = exposure(&out, 0, i);
        assert_eq!(e.service, p.name());
        assert!(e.amplification > 0.0 && e.reply_bytes > 0, "{p}: {e:?}");
    }
    assert_eq!(exposure(&out, 0, 0).recursion, Some(true));
    assert_eq!(out.counts.open, Protocol::ALL.len() as u64);
    assert_eq!(
        progress.total.load(Ordering::Relaxed),
        Protocol::ALL.len() as u64
    );
    assert!((progress.ratio() - 1.0).abs() < f64::EPSILON);
    // Nothing was sent anywhere but the servers' ports: each got its requests only.
    for s in &servers {
        assert!(
            s.received() >= 1 && s.received() <= 4,
            "{}: {}",
            s.addr,
            s.received()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflector_is_never_open() {
    let echo = FakeServer::start(sa("127.0.114.2:15450"), Behaviour::Echo).await;
    let ports = Protocol::ALL.iter().map(|&p| (15450, p)).collect();
    let (out, _) = run(&[echo.addr.ip()], &settings(ports)).await;
    for r in &out.hosts[0].ports {
        assert_eq!(r.status, Status::Unknown, "{}: an echo counted", r.protocol);
    }
    // Every variant was sent with its retry: the echo was seen, and ignored.
    assert_eq!(echo.received(), 2 * 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_without_listener_is_closed() {
    let s = settings(vec![(15999, Protocol::Dns), (15999, Protocol::Ntp)]);
    let (out, progress) = run(&[ip("127.0.115.1")], &s).await;
    assert_eq!(out.hosts[0].ports[0].status, Status::Closed);
    assert_eq!(out.hosts[0].ports[1].status, Status::Closed);
    assert_eq!(out.counts.closed, 2);
    assert_eq!(progress.closed.load(Ordering::Relaxed), 2);
    assert!(out.srtt[0].is_some(), "the ICMP answer is timed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_datagrams_are_unknown_and_refused_ones_closed_in_a_namespace() {
    let test = "dropped_datagrams_are_unknown_and_refused_ones_closed_in_a_namespace";
    if !privileged(test) {
        return;
    }
    let ns = TestNs::create();
    let (ok, why) = ns.exec(
        &[
            "iptables", "-A", "INPUT", "-p", "udp", "--dport", "15600", "-j", "DROP",
        ],
        false,
    );
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: iptables failed: {why}"
        );
        eprintln!("SKIPPING {test}: iptables does not work here: {why}");
        return;
    }
    let s = settings(vec![(15600, Protocol::Dns), (15601, Protocol::Dns)]);
    let progress = Arc::new(Progress::default());
    let started = Instant::now();
    // Through the prober, as a pass runs it: from the namespace, folded into observations.
    let job = crate::scan::Job {
        addresses: vec![ip("127.0.116.1")].into(),
        ports: Vec::new().into(),
        open: Vec::new().into(),
        namespace: Some(ns.path.clone()),
        fd_limit: 4096,
        progress: progress.clone(),
        cancel: CancellationToken::new(),
    };
    let out = timeout(
        Duration::from_secs(30),
        crate::scan::Prober::probe(&super::Probes(s), job),
    )
    .await
    .expect("namespace scan finished in time")
    .expect("namespace scan succeeded");
    assert_eq!(out.hosts[0].udp_unknown, [15600]);
    assert_eq!(out.hosts[0].udp_closed, [15601]);
    assert_eq!((out.counts.filtered, out.counts.closed), (1, 1));
    assert_eq!(progress.filtered.load(Ordering::Relaxed), 1);
    // Two attempts of at most the initial timeout each.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// Largest number of arrivals within any window of `window`.
fn busiest(arrivals: &[Instant], window: Duration) -> usize {
    (0..arrivals.len())
        .map(|i| {
            arrivals[i..]
                .iter()
                .take_while(|&&t| t - arrivals[i] < window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_pace_every_datagram_including_retries() {
    let a = FakeServer::start(sa("127.0.117.1:15700"), Behaviour::Count).await;
    let b = FakeServer::start(sa("127.0.117.2:15700"), Behaviour::Count).await;
    let addrs = [a.addr.ip(), b.addr.ip()];
    // 11 protocols, 13 requests, each sent twice (one retry): 26 datagrams per host.
    let mut s = settings(Protocol::ALL.iter().map(|&p| (15700, p)).collect());
    s.initial_timeout = Duration::from_millis(100);
    s.max_host_rate = 40;
    let (out, _) = run(&addrs, &s).await;
    assert_eq!(out.counts.unknown, 22);
    eventually("all datagrams", Duration::from_secs(2), || {
        a.received() == 26 && b.received() == 26
    })
    .await;
    for server in [&a, &b] {
        let arrivals = server.arrivals.lock().unwrap().clone();
        let span = arrivals[25] - arrivals[0];
        // 25 intervals of 25 ms each: at least 625 ms (generous: 500 ms).
        assert!(
            span >= Duration::from_millis(500),
            "{}: 26 datagrams in {span:?}",
            server.addr
        );
        // At most 20 in any half second; generous for a loaded test machine.
        let peak = busiest(&arrivals, Duration::from_millis(500));
        assert!(peak <= 30, "{}: {peak} datagrams in 500 ms", server.addr);
    }
    // The hosts were paced independently (in parallel), not one after the other: each one's
    // datagrams began before the other's were half done.
    let (ta, tb) = (
        a.arrivals.lock().unwrap().clone(),
        b.arrivals.lock().unwrap().clone(),
    );
    assert!(ta[0] < tb[13] && tb[0] < ta[13], "a {ta:?}\nb {tb:?}");

    // The global limit covers both hosts: 52 datagrams at 60/s take at least 850 ms.
    let (a2, b2) = (
        FakeServer::start(sa("127.0.117.3:15700"), Behaviour::Count).await,
        FakeServer::start(sa("127.0.117.4:15700"), Behaviour::Count).await,
    );
    s.max_host_rate = 0;
    s.max_rate = 60;
    let started = Instant::now();
    run(&[a2.addr.ip(), b2.addr.ip()], &s).await;
    let took = started.elapsed();
    eventually("all datagrams", Duration::from_secs(2), || {
        a2.received() == 26 && b2.received() == 26
    })
    .await;
    let mut all = a2.arrivals.lock().unwrap().clone();
    all.extend(b2.arrivals.lock().unwrap().iter());
    all.sort();
    assert!(
        all[51] - all[0] >= Duration::from_millis(700),
        "{:?}",
        all[51] - all[0]
    );
    // At most 30 in any half second (generous: 45).
    let peak = busiest(&all, Duration::from_millis(500));
    assert!(peak <= 45, "{peak} datagrams in 500 ms");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_stops_a_scan_promptly() {
    let cancel = CancellationToken::new();
    cancel.cancel();
    let s = settings(vec![(15800, Protocol::Dns)]);
    let r = scan(
        &[ip("127.0.118.1")],
        &s,
        4096,
        Arc::new(Progress::default()),
        cancel,
    )
    .await;
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");

    // Mid-scan: a silent server and long timeouts would take a minute.
    let sink = FakeServer::start(sa("127.0.118.2:15800"), Behaviour::Count).await;
    let mut s = settings(Protocol::ALL.iter().map(|&p| (15800, p)).collect());
    s.initial_timeout = Duration::from_secs(5);
    s.max_timeout = Duration::from_secs(5);
    s.retries = 3;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.cancel();
    });
    let started = Instant::now();
    let r = timeout(
        Duration::from_secs(10),
        scan(
            &[sink.addr.ip()],
            &s,
            4096,
            Arc::new(Progress::default()),
            cancel,
        ),
    )
    .await
    .expect("cancelled scan returned");
    assert!(matches!(r, Err(Error::Cancelled)), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_and_multicast_destinations_are_refused() {
    let addrs: Vec<IpAddr> = [
        "255.255.255.255",
        "224.0.0.251",
        "ff02::1",
        "::",
        "0.0.0.0",
        "::ffff:239.1.1.1",
    ]
    .iter()
    .copied()
    .map(ip)
    .collect();
    let (out, progress) = run(&addrs, &Settings::default()).await;
    assert_eq!(out.counts.refused_hosts, 6);
    assert_eq!(
        out.counts.open + out.counts.closed + out.counts.unknown + out.counts.error,
        0
    );
    assert_eq!(progress.total.load(Ordering::Relaxed), 0);
    for h in &out.hosts {
        assert!(h.refused.is_some() && h.ports.is_empty(), "{h:?}");
    }
    assert_eq!(out.hosts[0].refused, Some(Refused::Broadcast));
    assert_eq!(out.hosts[1].refused, Some(Refused::Multicast));
    assert_eq!(out.hosts[3].refused, Some(Refused::Unspecified));
    assert_eq!(refusal(ip("127.0.0.1")), None);
    assert_eq!(
        refusal(ip("10.0.0.255")),
        None,
        "directed broadcasts are left to the kernel"
    );
}

#[test]
fn defaults_cover_the_amplifier_ports() {
    let ports: Vec<u16> = DEFAULT_PORTS.iter().map(|&(p, _)| p).collect();
    assert_eq!(
        ports,
        [53, 123, 161, 11211, 1900, 389, 19, 3702, 111, 137, 5353]
    );
    for &(port, p) in DEFAULT_PORTS {
        assert_eq!(p.default_port(), port);
    }
    let s = Settings::default();
    assert_eq!(s.snmp_community, "public");
    assert_eq!(s.dns_query_name.as_str(), "example.com");
    assert_eq!(s.ports.len(), Protocol::ALL.len());
}
