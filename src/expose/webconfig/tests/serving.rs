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
