//! The fake cloud's content, [`Cloud`]: Nova servers and Neutron ports, floating IPs, networks
//! and security groups, its constructors (empty, the upstream samples, `n` generated servers), its
//! clock and what tests ask of it. Adding resources is in `add`, changing them in `change`.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use serde_json::Value;

use super::samples::{
    Templates, PUBLIC_NET_ID, SAMPLE_FIXED_IP, SAMPLE_FLOATING_IP, SAMPLE_PROJECT, SAMPLE_REWRITES,
    SAMPLE_SERVER_ID,
};
use super::spec::{DiagnosticsReply, RuleSpec, SecurityGroupSpec, ServerSpec};
use super::values::{generated_project, iso8601, loopback_ip, rewrite_strings, uuid};

/// The cloud's content: Nova servers and Neutron ports, floating IPs, networks and security groups,
/// kept consistent by the builder methods. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Cloud {
    pub(super) t: Templates,
    /// Stored at the newest microversion, with the admin-only fields; trimmed when served.
    pub(super) servers: Vec<Value>,
    pub(super) server_index: HashMap<String, usize>,
    /// Indices into `servers`, newest first (created desc, id desc), like Nova.
    pub(super) order: Vec<usize>,
    pub(super) ports: BTreeMap<String, Value>,
    pub(super) floatingips: BTreeMap<String, Value>,
    pub(super) networks: BTreeMap<String, Value>,
    pub(super) security_groups: BTreeMap<String, Value>,
    pub(super) diagnostics: HashMap<String, DiagnosticsReply>,
    pub(super) seq: u64,
    /// Removed servers as Nova keeps them (status `DELETED`), listed only with `changes-since`.
    pub(super) deleted: Vec<Value>,
    /// Unix seconds that changes are stamped with; `None`: one second per change after the last
    /// generated `created`.
    pub(super) clock: Option<u64>,
}

/// 2024-01-01T00:00:00Z: the first generated `created` time.
pub(super) const BASE_EPOCH: u64 = 1_704_067_200;

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

    /// Sets the clock (Unix seconds) that later changes are stamped with (`updated`,
    /// `updated_at`), so tests can move the cloud's time, skew it or turn it back.
    pub fn set_clock(&mut self, unix_secs: u64) {
        self.clock = Some(unix_secs);
    }

    /// The stamp of a change made now.
    pub(super) fn now(&self) -> String {
        iso8601(self.now_secs())
    }

    /// The cloud's time (Unix seconds): the clock when set, else the base time plus one second per
    /// change made so far. Replies carry it as their `Date`, as a real API server's clock.
    pub fn now_secs(&self) -> u64 {
        self.clock.unwrap_or(BASE_EPOCH + self.seq)
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

    /// The Neutron ports of a server (by id).
    pub fn server_ports(&self, server_id: &str) -> Vec<String> {
        self.ports
            .iter()
            .filter(|(_, p)| p.get("device_id").and_then(Value::as_str) == Some(server_id))
            .map(|(k, _)| k.clone())
            .collect()
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

    pub(super) fn reorder(&mut self) {
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
}
