//! Deltas applied to the samples: each must give what a full inventory of the changed cloud
//! gives, name the right changes with the cloud's times, and refuse time travel.

use super::*;
use crate::inventory::openstack::changes::view::covers;
use crate::inventory::openstack::types::{Direction, SecurityGroupRule};
#[test]
fn an_associated_floating_ip_is_a_new_address_with_the_clouds_time() {
    let mut c = cloud();
    let mut state = CloudState::new(fetched(&c), DEFAULT_MARGIN);
    c.fips[0]["port_id"] = json!(PORT);
    c.fips[0]["fixed_ip_address"] = json!("192.168.1.30");
    c.fips[0]["updated_at"] = json!(LATER);
    let p = polled(since(&state), &[], &[], &c.fips[..1], &[]);
    let delta = step(&mut state, move |_| p, &c);
    let created: Vec<_> = delta.exposure_creating().collect();
    assert_eq!(created.len(), 1, "{:?}", delta.changes);
    let ch = created[0];
    assert_eq!(ch.kind, ChangeKind::AddressAdded);
    assert_eq!(ch.instances, [VM]);
    assert_eq!(
        ch.addresses,
        ["172.24.4.228"
            .parse::<IpAddr>()
            .unwrap_or(IpAddr::from([0; 4]))]
    );
    assert_eq!(ch.ports, [PORT]);
    assert_eq!(ch.updated_at, Some(t(LATER)));
    assert_eq!(delta.next.neutron, Some(t("2025-12-31T23:59:55Z")));
    assert_eq!(
        delta.next.nova, state.cursor.nova,
        "no Nova news: its cursor stays"
    );

    // The same answer again (the since overlaps): nothing new.
    let p = polled(delta.next, &[], &[], &c.fips[..1], &[]);
    let again = ok(diff(&state, p, &statuses()));
    assert!(
        again.is_empty() && again.changes.is_empty(),
        "{:?}",
        again.changes
    );
    assert_eq!(again.next, delta.next);

    // Disassociated: exposure removed.
    c.fips[0]["port_id"] = Value::Null;
    c.fips[0]["fixed_ip_address"] = Value::Null;
    c.fips[0]["updated_at"] = json!("2026-01-01T00:01:00Z");
    let p = polled(state.cursor, &[], &[], &c.fips[..1], &[]);
    let delta = step(&mut state, move |_| p, &c);
    let removed: Vec<_> = delta.exposure_removing().map(|c| c.kind.clone()).collect();
    assert_eq!(removed, [ChangeKind::AddressRemoved]);
}

#[test]
fn rules_added_widened_and_removed() {
    let mut c = cloud();
    let mut state = CloudState::new(fetched(&c), DEFAULT_MARGIN);
    let rule = json!({"id": "r-ssh", "direction": "ingress", "ethertype": "IPv4",
        "protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
        "remote_ip_prefix": "10.0.0.0/8", "security_group_id": SG, "updated_at": LATER});
    let push_rule = |c: &mut Cloud, r: &Value, at: &str| {
        if let Some(list) = c.groups[0]["security_group_rules"].as_array_mut() {
            list.retain(|x| x["id"] != r["id"]);
            list.push(r.clone());
        }
        c.groups[0]["updated_at"] = json!(at);
    };
    push_rule(&mut c, &rule, LATER);
    let delta = step(
        &mut state,
        |s| polled(since(s), &[], &[], &[], &c.groups),
        &c,
    );
    let ch: Vec<_> = delta.exposure_creating().collect();
    assert_eq!(ch.len(), 1, "{:?}", delta.changes);
    assert_eq!(
        ch[0].kind,
        ChangeKind::RuleAdded {
            group: SG.into(),
            rule: "r-ssh".into()
        }
    );
    assert_eq!(ch[0].instances, [VM], "the VM whose port has the group");
    assert_eq!(ch[0].ports, [PORT]);
    assert_eq!(ch[0].updated_at, Some(t(LATER)));

    let mut wide = rule.clone();
    wide["remote_ip_prefix"] = json!("0.0.0.0/0");
    wide["port_range_max"] = json!(443);
    push_rule(&mut c, &wide, "2026-01-01T00:02:00Z");
    let delta = step(
        &mut state,
        |s| polled(s.cursor, &[], &[], &[], &c.groups),
        &c,
    );
    let kinds: Vec<_> = delta.exposure_creating().map(|c| c.kind.clone()).collect();
    assert_eq!(
        kinds,
        [ChangeKind::RuleWidened {
            group: SG.into(),
            rule: "r-ssh".into()
        }]
    );

    if let Some(list) = c.groups[0]["security_group_rules"].as_array_mut() {
        list.retain(|x| x["id"] != "r-ssh");
    }
    c.groups[0]["updated_at"] = json!("2026-01-01T00:03:00Z");
    let delta = step(
        &mut state,
        |s| polled(s.cursor, &[], &[], &[], &c.groups),
        &c,
    );
    let removed: Vec<_> = delta.exposure_removing().collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].updated_at, Some(t("2026-01-01T00:03:00Z")));
    assert!(matches!(removed[0].kind, ChangeKind::RuleRemoved { .. }));
}

#[test]
fn rule_coverage() {
    let rule = |proto: Option<&str>, min: Option<u16>, max: Option<u16>, prefix: Option<&str>| {
        SecurityGroupRule {
            id: "r".into(),
            direction: Direction::Ingress,
            ethertype: "IPv4".into(),
            protocol: proto.map(str::to_string),
            port_range_min: min,
            port_range_max: max,
            remote_ip_prefix: prefix.map(str::to_string),
            remote_group_id: None,
            remote_address_group_id: None,
        }
    };
    let ssh_lan = rule(Some("tcp"), Some(22), Some(22), Some("10.0.0.0/8"));
    let ssh_sub = rule(Some("tcp"), Some(22), Some(22), Some("10.1.0.0/16"));
    let web_world = rule(Some("tcp"), Some(80), Some(443), Some("0.0.0.0/0"));
    let any = rule(None, None, None, None);
    assert!(covers(&ssh_lan, &ssh_sub) && !covers(&ssh_sub, &ssh_lan));
    assert!(covers(&any, &web_world) && !covers(&web_world, &any));
    assert!(!covers(&web_world, &ssh_lan), "other ports");
    let mut egress = any.clone();
    egress.direction = Direction::Egress;
    assert!(!covers(&egress, &ssh_lan));
}

#[test]
fn port_security_off_and_vm_lifecycle() {
    let mut c = cloud();
    let mut state = CloudState::new(fetched(&c), DEFAULT_MARGIN);
    c.ports[0]["port_security_enabled"] = json!(false);
    c.ports[0]["updated_at"] = json!(LATER);
    let delta = step(
        &mut state,
        |s| polled(since(s), &[], &c.ports, &[], &[]),
        &c,
    );
    let kinds: Vec<_> = delta.exposure_creating().map(|c| c.kind.clone()).collect();
    assert_eq!(kinds, [ChangeKind::PortSecurity { enabled: false }]);

    // Stopped, then started again: removes, then creates.
    for (status, effect) in [
        ("SHUTOFF", Effect::RemovesExposure),
        ("ACTIVE", Effect::CreatesExposure),
    ] {
        c.servers[0]["status"] = json!(status);
        c.servers[0]["updated"] = json!(if status == "ACTIVE" {
            "2026-01-01T00:05:00Z"
        } else {
            "2026-01-01T00:04:00Z"
        });
        let delta = step(
            &mut state,
            |s| polled(s.cursor, &c.servers, &[], &[], &[]),
            &c,
        );
        assert_eq!(delta.changes.len(), 1, "{:?}", delta.changes);
        assert_eq!(delta.changes[0].effect, effect, "{status}");
        assert!(matches!(delta.changes[0].kind, ChangeKind::VmStatus { .. }));
    }

    // A new VM booted with the sample's second port.
    let mut vm2 = c.servers[0].clone();
    vm2["id"] = json!("vm-2");
    vm2["addresses"] = json!({});
    vm2["updated"] = json!("2026-01-01T00:06:00Z");
    c.servers.push(vm2);
    let delta = step(
        &mut state,
        |s| polled(s.cursor, &c.servers[1..], &[], &[], &[]),
        &c,
    );
    let added: Vec<_> = delta.exposure_creating().collect();
    assert_eq!(added.len(), 1);
    assert_eq!(
        added[0].kind,
        ChangeKind::VmAdded {
            status: "ACTIVE".into()
        }
    );
    assert_eq!(added[0].instances, ["vm-2"]);

    // Deleted: Nova lists it as DELETED; its ports go with it.
    let mut gone = c.servers[0].clone();
    gone["status"] = json!("DELETED");
    gone["updated"] = json!("2026-01-01T00:07:00Z");
    c.servers.remove(0);
    c.ports.clear();
    let delta = step(&mut state, |s| polled(s.cursor, &[gone], &[], &[], &[]), &c);
    let removed: Vec<_> = delta.exposure_removing().collect();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].kind, ChangeKind::VmDeleted);
    assert_eq!(removed[0].ports, [PORT]);
    assert_eq!(state.server_count(), 1);
    assert_eq!(state.cursor.nova, Some(t("2026-01-01T00:06:55Z")));
}

#[test]
fn a_full_listing_also_finds_what_was_deleted() {
    let mut c = cloud();
    c.fips[0]["port_id"] = json!(PORT);
    let mut state = CloudState::new(fetched(&c), DEFAULT_MARGIN);
    c.fips.remove(0);
    let mut p = polled(state.cursor, &[], &c.ports, &c.fips, &c.groups);
    p.neutron_full = true;
    let delta = step(&mut state, move |_| p, &c);
    let removed: Vec<_> = delta.exposure_removing().collect();
    assert_eq!(removed.len(), 1, "{:?}", delta.changes);
    assert_eq!(removed[0].kind, ChangeKind::AddressRemoved);
    assert_eq!(removed[0].updated_at, None, "an absence has no time");
    assert_eq!(
        delta.next.neutron,
        Some(t("2018-06-15T02:12:52Z")),
        "the newest updated_at of the listing, minus the margin"
    );
}

#[test]
fn time_travel_and_missing_stamps_are_refused() {
    let mut c = cloud();
    let state = CloudState::new(fetched(&c), DEFAULT_MARGIN);
    // Older than the since asked for: the filter cannot be trusted.
    c.fips[0]["updated_at"] = json!("2017-01-01T00:00:00Z");
    let e = diff(
        &state,
        polled(since(&state), &[], &[], &c.fips[..1], &[]),
        &statuses(),
    );
    match e {
        Err(e @ ChangeError::TimeTravel { .. }) => {
            assert!(e.needs_full_inventory());
            assert_eq!(e.kind(), "openstack_changes_time_travel");
            assert!(e.to_string().contains(FIP), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A server earlier than it showed before (beyond the margin).
    c.servers[0]["updated"] = json!("2013-09-03T04:00:00Z");
    let mut old = since(&state);
    old.nova = Some(t("2013-01-01T00:00:00Z"));
    let e = diff(&state, polled(old, &c.servers, &[], &[], &[]), &statuses());
    assert!(
        matches!(
            e,
            Err(ChangeError::TimeTravel {
                resource: Resource::Server,
                ..
            })
        ),
        "{e:?}"
    );
    // Within the margin it is a host's clock a little behind, not time travel.
    c.servers[0]["updated"] = json!("2013-09-03T04:01:30Z");
    c.servers[0]["name"] = json!("renamed");
    assert!(diff(&state, polled(old, &c.servers, &[], &[], &[]), &statuses()).is_ok());
    // From the far future: it would move the cursor past every change to come.
    c.fips[0]["updated_at"] = json!("2999-01-01T00:00:00Z");
    let e = diff(
        &state,
        polled(since(&state), &[], &[], &c.fips[..1], &[]),
        &statuses(),
    );
    match e {
        Err(e @ ChangeError::TimeTravel { .. }) => assert!(e.to_string().contains("2999"), "{e}"),
        other => panic!("{other:?}"),
    }
    // A filtered list whose item has no stamp cannot be ordered.
    c.ports[0]["updated_at"] = Value::Null;
    let e = diff(
        &state,
        polled(since(&state), &[], &c.ports, &[], &[]),
        &statuses(),
    );
    match e {
        Err(e @ ChangeError::Garbage { .. }) => {
            assert!(e.to_string().contains("no updated_at"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}
