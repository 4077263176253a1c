//! A fake gvmd: GMP over a unix socket and over TLS (certificate from a test CA made with
//! rcgen), with the session rules of the real one and switchable faults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use crate::scan::gmp_xml::ResponseSplitter;

pub const USER: &str = "stinger";
pub const PASSWORD: &str = "s3cret-pw";
pub const REPORT_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/gvm/reports/gmp22.8-report.xml"
);
/// Results in the fixture's report/results (see gmp_xml's tests).
pub const FIXTURE_RESULTS: usize = 4;

/// Ways the fake misbehaves.
#[derive(Debug, Default, Clone)]
pub struct Faults {
    /// Answer this many start_task commands with 503.
    pub start_503: u32,
    /// Send the first half of every report, then close the connection.
    pub truncate_report: bool,
    /// Tasks go Requested → Running 30 → Stopped.
    pub stop_task: bool,
    /// Tasks never get past Running 30.
    pub never_done: bool,
    /// Claim more matching results than the report carries (gvmd's "Max Rows Per Page" cut).
    pub rows_cut: bool,
    /// Sleep this long before answering this command.
    pub slow: Option<(String, Duration)>,
    /// Report the sample's findings for this address instead of its own 127.0.0.1.
    pub report_host: Option<String>,
    /// Name the feed this (raw XML text: escape it yourself) instead of `NVT`.
    pub feed_type: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FTask {
    pub id: String,
    pub name: String,
    pub target_id: String,
    pub status: String,
    pub progress: i32,
    pub polls: usize,
    pub last_report: Option<String>,
    pub current_report: Option<String>,
}

#[derive(Debug, Clone)]
pub struct FTarget {
    pub id: String,
    pub name: String,
    pub hosts: String,
    pub port_range: String,
    pub alive_tests: String,
}

#[derive(Debug, Default)]
pub struct State {
    pub faults: Faults,
    pub tasks: Vec<FTask>,
    pub targets: Vec<FTarget>,
    /// Command names in arrival order.
    pub log: Vec<String>,
    pub connections: usize,
    /// Every command received, verbatim (to check that nothing but authenticate carries the
    /// password).
    pub raw: Vec<String>,
    next_id: u64,
}

impl State {
    fn id(&mut self, kind: u32) -> String {
        self.next_id += 1;
        format!("{kind:08x}-0000-4000-8000-{:012x}", self.next_id)
    }

    pub fn count(&self, command: &str) -> usize {
        self.log.iter().filter(|c| *c == command).count()
    }

    /// A finished task to import (seeded directly).
    pub fn seed_task(&mut self, name: &str, status: &str, last_report: Option<&str>) -> String {
        let id = self.id(3);
        let target_id = self.id(2);
        self.targets.push(FTarget {
            id: target_id.clone(),
            name: name.to_owned(),
            hosts: String::new(),
            port_range: String::new(),
            alive_tests: String::new(),
        });
        self.tasks.push(FTask {
            id: id.clone(),
            name: name.to_owned(),
            target_id,
            status: status.to_owned(),
            progress: -1,
            polls: 0,
            last_report: last_report.map(str::to_owned),
            current_report: None,
        });
        id
    }
}

pub struct FakeGvmd {
    pub socket: PathBuf,
    pub tls_addr: SocketAddr,
    /// PEM of the CA that signed the fake's certificate (valid for localhost and 127.0.0.1).
    pub ca_file: PathBuf,
    /// PEM of an unrelated CA.
    pub other_ca_file: PathBuf,
    pub state: Arc<Mutex<State>>,
    pub dir: tempfile::TempDir,
    servers: Vec<JoinHandle<()>>,
}

impl Drop for FakeGvmd {
    fn drop(&mut self) {
        for s in &self.servers {
            s.abort();
        }
    }
}

fn make_ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

impl FakeGvmd {
    pub async fn start(faults: Faults) -> FakeGvmd {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("gvmd.sock");
        let state = Arc::new(Mutex::new(State {
            faults,
            ..State::default()
        }));

        let ca = make_ca("fake gvmd CA");
        let other = make_ca("some other CA");
        let leaf_key = KeyPair::generate().unwrap();
        let mut leaf =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "fake gvmd");
        let leaf = leaf.signed_by(&leaf_key, &*ca).unwrap();
        let ca_file = dir.path().join("ca.pem");
        let other_ca_file = dir.path().join("other-ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        std::fs::write(&other_ca_file, other.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), CertificateDer::from(ca.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));

        let unix = UnixListener::bind(&socket).unwrap();
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let tls_addr = tcp.local_addr().unwrap();

        let st = state.clone();
        let unix_server = tokio::spawn(async move {
            while let Ok((conn, _)) = unix.accept().await {
                st.lock().unwrap().connections += 1;
                tokio::spawn(serve(conn, st.clone()));
            }
        });
        let st = state.clone();
        let tls_server = tokio::spawn(async move {
            while let Ok((conn, _)) = tcp.accept().await {
                st.lock().unwrap().connections += 1;
                let acceptor = acceptor.clone();
                let st = st.clone();
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(5), acceptor.accept(conn)).await
                    {
                        serve(tls, st).await;
                    }
                });
            }
        });
        FakeGvmd {
            socket,
            tls_addr,
            ca_file,
            other_ca_file,
            state,
            dir,
            servers: vec![unix_server, tls_server],
        }
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap()
    }
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn root_name(doc: &str) -> String {
    let s = doc.trim_start().trim_start_matches('<');
    let end = s
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(s.len());
    s[..end].to_owned()
}

/// Text of the first `<tag>…</tag>`.
fn text(doc: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = doc.find(&open)? + open.len();
    let end = doc[start..].find(&format!("</{tag}>"))? + start;
    Some(unescape(&doc[start..end]))
}

/// Attribute `key` of the first `<elem …>`.
fn attr(doc: &str, elem: &str, key: &str) -> Option<String> {
    let open = format!("<{elem}");
    let mut from = 0;
    let tag = loop {
        let i = doc[from..].find(&open)? + from;
        let after = doc[i + open.len()..].chars().next()?;
        if after.is_whitespace() || after == '/' || after == '>' {
            let end = doc[i..].find('>')? + i;
            break &doc[i..end];
        }
        from = i + open.len();
    };
    let pat = format!(" {key}=\"");
    let start = tag.find(&pat)? + pat.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

fn status(cmd: &str, code: u16, text: &str) -> String {
    format!("<{cmd}_response status=\"{code}\" status_text=\"{text}\"/>")
}

enum Reply {
    Send(Vec<u8>),
    SendAndClose(Vec<u8>),
    /// Send the first half, then close.
    Truncate(Vec<u8>),
}

/// Task status sequence over successive polls after start_task.
fn steps(f: &Faults) -> &'static [(&'static str, i32)] {
    if f.stop_task {
        &[("Requested", 0), ("Running", 30), ("Stopped", -1)]
    } else if f.never_done {
        &[("Requested", 0), ("Running", 30)]
    } else {
        &[
            ("Requested", 0),
            ("Running", 30),
            ("Running", 70),
            ("Done", -1),
        ]
    }
}

fn task_xml(t: &FTask) -> String {
    let mut s = format!(
        "<task id=\"{}\"><name>{}</name><comment/><status>{}</status><progress>{}</progress>",
        t.id, t.name, t.status, t.progress
    );
    if !t.target_id.is_empty() {
        s.push_str(&format!("<target id=\"{}\"/>", t.target_id));
    }
    if let Some(r) = &t.last_report {
        s.push_str(&format!(
            "<last_report><report id=\"{r}\"><timestamp>2025-01-01T00:00:00Z</timestamp></report></last_report>"
        ));
    }
    if let Some(r) = &t.current_report {
        s.push_str(&format!(
            "<current_report><report id=\"{r}\"><timestamp>2025-01-01T00:00:00Z</timestamp></report></current_report>"
        ));
    }
    s.push_str("</task>");
    s
}

fn respond(st: &mut State, doc: &str, authed: &mut bool) -> Reply {
    let cmd = root_name(doc);
    st.log.push(cmd.clone());
    st.raw.push(doc.to_owned());
    let ok = |s: String| Reply::Send(s.into_bytes());
    if cmd == "get_version" {
        return ok("<get_version_response status=\"200\" status_text=\"OK\"><version>22.7</version></get_version_response>".into());
    }
    if cmd == "authenticate" {
        let user = text(doc, "username").unwrap_or_default();
        let pw = text(doc, "password").unwrap_or_default();
        if user == USER && pw == PASSWORD {
            *authed = true;
            return ok("<authenticate_response status=\"200\" status_text=\"OK\"><role>Admin</role><timezone>UTC</timezone></authenticate_response>".into());
        }
        return ok(status("authenticate", 400, "Authentication failed"));
    }
    if !*authed {
        return Reply::SendAndClose(
            "<gmp_response status=\"400\" status_text=\"Only command GET_VERSION is allowed before AUTHENTICATE\"/>"
                .as_bytes()
                .to_vec(),
        );
    }
    match cmd.as_str() {
        "create_target" => {
            let name = text(doc, "name").unwrap_or_default();
            if st.targets.iter().any(|t| t.name == name) {
                return ok(status(&cmd, 400, "Target exists already"));
            }
            let id = st.id(1);
            st.targets.push(FTarget {
                id: id.clone(),
                name,
                hosts: text(doc, "hosts").unwrap_or_default(),
                port_range: text(doc, "port_range").unwrap_or_default(),
                alive_tests: text(doc, "alive_tests").unwrap_or_default(),
            });
            ok(format!(
                "<create_target_response status=\"201\" status_text=\"OK, resource created\" id=\"{id}\"/>"
            ))
        }
        "create_task" => {
            let config = attr(doc, "config", "id").unwrap_or_default();
            if config != crate::scan::gmp::FULL_AND_FAST {
                return ok(status(&cmd, 404, &format!("Failed to find config '{config}'")));
            }
            let target_id = attr(doc, "target", "id").unwrap_or_default();
            if !st.targets.iter().any(|t| t.id == target_id) {
                return ok(status(&cmd, 404, "Failed to find target"));
            }
            let id = st.id(2);
            st.tasks.push(FTask {
                id: id.clone(),
                name: text(doc, "name").unwrap_or_default(),
                target_id,
                status: "New".into(),
                progress: -1,
                polls: 0,
                last_report: None,
                current_report: None,
            });
            ok(format!(
                "<create_task_response status=\"201\" status_text=\"OK, resource created\" id=\"{id}\"/>"
            ))
        }
        "start_task" => {
            if st.faults.start_503 > 0 {
                st.faults.start_503 -= 1;
                return ok(status(&cmd, 503, "Service temporarily down"));
            }
            let task_id = attr(doc, "start_task", "task_id").unwrap_or_default();
            let report = st.id(4);
            let Some(t) = st.tasks.iter_mut().find(|t| t.id == task_id) else {
                return ok(status(&cmd, 404, "Failed to find task"));
            };
            if matches!(t.status.as_str(), "Requested" | "Running" | "Queued") {
                return ok(status(&cmd, 400, "Task is active already"));
            }
            t.status = "Requested".into();
            t.progress = 0;
            t.polls = 0;
            t.current_report = Some(report.clone());
            ok(format!(
                "<start_task_response status=\"202\" status_text=\"OK, request submitted\"><report_id>{report}</report_id></start_task_response>"
            ))
        }
        "stop_task" => {
            let task_id = attr(doc, "stop_task", "task_id").unwrap_or_default();
            match st.tasks.iter_mut().find(|t| t.id == task_id) {
                Some(t) => {
                    t.status = "Stopped".into();
                    t.progress = -1;
                    t.current_report = None;
                    ok(status(&cmd, 202, "OK, request submitted"))
                }
                None => ok(status(&cmd, 404, "Failed to find task")),
            }
        }
        "get_tasks" => {
            if let Some(task_id) = attr(doc, "get_tasks", "task_id") {
                let steps = steps(&st.faults);
                let Some(t) = st.tasks.iter_mut().find(|t| t.id == task_id) else {
                    return ok(status(&cmd, 404, &format!("Failed to find task '{task_id}'")));
                };
                if t.current_report.is_some() {
                    let (s, p) = steps[t.polls.min(steps.len() - 1)];
                    t.polls += 1;
                    t.status = s.into();
                    t.progress = p;
                    if s == "Done" {
                        t.last_report = t.current_report.take();
                    }
                    if s == "Stopped" {
                        t.current_report = None;
                    }
                }
                return ok(format!(
                    "<get_tasks_response status=\"200\" status_text=\"OK\">{}</get_tasks_response>",
                    task_xml(t)
                ));
            }
            let filter = attr(doc, "get_tasks", "filter").unwrap_or_default();
            let want = filter
                .split_whitespace()
                .find_map(|w| w.strip_prefix("name~"))
                .unwrap_or("")
                .trim_matches('"')
                .to_owned();
            let body: String = st
                .tasks
                .iter()
                .filter(|t| t.name.contains(&want))
                .map(task_xml)
                .collect();
            ok(format!(
                "<get_tasks_response status=\"200\" status_text=\"OK\">{body}<filters id=\"\"><term>{}</term></filters></get_tasks_response>",
                filter
            ))
        }
        "get_reports" => {
            let id = attr(doc, "get_reports", "report_id").unwrap_or_default();
            let known = st
                .tasks
                .iter()
                .any(|t| t.last_report.as_deref() == Some(&id) || t.current_report.as_deref() == Some(&id));
            if !known {
                return ok(status(&cmd, 404, "Failed to find report"));
            }
            let mut body =
                b"<get_reports_response status=\"200\" status_text=\"OK\">".to_vec();
            let mut report = std::fs::read_to_string(REPORT_FIXTURE).unwrap();
            if let Some(h) = &st.faults.report_host {
                report = report.replace("127.0.0.1", h);
            }
            if st.faults.rows_cut {
                report = report.replacen("<filtered>4</filtered>", "<filtered>1000</filtered>", 1);
            }
            body.extend(report.into_bytes());
            body.extend(b"</get_reports_response>");
            if st.faults.truncate_report {
                Reply::Truncate(body)
            } else {
                Reply::Send(body)
            }
        }
        "get_feeds" => ok(format!(
            "<get_feeds_response status=\"200\" status_text=\"OK\"><feed><type>{}</type><name>Greenbone Community Feed</name><version>202501010000</version></feed></get_feeds_response>",
            st.faults.feed_type.as_deref().unwrap_or("NVT")
        )),
        "delete_task" => {
            let id = attr(doc, "delete_task", "task_id").unwrap_or_default();
            let before = st.tasks.len();
            st.tasks.retain(|t| t.id != id);
            if st.tasks.len() == before {
                ok(status(&cmd, 404, "Failed to find task"))
            } else {
                ok(status(&cmd, 200, "OK"))
            }
        }
        "delete_target" => {
            let id = attr(doc, "delete_target", "target_id").unwrap_or_default();
            if st.tasks.iter().any(|t| t.target_id == id) {
                return ok(status(&cmd, 400, "Target is in use"));
            }
            st.targets.retain(|t| t.id != id);
            ok(status(&cmd, 200, "OK"))
        }
        _ => ok("<gmp_response status=\"400\" status_text=\"Bogus command name\"/>".into()),
    }
}

/// One client connection: one command in, one response out, like gvmd.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, state: Arc<Mutex<State>>) {
    let mut authed = false;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        // Frame one command with the same splitter the client uses.
        let mut splitter = ResponseSplitter::new(1 << 20);
        let mut doc = Vec::new();
        loop {
            if pending.is_empty() {
                match io.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => pending.extend_from_slice(&chunk[..n]),
                }
            }
            match splitter.push(&pending) {
                Ok(Some(n)) => {
                    doc.extend_from_slice(&pending[..n]);
                    pending.drain(..n);
                    break;
                }
                Ok(None) => {
                    doc.append(&mut pending);
                }
                Err(_) => return,
            }
        }
        let doc = String::from_utf8_lossy(&doc).into_owned();
        let (reply, slow) = {
            let mut st = state.lock().unwrap();
            let slow = st
                .faults
                .slow
                .clone()
                .filter(|(c, _)| *c == root_name(&doc))
                .map(|(_, d)| d);
            (respond(&mut st, &doc, &mut authed), slow)
        };
        if let Some(d) = slow {
            tokio::time::sleep(d).await;
        }
        match reply {
            Reply::Send(b) => {
                if io.write_all(&b).await.is_err() || io.flush().await.is_err() {
                    return;
                }
            }
            Reply::SendAndClose(b) => {
                let _ = io.write_all(&b).await;
                let _ = io.shutdown().await;
                return;
            }
            Reply::Truncate(b) => {
                let _ = io.write_all(&b[..b.len() / 2]).await;
                let _ = io.flush().await;
                let _ = io.shutdown().await;
                return;
            }
        }
    }
}
