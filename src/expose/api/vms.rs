//! Hosts and cloud VMs. `GET /api/v1/vms` lists hosts (scanned addresses), filtered and paged; each
//! cloud host carries its VM link and security-group exposure. `GET /api/v1/vms/{id}` is one host in
//! full when `id` is a host id, or — when it is a cloud VM's instance id — the VM as the inventory
//! saw it with the state of every scanned address. Host ids of cloud VMs contain slashes
//! (`<instance>/<port>/<address>`); the route takes them raw or as `%2F`. With `[shard]`, an id
//! another shard owns is answered by a 307 to that shard's agent (`shard.peers`), or a 404 naming
//! the owning shard when no peers are configured.

use super::query::{self, path_escape, VmsQuery};
use super::{not_found, server_error, BadRequest};
use crate::expose::Shared;
use crate::inventory::shard::Shard;
use crate::model::{
    AnswersEverything, Event, Exposure, HostState, PortFinding, UnixSeconds, Verdict, Vm, VmLink,
};
use crate::store::{self, EventQuery};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Changes shown with one host or VM, newest first.
const RECENT_CHANGES: usize = 50;
/// At most this many hosts of one VM get their changes looked up (a VM has a handful of addresses).
const MAX_HOSTS_WITH_CHANGES: usize = 64;

/// One host as listed.
#[derive(Serialize)]
struct VmSummary<'a> {
    id: &'a str,
    address: String,
    group: &'a str,
    up: bool,
    open_ports: usize,
    unexpected_ports: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_cvss: Option<f64>,
    ports: &'a [PortFinding],
    last_scan: UnixSeconds,
    last_scan_id: u64,
    /// The cloud VM and Neutron port behind the address.
    #[serde(skip_serializing_if = "Option::is_none")]
    vm: Option<&'a VmLink>,
    /// What the port's security groups let in.
    #[serde(skip_serializing_if = "Option::is_none")]
    exposure: Option<&'a Exposure>,
    /// The host answers every TCP port probed (then `ports` lists no TCP port).
    #[serde(skip_serializing_if = "Option::is_none")]
    answers_everything: Option<&'a AnswersEverything>,
}

impl<'a> VmSummary<'a> {
    fn of(h: &'a HostState) -> Self {
        VmSummary {
            id: &h.id,
            address: h.address.to_string(),
            group: &h.group,
            up: h.up,
            open_ports: h.ports.len(),
            unexpected_ports: h.unexpected(),
            max_cvss: h.max_cvss(),
            ports: &h.ports,
            last_scan: h.last_scan,
            last_scan_id: h.last_scan_id,
            vm: h.vm.as_ref(),
            exposure: h.exposure.as_ref(),
            answers_everything: h.answers_everything.as_ref(),
        }
    }
}

/// Whether a security-group rule opens one of the host's open ports to the whole world.
fn world_open(h: &HostState) -> bool {
    h.ports.iter().any(|p| p.world.is_some())
}

pub async fn vms(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    match list_vms(&s, q) {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn list_vms(s: &Shared, q: Option<String>) -> Result<Response, BadRequest> {
    let VmsQuery {
        cve,
        service,
        cidr,
        port,
        project,
        vm,
        world,
        unexpected,
        min_cvss,
        limit,
        cursor,
    } = query::vms(q.as_deref())?;

    let view = s.state.read();
    let mut out = Vec::new();
    let mut next = None;
    let start = match &cursor {
        Some(c) => std::ops::Bound::Excluded(c.clone()),
        None => std::ops::Bound::Unbounded,
    };
    for (id, h) in view.hosts.range((start, std::ops::Bound::Unbounded)) {
        let keep = cidr.is_none_or(|c| c.contains(h.address))
            && port.is_none_or(|port| h.ports.iter().any(|f| f.port == port))
            && service.as_deref().is_none_or(|name| {
                h.ports.iter().any(|f| {
                    f.service
                        .as_ref()
                        .and_then(|s| s.name.as_deref())
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
                })
            })
            // Only cloud hosts belong to a project or a VM.
            && project.as_deref().is_none_or(|p| {
                h.vm.as_ref().is_some_and(|l| {
                    l.project_id == p || l.project_name.as_deref() == Some(p)
                })
            })
            && vm
                .as_deref()
                .is_none_or(|v| h.vm.as_ref().is_some_and(|l| l.vm_id == v))
            && world.is_none_or(|w| world_open(h) == w)
            && min_cvss.is_none_or(|m| h.max_cvss().is_some_and(|c| c >= m))
            && cve.as_deref().is_none_or(|id| h.has_vuln(id))
            && unexpected.is_none_or(|u| (h.unexpected() > 0) == u);
        if !keep {
            continue;
        }
        if out.len() == limit {
            next = out.last().map(|v: &VmSummary<'_>| v.id.to_string());
            break;
        }
        debug_assert_eq!(id, &h.id);
        out.push(VmSummary::of(h));
    }
    Ok(Json(json!({ "vms": out, "next_cursor": next })).into_response())
}

/// A host of a VM, in full, with its counts.
#[derive(Serialize)]
struct HostOfVm<'a> {
    #[serde(flatten)]
    host: &'a HostState,
    open_ports: usize,
    unexpected_ports: usize,
    world_open_ports: usize,
}

impl<'a> HostOfVm<'a> {
    fn of(h: &'a HostState) -> Self {
        HostOfVm {
            host: h,
            open_ports: h.ports.len(),
            unexpected_ports: h.unexpected(),
            world_open_ports: h.ports.iter().filter(|p| p.world.is_some()).count(),
        }
    }
}

/// What an id names.
enum Found {
    Host(Box<HostState>),
    /// A cloud VM: as the inventory has it (None when it is gone but hosts of it remain) and the
    /// hosts of its addresses.
    Instance(Option<Arc<Vm>>, Vec<HostState>),
}

fn find(s: &Shared, id: &str) -> Option<Found> {
    let view = s.state.read();
    if let Some(h) = view.hosts.get(id) {
        return Some(Found::Host(Box::new(h.clone())));
    }
    let instance = view.vms.get(id);
    let mut ids: BTreeSet<&str> = instance
        .iter()
        .flat_map(|v| v.addresses.iter().filter_map(|a| a.host.as_deref()))
        .collect();
    ids.extend(
        view.hosts
            .values()
            .filter(|h| h.vm.as_ref().is_some_and(|l| l.vm_id == id))
            .map(|h| h.id.as_str()),
    );
    let hosts: Vec<HostState> = ids
        .into_iter()
        .filter_map(|h| view.hosts.get(h).cloned())
        .collect();
    if instance.is_none() && hosts.is_empty() {
        return None;
    }
    Some(Found::Instance(instance.cloned(), hosts))
}

/// The newest changes recorded under any of `keys` (host ids, or a VM's instance id), newest first.
async fn recent_changes(s: &Shared, keys: Vec<String>) -> Result<Vec<Event>, store::Error> {
    store::blocking(&s.store, move |st| {
        let q = EventQuery {
            hosts: keys,
            limit: RECENT_CHANGES,
            newest_first: true,
            ..Default::default()
        };
        Ok(st.events(&q)?.into_iter().map(|(_, e)| e).collect())
    })
    .await
}

/// The answer for an id another shard owns: a 307 to its agent when peers are configured, else a
/// 404 naming the shard. `None`: this agent's shard owns it.
fn elsewhere(shard: &Shard, id: &str) -> Option<Response> {
    if shard.owns(id) {
        return None;
    }
    let owner = shard.owner_of(id);
    let body = |error: String| {
        Json(json!({
            "error": error,
            "shard": owner,
            "shard_count": shard.count,
        }))
    };
    Some(match shard.peer(owner) {
        Some(peer) => {
            let location = format!("{peer}/api/v1/vms/{}", path_escape(id));
            (
                StatusCode::TEMPORARY_REDIRECT,
                [(header::LOCATION, location.clone())],
                body(format!(
                    "{id:?} belongs to shard {owner} of {}: ask {location}",
                    shard.count
                )),
            )
                .into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            body(format!(
                "{id:?} belongs to shard {owner} of {}, not this agent's ({}); ask that shard's agent (set shard.peers to be redirected)",
                shard.count, shard.index
            )),
        )
            .into_response(),
    })
}

pub async fn vm(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    if let Some(r) = elsewhere(&crate::inventory::shard::current(), &id) {
        return r;
    }
    match find(&s, &id) {
        None => not_found(&format!(
            "no host or VM with id {id:?} in the current state (host ids of cloud VMs are <instance>/<port>/<address>)"
        )),
        Some(Found::Host(host)) => {
            let recent = match recent_changes(&s, vec![id]).await {
                Ok(e) => e,
                Err(e) => return server_error(e),
            };
            let unexpected: Vec<_> = host
                .ports
                .iter()
                .filter(|p| p.verdict == Verdict::Unexpected)
                .collect();
            Json(json!({
                "kind": "host",
                "vm": VmSummary::of(&host),
                "first_seen": host.first_seen,
                "last_seen": host.last_seen,
                "udp_open_filtered": host.udp_open_filtered,
                "os": host.os,
                "unexpected": unexpected,
                "recent_changes": recent,
            }))
            .into_response()
        }
        Some(Found::Instance(instance, hosts)) => {
            // The VM's own events (vm_appeared, vm_gone) are kept under its instance id.
            let keys = std::iter::once(id.clone())
                .chain(hosts.iter().map(|h| h.id.clone()))
                .take(MAX_HOSTS_WITH_CHANGES + 1)
                .collect();
            let recent = match recent_changes(&s, keys).await {
                Ok(e) => e,
                Err(e) => return server_error(e),
            };
            let hosts: Vec<_> = hosts.iter().map(HostOfVm::of).collect();
            let mut body = json!({
                "kind": "instance",
                "id": id,
                "hosts": hosts,
                "recent_changes": recent,
            });
            // Left out, not null, when the VM is gone from the inventory.
            if let Some(vm) = instance {
                let mut instance = json!(&*vm);
                // Tenants put anything in metadata, secrets included: shown only when configured.
                if !s.state.read().vm_metadata {
                    if let Some(o) = instance.as_object_mut() {
                        o.remove("metadata");
                    }
                }
                body["instance"] = instance;
            }
            Json(body).into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(peers: bool) -> Shard {
        Shard {
            index: 0,
            count: 3,
            peers: if peers {
                (0..3).map(|i| format!("http://agent-{i}:7864/")).collect()
            } else {
                Vec::new()
            },
        }
    }

    /// An id of each shard among `count`.
    fn id_of(owner: u32, s: &Shard) -> String {
        (0..)
            .map(|i| format!("vm-{i}/port/10.0.0.{}", i % 250))
            .find(|id| s.owner_of(id) == owner)
            .unwrap()
    }

    #[test]
    fn own_ids_are_answered_here() {
        let s = shard(true);
        assert!(elsewhere(&s, &id_of(0, &s)).is_none());
        assert!(elsewhere(&Shard::default(), "10.0.0.1").is_none());
    }

    #[test]
    fn other_shards_ids_redirect_to_their_agent() {
        let s = shard(true);
        let id = id_of(2, &s);
        let r = elsewhere(&s, &id).unwrap();
        assert_eq!(r.status(), StatusCode::TEMPORARY_REDIRECT);
        let location = r.headers()[header::LOCATION].to_str().unwrap();
        assert_eq!(location, format!("http://agent-2:7864/api/v1/vms/{id}"));
        // A VM's instance id goes where its addresses go.
        let instance = id.split('/').next().unwrap();
        let r = elsewhere(&s, instance).unwrap();
        assert!(r.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("http://agent-2:7864/"));
    }

    #[test]
    fn without_peers_the_owner_is_named() {
        let s = shard(false);
        let r = elsewhere(&s, &id_of(1, &s)).unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert!(r.headers().get(header::LOCATION).is_none());
        assert_eq!(path_escape("a b/c:d%"), "a%20b/c:d%25");
    }
}
