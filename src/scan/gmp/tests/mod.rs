//! Tests of the GMP session and workflow against a fake gvmd (`stinger_testsupport::fake_gvmd`)
//! over a unix socket and over TLS, plus unit tests of the pure helpers. Every wait is bounded.

use std::collections::BTreeSet;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use stinger_testsupport::fake_gvmd::{self, FakeGvmd, Faults, FIXTURE_RESULTS, PASSWORD, USER};
use tokio_util::sync::CancellationToken;

use super::client::backoff;
use super::plan::{fnv1a64, is_own_name, plan, port_range};
use super::retention::retention_victims;
use super::workflow::Outcome;
use super::*;

const TEST_BOUND: Duration = Duration::from_secs(30);

async fn bounded<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(TEST_BOUND, f)
        .await
        .expect("test exceeded its time bound")
}

fn unix(f: &FakeGvmd) -> Endpoint {
    Endpoint::Unix(f.socket.clone())
}

fn tls(f: &FakeGvmd, ca_file: Option<PathBuf>, insecure: bool, server_name: &str) -> Endpoint {
    Endpoint::Tls {
        addr: f.tls_addr.to_string(),
        ca_file,
        insecure,
        server_name: server_name.to_owned(),
    }
}

fn settings(endpoint: Endpoint) -> Settings {
    Settings {
        endpoint,
        username: USER.to_owned(),
        password: Password::new(PASSWORD),
        timeouts: Timeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(5),
            report: Duration::from_secs(10),
        },
        poll_interval: Duration::from_millis(10),
        scan_timeout: Duration::from_secs(10),
        retries: 2,
        retry_backoff: Duration::from_millis(10),
        ..Settings::default()
    }
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn hosts() -> Vec<(IpAddr, Vec<u16>)> {
    vec![
        (ip(2), vec![80, 8081, 8080]),
        (ip(1), vec![22, 80, 443]),
        // No open port: left out of the target.
        (ip(3), vec![]),
    ]
}

async fn run(s: &Settings) -> (Result<Outcome, Error>, Arc<Progress>) {
    let progress = Arc::new(Progress::default());
    let r = bounded(scan(
        s,
        &hosts(),
        progress.clone(),
        CancellationToken::new(),
    ))
    .await;
    (r, progress)
}

fn assert_full_report(o: &Outcome) {
    assert_eq!(o.results.len(), FIXTURE_RESULTS);
    assert!(o.summary.complete);
    assert_eq!(o.summary.scan_run_status.as_deref(), Some("Done"));
    assert_eq!(o.gmp_version, "22.7");
    assert_eq!(o.skipped_results, 0);
    assert!(!o.truncated_by_gvmd);
    assert!(o.results.iter().all(|r| r.host == "127.0.0.1"));
}

/// The fake accepts only its own copy of the scan config id; it must be the one stinger sends.
#[test]
fn the_fake_gvmd_accepts_the_scan_config_stinger_asks_for() {
    assert_eq!(fake_gvmd::FULL_AND_FAST, FULL_AND_FAST);
    assert_eq!(Settings::default().scan_config, FULL_AND_FAST);
}

// ---- full cycles -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cycle_over_unix_socket_then_reuse() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let s = settings(unix(&fake));
    let (r, progress) = run(&s).await;
    let o = r.expect("scan");
    assert_full_report(&o);
    assert!(!o.imported && !o.reused_task);
    assert!(is_own_name(&o.task_name), "{}", o.task_name);
    // Requested, Running 30, Running 70, Done.
    assert_eq!(progress.polls.load(Ordering::Relaxed), 4);
    assert_eq!(progress.percent(), -1);
    assert_eq!(
        progress.results.load(Ordering::Relaxed),
        FIXTURE_RESULTS as u64
    );
    assert!(progress.report_bytes.load(Ordering::Relaxed) > 200_000);
    {
        let st = fake.state();
        assert_eq!(st.targets.len(), 1);
        let t = &st.targets[0];
        assert_eq!(t.name, o.task_name);
        assert_eq!(t.hosts, "127.0.0.1,127.0.0.2");
        assert_eq!(t.port_range, "T:22,80,443,8080-8081");
        assert_eq!(t.alive_tests, "Consider Alive");
        assert_eq!(st.tasks.len(), 1);
        assert_eq!(st.tasks[0].id, o.task_id);
        assert_eq!(
            st.tasks[0].last_report.as_deref(),
            Some(o.report_id.as_str())
        );
        // One connection for the whole workflow.
        assert_eq!(st.connections, 1);
        // Only authenticate carries the password.
        for raw in &st.raw {
            assert_eq!(
                raw.contains(PASSWORD),
                raw.starts_with("<authenticate>"),
                "{raw}"
            );
        }
    }

    // Same hosts again (ports listed in another order): the task is reused.
    let (r, _) = run(&s).await;
    let again = r.expect("second scan");
    assert_full_report(&again);
    assert!(again.reused_task);
    assert_eq!(again.task_id, o.task_id);
    assert_ne!(again.report_id, o.report_id);
    let st = fake.state();
    assert_eq!(st.count("create_target"), 1);
    assert_eq!(st.count("create_task"), 1);
    assert_eq!(st.count("start_task"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cycle_over_tls_with_ca_file() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let ca = fake.ca_file.clone();
    for name in ["localhost", "127.0.0.1"] {
        let s = settings(tls(&fake, Some(ca.clone()), false, name));
        let (r, _) = run(&s).await;
        assert_full_report(&r.unwrap_or_else(|e| panic!("server name {name}: {e}")));
    }
    // Empty server_name: the host of addr (127.0.0.1) is checked.
    let s = settings(tls(&fake, Some(ca), false, ""));
    let (r, _) = run(&s).await;
    assert_full_report(&r.expect("derived server name"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cycle_over_tls_insecure() {
    let fake = FakeGvmd::start(Faults::default()).await;
    // Any certificate and any name are accepted.
    let s = settings(tls(&fake, None, true, "not-the-cert-name.example"));
    let (r, _) = run(&s).await;
    assert_full_report(&r.expect("insecure TLS scan"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verification_failures_are_tls_errors() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let cases = [
        (
            "unrelated CA",
            tls(&fake, Some(fake.other_ca_file.clone()), false, "localhost"),
        ),
        (
            "wrong name",
            tls(&fake, Some(fake.ca_file.clone()), false, "gvmd.example"),
        ),
        ("no CA at all", tls(&fake, None, false, "localhost")),
        (
            "missing CA file",
            tls(
                &fake,
                Some(fake.dir.path().join("nope.pem")),
                false,
                "localhost",
            ),
        ),
    ];
    for (what, endpoint) in cases {
        let s = settings(endpoint);
        let (r, progress) = run(&s).await;
        let e = r.expect_err(what);
        assert_eq!(e.kind(), "tls", "{what}: {e}");
        assert!(e.to_string().contains("scan.gmp."), "{what}: {e}");
        assert_eq!(
            progress.retries.load(Ordering::Relaxed),
            0,
            "{what}: not retried"
        );
    }
    // "no CA at all" and "missing CA file" fail before connecting.
    assert_eq!(fake.state().connections, 2);
}

/// Current-thread runtime on purpose: the report parser's blocking thread must still be served.
#[tokio::test]
async fn import_mode_reads_the_last_finished_report() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let report = "11111111-2222-4333-8444-555555555555";
    let task_id = fake
        .state()
        .seed_task("nightly full scan", "Done", Some(report));
    let mut s = settings(unix(&fake));
    s.import_task = Some(task_id.clone());
    let (r, _) = run(&s).await;
    let o = r.expect("import");
    assert_full_report(&o);
    assert!(o.imported);
    assert_eq!(
        (o.task_id.as_str(), o.report_id.as_str()),
        (task_id.as_str(), report)
    );
    assert_eq!(o.task_name, "nightly full scan");
    let st = fake.state();
    for c in ["create_target", "create_task", "start_task", "delete_task"] {
        assert_eq!(st.count(c), 0, "{c}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_without_a_finished_report_is_a_report_error() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let task_id = fake.state().seed_task("never ran", "New", None);
    let mut s = settings(unix(&fake));
    s.import_task = Some(task_id);
    let (r, _) = run(&s).await;
    let e = r.expect_err("nothing to import");
    assert!(matches!(e, Error::NoReport { .. }), "{e}");
    assert_eq!(e.kind(), "report");

    s.import_task = Some("00000000-0000-0000-0000-000000000000".into());
    let (r, _) = run(&s).await;
    let e = r.expect_err("unknown task");
    assert!(matches!(e, Error::Status { code: 404, .. }), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_cut_by_max_rows_is_flagged() {
    let fake = FakeGvmd::start(Faults {
        rows_cut: true,
        ..Faults::default()
    })
    .await;
    let (r, _) = run(&settings(unix(&fake))).await;
    let o = r.expect("scan");
    assert_eq!(o.results.len(), FIXTURE_RESULTS);
    assert!(o.truncated_by_gvmd);
}

// ---- failures ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_auth_failed_and_not_retried() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let mut s = settings(unix(&fake));
    s.password = Password::new("not-the-password");
    let (r, progress) = run(&s).await;
    let e = r.expect_err("wrong password");
    assert_eq!(e.kind(), "auth_failed", "{e}");
    let msg = format!("{e} {e:?} {s:?}");
    assert!(!msg.contains("not-the-password"), "password leaked: {msg}");
    assert!(
        msg.contains(&fake.socket.display().to_string()),
        "names the endpoint: {msg}"
    );
    assert_eq!(progress.retries.load(Ordering::Relaxed), 0);
    assert_eq!(fake.state().connections, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_503_is_retried_then_succeeds() {
    let fake = FakeGvmd::start(Faults {
        start_503: 2,
        ..Faults::default()
    })
    .await;
    let s = settings(unix(&fake));
    let (r, progress) = run(&s).await;
    assert_full_report(&r.expect("scan after retries"));
    assert_eq!(progress.retries.load(Ordering::Relaxed), 2);
    let st = fake.state();
    assert_eq!(st.count("start_task"), 3);
    // The task is found again by name, not created twice; each retry is a new connection.
    assert_eq!(st.count("create_task"), 1);
    assert_eq!(st.connections, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_503_beyond_retries_is_a_status_error() {
    let fake = FakeGvmd::start(Faults {
        start_503: 100,
        ..Faults::default()
    })
    .await;
    let mut s = settings(unix(&fake));
    s.retries = 1;
    let (r, _) = run(&s).await;
    let e = r.expect_err("503 every time");
    assert!(
        matches!(&e, Error::Status { code: 503, command, .. } if command == "start_task"),
        "{e}"
    );
    assert_eq!(e.kind(), "status");
    assert_eq!(fake.state().count("start_task"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_report_is_an_error_not_an_empty_result() {
    let fake = FakeGvmd::start(Faults {
        truncate_report: true,
        ..Faults::default()
    })
    .await;
    let s = settings(unix(&fake));
    let (r, _) = run(&s).await;
    let e = r.expect_err("truncated report");
    assert_eq!(e.kind(), "report", "{e}");
    // Over TLS the peer's close without close_notify surfaces the same way.
    let s = settings(tls(&fake, None, true, "localhost"));
    let (r, _) = run(&s).await;
    assert_eq!(r.expect_err("truncated over TLS").kind(), "report");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_task_is_task_ended() {
    let fake = FakeGvmd::start(Faults {
        stop_task: true,
        ..Faults::default()
    })
    .await;
    let s = settings(unix(&fake));
    let (r, _) = run(&s).await;
    let e = r.expect_err("stopped");
    assert!(
        matches!(&e, Error::TaskEnded { status, .. } if status == "Stopped"),
        "{e}"
    );
    assert_eq!(e.kind(), "task_ended");
    assert_eq!(fake.state().count("get_reports"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_response_exceeds_the_read_timeout() {
    let fake = FakeGvmd::start(Faults {
        slow: Some(("get_tasks".into(), Duration::from_secs(5))),
        ..Faults::default()
    })
    .await;
    let mut s = settings(unix(&fake));
    s.timeouts.read = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let (r, _) = run(&s).await;
    let e = r.expect_err("slow");
    assert_eq!(e.kind(), "timeout", "{e}");
    assert!(e.to_string().contains("read_timeout"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_report_exceeds_the_read_timeout_while_streaming() {
    let fake = FakeGvmd::start(Faults {
        slow: Some(("get_reports".into(), Duration::from_secs(5))),
        ..Faults::default()
    })
    .await;
    let mut s = settings(unix(&fake));
    s.timeouts.read = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let (r, _) = run(&s).await;
    let e = r.expect_err("slow report");
    assert!(
        matches!(
            &e,
            Error::Timeout {
                setting: "read_timeout",
                ..
            }
        ),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_during_polling_returns_promptly_and_stops_the_task() {
    let fake = FakeGvmd::start(Faults {
        never_done: true,
        ..Faults::default()
    })
    .await;
    let mut s = settings(unix(&fake));
    s.poll_interval = Duration::from_secs(60);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = std::time::Instant::now();
    let r = bounded(scan(&s, &hosts(), Arc::new(Progress::default()), cancel)).await;
    let e = r.expect_err("cancelled");
    assert!(matches!(e, Error::Cancelled), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let st = fake.state();
    assert_eq!(st.count("stop_task"), 1);
    assert_eq!(st.tasks[0].status, "Stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_can_leave_the_task_running_and_a_later_scan_follows_it() {
    let fake = FakeGvmd::start(Faults {
        never_done: true,
        ..Faults::default()
    })
    .await;
    let mut s = settings(unix(&fake));
    s.stop_on_abort = false;
    s.scan_timeout = Duration::from_millis(200);
    let (r, _) = run(&s).await;
    let e = r.expect_err("never done");
    assert!(
        matches!(
            &e,
            Error::Timeout {
                setting: "scan_timeout",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(fake.state().count("stop_task"), 0);
    let report = fake.state().tasks[0].current_report.clone();
    assert!(report.is_some());

    // Next cycle, same hosts: start_task says "active already"; the running report is followed.
    {
        let mut st = fake.state();
        st.faults.never_done = false;
        // Still running when asked next (then 70 %, then Done).
        st.tasks[0].polls = 1;
    }
    s.scan_timeout = Duration::from_secs(10);
    let (r, _) = run(&s).await;
    let o = r.expect("followed");
    assert_eq!(Some(o.report_id), report);
    assert_eq!(fake.state().count("create_task"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_gvmd_is_a_connect_error_after_retries() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(Endpoint::Unix(dir.path().join("missing.sock")));
    s.retries = 3;
    let (r, progress) = run(&s).await;
    let e = r.expect_err("no gvmd");
    assert_eq!(e.kind(), "connect", "{e}");
    assert!(e.to_string().contains("missing.sock"), "{e}");
    assert_eq!(progress.retries.load(Ordering::Relaxed), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_scan_config_is_a_status_error_and_the_target_is_removed() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let mut s = settings(unix(&fake));
    s.scan_config = "00000000-1111-2222-3333-444444444444".into();
    let (r, _) = run(&s).await;
    let e = r.expect_err("no such config");
    assert!(matches!(&e, Error::Status { code: 404, .. }), "{e}");
    assert!(e.to_string().contains("feed"), "hint: {e}");
    let st = fake.state();
    assert_eq!(st.count("delete_target"), 1);
    assert!(st.targets.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_to_scan_does_not_contact_gvmd() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let s = settings(unix(&fake));
    let r = bounded(scan(
        &s,
        &[(ip(1), vec![])],
        Arc::new(Progress::default()),
        CancellationToken::new(),
    ))
    .await;
    assert_eq!(r.expect_err("empty").kind(), "empty");
    assert_eq!(fake.state().connections, 0);
}

// ---- retention ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_surplus_own_tasks_only() {
    let fake = FakeGvmd::start(Faults::default()).await;
    {
        let mut st = fake.state();
        st.seed_task("stinger-00000000000000a1", "Done", Some("r-a1"));
        st.seed_task("stinger-00000000000000a2", "Done", Some("r-a2"));
        st.seed_task("stinger-00000000000000a3", "Done", Some("r-a3"));
        st.seed_task("stinger-00000000000000b1", "New", None);
        st.seed_task("stinger-00000000000000c1", "Running", Some("r-c1"));
        st.seed_task("stinger-manual", "Done", Some("r-m"));
        st.seed_task("nightly", "Done", Some("r-n"));
    }
    let mut s = settings(unix(&fake));
    s.keep = 3;
    let (r, _) = run(&s).await;
    let o = r.expect("scan");
    // 6 own tasks (5 seeded + the new one), keep 3: the never-finished one, then by name.
    assert_eq!(
        o.deleted_tasks,
        vec![
            "stinger-00000000000000b1",
            "stinger-00000000000000a1",
            "stinger-00000000000000a2"
        ]
    );
    let st = fake.state();
    // The deleted tasks' targets went with them; the others' stayed.
    let mut targets: Vec<&str> = st.targets.iter().map(|t| t.name.as_str()).collect();
    targets.sort_unstable();
    for gone in &o.deleted_tasks {
        assert!(
            !targets.contains(&gone.as_str()),
            "{gone}'s target left: {targets:?}"
        );
    }
    assert!(targets.contains(&"stinger-00000000000000a3") && targets.contains(&"nightly"));
    let mut left: Vec<&str> = st.tasks.iter().map(|t| t.name.as_str()).collect();
    left.sort_unstable();
    let mut want = vec![
        "nightly",
        "stinger-00000000000000a3",
        "stinger-00000000000000c1",
        "stinger-manual",
        o.task_name.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(left, want);
}

#[test]
fn retention_victims_spare_in_use_and_active_tasks() {
    let t = |id: &str, name: &str, status: TaskStatus, last: bool| TaskInfo {
        id: id.into(),
        name: name.into(),
        status,
        progress: -1,
        last_report_id: last.then(|| "r".to_owned()),
        current_report_id: None,
        target_id: None,
    };
    let tasks = vec![
        t("1", "stinger-0000000000000001", TaskStatus::Done, true),
        t("2", "stinger-0000000000000002", TaskStatus::Running, true),
        t("3", "stinger-0000000000000003", TaskStatus::Done, true),
        t("4", "stinger-XYZ", TaskStatus::Done, true),
    ];
    let ids = |v: Vec<&TaskInfo>| v.into_iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(retention_victims(&tasks, "1", 1)), vec!["3"]);
    assert_eq!(ids(retention_victims(&tasks, "3", 2)), vec!["1"]);
    assert!(retention_victims(&tasks, "1", 3).is_empty());
    assert!(
        retention_victims(&tasks, "1", 0).is_empty(),
        "keep = 0 disables retention"
    );
}

// ---- session level -----------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_before_authenticate_are_refused_and_the_connection_dropped() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let mut session = bounded(Session::connect(&unix(&fake), Timeouts::default()))
        .await
        .unwrap();
    assert_eq!(bounded(session.get_version()).await.unwrap(), "22.7");
    let e = bounded(session.get_task("x"))
        .await
        .expect_err("not logged in");
    assert!(matches!(&e, Error::Status { code: 400, .. }), "{e}");
    assert!(e.to_string().contains("authenticate first"), "{e}");
    let e = bounded(session.get_version()).await.expect_err("dropped");
    assert_eq!(e.kind(), "connect", "{e}");
    assert!(!session.is_open());
    let e = bounded(session.get_version())
        .await
        .expect_err("stays closed");
    assert_eq!(e.kind(), "connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_helpers_and_report_fetch_keep_the_connection_usable() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let report = "22222222-2222-4333-8444-555555555555";
    let task_id = fake.state().seed_task("imported", "Done", Some(report));
    let mut session = bounded(Session::connect(
        &tls(&fake, Some(fake.ca_file.clone()), false, "localhost"),
        Timeouts::default(),
    ))
    .await
    .unwrap();
    bounded(session.authenticate(USER, &Password::new(PASSWORD)))
        .await
        .unwrap();
    let feeds = bounded(session.get_feeds()).await.unwrap();
    assert_eq!(feeds[0].kind, "NVT");
    let (results, summary) = bounded(session.fetch_report(report, &CancellationToken::new()))
        .await
        .unwrap();
    assert_eq!(results.len(), FIXTURE_RESULTS);
    assert!(summary.complete);
    // The same connection goes on after the streamed report.
    assert!(session.is_open());
    let task = bounded(session.get_task(&task_id)).await.unwrap();
    assert_eq!(task.last_report_id.as_deref(), Some(report));
    // A 404 report is a status error, not an empty report.
    let e = bounded(session.fetch_report("missing", &CancellationToken::new()))
        .await
        .expect_err("404");
    assert!(
        matches!(&e, Error::Status { code: 404, command, .. } if command == "get_reports"),
        "{e}"
    );
    assert_eq!(fake.state().connections, 1);
}

/// Bytes after a response document stay buffered and start the next response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_after_a_response_are_kept_for_the_next_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.sock");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let _ = conn.read(&mut buf).await.unwrap();
        // Both answers in one write, the second split mid-tag from nothing else.
        conn.write_all(
            b"<get_version_response status=\"200\" status_text=\"OK\"><version>1.0</version></get_version_response>\n<get_version_response status=\"200\" status_text=\"OK\"><version>2.0</version></get_version_response>",
        )
        .await
        .unwrap();
        // Swallow the second command; answer nothing more.
        let _ = conn.read(&mut buf).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut session = bounded(Session::connect(&Endpoint::Unix(path), Timeouts::default()))
        .await
        .unwrap();
    assert_eq!(bounded(session.get_version()).await.unwrap(), "1.0");
    assert_eq!(bounded(session.get_version()).await.unwrap(), "2.0");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_response_is_a_protocol_error() {
    let fake = FakeGvmd::start(Faults::default()).await;
    let mut session = bounded(Session::connect(&unix(&fake), Timeouts::default()))
        .await
        .unwrap();
    session.set_limits(40, ReportLimits::default());
    let e = bounded(session.get_version()).await.expect_err("too big");
    assert_eq!(e.kind(), "protocol", "{e}");
    assert!(!session.is_open());
}

// ---- pure helpers ------------------------------------------------------------------------

#[test]
fn port_ranges_are_sorted_and_collapsed() {
    let set = |v: &[u16]| v.iter().copied().collect::<BTreeSet<u16>>();
    assert_eq!(
        port_range(&set(&[443, 22, 80, 81, 82, 0])),
        "T:22,80-82,443"
    );
    assert_eq!(port_range(&set(&[65534, 65535, 1])), "T:1,65534-65535");
    assert_eq!(port_range(&set(&[7])), "T:7");
}

#[test]
fn plan_names_are_stable_and_depend_on_everything_scanned() {
    let s = Settings::default();
    let a = plan(&s, &hosts()).unwrap();
    assert_eq!(a.hosts, vec!["127.0.0.1", "127.0.0.2"]);
    assert!(is_own_name(&a.name));
    // Order of hosts and ports does not matter.
    let mut shuffled = hosts();
    shuffled.reverse();
    shuffled[1].1.reverse();
    assert_eq!(plan(&s, &shuffled).unwrap(), a);
    // A different port, host or scan config is a different target.
    let mut more = hosts();
    more[0].1.push(9999);
    assert_ne!(plan(&s, &more).unwrap().name, a.name);
    let mut other = s.clone();
    other.scan_config = "x".into();
    assert_ne!(plan(&other, &hosts()).unwrap().name, a.name);
    assert!(plan(&s, &[(ip(1), vec![0])]).is_none());
    // The FNV-1a reference value pins the hash across builds.
    assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn own_names_are_exact() {
    assert!(is_own_name("stinger-0123456789abcdef"));
    for n in [
        "stinger-0123456789ABCDEF",
        "stinger-0123",
        "stinger-manual",
        "x-0123456789abcdef",
    ] {
        assert!(!is_own_name(n), "{n}");
    }
}

#[test]
fn backoff_doubles_and_is_capped() {
    let b = Duration::from_secs(2);
    assert_eq!(backoff(b, 1), Duration::from_secs(2));
    assert_eq!(backoff(b, 2), Duration::from_secs(4));
    assert_eq!(backoff(b, 3), Duration::from_secs(8));
    assert_eq!(backoff(b, 40), Duration::from_secs(300));
}

#[test]
fn password_is_never_printed() {
    let s = Settings {
        password: Password::new("hunter2"),
        ..Settings::default()
    };
    assert!(!format!("{s:?}").contains("hunter2"));
    assert_eq!(
        session::command_name(&crate::scan::gmp_xml::authenticate("u", "hunter2")),
        "authenticate"
    );
}

#[test]
fn endpoints_display_without_secrets_and_hosts_parse() {
    assert_eq!(Endpoint::default().to_string(), "unix:/run/gvmd/gvmd.sock");
    assert_eq!(transport::host_of("gvmd.example:9390"), "gvmd.example");
    assert_eq!(transport::host_of("[::1]:9390"), "::1");
    assert_eq!(transport::host_of("10.0.0.1:9390"), "10.0.0.1");
    assert_eq!(transport::host_of("gvmd"), "gvmd");
}

#[test]
fn error_kinds_and_retry_policy() {
    let status = |code| Error::Status {
        endpoint: "e".into(),
        command: "c".into(),
        code,
        text: String::new(),
    };
    assert!(status(503).is_retryable() && status(500).is_retryable());
    assert!(!status(400).is_retryable() && !status(404).is_retryable());
    assert!(!Error::AuthFailed {
        endpoint: "e".into()
    }
    .is_retryable());
    assert!(!Error::Cancelled.is_retryable());
}

#[test]
fn scan_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = Settings::default();
    let h = hosts();
    let f = scan(
        &s,
        &h,
        Arc::new(Progress::default()),
        CancellationToken::new(),
    );
    assert_send(&f);
}

// ---- behind the scanner seam -------------------------------------------------------------

fn job(addresses: &[IpAddr], open: Vec<Vec<u16>>) -> crate::scan::Job {
    crate::scan::Job {
        addresses: addresses.into(),
        ports: Arc::from([]),
        open: open.into(),
        namespace: None,
        fd_limit: 0,
        progress: Arc::default(),
        cancel: CancellationToken::new(),
    }
}

/// Greenbone's whole report on each address it covered, index-aligned with the job: a scan
/// covers every address asked about (one without results: an empty report), an import only the
/// hosts its report names (another address: no report at all, so nothing is remediated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_prober_greenbone_reports_on_what_it_covered_and_nothing_else() {
    use crate::model::VulnSource;
    use crate::scan::{Phase, Prober};
    let fake = FakeGvmd::start(Faults::default()).await;
    let mut s = settings(unix(&fake));
    let addresses = [ip(1), ip(2)];
    let open = || vec![vec![22, 80, 443], vec![80]];
    let prober = Greenbone::new(s.clone(), Arc::default());
    assert_eq!(
        (prober.name(), prober.phase()),
        ("greenbone", Phase::Assess)
    );
    let out = bounded(prober.probe(job(&addresses, open())))
        .await
        .expect("scan");
    assert_eq!(out.hosts.len(), 2);
    let first = out.hosts[0].reported.as_ref().expect("127.0.0.1 covered");
    assert!(!first.is_empty());
    assert!(first.iter().all(|(_, v)| v.source == VulnSource::Greenbone));
    assert_eq!(out.hosts[1].reported, Some(vec![]), "asked, nothing found");

    let task = fake.state().seed_task(
        "nightly",
        "Done",
        Some("11111111-2222-4333-8444-555555555555"),
    );
    s.import_task = Some(task);
    let out = bounded(Greenbone::new(s, Arc::default()).probe(job(&addresses, open())))
        .await
        .expect("import");
    assert!(out.hosts[0]
        .reported
        .as_ref()
        .is_some_and(|r| !r.is_empty()));
    assert_eq!(out.hosts[1].reported, None, "not in the imported report");
}

/// A failed run is the seam's error with gvmd's kind, so the agent keeps what it knew.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn as_a_prober_a_failed_run_is_an_error_with_its_kind() {
    use crate::scan::Prober;
    let fake = FakeGvmd::start(Faults::default()).await;
    let mut s = settings(unix(&fake));
    s.password = Password::new("wrong");
    let e = bounded(Greenbone::new(s, Arc::default()).probe(job(&[ip(1)], vec![vec![22]])))
        .await
        .expect_err("wrong password");
    assert_eq!(e.kind(), "auth_failed");
    assert!(matches!(e, crate::scan::Error::Gmp(_)), "{e}");
}
