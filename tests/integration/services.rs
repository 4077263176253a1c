//! Services with real nmap through the agent: discovery finds the port, nmap -sV names what runs there,
//! and a changed version between scans becomes a `service_changed` event. (The nmap driver's own tests
//! run a real sshd; here a listener speaks an SSH banner so the version can change mid-test.)

use crate::util::*;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A listener that greets every connection with the current banner.
pub struct Banner {
    text: Arc<Mutex<String>>,
    stop: Arc<AtomicBool>,
}

impl Banner {
    pub fn new(addr: &str, text: &str) -> Banner {
        let l = TcpListener::bind(addr).unwrap();
        l.set_nonblocking(true).unwrap();
        let text = Arc::new(Mutex::new(text.to_string()));
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (text.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let banner = t.lock().unwrap().clone();
                        let _ = c.write_all(banner.as_bytes());
                        // Keep it open briefly, as a real server waits for the client's banner.
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_millis(500));
                            drop(c);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Banner { text, stop }
    }

    pub fn set(&self, text: &str) {
        *self.text.lock().unwrap() = text.to_string();
    }
}

impl Drop for Banner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn nmap_names_services_and_version_changes_become_events() {
    let ssh = Banner::new(
        "127.0.71.1:20022",
        "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[targets]]\nname = \"svc\"\ncidrs = [\"127.0.71.1\"]\nports = \"20020-20025\"\n\
         [schedule]\ndiscovery = \"2s\"\njitter = \"0s\"\n\
         [scan.nmap]\nenabled = true\nbatch_timeout = \"60s\"\n",
    );
    let agent = Agent::start(&config);
    let service = |v: &serde_json::Value| v["vm"]["ports"][0]["service"].clone();
    let found = wait_for(
        "nmap to identify the service",
        Duration::from_secs(90),
        || {
            let (status, body) = agent.get("/api/v1/vms/127.0.71.1");
            let v: serde_json::Value = serde_json::from_str(&body).ok()?;
            (status == 200 && service(&v)["product"] == "OpenSSH").then_some(v)
        },
    );
    let s = service(&found);
    assert_eq!(s["name"], "ssh");
    let version = s["version"].as_str().unwrap().to_string();
    assert!(version.starts_with("9.2p1"), "{version}");
    assert!(
        s["cpes"][0]
            .as_str()
            .unwrap()
            .starts_with("cpe:/a:openbsd:openssh:9.2p1"),
        "{s}"
    );
    let m = agent.metrics();
    let series = format!(
        "port=\"20022\",expected=\"false\",rule=\"default\",service=\"ssh\",product=\"OpenSSH\",version=\"{version}\",world=\"unknown\"}} 1"
    );
    assert!(m.contains(&series), "{series} not in {m}");
    assert!(
        sample(&m, "stinger_scan_run_success{stage=\"services\"}") == Some(1.0),
        "{m}"
    );
    let ids = |q: &str| {
        agent.json(&format!("/api/v1/vms?{q}"))["vms"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(ids("service=ssh"), 1);
    assert_eq!(ids("service=http"), 0);

    ssh.set("SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n");
    let changed = wait_for(
        "the version change to be recorded",
        Duration::from_secs(90),
        || {
            let c = agent.json("/api/v1/changes?kind=service_changed");
            let first = c["changes"].as_array()?.first()?.clone();
            Some(first)
        },
    );
    assert_eq!(changed["port"], 20022);
    assert!(
        changed["service"]["version"]
            .as_str()
            .unwrap()
            .starts_with("9.6p1"),
        "{changed}"
    );
    assert!(agent.log().contains("nmap found"));
}

#[test]
fn a_missing_nmap_is_one_warning_and_discovery_goes_on() {
    let _l = Listener::new("127.0.72.1:20001");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[targets]]\nname = \"nonmap\"\ncidrs = [\"127.0.72.1\"]\nports = \"20000-20002\"\n\
         [scan.nmap]\nenabled = true\npath = \"/nonexistent/nmap\"\n",
    );
    let agent = Agent::start(&config);
    agent.wait_successes(1);
    let v = agent.json("/api/v1/vms/127.0.72.1");
    assert_eq!(v["vm"]["ports"][0]["port"], 20001);
    assert!(v["vm"]["ports"][0]["service"].is_null());
    let log = agent.log();
    assert!(
        log.contains("service detection is off") && log.contains("/nonexistent/nmap"),
        "{log}"
    );
    assert_eq!(log.matches("service detection is off").count(), 1);
}
