//! Tests of entering network namespaces and scanning from one; those that create namespaces need
//! root (CAP_SYS_ADMIN) and say so when skipped.

use super::*;
use crate::scan::Error as ScanError;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::Ordering;
use std::time::Instant;
use stinger_testsupport::netns::{cap_eff_has, privileged, TestNs, CAP_SYS_ADMIN};
use tokio::time::timeout;

const LISTEN_ADDR: [u8; 4] = [127, 0, 90, 7];
const BLACKHOLE_ADDR: &str = "127.0.90.8";

fn settings() -> tcp::Settings {
    tcp::Settings {
        concurrency: 64,
        initial_timeout: Duration::from_millis(500),
        ..tcp::Settings::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_in_namespace_sees_what_the_root_namespace_cannot() {
    if !privileged("scan_in_namespace_sees_what_the_root_namespace_cannot") {
        return;
    }
    let ns = TestNs::create();
    let addr = IpAddr::from(LISTEN_ADDR);

    // A listener inside the namespace, kept open until `stop`.
    let stop = CancellationToken::new();
    let (port_tx, port_rx) = oneshot::channel();
    let stop_listener = stop.clone();
    let listener = tokio::spawn(spawn_in(&ns.path, move || async move {
        let l = tokio::net::TcpListener::bind((addr, 0)).await?;
        let _ = port_tx.send(l.local_addr()?.port());
        loop {
            tokio::select! {
                _ = stop_listener.cancelled() => break,
                r = l.accept() => { drop(r); }
            }
        }
        Ok::<(), io::Error>(())
    }));
    let port = match timeout(Duration::from_secs(10), port_rx).await {
        Ok(Ok(port)) => port,
        other => {
            let why = timeout(Duration::from_secs(5), listener).await;
            panic!("the listener did not start in the namespace: {other:?}; {why:?}");
        }
    };
    let other = if port == u16::MAX { port - 1 } else { port + 1 };

    // Nothing listens there in the root namespace.
    let root = std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::new(addr, port),
        Duration::from_secs(2),
    );
    assert_eq!(
        root.as_ref().map_err(io::Error::kind).err(),
        Some(io::ErrorKind::ConnectionRefused),
        "root namespace connect to {addr}:{port}: {root:?}"
    );

    let progress = Arc::new(Progress::default());
    let inside = timeout(
        Duration::from_secs(30),
        scan_in(
            &ns.path,
            vec![addr],
            vec![port, other],
            settings(),
            4096,
            progress.clone(),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("namespace scan finished in time")
    .expect("namespace scan succeeded");
    assert_eq!(inside.hosts[0].open, vec![port]);
    assert_eq!(inside.hosts[0].closed, 1);
    assert_eq!(inside.counts.open, 1);
    assert_eq!(progress.done.load(Ordering::Relaxed), 2);

    let outside = timeout(
        Duration::from_secs(30),
        tcp::scan(
            &[addr],
            &[port, other],
            &settings(),
            4096,
            Arc::new(Progress::default()),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("root scan finished in time")
    .expect("root scan succeeded");
    assert!(outside.hosts[0].open.is_empty(), "{outside:?}");
    assert_eq!(outside.hosts[0].closed, 2);

    stop.cancel();
    let done = timeout(Duration::from_secs(10), listener)
        .await
        .expect("listener thread stopped in time")
        .expect("listener task joined");
    assert!(matches!(done, Ok(Ok(()))), "{done:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thread_and_its_children_are_in_the_namespace() {
    if !privileged("thread_and_its_children_are_in_the_namespace") {
        return;
    }
    let ns = TestNs::create();
    let want = format!("net:[{}]", std::fs::metadata(&ns.path).unwrap().ino());
    let got = timeout(
        Duration::from_secs(20),
        spawn_in(&ns.path, || async {
            let thread = std::fs::read_link("/proc/thread-self/ns/net")?;
            let child = tokio::process::Command::new("/bin/sh")
                .args(["-c", "readlink /proc/self/ns/net"])
                .output()
                .await?;
            let name = std::thread::current().name().map(str::to_string);
            Ok::<_, io::Error>((
                thread.to_string_lossy().into_owned(),
                String::from_utf8_lossy(&child.stdout).trim().to_string(),
                name,
            ))
        }),
    )
    .await
    .expect("namespace thread finished in time")
    .expect("entered the namespace")
    .expect("read the namespace links");
    let (thread, child, name) = got;
    assert_eq!(thread, want, "the namespace thread's own network namespace");
    assert_eq!(
        child, want,
        "a child process spawned from the namespace thread"
    );
    assert_eq!(name, Some(format!("netns-{}", ns.name)));
    // The caller's thread stayed where it was.
    let here = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    assert_ne!(here.to_string_lossy(), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_stops_a_scan_in_the_namespace_promptly() {
    if !privileged("cancelling_stops_a_scan_in_the_namespace_promptly") {
        return;
    }
    let ns = TestNs::create();
    // Drop SYNs to one address inside the namespace so probes hang until their timeout.
    let (blackholed, stderr) = ns.exec(
        &[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "tcp",
            "-d",
            BLACKHOLE_ADDR,
            "-j",
            "DROP",
        ],
        false,
    );
    let (ports, settings): (Vec<u16>, _) = if blackholed {
        let slow = tcp::Settings {
            concurrency: 64,
            initial_timeout: Duration::from_secs(10),
            min_timeout: Duration::from_secs(10),
            max_timeout: Duration::from_secs(10),
            retries: 0,
            ..tcp::Settings::default()
        };
        ((1..=200).collect(), slow)
    } else {
        eprintln!("iptables unusable in the namespace ({stderr}); cancelling a long loopback scan instead");
        ((1..=u16::MAX).collect(), settings())
    };
    let total = ports.len() as u64;
    let progress = Arc::new(Progress::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(scan_in(
        &ns.path,
        vec![BLACKHOLE_ADDR.parse().unwrap()],
        ports,
        settings,
        4096,
        progress.clone(),
        cancel.clone(),
    ));
    // Wait until the scan has started in the namespace thread.
    let deadline = Instant::now() + Duration::from_secs(10);
    while progress.total.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the scan never started");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    cancel.cancel();
    let t = Instant::now();
    let r = timeout(Duration::from_secs(5), task)
        .await
        .expect("cancelled scan returned in time")
        .expect("scan task joined");
    assert!(matches!(r, Err(ScanError::Cancelled)), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(progress.done.load(Ordering::Relaxed) < total);
    if blackholed {
        assert_eq!(progress.open.load(Ordering::Relaxed), 0);
        assert_eq!(progress.closed.load(Ordering::Relaxed), 0);
    }
}

#[tokio::test]
async fn missing_namespace_is_named_with_the_ones_there_are() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("qrouter-r1"), b"").unwrap();
    std::fs::write(dir.path().join("qdhcp-n2"), b"").unwrap();
    let path = dir.path().join("qdhcp-nope");
    let r = timeout(
        Duration::from_secs(10),
        scan_in(
            &path,
            vec![IpAddr::from(LISTEN_ADDR)],
            vec![1],
            settings(),
            4096,
            Arc::new(Progress::default()),
            CancellationToken::new(),
        ),
    )
    .await
    .expect("returned in time");
    let Err(ScanError::Namespace(e)) = r else {
        panic!("expected a namespace error, got {r:?}");
    };
    assert_eq!(e.kind(), "netns_missing");
    let Error::Missing {
        name, available, ..
    } = &e
    else {
        panic!("expected Missing, got {e:?}");
    };
    assert_eq!(name, "qdhcp-nope");
    assert_eq!(available, &["qdhcp-n2", "qrouter-r1"]);
    let msg = e.to_string();
    assert!(
        msg.contains("qdhcp-nope") && msg.contains("qdhcp-n2, qrouter-r1"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_plain_file_is_not_a_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("qdhcp-plain");
    std::fs::write(&path, b"").unwrap();
    let r = timeout(Duration::from_secs(10), spawn_in(&path, || async { 1 }))
        .await
        .expect("returned in time");
    match r {
        Err(e @ Error::NotANamespace { .. }) => {
            assert_eq!(e.kind(), "netns_enter");
            assert!(e.to_string().contains("ip netns del qdhcp-plain"), "{e}");
        }
        other => panic!("expected NotANamespace, got {other:?}"),
    }
}

#[test]
fn names_are_validated() {
    for good in [
        "qdhcp-0b5a1c2d-3e4f-5a6b-7c8d-9e0f1a2b3c4d",
        "qrouter-x_y.z",
        ".hidden",
        "a",
        &"x".repeat(255),
    ] {
        assert!(validate_name(good).is_ok(), "{good}");
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "../etc",
        "/run/netns/x",
        "a b",
        "qdhcp-ä",
        "x\0y",
        &"x".repeat(256),
    ] {
        let e = validate_name(bad).unwrap_err();
        assert_eq!(e.kind(), "netns_invalid_name", "{bad:?}");
    }
}

#[test]
fn listing_is_sorted_and_skips_odd_entries() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["qrouter-b", "qdhcp-a", "has space", "qdhcp-c"] {
        std::fs::write(dir.path().join(n), b"").unwrap();
    }
    assert_eq!(
        list_namespaces(dir.path()),
        vec!["qdhcp-a", "qdhcp-c", "qrouter-b"]
    );
    assert!(list_namespaces(&dir.path().join("absent")).is_empty());
    let many: Vec<String> = (0..25).map(|i| format!("qrouter-{i:02}")).collect();
    let listed = list_or_none(&many);
    assert!(
        listed.starts_with("qrouter-00, ") && listed.ends_with("qrouter-19, and 5 more"),
        "{listed}"
    );
    assert_eq!(list_or_none(&[]), "none");
}

#[test]
fn cap_eff_is_parsed() {
    let root = "Name:\tstinger\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
    let net_admin_only = "Name:\tstinger\nCapPrm:\t0000000000203000\nCapEff:\t0000000000001000\n";
    let sys_admin_only = "CapEff:  0000000000200000\n";
    let none = "Name:\tstinger\nCapEff:\t0000000000000000\n";
    assert_eq!(cap_eff_has(root, CAP_SYS_ADMIN), Some(true));
    assert_eq!(cap_eff_has(net_admin_only, CAP_SYS_ADMIN), Some(false));
    assert_eq!(cap_eff_has(net_admin_only, 12), Some(true));
    assert_eq!(cap_eff_has(sys_admin_only, CAP_SYS_ADMIN), Some(true));
    assert_eq!(cap_eff_has(sys_admin_only, 13), Some(false));
    assert_eq!(cap_eff_has(none, CAP_SYS_ADMIN), Some(false));
    assert_eq!(
        cap_eff_has("Name:\tx\nCapPrm:\t0000000000200000\n", 21),
        None
    );
    assert_eq!(cap_eff_has("CapEff:\tzz\n", 21), None);
    assert_eq!(cap_eff_has(root, 64), Some(false));
}
