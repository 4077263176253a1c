//! Injected faults (delays, statuses, bad JSON, missing collections or ids, paging loops,
//! bodies cut short): one-shot ones are used up, sticky ones hit their service until cleared.

use super::*;
use stinger_testsupport::fake_cloud::{Fault, FaultKind, Service};

#[test]
fn faults_apply_once_or_stick() {
    let fake = start(
        8,
        cloud_with(5, |_| "p".into()),
        TokenCheck::admin(&[ADMIN]),
    );
    let c = fake.compute_addr();
    let n = fake.network_addr();
    let list = "/v2.1/servers/detail?all_tenants=1&limit=2";
    let f = fake.faults();

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::Delay(Duration::from_millis(300)),
    ));
    let t = Instant::now();
    assert_eq!(admin_get(c, list).status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "delayed {:?}",
        t.elapsed()
    );

    for code in [500, 503] {
        f.set(Fault::once(
            Service::Compute,
            "/v2.1/servers",
            FaultKind::Status(code),
        ));
        assert_eq!(admin_get(c, list).status, code);
        assert_eq!(admin_get(c, list).status, 200, "one-shot fault is used up");
    }

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::InvalidJson,
    ));
    let r = admin_get(c, list);
    assert_eq!(r.status, 200);
    assert!(r.complete);
    assert!(serde_json::from_slice::<Value>(&r.body).is_err());

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::MissingCollection,
    ));
    let body = admin_get(c, list).json();
    assert!(body.get("servers").is_none(), "{body}");

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::ItemWithoutId,
    ));
    let body = admin_get(c, list).json();
    assert!(body["servers"][0].get("id").is_none());
    assert!(body["servers"][1].get("id").is_some());

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::PaginationLoop,
    ));
    let body = admin_get(
        c,
        &format!(
            "{list}&marker={}",
            fake.with_cloud(|c| c.server_ids()[1].clone()).unwrap()
        ),
    )
    .json();
    assert_eq!(
        next_link(&body, "servers").unwrap(),
        format!("http://{c}{list}")
    );

    f.set(Fault::once(
        Service::Compute,
        "/v2.1/servers",
        FaultKind::DropMidBody,
    ));
    let r = admin_get(c, list);
    assert_eq!(r.status, 200);
    assert!(!r.complete, "body cut short: {} bytes", r.body.len());
    assert!(!r.body.is_empty(), "half the body arrives first");
    assert!(admin_get(c, list).complete);

    // Faults only hit their service and prefix; sticky ones stay until cleared.
    f.set(Fault::sticky(
        Service::Network,
        "/v2.0/ports",
        FaultKind::Status(503),
    ));
    assert_eq!(admin_get(c, list).status, 200);
    assert_eq!(admin_get(n, "/v2.0/networks").status, 200);
    assert_eq!(admin_get(n, "/v2.0/ports").status, 503);
    assert_eq!(admin_get(n, "/v2.0/ports?limit=1").status, 503);
    assert_eq!(f.pending(), 1);
    f.clear();
    assert_eq!(admin_get(n, "/v2.0/ports").status, 200);
    assert_eq!(
        f.fired(),
        10,
        "8 one-shot faults + 2 hits of the sticky one"
    );
}
