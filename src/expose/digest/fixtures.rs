//! Test-only findings for the digest's and the mailer's tests: built directly, as the judge would
//! leave them.

use crate::model::{
    Ack, AckSource, AddressKind, Finding, FindingEvent, FindingEventKind, FindingKind,
    FindingState, Protocol, Severity, UnixSeconds, Vm, VmLink,
};
use crate::state::View;
use std::sync::Arc;

/// 2025-11-24 16:00:00 UTC: where the test windows start.
pub const T0: UnixSeconds = 1_764_000_000.0;
pub const DAY: UnixSeconds = 86_400.0;

/// A finding on `10.0.0.<n>` tcp/<8000+n> of a CIDR host, no history yet.
pub fn finding(n: u8, kind: FindingKind, severity: Severity, state: FindingState) -> Finding {
    let port = 8000 + u16::from(n);
    Finding {
        id: format!("{:016x}", u64::from(n) + 0xf000),
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
        evidence: format!("tcp/{port} open, not expected"),
        first_seen: T0 - DAY,
        last_seen: T0,
        confirmed_at: (state != FindingState::Open).then_some(T0 - DAY),
        resolved_at: None,
        stale_since: None,
        occurrence: 1,
        previous: Vec::new(),
        seen: 2,
        missed: 0,
        ack: None,
        trigger: Default::default(),
        detection_latency: None,
        history: Vec::new(),
    }
}

/// The finding behind a VM of `project` (name, id).
pub fn on_vm(mut f: Finding, vm: &str, name: &str, project: (&str, &str)) -> Finding {
    f.host = format!("{vm}/port-1/{}", f.address);
    f.group = "cloud".into();
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

/// Append events (kind, time) of occurrence 1, keeping the record consistent.
pub fn with(mut f: Finding, events: &[(FindingEventKind, UnixSeconds)]) -> Finding {
    for (kind, time) in events {
        match kind {
            FindingEventKind::Confirmed => f.confirmed_at = Some(*time),
            FindingEventKind::Resolved => f.resolved_at = Some(*time),
            _ => {}
        }
        f.record(FindingEvent {
            time: *time,
            kind: *kind,
            occurrence: f.occurrence,
            by: None,
            detail: match kind {
                FindingEventKind::Resolved => Some("not seen for 3 passes".into()),
                _ => None,
            },
            scan_id: Some(7),
        });
    }
    f
}

/// An acknowledgement by alice, given at `at`, expiring a week later.
pub fn ack(at: UnixSeconds) -> Ack {
    Ack {
        source: AckSource::Api,
        by: "alice".into(),
        reason: "accepted: lab box".into(),
        at,
        expires: at + 7.0 * DAY,
        owner: Some("bob".into()),
        severity: Severity::High,
    }
}

/// A view holding `findings`, and the inventory record of VM `i-1` (owner alice).
pub fn view(findings: Vec<Finding>) -> View {
    let mut v = View::default();
    for f in findings {
        v.findings.insert(f.id.clone(), f);
    }
    v.vms.insert(
        "i-1".into(),
        Arc::new(Vm {
            id: "i-1".into(),
            cloud: "cloud".into(),
            name: "web-1".into(),
            status: "ACTIVE".into(),
            project_id: "p-acme".into(),
            project_name: Some("acme".into()),
            user_id: "u-1".into(),
            user_name: Some("alice".into()),
            metadata: Default::default(),
            flavor: None,
            created: None,
            updated: None,
            addresses: Vec::new(),
            diagnostics: None,
            diagnostics_error: None,
            first_seen: 1.0,
            last_seen: 2.0,
        }),
    );
    v
}
