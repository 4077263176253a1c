//! The agent's loop in-process, as `main` runs it but with the shutdown token and reload channel in
//! the test's hands, on tokio's paused clock: two discovery passes an hour apart, a reload that
//! lands while a pass runs (and is judged into it) and turns the digest e-mail on (the digest goes
//! out at once, the pass still under way), and a shutdown that stops a pass under way. Loopback
//! listeners stand for the scanned hosts, a small SMTP sink for the relay; the store is a real
//! RocksDB directory. A second test, also on paused time, has a Greenbone run (a fake gvmd) finish
//! and be applied while a discovery pass runs.

use super::*;
use crate::config;
use crate::model::Outcome;
use std::net::TcpListener as StdListener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /metrics` from the agent (plain HTTP/1.1; paused time does not matter to sockets).
async fn metrics(addr: std::net::SocketAddr) -> String {
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).await.unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

/// The value of the series written exactly so, if present.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Poll `/metrics` every `step` of paused time, for at most `limit` of it, until `f` accepts it.
async fn until(
    addr: std::net::SocketAddr,
    what: &str,
    step: Duration,
    limit: Duration,
    f: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let last = metrics(addr).await;
        if f(&last) {
            return last;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not reached in {limit:?}; last /metrics:\n{last}"
        );
        tokio::time::sleep(step).await;
    }
}

/// A minimal SMTP relay on loopback: accepts every message and hands each one's DATA over `tx`.
async fn smtp_sink(listener: TcpListener, tx: mpsc::UnboundedSender<String>) {
    use tokio::io::AsyncBufReadExt;
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            return;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (r, mut w) = conn.into_split();
            let mut lines = tokio::io::BufReader::new(r).lines();
            w.write_all(b"220 sink ESMTP\r\n").await.ok()?;
            let mut data: Option<String> = None;
            while let Some(line) = lines.next_line().await.ok()? {
                if let Some(body) = data.as_mut() {
                    if line == "." {
                        tx.send(data.take()?).ok()?;
                        w.write_all(b"250 queued\r\n").await.ok()?;
                    } else {
                        body.push_str(&line);
                        body.push('\n');
                    }
                    continue;
                }
                let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                let reply: &[u8] = match verb.as_str() {
                    "EHLO" | "HELO" => b"250-sink\r\n250 8BITMIME\r\n",
                    "DATA" => {
                        data = Some(String::new());
                        b"354 go on\r\n"
                    }
                    "QUIT" => {
                        w.write_all(b"221 bye\r\n").await.ok()?;
                        return Some(());
                    }
                    _ => b"250 ok\r\n",
                };
                w.write_all(reply).await.ok()?;
            }
            Some(())
        });
    }
}

fn email_text(relay: std::net::SocketAddr) -> String {
    format!(
        "[email]\nenabled = true\nsmtp_server = \"{relay}\"\ntls = \"none\"\n\
         to = [\"ops@example.org\"]\ninterval = \"24h\"\nsend_empty = true\n"
    )
}

/// The agent's loop on the configuration at `path`, serving on 127.0.77.1: its address, shutdown
/// token, reload sender and task.
async fn start(
    path: &std::path::Path,
) -> (
    std::net::SocketAddr,
    CancellationToken,
    mpsc::Sender<()>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let config = config::load(Some(path), &Overrides::default()).unwrap();
    let listener = TcpListener::bind("127.0.77.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let (reload_tx, reload_rx) = mpsc::channel(1);
    let agent = tokio::spawn(run(
        config,
        Some(path.to_path_buf()),
        Overrides::default(),
        listener,
        shutdown.clone(),
        reload_rx,
    ));
    (addr, shutdown, reload_tx, agent)
}

const FINE: Duration = Duration::from_millis(50);
const COARSE: Duration = Duration::from_secs(30);
const HOUR: Duration = Duration::from_secs(3600);

fn config_text(storage: &std::path::Path, discovery: &str, expected: &str, rate: u32) -> String {
    format!(
        "[[targets]]\nname = \"loop\"\ncidrs = [\"127.0.77.2\"]\nports = \"20700-20999\"\n\
         [schedule]\ndiscovery = \"{discovery}\"\njitter = \"0s\"\n\
         [scan.tcp]\nmax_rate = {rate}\n\
         [scan.nmap]\nenabled = false\n\
         [policy]\nexpected = [{expected}]\n\
         [storage]\npath = \"{}\"\n",
        storage.display()
    )
}

const RUNS_OK: &str = r#"stinger_scan_runs_total{stage="discovery",outcome="success"}"#;
const IN_PROGRESS: &str = r#"stinger_scan_in_progress{stage="discovery"}"#;
const INTERVAL: &str = r#"stinger_scan_interval_seconds{stage="discovery"}"#;
const SENT: &str = "stinger_emails_sent_total";
const UNEXPECTED: &str = r#"stinger_host_unexpected_ports{host="127.0.77.2",group="loop"}"#;

#[tokio::test(start_paused = true)]
async fn the_loop_runs_passes_takes_a_reload_mid_pass_and_stops_on_paused_time() {
    // The scanned host: two listeners in the 300-port range.
    let _a = StdListener::bind("127.0.77.2:20700").unwrap();
    let _b = StdListener::bind("127.0.77.2:20950").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stinger.toml");
    let storage = dir.path().join("data");
    // Unpaced: the first two passes take no time at all.
    std::fs::write(&path, config_text(&storage, "1h", "\"20700/tcp\"", 0)).unwrap();
    let (addr, shutdown, reload_tx, agent) = start(&path).await;

    // Two passes, an hour of (paused) time apart; 20950 is open and unexpected in both.
    let m = until(addr, "two discovery passes", COARSE, 2 * HOUR, |m| {
        value(m, RUNS_OK) == Some(2.0)
    })
    .await;
    assert_eq!(value(&m, UNEXPECTED), Some(1.0), "{m}");
    assert_eq!(value(&m, INTERVAL), Some(3600.0));

    // A slow pass (one probe a second over 300 ports: five minutes of paused time) ...
    std::fs::write(&path, config_text(&storage, "1h", "\"20700/tcp\"", 1)).unwrap();
    reload_tx.send(()).await.unwrap();
    let m = until(addr, "the third pass to start", COARSE, 2 * HOUR, |m| {
        value(m, IN_PROGRESS) == Some(1.0)
    })
    .await;
    assert_eq!(value(&m, RUNS_OK), Some(2.0));
    // ... and while it runs, a reload that allows 20950, doubles the interval and turns the
    // digest on: applied at once, the pass still under way.
    let relay = TcpListener::bind("127.0.77.3:0").await.unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let (mail_tx, mut mail_rx) = mpsc::unbounded_channel();
    tokio::spawn(smtp_sink(relay, mail_tx));
    let reloaded = config_text(&storage, "2h", "\"20700/tcp\", \"20950/tcp\"", 1);
    std::fs::write(&path, reloaded + &email_text(relay_addr)).unwrap();
    let asked_reload = std::time::Instant::now();
    reload_tx.send(()).await.unwrap();
    let m = until(
        addr,
        "the reload during the pass",
        FINE,
        Duration::from_secs(5),
        |m| value(m, INTERVAL) == Some(7200.0),
    )
    .await;
    assert_eq!(
        value(&m, IN_PROGRESS),
        Some(1.0),
        "the pass still runs: {m}"
    );
    assert_eq!(value(&m, UNEXPECTED), Some(0.0), "re-judged at once: {m}");
    // The first digest is due at once (a pass has succeeded) and goes out now, not after the
    // pass. (Paused time jumps ahead while the SMTP exchange waits on sockets, so the bound is
    // the pass's remaining minutes of paused time, and seconds of real time.)
    let m = until(
        addr,
        "the digest during the pass",
        FINE,
        Duration::from_secs(120),
        |m| value(m, SENT) == Some(1.0),
    )
    .await;
    assert_eq!(value(&m, IN_PROGRESS), Some(1.0), "sent mid-pass: {m}");
    assert!(
        asked_reload.elapsed() < Duration::from_secs(10),
        "the digest took {:?}",
        asked_reload.elapsed()
    );
    let mail = tokio::time::timeout(Duration::from_secs(5), mail_rx.recv())
        .await
        .expect("the relay got the digest")
        .unwrap();
    assert!(mail.contains("ops@example.org"), "{mail}");
    assert!(mail.contains("Subject: [stinger]"), "{mail}");
    // The pass started under the old policy; stored, it is judged under the new one.
    until(addr, "the third pass, re-judged", COARSE, HOUR, |m| {
        value(m, RUNS_OK) == Some(3.0) && value(m, UNEXPECTED) == Some(0.0)
    })
    .await;

    // A fourth pass starts two hours later; shutdown stops it and the agent returns.
    let m = until(addr, "the fourth pass to start", COARSE, 3 * HOUR, |m| {
        value(m, IN_PROGRESS) == Some(1.0)
    })
    .await;
    assert_eq!(value(&m, RUNS_OK), Some(3.0));
    let asked = std::time::Instant::now();
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(60), agent)
        .await
        .expect("the agent stops")
        .unwrap();
    stopped.unwrap();
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "shutdown took {:?}",
        asked.elapsed()
    );
    // The stopped pass is recorded as cancelled, the three before it as successes.
    let store = Store::open(&storage).unwrap();
    let runs = store.scans(None, 10).unwrap();
    let outcomes: Vec<_> = runs.iter().map(|r| r.outcome).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Cancelled,
            Outcome::Success,
            Outcome::Success,
            Outcome::Success
        ],
        "{runs:?}"
    );
}

/// A Greenbone run that finishes while a discovery pass is under way is applied then, not after
/// the pass: the loop never waits for discovery. On paused time, as the loop test above (the
/// report is parsed on a blocking thread, and tokio does not advance paused time while one runs):
/// passes of 300 probes at 50 a second (6 s) a second apart; Greenbone is asked after the first
/// pass, and the fake gvmd holds the task's start 3 s, so the report lands in the second.
#[tokio::test(start_paused = true)]
async fn a_finished_greenbone_run_is_applied_while_discovery_runs() {
    use stinger_testsupport::fake_gvmd::{FakeGvmd, Faults, PASSWORD, USER};
    const VULN_RUNS_OK: &str =
        r#"stinger_scan_runs_total{stage="vulnerabilities",outcome="success"}"#;
    let _open = StdListener::bind("127.0.77.5:20950").unwrap();
    let fake = FakeGvmd::start(Faults {
        report_host: Some("127.0.77.5".into()),
        // Held before the task starts, not at the report: while the report streams into its
        // blocking parser, paused time stands still, and a held report would never come.
        slow: Some(("start_task".into(), Duration::from_secs(3))),
        ..Faults::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("gmp-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let path = dir.path().join("stinger.toml");
    std::fs::write(
        &path,
        format!(
            "[[targets]]\nname = \"loop\"\ncidrs = [\"127.0.77.5\"]\nports = \"20700-20999\"\n\
             [schedule]\ndiscovery = \"1s\"\njitter = \"0s\"\n\
             [scan.tcp]\nmax_rate = 50\n\
             [scan.nmap]\nenabled = false\n\
             [scan.udp]\nenabled = false\n\
             [scan.gmp]\nenabled = true\nsocket = \"{}\"\nusername = \"{USER}\"\n\
             password_file = \"{}\"\ninterval = \"24h\"\npoll_interval = \"100ms\"\n\
             [storage]\npath = \"{}\"\n",
            fake.socket.display(),
            pw.display(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let (addr, shutdown, _reload_tx, agent) = start(&path).await;
    let m = until(
        addr,
        "Greenbone's run applied",
        FINE,
        Duration::from_secs(60),
        |m| value(m, VULN_RUNS_OK) == Some(1.0),
    )
    .await;
    assert_eq!(value(&m, RUNS_OK), Some(1.0), "one pass done: {m}");
    assert_eq!(
        value(&m, IN_PROGRESS),
        Some(1.0),
        "applied while the second pass runs: {m}"
    );
    assert!(
        value(
            &m,
            r#"stinger_host_max_cvss{host="127.0.77.5",group="loop"}"#
        )
        .is_some(),
        "the report's findings are in the state: {m}"
    );
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(60), agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
}
