//! TLS on real sockets: basic auth over HTTPS and each `client_auth_type`.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let yaml = tls_yaml(
        "",
        &format!(
            "http_server_config:\n  http2: true\n  headers:\n    X-Frame-Options: deny\n{}",
            users_yaml(&[("alice", "s3cret")])
        ),
    );
    let cfg = write(dir.path(), "web.yml", &yaml);
    let (addr, token, handle) = start(Some(cfg)).await;
    let c = client(&pki, None);

    for auth in [None, Some(("alice", "wrong")), Some(("mallory", "s3cret"))] {
        let r = https(addr, c.clone(), auth).await.unwrap();
        assert_eq!(r.status, 401, "{auth:?}");
        assert!(
            r.head.contains("www-authenticate: basic realm=\"stinger\""),
            "{}",
            r.head
        );
        assert!(r.head.contains("x-frame-options: deny"), "{}", r.head);
    }
    for _ in 0..2 {
        // The second time comes from the cache.
        let r = https(addr, c.clone(), Some(("alice", "s3cret")))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.body, "Healthy\n");
        assert!(r.head.contains("x-frame-options: deny"), "{}", r.head);
    }
    // Plain HTTP to the TLS port gets no HTTP answer.
    assert!(http(addr, Some(("alice", "s3cret"))).await.is_err());
    stop(token, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_require_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let cfg = write(
        dir.path(),
        "web.yml",
        &tls_yaml(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n",
            "",
        ),
    );
    let (addr, token, handle) = start(Some(cfg)).await;
    let e = https(addr, client(&pki, None), None)
        .await
        .err()
        .unwrap_or_default();
    assert!(
        e.contains("CertificateRequired"),
        "no client cert must fail: {e}"
    );
    let stranger = client(&pki, Some((&pki.stranger_cert, &pki.stranger_key)));
    let e = https(addr, stranger, None).await.err().unwrap_or_default();
    assert!(
        e.contains("UnknownCA"),
        "a cert from another CA must fail: {e}"
    );
    let good = client(&pki, Some((&pki.client_cert, &pki.client_key)));
    assert_eq!(https(addr, good, None).await.unwrap().status, 200);
    stop(token, handle).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_if_given_and_require_any() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let stranger = || client(&pki, Some((&pki.stranger_cert, &pki.stranger_key)));

    let cfg = write(
        dir.path(),
        "web.yml",
        &tls_yaml(
            "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.pem\n",
            "",
        ),
    );
    let (addr, token, handle) = start(Some(cfg)).await;
    assert_eq!(
        https(addr, client(&pki, None), None).await.unwrap().status,
        200
    );
    let e = https(addr, stranger(), None)
        .await
        .err()
        .unwrap_or_default();
    assert!(e.contains("UnknownCA"), "{e}");
    stop(token, handle).await;

    let cfg = write(
        dir.path(),
        "web.yml",
        &tls_yaml("  client_auth_type: RequireAnyClientCert\n", ""),
    );
    let (addr, token, handle) = start(Some(cfg)).await;
    let e = https(addr, client(&pki, None), None)
        .await
        .err()
        .unwrap_or_default();
    assert!(e.contains("CertificateRequired"), "{e}");
    // Not verified against any CA (Go's RequireAnyClientCert), but the key must match.
    assert_eq!(https(addr, stranger(), None).await.unwrap().status, 200);
    stop(token, handle).await;
}
