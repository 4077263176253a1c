//! Unit tests of the Keystone session against an in-process fake Keystone (axum on 127.0.0.1:0) for
//! what a real Keystone cannot easily be made to do: 401s from a service, short-lived tokens, a
//! forbidden listing, a slow or oversized reply, odd discovery documents. The real Keystone is in
//! `tests/integration/keystone.rs`.

use super::auth_body::auth_body;
use super::catalog::CatalogEntry;
use super::request::display_path;
use super::token::{parse_expiry, v3_link};
use super::*;
use crate::inventory::openstack::clouds::{
    AppCredRef, Auth, AuthType, ConfigSource, DomainRef, ProjectScope, Secret, UserRef,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

const PASSWORD: &str = "pw-SECRET-1234";
const APP_SECRET: &str = "app-SECRET-5678";
const USER_ID: &str = "u-alice";
const PROJECT_ID: &str = "p-alpha";

#[derive(Default)]
struct Fake {
    base: String,
    auth_posts: AtomicUsize,
    discovery_gets: AtomicUsize,
    service_gets: AtomicUsize,
    service_401s: AtomicUsize,
    issued: AtomicUsize,
    current: Mutex<String>,
    /// Seconds until a new token expires.
    ttl: AtomicU64,
    /// The service answers 401 to this many more requests, whatever the token.
    reject_next: AtomicUsize,
    users_forbidden: AtomicBool,
    bad_token_json: AtomicBool,
    /// Overrides the v3 `self` link of the version documents.
    versions_href: Mutex<Option<String>>,
    auth_bodies: Mutex<Vec<Value>>,
    auth_paths: Mutex<Vec<String>>,
    last_headers: Mutex<Option<HeaderMap>>,
}

type F = Arc<Fake>;

fn version_doc(f: &Fake) -> Value {
    let href = f
        .versions_href
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| format!("{}/v3/", f.base));
    json!({"id": "v3.14", "status": "stable", "links": [{"rel": "self", "href": href}]})
}

async fn root(State(f): State<F>) -> Response {
    f.discovery_gets.fetch_add(1, Ordering::SeqCst);
    let doc = json!({"versions": {"values": [
        {"id": "v2.0", "status": "deprecated", "links": [{"rel": "self", "href": format!("{}/v2.0/", f.base)}]},
        version_doc(&f)
    ]}});
    (StatusCode::MULTIPLE_CHOICES, doc.to_string()).into_response()
}

async fn v3(State(f): State<F>) -> Response {
    f.discovery_gets.fetch_add(1, Ordering::SeqCst);
    json!({"version": version_doc(&f)})
        .to_string()
        .into_response()
}

fn catalog(base: &str) -> Value {
    let ep = |interface: &str, region: &str, url: String| json!({"id": format!("{interface}-{region}"), "interface": interface, "region_id": region, "region": region, "url": url});
    json!([
        {"type": "identity", "name": "keystone", "endpoints": [ep("public", "RegionOne", format!("{base}/v3/"))]},
        {"type": "compute", "name": "nova", "endpoints": [
            ep("public", "RegionOne", format!("{base}/compute/v2.1/")),
            ep("internal", "RegionOne", format!("{base}/compute-internal/v2.1")),
            ep("public", "RegionTwo", format!("{base}/compute-two/v2.1")),
        ]},
        {"type": "network", "name": "neutron", "endpoints": [
            {"id": "n1", "interface": "public", "region": "RegionOne", "url": format!("{base}/network")}
        ]}
    ])
}

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        json!({"error": {"code": 401, "title": "Unauthorized", "message": message}}).to_string(),
    )
        .into_response()
}

async fn tokens(State(f): State<F>, uri: axum::http::Uri, body: String) -> Response {
    f.auth_posts.fetch_add(1, Ordering::SeqCst);
    f.auth_paths.lock().unwrap().push(uri.path().to_owned());
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "bad json").into_response();
    };
    f.auth_bodies.lock().unwrap().push(body.clone());
    let identity = &body["auth"]["identity"];
    let user = &identity["password"]["user"];
    let ok =
        user["password"] == PASSWORD || identity["application_credential"]["secret"] == APP_SECRET;
    if !ok {
        if user["name"] == "echo" {
            // A server that echoes what it got: the session must not pass it on.
            return unauthorized(&format!(
                "bad password {}",
                user["password"].as_str().unwrap_or("")
            ));
        }
        return unauthorized("The request you have made requires authentication.");
    }
    if f.bad_token_json.load(Ordering::SeqCst) {
        return (
            StatusCode::CREATED,
            [("x-subject-token", "tok-x")],
            "{not json",
        )
            .into_response();
    }
    let n = f.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("tok-{n}-{}", "z".repeat(20));
    *f.current.lock().unwrap() = token.clone();
    let expires = SystemTime::now() + Duration::from_secs(f.ttl.load(Ordering::SeqCst));
    let reply = json!({"token": {
        "expires_at": humantime::format_rfc3339_micros(expires).to_string(),
        "catalog": catalog(&f.base),
        "project": {"id": PROJECT_ID, "name": "alpha"},
        "user": {"id": USER_ID, "name": "alice"}
    }});
    (
        StatusCode::CREATED,
        [("x-subject-token", token)],
        reply.to_string(),
    )
        .into_response()
}

/// The service's token check: `None` lets the request through.
fn check(f: &Fake, headers: &HeaderMap) -> Option<Response> {
    f.service_gets.fetch_add(1, Ordering::SeqCst);
    *f.last_headers.lock().unwrap() = Some(headers.clone());
    let reject = f
        .reject_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    let token = headers.get("x-auth-token").and_then(|v| v.to_str().ok());
    if reject || token != Some(f.current.lock().unwrap().as_str()) {
        f.service_401s.fetch_add(1, Ordering::SeqCst);
        return Some(unauthorized(
            "The request you have made requires authentication.",
        ));
    }
    None
}

fn service(name: &'static str) -> axum::routing::MethodRouter<F> {
    get(move |State(f): State<F>, headers: HeaderMap| async move {
        match check(&f, &headers) {
            Some(denied) => denied,
            None => json!({"served_by": name}).to_string().into_response(),
        }
    })
}

async fn projects(
    State(f): State<F>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(denied) = check(&f, &headers) {
        return denied;
    }
    let reply = if q.get("page").map(String::as_str) == Some("2") {
        json!({"projects": [{"id": "p-beta", "name": "beta"}], "links": {"next": null}})
    } else {
        json!({"projects": [{"id": PROJECT_ID, "name": "alpha"}],
               "links": {"next": format!("{}/v3/projects?page=2", f.base)}})
    };
    reply.to_string().into_response()
}

async fn users(State(f): State<F>, headers: HeaderMap) -> Response {
    if let Some(denied) = check(&f, &headers) {
        return denied;
    }
    if f.users_forbidden.load(Ordering::SeqCst) {
        let body = json!({"error": {"code": 403, "message": "You are not authorized to perform the requested action: identity:list_users."}});
        return (StatusCode::FORBIDDEN, body.to_string()).into_response();
    }
    json!({"users": [{"id": USER_ID, "name": "alice"}, {"id": "u-bob", "name": "bob"}], "links": {"next": null}})
        .to_string()
        .into_response()
}

async fn start() -> F {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = Arc::new(Fake {
        base: format!("http://{addr}"),
        ttl: AtomicU64::new(3600),
        ..Fake::default()
    });
    let app = Router::new()
        .route("/", get(root))
        .route("/v3", get(v3))
        .route("/v3/", get(v3))
        .route("/v3/auth/tokens", axum::routing::post(tokens))
        .route("/v3/projects", get(projects))
        .route("/v3/users", get(users))
        .route("/compute/v2.1/servers", service("compute-public-one"))
        .route("/compute-internal/v2.1/servers", service("compute-internal-one"))
        .route("/compute-two/v2.1/servers", service("compute-public-two"))
        .route("/network/v2.0/ports", service("network"))
        .route(
            "/compute/v2.1/missing",
            get(|State(f): State<F>, h: HeaderMap| async move {
                check(&f, &h).unwrap_or_else(|| {
                    let body = json!({"itemNotFound": {"message": "Instance could not be found.", "code": 404}});
                    (StatusCode::NOT_FOUND, body.to_string()).into_response()
                })
            }),
        )
        .route(
            "/compute/v2.1/leaky",
            get(|State(f): State<F>, h: HeaderMap| async move {
                check(&f, &h).unwrap_or_else(|| {
                    let token = f.current.lock().unwrap().clone();
                    let body = json!({"badRequest": {"message": format!("token {token} with password {PASSWORD} refused")}});
                    (StatusCode::BAD_REQUEST, body.to_string()).into_response()
                })
            }),
        )
        .route(
            "/compute/v2.1/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/compute/v2.1/big",
            get(|State(f): State<F>, h: HeaderMap| async move {
                check(&f, &h).unwrap_or_else(|| vec![b'x'; 2 << 20].into_response())
            }),
        )
        .with_state(fake.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    fake
}

fn password_auth(auth_url: &str, user: &str, password: &str) -> Auth {
    Auth::Password {
        auth_url: auth_url.to_owned(),
        user: UserRef::Name {
            name: user.to_owned(),
            domain: DomainRef::Id("default".into()),
        },
        password: Secret::new(password),
        scope: Some(ProjectScope::Name {
            name: "alpha".into(),
            domain: DomainRef::Name("Default".into()),
        }),
    }
}

fn cloud(auth_type: AuthType, auth: Auth) -> CloudConfig {
    CloudConfig {
        name: "test".into(),
        source: ConfigSource::Environment,
        auth_type,
        auth,
        region: Some("RegionOne".into()),
        interface: Interface::Public,
        service_interfaces: BTreeMap::new(),
        verify: true,
        cacert: None,
        cert: None,
        key: None,
        identity_api_version: None,
        warnings: Vec::new(),
    }
}

fn session_for(f: &Fake) -> Session {
    let auth = password_auth(&format!("{}/v3", f.base), "alice", PASSWORD);
    Session::new(
        &cloud(AuthType::V3Password, auth),
        SessionOptions::default(),
    )
    .unwrap()
}

fn served_by(reply: &Reply) -> String {
    let v: Value = serde_json::from_slice(&reply.body).unwrap();
    v["served_by"].as_str().unwrap().to_owned()
}

#[test]
fn auth_bodies() {
    let by_name = auth_body(&password_auth("http://k/v3", "alice", "pw"));
    assert_eq!(
        by_name,
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user":
            {"name": "alice", "domain": {"id": "default"}, "password": "pw"}}},
            "scope": {"project": {"name": "alpha", "domain": {"name": "Default"}}}}})
    );
    let by_id = auth_body(&Auth::Password {
        auth_url: "http://k/v3".into(),
        user: UserRef::Id("u1".into()),
        password: Secret::new("pw"),
        scope: Some(ProjectScope::Id("p1".into())),
    });
    assert_eq!(
        by_id["auth"]["identity"]["password"]["user"],
        json!({"id": "u1", "password": "pw"})
    );
    assert_eq!(by_id["auth"]["scope"], json!({"project": {"id": "p1"}}));
    let unscoped = auth_body(&Auth::Password {
        auth_url: "http://k/v3".into(),
        user: UserRef::Id("u1".into()),
        password: Secret::new("pw"),
        scope: None,
    });
    assert!(unscoped["auth"].get("scope").is_none());
    let ac_id = auth_body(&Auth::ApplicationCredential {
        auth_url: "http://k/v3".into(),
        cred: AppCredRef::Id("ac1".into()),
        secret: Secret::new("s"),
    });
    assert_eq!(
        ac_id,
        json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": "ac1", "secret": "s"}}}})
    );
    let ac_name = auth_body(&Auth::ApplicationCredential {
        auth_url: "http://k/v3".into(),
        cred: AppCredRef::Name {
            name: "ac".into(),
            user: UserRef::Name {
                name: "demo".into(),
                domain: DomainRef::Name("Default".into()),
            },
        },
        secret: Secret::new("s"),
    });
    assert_eq!(
        ac_name["auth"]["identity"]["application_credential"],
        json!({"name": "ac", "secret": "s", "user": {"name": "demo", "domain": {"name": "Default"}}})
    );
    assert!(ac_name["auth"].get("scope").is_none());
}

#[test]
fn endpoint_selection() {
    let catalog: Vec<CatalogEntry> = serde_json::from_value(catalog("http://h")).unwrap();
    let pick = |service, interface, region| select_endpoint(&catalog, service, interface, region);
    assert_eq!(
        pick(ServiceType::Compute, Interface::Public, Some("RegionOne")).unwrap(),
        "http://h/compute/v2.1"
    );
    assert_eq!(
        pick(ServiceType::Compute, Interface::Internal, Some("RegionOne")).unwrap(),
        "http://h/compute-internal/v2.1"
    );
    assert_eq!(
        pick(ServiceType::Compute, Interface::Public, Some("RegionTwo")).unwrap(),
        "http://h/compute-two/v2.1"
    );
    // No region asked for: the first endpoint of that interface.
    assert_eq!(
        pick(ServiceType::Compute, Interface::Public, None).unwrap(),
        "http://h/compute/v2.1"
    );
    // Only the legacy `region` field.
    assert_eq!(
        pick(ServiceType::Network, Interface::Public, Some("RegionOne")).unwrap(),
        "http://h/network"
    );
    let e = pick(ServiceType::Compute, Interface::Admin, Some("RegionOne")).unwrap_err();
    assert_eq!(e.kind(), "openstack_no_endpoint");
    let text = e.to_string();
    assert!(
        text.contains("no admin endpoint in region \"RegionOne\""),
        "{text}"
    );
    assert!(
        text.contains("public in RegionOne, internal in RegionOne, public in RegionTwo"),
        "{text}"
    );
    let e = pick(ServiceType::Network, Interface::Internal, Some("RegionTwo")).unwrap_err();
    assert!(e.to_string().contains("public in RegionOne"), "{e}");
    let e =
        select_endpoint(&catalog[..1], ServiceType::Network, Interface::Public, None).unwrap_err();
    assert!(
        e.to_string()
            .contains("no network service; the catalog has identity"),
        "{e}"
    );
    let e = select_endpoint(&[], ServiceType::Compute, Interface::Public, None).unwrap_err();
    assert!(e.to_string().contains("unscoped"), "{e}");
}

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

#[test]
fn tls_files_are_checked_up_front() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cloud(
        AuthType::V3Password,
        password_auth("https://k.example/v3", "a", PASSWORD),
    );
    let missing = dir.path().join("missing-ca.pem");
    c.cacert = Some(missing.clone());
    let e = Session::new(&c, SessionOptions::default()).unwrap_err();
    assert_eq!(e.kind(), "openstack_config");
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );
    let empty = dir.path().join("empty-ca.pem");
    std::fs::write(&empty, "").unwrap();
    c.cacert = Some(empty.clone());
    let e = Session::new(&c, SessionOptions::default()).unwrap_err();
    assert!(e.to_string().contains("holds no PEM certificate"), "{e}");
    assert!(e.to_string().contains(&empty.display().to_string()), "{e}");
    // A real CA bundle of two certificates is accepted.
    let pem: String = (0..2)
        .map(|i| {
            stinger_testsupport::tls::Ca::new(&format!("CA {i}"))
                .pem()
                .to_owned()
        })
        .collect();
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, pem).unwrap();
    c.cacert = Some(bundle);
    Session::new(&c, SessionOptions::default()).unwrap();
    // verify: false builds too.
    c.cacert = None;
    c.verify = false;
    Session::new(&c, SessionOptions::default()).unwrap();
    // The system store.
    c.verify = true;
    Session::new(&c, SessionOptions::default()).unwrap();
}

#[test]
fn error_messages() {
    use super::http::error_message;
    let m = |body: &str, status| error_message(body.as_bytes(), status);
    assert_eq!(
        m(r#"{"itemNotFound": {"message": "gone", "code": 404}}"#, 404),
        "gone"
    );
    assert_eq!(
        m(
            r#"{"NeutronError": {"type": "X", "message": "nope", "detail": ""}}"#,
            404
        ),
        "nope"
    );
    assert_eq!(
        m(
            r#"{"error": {"code": 401, "message": "who?", "title": "Unauthorized"}}"#,
            401
        ),
        "who?"
    );
    assert_eq!(m(r#"{"message": "top"}"#, 500), "top");
    assert_eq!(
        m("<html><title>404 Not Found</title><h1>x</h1></html>", 404),
        "404 Not Found"
    );
    assert_eq!(m("", 503), "Service Unavailable");
    assert_eq!(m("  plain\n text ", 500), "plain text");
    let long = m(&"y".repeat(1000), 500);
    assert_eq!(long.chars().count(), 201);
    assert!(long.ends_with('…'));
}

#[test]
fn expiry_and_versions() {
    let t = parse_expiry("2026-11-24T12:16:17.000000Z").unwrap();
    assert_eq!(t, humantime::parse_rfc3339("2026-11-24T12:16:17Z").unwrap());
    assert_eq!(parse_expiry("2026-11-24T12:16:17+00:00"), Some(t));
    assert_eq!(parse_expiry("tomorrow"), None);
    let doc = json!({"versions": {"values": [
        {"id": "v2.0", "links": [{"rel": "self", "href": "http://k/v2.0/"}]},
        {"id": "v3.14", "links": [{"rel": "describedby", "href": "http://docs"}, {"rel": "self", "href": "http://k/v3/"}]}
    ]}});
    assert_eq!(v3_link(&doc).as_deref(), Some("http://k/v3/"));
    assert_eq!(
        v3_link(&json!({"versions": {"values": [{"id": "v2.0"}]}})),
        None
    );
    assert_eq!(display_path("http://h:1/a/b?c=d"), "/a/b?c=d");
    assert_eq!(display_path("/servers?limit=1"), "/servers?limit=1");
}

/// The TLS settings end to end, against a one-request-per-connection HTTPS fake Keystone whose
/// certificate comes from a test CA (and which can demand a client certificate from that CA).
mod tls {
    use super::*;
    use std::path::PathBuf;
    use stinger_testsupport::tls::{self, Ca};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct TlsFake {
        base: String,
        _dir: tempfile::TempDir,
        ca: PathBuf,
        other_ca: PathBuf,
        client_cert: PathBuf,
        client_key: PathBuf,
    }

    /// Answers one request per connection: any POST is a successful authentication whose catalog
    /// points back here, any GET `{"served_by": "tls"}`.
    async fn handle<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        mut conn: S,
        base: &str,
    ) {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        let head_end = loop {
            let Ok(n) = conn.read(&mut chunk).await else {
                return;
            };
            if n == 0 || buf.len() > 1 << 20 {
                return;
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + length {
            match conn.read(&mut chunk).await {
                Ok(n) if n > 0 => buf.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        }
        let (status, extra, body) = if head.starts_with("post") {
            let expires = SystemTime::now() + Duration::from_secs(3600);
            let body = json!({"token": {
                "expires_at": humantime::format_rfc3339_micros(expires).to_string(),
                "catalog": [{"type": "compute", "endpoints": [
                    {"interface": "public", "region_id": "RegionOne", "url": format!("{base}/compute")}
                ]}],
                "project": {"id": PROJECT_ID, "name": "alpha"},
                "user": {"id": USER_ID, "name": "alice"}
            }});
            ("201 Created", "x-subject-token: tls-token\r\n", body)
        } else {
            ("200 OK", "", json!({"served_by": "tls"}))
        };
        let body = body.to_string();
        let reply = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let _ = conn.write_all(reply.as_bytes()).await;
        let _ = conn.shutdown().await;
    }

    async fn start(require_client_cert: bool) -> TlsFake {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("fake keystone CA");
        let other = Ca::new("some other CA");
        let leaf = ca.server(&["127.0.0.1"]);
        let client = ca.client("stinger");
        let paths = ["ca.pem", "other-ca.pem", "client.pem", "client-key.pem"]
            .map(|name| dir.path().join(name));
        std::fs::write(&paths[0], ca.pem()).unwrap();
        std::fs::write(&paths[1], other.pem()).unwrap();
        std::fs::write(&paths[2], client.cert_pem()).unwrap();
        std::fs::write(&paths[3], client.key_pem()).unwrap();
        let config = tls::server_config(&leaf, require_client_cert.then_some(&ca));
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://{}", listener.local_addr().unwrap());
        let b = base.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let b = b.clone();
                tokio::spawn(async move {
                    if let Ok(conn) = acceptor.accept(tcp).await {
                        handle(conn, &b).await;
                    }
                });
            }
        });
        let [ca, other_ca, client_cert, client_key] = paths;
        TlsFake {
            base,
            _dir: dir,
            ca,
            other_ca,
            client_cert,
            client_key,
        }
    }

    fn tls_cloud(f: &TlsFake) -> CloudConfig {
        let auth = password_auth(&format!("{}/v3", f.base), "alice", PASSWORD);
        cloud(AuthType::V3Password, auth)
    }

    async fn try_get(c: &CloudConfig) -> Result<String, Error> {
        let s = Session::new(c, SessionOptions::default())?;
        let reply = s.get(ServiceType::Compute, "/servers", &[]).await?;
        Ok(served_by(&reply))
    }

    fn assert_tls_refused(r: Result<String, Error>) {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), "openstack_transport", "{e}");
        assert!(e.to_string().contains("/v3/auth/tokens"), "{e}");
    }

    #[tokio::test]
    async fn cacert_verify_and_system_roots() {
        let f = start(false).await;
        let mut c = tls_cloud(&f);
        c.cacert = Some(f.ca.clone());
        assert_eq!(try_get(&c).await.unwrap(), "tls");
        // Another CA, and the system store, do not know the server.
        c.cacert = Some(f.other_ca.clone());
        let e = try_get(&c).await.unwrap_err();
        assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
        assert_tls_refused(Err(e));
        c.cacert = None;
        assert_tls_refused(try_get(&c).await);
        // verify: false accepts it.
        c.verify = false;
        assert_eq!(try_get(&c).await.unwrap(), "tls");
    }

    #[tokio::test]
    async fn client_certificates() {
        let f = start(true).await;
        let mut c = tls_cloud(&f);
        c.cacert = Some(f.ca.clone());
        assert_tls_refused(try_get(&c).await);
        c.cert = Some(f.client_cert.clone());
        c.key = Some(f.client_key.clone());
        assert_eq!(try_get(&c).await.unwrap(), "tls");
        c.cacert = None;
        c.verify = false;
        assert_eq!(try_get(&c).await.unwrap(), "tls");
        // A key that is not one.
        c.key = Some(f.ca.clone());
        let e = Session::new(&c, SessionOptions::default()).unwrap_err();
        assert_eq!(e.kind(), "openstack_config");
        assert!(e.to_string().contains(&f.ca.display().to_string()), "{e}");
    }
}
