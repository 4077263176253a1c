//! The hosts/VMs API through the real router on a loopback socket, over the test view of
//! `expose::testdata` and a real store holding a few events: every filter, the host and VM details,
//! host ids with slashes (raw and `%2F`), change kinds, and 400s naming the parameter.

use crate::expose::testdata::{self, CIDR_HOST, FIXED_A, FIXED_B, FLOATING_A, ORPHAN};
use crate::expose::{router, Shared};
use crate::model::{Event, EventKind, Protocol};
use crate::state::State;
use crate::store::{Commit, Store};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A served router over the test view; the store directory lives as long as it.
struct Api {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

fn event(kind: EventKind, host: &str, time: f64, port: Option<u16>) -> Event {
    Event {
        time,
        kind,
        host: host.into(),
        address: "10.0.0.5".parse().unwrap(),
        group: "east".into(),
        port,
        protocol: port.map(|_| Protocol::Tcp),
        verdict: None,
        rule: None,
        service: None,
        vuln: None,
        scan_id: 7,
    }
}

async fn serve() -> Api {
    serve_with(true).await
}

/// The test API, with `[web] vm_metadata` as given.
async fn serve_with(vm_metadata: bool) -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    store
        .commit(&Commit {
            events: vec![
                event(EventKind::VmAppeared, "vm-a", 100.0, None),
                event(EventKind::PortOpened, FIXED_A, 200.0, Some(5432)),
                event(EventKind::PortOpened, FLOATING_A, 300.0, Some(8080)),
                event(EventKind::PortOpened, CIDR_HOST, 400.0, Some(80)),
                event(EventKind::VmGone, "vm-q", 500.0, None),
            ],
            ..Commit::default()
        })
        .unwrap();
    let state = Arc::new(State::default());
    *state.write() = testdata::view();
    state.write().vm_metadata = vm_metadata;
    let shared = Arc::new(Shared {
        state,
        store,
        registry: prometheus_client::registry::Registry::default(),
        telemetry_path: "/metrics".into(),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router(shared)).await });
    Api { addr, _dir: dir }
}

impl Api {
    /// GET `path` (sent as written); the status and the JSON body.
    async fn get(&self, path: &str) -> (u16, Value) {
        let exchange = async {
            let mut c = tokio::net::TcpStream::connect(self.addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
            c.write_all(req.as_bytes()).await.unwrap();
            let mut raw = Vec::new();
            c.read_to_end(&mut raw).await.unwrap();
            raw
        };
        let raw = tokio::time::timeout(Duration::from_secs(20), exchange)
            .await
            .expect("the API answers within 20 s");
        let text = String::from_utf8(raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let body = serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (status, body)
    }

    async fn ok(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    /// Host ids listed by /api/v1/vms with this query.
    async fn ids(&self, query: &str) -> Vec<String> {
        let v = self.ok(&format!("/api/v1/vms?{query}")).await;
        v["vms"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect()
    }

    /// A 400 naming `parameter`.
    async fn bad(&self, path: &str, parameter: &str) {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(parameter),
            "{body}"
        );
        assert!(!body["expected"].as_str().unwrap().is_empty(), "{body}");
    }
}

#[tokio::test]
async fn hosts_carry_their_vm_and_exposure_and_filter_by_openstack_facts() {
    let api = serve().await;
    let all = api.ok("/api/v1/vms").await;
    let hosts = all["vms"].as_array().unwrap();
    assert_eq!(hosts.len(), 5);
    let by_id = |id: &str| hosts.iter().find(|h| h["id"] == id).unwrap();
    let a = by_id(FIXED_A);
    assert_eq!(a["vm"]["vm_id"], "vm-a");
    assert_eq!(a["vm"]["project_name"], "demo");
    assert_eq!(
        a["exposure"]["unfiltered"],
        serde_json::json!([["tcp", 5432]])
    );
    assert_eq!(a["exposure"]["waiting"].as_array().unwrap().len(), 2);
    assert_eq!(a["ports"][0]["world"]["rule_id"], "r-ssh");
    assert!(a["ports"][1].get("world").is_none(), "{a}");
    let cidr = by_id(CIDR_HOST);
    assert!(
        cidr.get("vm").is_none() && cidr.get("exposure").is_none(),
        "{cidr}"
    );

    let mut vm_a = vec![FIXED_A.to_string(), FLOATING_A.to_string()];
    vm_a.sort();
    // project: by name or by id; a project without a name by its id; CIDR hosts never.
    let mut demo = vm_a.clone();
    demo.push(ORPHAN.into());
    demo.sort();
    assert_eq!(api.ids("project=demo").await, demo);
    assert_eq!(api.ids("project=p-1").await, demo);
    assert_eq!(api.ids("project=p-2").await, [FIXED_B]);
    assert!(api.ids("project=dmz").await.is_empty());
    assert!(api.ids("project=Demo").await.is_empty(), "exact match");
    // vm: the instance id.
    assert_eq!(api.ids("vm=vm-a").await, vm_a);
    assert_eq!(api.ids("vm=vm-b").await, [FIXED_B]);
    assert!(api.ids("vm=web-1").await.is_empty(), "a name is not an id");
    // world: hosts with an open port a rule opens to the world, and the others.
    let mut world = vm_a.clone();
    world.push(ORPHAN.into());
    world.sort();
    assert_eq!(api.ids("world=true").await, world);
    let mut closed = vec![CIDR_HOST.to_string(), FIXED_B.to_string()];
    closed.sort();
    assert_eq!(api.ids("world=false").await, closed);
    // Combined with the others (ANDed).
    assert_eq!(api.ids("world=true&unexpected=true").await, vm_a);
    assert_eq!(api.ids("project=demo&port=8080").await, [FLOATING_A]);
    assert_eq!(api.ids("cidr=10.0.0.0/24").await, [FIXED_A]);
    assert_eq!(api.ids("cidr=2001:db8::/32").await, [FIXED_B]);
    assert_eq!(api.ids("vm=vm-a&world=false").await, Vec::<String>::new());
    // Paging through ids with slashes.
    let page = api.ok("/api/v1/vms?world=true&limit=2").await;
    assert_eq!(page["vms"].as_array().unwrap().len(), 2);
    let next = page["next_cursor"].as_str().unwrap();
    let rest = api
        .ok(&format!(
            "/api/v1/vms?world=true&limit=2&cursor={}",
            next.replace('/', "%2F")
        ))
        .await;
    assert_eq!(rest["vms"][0]["id"], world[2]);
    assert!(rest["next_cursor"].is_null());
}

#[tokio::test]
async fn bad_parameters_get_a_400_naming_them() {
    let api = serve().await;
    api.bad("/api/v1/vms?world=maybe", "world").await;
    api.bad("/api/v1/vms?world=", "world").await;
    api.bad("/api/v1/vms?vm=", "vm").await;
    api.bad("/api/v1/vms?project=", "project").await;
    api.bad("/api/v1/vms?vm=a&vm=b", "vm").await;
    // A multi-byte character across the fourth byte: a 400, not a panicked handler.
    api.bad("/api/v1/vms?cve=abc%E2%82%AC", "cve").await;
    api.bad("/api/v1/vms?cve=%E2%82%ACabcdef", "cve").await;
    api.bad("/api/v1/vms?instance=vm-a", "instance").await;
    api.bad("/api/v1/vms?cidr=10.0.0.0/33", "cidr").await;
    api.bad("/api/v1/changes?kind=vm_deleted", "kind").await;
    let (_, body) = api.get("/api/v1/changes?kind=nope").await;
    assert!(
        body["expected"].as_str().unwrap().contains("vm_appeared")
            && body["expected"].as_str().unwrap().contains("vm_gone"),
        "{body}"
    );
}

#[tokio::test]
async fn host_ids_with_slashes_are_found_raw_and_percent_encoded() {
    let api = serve().await;
    for path in [
        format!("/api/v1/vms/{FIXED_A}"),
        format!("/api/v1/vms/{}", FIXED_A.replace('/', "%2F")),
        format!("/api/v1/vms/{}", FIXED_A.replace('/', "%2f")),
    ] {
        let v = api.ok(&path).await;
        assert_eq!(v["kind"], "host", "{path}");
        assert_eq!(v["vm"]["id"], FIXED_A, "{path}");
        assert_eq!(v["vm"]["vm"]["vm_id"], "vm-a");
        assert_eq!(v["unexpected"][0]["port"], 5432);
        let changes = v["recent_changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{v}");
        assert_eq!(changes[0]["port"], 5432);
    }
    // IPv6 in the id (colons) and a plain CIDR host.
    let v = api.ok(&format!("/api/v1/vms/{FIXED_B}")).await;
    assert_eq!(v["vm"]["address"], "2001:db8::7");
    let v = api.ok(&format!("/api/v1/vms/{CIDR_HOST}")).await;
    assert_eq!(
        (v["kind"].as_str(), v["vm"]["group"].as_str()),
        (Some("host"), Some("dmz"))
    );
    // Not a host, not a VM; and a VM id with a trailing part is not the VM.
    for path in [
        "/api/v1/vms/vm-nope",
        "/api/v1/vms/vm-a/port-a",
        "/api/v1/vms/vm-a/port-a/10.0.0.6",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("no host or VM"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn vm_metadata_is_left_out_unless_configured() {
    // `[web] vm_metadata = false`, the default: tenants' key/values may hold secrets.
    let api = serve_with(false).await;
    let v = api.ok("/api/v1/vms/vm-a").await;
    let vm = v["instance"].as_object().unwrap();
    assert!(!vm.contains_key("metadata"), "{v}");
    assert_eq!(vm["name"], "web-1", "the rest is there");
}

#[tokio::test]
async fn a_vm_id_returns_the_vm_in_full_with_its_hosts() {
    let api = serve().await;
    let v = api.ok("/api/v1/vms/vm-a").await;
    assert_eq!(v["kind"], "instance");
    let vm = &v["instance"];
    assert_eq!(vm["id"], "vm-a");
    assert_eq!(vm["cloud"], "east");
    assert_eq!(vm["name"], "web-1");
    assert_eq!(vm["project_name"], "demo");
    assert_eq!(vm["user_name"], "alice");
    assert_eq!(vm["flavor"], "m1.small");
    assert_eq!(vm["metadata"]["role"], "web");
    assert_eq!(vm["addresses"][1]["kind"], "floating");
    assert_eq!(vm["addresses"][1]["host"], FLOATING_A);
    assert_eq!(vm["diagnostics"]["format"], "standard");
    assert_eq!(vm["diagnostics"]["cpu_seconds"], 17.3);
    assert_eq!(vm["diagnostics"]["nics"][0]["name"], "01:23:45:67:89:ab");
    assert_eq!(vm["first_seen"], 1_700_000_000.0);
    let hosts = v["hosts"].as_array().unwrap();
    let ids: Vec<&str> = hosts.iter().map(|h| h["id"].as_str().unwrap()).collect();
    let mut want = [FIXED_A, FLOATING_A];
    want.sort();
    assert_eq!(ids, want);
    let floating = hosts.iter().find(|h| h["id"] == FLOATING_A).unwrap();
    assert_eq!(floating["world_open_ports"], 2);
    assert_eq!(floating["unexpected_ports"], 1);
    assert_eq!(
        floating["ports"][1]["world"]["rule_id"],
        "port_security_disabled"
    );
    assert_eq!(floating["exposure"]["port_security_enabled"], false);
    assert_eq!(floating["last_scan"], 1_800_000_000.0);
    let fixed = hosts.iter().find(|h| h["id"] == FIXED_A).unwrap();
    assert_eq!(fixed["exposure"]["waiting"][0]["first"], 80);
    assert_eq!(fixed["ports"][0]["service"]["name"], "ssh");
    // The VM's own events and its hosts', newest first; nobody else's.
    let kinds: Vec<(&str, &str)> = v["recent_changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["kind"].as_str().unwrap(), e["host"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("port_opened", FLOATING_A),
            ("port_opened", FIXED_A),
            ("vm_appeared", "vm-a")
        ]
    );

    // A VM with diagnostics in the legacy format, and one without (the reason given instead).
    let b = api.ok("/api/v1/vms/vm-b").await;
    assert_eq!(b["instance"]["diagnostics"]["format"], "legacy");
    assert_eq!(b["hosts"][0]["id"], FIXED_B);
    let c = api.ok("/api/v1/vms/vm-c").await;
    assert!(c["instance"].get("diagnostics").is_none());
    assert!(c["instance"]["diagnostics_error"]
        .as_str()
        .unwrap()
        .contains("403"));
    assert_eq!(c["hosts"], serde_json::json!([]));
    // Gone from the inventory, its host still in the state: the hosts, no instance.
    let z = api.ok("/api/v1/vms/vm-z").await;
    assert_eq!(z["kind"], "instance");
    assert!(z.get("instance").is_none(), "{z}");
    assert_eq!(z["hosts"][0]["id"], ORPHAN);
}

#[tokio::test]
async fn changes_accept_the_vm_kinds() {
    let api = serve().await;
    let kinds = |v: &Value| -> Vec<(String, String)> {
        v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["kind"].as_str().unwrap().to_string(),
                    e["host"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let v = api.ok("/api/v1/changes?kind=vm_appeared").await;
    assert_eq!(kinds(&v), [("vm_appeared".to_string(), "vm-a".to_string())]);
    let v = api.ok("/api/v1/changes?kind=vm_gone").await;
    assert_eq!(kinds(&v), [("vm_gone".to_string(), "vm-q".to_string())]);
    // A VM's instance id stands for the VM and its hosts, in time order; paging still works.
    let v = api.ok("/api/v1/changes?vm=vm-a").await;
    let pair = |k: &str, h: &str| (k.to_string(), h.to_string());
    assert_eq!(
        kinds(&v),
        [
            pair("vm_appeared", "vm-a"),
            pair("port_opened", FIXED_A),
            pair("port_opened", FLOATING_A)
        ]
    );
    let v = api.ok("/api/v1/changes?vm=vm-a&limit=2").await;
    assert_eq!(kinds(&v).len(), 2);
    let cursor = v["next_cursor"].as_str().unwrap().to_string();
    let v = api
        .ok(&format!("/api/v1/changes?vm=vm-a&limit=2&cursor={cursor}"))
        .await;
    assert_eq!(kinds(&v), [pair("port_opened", FLOATING_A)]);
    // A host id is just that host.
    let v = api.ok(&format!("/api/v1/changes?vm={FIXED_A}")).await;
    assert_eq!(kinds(&v), [pair("port_opened", FIXED_A)]);
    let v = api.ok("/api/v1/changes?vm=vm-a&kind=port_opened").await;
    assert_eq!(kinds(&v).len(), 2);
    let v = api.ok("/api/v1/changes").await;
    assert_eq!(v["changes"].as_array().unwrap().len(), 5);
}

/// The spec names every parameter `/api/v1/vms` takes and every event kind.
#[test]
fn openapi_documents_the_filters_and_event_kinds() {
    let spec: serde_json::Value = serde_norway::from_str(crate::expose::OPENAPI).unwrap();
    let params: std::collections::BTreeSet<&str> = spec["paths"]["/api/v1/vms"]["get"]
        ["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| match p["$ref"].as_str() {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap();
                spec["components"]["parameters"][name]["name"]
                    .as_str()
                    .unwrap()
            }
            None => p["name"].as_str().unwrap(),
        })
        .collect();
    let want: std::collections::BTreeSet<&str> = super::query::VMS_PARAMS.iter().copied().collect();
    assert_eq!(params, want);
    let kinds: Vec<&str> = spec["components"]["schemas"]["EventKind"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let all: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(kinds, all);
    for schema in [
        "Vm",
        "HostState",
        "Exposure",
        "VmLink",
        "Diagnostics",
        "InstanceDetail",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
}
