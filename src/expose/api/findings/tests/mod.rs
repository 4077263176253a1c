//! The findings API through the real router on loopback sockets, over a view of five findings and a
//! real store. Here: the fixtures, the server (plain, or behind the web config's middleware) and a
//! small client; [`reads`] has the list and the detail, [`writes`] the acknowledgement endpoints.

mod reads;
mod writes;

use crate::expose::{router, webconfig, Shared};
use crate::model::{
    Ack, AckSource, AddressKind, Finding, FindingEvent, FindingEventKind, FindingKind,
    FindingState, Protocol, Severity, VmLink,
};
use crate::state::State;
use crate::store::Store;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

const T0: f64 = 1_764_000_000.0;
const DAY: Duration = Duration::from_secs(86_400);

/// Ids chosen so that id order differs from the list's order (most severe first).
const CRIT: &str = "00000000000000c1";
const HIGH_VM: &str = "00000000000000a2";
const HIGH_RESOLVED: &str = "00000000000000b4";
const MEDIUM: &str = "0000000000000003";
const LOW_STALE: &str = "00000000000000f5";

fn finding(id: &str, n: u8, kind: FindingKind, severity: Severity, state: FindingState) -> Finding {
    let port = 8000 + u16::from(n);
    let mut f = Finding {
        id: id.into(),
        kind,
        key: format!("tcp/{port}"),
        host: format!("10.0.0.{n}"),
        address: std::net::IpAddr::from([10, 0, 0, n]),
        group: "lab".into(),
        vm: None,
        protocol: Some(Protocol::Tcp),
        port: Some(port),
        cve: None,
        state,
        severity,
        rule: "default".into(),
        evidence: format!("tcp/{port} open"),
        first_seen: T0,
        last_seen: T0 + 100.0,
        confirmed_at: (state != FindingState::Open).then_some(T0 + 1.0),
        resolved_at: (state == FindingState::Resolved).then_some(T0 + 50.0),
        stale_since: (state == FindingState::Stale).then_some(T0 + 60.0),
        occurrence: 1,
        previous: Vec::new(),
        seen: 1,
        missed: 0,
        ack: None,
        trigger: Default::default(),
        detection_latency: None,
        history: Vec::new(),
    };
    event(&mut f, FindingEventKind::Opened, T0);
    f
}

fn event(f: &mut Finding, kind: FindingEventKind, time: f64) {
    f.record(FindingEvent {
        time,
        kind,
        occurrence: f.occurrence,
        by: None,
        detail: None,
        scan_id: Some(1),
    });
}

fn on_vm(mut f: Finding, vm: &str, name: &str, project: (&str, &str)) -> Finding {
    f.host = format!("{vm}/port-1/{}", f.address);
    f.vm = Some(VmLink {
        vm_id: vm.into(),
        vm_name: name.into(),
        project_id: project.1.into(),
        project_name: Some(project.0.into()),
        port_id: Some("port-1".into()),
        kind: AddressKind::Floating,
        network: "public".into(),
        namespace: None,
    });
    f
}

fn api_ack(by: &str, source: AckSource) -> Ack {
    Ack {
        source,
        by: by.into(),
        reason: "accepted".into(),
        at: T0 + 5.0,
        expires: 4e9,
        owner: None,
        severity: Severity::High,
    }
}

/// Five findings, one of each state and kind, two on cloud VMs.
fn findings() -> Vec<Finding> {
    let mut crit = finding(
        CRIT,
        1,
        FindingKind::UnexpectedPort,
        Severity::Critical,
        FindingState::Confirmed,
    );
    event(&mut crit, FindingEventKind::Confirmed, T0 + 10.0);
    let mut vm = on_vm(
        finding(
            HIGH_VM,
            2,
            FindingKind::WorldOpen,
            Severity::High,
            FindingState::Confirmed,
        ),
        "vm-a",
        "web-1",
        ("demo", "p-1"),
    );
    vm.address = std::net::IpAddr::from([10, 1, 0, 2]);
    vm.port = Some(22);
    vm.ack = Some(api_ack("bob", AckSource::Api));
    event(&mut vm, FindingEventKind::Acknowledged, T0 + 20.0);
    let mut resolved = on_vm(
        finding(
            HIGH_RESOLVED,
            4,
            FindingKind::Vulnerability,
            Severity::High,
            FindingState::Resolved,
        ),
        "vm-b",
        "db-1",
        ("ops", "p-2"),
    );
    resolved.port = Some(22);
    resolved.cve = Some("CVE-2023-38408".into());
    resolved.key = "CVE-2023-38408@tcp/22".into();
    event(&mut resolved, FindingEventKind::Resolved, T0 + 50.0);
    let mut medium = finding(
        MEDIUM,
        3,
        FindingKind::Amplifier,
        Severity::Medium,
        FindingState::Open,
    );
    medium.address = std::net::IpAddr::from([192, 168, 1, 3]);
    medium.protocol = Some(Protocol::Udp);
    let mut low = finding(
        LOW_STALE,
        5,
        FindingKind::SgNotEnforced,
        Severity::Low,
        FindingState::Stale,
    );
    low.ack = Some(api_ack("legacy-app", AckSource::Config));
    event(&mut low, FindingEventKind::Stale, T0 + 60.0);
    vec![crit, vm, resolved, medium, low]
}

/// The list's order of the fixtures: severity, then id.
const ALL: [&str; 5] = [CRIT, HIGH_VM, HIGH_RESOLVED, MEDIUM, LOW_STALE];

/// How the server is reached: the router alone (no web config), or through the web config's
/// middleware with the given YAML.
enum Web {
    Plain,
    Config(String),
}

struct Api {
    addr: SocketAddr,
    state: Arc<State>,
    store: Store,
    _stop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

async fn serve(web: Web) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let state = Arc::new(State::default());
    {
        let mut v = state.write();
        v.max_ack = 90 * DAY;
        v.findings = findings().into_iter().map(|f| (f.id.clone(), f)).collect();
    }
    let shared = Arc::new(Shared {
        state: state.clone(),
        store: store.clone(),
        registry: prometheus_client::registry::Registry::default(),
        telemetry_path: "/metrics".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let config = match web {
        Web::Plain => None,
        Web::Config(yaml) => {
            let path = dir.path().join("web.yml");
            std::fs::write(&path, yaml).unwrap();
            Some(path)
        }
    };
    tokio::spawn(webconfig::serve(
        listener,
        router(shared),
        config,
        token.clone(),
    ));
    Api {
        addr,
        state,
        store,
        _stop: token.drop_guard(),
        _dir: dir,
    }
}

fn users() -> String {
    format!(
        "basic_auth_users:\n  alice: '{}'\n  bob: '{}'\n",
        bcrypt::hash("a-secret", 4).unwrap(),
        bcrypt::hash("b-secret", 4).unwrap()
    )
}

const ALICE: &str = "Basic YWxpY2U6YS1zZWNyZXQ="; // alice:a-secret
const BOB: &str = "Basic Ym9iOmItc2VjcmV0"; // bob:b-secret

const JSON: (&str, &str) = ("Content-Type", "application/json");

impl Api {
    /// Send a request (path as written); the status and the JSON body (`Null` if none).
    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, Value) {
        let exchange = async {
            let mut c = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            let mut req = format!(
                "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
                body.len()
            );
            for (k, v) in headers {
                req.push_str(&format!("{k}: {v}\r\n"));
            }
            req.push_str("\r\n");
            let mut raw = req.into_bytes();
            raw.extend_from_slice(body);
            c.write_all(&raw).await.unwrap();
            let mut out = Vec::new();
            // A server that refuses a body early may reset the connection after answering.
            let _ = c.read_to_end(&mut out).await;
            out
        };
        let raw = tokio::time::timeout(Duration::from_secs(20), exchange)
            .await
            .expect("the API answers within 20 s");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send("GET", path, &[], b"").await
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// The ids `GET /api/v1/findings?query` lists.
    async fn ids(&self, query: &str) -> Vec<String> {
        let v = self.ok(&format!("/api/v1/findings?{query}")).await;
        assert!(v["next_cursor"].is_null(), "{v}");
        ids(&v)
    }

    /// A 400 naming `parameter`, with the accepted form.
    async fn bad(&self, path: &str, parameter: &str) {
        let (status, body) = self.get(path).await;
        assert_bad(status, &body, parameter, path);
    }

    async fn post_ack(&self, id: &str, auth: &str, body: &Value) -> (u16, Value) {
        let body = body.to_string();
        let path = format!("/api/v1/findings/{id}/ack");
        self.send(
            "POST",
            &path,
            &[("Authorization", auth), JSON],
            body.as_bytes(),
        )
        .await
    }

    async fn delete_ack(&self, id: &str, auth: &str) -> (u16, Value) {
        let path = format!("/api/v1/findings/{id}/ack");
        self.send("DELETE", &path, &[("Authorization", auth)], b"")
            .await
    }

    fn viewed(&self, id: &str) -> Finding {
        self.state.read().findings[id].clone()
    }
}

fn ids(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {v}"))
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn assert_bad(status: u16, body: &Value, parameter: &str, what: &str) {
    assert_eq!(status, 400, "{what}: {body}");
    assert_eq!(body["parameter"], parameter, "{what}: {body}");
    assert!(
        body["error"].as_str().unwrap().contains(parameter),
        "{what}: {body}"
    );
    assert!(
        !body["expected"].as_str().unwrap().is_empty(),
        "{what}: {body}"
    );
}

fn rfc3339_in(d: Duration) -> String {
    let t = jiff::Timestamp::now() + jiff::SignedDuration::try_from(d).unwrap();
    t.to_string()
}
