//! The monitoring stack of the live alerting tests: a real Prometheus loading a fast copy of
//! `alerts/stinger.rules.yml`, a real Alertmanager, and a webhook receiver that keeps every alert
//! Alertmanager posts. One stack serves every test of the module ([`shared`]): Prometheus scrapes
//! each agent address in [`AGENTS`], and each test tells its alerts apart by their labels
//! (`instance` first of all).

use crate::util::{http_get, repo, wait_for};
use serde_json::{Map, Value};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

/// Where the stack listens (127.0.80.0/24 belongs to this module).
pub const PROMETHEUS: &str = "127.0.80.1:19190";
pub const ALERTMANAGER: &str = "127.0.80.1:19193";
const WEBHOOK: &str = "127.0.80.1:19194";
/// The agents Prometheus scrapes (job `stinger`), one fixed address per test of the module, so
/// a target survives its agent's restart. An agent that is not running is a target that is down.
pub const AGENTS: [&str; 2] = ["127.0.80.2:19180", "127.0.80.3:19181"];
/// Every `for:` and `keep_firing_for:` of the copy: long enough to see `pending` first (and to
/// ride out one failed scrape), short enough for CI, and shorter than any agent's scan interval
/// here, so a finding that disappeared for a pass would show as a resolved alert.
const FOR: &str = "2s";

/// A child process killed when dropped, however the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &str, args: &[String], log: &Path) -> Proc {
    let out = std::fs::File::create(log).unwrap();
    let child = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{cmd} is needed (Debian packages prometheus, prometheus-alertmanager): {e}")
        });
    Proc(child)
}

/// `alerts/stinger.rules.yml` as operators get it, with every `for:` and `keep_firing_for:`
/// shortened and the groups' own evaluation intervals dropped (the global 1 s applies), written
/// to `dst`.
pub fn fast_rules(dst: &Path) {
    let text = std::fs::read_to_string(repo().join("alerts/stinger.rules.yml")).unwrap();
    let mut doc: Value = serde_norway::from_str(&text).expect("the rules file is YAML");
    let groups = doc["groups"].as_array_mut().expect("groups");
    for g in groups {
        let g = g.as_object_mut().expect("a group is a map");
        g.remove("interval");
        for r in g["rules"].as_array_mut().expect("rules") {
            for key in ["for", "keep_firing_for"] {
                if let Some(f) = r.get_mut(key) {
                    *f = Value::String(FOR.into());
                }
            }
        }
    }
    std::fs::write(dst, serde_norway::to_string(&doc).unwrap()).unwrap();
}

/// One alert as Alertmanager posted it, in arrival order.
#[derive(Debug, Clone)]
pub struct Note {
    pub status: String,
    pub labels: Map<String, Value>,
    pub annotations: Map<String, Value>,
}

impl Note {
    pub fn label(&self, k: &str) -> &str {
        self.labels.get(k).and_then(Value::as_str).unwrap_or("")
    }

    pub fn annotation(&self, k: &str) -> &str {
        self.annotations
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn name(&self) -> &str {
        self.label("alertname")
    }
}

/// The module's stack while any test holds it.
static SHARED: Mutex<Weak<Stack>> = Mutex::new(Weak::new());

/// The module's one stack: started by the first test that asks, stopped when the last test that
/// holds it lets go (tests run one after another get a fresh one each).
pub fn shared() -> Shared {
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let stack = slot.upgrade().unwrap_or_else(|| {
        let s = Arc::new(Stack::start(&AGENTS));
        *slot = Arc::downgrade(&s);
        s
    });
    Shared(Some(stack))
}

/// A test's hold on the shared stack. Letting go happens under the same lock as [`shared`], so a
/// stack is fully stopped (its ports free) before the next one starts.
pub struct Shared(Option<Arc<Stack>>);

impl std::ops::Deref for Shared {
    type Target = Stack;

    fn deref(&self) -> &Stack {
        self.0.as_deref().expect("held until dropped")
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        let _slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.0.take());
    }
}

/// Prometheus, Alertmanager and the webhook, until dropped (in that order; then their directory).
pub struct Stack {
    _prom: Proc,
    _am: Proc,
    hook: Webhook,
    dir: tempfile::TempDir,
}

impl Stack {
    /// Starts the stack scraping `agents` (job `stinger`) and waits until Prometheus and
    /// Alertmanager are ready.
    fn start(agents: &[&str]) -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let hook = Webhook::start();
        let dir_path = dir.path();
        let rules = dir_path.join("stinger.rules.fast.yml");
        fast_rules(&rules);
        let am_yml = dir_path.join("am.yml");
        // Every alert its own group ('...'), delivered at once, resolved ones too.
        std::fs::write(
            &am_yml,
            format!(
                "route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{WEBHOOK}/\n        send_resolved: true\n"
            ),
        )
        .unwrap();
        let prom_yml = dir_path.join("prometheus.yml");
        let targets: Vec<String> = agents.iter().map(|a| format!("'{a}'")).collect();
        std::fs::write(
            &prom_yml,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {}\n\
                 alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{ALERTMANAGER}']\n\
                 scrape_configs:\n  - job_name: stinger\n    static_configs:\n      - targets: [{}]\n",
                rules.display(),
                targets.join(", "),
            ),
        )
        .unwrap();
        let d = |name: &str| dir_path.join(name).display().to_string();
        let am = spawn(
            "prometheus-alertmanager",
            &[
                format!("--config.file={}", am_yml.display()),
                format!("--storage.path={}", d("am")),
                format!("--web.listen-address={ALERTMANAGER}"),
                "--cluster.listen-address=".into(),
            ],
            &dir_path.join("alertmanager.log"),
        );
        let prom = spawn(
            "prometheus",
            &[
                format!("--config.file={}", prom_yml.display()),
                format!("--storage.tsdb.path={}", d("prom")),
                format!("--web.listen-address={PROMETHEUS}"),
            ],
            &dir_path.join("prometheus.log"),
        );
        let stack = Stack {
            _prom: prom,
            _am: am,
            hook,
            dir,
        };
        wait_for("Prometheus to be ready", Duration::from_secs(30), || {
            let r = std::panic::catch_unwind(|| http_get(PROMETHEUS, "/-/ready", None)).ok()?;
            (r.0 == 200).then_some(())
        });
        wait_for("Alertmanager to be ready", Duration::from_secs(30), || {
            let r = std::panic::catch_unwind(|| http_get(ALERTMANAGER, "/-/ready", None)).ok()?;
            (r.0 == 200).then_some(())
        });
        stack
    }

    /// The result of an instant query (`data.result`).
    pub fn query(&self, expr: &str) -> Vec<Value> {
        let q = serde_urlencoded::to_string([("query", expr)]).unwrap();
        self.api(&format!("/api/v1/query?{q}"), expr)
    }

    /// The result of a range query from `start` to now, one point a second.
    pub fn query_range(&self, expr: &str, start: f64) -> Vec<Value> {
        let end = now();
        let q = serde_urlencoded::to_string([
            ("query", expr),
            ("start", &format!("{start:.3}")),
            ("end", &format!("{end:.3}")),
            ("step", "1"),
        ])
        .unwrap();
        self.api(&format!("/api/v1/query_range?{q}"), expr)
    }

    fn api(&self, path: &str, expr: &str) -> Vec<Value> {
        let (status, _, body) = http_get(PROMETHEUS, path, None);
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert!(
            status == 200 && v["status"] == "success",
            "Prometheus refused {expr}: HTTP {status}: {body}"
        );
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    /// Values of `label` on series matching `selector`.
    pub fn label_values(&self, label: &str, selector: Option<&str>) -> Vec<String> {
        let path = match selector {
            Some(s) => format!(
                "/api/v1/label/{label}/values?{}",
                serde_urlencoded::to_string([("match[]", s)]).unwrap()
            ),
            None => format!("/api/v1/label/{label}/values"),
        };
        let (_, _, body) = http_get(PROMETHEUS, &path, None);
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        v["data"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// How many alerts have arrived so far (a mark for [`Stack::wait_note`]).
    pub fn mark(&self) -> usize {
        self.hook.notes.lock().unwrap().len()
    }

    /// Every alert that arrived after `mark` whose labels include `labels`, in arrival order.
    pub fn notes_since(&self, mark: usize, labels: &[(&str, &str)]) -> Vec<Note> {
        self.hook
            .notes
            .lock()
            .unwrap()
            .iter()
            .skip(mark)
            .filter(|n| labels.iter().all(|(k, v)| n.label(k) == *v))
            .cloned()
            .collect()
    }

    /// Waits (at most `limit`) for an alert `name` with `status` (firing/resolved) that arrived
    /// after `mark` and whose labels include `labels`.
    pub fn wait_note(
        &self,
        mark: usize,
        name: &str,
        status: &str,
        labels: &[(&str, &str)],
        limit: Duration,
    ) -> Note {
        let find = || {
            self.hook
                .notes
                .lock()
                .unwrap()
                .iter()
                .skip(mark)
                .find(|n| {
                    n.name() == name
                        && n.status == status
                        && labels.iter().all(|(k, v)| n.label(k) == *v)
                })
                .cloned()
        };
        let start = std::time::Instant::now();
        loop {
            if let Some(n) = find() {
                eprintln!(
                    "[{:>6.1}s] {status:<8} {name} {:?}",
                    start.elapsed().as_secs_f64(),
                    n.labels
                );
                return n;
            }
            if start.elapsed() > limit {
                let firing = self.query("ALERTS");
                let got: Vec<String> = self
                    .hook
                    .notes
                    .lock()
                    .unwrap()
                    .iter()
                    .skip(mark)
                    .map(|n| format!("{} {} {:?}", n.status, n.name(), n.labels))
                    .collect();
                let log = std::fs::read_to_string(self.dir.path().join("prometheus.log"))
                    .unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                panic!(
                    "timed out after {limit:?} waiting for {status} {name} {labels:?}\n\
                     received since the mark: {got:#?}\nALERTS in Prometheus: {firing:#?}\n\
                     prometheus.log (last lines, newest first): {tail:#?}"
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Collects the alerts of Alertmanager's webhook posts, in arrival order, until dropped.
struct Webhook {
    notes: Arc<Mutex<Vec<Note>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Webhook {
    fn start() -> Webhook {
        let l = TcpListener::bind(WEBHOOK).unwrap_or_else(|e| panic!("bind {WEBHOOK}: {e}"));
        l.set_nonblocking(true).unwrap();
        let notes = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (n, s) = (notes.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => receive(c, &n),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Webhook {
            notes,
            stop,
            thread: Some(thread),
        }
    }
}

/// Reads one webhook post from Alertmanager and keeps its alerts.
fn receive(mut c: std::net::TcpStream, notes: &Mutex<Vec<Note>>) {
    c.set_nonblocking(false).ok();
    c.set_read_timeout(Some(Duration::from_secs(5))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    // Read until the body announced by Content-Length is complete.
    let body = loop {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => break None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
        let text = String::from_utf8_lossy(&buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if body.len() >= len {
                break Some(body.to_owned());
            }
        }
    };
    let _ = c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let Some(v) = body.and_then(|b| serde_json::from_str::<Value>(&b).ok()) else {
        return;
    };
    let mut notes = notes.lock().unwrap();
    for a in v["alerts"].as_array().into_iter().flatten() {
        notes.push(Note {
            status: a["status"].as_str().unwrap_or("").to_owned(),
            labels: a["labels"].as_object().cloned().unwrap_or_default(),
            annotations: a["annotations"].as_object().cloned().unwrap_or_default(),
        });
    }
}
