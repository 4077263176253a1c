//! Test helpers: loopback listeners that count connections, a running `stinger` agent with its own
//! config and RocksDB directory, a minimal HTTP client, and bounded waiting. Every test uses its own
//! 127.0.N.0/24 so tests can run in parallel; nothing is ever sent outside 127.0.0.0/8.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_stinger")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Poll `f` every 50 ms until it returns Some, for at most `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A TCP listener on a loopback address that accepts and counts connections until dropped.
pub struct Listener {
    accepts: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    pub fn new(addr: &str) -> Listener {
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        l.set_nonblocking(true).unwrap();
        let accepts = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, s) = (accepts.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok(_) => {
                        a.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Listener {
            accepts,
            stop,
            thread: Some(thread),
        }
    }

    pub fn accepts(&self) -> usize {
        self.accepts.load(Ordering::Relaxed)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A minimal HTTP/1.1 GET. Returns (status, headers lower-cased, body).
pub fn http_get(addr: &str, path: &str, accept: Option<&str>) -> (u16, String, String) {
    let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
    http_request(addr, path, &headers)
}

/// A GET with extra request headers.
pub fn http_request(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .expect("HTTP response has a header");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status code");
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, head, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// The value of one sample in Prometheus text, given its exact name and label block.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A `stinger` agent process with its own directory.
pub struct Agent {
    child: Option<Child>,
    pub addr: String,
    log: Arc<Mutex<String>>,
}

/// Write a config into `dir` (storage inside it, web on a free loopback port). nmap is off unless
/// the body configures `[scan.nmap]`, so tests of the core stay fast and deterministic.
pub fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("stinger.toml");
    let storage = dir.join("data");
    let nmap = if body.contains("[scan.nmap]") {
        ""
    } else {
        "\n[scan.nmap]\nenabled = false\n"
    };
    // Test clouds put their VMs on loopback, which [scope] refuses from a cloud API unless allowed.
    let scope = if body.contains("[[openstack]]") && !body.contains("[scope]") {
        "\n[scope]\nallow = [\"127.0.0.0/8\"]\n"
    } else {
        ""
    };
    let text = format!(
        "{body}{nmap}{scope}\n[storage]\npath = \"{}\"\n\n[web]\nlisten_address = \"127.0.0.1:0\"\n",
        storage.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

impl Agent {
    /// Start the agent on `config` and wait until it serves.
    pub fn start(config: &Path) -> Agent {
        Agent::start_with(config, &[])
    }

    /// Start with extra command-line flags.
    pub fn start_with(config: &Path, flags: &[&str]) -> Agent {
        Agent::start_env(config, flags, &[])
    }

    /// Start with extra flags and environment variables (e.g. `OS_CLIENT_CONFIG_FILE`).
    pub fn start_env(config: &Path, flags: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut child = Command::new(bin())
            .arg("--config.file")
            .arg(config)
            .arg("--log.level=debug")
            .args(flags)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start stinger");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let l = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut log = l.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let mut agent = Agent {
            child: Some(child),
            addr: String::new(),
            log,
        };
        agent.addr = wait_for("the agent to serve", Duration::from_secs(30), || {
            if let Some(Ok(Some(status))) = agent.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "stinger exited with {status} before serving:\n{}",
                    agent.log()
                );
            }
            let log = agent.log();
            let line = log.lines().find(|l| l.contains("message=serving"))?;
            let addr = line.split("address=").nth(1)?.split(' ').next()?;
            Some(addr.trim_matches('"').to_string())
        });
        agent
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = http_get(&self.addr, path, None);
        (status, body)
    }

    pub fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: not JSON ({e}): {body}"))
    }

    pub fn metrics(&self) -> String {
        self.get("/metrics").1
    }

    /// Wait until at least `n` discovery runs have succeeded.
    pub fn wait_successes(&self, n: usize) -> Value {
        wait_for(
            &format!("{n} successful scans"),
            Duration::from_secs(60),
            || {
                let scans = self.json("/api/v1/scans");
                let ok = scans["scans"]
                    .as_array()?
                    .iter()
                    .filter(|s| s["outcome"] == "success")
                    .count();
                (ok >= n).then_some(scans)
            },
        )
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(ok.success(), "kill -{sig} {pid}");
    }

    /// SIGTERM and wait (bounded) for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        self.signal("TERM");
        let mut child = self.child.take().unwrap();
        wait_for("the agent to exit", Duration::from_secs(20), || {
            child.try_wait().ok().flatten()
        })
    }

    /// SIGTERM, wait (bounded) for a clean exit, and return the exit status with the whole log.
    pub fn stop_with_log(self) -> (ExitStatus, String) {
        let log = self.log.clone();
        let status = self.stop();
        // The reader thread sees end-of-file once the process is gone; give it a moment to append.
        std::thread::sleep(Duration::from_millis(200));
        let text = log.lock().unwrap().clone();
        (status, text)
    }

    /// SIGKILL: no chance to flush or finish anything.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        let _ = child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
