//! Tokens over a session's life: one re-authentication after a 401, renewal before expiry,
//! one authentication shared by concurrent callers, and version discovery for `password`.

use super::*;

#[tokio::test]
async fn one_reauthentication_after_a_401() {
    let f = start().await;
    let s = session_for(&f);
    s.authenticate().await.unwrap();
    let first = s.current_token_for_tests().await.unwrap();
    f.reject_next.store(1, Ordering::SeqCst);
    let reply = s.get(ServiceType::Compute, "/servers", &[]).await.unwrap();
    assert_eq!(served_by(&reply), "compute-public-one");
    assert_eq!(f.auth_posts.load(Ordering::SeqCst), 2);
    assert_eq!(f.service_401s.load(Ordering::SeqCst), 1);
    assert_ne!(s.current_token_for_tests().await.unwrap(), first);
}

#[tokio::test]
async fn a_second_401_is_an_error() {
    let f = start().await;
    let s = session_for(&f);
    f.reject_next.store(100, Ordering::SeqCst);
    let e = s
        .get(ServiceType::Compute, "/servers", &[])
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert_eq!(e.kind(), "openstack_status");
    assert!(e.to_string().contains("requires authentication"), "{e}");
    assert_eq!(
        f.auth_posts.load(Ordering::SeqCst),
        2,
        "exactly one re-authentication"
    );
    assert_eq!(f.service_gets.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_token_near_expiry_is_renewed_before_the_request() {
    let f = start().await;
    f.ttl.store(60, Ordering::SeqCst); // less than the 120 s margin
    let s = session_for(&f);
    s.get(ServiceType::Compute, "/servers", &[]).await.unwrap();
    let first = s.current_token_for_tests().await.unwrap();
    s.get(ServiceType::Compute, "/servers", &[]).await.unwrap();
    assert_eq!(f.auth_posts.load(Ordering::SeqCst), 2);
    assert_ne!(s.current_token_for_tests().await.unwrap(), first);
    assert_eq!(
        f.service_401s.load(Ordering::SeqCst),
        0,
        "renewed before, not after a 401"
    );

    // A long-lived token is kept.
    let f = start().await;
    let s = session_for(&f);
    for _ in 0..3 {
        s.get(ServiceType::Compute, "/servers", &[]).await.unwrap();
    }
    assert_eq!(f.auth_posts.load(Ordering::SeqCst), 1);

    // The margin is an option.
    let f = start().await;
    let auth = password_auth(&format!("{}/v3", f.base), "alice", PASSWORD);
    let options = SessionOptions {
        refresh_before: Duration::from_secs(7200),
        ..SessionOptions::default()
    };
    let s = Session::new(&cloud(AuthType::V3Password, auth), options).unwrap();
    for _ in 0..3 {
        s.get(ServiceType::Compute, "/servers", &[]).await.unwrap();
    }
    assert_eq!(f.auth_posts.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_one_authentication() {
    let f = start().await;
    let s = Arc::new(session_for(&f));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.get(ServiceType::Compute, "/servers", &[])
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(f.auth_posts.load(Ordering::SeqCst), 1);
    // A 401 seen by several callers at once also gives one new token.
    f.reject_next.store(4, Ordering::SeqCst);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.get(ServiceType::Compute, "/servers", &[])
                .await
                .map(|_| ())
        }));
    }
    for t in tasks {
        let _ = t.await.unwrap();
    }
    let posts = f.auth_posts.load(Ordering::SeqCst);
    assert!((2..=5).contains(&posts), "{posts} authentications");
}

#[tokio::test]
async fn generic_password_discovers_the_version() {
    let f = start().await;
    // auth_url without /v3: GET / lists v3 → POST /v3/auth/tokens.
    let auth = password_auth(&f.base, "alice", PASSWORD);
    let s = Session::new(&cloud(AuthType::Password, auth), SessionOptions::default()).unwrap();
    s.authenticate().await.unwrap();
    assert_eq!(f.discovery_gets.load(Ordering::SeqCst), 1);
    assert_eq!(*f.auth_paths.lock().unwrap(), ["/v3/auth/tokens"]);
    // Discovery happens once per session.
    f.reject_next.store(1, Ordering::SeqCst);
    s.get(ServiceType::Compute, "/servers", &[]).await.unwrap();
    assert_eq!(f.discovery_gets.load(Ordering::SeqCst), 1);
    assert_eq!(f.auth_posts.load(Ordering::SeqCst), 2);

    // auth_url with /v3: GET /v3 gives the version itself.
    let auth = password_auth(&format!("{}/v3/", f.base), "alice", PASSWORD);
    let s = Session::new(&cloud(AuthType::Password, auth), SessionOptions::default()).unwrap();
    s.authenticate().await.unwrap();
    assert_eq!(f.discovery_gets.load(Ordering::SeqCst), 2);

    // A document naming another host is not followed: the password stays with auth_url.
    *f.versions_href.lock().unwrap() = Some("http://127.0.0.2:9/v3/".into());
    let auth = password_auth(&f.base, "alice", PASSWORD);
    let s = Session::new(&cloud(AuthType::Password, auth), SessionOptions::default()).unwrap();
    s.authenticate().await.unwrap();
    assert_eq!(f.discovery_gets.load(Ordering::SeqCst), 3);
    assert_eq!(
        f.auth_paths.lock().unwrap().last().unwrap(),
        "/v3/auth/tokens"
    );
}
