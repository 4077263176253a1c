//! Unit tests of the Keystone session against an in-process fake Keystone (axum on 127.0.0.1:0) for
//! what a real Keystone cannot easily be made to do: 401s from a service, short-lived tokens, a
//! forbidden listing, a slow or oversized reply, odd discovery documents. The real Keystone is in
//! `tests/integration/keystone.rs`.
//!
//! This module holds the fake Keystone and the shared helpers; the tests are in the topic modules.

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

mod authentication;
mod failures;
mod pure_helpers;
mod requests;
mod tls;

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
