//! The findings API through the real binary: an unexpected listener's finding is listed confirmed;
//! acknowledging it needs users in the web config (401 without credentials, 403 with a web config
//! without users or none at all), shows the authenticated user, expires on its own, is withdrawn
//! by DELETE, and survives a restart with the finding.

use crate::util::{http_request, wait_for, write_config, Agent, Listener};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const HOST: &str = "127.94.0.1";
const LISTEN: &str = "127.94.0.1:19401";
const PASSWORD: &str = "correct horse";

/// A request with an optional basic-auth header and JSON body; the status and the JSON answer
/// (`Null` when the body is not JSON, e.g. the middleware's 401).
pub(crate) fn send(
    addr: &str,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if let Some(a) = auth {
        head.push_str(&format!("Authorization: {a}\r\n"));
    }
    write!(s, "{head}\r\n{body}").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status");
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

pub(crate) fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {b64}")
}

/// A GET answered 200 with JSON.
fn get(agent: &Agent, path: &str, auth: Option<&str>) -> Value {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
    let (status, _, body) = http_request(&agent.addr, path, &headers);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The one finding on the test host, in full.
fn the_finding(agent: &Agent, id: &str, auth: Option<&str>) -> Value {
    get(agent, &format!("/api/v1/findings/{id}"), auth)["finding"].clone()
}

/// An RFC 3339 time `secs` from now.
fn in_secs(secs: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(secs)).to_string()
}

fn history_kinds(f: &Value) -> Vec<String> {
    f["history"]
        .as_array()
        .unwrap_or_else(|| panic!("no history: {f}"))
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn acknowledgements_need_users_expire_are_withdrawn_and_survive_a_restart() {
    let _listener = Listener::new(LISTEN);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[schedule]
discovery = "2s"
jitter = "0s"

[[targets]]
name = "acks"
cidrs = ["{HOST}/32"]
ports = "19401"

[policy]
expected = []

[scan.udp]
enabled = false
"#
        ),
    );
    let users = dir.path().join("users.yml");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    std::fs::write(&users, format!("basic_auth_users:\n  alice: '{hash}'\n")).unwrap();
    let alice = basic("alice", PASSWORD);
    let auth = Some(alice.as_str());

    let agent = Agent::start_with(&config, &["--web.config.file", users.to_str().unwrap()]);
    // The listener is an unexpected port: a confirmed finding, listed with its API path.
    let listed = wait_for("the confirmed finding", Duration::from_secs(60), || {
        let v = get(&agent, "/api/v1/findings?state=confirmed", auth);
        v["findings"]
            .as_array()?
            .iter()
            .find(|f| f["host"] == HOST && f["kind"] == "unexpected_port")
            .cloned()
    });
    assert_eq!(listed["key"], "tcp/19401", "{listed}");
    assert_eq!(listed["alerting"], true, "{listed}");
    assert!(listed.get("history").is_none(), "{listed}");
    let id = listed["id"].as_str().unwrap().to_string();
    assert_eq!(listed["api_url"], format!("/api/v1/findings/{id}"));
    let ack_path = format!("/api/v1/findings/{id}/ack");
    let day = json!({"reason": "lab listener, ticket CHG-7", "expires": in_secs(86_400)});

    // Without or with wrong credentials: 401, nothing changed.
    assert_eq!(
        send(&agent.addr, "POST", &ack_path, None, Some(&day)).0,
        401
    );
    let wrong = basic("alice", "guess");
    assert_eq!(
        send(&agent.addr, "POST", &ack_path, Some(&wrong), Some(&day)).0,
        401
    );
    // A bad body: 400 naming the field.
    let (status, body) = send(
        &agent.addr,
        "POST",
        &ack_path,
        auth,
        Some(&json!({"reason": "", "expires": in_secs(60)})),
    );
    assert_eq!(
        (status, body["parameter"].as_str()),
        (400, Some("reason")),
        "{body}"
    );
    let (status, body) = send(
        &agent.addr,
        "POST",
        &ack_path,
        auth,
        Some(&json!({"reason": "r", "expires": "2001-01-01"})),
    );
    assert_eq!(
        (status, body["parameter"].as_str()),
        (400, Some("expires")),
        "{body}"
    );
    assert!(the_finding(&agent, &id, auth).get("ack").is_none());

    // Acknowledged as alice: listed acknowledged, not alerting, with the event in its history.
    let (status, body) = send(&agent.addr, "POST", &ack_path, auth, Some(&day));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["finding"]["ack"]["by"], "alice", "{body}");
    let f = the_finding(&agent, &id, auth);
    assert_eq!(f["ack"]["by"], "alice", "{f}");
    assert_eq!(f["ack"]["reason"], "lab listener, ticket CHG-7");
    assert_eq!(f["alerting"], false);
    assert_eq!(
        history_kinds(&f).last().map(String::as_str),
        Some("acknowledged")
    );
    let acked = get(&agent, "/api/v1/findings?acknowledged=true", auth);
    assert!(
        acked["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == id.as_str()),
        "{acked}"
    );

    // DELETE withdraws it; a second DELETE has nothing to withdraw.
    let (status, body) = send(&agent.addr, "DELETE", &ack_path, auth, None);
    assert_eq!(status, 200, "{body}");
    assert!(body["finding"].get("ack").is_none(), "{body}");
    let (status, body) = send(&agent.addr, "DELETE", &ack_path, auth, None);
    assert_eq!(status, 409, "{body}");
    assert!(the_finding(&agent, &id, auth).get("ack").is_none());

    // A short acknowledgement ends on its own, and the finding alerts again.
    let short = json!({"reason": "a few seconds", "expires": in_secs(3)});
    let (status, body) = send(&agent.addr, "POST", &ack_path, auth, Some(&short));
    assert_eq!(status, 200, "{body}");
    let f = wait_for(
        "the short acknowledgement to expire",
        Duration::from_secs(40),
        || {
            let f = the_finding(&agent, &id, auth);
            (f.get("ack").is_none()).then_some(f)
        },
    );
    assert!(history_kinds(&f).iter().any(|k| k == "ack_expired"), "{f}");
    assert_eq!(f["alerting"], true, "{f}");

    // A day-long one, then a restart: the finding and the acknowledgement are still there.
    let (status, body) = send(&agent.addr, "POST", &ack_path, auth, Some(&day));
    assert_eq!(status, 200, "{body}");
    let (stopped, log) = agent.stop_with_log();
    assert!(stopped.success(), "{stopped}\n{log}");
    assert!(
        log.contains("finding acknowledged") && log.contains("alice") && log.contains(&id),
        "acks are logged with user and finding:\n{log}"
    );
    assert!(
        log.contains("finding acknowledgement withdrawn"),
        "withdrawals are logged:\n{log}"
    );
    assert!(
        !log.contains(PASSWORD) && !log.contains(&hash),
        "secrets never logged"
    );

    // A web config without users: the acknowledgement is still there, writes are forbidden.
    let no_users = dir.path().join("no-users.yml");
    std::fs::write(
        &no_users,
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n",
    )
    .unwrap();
    let agent = Agent::start_with(&config, &["--web.config.file", no_users.to_str().unwrap()]);
    let f = the_finding(&agent, &id, None);
    assert_eq!(f["ack"]["by"], "alice", "kept across the restart: {f}");
    assert_eq!(f["ack"]["reason"], "lab listener, ticket CHG-7");
    for (method, body) in [("POST", Some(&day)), ("DELETE", None)] {
        let (status, answer) = send(&agent.addr, method, &ack_path, Some(&alice), body);
        assert_eq!(status, 403, "{method}: {answer}");
        assert_eq!(answer["flag"], "--web.config.file", "{answer}");
        assert_eq!(answer["key"], "basic_auth_users", "{answer}");
    }
    assert!(agent.stop().success());

    // No web config at all: the same 403, and the acknowledgement is still there.
    let agent = Agent::start(&config);
    let (status, answer) = send(&agent.addr, "POST", &ack_path, None, Some(&day));
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("basic_auth_users"),
        "{answer}"
    );
    assert_eq!(the_finding(&agent, &id, None)["ack"]["by"], "alice");
    assert!(agent.stop().success());
}
