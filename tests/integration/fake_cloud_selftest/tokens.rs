//! Token checks: static tokens (admin and project member), expiry with one 401 and request
//! counting, and validation against a one-route fake Keystone with caching and roles.

use super::*;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn tokens_are_required_and_checked() {
    let fake = start(
        5,
        cloud_with(6, |i| format!("p{}", i % 2)),
        TokenCheck::admin(&[ADMIN]),
    );
    let c = fake.compute_addr();
    let n = fake.network_addr();
    assert_eq!(get(c, "/v2.1/servers/detail", &[]).status, 401);
    assert_eq!(get(n, "/v2.0/ports", &[]).status, 401);
    assert_eq!(
        get(c, "/v2.1/servers/detail", &[("X-Auth-Token", "wrong")]).status,
        401
    );
    assert_eq!(admin_get(c, "/v2.1/servers/detail").status, 200);
    assert_eq!(admin_get(n, "/v2.0/ports").status, 200);

    // A project member: no all_tenants, sees only its project.
    let member = start(
        6,
        cloud_with(6, |i| format!("p{}", i % 2)),
        TokenCheck::Static {
            tokens: ["tok-member".to_string()].into_iter().collect(),
            admin: false,
            project_id: Some("p1".into()),
        },
    );
    let h = [("X-Auth-Token", "tok-member")];
    assert_eq!(
        get(
            member.compute_addr(),
            "/v2.1/servers/detail?all_tenants=1",
            &h
        )
        .status,
        403
    );
    let own = get(member.compute_addr(), "/v2.1/servers/detail", &h).json();
    let own_ids = ids(&own, "servers");
    assert_eq!(own_ids.len(), 3);
    assert!(own["servers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["tenant_id"] == "p1"));
    let ports = get(member.network_addr(), "/v2.0/ports", &h).json();
    assert_eq!(ids(&ports, "ports").len(), 3);
    // Admin-only fields are hidden from members.
    assert!(own["servers"][0].get("OS-EXT-SRV-ATTR:host").is_none());
    let adm = admin_get(c, "/v2.1/servers/detail?all_tenants=1").json();
    assert!(adm["servers"][0].get("OS-EXT-SRV-ATTR:host").is_some());
}

#[test]
fn expired_tokens_get_one_401_and_requests_are_counted() {
    let fake = start(
        7,
        cloud_with(2, |_| "p".into()),
        TokenCheck::admin(&[ADMIN, "other"]),
    );
    let c = fake.compute_addr();
    assert_eq!(admin_get(c, "/v2.1/servers/detail").status, 200);
    fake.expire_tokens();
    assert_eq!(admin_get(c, "/v2.1/servers/detail").status, 401);
    assert_eq!(admin_get(c, "/v2.1/servers/detail").status, 200);
    // Tokens known but not used yet are expired too.
    assert_eq!(
        get(
            fake.network_addr(),
            "/v2.0/networks",
            &[("X-Auth-Token", "other")]
        )
        .status,
        401
    );
    assert_eq!(fake.requests_to("/v2.1/servers/detail"), 3);
    assert_eq!(fake.requests_to("/v2.0/networks"), 1);
    assert_eq!(fake.requests_with_token(ADMIN), 3);
    assert_eq!(fake.requests_with_token("other"), 1);
    let log = fake.request_log();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        vec![200, 401, 200, 401]
    );
    fake.reset_counts();
    assert_eq!(fake.requests_to("/v2.1/servers/detail"), 0);
}

/// A one-route Keystone on loopback: `GET /v3/auth/tokens` answers 200 for the known tokens (admin
/// role for `ks-admin`), 404 for any other; counts the requests.
struct FakeKeystone {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeKeystone {
    fn start(addr: &str) -> FakeKeystone {
        let l = TcpListener::bind(addr).unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (hits.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let Ok((mut conn, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                h.fetch_add(1, Ordering::Relaxed);
                conn.set_nonblocking(false).unwrap();
                conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_ascii_lowercase();
                let subject = text
                    .lines()
                    .find_map(|l| l.strip_prefix("x-subject-token:"))
                    .map(str::trim)
                    .unwrap_or("");
                let auth = text
                    .lines()
                    .find_map(|l| l.strip_prefix("x-auth-token:"))
                    .map(str::trim)
                    .unwrap_or("");
                let ok_path = text.starts_with("get /v3/auth/tokens ");
                let (status, body) = match subject {
                    _ if !ok_path || auth != subject => ("404 Not Found", "{}".to_string()),
                    "ks-admin" => ("200 OK", r#"{"token":{"roles":[{"id":"r1","name":"admin"}],"project":{"id":"pa"}}}"#.to_string()),
                    "ks-member" => ("200 OK", r#"{"token":{"roles":[{"id":"r2","name":"member"}],"project":{"id":"pm"}}}"#.to_string()),
                    _ => ("404 Not Found", r#"{"error":{"code":404}}"#.to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(resp.as_bytes());
            }
        });
        FakeKeystone {
            addr,
            hits,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for FakeKeystone {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn keystone_token_check_validates_caches_and_reads_roles() {
    let ks = FakeKeystone::start("127.0.80.20:0");
    let fake = start(
        12,
        cloud_with(4, |i| if i < 2 { "pa".into() } else { "pm".into() }),
        TokenCheck::Keystone {
            url: format!("http://{}/v3", ks.addr),
        },
    );
    let c = fake.compute_addr();
    let admin = [("X-Auth-Token", "ks-admin")];
    let member = [("X-Auth-Token", "ks-member")];
    assert_eq!(
        get(c, "/v2.1/servers/detail?all_tenants=1", &admin).status,
        200
    );
    assert_eq!(
        get(c, "/v2.1/servers/detail?all_tenants=1", &admin).status,
        200
    );
    assert_eq!(
        ks.hits.load(Ordering::Relaxed),
        1,
        "a good answer is cached"
    );
    assert_eq!(
        get(c, "/v2.1/servers/detail?all_tenants=1", &member).status,
        403
    );
    let own = get(c, "/v2.1/servers/detail", &member).json();
    assert_eq!(ids(&own, "servers").len(), 2);
    assert!(own["servers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["tenant_id"] == "pm"));
    assert_eq!(
        get(c, "/v2.1/servers/detail", &[("X-Auth-Token", "ks-unknown")]).status,
        401
    );
    assert_eq!(fake.keystone_validations(), 3);
    fake.expire_tokens();
    assert_eq!(get(c, "/v2.1/servers/detail", &admin).status, 401);
    assert_eq!(get(c, "/v2.1/servers/detail", &admin).status, 200);
    assert_eq!(fake.keystone_validations(), 4, "expiry empties the cache");
}
