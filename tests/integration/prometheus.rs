//! The shipped alerting rules, live: a real Prometheus scrapes the real agent (negotiating
//! OpenMetrics, so Prometheus' own parser reads our exposition), evaluates `alerts/stinger.rules.yml`,
//! and a real Alertmanager delivers StingerUnexpectedOpenPort to a webhook in this test.

use crate::util::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &str, args: &[String]) -> Proc {
    let child = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{cmd} is needed (Debian packages prometheus, prometheus-alertmanager): {e}")
        });
    Proc(child)
}

/// Collects the requests it receives (Alertmanager's webhook posts); returns its address too.
fn webhook(addr: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind(addr).unwrap();
    let bound = l.local_addr().unwrap().to_string();
    let got = Arc::new(Mutex::new(Vec::new()));
    let g = got.clone();
    std::thread::spawn(move || {
        for conn in l.incoming().take(100) {
            let Ok(mut c) = conn else { continue };
            c.set_read_timeout(Some(Duration::from_secs(5))).ok();
            let mut buf = vec![0u8; 65536];
            let mut n = 0;
            // Read until the body announced by Content-Length is complete (bounded by the buffer).
            while n < buf.len() {
                match c.read(&mut buf[n..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => n += k,
                }
                let text = String::from_utf8_lossy(&buf[..n]);
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
                        break;
                    }
                }
            }
            g.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
            let _ =
                c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (bound, got)
}

#[test]
fn prometheus_and_alertmanager_deliver_an_unexpected_open_port_alert() {
    let _open = Listener::new("127.0.74.3:20666");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "[[targets]]\nname = \"live\"\ncidrs = [\"127.0.74.3\"]\nports = \"20660-20670\"\n\
         [schedule]\ndiscovery = \"1h\"\njitter = \"0s\"\n",
    );
    let agent = Agent::start(&config);
    agent.wait_successes(1);

    let (hook_addr, received) = webhook("127.0.74.2:0");

    let am_addr = "127.0.74.1:19093";
    let prom_addr = "127.0.74.1:19090";
    let am_yml = dir.path().join("am.yml");
    std::fs::write(
        &am_yml,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname, host]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: http://{hook_addr}/\n        send_resolved: false\n"
        ),
    )
    .unwrap();
    let prom_yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_yml,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\n\
             scrape_configs:\n  - job_name: stinger\n    static_configs:\n      - targets: ['{}']\n",
            repo().join("alerts/stinger.rules.yml").display(),
            agent.addr
        ),
    )
    .unwrap();
    let d = |name: &str| dir.path().join(name).display().to_string();
    let _am = spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_yml.display()),
            format!("--storage.path={}", d("am")),
            format!("--web.listen-address={am_addr}"),
            "--cluster.listen-address=".into(),
        ],
    );
    let _prom = spawn(
        "prometheus",
        &[
            format!("--config.file={}", prom_yml.display()),
            format!("--storage.tsdb.path={}", d("prom")),
            format!("--web.listen-address={prom_addr}"),
        ],
    );

    // Prometheus scrapes the agent successfully (up == 1) …
    wait_for(
        "Prometheus to scrape stinger",
        Duration::from_secs(60),
        || {
            let (status, _, body) = std::panic::catch_unwind(|| {
                http_get(
                    prom_addr,
                    "/api/v1/query?query=up%7Bjob%3D%22stinger%22%7D",
                    None,
                )
            })
            .ok()?;
            (status == 200 && body.contains("\"value\":[") && body.contains("\"1\"]")).then_some(())
        },
    );
    // … and reads our series (through OpenMetrics, which it asks for first).
    let (_, _, body) = http_get(
        prom_addr,
        "/api/v1/query?query=stinger_host_unexpected_ports%7Bhost%3D%22127.0.74.3%22%7D",
        None,
    );
    assert!(body.contains("\"1\"]"), "{body}");
    // The alert has `for: 1m`: it reaches the webhook a little after a minute.
    let delivered = wait_for(
        "Alertmanager to deliver the alert",
        Duration::from_secs(150),
        || {
            received
                .lock()
                .unwrap()
                .iter()
                .find(|b| b.contains("StingerUnexpectedOpenPort"))
                .cloned()
        },
    );
    assert!(delivered.contains("127.0.74.3"), "{delivered}");
    assert!(delivered.contains("\"status\":\"firing\""), "{delivered}");
}
