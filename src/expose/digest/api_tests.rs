//! `GET /api/v1/digest` through the real router on a loopback socket, over findings built by the
//! fixtures and a real store holding the recipients' last digests: the first digest's summary, the
//! window from the stored time or from `since`, one project's findings, and 400s naming the
//! parameter.

use super::fixtures::{finding, on_vm, view, with, T0};
use crate::expose::{router, Shared};
use crate::model::FindingEventKind as K;
use crate::model::FindingKind::UnexpectedPort;
use crate::model::FindingState::Confirmed;
use crate::model::Severity::High;
use crate::state::State;
use crate::store::Store;
use serde_json::Value;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serve the fixtures' findings (one on acme's VM confirmed at T0 + 10, one on a CIDR host
/// confirmed at T0 + 20); the store and its directory are handed back for marks.
async fn serve() -> (std::net::SocketAddr, Store, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let state = Arc::new(State::default());
    *state.write() = view(vec![
        on_vm(
            with(
                finding(1, UnexpectedPort, High, Confirmed),
                &[(K::Confirmed, T0 + 10.0)],
            ),
            "i-1",
            "web-1",
            ("acme", "p-acme"),
        ),
        with(
            finding(2, UnexpectedPort, High, Confirmed),
            &[(K::Confirmed, T0 + 20.0)],
        ),
    ]);
    let shared = Arc::new(Shared {
        state,
        store: store.clone(),
        registry: prometheus_client::registry::Registry::default(),
        telemetry_path: "/metrics".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(shared)).await });
    (addr, store, dir)
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let status = raw[9..12].parse().unwrap();
    let body = raw.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn ids(v: &Value, section: &str) -> Vec<String> {
    v[section]
        .as_array()
        .unwrap_or_else(|| panic!("no {section} in {v}"))
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_digest_endpoint_serves_what_the_next_mail_would_say() {
    let (addr, store, _dir) = serve().await;
    let acme = finding(1, UnexpectedPort, High, Confirmed).id;
    let cidr = finding(2, UnexpectedPort, High, Confirmed).id;

    // No digest went out yet: the first digest's summary.
    let (status, d) = get(addr, "/api/v1/digest").await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["first"], true, "{d}");
    assert!(d["since"].is_null());
    assert_eq!(ids(&d, "top").len(), 2);
    assert_eq!(d["min_cvss"], 7.0);

    // After a digest to the admins at T0 + 15: only what came after.
    store.set_digest_last_sent(None, T0 + 15.0).unwrap();
    let (_, d) = get(addr, "/api/v1/digest").await;
    assert_eq!(d["since"], T0 + 15.0);
    assert_eq!(ids(&d, "confirmed"), [cidr.as_str()]);
    assert_eq!(d["confirmed"][0]["api"], format!("/api/v1/findings/{cidr}"));
    // `since` wins over the stored time.
    let (_, d) = get(addr, &format!("/api/v1/digest?since={T0}")).await;
    assert_eq!(ids(&d, "confirmed").len(), 2);

    // A project's digest: its own window (none yet: a summary) and only its findings, by name or id.
    let (_, d) = get(addr, "/api/v1/digest?project=acme").await;
    assert_eq!(
        (d["first"].clone(), d["project"].clone()),
        (true.into(), "acme".into())
    );
    assert_eq!(ids(&d, "top"), [acme.as_str()]);
    let (_, d) = get(addr, "/api/v1/digest?project=p-acme&since=0").await;
    assert_eq!(ids(&d, "confirmed"), [acme]);
    assert_eq!(d["confirmed"][0]["vm"]["user"], "alice");

    for (path, parameter) in [
        ("/api/v1/digest?min_cvss=11", "min_cvss"),
        ("/api/v1/digest?since=soon", "since"),
        ("/api/v1/digest?project=", "project"),
        ("/api/v1/digest?vm=x", "vm"),
    ] {
        let (status, body) = get(addr, path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
    }
}
