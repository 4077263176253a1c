//! Real nmap against silent ports: batch and host timeouts, a failed batch beside a good one,
//! and cancellation; killed nmaps must not outlive their batch.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_timeout_kills_nmap() {
    let dir = tempfile::tempdir().unwrap();
    let (path, marker) = marked_nmap(dir.path());
    let (_l, port) = silent("127.0.70.5");
    let s = Settings {
        path,
        version_intensity: 9,
        host_timeout: Duration::ZERO,
        batch_timeout: Duration::from_secs(1),
        ..settings()
    };
    let progress = Arc::new(Progress::default());
    let started = std::time::Instant::now();
    let (hosts, errors) = run(
        &[job("127.0.70.5", &[port])],
        &s,
        &caps(true),
        progress.clone(),
        CancellationToken::new(),
    )
    .await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(hosts.is_empty());
    assert!(
        matches!(&errors[..], [Error::Timeout { hosts, .. }] if hosts == &[ip("127.0.70.5")]),
        "{errors:?}"
    );
    assert!(errors[0].to_string().contains("127.0.70.5"));
    assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 1);
    assert_eq!(live_processes(&marker), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_does_not_affect_others() {
    let (_l, slow) = silent("127.0.70.6");
    let fast = serve("127.0.70.7", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
    let s = Settings {
        batch_hosts: 1,
        host_timeout: Duration::ZERO,
        batch_timeout: Duration::from_secs(4),
        ..settings()
    };
    let progress = Arc::new(Progress::default());
    let jobs = [job("127.0.70.6", &[slow]), job("127.0.70.7", &[fast])];
    let (hosts, errors) = tokio::time::timeout(
        LIMIT,
        run(
            &jobs,
            &s,
            &caps(true),
            progress.clone(),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?} {errors:?}");
    assert_eq!(hosts[0].address, ip("127.0.70.7"));
    assert_eq!(hosts[0].tcp[0].port, fast);
    assert!(matches!(&errors[..], [Error::Timeout { .. }]), "{errors:?}");
    assert_eq!(progress.batches_done.load(Ordering::Relaxed), 2);
    assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_timeout_is_an_error_not_an_empty_host() {
    let (_l, port) = silent("127.0.70.8");
    let s = Settings {
        host_timeout: Duration::from_secs(1),
        ..settings()
    };
    let (hosts, errors) = tokio::time::timeout(
        LIMIT,
        run(
            &[job("127.0.70.8", &[port])],
            &s,
            &caps(true),
            Arc::new(Progress::default()),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    assert!(hosts.is_empty(), "{hosts:?}");
    assert!(
        matches!(&errors[..], [Error::HostTimeout { address, .. }] if *address == ip("127.0.70.8")),
        "{errors:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancellation_kills_nmap_promptly() {
    let dir = tempfile::tempdir().unwrap();
    let (path, marker) = marked_nmap(dir.path());
    let (_l, port) = silent("127.0.70.9");
    let s = Settings {
        path,
        batch_hosts: 1,
        parallel_batches: 1,
        host_timeout: Duration::ZERO,
        ..settings()
    };
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(1)).await;
        trigger.cancel();
    });
    let jobs = [job("127.0.70.9", &[port]), job("127.0.70.10", &[port])];
    let started = std::time::Instant::now();
    let caps = caps(true);
    let run = run(&jobs, &s, &caps, Arc::new(Progress::default()), cancel);
    let mut run = std::pin::pin!(run);
    // nmap really was running before the cancel.
    let seen = tokio::select! {
        _ = &mut run => panic!("finished before the cancel"),
        _ = tokio::time::sleep(Duration::from_millis(700)) => live_processes(&marker),
    };
    assert_eq!(seen.len(), 1, "{seen:?}");
    let (hosts, errors) = run.await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(hosts.is_empty());
    assert!(matches!(&errors[..], [Error::Cancelled]), "{errors:?}");
    assert_eq!(live_processes(&marker), Vec::<String>::new());
}
