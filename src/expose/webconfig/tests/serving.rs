//! Serving on real sockets: reloading, plain HTTP, no config at all, and shutdown.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_new_users_and_keeps_old_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let cfg = write(
        dir.path(),
        "web.yml",
        &tls_yaml("", &users_yaml(&[("alice", "a")])),
    );
    let (addr, token, handle) = start(Some(cfg.clone())).await;
    let c = client(&pki, None);
    assert_eq!(
        https(addr, c.clone(), Some(("alice", "a")))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        https(addr, c.clone(), Some(("bob", "b")))
            .await
            .unwrap()
            .status,
        401
    );

    write(
        dir.path(),
        "web.yml",
        &tls_yaml("", &users_yaml(&[("bob", "b")])),
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        https(addr, c.clone(), Some(("bob", "b")))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        https(addr, c.clone(), Some(("alice", "a")))
            .await
            .unwrap()
            .status,
        401
    );

    // A broken file is logged and ignored: bob still works.
    write(dir.path(), "web.yml", "tls_server_config:\n  typo: 1\n");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        https(addr, c.clone(), Some(("bob", "b")))
            .await
            .unwrap()
            .status,
        200
    );

    // Turning TLS off needs a restart: still TLS, still bob.
    write(dir.path(), "web.yml", &users_yaml(&[("carol", "c")]));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        https(addr, c.clone(), Some(("bob", "b")))
            .await
            .unwrap()
            .status,
        200
    );
    stop(token, handle).await;
    drop(cfg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_picks_up_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let old = pki(dir.path());
    let cfg = write(dir.path(), "web.yml", &tls_yaml("", ""));
    let (addr, token, handle) = start(Some(cfg)).await;
    assert_eq!(
        https(addr, client(&old, None), None).await.unwrap().status,
        200
    );

    // New CA, certificate and key in the same files; the config file itself is untouched.
    let new = pki(dir.path());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        https(addr, client(&new, None), None).await.unwrap().status,
        200
    );
    let e = https(addr, client(&old, None), None)
        .await
        .err()
        .unwrap_or_default();
    assert!(e.contains("invalid peer certificate"), "{e}");
    stop(token, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_with_basic_auth_and_without_config() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(dir.path(), "web.yml", &users_yaml(&[("alice", "a")]));
    let (addr, token, handle) = start(Some(cfg)).await;
    assert_eq!(http(addr, None).await.unwrap().status, 401);
    assert_eq!(http(addr, Some(("alice", "a"))).await.unwrap().status, 200);
    stop(token, handle).await;

    let (addr, token, handle) = start(None).await;
    assert_eq!(http(addr, None).await.unwrap().status, 200);
    stop(token, handle).await;

    // A bad file fails before serving.
    let bad = write(dir.path(), "bad.yml", "nonsense: true\n");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let e = serve(listener, Router::new(), Some(bad), CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("nonsense"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_keepalive_connections() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let cfg = write(dir.path(), "web.yml", &tls_yaml("", ""));
    let (addr, token, handle) = start(Some(cfg)).await;
    // An open TLS connection that sent nothing yet must not hold shutdown up.
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let _idle = tokio::time::timeout(
        WAIT,
        TlsConnector::from(client(&pki, None)).connect(name, tcp),
    )
    .await
    .unwrap()
    .unwrap();
    let started = Instant::now();
    stop(token, handle).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

/// Without a web config too: at most MAX_CONNECTIONS at once (idle ones hold their slot until the
/// header-read timeout); the next is served as soon as one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_without_a_web_config() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (addr, token, handle) = start(None).await;
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS {
        idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let mut next = tokio::net::TcpStream::connect(addr).await.unwrap();
    next.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 512];
    // Every slot is held by a silent connection: no answer yet.
    assert!(
        tokio::time::timeout(Duration::from_millis(700), next.read(&mut buf))
            .await
            .is_err(),
        "a connection past the cap was served"
    );
    // One closes: the waiting one is accepted and served.
    drop(idle.pop());
    let n = tokio::time::timeout(WAIT, next.read(&mut buf))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    drop(idle);
    stop(token, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_from_one_client_holds_one_place_in_the_bcrypt_queue() {
    let dir = tempfile::tempdir().unwrap();
    // Cost 8: a few milliseconds a check, so the flood overlaps.
    let cfg = write(
        dir.path(),
        "web.yml",
        &users_yaml_cost(&[("alice", "a")], 8),
    );
    let (addr, token, handle) = start(Some(cfg)).await;
    // 40 wrong passwords at once from 127.0.0.2 ...
    let flood: Vec<_> = (0..40)
        .map(|i| {
            tokio::spawn(async move {
                let wrong = format!("wrong-{i}");
                http_from("127.0.0.2", addr, Some(("alice", wrong.as_str())))
                    .await
                    .map(|r| (r.status, r.head))
            })
        })
        .collect();
    // ... and alice's first request from 127.0.0.3, not yet in the cache of good passwords.
    let alice = http_from("127.0.0.3", addr, Some(("alice", "a")))
        .await
        .unwrap();
    assert_eq!(alice.status, 200, "{}", alice.body);
    let mut statuses = Vec::new();
    for f in flood {
        let (status, head) = f.await.unwrap().unwrap();
        if status == 429 {
            assert!(head.contains("retry-after: 1"), "{head}");
        }
        statuses.push(status);
    }
    assert!(
        statuses.iter().all(|s| *s == 401 || *s == 429),
        "{statuses:?}"
    );
    // At most PER_CLIENT_WAITING of the flood waited, one check at a time; the rest was turned
    // away at once instead of queueing ahead of everyone else.
    let busy = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        busy >= 40 - super::super::auth::PER_CLIENT_WAITING - 4,
        "only {busy} of 40 turned away: {statuses:?}"
    );
    // Once the flood is over the client may try again (and a wrong password is still a 401).
    assert_eq!(
        http_from("127.0.0.2", addr, Some(("alice", "nope")))
            .await
            .unwrap()
            .status,
        401
    );
    stop(token, handle).await;
}
