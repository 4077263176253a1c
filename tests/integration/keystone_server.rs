//! The real Keystone of the integration tests: `<repo>/../shared/keystone/start-keystone.sh` (keystone
//! 30 from PyPI, SQLite, fernet tokens, gunicorn on 127.0.0.1), started once per test binary on a free
//! port with a fresh database. The venv is kept under `target/tmp/stinger-keystone/venv` and reused;
//! each start after the first one gets its own `run-<pid>` directory beside it (the venv linked in),
//! so two test binaries running at once do not share a database. The server exits by itself after
//! `TTL` seconds.
//!
//! Needs python3.11 (with the venv module), curl and jq: without them the tests fail saying so.

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use stinger_testsupport::net::free_port;

/// What `start-keystone.sh` printed.
#[derive(Debug)]
pub struct Keystone {
    /// `http://127.0.0.1:<port>/v3`.
    pub url: String,
    /// `http://127.0.0.1:<port>`.
    pub root: String,
    pub admin_token: String,
    pub demo_project: String,
    pub demo_user: String,
    pub appcred_id: String,
    pub appcred_secret: String,
    pub server_pid: u32,
}

/// Seconds the server lives.
const TTL: u64 = 900;
/// The longest a start may take (a pip install from nothing is about 40 s on a quiet machine).
const START_LIMIT: Duration = Duration::from_secs(600);

/// The server, started on first use. Panics (failing the test) with the reason when it cannot start.
pub fn keystone() -> &'static Keystone {
    static SERVER: OnceLock<Result<Keystone, String>> = OnceLock::new();
    match SERVER.get_or_init(start) {
        Ok(k) => k,
        Err(e) => panic!("the real Keystone for the integration tests did not start: {e}"),
    }
}

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("keystone")
}

fn check_tools() -> Result<(), String> {
    let works = |cmd: &str, args: &[&str]| {
        Command::new(cmd)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let mut missing = Vec::new();
    if !works("python3.11", &["-c", "import venv, ensurepip"]) {
        missing.push("python3.11 with the venv module (python3.11-venv)");
    }
    if !works("curl", &["--version"]) {
        missing.push("curl");
    }
    if !works("jq", &["--version"]) {
        missing.push("jq");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "missing {}; install them to run the Keystone tests",
            missing.join(", ")
        ))
    }
}

/// The last `n` lines of a file, for failure messages.
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    format!(
        "--- {} ---\n{}",
        path.display(),
        lines[lines.len().saturating_sub(n)..].join("\n")
    )
}

/// Removes run directories of earlier binaries (older than the server's TTL, so none still serving).
fn remove_old_runs(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > Duration::from_secs(2 * TTL));
        if old && entry.file_name().to_string_lossy().starts_with("run-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start() -> Result<Keystone, String> {
    let script = shared().join("start-keystone.sh");
    if !script.is_file() {
        return Err(format!(
            "{} not found (the shared/ directory must sit beside the repository)",
            script.display()
        ));
    }
    check_tools()?;
    let base = Path::new(env!("CARGO_TARGET_TMPDIR")).join("stinger-keystone");
    std::fs::create_dir_all(&base).map_err(|e| format!("create {}: {e}", base.display()))?;
    remove_old_runs(&base);
    // First start: the script builds the venv in `base` itself (its paths are absolute, so it must
    // live where it is made). Later starts: a fresh directory with the venv linked in.
    let dir = if base.join("venv/bin/gunicorn").exists() {
        let dir = base.join(format!("run-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        std::os::unix::fs::symlink(base.join("venv"), dir.join("venv"))
            .map_err(|e| format!("link the venv into {}: {e}", dir.display()))?;
        dir
    } else {
        for stale in ["ks.db", "fk", "ck", "etc"] {
            let p = base.join(stale);
            let _ = std::fs::remove_dir_all(&p).or_else(|_| std::fs::remove_file(&p));
        }
        base.clone()
    };
    let port = free_port("127.0.0.1");
    let out_path = dir.join("start.out");
    let err_path = dir.join("start.err");
    let out = std::fs::File::create(&out_path).map_err(|e| format!("{e}"))?;
    let err = std::fs::File::create(&err_path).map_err(|e| format!("{e}"))?;
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .env("D", &dir)
        .env("PORT", port.to_string())
        .env("TTL", TTL.to_string())
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    let constraints = shared().join("constraints.txt");
    if constraints.is_file() {
        cmd.env("PIPOPTS", format!("-c {}", constraints.display()));
    }
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("run {}: {e}", script.display()))?;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() < START_LIMIT => {
                std::thread::sleep(Duration::from_millis(200))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{} did not finish within {START_LIMIT:?}\n{}",
                    script.display(),
                    tail(&err_path, 20)
                ));
            }
            Err(e) => return Err(format!("wait for {}: {e}", script.display())),
        }
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    let line = output.lines().find(|l| l.contains("KEYSTONE_URL="));
    let (true, Some(line)) = (status.success(), line) else {
        return Err(format!(
            "{} failed ({status}) after {:?}\n{}\n{}\n{}",
            script.display(),
            started.elapsed(),
            tail(&err_path, 20),
            tail(&dir.join("manage.log"), 20),
            tail(&dir.join("server.log"), 20)
        ));
    };
    let field = |key: &str| -> Result<String, String> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("{key} missing from the script's output"))
    };
    let url = field("KEYSTONE_URL")?;
    let root = url
        .strip_suffix("/v3")
        .ok_or_else(|| format!("KEYSTONE_URL {url} does not end in /v3"))?
        .to_owned();
    eprintln!(
        "keystone: started at {url} in {:?} (dir {})",
        started.elapsed(),
        dir.display()
    );
    Ok(Keystone {
        root,
        admin_token: field("ADMIN_TOKEN")?,
        demo_project: field("DEMO_PROJECT")?,
        demo_user: field("DEMO_USER")?,
        appcred_id: field("APPCRED_ID")?,
        appcred_secret: field("APPCRED_SECRET")?,
        server_pid: field("SERVER_PID")?
            .parse()
            .map_err(|e| format!("SERVER_PID: {e}"))?,
        url,
    })
}

/// A JSON request to Keystone with the admin token; returns (status, body).
pub fn keystone_call(method: &str, path: &str, body: &Value) -> (u16, Value) {
    let ks = keystone();
    let addr = ks.root.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect to keystone");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    write!(
        s,
        "{method} /v3{path} HTTP/1.1\r\nHost: {addr}\r\nX-Auth-Token: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        ks.admin_token,
        body.len()
    )
    .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Registers the fake's compute and network endpoints (and Keystone's) in a region of their own.
/// The agent looks endpoints up across every catalog entry of a type, so a second `network` service
/// created by another module at the same moment would not matter; ours are created under a lock.
pub fn register_region(region: &str, compute: &str, network: &str) {
    static SERVICES: Mutex<()> = Mutex::new(());
    let (st, _) = keystone_call("POST", "/regions", &json!({"region": {"id": region}}));
    assert!(st == 201 || st == 409, "create region: HTTP {st}");
    let ids = {
        let _guard = SERVICES.lock().unwrap_or_else(|p| p.into_inner());
        let (st, services) = keystone_call("GET", "/services", &Value::Null);
        assert_eq!(st, 200);
        let id_of = |kind: &str| {
            services["services"]
                .as_array()
                .and_then(|l| l.iter().find(|s| s["type"] == kind))
                .and_then(|s| s["id"].as_str())
                .map(str::to_owned)
        };
        let network_id = id_of("network").unwrap_or_else(|| {
            let (st, v) = keystone_call(
                "POST",
                "/services",
                &json!({"service": {"type": "network", "name": "neutron"}}),
            );
            assert_eq!(st, 201, "create network service: {v}");
            v["service"]["id"].as_str().unwrap().to_owned()
        });
        let compute_id = id_of("compute").expect("the script registers a compute service");
        let identity_id = id_of("identity").expect("bootstrap registers the identity service");
        [compute_id, network_id, identity_id]
    };
    let identity = keystone().url.clone();
    for (service, url) in ids.iter().zip([compute, network, identity.as_str()]) {
        for interface in ["public", "internal", "admin"] {
            let (st, v) = keystone_call(
                "POST",
                "/endpoints",
                &json!({"endpoint": {"service_id": service, "interface": interface, "url": url, "region_id": region}}),
            );
            assert_eq!(st, 201, "create endpoint: {v}");
        }
    }
}
