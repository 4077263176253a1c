//! A fake OpenStack Nova + Neutron for tests and the benchmark: the [`Cloud`] model (built from the
//! upstream API samples in `tests/fixtures/openstack/`, every VM address rewritten to 127.0.0.0/8),
//! the HTTP servers that replay it ([`FakeCloud`], one listener per service, own thread and tokio
//! runtime, stopped on drop), token checking ([`TokenCheck`]), runtime fault injection ([`Faults`])
//! and request counting. Shared by `examples/fake_cloud.rs` and the integration tests
//! (`#[path = "../../examples/fake_cloud/server.rs"] mod fake_cloud;`).
//!
//! Behaviour follows the real services where the client could notice (see `/work/shared/PROTOCOLS.md`
//! §1c, §1d): Nova microversions (2.1–2.104, 406 outside, echoed with `Vary`), `servers/detail`
//! newest first with `servers_links` whenever a page is exactly full, `max_limit`, 400 on a bad
//! marker, 403 for `all_tenants` without the admin role; Neutron `limit`/`marker` paging sorted by
//! id with `<collection>_links`, filters ANDed across fields and ORed within one. Version documents
//! (`/`, `/v2.1`, `/v2.1/`) need no token, like the real services; everything else does.
//!
//! Incremental listing (§7): Nova `changes-since` (`updated >= T`, deleted servers listed after the
//! live ones with status `DELETED`), Neutron `changed_since` (`updated_at >= T`) on every collection
//! including `security-group-rules`, and the `standard-attr-timestamp` extension, which
//! [`FakeConfig::neutron_timestamps`] can take away (then `changed_since` gets a 400, as with
//! Neutron's filter validation). Changes made through [`Cloud`]'s methods are stamped with its
//! clock ([`Cloud::set_clock`]).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde_json::{json, Map, Value};

// ---------------------------------------------------------------------------------------------
// Upstream samples (compiled in; the paths are relative to this file, so they work from both the
// example and the integration tests).

const NOVA_SERVERS_V2_100: &str =
    include_str!("../../tests/fixtures/openstack/nova/servers-details-resp-v2.100.json");
const NOVA_SERVERS_V2_1: &str =
    include_str!("../../tests/fixtures/openstack/nova/servers-details-resp-v2.1.json");
const NOVA_VERSIONS: &str =
    include_str!("../../tests/fixtures/openstack/nova/versions-get-resp.json");
const NOVA_VERSION_V21: &str =
    include_str!("../../tests/fixtures/openstack/nova/v21-version-get-resp.json");
const NOVA_DIAG_LEGACY: &str =
    include_str!("../../tests/fixtures/openstack/nova/server-diagnostics-get-resp-legacy.json");
const NOVA_DIAG_V2_48: &str =
    include_str!("../../tests/fixtures/openstack/nova/server-diagnostics-get-resp-v2.48.json");
const NEUTRON_PORTS: &str =
    include_str!("../../tests/fixtures/openstack/neutron/ports-list-response.json");
const NEUTRON_FIPS: &str =
    include_str!("../../tests/fixtures/openstack/neutron/floating-ips-list-response.json");
const NEUTRON_NETWORKS: &str =
    include_str!("../../tests/fixtures/openstack/neutron/networks-list-response.json");
const NEUTRON_SGS: &str =
    include_str!("../../tests/fixtures/openstack/neutron/security-groups-list-response.json");

/// Nova's microversion range (minor numbers of 2.N).
pub const NOVA_MIN_MINOR: u32 = 1;
pub const NOVA_MAX_MINOR: u32 = 104;

/// Project, server and network of the upstream Nova sample (kept by [`Cloud::from_samples`]).
pub const SAMPLE_PROJECT: &str = "6f70656e737461636b20342065766572";
pub const SAMPLE_SERVER_ID: &str = "f5dc173b-6804-445a-a6d8-c705dad5b5eb";
/// The sample server's fixed address, rewritten from 192.168.1.30.
pub const SAMPLE_FIXED_IP: Ipv4Addr = Ipv4Addr::new(127, 203, 1, 30);
/// The sample's associated floating IP, rewritten from 172.24.4.228.
pub const SAMPLE_FLOATING_IP: Ipv4Addr = Ipv4Addr::new(127, 203, 4, 228);
/// The external network of the Neutron samples (`floating_network_id`).
const PUBLIC_NET_ID: &str = "376da547-b977-4cfe-9cba-275c80debf57";
const SAMPLE_ROUTER_ID: &str = "d23abc8d-2991-4a55-ba98-2aaea84cc72f";

fn parse_sample(name: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("fixture {name} is not valid JSON: {e}"))
}

fn first_item(name: &str, doc: &Value, key: &str, index: usize) -> Result<Value, String> {
    doc.get(key)
        .and_then(|v| v.get(index))
        .cloned()
        .ok_or_else(|| format!("fixture {name} has no {key}[{index}]"))
}

/// The sample objects every generated resource is cloned from.
#[derive(Debug, Clone)]
struct Templates {
    server: Value,
    flavor_v21: Value,
    admin_attrs: Map<String, Value>,
    port: Value,
    router_ports: Vec<Value>,
    fip: Value,
    sample_fips: Vec<Value>,
    network: Value,
    sample_networks: Vec<Value>,
    sg: Value,
    versions: Value,
    version_v21: Value,
    diag_legacy: Value,
    diag_standard: Value,
}

impl Templates {
    fn load() -> Result<Templates, String> {
        let s100 = parse_sample("servers-details-resp-v2.100.json", NOVA_SERVERS_V2_100)?;
        let s21 = parse_sample("servers-details-resp-v2.1.json", NOVA_SERVERS_V2_1)?;
        let server = first_item("servers-details-resp-v2.100.json", &s100, "servers", 0)?;
        let server21 = first_item("servers-details-resp-v2.1.json", &s21, "servers", 0)?;
        let flavor_v21 = server21
            .get("flavor")
            .cloned()
            .ok_or("fixture servers-details-resp-v2.1.json has no flavor")?;
        let mut admin_attrs = Map::new();
        for k in ADMIN_ONLY {
            if let Some(v) = server21.get(*k) {
                admin_attrs.insert((*k).to_string(), v.clone());
            }
        }
        let ports = parse_sample("ports-list-response.json", NEUTRON_PORTS)?;
        let fips = parse_sample("floating-ips-list-response.json", NEUTRON_FIPS)?;
        let nets = parse_sample("networks-list-response.json", NEUTRON_NETWORKS)?;
        let sgs = parse_sample("security-groups-list-response.json", NEUTRON_SGS)?;
        let list = |doc: &Value, key: &str| -> Vec<Value> {
            doc.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        Ok(Templates {
            server,
            flavor_v21,
            admin_attrs,
            port: first_item("ports-list-response.json", &ports, "ports", 1)?,
            router_ports: list(&ports, "ports"),
            fip: first_item("floating-ips-list-response.json", &fips, "floatingips", 0)?,
            sample_fips: list(&fips, "floatingips"),
            network: first_item("networks-list-response.json", &nets, "networks", 0)?,
            sample_networks: list(&nets, "networks"),
            sg: first_item(
                "security-groups-list-response.json",
                &sgs,
                "security_groups",
                0,
            )?,
            versions: parse_sample("versions-get-resp.json", NOVA_VERSIONS)?,
            version_v21: parse_sample("v21-version-get-resp.json", NOVA_VERSION_V21)?,
            diag_legacy: parse_sample("server-diagnostics-get-resp-legacy.json", NOVA_DIAG_LEGACY)?,
            diag_standard: parse_sample("server-diagnostics-get-resp-v2.48.json", NOVA_DIAG_V2_48)?,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// The model.

/// One VM to add; [`Cloud::add_server`] turns it into Nova server JSON, Neutron ports (one per fixed
/// address), floating IPs (the i-th on the i-th fixed address, the rest on the last) and, when
/// missing, networks and security groups (by name, in the server's project).
#[derive(Debug, Clone, Default)]
pub struct ServerSpec {
    pub id: String,
    pub name: String,
    pub project_id: String,
    pub user_id: String,
    /// `ACTIVE`, `SHUTOFF`, `ERROR`, `BUILD`, ...
    pub status: String,
    pub metadata: BTreeMap<String, String>,
    /// (network name, fixed address).
    pub fixed: Vec<(String, IpAddr)>,
    pub floating: Vec<IpAddr>,
    /// Security group names (Nova lists names; the ports carry the ids).
    pub security_groups: Vec<String>,
    /// `created` (ISO 8601, `Z`); `None` = one second after the previous server (newest last added).
    pub created: Option<String>,
}

impl ServerSpec {
    /// An ACTIVE server with no addresses, user `fake`, security group `default`.
    pub fn new(id: &str, name: &str, project_id: &str) -> ServerSpec {
        ServerSpec {
            id: id.to_string(),
            name: name.to_string(),
            project_id: project_id.to_string(),
            user_id: "fake".to_string(),
            status: "ACTIVE".to_string(),
            security_groups: vec!["default".to_string()],
            ..ServerSpec::default()
        }
    }

    pub fn fixed(mut self, network: &str, ip: IpAddr) -> ServerSpec {
        self.fixed.push((network.to_string(), ip));
        self
    }

    pub fn floating(mut self, ip: IpAddr) -> ServerSpec {
        self.floating.push(ip);
        self
    }
}

/// One security-group rule; `None` fields are `null` (any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleSpec {
    /// `ingress` or `egress`.
    pub direction: String,
    /// `IPv4` or `IPv6`.
    pub ethertype: String,
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<String>,
    pub remote_group_id: Option<String>,
}

impl RuleSpec {
    /// Ingress TCP `min..=max` from `prefix` (IPv4).
    pub fn ingress_tcp(min: u16, max: u16, prefix: &str) -> RuleSpec {
        RuleSpec {
            direction: "ingress".into(),
            ethertype: "IPv4".into(),
            protocol: Some("tcp".into()),
            port_range_min: Some(min),
            port_range_max: Some(max),
            remote_ip_prefix: Some(prefix.into()),
            remote_group_id: None,
        }
    }
}

/// A security group to add; `rules: None` gives Neutron's default rules (egress anywhere, ingress
/// from the group itself, IPv4 and IPv6), as in the sample.
#[derive(Debug, Clone)]
pub struct SecurityGroupSpec {
    pub id: Option<String>,
    pub name: String,
    pub project_id: String,
    pub stateful: bool,
    pub rules: Option<Vec<RuleSpec>>,
}

/// What `GET /servers/{id}/diagnostics` answers for one server.
#[derive(Debug, Clone, PartialEq)]
pub enum DiagnosticsReply {
    /// The upstream sample: legacy flat keys below 2.48, the standardized form from 2.48 (the
    /// default; a server that is not ACTIVE gets 409 instead).
    Fixture,
    /// This status with Nova's error body (403, 404, 409, 501, ...).
    Status(u16),
    /// This body, at any microversion.
    Body(Value),
}

/// The cloud's content: Nova servers and Neutron ports, floating IPs, networks and security groups,
/// kept consistent by the builder methods. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cloud {
    t: Templates,
    /// Stored at the newest microversion, with the admin-only fields; trimmed when served.
    servers: Vec<Value>,
    server_index: HashMap<String, usize>,
    /// Indices into `servers`, newest first (created desc, id desc), like Nova.
    order: Vec<usize>,
    ports: BTreeMap<String, Value>,
    floatingips: BTreeMap<String, Value>,
    networks: BTreeMap<String, Value>,
    security_groups: BTreeMap<String, Value>,
    diagnostics: HashMap<String, DiagnosticsReply>,
    seq: u64,
    /// Removed servers as Nova keeps them (status `DELETED`), listed only with `changes-since`.
    deleted: Vec<Value>,
    /// Unix seconds that changes are stamped with; `None`: one second per change after the last
    /// generated `created`.
    clock: Option<u64>,
}

/// 2024-01-01T00:00:00Z: the first generated `created` time.
const BASE_EPOCH: u64 = 1_704_067_200;

impl Cloud {
    /// Only the external network `public` of the samples; no servers.
    pub fn empty() -> Result<Cloud, String> {
        let t = Templates::load()?;
        let mut cloud = Cloud {
            t,
            servers: Vec::new(),
            server_index: HashMap::new(),
            order: Vec::new(),
            ports: BTreeMap::new(),
            floatingips: BTreeMap::new(),
            networks: BTreeMap::new(),
            security_groups: BTreeMap::new(),
            diagnostics: HashMap::new(),
            seq: 0,
            deleted: Vec::new(),
            clock: None,
        };
        let public = cloud.network_json(PUBLIC_NET_ID, "public", "admin", true, true);
        cloud.networks.insert(PUBLIC_NET_ID.to_string(), public);
        Ok(cloud)
    }

    /// The upstream samples, rewritten to loopback: the Nova sample server (`SAMPLE_SERVER_ID`, fixed
    /// `SAMPLE_FIXED_IP` on `private`, floating `SAMPLE_FLOATING_IP`), the sample networks `net1` and
    /// `net2`, the sample's two router ports (172.24.4.2 → 127.203.4.2, 10.0.0.1 → 127.203.0.1), its
    /// two unassociated floating IPs (→ 127.203.4.227, 127.203.4.42) and its `default` security
    /// group (moved to the server's project).
    pub fn from_samples() -> Result<Cloud, String> {
        let mut cloud = Cloud::empty()?;
        for n in cloud.t.sample_networks.clone() {
            if let Some(id) = n.get("id").and_then(Value::as_str) {
                cloud.networks.insert(id.to_string(), n.clone());
            }
        }
        for mut p in cloud.t.router_ports.clone() {
            rewrite_strings(&mut p, &SAMPLE_REWRITES);
            if let Some(id) = p.get("id").and_then(Value::as_str) {
                cloud.ports.insert(id.to_string(), p.clone());
            }
        }
        for mut f in cloud.t.sample_fips.clone() {
            if f.get("port_id").is_some_and(|p| !p.is_null()) {
                continue; // its port is not in the samples; the sample server gets its address
            }
            rewrite_strings(&mut f, &SAMPLE_REWRITES);
            if let Some(id) = f.get("id").and_then(Value::as_str) {
                cloud.floatingips.insert(id.to_string(), f.clone());
            }
        }
        let mut sg = cloud.t.sg.clone();
        rewrite_strings(
            &mut sg,
            &[("e4f50856753b4dc6afee5fa6b9b6c550", SAMPLE_PROJECT)],
        );
        if let Some(id) = sg.get("id").and_then(Value::as_str) {
            cloud.security_groups.insert(id.to_string(), sg.clone());
        }
        let mut spec = ServerSpec::new(SAMPLE_SERVER_ID, "new-server-test", SAMPLE_PROJECT)
            .fixed("private", IpAddr::V4(SAMPLE_FIXED_IP))
            .floating(IpAddr::V4(SAMPLE_FLOATING_IP));
        spec.metadata
            .insert("My Server Name".to_string(), "Apache1".to_string());
        spec.created = Some("2013-09-03T04:01:32Z".to_string());
        cloud.add_server(spec)?;
        Ok(cloud)
    }

    /// `n` servers (at most 130 048) over 50 projects in the shape of the Nova sample: fixed
    /// addresses from 127.200.0.1 up (127.200.0.0/15, host parts 1–254), every fifth server also a
    /// floating IP from 127.202.0.1 up; one network `net-pNN` and security groups `default` and
    /// `web` (tcp 22 and 443 from 0.0.0.0/0) per project; about 1 in 23 SHUTOFF and 1 in 97 ERROR.
    pub fn generated(n: usize) -> Result<Cloud, String> {
        const PROJECTS: usize = 50;
        if n > 254 * 256 * 2 {
            return Err(format!(
                "Cloud::generated({n}): at most {} servers fit in 127.200.0.0/15",
                254 * 256 * 2
            ));
        }
        let mut cloud = Cloud::empty()?;
        for p in 0..PROJECTS {
            let project = generated_project(p);
            cloud.add_security_group(SecurityGroupSpec {
                id: None,
                name: "default".into(),
                project_id: project.clone(),
                stateful: true,
                rules: None,
            })?;
            cloud.add_security_group(SecurityGroupSpec {
                id: None,
                name: "web".into(),
                project_id: project,
                stateful: true,
                rules: Some(vec![
                    RuleSpec::ingress_tcp(22, 22, "0.0.0.0/0"),
                    RuleSpec::ingress_tcp(443, 443, "0.0.0.0/0"),
                ]),
            })?;
        }
        const ROLES: [&str; 4] = ["web", "db", "cache", "batch"];
        for i in 0..n {
            let p = i % PROJECTS;
            let mut spec = ServerSpec::new(
                &uuid(1, i as u64),
                &format!("vm-{i:05}"),
                &generated_project(p),
            );
            spec.user_id = format!("user-{p:02}");
            spec.status = if i % 97 == 5 {
                "ERROR"
            } else if i % 23 == 7 {
                "SHUTOFF"
            } else {
                "ACTIVE"
            }
            .to_string();
            spec.metadata
                .insert("role".into(), ROLES[i % ROLES.len()].into());
            spec.metadata.insert("index".into(), i.to_string());
            if i % 2 == 0 {
                spec.security_groups.push("web".into());
            }
            spec.fixed
                .push((format!("net-p{p:02}"), IpAddr::V4(loopback_ip(200, i))));
            if i % 5 == 0 {
                spec.floating.push(IpAddr::V4(loopback_ip(202, i / 5)));
            }
            cloud.add_server_inner(spec, false)?;
        }
        cloud.reorder();
        Ok(cloud)
    }

    /// Adds a server with its ports, floating IPs and (if missing) networks and security groups.
    pub fn add_server(&mut self, spec: ServerSpec) -> Result<(), String> {
        self.add_server_inner(spec, true)
    }

    fn add_server_inner(&mut self, spec: ServerSpec, reorder: bool) -> Result<(), String> {
        if spec.id.is_empty() || self.server_index.contains_key(&spec.id) {
            return Err(format!(
                "add_server: server id {:?} is empty or already used; give each server a distinct id",
                spec.id
            ));
        }
        if !spec.floating.is_empty() && spec.fixed.is_empty() {
            return Err(format!(
                "add_server {}: floating IPs need a fixed address to map to; add one to `fixed`",
                spec.id
            ));
        }
        self.seq += 1;
        let seq = self.seq;
        let created = spec
            .created
            .clone()
            .unwrap_or_else(|| iso8601(BASE_EPOCH + seq));
        let mut sg_ids = Vec::new();
        for name in &spec.security_groups {
            sg_ids.push(self.security_group_id(name, &spec.project_id)?);
        }
        let running = spec.status == "ACTIVE";

        // Neutron: one port per fixed address, floating IPs on them.
        let mut addresses: Map<String, Value> = Map::new();
        let mut port_of_fixed: Vec<(String, String, IpAddr, String)> = Vec::new(); // port, mac, ip, net id
        for (k, (net_name, ip)) in spec.fixed.iter().enumerate() {
            let (net_id, subnet_id) = self.network_for(net_name, &spec.project_id);
            let port_id = uuid(2, seq * 16 + k as u64);
            let mac = format!(
                "fa:16:3e:{:02x}:{:02x}:{:02x}",
                (seq >> 12) & 0xff,
                (seq >> 4) & 0xff,
                ((seq & 0xf) << 4) | (k as u64 & 0xf)
            );
            let mut port = self.t.port.clone();
            set_all(
                &mut port,
                &[
                    ("id", json!(port_id)),
                    ("name", json!("")),
                    ("network_id", json!(net_id)),
                    ("device_id", json!(spec.id)),
                    ("device_owner", json!("compute:nova")),
                    (
                        "fixed_ips",
                        json!([{"ip_address": ip.to_string(), "subnet_id": subnet_id}]),
                    ),
                    ("mac_address", json!(mac)),
                    ("project_id", json!(spec.project_id)),
                    ("tenant_id", json!(spec.project_id)),
                    ("security_groups", json!(sg_ids)),
                    ("port_security_enabled", json!(true)),
                    ("status", json!(if running { "ACTIVE" } else { "DOWN" })),
                    (
                        "dns_assignment",
                        json!([{"hostname": spec.name, "ip_address": ip.to_string(),
                                "fqdn": format!("{}.my-domain.org", spec.name)}]),
                    ),
                    ("dns_name", json!(spec.name)),
                    ("extra_dhcp_opts", json!([])),
                    ("tags", json!([])),
                    ("created_at", json!(created)),
                    ("updated_at", json!(created)),
                    ("qos_network_policy_id", Value::Null),
                    ("qos_policy_id", Value::Null),
                ],
            );
            self.ports.insert(port_id.clone(), port);
            let entry = addresses
                .entry(net_name.clone())
                .or_insert_with(|| json!([]));
            if let Some(list) = entry.as_array_mut() {
                list.push(json!({
                    "addr": ip.to_string(),
                    "OS-EXT-IPS-MAC:mac_addr": mac,
                    "OS-EXT-IPS:type": "fixed",
                    "version": if ip.is_ipv4() { 4 } else { 6 },
                }));
            }
            port_of_fixed.push((port_id, mac, *ip, net_id));
        }
        for (k, fip) in spec.floating.iter().enumerate() {
            let target = k.min(port_of_fixed.len().saturating_sub(1));
            let Some((port_id, mac, fixed_ip, net_id)) = port_of_fixed.get(target).cloned() else {
                continue;
            };
            let fip_id = uuid(3, seq * 16 + k as u64);
            let mut f = self.t.fip.clone();
            set_all(
                &mut f,
                &[
                    ("id", json!(fip_id)),
                    ("floating_ip_address", json!(fip.to_string())),
                    ("fixed_ip_address", json!(fixed_ip.to_string())),
                    ("port_id", json!(port_id)),
                    ("project_id", json!(spec.project_id)),
                    ("tenant_id", json!(spec.project_id)),
                    ("floating_network_id", json!(PUBLIC_NET_ID)),
                    ("router_id", json!(SAMPLE_ROUTER_ID)),
                    ("status", json!("ACTIVE")),
                    ("dns_name", json!("")),
                    ("description", json!("")),
                    ("tags", json!([])),
                    ("port_forwardings", json!([])),
                    ("created_at", json!(created)),
                    ("updated_at", json!(created)),
                    (
                        "port_details",
                        json!({"status": if running { "ACTIVE" } else { "DOWN" }, "name": "",
                               "admin_state_up": true, "network_id": net_id,
                               "device_owner": "compute:nova", "mac_address": mac,
                               "device_id": spec.id}),
                    ),
                ],
            );
            self.floatingips.insert(fip_id, f);
            // Nova lists a floating IP beside the fixed address it maps to.
            let net_name = spec.fixed.get(target).map(|(n, _)| n.clone());
            if let Some(list) = net_name
                .and_then(|n| addresses.get_mut(&n))
                .and_then(Value::as_array_mut)
            {
                list.push(json!({
                    "addr": fip.to_string(),
                    "OS-EXT-IPS-MAC:mac_addr": mac,
                    "OS-EXT-IPS:type": "floating",
                    "version": if fip.is_ipv4() { 4 } else { 6 },
                }));
            }
        }

        // Nova: the v2.100 sample plus the admin-only fields of the v2.1 sample.
        let mut server = self.t.server.clone();
        let (vm_state, power_state) = match spec.status.as_str() {
            "ACTIVE" => ("active", 1),
            "SHUTOFF" => ("stopped", 4),
            "ERROR" => ("error", 0),
            "BUILD" => ("building", 0),
            "PAUSED" => ("paused", 3),
            "SUSPENDED" => ("suspended", 4),
            _ => ("active", 1),
        };
        set_all(
            &mut server,
            &[
                ("id", json!(spec.id)),
                ("name", json!(spec.name)),
                ("tenant_id", json!(spec.project_id)),
                ("user_id", json!(spec.user_id)),
                ("status", json!(spec.status)),
                ("metadata", json!(spec.metadata)),
                ("created", json!(created)),
                ("updated", json!(created)),
                ("addresses", Value::Object(addresses)),
                (
                    "security_groups",
                    json!(spec
                        .security_groups
                        .iter()
                        .map(|n| json!({"name": n}))
                        .collect::<Vec<_>>()),
                ),
                (
                    "hostId",
                    json!(format!("{:056x}", (seq as u128) * 0x9e37_79b9)),
                ),
                ("OS-EXT-SRV-ATTR:hostname", json!(spec.name)),
                ("OS-EXT-STS:vm_state", json!(vm_state)),
                ("OS-EXT-STS:power_state", json!(power_state)),
                ("accessIPv4", json!("")),
                ("accessIPv6", json!("")),
            ],
        );
        if let Some(o) = server.as_object_mut() {
            for (k, v) in &self.t.admin_attrs {
                o.insert(k.clone(), v.clone());
            }
            o.insert(
                "OS-EXT-SRV-ATTR:instance_name".into(),
                json!(format!("instance-{seq:08x}")),
            );
        }
        let index = self.servers.len();
        self.servers.push(server);
        self.server_index.insert(spec.id.clone(), index);
        self.order.push(index);
        if reorder {
            self.reorder();
        }
        Ok(())
    }

    /// Removes a server, its ports, and unmaps its floating IPs (they stay, unassociated).
    pub fn remove_server(&mut self, id: &str) -> bool {
        let Some(index) = self.server_index.remove(id) else {
            return false;
        };
        let now = self.now();
        let mut gone = self.servers.remove(index);
        set_all(
            &mut gone,
            &[
                ("status", json!("DELETED")),
                ("OS-EXT-STS:vm_state", json!("deleted")),
                ("updated", json!(now)),
            ],
        );
        self.deleted.push(gone);
        self.server_index = self
            .servers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s.get("id")?.as_str()?.to_string(), i)))
            .collect();
        self.order = (0..self.servers.len()).collect();
        self.reorder();
        let gone: HashSet<String> = self
            .ports
            .iter()
            .filter(|(_, p)| p.get("device_id").and_then(Value::as_str) == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        self.ports.retain(|k, _| !gone.contains(k));
        for f in self.floatingips.values_mut() {
            let mapped = f
                .get("port_id")
                .and_then(Value::as_str)
                .is_some_and(|p| gone.contains(p));
            if mapped {
                set_all(
                    f,
                    &[
                        ("port_id", Value::Null),
                        ("fixed_ip_address", Value::Null),
                        ("port_details", Value::Null),
                        ("status", json!("DOWN")),
                        ("updated_at", json!(now)),
                    ],
                );
            }
        }
        self.diagnostics.remove(id);
        true
    }

    /// Sets a server's `status` (and its ports' status).
    pub fn set_status(&mut self, id: &str, status: &str) -> bool {
        let Some(&i) = self.server_index.get(id) else {
            return false;
        };
        let now = self.now();
        if let Some(s) = self.servers.get_mut(i) {
            set_all(s, &[("status", json!(status)), ("updated", json!(now))]);
        }
        let port_status = if status == "ACTIVE" { "ACTIVE" } else { "DOWN" };
        for p in self.ports.values_mut() {
            if p.get("device_id").and_then(Value::as_str) == Some(id) {
                set_all(
                    p,
                    &[("status", json!(port_status)), ("updated_at", json!(now))],
                );
            }
        }
        true
    }

    /// Sets the clock (Unix seconds) that later changes are stamped with (`updated`,
    /// `updated_at`), so tests can move the cloud's time, skew it or turn it back.
    pub fn set_clock(&mut self, unix_secs: u64) {
        self.clock = Some(unix_secs);
    }

    /// The stamp of a change made now.
    fn now(&self) -> String {
        iso8601(self.clock.unwrap_or(BASE_EPOCH + self.seq))
    }

    /// The Neutron ports of a server (by id).
    pub fn server_ports(&self, server_id: &str) -> Vec<String> {
        self.ports
            .iter()
            .filter(|(_, p)| p.get("device_id").and_then(Value::as_str) == Some(server_id))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Associates a new floating IP `ip` with the server's first port (Nova lists it beside that
    /// port's fixed address); returns its id.
    pub fn associate_floating_ip(&mut self, server_id: &str, ip: IpAddr) -> Result<String, String> {
        let port_id = self.server_ports(server_id).into_iter().next().ok_or_else(|| {
            format!("associate_floating_ip: server {server_id:?} has no port; add it with a fixed address")
        })?;
        let port = self.ports.get(&port_id).cloned().unwrap_or(Value::Null);
        let fixed = port
            .pointer("/fixed_ips/0/ip_address")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mac = port.get("mac_address").cloned().unwrap_or(Value::Null);
        self.seq += 1;
        let (now, fip_id) = (self.now(), uuid(3, self.seq * 16 + 15));
        let mut f = self.t.fip.clone();
        set_all(
            &mut f,
            &[
                ("id", json!(fip_id)),
                ("floating_ip_address", json!(ip.to_string())),
                ("fixed_ip_address", json!(fixed)),
                ("port_id", json!(port_id)),
                (
                    "project_id",
                    port.get("project_id").cloned().unwrap_or(Value::Null),
                ),
                (
                    "tenant_id",
                    port.get("project_id").cloned().unwrap_or(Value::Null),
                ),
                ("floating_network_id", json!(PUBLIC_NET_ID)),
                ("router_id", json!(SAMPLE_ROUTER_ID)),
                ("status", json!("ACTIVE")),
                ("port_details", Value::Null),
                ("created_at", json!(now)),
                ("updated_at", json!(now)),
            ],
        );
        self.floatingips.insert(fip_id.clone(), f);
        if let Some(nets) = self
            .server_index
            .get(server_id)
            .and_then(|&i| self.servers.get_mut(i))
            .and_then(|s| s.get_mut("addresses"))
            .and_then(Value::as_object_mut)
        {
            let list = nets.values_mut().find(|l| {
                l.as_array().is_some_and(|a| {
                    a.iter()
                        .any(|x| x.get("addr").and_then(Value::as_str) == Some(&fixed))
                })
            });
            if let Some(list) = list.and_then(Value::as_array_mut) {
                list.push(
                    json!({"addr": ip.to_string(), "OS-EXT-IPS-MAC:mac_addr": mac,
                                 "OS-EXT-IPS:type": "floating",
                                 "version": if ip.is_ipv4() { 4 } else { 6 }}),
                );
            }
        }
        Ok(fip_id)
    }

    /// Adds a rule to a security group (stamping the rule and the group); returns the rule id.
    pub fn add_security_group_rule(
        &mut self,
        group_id: &str,
        rule: RuleSpec,
    ) -> Result<String, String> {
        self.seq += 1;
        let (now, rule_id) = (self.now(), uuid(5, self.seq * 64 + 63));
        let template = self
            .t
            .sg
            .get("security_group_rules")
            .and_then(|r| r.get(0))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let Some(group) = self.security_groups.get_mut(group_id) else {
            return Err(format!(
                "add_security_group_rule: no security group {group_id:?}"
            ));
        };
        let project = group.get("project_id").cloned().unwrap_or(Value::Null);
        let mut v = template;
        set_all(
            &mut v,
            &[
                ("id", json!(rule_id)),
                ("direction", json!(rule.direction)),
                ("ethertype", json!(rule.ethertype)),
                ("protocol", json!(rule.protocol)),
                ("port_range_min", json!(rule.port_range_min)),
                ("port_range_max", json!(rule.port_range_max)),
                ("remote_ip_prefix", json!(rule.remote_ip_prefix)),
                ("remote_group_id", json!(rule.remote_group_id)),
                ("remote_address_group_id", Value::Null),
                ("security_group_id", json!(group_id)),
                ("project_id", project.clone()),
                ("tenant_id", project),
                ("created_at", json!(now)),
                ("updated_at", json!(now)),
            ],
        );
        if let Some(list) = group
            .get_mut("security_group_rules")
            .and_then(Value::as_array_mut)
        {
            list.push(v);
        }
        touch_revision(group, &now);
        Ok(rule_id)
    }

    /// Deletes a rule (a hard delete, as in Neutron: only its group's `updated_at` tells).
    pub fn remove_security_group_rule(&mut self, rule_id: &str) -> bool {
        let now = self.now();
        for g in self.security_groups.values_mut() {
            let Some(list) = g
                .get_mut("security_group_rules")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            let before = list.len();
            list.retain(|r| r.get("id").and_then(Value::as_str) != Some(rule_id));
            if list.len() != before {
                touch_revision(g, &now);
                return true;
            }
        }
        false
    }

    /// Sets a port's `port_security_enabled` (stamping it).
    pub fn set_port_security(&mut self, port_id: &str, enabled: bool) -> bool {
        let now = self.now();
        match self.ports.get_mut(port_id) {
            Some(p) => {
                set_all(p, &[("port_security_enabled", json!(enabled))]);
                touch_revision(p, &now);
                true
            }
            None => false,
        }
    }

    /// Adds a security group; returns its id.
    pub fn add_security_group(&mut self, spec: SecurityGroupSpec) -> Result<String, String> {
        self.seq += 1;
        let id = spec.id.clone().unwrap_or_else(|| uuid(4, self.seq));
        if self.security_groups.contains_key(&id) {
            return Err(format!("add_security_group: id {id} already used"));
        }
        let rules = spec.rules.clone().unwrap_or_else(|| {
            let mut out = Vec::new();
            for dir in ["egress", "ingress"] {
                for eth in ["IPv6", "IPv4"] {
                    out.push(RuleSpec {
                        direction: dir.into(),
                        ethertype: eth.into(),
                        protocol: None,
                        port_range_min: None,
                        port_range_max: None,
                        remote_ip_prefix: None,
                        remote_group_id: (dir == "ingress").then(|| id.clone()),
                    });
                }
            }
            out
        });
        let rule_template = self
            .t
            .sg
            .get("security_group_rules")
            .and_then(|r| r.get(0))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut rule_values = Vec::new();
        for (k, r) in rules.iter().enumerate() {
            let mut v = rule_template.clone();
            set_all(
                &mut v,
                &[
                    ("id", json!(uuid(5, self.seq * 64 + k as u64))),
                    ("direction", json!(r.direction)),
                    ("ethertype", json!(r.ethertype)),
                    ("protocol", json!(r.protocol)),
                    ("port_range_min", json!(r.port_range_min)),
                    ("port_range_max", json!(r.port_range_max)),
                    ("remote_ip_prefix", json!(r.remote_ip_prefix)),
                    ("remote_group_id", json!(r.remote_group_id)),
                    ("remote_address_group_id", Value::Null),
                    ("security_group_id", json!(id)),
                    ("project_id", json!(spec.project_id)),
                    ("tenant_id", json!(spec.project_id)),
                    ("tags", json!([])),
                ],
            );
            rule_values.push(v);
        }
        let mut sg = self.t.sg.clone();
        set_all(
            &mut sg,
            &[
                ("id", json!(id)),
                ("name", json!(spec.name)),
                ("description", json!(spec.name)),
                ("project_id", json!(spec.project_id)),
                ("tenant_id", json!(spec.project_id)),
                ("stateful", json!(spec.stateful)),
                ("security_group_rules", Value::Array(rule_values)),
                ("tags", json!([])),
            ],
        );
        self.security_groups.insert(id.clone(), sg);
        Ok(id)
    }

    /// How `GET /servers/{id}/diagnostics` answers for this server.
    pub fn set_diagnostics(&mut self, server_id: &str, reply: DiagnosticsReply) {
        self.diagnostics.insert(server_id.to_string(), reply);
    }

    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    /// Server ids in the order Nova lists them (newest first).
    pub fn server_ids(&self) -> Vec<String> {
        self.order
            .iter()
            .filter_map(|&i| self.servers.get(i)?.get("id")?.as_str().map(str::to_string))
            .collect()
    }

    /// Every address (fixed and floating) Nova lists for the server.
    pub fn server_addresses(&self, id: &str) -> Vec<IpAddr> {
        let Some(s) = self.server_index.get(id).and_then(|&i| self.servers.get(i)) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(nets) = s.get("addresses").and_then(Value::as_object) {
            for list in nets.values() {
                for a in list.as_array().into_iter().flatten() {
                    if let Some(ip) = a
                        .get("addr")
                        .and_then(Value::as_str)
                        .and_then(|s| s.parse().ok())
                    {
                        out.push(ip);
                    }
                }
            }
        }
        out
    }

    /// Counts of (ports, floating IPs, networks, security groups).
    pub fn neutron_counts(&self) -> (usize, usize, usize, usize) {
        (
            self.ports.len(),
            self.floatingips.len(),
            self.networks.len(),
            self.security_groups.len(),
        )
    }

    fn reorder(&mut self) {
        let key = |i: &usize| -> (String, String) {
            let s = self.servers.get(*i);
            let f = |k: &str| {
                s.and_then(|s| s.get(k))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            (f("created"), f("id"))
        };
        let mut keyed: Vec<((String, String), usize)> =
            self.order.iter().map(|i| (key(i), *i)).collect();
        keyed.sort_by(|a, b| b.0.cmp(&a.0));
        self.order = keyed.into_iter().map(|(_, i)| i).collect();
    }

    fn security_group_id(&mut self, name: &str, project: &str) -> Result<String, String> {
        let found = self.security_groups.iter().find(|(_, g)| {
            g.get("name").and_then(Value::as_str) == Some(name)
                && g.get("project_id").and_then(Value::as_str) == Some(project)
        });
        if let Some((id, _)) = found {
            return Ok(id.clone());
        }
        self.add_security_group(SecurityGroupSpec {
            id: None,
            name: name.to_string(),
            project_id: project.to_string(),
            stateful: true,
            rules: None,
        })
    }

    /// (network id, subnet id) of the network called `name`, created in `project` if missing.
    fn network_for(&mut self, name: &str, project: &str) -> (String, String) {
        let found = self
            .networks
            .iter()
            .find(|(_, n)| n.get("name").and_then(Value::as_str) == Some(name));
        if let Some((id, n)) = found {
            let subnet = n
                .get("subnets")
                .and_then(|s| s.get(0))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            return (id.clone(), subnet);
        }
        self.seq += 1;
        let id = uuid(6, self.seq);
        let net = self.network_json(&id, name, project, false, false);
        let subnet = uuid(7, self.seq);
        let mut net = net;
        set_all(&mut net, &[("subnets", json!([subnet]))]);
        self.networks.insert(id.clone(), net);
        (id, subnet)
    }

    fn network_json(
        &self,
        id: &str,
        name: &str,
        project: &str,
        external: bool,
        shared: bool,
    ) -> Value {
        let mut n = self.t.network.clone();
        set_all(
            &mut n,
            &[
                ("id", json!(id)),
                ("name", json!(name)),
                ("project_id", json!(project)),
                ("tenant_id", json!(project)),
                ("router:external", json!(external)),
                ("shared", json!(shared)),
                ("subnets", json!([uuid(7, fnv(id))])),
                ("qos_policy_id", Value::Null),
            ],
        );
        n
    }
}

/// Strings of the Neutron samples rewritten so that every address is on loopback.
const SAMPLE_REWRITES: [(&str, &str); 5] = [
    ("172.24.4.228", "127.203.4.228"),
    ("172.24.4.227", "127.203.4.227"),
    ("172.24.4.42", "127.203.4.42"),
    ("172.24.4.2", "127.203.4.2"),
    ("10.0.0.1", "127.203.0.1"),
];

fn rewrite_strings(v: &mut Value, map: &[(&str, &str)]) {
    match v {
        Value::String(s) => {
            if let Some((_, to)) = map.iter().find(|(from, _)| s == from) {
                *s = (*to).to_string();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_strings(x, map)),
        Value::Object(o) => o.values_mut().for_each(|x| rewrite_strings(x, map)),
        _ => {}
    }
}

fn set_all(v: &mut Value, fields: &[(&str, Value)]) {
    if let Some(o) = v.as_object_mut() {
        for (k, val) in fields {
            o.insert((*k).to_string(), val.clone());
        }
    }
}

/// Removes `created_at` / `updated_at` from a Neutron resource and the rules inside it.
fn strip_timestamps(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("created_at");
        o.remove("updated_at");
        if let Some(rules) = o
            .get_mut("security_group_rules")
            .and_then(Value::as_array_mut)
        {
            rules.iter_mut().for_each(strip_timestamps);
        }
    }
}

/// A Neutron resource changed: new `updated_at`, next `revision_number`.
fn touch_revision(v: &mut Value, now: &str) {
    let rev = v
        .get("revision_number")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        + 1;
    set_all(
        v,
        &[("updated_at", json!(now)), ("revision_number", json!(rev))],
    );
}

/// `YYYY-MM-DDTHH:MM:SS` of an ISO 8601 UTC time (`Z`, `+00:00`, a fraction or nothing after
/// it), so that times compare as strings; `None` for anything else.
fn utc_seconds(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let shape = b.len() >= 19
        && b.iter().take(19).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let rest = s.get(19..)?;
    let rest = match rest.strip_prefix('.') {
        Some(frac) => frac.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => rest,
    };
    matches!(rest, "" | "Z" | "+00:00").then(|| s[..19].to_string())
}

fn generated_project(p: usize) -> String {
    format!("57170000{p:024x}")
}

/// 127.<second>.x.y for the k-th address, host parts 1–254.
pub fn loopback_ip(second: u8, k: usize) -> Ipv4Addr {
    let host = (k % 254 + 1) as u8;
    let rest = k / 254;
    Ipv4Addr::new(
        127,
        second.saturating_add((rest / 256) as u8),
        (rest % 256) as u8,
        host,
    )
}

/// A deterministic UUID-shaped id: `kind` tells resources apart, `n` numbers them.
pub fn uuid(kind: u16, n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        0x5717_0000u32 | u32::from(kind),
        (n >> 48) & 0xffff,
        (n >> 36) & 0xfff,
        (n >> 24) & 0xfff,
        n & 0xff_ffff_ffff
    )
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

// ---------------------------------------------------------------------------------------------
// Tokens, faults, counting.

/// How the fake decides whether a token is good and what it may do.
#[derive(Debug, Clone)]
pub enum TokenCheck {
    /// Ask Keystone like keystonemiddleware does: `GET {url}/auth/tokens` with `X-Auth-Token` and
    /// `X-Subject-Token` both set to the token (a token may validate itself under Keystone's default
    /// policy). `url` is the identity endpoint including `/v3`, plain `http://`. 200 → good (admin
    /// when the token has the `admin` role; project from `token.project.id`), cached 5 s; 401/404 →
    /// 401; anything else → 503.
    Keystone { url: String },
    /// A fixed set of good tokens. `project_id: None` = a non-`all_tenants` listing shows every
    /// project (real Nova would show only the token's project).
    Static {
        tokens: HashSet<String>,
        admin: bool,
        project_id: Option<String>,
    },
}

impl TokenCheck {
    /// Static admin tokens, no project scope.
    pub fn admin(tokens: &[&str]) -> TokenCheck {
        TokenCheck::Static {
            tokens: tokens.iter().map(|t| t.to_string()).collect(),
            admin: true,
            project_id: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Identity {
    admin: bool,
    project_id: Option<String>,
}

/// Which fake service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Compute,
    Network,
}

/// What a fault does to a matching request.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Wait this long before answering (the answer itself is normal unless another fault applies).
    Delay(Duration),
    /// Answer this status with the service's error body.
    Status(u16),
    /// 200 with a body that is not JSON (the real body cut in half, then garbage).
    InvalidJson,
    /// 200 whose top-level resource key (`servers`, `ports`, `server`, ...) is absent.
    MissingCollection,
    /// 200 whose first item (or the single resource) has no `id`.
    ItemWithoutId,
    /// A `<collection>_links` next link pointing back at the first page (the same URL without
    /// `marker`), even when the page is not full.
    PaginationLoop,
    /// Announce the full `Content-Length`, send half the body, then drop the connection.
    DropMidBody,
}

/// One fault: applies to requests to `service` whose path starts with `path_prefix`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub service: Service,
    pub path_prefix: String,
    pub kind: FaultKind,
    /// Sticky faults stay until [`Faults::clear`]; others are used up by the first matching
    /// request (whatever its outcome).
    pub sticky: bool,
}

impl Fault {
    pub fn once(service: Service, path_prefix: &str, kind: FaultKind) -> Fault {
        Fault {
            service,
            path_prefix: path_prefix.to_string(),
            kind,
            sticky: false,
        }
    }

    pub fn sticky(service: Service, path_prefix: &str, kind: FaultKind) -> Fault {
        Fault {
            sticky: true,
            ..Fault::once(service, path_prefix, kind)
        }
    }
}

/// The shared, runtime-switchable fault list. Every matching fault applies (delays first; then the
/// first status/body fault decides).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

#[derive(Debug, Default)]
struct FaultState {
    active: Vec<Fault>,
    fired: usize,
}

impl Faults {
    /// Adds a fault.
    pub fn set(&self, fault: Fault) {
        if let Ok(mut s) = self.inner.lock() {
            s.active.push(fault);
        }
    }

    /// Removes every fault.
    pub fn clear(&self) {
        if let Ok(mut s) = self.inner.lock() {
            s.active.clear();
        }
    }

    /// How many times a fault was applied so far.
    pub fn fired(&self) -> usize {
        self.inner.lock().map(|s| s.fired).unwrap_or(0)
    }

    /// Faults not used up yet.
    pub fn pending(&self) -> usize {
        self.inner.lock().map(|s| s.active.len()).unwrap_or(0)
    }

    fn take(&self, service: Service, path: &str) -> Vec<FaultKind> {
        let Ok(mut s) = self.inner.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        s.active.retain(|f| {
            if f.service == service && path.starts_with(&f.path_prefix) {
                out.push(f.kind.clone());
                f.sticky
            } else {
                true
            }
        });
        s.fired += out.len();
        out
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub service: Service,
    pub path: String,
    pub query: String,
    pub had_token: bool,
    /// The `OpenStack-API-Version` or `X-OpenStack-Nova-API-Version` header as sent.
    pub microversion: Option<String>,
    pub status: u16,
}

const LOG_CAP: usize = 100_000;

#[derive(Debug, Default)]
struct Counts {
    by_path: HashMap<String, usize>,
    by_token: HashMap<String, usize>,
    log: Vec<LoggedRequest>,
}

// ---------------------------------------------------------------------------------------------
// The servers.

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct FakeConfig {
    pub cloud: Cloud,
    pub compute_listen: SocketAddr,
    pub network_listen: SocketAddr,
    pub tokens: TokenCheck,
    /// Nova `[api]max_limit`: the default and the cap of `limit` (1000 in Nova).
    pub max_limit: usize,
    /// Neutron `pagination_max_limit`: `None` = no cap and no default page size (Neutron's default).
    pub neutron_max_limit: Option<usize>,
    /// Neutron's `pagination` extension; off = `limit`/`marker` ignored, everything in one reply.
    pub neutron_pagination: bool,
    /// Neutron's `standard-attr-timestamp` extension; off = not in `/v2.0/extensions`, and
    /// `changed_since` is answered with 400.
    pub neutron_timestamps: bool,
}

impl FakeConfig {
    /// Both services on `ip`, ephemeral ports, Nova max_limit 1000, Neutron uncapped.
    pub fn new(ip: IpAddr, cloud: Cloud, tokens: TokenCheck) -> FakeConfig {
        FakeConfig {
            cloud,
            compute_listen: SocketAddr::new(ip, 0),
            network_listen: SocketAddr::new(ip, 0),
            tokens,
            max_limit: 1000,
            neutron_max_limit: None,
            neutron_pagination: true,
            neutron_timestamps: true,
        }
    }
}

struct Ctx {
    cloud: RwLock<Cloud>,
    tokens: TokenCheck,
    cache: Mutex<HashMap<String, (Instant, Identity)>>,
    seen: Mutex<HashSet<String>>,
    expiring: Mutex<HashSet<String>>,
    counts: Mutex<Counts>,
    faults: Faults,
    max_limit: usize,
    neutron_max_limit: Option<usize>,
    neutron_pagination: bool,
    neutron_timestamps: bool,
    keystone_calls: Mutex<usize>,
    /// Bumped by every [`FakeCloud::with_cloud`]; invalidates `render_cache`.
    generation: std::sync::atomic::AtomicU64,
    render_cache: Mutex<RenderCache>,
}

/// (shape bucket, admin, detail, host): what a rendered server depends on.
type ShapeKey = (usize, bool, bool, String);

/// Serialized servers per shape, by server index; emptied when the cloud's generation changes.
#[derive(Default)]
struct RenderCache {
    generation: u64,
    variants: HashMap<ShapeKey, Vec<Option<Arc<Vec<u8>>>>>,
}

#[derive(Clone)]
struct Svc {
    ctx: Arc<Ctx>,
    service: Service,
    addr: SocketAddr,
}

/// The running fake: Nova and Neutron on their own listeners, served by a 2-worker tokio runtime on
/// a thread of its own. Dropping it stops both.
pub struct FakeCloud {
    compute_addr: SocketAddr,
    network_addr: SocketAddr,
    ctx: Arc<Ctx>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

const KEYSTONE_CACHE: Duration = Duration::from_secs(5);

impl FakeCloud {
    /// Binds both listeners (errors name the address) and starts serving.
    pub fn start(config: FakeConfig) -> std::io::Result<FakeCloud> {
        let bind = |addr: SocketAddr, what: &str| {
            std::net::TcpListener::bind(addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .map_err(|e| {
                    std::io::Error::new(e.kind(), format!("fake {what}: cannot bind {addr}: {e}"))
                })
        };
        let compute = bind(config.compute_listen, "compute")?;
        let network = bind(config.network_listen, "network")?;
        let compute_addr = compute.local_addr()?;
        let network_addr = network.local_addr()?;
        let ctx = Arc::new(Ctx {
            cloud: RwLock::new(config.cloud),
            tokens: config.tokens,
            cache: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashSet::new()),
            expiring: Mutex::new(HashSet::new()),
            counts: Mutex::new(Counts::default()),
            faults: Faults::default(),
            max_limit: config.max_limit.max(1),
            neutron_max_limit: config.neutron_max_limit.map(|m| m.max(1)),
            neutron_pagination: config.neutron_pagination,
            neutron_timestamps: config.neutron_timestamps,
            keystone_calls: Mutex::new(0),
            generation: std::sync::atomic::AtomicU64::new(0),
            render_cache: Mutex::new(RenderCache::default()),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fake-cloud")
            .enable_all()
            .build()?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let app = |service: Service, addr: SocketAddr| {
            Router::new().fallback(handle).with_state(Svc {
                ctx: ctx.clone(),
                service,
                addr,
            })
        };
        let compute_app = app(Service::Compute, compute_addr);
        let network_app = app(Service::Network, network_addr);
        let thread = std::thread::Builder::new()
            .name("fake-cloud".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let (c, n) = match (
                        tokio::net::TcpListener::from_std(compute),
                        tokio::net::TcpListener::from_std(network),
                    ) {
                        (Ok(c), Ok(n)) => (c, n),
                        (Err(e), _) | (_, Err(e)) => {
                            tracing::error!(error = %e, "fake cloud: cannot register the listeners");
                            return;
                        }
                    };
                    tokio::select! {
                        r = async { axum::serve(c, compute_app).await } => {
                            if let Err(e) = r { tracing::error!(error = %e, "fake compute stopped"); }
                        }
                        r = async { axum::serve(n, network_app).await } => {
                            if let Err(e) = r { tracing::error!(error = %e, "fake network stopped"); }
                        }
                        _ = stop_rx => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_millis(200));
            })?;
        Ok(FakeCloud {
            compute_addr,
            network_addr,
            ctx,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    pub fn compute_addr(&self) -> SocketAddr {
        self.compute_addr
    }

    pub fn network_addr(&self) -> SocketAddr {
        self.network_addr
    }

    /// The compute endpoint as a catalog would list it: `http://ip:port/v2.1`.
    pub fn compute_url(&self) -> String {
        format!("http://{}/v2.1", self.compute_addr)
    }

    /// The network endpoint as a catalog would list it: `http://ip:port` (clients add `/v2.0/...`).
    pub fn network_url(&self) -> String {
        format!("http://{}", self.network_addr)
    }

    /// The runtime-switchable faults.
    pub fn faults(&self) -> &Faults {
        &self.ctx.faults
    }

    /// Every token seen so far (and every static one) gets one 401 on its next request; the
    /// Keystone cache is emptied.
    pub fn expire_tokens(&self) {
        let mut all: HashSet<String> = self.ctx.seen.lock().map(|s| s.clone()).unwrap_or_default();
        if let TokenCheck::Static { tokens, .. } = &self.ctx.tokens {
            all.extend(tokens.iter().cloned());
        }
        if let Ok(mut c) = self.ctx.cache.lock() {
            all.extend(c.keys().cloned());
            c.clear();
        }
        if let Ok(mut e) = self.ctx.expiring.lock() {
            e.extend(all);
        }
    }

    /// Requests to this exact path (no query), any service, any outcome.
    pub fn requests_to(&self, path: &str) -> usize {
        self.ctx
            .counts
            .lock()
            .map(|c| c.by_path.get(path).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Requests that carried this token.
    pub fn requests_with_token(&self, token: &str) -> usize {
        self.ctx
            .counts
            .lock()
            .map(|c| c.by_token.get(token).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Every request so far (the first 100 000), in arrival order.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.ctx
            .counts
            .lock()
            .map(|c| c.log.clone())
            .unwrap_or_default()
    }

    /// Forgets all counts and the log.
    pub fn reset_counts(&self) {
        if let Ok(mut c) = self.ctx.counts.lock() {
            *c = Counts::default();
        }
    }

    /// How often the fake asked Keystone (cache misses).
    pub fn keystone_validations(&self) -> usize {
        self.ctx.keystone_calls.lock().map(|c| *c).unwrap_or(0)
    }

    /// Changes the cloud while serving (add or remove servers, set diagnostics, ...).
    pub fn with_cloud<R>(&self, f: impl FnOnce(&mut Cloud) -> R) -> Option<R> {
        let out = self.ctx.cloud.write().ok().map(|mut c| f(&mut c));
        self.ctx
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        out
    }
}

impl Drop for FakeCloud {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A reply before faults and serialization.
struct Out {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
    /// The top-level resource key, for the body faults.
    resource: Option<&'static str>,
    /// The body already serialized (then `body` is unused): the server list is assembled from
    /// cached per-server JSON.
    raw: Option<Vec<u8>>,
}

impl Out {
    fn ok(body: Value, resource: Option<&'static str>) -> Out {
        Out {
            status: 200,
            headers: Vec::new(),
            body,
            resource,
            raw: None,
        }
    }
}

fn nova_error(status: u16, message: &str) -> Out {
    let name = match status {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        405 => "badMethod",
        409 => "conflictingRequest",
        413 | 429 => "overLimit",
        501 => "notImplemented",
        503 => "serviceUnavailable",
        _ => "computeFault",
    };
    Out {
        status,
        headers: Vec::new(),
        body: json!({ name: {"code": status, "message": message} }),
        resource: None,
        raw: None,
    }
}

fn neutron_error(status: u16, message: &str) -> Out {
    let kind = match status {
        400 => "HTTPBadRequest",
        403 => "HTTPForbidden",
        404 => "HTTPNotFound",
        405 => "HTTPMethodNotAllowed",
        503 => "HTTPServiceUnavailable",
        _ => "HTTPInternalServerError",
    };
    Out {
        status,
        headers: Vec::new(),
        body: json!({"NeutronError": {"type": kind, "message": message, "detail": ""}}),
        resource: None,
        raw: None,
    }
}

fn service_error(service: Service, status: u16, message: &str) -> Out {
    match service {
        Service::Compute => nova_error(status, message),
        Service::Network => neutron_error(status, message),
    }
}

/// keystonemiddleware's 401.
fn unauthorized() -> Out {
    Out {
        status: 401,
        headers: vec![(
            "www-authenticate",
            "Keystone uri=\"http://127.0.0.1/identity\"".to_string(),
        )],
        body: json!({"error": {"code": 401, "title": "Unauthorized",
                     "message": "The request you have made requires authentication."}}),
        resource: None,
        raw: None,
    }
}

async fn handle(State(svc): State<Svc>, method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let ctx = &svc.ctx;
    let path = uri.path().to_string();
    let query = uri.query().unwrap_or("").to_string();
    let token = header(&headers, "x-auth-token");
    let host = header(&headers, "host").unwrap_or_else(|| svc.addr.to_string());
    let mv_header = header(&headers, "openstack-api-version")
        .or_else(|| header(&headers, "x-openstack-nova-api-version"));

    let faults = ctx.faults.take(svc.service, &path);
    for f in &faults {
        if let FaultKind::Delay(d) = f {
            tokio::time::sleep(*d).await;
        }
    }
    let status_fault = faults.iter().find_map(|f| match f {
        FaultKind::Status(s) => Some(*s),
        _ => None,
    });
    let body_fault = faults
        .iter()
        .find(|f| !matches!(f, FaultKind::Delay(_) | FaultKind::Status(_)))
        .cloned();

    let out = if let Some(s) = status_fault {
        service_error(svc.service, s, "injected fault")
    } else if method != Method::GET {
        service_error(svc.service, 405, "only GET is implemented by the fake")
    } else {
        match svc.service {
            Service::Compute => nova(ctx, &path, &query, token.as_deref(), &headers, &host).await,
            Service::Network => neutron(ctx, &path, &query, token.as_deref(), &host).await,
        }
    };

    if let Ok(mut c) = ctx.counts.lock() {
        *c.by_path.entry(path.clone()).or_insert(0) += 1;
        if let Some(t) = &token {
            *c.by_token.entry(t.clone()).or_insert(0) += 1;
        }
        if c.log.len() < LOG_CAP {
            c.log.push(LoggedRequest {
                service: svc.service,
                path: path.clone(),
                query: query.clone(),
                had_token: token.is_some(),
                microversion: mv_header.clone(),
                status: out.status,
            });
        }
    }
    tracing::debug!(service = ?svc.service, %path, status = out.status, "fake cloud request");
    finish(out, body_fault, &host, &path, &query)
}

fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

fn finish(mut out: Out, fault: Option<FaultKind>, host: &str, path: &str, query: &str) -> Response {
    let ok = (200..300).contains(&out.status);
    let mut drop_mid_body = false;
    let mut invalid_json = false;
    let structural = matches!(
        fault,
        Some(FaultKind::MissingCollection | FaultKind::ItemWithoutId | FaultKind::PaginationLoop)
    );
    if ok && structural {
        if let Some(raw) = out.raw.take() {
            out.body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        }
    }
    if let (true, Some(f)) = (ok, fault) {
        let key = out.resource;
        match f {
            FaultKind::MissingCollection => {
                if let (Some(o), Some(k)) = (out.body.as_object_mut(), key) {
                    o.remove(k);
                }
            }
            FaultKind::ItemWithoutId => {
                if let Some(item) = key.and_then(|k| out.body.get_mut(k)) {
                    let target = match item {
                        Value::Array(a) => a.first_mut(),
                        other => Some(other),
                    };
                    if let Some(Value::Object(o)) = target {
                        o.remove("id");
                    }
                }
            }
            FaultKind::PaginationLoop => {
                if let (Some(o), Some(k)) = (out.body.as_object_mut(), key) {
                    let first: Vec<(String, String)> = parse_query(query)
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|(k, _)| k != "marker")
                        .collect();
                    let href = absolute(host, path, &first);
                    o.insert(
                        format!("{}_links", k),
                        json!([{"href": href, "rel": "next"}]),
                    );
                }
            }
            FaultKind::InvalidJson => invalid_json = true,
            FaultKind::DropMidBody => drop_mid_body = true,
            FaultKind::Delay(_) | FaultKind::Status(_) => {}
        }
    }
    let mut bytes = match out.raw.take() {
        Some(raw) => raw,
        None => serde_json::to_vec(&out.body).unwrap_or_default(),
    };
    if invalid_json {
        bytes.truncate(bytes.len() / 2);
        bytes.extend_from_slice(b"<html>not json</html>");
    }
    let full_len = bytes.len();
    let body = if drop_mid_body {
        let half = Bytes::from(bytes[..full_len / 2].to_vec());
        Body::new(DropBody {
            first: Some(half),
            pause: Box::pin(tokio::time::sleep(Duration::from_millis(50))),
        })
    } else {
        Body::from(bytes)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() =
        StatusCode::from_u16(out.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = resp.headers_mut();
    h.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if drop_mid_body {
        h.insert(
            axum::http::header::CONTENT_LENGTH,
            HeaderValue::from(full_len),
        );
    }
    for (k, v) in out.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.append(name, value);
        }
    }
    resp
}

/// A body that sends its first chunk, waits a moment (so it is flushed), then fails, which makes
/// hyper drop the connection short of the announced `Content-Length`.
struct DropBody {
    first: Option<Bytes>,
    pause: Pin<Box<tokio::time::Sleep>>,
}

impl hyper::body::Body for DropBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, std::io::Error>>> {
        if let Some(b) = self.first.take() {
            return Poll::Ready(Some(Ok(hyper::body::Frame::data(b))));
        }
        match self.pause.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "injected fault: connection dropped mid-body",
            )))),
        }
    }
}

fn parse_query(query: &str) -> Result<Vec<(String, String)>, String> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query)
        .map_err(|e| format!("query string is not valid: {e}"))
}

fn absolute(host: &str, path: &str, params: &[(String, String)]) -> String {
    let q = serde_urlencoded::to_string(params).unwrap_or_default();
    if q.is_empty() {
        format!("http://{host}{path}")
    } else {
        format!("http://{host}{path}?{q}")
    }
}

async fn authenticate(ctx: &Ctx, token: Option<&str>) -> Result<Identity, Out> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Err(unauthorized());
    };
    if ctx
        .expiring
        .lock()
        .map(|mut e| e.remove(token))
        .unwrap_or(false)
    {
        return Err(unauthorized());
    }
    let identity = match &ctx.tokens {
        TokenCheck::Static {
            tokens,
            admin,
            project_id,
        } => {
            if !tokens.contains(token) {
                return Err(unauthorized());
            }
            Identity {
                admin: *admin,
                project_id: project_id.clone(),
            }
        }
        TokenCheck::Keystone { url } => {
            let cached = ctx.cache.lock().ok().and_then(|c| {
                c.get(token)
                    .filter(|(at, _)| at.elapsed() < KEYSTONE_CACHE)
                    .map(|(_, id)| id.clone())
            });
            match cached {
                Some(id) => id,
                None => {
                    if let Ok(mut n) = ctx.keystone_calls.lock() {
                        *n += 1;
                    }
                    let id = keystone_validate(url, token).await?;
                    if let Ok(mut c) = ctx.cache.lock() {
                        c.insert(token.to_string(), (Instant::now(), id.clone()));
                    }
                    id
                }
            }
        }
    };
    if let Ok(mut s) = ctx.seen.lock() {
        s.insert(token.to_string());
    }
    Ok(identity)
}

/// `GET {url}/auth/tokens` over plain HTTP/1.1 (no TLS: the fake Keystone is on loopback).
async fn keystone_validate(url: &str, token: &str) -> Result<Identity, Out> {
    let unavailable = |why: &str| {
        tracing::warn!(reason = why, "fake cloud: token validation failed");
        Out {
            status: 503,
            headers: Vec::new(),
            body: json!({"error": {"code": 503, "title": "Service Unavailable",
                         "message": format!("Authentication service unavailable: {why}")}}),
            resource: None,
            raw: None,
        }
    };
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(unauthorized());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(unavailable("the Keystone URL must start with http://"));
    };
    let (authority, base) = rest.split_once('/').unwrap_or((rest, ""));
    let base = base.trim_end_matches('/');
    let path = if base.is_empty() {
        "/auth/tokens".to_string()
    } else {
        format!("/{base}/auth/tokens")
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/json\r\nX-Auth-Token: {token}\r\nX-Subject-Token: {token}\r\nConnection: close\r\n\r\n"
    );
    let exchange = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(authority).await?;
        s.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        s.take(4 << 20).read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let raw = match tokio::time::timeout(Duration::from_secs(5), exchange).await {
        Ok(Ok(raw)) => raw,
        Ok(Err(e)) => return Err(unavailable(&format!("GET {authority}{path}: {e}"))),
        Err(_) => {
            return Err(unavailable(&format!(
                "GET {authority}{path}: no answer in 5 s"
            )))
        }
    };
    let (status, body) =
        split_http(&raw).ok_or_else(|| unavailable("Keystone's reply is not HTTP"))?;
    match status {
        200..=299 => {}
        401 | 404 => return Err(unauthorized()),
        s => return Err(unavailable(&format!("Keystone answered HTTP {s}"))),
    }
    let v: Value = serde_json::from_slice(&body)
        .map_err(|e| unavailable(&format!("Keystone's token body is not JSON: {e}")))?;
    let t = v.get("token").unwrap_or(&Value::Null);
    let admin = t.get("roles").and_then(Value::as_array).is_some_and(|r| {
        r.iter()
            .any(|r| r.get("name").and_then(Value::as_str) == Some("admin"))
    });
    let project_id = t
        .get("project")
        .and_then(|p| p.get("id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok(Identity { admin, project_id })
}

/// (status, body) of a raw HTTP/1.x response; de-chunks a chunked body.
fn split_http(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    let mut body = &raw[end + 4..];
    if !chunked {
        return Some((status, body.to_vec()));
    }
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let line_end = body.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&body[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some((status, out));
        }
        let start = line_end + 2;
        out.extend_from_slice(body.get(start..start + size)?);
        body = body.get(start + size + 2..)?;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Nova.

/// Fields that appear from a microversion on (minor number).
const GATED: &[(&str, u32)] = &[
    ("locked", 9),
    ("description", 19),
    ("tags", 26),
    ("trusted_image_certificates", 63),
    ("server_groups", 71),
    ("locked_reason", 73),
    ("pinned_availability_zone", 96),
    ("scheduler_hints", 100),
];
const ADMIN_ONLY: &[&str] = &[
    "OS-EXT-SRV-ATTR:host",
    "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "OS-EXT-SRV-ATTR:instance_name",
];

/// The negotiated minor version, or the error reply.
fn microversion(headers: &HeaderMap) -> Result<u32, Out> {
    let parse = |v: &str| -> Result<u32, Out> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("latest") {
            return Ok(NOVA_MAX_MINOR);
        }
        let parsed = v
            .split_once('.')
            .and_then(|(ma, mi)| Some((ma.parse::<u32>().ok()?, mi.parse::<u32>().ok()?)));
        let Some((major, minor)) = parsed else {
            return Err(nova_error(
                400,
                &format!("API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."),
            ));
        };
        if major != 2 || !(NOVA_MIN_MINOR..=NOVA_MAX_MINOR).contains(&minor) {
            return Err(nova_error(
                406,
                &format!("Version {major}.{minor} is not supported by the API. Minimum is 2.{NOVA_MIN_MINOR} and maximum is 2.{NOVA_MAX_MINOR}."),
            ));
        }
        Ok(minor)
    };
    for v in headers.get_all("openstack-api-version") {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut it = part.split_whitespace();
            if let (Some(svc), Some(ver)) = (it.next(), it.next()) {
                if svc.eq_ignore_ascii_case("compute") {
                    return parse(ver);
                }
            }
        }
    }
    if let Some(v) = header(headers, "x-openstack-nova-api-version") {
        return parse(&v);
    }
    Ok(1)
}

fn truthy(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "" | "1" | "true" | "t" | "yes" | "y" | "on" => Some(true),
        "0" | "false" | "f" | "no" | "n" | "off" => Some(false),
        _ => None,
    }
}

fn render_server(
    t: &Templates,
    stored: &Value,
    minor: u32,
    admin: bool,
    host: &str,
    detail: bool,
) -> Value {
    let id = stored
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let links = json!([
        {"href": format!("http://{host}/v2.1/servers/{id}"), "rel": "self"},
        {"href": format!("http://{host}/servers/{id}"), "rel": "bookmark"},
    ]);
    if !detail {
        return json!({"id": id, "name": stored.get("name").cloned().unwrap_or(Value::Null), "links": links});
    }
    let mut v = stored.clone();
    if let Some(o) = v.as_object_mut() {
        for (k, since) in GATED {
            if minor < *since {
                o.remove(*k);
            }
        }
        if !admin {
            for k in ADMIN_ONLY {
                o.remove(*k);
            }
        }
        if !(minor >= 90 || (admin && minor >= 3)) {
            o.remove("OS-EXT-SRV-ATTR:hostname");
        }
        if minor < 47 {
            o.insert("flavor".into(), t.flavor_v21.clone());
        }
        if minor < 98 {
            if let Some(img) = o.get_mut("image").and_then(Value::as_object_mut) {
                img.remove("properties");
            }
        }
        o.insert("links".into(), links);
    }
    v
}

async fn nova(
    ctx: &Ctx,
    path: &str,
    query: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    host: &str,
) -> Out {
    let doc = |pick: fn(&Templates) -> &Value| -> Option<Value> {
        ctx.cloud.read().ok().map(|c| {
            let mut v = pick(&c.t).clone();
            rehost(&mut v, host);
            v
        })
    };
    match path {
        "/" => {
            let Some(v) = doc(|t| &t.versions) else {
                return nova_error(500, "fake cloud state is poisoned");
            };
            return Out {
                status: 300,
                ..Out::ok(v, Some("versions"))
            };
        }
        "/v2.1" | "/v2.1/" => {
            let Some(v) = doc(|t| &t.version_v21) else {
                return nova_error(500, "fake cloud state is poisoned");
            };
            return Out::ok(v, Some("version"));
        }
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/v2.1/") else {
        return nova_error(404, "The resource could not be found.");
    };
    let identity = match authenticate(ctx, token).await {
        Ok(i) => i,
        Err(out) => return out,
    };
    let minor = match microversion(headers) {
        Ok(m) => m,
        Err(out) => return out,
    };
    let mut out = nova_route(ctx, rest, query, &identity, minor, host);
    out.headers
        .push(("openstack-api-version", format!("compute 2.{minor}")));
    out.headers
        .push(("x-openstack-nova-api-version", format!("2.{minor}")));
    out.headers.push((
        "vary",
        "OpenStack-API-Version, X-OpenStack-Nova-API-Version".to_string(),
    ));
    out
}

fn rehost(v: &mut Value, host: &str) {
    match v {
        Value::String(s) if s.starts_with("http://openstack.example.com") => {
            *s = s.replacen("openstack.example.com", host, 1);
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rehost(x, host)),
        Value::Object(o) => o.values_mut().for_each(|x| rehost(x, host)),
        _ => {}
    }
}

fn nova_route(ctx: &Ctx, rest: &str, query: &str, id: &Identity, minor: u32, host: &str) -> Out {
    let mut segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    // A catalog URL may carry the project id: /v2.1/{project_id}/servers/...
    if segs.len() >= 2 && segs[0] != "servers" && segs[1] == "servers" {
        segs.remove(0);
    }
    let Ok(cloud) = ctx.cloud.read() else {
        return nova_error(500, "fake cloud state is poisoned");
    };
    let base_path = format!("/v2.1/{rest}");
    match segs.as_slice() {
        ["servers", "detail"] => {
            list_servers(ctx, &cloud, query, id, minor, host, &base_path, true)
        }
        ["servers"] => list_servers(ctx, &cloud, query, id, minor, host, &base_path, false),
        ["servers", sid] => match visible_server(&cloud, sid, id) {
            Some(s) => Out::ok(
                json!({"server": render_server(&cloud.t, s, minor, id.admin, host, true)}),
                Some("server"),
            ),
            None => nova_error(404, &format!("Instance {sid} could not be found.")),
        },
        ["servers", sid, "diagnostics"] => diagnostics(&cloud, sid, id, minor),
        _ => nova_error(404, "The resource could not be found."),
    }
}

fn visible_server<'a>(cloud: &'a Cloud, sid: &str, id: &Identity) -> Option<&'a Value> {
    let s = cloud
        .server_index
        .get(sid)
        .and_then(|&i| cloud.servers.get(i))?;
    let project = s.get("tenant_id").and_then(Value::as_str);
    match (&id.project_id, id.admin) {
        (_, true) | (None, _) => Some(s),
        (Some(p), false) => (project == Some(p.as_str())).then_some(s),
    }
}

fn diagnostics(cloud: &Cloud, sid: &str, id: &Identity, minor: u32) -> Out {
    let Some(s) = visible_server(cloud, sid, id) else {
        return nova_error(404, &format!("Instance {sid} could not be found."));
    };
    if !id.admin {
        return nova_error(
            403,
            "Policy doesn't allow os_compute_api:os-server-diagnostics to be performed.",
        );
    }
    match cloud
        .diagnostics
        .get(sid)
        .unwrap_or(&DiagnosticsReply::Fixture)
    {
        DiagnosticsReply::Status(code) => {
            let msg = match code {
                409 => format!(
                    "Cannot 'get_diagnostics' instance {sid} while it is in vm_state stopped"
                ),
                501 => "Action get_diagnostics is not implemented by the virt driver".to_string(),
                _ => format!("diagnostics of {sid} refused (injected)"),
            };
            nova_error(*code, &msg)
        }
        DiagnosticsReply::Body(v) => Out::ok(v.clone(), None),
        DiagnosticsReply::Fixture => {
            if s.get("status").and_then(Value::as_str) != Some("ACTIVE") {
                let state = s
                    .get("OS-EXT-STS:vm_state")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                return nova_error(
                    409,
                    &format!(
                        "Cannot 'get_diagnostics' instance {sid} while it is in vm_state {state}"
                    ),
                );
            }
            if minor >= 48 {
                Out::ok(cloud.t.diag_standard.clone(), None)
            } else {
                Out::ok(cloud.t.diag_legacy.clone(), None)
            }
        }
    }
}

const NOVA_LIST_PARAMS: &[&str] = &[
    "all_tenants",
    "limit",
    "marker",
    "project_id",
    "tenant_id",
    "status",
    "name",
    "changes-since",
    "changes-before",
    "sort_key",
    "sort_dir",
    "deleted",
    "host",
    "ip",
    "ip6",
    "image",
    "flavor",
    "user_id",
    "reservation_id",
    "locked",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "availability_zone",
    "config_drive",
    "key_name",
    "created_at",
    "description",
    "display_name",
];

#[allow(clippy::too_many_arguments)]
fn list_servers(
    ctx: &Ctx,
    cloud: &Cloud,
    query: &str,
    id: &Identity,
    minor: u32,
    host: &str,
    path: &str,
    detail: bool,
) -> Out {
    let params = match parse_query(query) {
        Ok(p) => p,
        Err(e) => return nova_error(400, &e),
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    };
    if minor >= 75 {
        if let Some((k, _)) = params
            .iter()
            .find(|(k, _)| !NOVA_LIST_PARAMS.contains(&k.as_str()))
        {
            return nova_error(
                400,
                &format!(
                    "Invalid input for query parameters {k}. Additional properties are not allowed"
                ),
            );
        }
    }
    let all_tenants = match get("all_tenants").map(truthy) {
        None => false,
        Some(Some(b)) => b,
        Some(None) => return nova_error(400, "Invalid input for query parameters all_tenants."),
    };
    if all_tenants && !id.admin {
        return nova_error(
            403,
            "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed.",
        );
    }
    let limit = match get("limit") {
        None => ctx.max_limit,
        Some(l) => match l.parse::<usize>() {
            Ok(0) => ctx.max_limit,
            Ok(n) => n.min(ctx.max_limit),
            Err(_) => return nova_error(400, "limit param must be an integer"),
        },
    };
    let project_filter: Option<String> = if all_tenants {
        get("project_id").or(get("tenant_id")).map(str::to_string)
    } else {
        id.project_id.clone()
    };
    let status = get("status").map(str::to_ascii_uppercase);
    let name = get("name");
    let changes_since = match get("changes-since") {
        None => None,
        Some(v) => match utc_seconds(v) {
            Some(t) => Some(t),
            None => {
                return nova_error(
                    400,
                    &format!("Invalid input for query parameters changes-since. Value: {v}. '{v}' is not a 'date-time'"),
                )
            }
        },
    };
    let since_ok = |v: Option<&Value>| {
        changes_since.as_deref().is_none_or(|t| {
            v.and_then(|s| s.get("updated"))
                .and_then(Value::as_str)
                .and_then(utc_seconds)
                .is_some_and(|u| u.as_str() >= t)
        })
    };
    // Live servers (indices into `servers`), then, with changes-since, deleted ones (indices into
    // `deleted`, offset by the number of servers).
    let live = cloud.servers.len();
    let stored = |i: usize| {
        if i < live {
            cloud.servers.get(i)
        } else {
            cloud.deleted.get(i - live)
        }
    };
    let field = |i: usize, k: &str| -> &str {
        stored(i)
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let dead = (live..live + cloud.deleted.len()).filter(|_| changes_since.is_some());
    let mut visible = cloud.order.iter().copied().chain(dead).filter(|&i| {
        project_filter
            .as_deref()
            .is_none_or(|p| field(i, "tenant_id") == p)
            && (i >= live || status.as_deref().is_none_or(|st| field(i, "status") == st))
            && name.is_none_or(|n| field(i, "name").contains(n))
            && since_ok(stored(i))
    });
    if let Some(marker) = get("marker") {
        if !visible.by_ref().any(|i| field(i, "id") == marker) {
            return nova_error(400, &format!("marker [{marker}] not found"));
        }
    }
    let page: Vec<usize> = visible.take(limit).collect();

    // Serialize each server once per shape and host; a page is then a concatenation.
    let bucket = SHAPE_THRESHOLDS.iter().filter(|t| **t <= minor).count();
    let generation = ctx.generation.load(std::sync::atomic::Ordering::SeqCst);
    let mut raw = b"{\"servers\":[".to_vec();
    {
        let Ok(mut cache) = ctx.render_cache.lock() else {
            return nova_error(500, "fake cloud render cache is poisoned");
        };
        if cache.generation != generation {
            cache.variants.clear();
            cache.generation = generation;
        }
        let slots = cache
            .variants
            .entry((bucket, id.admin, detail, host.to_string()))
            .or_insert_with(|| vec![None; cloud.servers.len()]);
        for (k, &i) in page.iter().enumerate() {
            if i >= live {
                let v =
                    stored(i).map(|s| render_server(&cloud.t, s, minor, id.admin, host, detail));
                if k > 0 {
                    raw.push(b',');
                }
                raw.extend_from_slice(
                    &serde_json::to_vec(&v.unwrap_or(Value::Null)).unwrap_or_default(),
                );
                continue;
            }
            let Some(slot) = slots.get_mut(i) else {
                continue;
            };
            let bytes = match slot {
                Some(b) => b.clone(),
                None => {
                    let v = cloud
                        .servers
                        .get(i)
                        .map(|s| render_server(&cloud.t, s, minor, id.admin, host, detail));
                    let b =
                        Arc::new(serde_json::to_vec(&v.unwrap_or(Value::Null)).unwrap_or_default());
                    *slot = Some(b.clone());
                    b
                }
            };
            if k > 0 {
                raw.push(b',');
            }
            raw.extend_from_slice(&bytes);
        }
    }
    raw.push(b']');
    if page.len() == limit {
        if let Some(&last) = page.last() {
            let mut next: Vec<(String, String)> = params
                .iter()
                .filter(|(k, _)| k != "marker")
                .cloned()
                .collect();
            next.push(("marker".into(), field(last, "id").to_string()));
            let links = json!([{"href": absolute(host, path, &next), "rel": "next"}]);
            raw.extend_from_slice(b",\"servers_links\":");
            raw.extend_from_slice(&serde_json::to_vec(&links).unwrap_or_default());
        }
    }
    raw.push(b'}');
    Out {
        raw: Some(raw),
        ..Out::ok(Value::Null, Some("servers"))
    }
}

/// Every microversion at which the server JSON changes shape (see `render_server`).
const SHAPE_THRESHOLDS: &[u32] = &[3, 9, 19, 26, 47, 63, 71, 73, 90, 96, 98, 100];

// ---------------------------------------------------------------------------------------------
// Neutron.

async fn neutron(ctx: &Ctx, path: &str, query: &str, token: Option<&str>, host: &str) -> Out {
    if path == "/" {
        return Out::ok(
            json!({"versions": [{"id": "v2.0", "status": "CURRENT",
                   "links": [{"href": format!("http://{host}/v2.0/"), "rel": "self"}]}]}),
            Some("versions"),
        );
    }
    let identity = match authenticate(ctx, token).await {
        Ok(i) => i,
        Err(out) => return out,
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let strip = |s: &str| s.strip_suffix(".json").unwrap_or(s).to_string();
    let Ok(cloud) = ctx.cloud.read() else {
        return neutron_error(500, "fake cloud state is poisoned");
    };
    match segs.as_slice() {
        ["v2.0", "extensions"] => {
            let mut ext = vec![
                json!({"alias": "security-group", "name": "security-group"}),
                json!({"alias": "router", "name": "Neutron L3 Router"}),
                json!({"alias": "sorting", "name": "Sorting support"}),
            ];
            if ctx.neutron_pagination {
                ext.push(json!({"alias": "pagination", "name": "Pagination support"}));
            }
            if ctx.neutron_timestamps {
                ext.push(json!({"alias": "standard-attr-timestamp",
                                "name": "Resource timestamps"}));
            }
            Out::ok(json!({"extensions": ext}), Some("extensions"))
        }
        ["v2.0", coll] if strip(coll) == "security-group-rules" => {
            let rules: BTreeMap<String, Value> = cloud
                .security_groups
                .values()
                .filter_map(|g| g.get("security_group_rules")?.as_array())
                .flatten()
                .filter_map(|r| Some((r.get("id")?.as_str()?.to_string(), r.clone())))
                .collect();
            list_neutron(
                ctx,
                &rules,
                "security_group_rules",
                query,
                &identity,
                host,
                path,
            )
        }
        ["v2.0", coll] => {
            let coll = strip(coll);
            match collection(&cloud, &coll) {
                Some((items, key, _)) => {
                    list_neutron(ctx, items, key, query, &identity, host, path)
                }
                None => neutron_error(404, "The resource could not be found."),
            }
        }
        ["v2.0", coll, rid] => {
            let coll = strip(coll);
            let rid = strip(rid);
            match collection(&cloud, &coll) {
                Some((items, _, single)) => {
                    match items.get(&rid).filter(|v| neutron_visible(v, &identity)) {
                        Some(v) => Out::ok(json!({ single: v }), Some(single)),
                        None => neutron_error(404, &format!("{single} {rid} could not be found.")),
                    }
                }
                None => neutron_error(404, "The resource could not be found."),
            }
        }
        _ => neutron_error(404, "The resource could not be found."),
    }
}

fn collection<'a>(
    cloud: &'a Cloud,
    name: &str,
) -> Option<(&'a BTreeMap<String, Value>, &'static str, &'static str)> {
    match name {
        "ports" => Some((&cloud.ports, "ports", "port")),
        "floatingips" => Some((&cloud.floatingips, "floatingips", "floatingip")),
        "networks" => Some((&cloud.networks, "networks", "network")),
        "security-groups" => Some((&cloud.security_groups, "security_groups", "security_group")),
        _ => None,
    }
}

fn neutron_visible(v: &Value, id: &Identity) -> bool {
    if id.admin {
        return true;
    }
    let Some(p) = &id.project_id else {
        return true;
    };
    v.get("project_id").and_then(Value::as_str) == Some(p.as_str())
        || v.get("shared").and_then(Value::as_bool) == Some(true)
}

fn field_matches(v: Option<&Value>, wanted: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == wanted,
        Some(Value::Bool(b)) => truthy(wanted) == Some(*b),
        Some(Value::Number(n)) => n.to_string() == wanted,
        Some(Value::Null) | None => wanted.is_empty(),
        Some(_) => false,
    }
}

const NEUTRON_RESERVED: &[&str] = &[
    "changed_since",
    "limit",
    "marker",
    "page_reverse",
    "fields",
    "sort_key",
    "sort_dir",
];

fn list_neutron(
    ctx: &Ctx,
    items: &BTreeMap<String, Value>,
    key: &'static str,
    query: &str,
    id: &Identity,
    host: &str,
    path: &str,
) -> Out {
    let params = match parse_query(query) {
        Ok(p) => p,
        Err(e) => return neutron_error(400, &e),
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    };
    let mut filters: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (k, v) in &params {
        if NEUTRON_RESERVED.contains(&k.as_str()) {
            continue;
        }
        let k = if k == "tenant_id" {
            "project_id"
        } else {
            k.as_str()
        };
        filters.entry(k.to_string()).or_default().push(v.as_str());
    }
    let changed_since = match get("changed_since") {
        None => None,
        Some(_) if !ctx.neutron_timestamps => {
            return neutron_error(400, "[changed_since] is invalid filter")
        }
        Some(v) => match utc_seconds(v) {
            Some(t) => Some(t),
            None => {
                return neutron_error(
                    400,
                    &format!(
                        "The given changed_since parameter {v:?} is not a valid timestamp; use \
                         YYYY-MM-DDTHH:MM:SSZ"
                    ),
                )
            }
        },
    };
    let fields: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v.as_str())
        .collect();
    let (limit, marker) = if ctx.neutron_pagination {
        let asked = match get("limit") {
            None => None,
            Some(l) => match l.parse::<i64>() {
                Ok(n) if n > 0 => Some(n as usize),
                Ok(_) => None,
                Err(_) => {
                    return neutron_error(
                        400,
                        &format!("Bad limit request: limit {l:?} is not an integer."),
                    )
                }
            },
        };
        let limit = match (asked, ctx.neutron_max_limit) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (a, m) => a.or(m),
        };
        (limit, get("marker"))
    } else {
        (None, None)
    };
    let range: Box<dyn Iterator<Item = (&String, &Value)>> = match marker {
        Some(m) => {
            if !items.contains_key(m) {
                return neutron_error(400, &format!("Bad request: marker {m} could not be found."));
            }
            Box::new(
                items.range::<str, _>((std::ops::Bound::Excluded(m), std::ops::Bound::Unbounded)),
            )
        }
        None => Box::new(items.iter()),
    };
    let matching = range.map(|(_, v)| v).filter(|v| {
        changed_since.as_deref().is_none_or(|since| {
            v.get("updated_at")
                .and_then(Value::as_str)
                .and_then(utc_seconds)
                .is_some_and(|u| u.as_str() >= since)
        }) && neutron_visible(v, id)
            && filters
                .iter()
                .all(|(k, wanted)| wanted.iter().any(|w| field_matches(v.get(k.as_str()), w)))
    });
    let page: Vec<Value> = match limit {
        Some(l) => matching.take(l).cloned().collect(),
        None => matching.cloned().collect(),
    };
    let ids: Vec<String> = page
        .iter()
        .filter_map(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut page = page;
    if !ctx.neutron_timestamps {
        // No timestamp plugin: Neutron has no created_at / updated_at to show.
        for v in &mut page {
            strip_timestamps(v);
        }
    }
    let page: Vec<Value> = if fields.is_empty() {
        page
    } else {
        page.into_iter()
            .map(|v| {
                let kept: Map<String, Value> = v
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, _)| fields.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                Value::Object(kept)
            })
            .collect()
    };
    let mut body = Map::new();
    let n = page.len();
    body.insert(key.to_string(), Value::Array(page));
    if let Some(l) = limit {
        let mut links = Vec::new();
        let others: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "marker" && k != "page_reverse")
            .cloned()
            .collect();
        if n == l {
            if let Some(last) = ids.last() {
                let mut q = others.clone();
                q.push(("marker".into(), last.clone()));
                links.push(json!({"href": absolute(host, path, &q), "rel": "next"}));
            }
        }
        if marker.is_some() {
            if let Some(first) = ids.first() {
                let mut q = others;
                q.push(("marker".into(), first.clone()));
                q.push(("page_reverse".into(), "True".into()));
                links.push(json!({"href": absolute(host, path, &q), "rel": "previous"}));
            }
        }
        if !links.is_empty() {
            body.insert(format!("{key}_links"), Value::Array(links));
        }
    }
    Out::ok(Value::Object(body), Some(key))
}
