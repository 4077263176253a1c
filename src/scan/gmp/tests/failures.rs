//! How a scan fails: wrong password, 503s and retries, truncated reports, stopped tasks,
//! read and scan timeouts, cancellation, an unreachable gvmd, a missing scan config.

use super::*;

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
