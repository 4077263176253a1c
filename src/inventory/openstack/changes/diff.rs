//! [`Polled`] + [`CloudState`] → [`Delta`] (pure): checks every `updated_at` (missing, before the
//! `since` asked for, earlier than the same resource showed before), drops what did not change,
//! and names each change with the instances, addresses and ports it affects. Addresses are
//! compared per VM the way [`join`](crate::inventory::openstack::join) builds them (Neutron first,
//! Nova's cached addresses matched to a port by MAC), so a delta and a re-join agree.

use super::view::{covers, View};
use super::{
    back, ChangeError, ChangeKind, CloudState, Cursor, Delta, Effect, Polled, Resource, Stamp,
    Stamped,
};
use crate::inventory::openstack::api::ServiceType;
use crate::inventory::openstack::types::{
    Direction, Port, SecurityGroup, SecurityGroupRule, Server,
};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Checks an item's stamp. Repeats are not dropped here: Nova and Neutron stamp whole seconds, so
/// two changes within one second share a stamp; the content comparison decides.
#[allow(clippy::too_many_arguments)]
fn check(
    state: &CloudState,
    service: ServiceType,
    resource: Resource,
    path: &str,
    since: Option<Stamp>,
    id: &str,
    t: Option<Stamp>,
    exempt: bool,
) -> Result<(), ChangeError> {
    let travel = |t: Stamp, why: &'static str, bound: Stamp| ChangeError::TimeTravel {
        service,
        resource,
        id: id.to_string(),
        updated_at: super::format_stamp(t),
        why,
        bound: super::format_stamp(bound),
    };
    let Some(t) = t else {
        if since.is_some() && !exempt {
            return Err(ChangeError::Garbage {
                service,
                path: path.to_string(),
                reason: format!(
                    "{} {id} has no updated_at, so it cannot be ordered",
                    resource.as_str()
                ),
            });
        }
        return Ok(());
    };
    // A stamp from far in the future would move the cursor past every real change to come. The
    // agent's clock is only a sanity bound here, never the cursor.
    if t > super::future_limit() {
        return Err(travel(
            t,
            "more than a day after the agent's clock,",
            Stamp::now(),
        ));
    }
    if let Some(s) = since {
        if t < s && !exempt {
            return Err(travel(t, "before the changes-since asked for,", s));
        }
    }
    match state.stamp(resource, id) {
        Some(prev) if t < back(prev, state.margin) => {
            Err(travel(t, "earlier than it showed before,", prev))
        }
        _ => Ok(()),
    }
}

fn scanned(statuses: &[String], status: &str) -> bool {
    statuses.iter().any(|s| s.eq_ignore_ascii_case(status))
}

/// Collects the changes while the view is alive.
struct Changes<'v, 'a> {
    before: &'v View<'a>,
    after: &'v View<'a>,
    statuses: &'v [String],
    out: Vec<super::Change>,
}

impl Changes<'_, '_> {
    fn push(
        &mut self,
        kind: ChangeKind,
        effect: Effect,
        instances: Vec<String>,
        addresses: Vec<IpAddr>,
        ports: Vec<String>,
        updated_at: Option<Stamp>,
    ) {
        self.out.push(super::Change {
            kind,
            effect,
            instances,
            addresses,
            ports,
            updated_at,
        });
    }

    fn vm(&mut self, id: &str, t: Option<Stamp>) {
        let old = self.before.server(id);
        let new = self.after.server(id);
        let addrs = |v: &View<'_>| {
            let set = v.addresses(id);
            let ports: BTreeSet<String> = set.iter().filter_map(|(_, p)| p.clone()).collect();
            (
                set.iter().map(|(a, _)| *a).collect::<Vec<_>>(),
                ports.into_iter().collect::<Vec<_>>(),
            )
        };
        match (old, new) {
            (None, Some(s)) => {
                let (a, p) = addrs(self.after);
                let effect = if scanned(self.statuses, &s.status) {
                    Effect::CreatesExposure
                } else {
                    Effect::Neutral
                };
                let status = s.status.clone();
                self.push(
                    ChangeKind::VmAdded { status },
                    effect,
                    vec![id.into()],
                    a,
                    p,
                    t,
                );
            }
            (Some(_), None) => {
                let (a, p) = addrs(self.before);
                let kind = ChangeKind::VmDeleted;
                self.push(kind, Effect::RemovesExposure, vec![id.into()], a, p, t);
            }
            (Some(o), Some(n)) if o != n => {
                let (a, p) = addrs(self.after);
                let (was, is) = (
                    scanned(self.statuses, &o.status),
                    scanned(self.statuses, &n.status),
                );
                let (kind, effect) = if !o.status.eq_ignore_ascii_case(&n.status) {
                    let kind = ChangeKind::VmStatus {
                        from: o.status.clone(),
                        to: n.status.clone(),
                    };
                    match (was, is) {
                        (false, true) => (kind, Effect::CreatesExposure),
                        (true, false) => (kind, Effect::RemovesExposure),
                        _ => (kind, Effect::Neutral),
                    }
                } else if is {
                    // A rebuild can come and go between two polls and look like any update.
                    (ChangeKind::VmChanged, Effect::CreatesExposure)
                } else {
                    (ChangeKind::VmChanged, Effect::Neutral)
                };
                self.push(kind, effect, vec![id.into()], a, p, t);
            }
            _ => {}
        }
    }

    fn addresses(&mut self, vm: &str, t: Option<Stamp>) {
        let (old, new) = (self.before.addresses(vm), self.after.addresses(vm));
        for (kind, effect, set) in [
            (
                ChangeKind::AddressAdded,
                Effect::CreatesExposure,
                new.difference(&old),
            ),
            (
                ChangeKind::AddressRemoved,
                Effect::RemovesExposure,
                old.difference(&new),
            ),
        ] {
            let set: Vec<_> = set.collect();
            if set.is_empty() {
                continue;
            }
            let addresses = set.iter().map(|(a, _)| *a).collect();
            let ports: BTreeSet<String> = set.iter().filter_map(|(_, p)| p.clone()).collect();
            self.push(
                kind,
                effect,
                vec![vm.into()],
                addresses,
                ports.into_iter().collect(),
                t,
            );
        }
    }

    fn port(&mut self, old: &Port, new: &Port, t: Option<Stamp>) {
        let instances: Vec<String> = Some(new.device_id.clone())
            .filter(|d| self.after.server(d).is_some())
            .into_iter()
            .collect();
        let addresses = self.after.port_addresses(new);
        if old.port_security_enabled != new.port_security_enabled {
            let effect = if new.port_security_enabled {
                Effect::RemovesExposure
            } else {
                Effect::CreatesExposure
            };
            let kind = ChangeKind::PortSecurity {
                enabled: new.port_security_enabled,
            };
            let ports = vec![new.id.clone()];
            self.push(kind, effect, instances.clone(), addresses.clone(), ports, t);
        }
        let (o, n): (BTreeSet<&String>, BTreeSet<&String>) = (
            old.security_groups.iter().collect(),
            new.security_groups.iter().collect(),
        );
        if o != n {
            let added: Vec<String> = n.difference(&o).map(|s| (*s).clone()).collect();
            let removed: Vec<String> = o.difference(&n).map(|s| (*s).clone()).collect();
            let effect = if added.is_empty() {
                Effect::RemovesExposure
            } else {
                Effect::CreatesExposure
            };
            let kind = ChangeKind::PortGroups { added, removed };
            self.push(kind, effect, instances, addresses, vec![new.id.clone()], t);
        }
    }

    /// One rule change, with every port bound to the group (before or after).
    fn rule(&mut self, group: &str, rule: &SecurityGroupRule, kind: RuleChange, t: Option<Stamp>) {
        let mut instances = BTreeSet::new();
        let mut addresses = BTreeSet::new();
        let mut ports = BTreeSet::new();
        for view in [self.before, self.after] {
            for p in view.all_ports() {
                if p.security_groups.iter().any(|g| g == group) {
                    if view.server(&p.device_id).is_some() {
                        instances.insert(p.device_id.clone());
                    }
                    addresses.extend(view.port_addresses(p));
                    ports.insert(p.id.clone());
                }
            }
        }
        let (group, id) = (group.to_string(), rule.id.clone());
        let (kind, opens) = match kind {
            RuleChange::Added => (ChangeKind::RuleAdded { group, rule: id }, true),
            RuleChange::Widened => (ChangeKind::RuleWidened { group, rule: id }, true),
            RuleChange::Narrowed => (ChangeKind::RuleNarrowed { group, rule: id }, false),
            RuleChange::Removed => (ChangeKind::RuleRemoved { group, rule: id }, false),
        };
        let effect = match (rule.direction, opens) {
            (Direction::Egress, _) => Effect::Neutral,
            (Direction::Ingress, true) => Effect::CreatesExposure,
            (Direction::Ingress, false) => Effect::RemovesExposure,
        };
        self.push(
            kind,
            effect,
            instances.into_iter().collect(),
            addresses.into_iter().collect(),
            ports.into_iter().collect(),
            t,
        );
    }

    fn group(&mut self, id: &str, new: Option<&Stamped<SecurityGroup>>) {
        let empty = Vec::new();
        let old_rules = self.before.group(id).map_or(&empty, |g| &g.rules);
        let new_rules = new.map_or(&empty, |g| &g.item.rules);
        let stamp =
            |rule: &str| new.and_then(|g| g.rule_stamps.get(rule).copied().or(g.updated_at));
        for r in new_rules {
            match old_rules.iter().find(|o| o.id == r.id) {
                None => self.rule(id, r, RuleChange::Added, stamp(&r.id)),
                Some(o) if o == r => {}
                Some(o) if covers(o, r) => self.rule(id, r, RuleChange::Narrowed, stamp(&r.id)),
                Some(_) => self.rule(id, r, RuleChange::Widened, stamp(&r.id)),
            }
        }
        let group_stamp = new.and_then(|g| g.updated_at);
        for o in old_rules {
            if !new_rules.iter().any(|r| r.id == o.id) {
                self.rule(id, o, RuleChange::Removed, group_stamp);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum RuleChange {
    Added,
    Widened,
    Narrowed,
    Removed,
}

/// Checks one service's items and keeps those that differ from the state; remembers the ids
/// listed (a full listing also tells what is gone), the stamps, and the newest of them.
struct Sift<'s> {
    state: &'s CloudState,
    service: ServiceType,
    since: Option<Stamp>,
    full: bool,
    listed: BTreeSet<(Resource, String)>,
    stamps: Vec<((Resource, String), Stamp)>,
    newest: Option<Stamp>,
}

impl<'s> Sift<'s> {
    fn new(state: &'s CloudState, service: ServiceType, since: Option<Stamp>, full: bool) -> Self {
        Sift {
            state,
            service,
            since,
            full,
            listed: BTreeSet::new(),
            stamps: Vec::new(),
            newest: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn sift<T: PartialEq>(
        &mut self,
        items: Vec<Stamped<T>>,
        resource: Resource,
        path: &str,
        known: &BTreeMap<String, T>,
        exempt: impl Fn(&T) -> bool,
        id_of: impl Fn(&T) -> &String,
    ) -> Result<Vec<Stamped<T>>, ChangeError> {
        let mut kept = Vec::new();
        for x in items {
            let id = id_of(&x.item).clone();
            let exempt = exempt(&x.item);
            check(
                self.state,
                self.service,
                resource,
                path,
                self.since,
                &id,
                x.updated_at,
                exempt,
            )?;
            if let Some(t) = x.updated_at {
                self.newest = later(self.newest, Some(t));
                // A server's stamp is its record's `updated` (`CloudState::server_stamp`).
                if resource != Resource::Server {
                    self.stamps.push(((resource, id.clone()), t));
                }
            }
            let changed = match known.get(&id) {
                Some(k) => x.deleted || *k != x.item,
                None => !x.deleted,
            };
            self.listed.insert((resource, id));
            if changed {
                kept.push(x);
            }
        }
        Ok(kept)
    }

    /// What the state has and a full listing did not list (nothing unless listed in full).
    fn gone<T>(&self, resource: Resource, known: &BTreeMap<String, T>) -> Vec<String> {
        if !self.full {
            return Vec::new();
        }
        known
            .keys()
            .filter(|id| !self.listed.contains(&(resource, (*id).clone())))
            .cloned()
            .collect()
    }
}

fn later(a: Option<Stamp>, b: Option<Stamp>) -> Option<Stamp> {
    a.max(b)
}

/// Compares a poll with the state. `statuses` are the scanned server statuses (a VM entering one
/// is booted). Errors (missing or unparseable stamps, time travel) leave nothing half-applied: the
/// state is only changed by [`apply`](super::apply).
pub fn diff(state: &CloudState, polled: Polled, statuses: &[String]) -> Result<Delta, ChangeError> {
    let Polled {
        since,
        servers,
        ports,
        floating_ips,
        security_groups,
        nova_full,
        neutron_full,
    } = polled;
    let nova_since = since.nova.filter(|_| !nova_full);
    let neutron_since = since.neutron.filter(|_| !neutron_full);
    let mut nova = Sift::new(state, ServiceType::Compute, nova_since, nova_full);
    let mut net = Sift::new(state, ServiceType::Network, neutron_since, neutron_full);
    // Build requests ignore changes-since and are always listed (PROTOCOLS §7): no stamp check.
    let build = |s: &Server| s.status.eq_ignore_ascii_case("BUILD");
    let kept_servers = nova.sift(
        servers,
        Resource::Server,
        "/servers/detail",
        &state.servers,
        build,
        |s| &s.id,
    )?;
    let kept_ports = net.sift(
        ports,
        Resource::Port,
        "/v2.0/ports",
        &state.ports,
        |_| false,
        |p| &p.id,
    )?;
    let kept_fips = net.sift(
        floating_ips,
        Resource::FloatingIp,
        "/v2.0/floatingips",
        &state.floating_ips,
        |_| false,
        |f| &f.id,
    )?;
    let kept_groups = net.sift(
        security_groups,
        Resource::SecurityGroup,
        "/v2.0/security-groups",
        &state.security_groups,
        |_| false,
        |g| &g.id,
    )?;
    let vanished_servers = nova.gone(Resource::Server, &state.servers);
    let mut removed_servers = vanished_servers.clone();
    removed_servers.extend(
        kept_servers
            .iter()
            .filter(|s| s.deleted)
            .map(|s| s.item.id.clone()),
    );
    let removed_ports = net.gone(Resource::Port, &state.ports);
    let removed_fips = net.gone(Resource::FloatingIp, &state.floating_ips);
    let removed_groups = net.gone(Resource::SecurityGroup, &state.security_groups);

    let before = View::before(state);
    let mut after = View::before(state);
    for s in &kept_servers {
        after
            .servers
            .insert(&s.item.id, (!s.deleted).then_some(&s.item));
    }
    for id in &removed_servers {
        after.servers.insert(id, None);
        // Their ports go with them (hard-deleted in Neutron).
        for p in state.ports_by_device.get(id).into_iter().flatten() {
            after.ports.entry(p).or_insert(None);
        }
    }
    for p in &kept_ports {
        after.ports.insert(&p.item.id, Some(&p.item));
    }
    for id in &removed_ports {
        after.ports.insert(id, None);
    }
    for f in &kept_fips {
        after.fips.insert(&f.item.id, Some(&f.item));
    }
    for id in &removed_fips {
        after.fips.insert(id, None);
    }
    for g in &kept_groups {
        after.groups.insert(&g.item.id, Some(&g.item));
    }
    for id in &removed_groups {
        after.groups.insert(id, None);
    }

    let mut c = Changes {
        before: &before,
        after: &after,
        statuses,
        out: Vec::new(),
    };
    // Which VMs each change touches, and the newest stamp that touched them.
    let mut touched: BTreeMap<String, Option<Stamp>> = BTreeMap::new();
    let mut touch = |vm: Option<&str>, t: Option<Stamp>| {
        if let Some(vm) = vm.filter(|v| !v.is_empty()) {
            let e = touched.entry(vm.to_string()).or_insert(None);
            *e = later(*e, t);
        }
    };
    for s in &kept_servers {
        c.vm(&s.item.id, s.updated_at);
    }
    for id in &vanished_servers {
        c.vm(id, None);
    }
    for p in &kept_ports {
        touch(
            before.port(&p.item.id).map(|o| o.device_id.as_str()),
            p.updated_at,
        );
        touch(Some(&p.item.device_id), p.updated_at);
        if let Some(old) = before.port(&p.item.id) {
            c.port(old, &p.item, p.updated_at);
        }
    }
    for id in &removed_ports {
        touch(before.port(id).map(|o| o.device_id.as_str()), None);
    }
    let device = |v: &View<'_>, port: Option<&String>| {
        port.and_then(|p| v.port(p)).map(|p| p.device_id.clone())
    };
    for f in &kept_fips {
        let old_port = before.fip(&f.item.id).and_then(|o| o.port_id.as_ref());
        touch(device(&before, old_port).as_deref(), f.updated_at);
        touch(
            device(&after, f.item.port_id.as_ref()).as_deref(),
            f.updated_at,
        );
    }
    for id in &removed_fips {
        let old_port = before.fip(id).and_then(|o| o.port_id.as_ref());
        touch(device(&before, old_port).as_deref(), None);
    }
    for g in &kept_groups {
        c.group(&g.item.id, Some(g));
    }
    for id in &removed_groups {
        c.group(id, None);
    }
    for (vm, t) in &touched {
        // Added and deleted VMs carry their addresses already.
        let both = before.server(vm).is_some() && after.server(vm).is_some();
        if both {
            c.addresses(vm, *t);
        }
    }
    let changes = c.out;
    drop(after);

    let next = Cursor {
        nova: since.nova.max(nova.newest.map(|t| back(t, state.margin))),
        neutron: since.neutron.max(net.newest.map(|t| back(t, state.margin))),
    };
    let mut stamps = nova.stamps;
    stamps.extend(net.stamps);
    Ok(Delta {
        changes,
        next,
        servers: kept_servers
            .into_iter()
            .filter(|s| !s.deleted)
            .map(|s| s.item)
            .collect(),
        removed_servers,
        ports: kept_ports.into_iter().map(|p| p.item).collect(),
        removed_ports,
        floating_ips: kept_fips.into_iter().map(|f| f.item).collect(),
        removed_floating_ips: removed_fips,
        security_groups: kept_groups.into_iter().map(|g| g.item).collect(),
        removed_security_groups: removed_groups,
        stamps,
    })
}
