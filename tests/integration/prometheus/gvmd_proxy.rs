//! A unix-socket proxy in front of the fake gvmd that, while switched on, makes gvmd's reports
//! critical: every `<cvss_base>5.0</cvss_base>` it relays becomes `9.8` (the fixture's results top
//! out at CVSS 5.0, below StingerCriticalVulnerability's 9).

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

const FROM: &[u8] = b"<cvss_base>5.0</cvss_base>";
const TO: &[u8] = b"<cvss_base>9.8</cvss_base>";

pub struct GvmdProxy {
    pub socket: PathBuf,
    critical: Arc<AtomicBool>,
}

impl GvmdProxy {
    /// Listens on `socket`, relaying each connection to gvmd's `upstream` socket.
    pub fn start(socket: &Path, upstream: &Path) -> GvmdProxy {
        let l = UnixListener::bind(socket).unwrap();
        let critical = Arc::new(AtomicBool::new(false));
        let (c, up) = (critical.clone(), upstream.to_path_buf());
        std::thread::spawn(move || {
            for client in l.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = UnixStream::connect(&up) else {
                    continue;
                };
                let (c1, s1) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || relay(c1, s1, None));
                let c = c.clone();
                std::thread::spawn(move || relay(server, client, Some(c)));
            }
        });
        GvmdProxy {
            socket: socket.to_path_buf(),
            critical,
        }
    }

    /// Whether relayed reports carry a CVSS 9.8 finding from now on.
    pub fn set_critical(&self, on: bool) {
        self.critical.store(on, Ordering::SeqCst);
    }
}

/// Copies `from` to `to` until end of file, rewriting [`FROM`] to [`TO`] while `rewrite` is on
/// (a match split between two reads is found).
fn relay(mut from: UnixStream, mut to: UnixStream, rewrite: Option<Arc<AtomicBool>>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        if rewrite.as_ref().is_some_and(|r| r.load(Ordering::SeqCst)) {
            let mut i = 0;
            while i + FROM.len() <= pending.len() {
                if &pending[i..i + FROM.len()] == FROM {
                    pending[i..i + FROM.len()].copy_from_slice(TO);
                    i += FROM.len();
                } else {
                    i += 1;
                }
            }
        }
        // Hold back only a tail that may be the start of a match: a GMP reply ends with its own
        // closing tag, never such a tail, so no reply waits in the proxy.
        let keep = match rewrite {
            Some(_) => (1..FROM.len())
                .rev()
                .find(|&k| pending.ends_with(&FROM[..k]))
                .unwrap_or(0),
            None => 0,
        };
        let send = pending.len().saturating_sub(keep);
        if to.write_all(&pending[..send]).is_err() {
            break;
        }
        pending.drain(..send);
    }
    let _ = to.write_all(&pending);
    let _ = to.shutdown(Shutdown::Write);
}
