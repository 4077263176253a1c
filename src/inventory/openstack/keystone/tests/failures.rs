//! Failures: a slow service, odd or oversized replies, a refused connection, and secrets
//! (passwords, application-credential secrets, tokens) never shown in errors or `Debug`.

use super::*;
use std::time::Instant;

#[tokio::test]
async fn a_slow_service_times_out() {
    let f = start().await;
    let auth = password_auth(&format!("{}/v3", f.base), "alice", PASSWORD);
    let options = SessionOptions {
        timeout: Duration::from_millis(400),
        ..SessionOptions::default()
    };
    let s = Session::new(&cloud(AuthType::V3Password, auth), options).unwrap();
    s.authenticate().await.unwrap();
    let started = Instant::now();
    let e = s.get(ServiceType::Compute, "/slow", &[]).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(e.to_string().contains("/slow"), "{e}");
}

#[tokio::test]
async fn odd_replies() {
    let f = start().await;
    let s = session_for(&f);
    // Nova-style error body.
    let e = s
        .get(ServiceType::Compute, "/missing", &[])
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404));
    assert!(
        e.to_string()
            .ends_with("HTTP 404: Instance could not be found."),
        "{e}"
    );
    // Over the body cap.
    let auth = password_auth(&format!("{}/v3", f.base), "alice", PASSWORD);
    let options = SessionOptions {
        max_body_bytes: 1 << 20,
        ..SessionOptions::default()
    };
    let small = Session::new(&cloud(AuthType::V3Password, auth), options).unwrap();
    let e = small
        .get(ServiceType::Compute, "/big", &[])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "openstack_invalid_reply", "{e}");
    assert!(s.get(ServiceType::Compute, "/big", &[]).await.is_ok());
    // A path that is neither absolute nor a URL.
    let e = s
        .get(ServiceType::Compute, "servers", &[])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "openstack_invalid_reply", "{e}");
    // A token reply that is not JSON.
    f.bad_token_json.store(true, Ordering::SeqCst);
    let e = session_for(&f).authenticate().await.unwrap_err();
    assert_eq!(e.kind(), "openstack_invalid_reply", "{e}");
    assert!(e.to_string().contains("token body"), "{e}");
}

#[tokio::test]
async fn secrets_never_appear_in_errors_or_debug() {
    let f = start().await;
    // Wrong password, echoed by the server.
    let auth = password_auth(&format!("{}/v3", f.base), "echo", "wrong-PASSWORD-999");
    let s = Session::new(
        &cloud(AuthType::V3Password, auth),
        SessionOptions::default(),
    )
    .unwrap();
    let e = s.authenticate().await.unwrap_err();
    assert!(matches!(e, Error::Auth { status: 401, .. }), "{e}");
    for text in [e.to_string(), format!("{e:?}"), format!("{s:?}")] {
        assert!(!text.contains("wrong-PASSWORD-999"), "{text}");
    }
    assert!(e.to_string().contains("bad password ***"), "{e}");
    // Wrong application-credential secret.
    let auth = Auth::ApplicationCredential {
        auth_url: format!("{}/v3", f.base),
        cred: AppCredRef::Id("ac".into()),
        secret: Secret::new("wrong-SECRET-777"),
    };
    let s = Session::new(
        &cloud(AuthType::V3ApplicationCredential, auth),
        SessionOptions::default(),
    )
    .unwrap();
    let e = s.authenticate().await.unwrap_err();
    assert_eq!(e.status(), Some(401));
    assert!(!format!("{e} {e:?} {s:?}").contains("wrong-SECRET-777"));
    assert_eq!(
        f.auth_bodies.lock().unwrap().last().unwrap()["auth"].get("scope"),
        None,
        "no scope for application credentials"
    );
    // A service that echoes the token and the password.
    let s = session_for(&f);
    let e = s
        .get(ServiceType::Compute, "/leaky", &[])
        .await
        .unwrap_err();
    let token = s.current_token_for_tests().await.unwrap();
    let text = format!("{e} {e:?} {s:?}");
    assert!(text.contains("refused"), "{text}");
    assert!(!text.contains(&token), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
}

#[tokio::test]
async fn connection_refused_is_a_transport_error() {
    let port = stinger_testsupport::net::free_port("127.0.0.1");
    let auth = password_auth(&format!("http://127.0.0.1:{port}/v3"), "alice", PASSWORD);
    let s = Session::new(
        &cloud(AuthType::V3Password, auth),
        SessionOptions::default(),
    )
    .unwrap();
    let e = s.authenticate().await.unwrap_err();
    assert_eq!(e.kind(), "openstack_transport", "{e}");
    assert!(e.to_string().contains("/v3/auth/tokens"), "{e}");
    assert!(e.to_string().to_lowercase().contains("refused"), "{e}");
    assert!(!e.to_string().contains(PASSWORD));
}
