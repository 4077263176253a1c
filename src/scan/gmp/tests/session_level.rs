//! The GMP `Session` on its own: authentication first, a streamed report keeping the
//! connection usable, bytes buffered across responses, and the response size cap.

use super::*;

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
