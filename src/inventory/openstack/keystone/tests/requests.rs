//! Where requests go: the catalog endpoint for the cloud's region and interface, identity
//! paths with and without `/v3`, paged name listings (and a 403 fallback), absolute URLs.

use super::*;

#[tokio::test]
async fn requests_go_to_the_selected_endpoint() {
    let f = start().await;
    let s = session_for(&f);
    let reply = s
        .get(
            ServiceType::Compute,
            "/servers",
            &[("OpenStack-API-Version", "compute 2.96")],
        )
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(served_by(&reply), "compute-public-one");
    let headers = f.last_headers.lock().unwrap().clone().unwrap();
    assert_eq!(headers["openstack-api-version"], "compute 2.96");
    assert_eq!(headers["accept"], "application/json");
    assert_eq!(s.project_id().as_deref(), Some(PROJECT_ID));
    assert_eq!(s.project_name().as_deref(), Some("alpha"));
    assert_eq!(s.user_id().as_deref(), Some(USER_ID));
    assert!(s.token_expires_at().unwrap() > SystemTime::now() + Duration::from_secs(3000));
    let reply = s
        .get(ServiceType::Network, "/v2.0/ports", &[])
        .await
        .unwrap();
    assert_eq!(served_by(&reply), "network");
    assert_eq!(f.auth_posts.load(Ordering::SeqCst), 1);
    assert_eq!(
        f.discovery_gets.load(Ordering::SeqCst),
        0,
        "v3password does not discover"
    );

    // Region and per-service interface of the cloud.
    let mut c = cloud(
        AuthType::V3Password,
        password_auth(&format!("{}/v3", f.base), "alice", PASSWORD),
    );
    c.region = Some("RegionTwo".into());
    let s2 = Session::new(&c, SessionOptions::default()).unwrap();
    let reply = s2.get(ServiceType::Compute, "/servers", &[]).await.unwrap();
    assert_eq!(served_by(&reply), "compute-public-two");
    let e = s2
        .get(ServiceType::Network, "/v2.0/ports", &[])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "openstack_no_endpoint", "{e}");
    c.region = Some("RegionOne".into());
    c.service_interfaces
        .insert("compute".into(), Interface::Internal);
    let s3 = Session::new(&c, SessionOptions::default()).unwrap();
    let reply = s3.get(ServiceType::Compute, "/servers", &[]).await.unwrap();
    assert_eq!(served_by(&reply), "compute-internal-one");
}

#[tokio::test]
async fn names_follow_pages_and_fall_back_on_403() {
    let f = start().await;
    let s = session_for(&f);
    let projects = s.project_names().await.unwrap();
    assert!(projects.complete);
    assert_eq!(projects.map.len(), 2);
    assert_eq!(projects.map["p-beta"], "beta");
    let users = s.user_names().await.unwrap();
    assert!(users.complete);
    assert_eq!(users.map["u-bob"], "bob");

    f.users_forbidden.store(true, Ordering::SeqCst);
    let users = s.user_names().await.unwrap();
    assert!(!users.complete);
    assert_eq!(
        users.map,
        HashMap::from([(USER_ID.to_owned(), "alice".to_owned())])
    );
}

#[tokio::test]
async fn identity_paths_with_and_without_v3() {
    let f = start().await;
    let s = session_for(&f);
    // The identity endpoint is `<base>/v3/`: `/v3/users` and `/users` both reach `/v3/users`.
    for path in ["/v3/users", "/users"] {
        let reply = s.get(ServiceType::Identity, path, &[]).await.unwrap();
        let v: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["users"].as_array().unwrap().len(), 2, "{path}");
    }
}

#[tokio::test]
async fn absolute_urls_only_to_known_origins() {
    let f = start().await;
    let s = session_for(&f);
    s.authenticate().await.unwrap();
    let before = f.service_gets.load(Ordering::SeqCst);
    for url in [
        "http://127.0.0.2:9/compute/v2.1/servers",
        "https://127.0.0.1/x",
    ] {
        let e = s.get(ServiceType::Compute, url, &[]).await.unwrap_err();
        assert_eq!(e.kind(), "openstack_invalid_reply", "{e}");
        assert!(e.to_string().contains("not sent there"), "{e}");
        let Error::Invalid { path, .. } = &e else {
            panic!("{e}")
        };
        assert!(path.starts_with('/'), "no host in the path: {path}");
    }
    assert_eq!(f.service_gets.load(Ordering::SeqCst), before);
    let same = format!("{}/compute/v2.1/servers?limit=1", f.base);
    let reply = s.get(ServiceType::Compute, &same, &[]).await.unwrap();
    assert_eq!(served_by(&reply), "compute-public-one");
}
