//! A fake gvmd: GMP over a unix socket and over TLS (a certificate from a test CA, see
//! [`crate::tls`]), with the session rules of the real one (one command in, one response out;
//! nothing but `get_version` before `authenticate`) and switchable [`Faults`]. Its state
//! ([`State`]: targets, tasks, the commands received) is open to the test. What each command
//! answers is in `commands`; how commands are framed and read is in `xml`.
//!
//! It does not use stinger's GMP code: it frames commands itself and keeps its own copy of the scan
//! config id it accepts ([`FULL_AND_FAST`]), which stinger's GMP tests check against stinger's.

mod commands;
mod xml;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinHandle;

use crate::tls::{self, Ca};
use commands::{respond, Reply};
use xml::{root_name, CommandSplitter};

pub const USER: &str = "stinger";
pub const PASSWORD: &str = "s3cret-pw";
/// The report every `get_reports` answers with (a real gvmd 22.8 report of 127.0.0.1).
pub const REPORT_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/gvm/reports/gmp22.8-report.xml"
);
/// Results in the fixture's report/results (see gmp_xml's tests).
pub const FIXTURE_RESULTS: usize = 4;
/// The only scan config `create_task` accepts: Greenbone's "Full and fast", the config stinger
/// asks for by default (`stinger::scan::gmp::FULL_AND_FAST`, which stinger's tests compare).
pub const FULL_AND_FAST: &str = "daba56c8-73ec-11df-a475-002264764cea";

/// A command (or any response the fake reads) larger than this ends the connection.
const MAX_COMMAND_BYTES: usize = 1 << 20;

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

/// A task as the fake keeps it.
#[derive(Debug, Clone)]
pub struct FTask {
    pub id: String,
    pub name: String,
    pub target_id: String,
    pub status: String,
    pub progress: i32,
    /// `get_tasks` of this task since its last start.
    pub polls: usize,
    pub last_report: Option<String>,
    pub current_report: Option<String>,
}

/// A target as the fake keeps it (the text of `create_target`'s elements).
#[derive(Debug, Clone)]
pub struct FTarget {
    pub id: String,
    pub name: String,
    pub hosts: String,
    pub port_range: String,
    pub alive_tests: String,
}

/// Everything the fake knows and has seen; tests read and change it through [`FakeGvmd::state`].
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
    /// A new uuid-shaped id; `kind` tells targets, tasks and reports apart.
    fn id(&mut self, kind: u32) -> String {
        self.next_id += 1;
        format!("{kind:08x}-0000-4000-8000-{:012x}", self.next_id)
    }

    /// How many times `command` was received.
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

/// The running fake; dropping it stops both listeners.
pub struct FakeGvmd {
    pub socket: PathBuf,
    pub tls_addr: SocketAddr,
    /// PEM of the CA that signed the fake's certificate (valid for localhost and 127.0.0.1).
    pub ca_file: PathBuf,
    /// PEM of an unrelated CA.
    pub other_ca_file: PathBuf,
    pub state: Arc<Mutex<State>>,
    /// Holds the socket and the CA files.
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

impl FakeGvmd {
    /// Listens on `gvmd.sock` in a new temporary directory and on TLS at 127.0.0.1 (a free port);
    /// call from a tokio runtime.
    pub async fn start(faults: Faults) -> FakeGvmd {
        let dir = tempfile::tempdir().expect("a temporary directory for the fake gvmd");
        let socket = dir.path().join("gvmd.sock");
        let state = Arc::new(Mutex::new(State {
            faults,
            ..State::default()
        }));

        let ca = Ca::new("fake gvmd CA");
        let other = Ca::new("some other CA");
        let leaf = ca.server(&["localhost", "127.0.0.1"]);
        let ca_file = dir.path().join("ca.pem");
        let other_ca_file = dir.path().join("other-ca.pem");
        std::fs::write(&ca_file, ca.pem()).expect("write the fake gvmd's CA");
        std::fs::write(&other_ca_file, other.pem()).expect("write the other CA");
        let acceptor = tokio_rustls::TlsAcceptor::from(tls::server_config(&leaf, None));

        let unix = UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("fake gvmd: bind {}: {e}", socket.display()));
        let tcp = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake gvmd: bind 127.0.0.1:0");
        let tls_addr = tcp.local_addr().expect("the TLS listener's address");

        let st = state.clone();
        let unix_server = tokio::spawn(async move {
            while let Ok((conn, _)) = unix.accept().await {
                lock(&st).connections += 1;
                tokio::spawn(serve(conn, st.clone()));
            }
        });
        let st = state.clone();
        let tls_server = tokio::spawn(async move {
            while let Ok((conn, _)) = tcp.accept().await {
                lock(&st).connections += 1;
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

    /// The fake's state, locked.
    pub fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// The state, locked; a panic in a test holding it does not hide the state from the rest.
fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One client connection: one command in, one response out, like gvmd.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, state: Arc<Mutex<State>>) {
    let mut authed = false;
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        let mut splitter = CommandSplitter::new(MAX_COMMAND_BYTES);
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
                Ok(None) => doc.append(&mut pending),
                Err(_) => return,
            }
        }
        let doc = String::from_utf8_lossy(&doc).into_owned();
        let (reply, slow) = {
            let mut st = lock(&state);
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
