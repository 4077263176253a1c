//! Whole scan cycles against the fake gvmd: over the unix socket (with task reuse), over TLS
//! (CA file, insecure, failed verification), import mode, and a report cut by gvmd's max rows.

use stinger_testsupport::fake_gvmd;

use super::*;

/// The fake accepts only its own copy of the scan config id; it must be the one stinger sends.
#[test]
fn the_fake_gvmd_accepts_the_scan_config_stinger_asks_for() {
    assert_eq!(fake_gvmd::FULL_AND_FAST, FULL_AND_FAST);
    assert_eq!(Settings::default().scan_config, FULL_AND_FAST);
}

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
