//! The state a delta applies to: the raw lists of the last full inventory by id, with the
//! indexes the diff needs, re-joined by [`join`] into the inventory type a full inventory gives.

use super::{parse_stamp, Cursor, Delta, Resource, Stamp};
use crate::inventory::openstack::join::{self, CloudInventory, Fetched, JoinOptions};
use crate::inventory::openstack::types::{FloatingIp, Network, Port, SecurityGroup, Server};
use crate::model::UnixSeconds;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// What a full inventory fetched from one cloud, kept as raw lists by id so that a delta can be
/// folded in and the whole re-joined. Also the last `updated_at` seen per resource (to notice
/// time travel) and the [`Cursor`] of the next poll. Networks and project / user names are not
/// polled: they change only at the next full inventory (they only decorate).
#[derive(Debug, Clone, Default)]
pub struct CloudState {
    pub(crate) servers: BTreeMap<String, Server>,
    pub(crate) ports: BTreeMap<String, Port>,
    pub(crate) floating_ips: BTreeMap<String, FloatingIp>,
    pub(crate) security_groups: BTreeMap<String, SecurityGroup>,
    networks: Vec<Network>,
    project_names: HashMap<String, String>,
    user_names: HashMap<String, String>,
    /// Port ids by `device_id`, floating IP ids by `port_id`.
    pub(crate) ports_by_device: HashMap<String, IdSet>,
    pub(crate) fips_by_port: HashMap<String, IdSet>,
    /// The last `updated_at` seen of each port, floating IP and security group. A server's is its
    /// own `updated` ([`CloudState::server_stamp`]): not kept twice.
    pub(crate) stamps: HashMap<(Resource, String), Stamp>,
    pub cursor: Cursor,
    /// Subtracted from the newest `updated_at` seen to get the next `since` (clocks of the
    /// cloud's hosts differ; Neutron stamps whole seconds).
    pub margin: Duration,
}

/// A few ids, sorted, without repeats: a VM's ports, a port's floating IPs. Usually one, so a
/// vector (one small allocation) rather than a B-tree set (a node of eleven slots per VM).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IdSet(Vec<String>);

impl IdSet {
    pub(crate) fn insert(&mut self, id: String) {
        if let Err(at) = self.0.binary_search(&id) {
            self.0.insert(at, id);
        }
    }

    pub(crate) fn remove(&mut self, id: &str) {
        if let Ok(at) = self.0.binary_search_by(|x| x.as_str().cmp(id)) {
            self.0.remove(at);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, String> {
        self.0.iter()
    }
}

impl<'a> IntoIterator for &'a IdSet {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// The default [`CloudState::margin`].
pub const DEFAULT_MARGIN: Duration = Duration::from_secs(5);

impl CloudState {
    /// From a full inventory's lists. Nova's cursor is the newest server `updated` minus `margin`;
    /// Neutron's is Neutron's own clock when it answered the listing (its `Date` header) minus
    /// `margin`. Without a `Date` Neutron's cursor is unknown, and the first poll lists Neutron in
    /// full and takes it from there.
    pub fn new(fetched: Fetched, margin: Duration) -> CloudState {
        let neutron = fetched
            .neutron_date
            .filter(|t| *t <= super::future_limit())
            .map(|t| back(t, margin));
        let mut state = CloudState {
            networks: fetched.networks,
            project_names: fetched.project_names,
            user_names: fetched.user_names,
            margin,
            ..CloudState::default()
        };
        for s in fetched.servers {
            let stamp = s.updated.as_deref().and_then(|u| parse_stamp(u).ok());
            // A stamp from the far future would put the cursor past every change to come.
            if let Some(t) = stamp.filter(|t| *t <= super::future_limit()) {
                state.cursor.nova = state.cursor.nova.max(Some(t));
            }
            state.servers.insert(s.id.clone(), s);
        }
        state.cursor.nova = state.cursor.nova.map(|t| back(t, margin));
        state.cursor.neutron = neutron;
        for p in fetched.ports {
            state.insert_port(p);
        }
        for f in fetched.floating_ips {
            state.insert_fip(f);
        }
        for g in fetched.security_groups {
            state.security_groups.insert(g.id.clone(), g);
        }
        state
    }

    /// The cloud's inventory, joined exactly as a full inventory is (VMs in id order): the tests'
    /// reference for [`CloudState::inventory_of`] (the agent joins only what a poll touched).
    pub fn inventory(
        &self,
        opts: &JoinOptions,
        first_seen: &BTreeMap<String, UnixSeconds>,
        now: UnixSeconds,
    ) -> CloudInventory {
        let lists = join::Lists {
            servers: self.servers.values(),
            ports: self.ports.values(),
            floating_ips: self.floating_ips.values(),
            networks: &self.networks,
            security_groups: self.security_groups.values(),
            project_names: &self.project_names,
            user_names: &self.user_names,
        };
        join::join_lists(opts, lists, first_seen, now)
    }

    /// The joined inventory of only the `touched` servers (see [`CloudState::touched`]): what a
    /// full re-join would give for them, reading only their ports, floating IPs and security
    /// groups. Touched servers the state no longer has are left out (gone). Laid over the last
    /// whole inventory with [`patch`](super::patch), it equals a join of the whole state
    /// ([`CloudState::inventory`], which the tests compare it with): a poll of a large cloud
    /// re-joins the few VMs it changed, not all of them.
    pub fn inventory_of(
        &self,
        touched: &BTreeSet<String>,
        opts: &JoinOptions,
        first_seen: &BTreeMap<String, UnixSeconds>,
        now: UnixSeconds,
    ) -> CloudInventory {
        let servers: Vec<&Server> = touched
            .iter()
            .filter_map(|id| self.servers.get(id))
            .collect();
        let ports: Vec<&Port> = servers
            .iter()
            .filter_map(|s| self.ports_by_device.get(&s.id))
            .flatten()
            .filter_map(|id| self.ports.get(id))
            .collect();
        let floating_ips: Vec<&FloatingIp> = ports
            .iter()
            .filter_map(|p| self.fips_by_port.get(&p.id))
            .flatten()
            .filter_map(|id| self.floating_ips.get(id))
            .collect();
        let group_ids: BTreeSet<&str> = ports
            .iter()
            .flat_map(|p| p.security_groups.iter().map(String::as_str))
            .collect();
        let groups: Vec<&SecurityGroup> = group_ids
            .into_iter()
            .filter_map(|id| self.security_groups.get(id))
            .collect();
        let lists = join::Lists {
            servers: servers.iter().copied(),
            ports: ports.iter().copied(),
            floating_ips: floating_ips.iter().copied(),
            networks: &self.networks,
            security_groups: groups.iter().copied(),
            project_names: &self.project_names,
            user_names: &self.user_names,
        };
        join::join_lists(opts, lists, first_seen, now)
    }

    /// The servers whose joined VM `delta` can change, to be called before [`apply`]: its servers
    /// (changed or removed), the servers its ports are attached to before and after, those of the
    /// ports its floating IPs leave or join, and those of every port bound to a security group it
    /// changes or removes.
    pub fn touched(&self, delta: &Delta) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = delta
            .servers
            .iter()
            .map(|s| s.id.clone())
            .chain(delta.removed_servers.iter().cloned())
            .collect();
        let new_ports: HashMap<&str, &Port> =
            delta.ports.iter().map(|p| (p.id.as_str(), p)).collect();
        // The server a port is attached to before and after the delta.
        let devices = |id: &str| -> [Option<String>; 2] {
            let device =
                |p: Option<&Port>| p.map(|p| p.device_id.clone()).filter(|d| !d.is_empty());
            [
                device(self.ports.get(id)),
                device(new_ports.get(id).copied()),
            ]
        };
        let port_ids = delta
            .ports
            .iter()
            .map(|p| p.id.as_str())
            .chain(delta.removed_ports.iter().map(String::as_str));
        for id in port_ids {
            out.extend(devices(id).into_iter().flatten());
        }
        let fip_ports = delta
            .floating_ips
            .iter()
            .filter_map(|f| f.port_id.as_deref())
            .chain(
                delta
                    .floating_ips
                    .iter()
                    .map(|f| f.id.as_str())
                    .chain(delta.removed_floating_ips.iter().map(String::as_str))
                    .filter_map(|id| self.floating_ips.get(id))
                    .filter_map(|f| f.port_id.as_deref()),
            );
        for port in fip_ports {
            out.extend(devices(port).into_iter().flatten());
        }
        let groups: BTreeSet<&str> = delta
            .security_groups
            .iter()
            .map(|g| g.id.as_str())
            .chain(delta.removed_security_groups.iter().map(String::as_str))
            .collect();
        if !groups.is_empty() {
            let bound = |p: &&Port| {
                p.security_groups
                    .iter()
                    .any(|g| groups.contains(g.as_str()))
            };
            let ports = self.ports.values().chain(delta.ports.iter()).filter(bound);
            out.extend(ports.map(|p| p.device_id.clone()).filter(|d| !d.is_empty()));
        }
        out
    }

    /// The last `updated_at` seen of a resource: a server's from its record, the others' from
    /// [`CloudState::stamps`].
    pub(crate) fn stamp(&self, resource: Resource, id: &str) -> Option<Stamp> {
        match resource {
            Resource::Server => self.server_stamp(id),
            _ => self.stamps.get(&(resource, id.to_string())).copied(),
        }
    }

    /// A server's `updated`, parsed (none when absent, unreadable, or from the far future, as a
    /// full inventory's stamps are read in [`CloudState::new`]).
    pub(crate) fn server_stamp(&self, id: &str) -> Option<Stamp> {
        let updated = self.servers.get(id)?.updated.as_deref()?;
        parse_stamp(updated)
            .ok()
            .filter(|t| *t <= super::future_limit())
    }

    pub fn server_count(&self) -> usize {
        self.servers.len()
    }

    fn insert_port(&mut self, p: Port) {
        if let Some(old) = self.ports.get(&p.id) {
            if let Some(set) = self.ports_by_device.get_mut(&old.device_id) {
                set.remove(&p.id);
            }
        }
        if !p.device_id.is_empty() {
            self.ports_by_device
                .entry(p.device_id.clone())
                .or_default()
                .insert(p.id.clone());
        }
        self.ports.insert(p.id.clone(), p);
    }

    fn remove_port(&mut self, id: &str) {
        if let Some(old) = self.ports.remove(id) {
            if let Some(set) = self.ports_by_device.get_mut(&old.device_id) {
                set.remove(id);
                if set.is_empty() {
                    self.ports_by_device.remove(&old.device_id);
                }
            }
        }
        self.stamps.remove(&(Resource::Port, id.to_string()));
    }

    fn insert_fip(&mut self, f: FloatingIp) {
        if let Some(old) = self.floating_ips.get(&f.id) {
            if let Some(set) = old
                .port_id
                .as_ref()
                .and_then(|p| self.fips_by_port.get_mut(p))
            {
                set.remove(&f.id);
            }
        }
        if let Some(p) = &f.port_id {
            self.fips_by_port
                .entry(p.clone())
                .or_default()
                .insert(f.id.clone());
        }
        self.floating_ips.insert(f.id.clone(), f);
    }

    fn remove_fip(&mut self, id: &str) {
        if let Some(old) = self.floating_ips.remove(id) {
            if let Some(p) = &old.port_id {
                if let Some(set) = self.fips_by_port.get_mut(p) {
                    set.remove(id);
                    if set.is_empty() {
                        self.fips_by_port.remove(p);
                    }
                }
            }
        }
        self.stamps.remove(&(Resource::FloatingIp, id.to_string()));
    }
}

pub(super) fn back(t: Stamp, margin: Duration) -> Stamp {
    jiff::SignedDuration::try_from(margin)
        .ok()
        .and_then(|d| t.checked_sub(d).ok())
        .unwrap_or(t)
}

/// Folds a delta into the state (the lists, the per-resource stamps and the cursor). Call
/// [`CloudState::inventory_of`] afterwards for the joined inventory of what it touched.
pub fn apply(state: &mut CloudState, delta: Delta) {
    for id in delta.removed_servers {
        state.servers.remove(&id);
        // Nova deleted the VM; Neutron hard-deletes its ports, which changed_since never reports.
        let ports: Vec<String> = state
            .ports_by_device
            .get(&id)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for p in ports {
            state.remove_port(&p);
        }
    }
    for s in delta.servers {
        state.servers.insert(s.id.clone(), s);
    }
    for id in delta.removed_ports {
        state.remove_port(&id);
    }
    for p in delta.ports {
        state.insert_port(p);
    }
    for id in delta.removed_floating_ips {
        state.remove_fip(&id);
    }
    for f in delta.floating_ips {
        state.insert_fip(f);
    }
    for id in delta.removed_security_groups {
        state.security_groups.remove(&id);
        state.stamps.remove(&(Resource::SecurityGroup, id));
    }
    for g in delta.security_groups {
        state.security_groups.insert(g.id.clone(), g);
    }
    state.stamps.extend(delta.stamps);
    state.cursor = delta.next;
}
