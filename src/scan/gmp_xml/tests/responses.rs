//! Small-response parsers (status, version, start_task, tasks, feeds) on real and documented
//! gvmd responses.

use super::*;

#[test]
fn parse_status_on_fixtures() {
    let cases: &[(&str, &str, u16, &str, Option<&str>)] = &[
        (
            "responses/gmp-doc-examples/authenticate_response-200.xml",
            "authenticate_response",
            200,
            "OK",
            None,
        ),
        (
            "responses/gmp-doc-examples/authenticate_response-400.xml",
            "authenticate_response",
            400,
            "Authentication failed",
            None,
        ),
        (
            "responses/authenticate_response-with-severity.xml",
            "authenticate_response",
            200,
            "OK",
            None,
        ),
        (
            "responses/gmp-doc-examples/create_target_response.xml",
            "create_target_response",
            201,
            "OK, resource created",
            Some("254cd3ef-bbe1-4d58-859d-21b8d0c046c6"),
        ),
        (
            "responses/gmp-doc-examples/create_task_response.xml",
            "create_task_response",
            201,
            "OK, resource created",
            Some("254cd3ef-bbe1-4d58-859d-21b8d0c046c6"),
        ),
        (
            "responses/create_task_response-201.xml",
            "create_task_response",
            201,
            "OK, resource created",
            Some("4a8db8ee-0c42-452d-bf64-64e735a71b87"),
        ),
        (
            "responses/start_task_response-202.xml",
            "start_task_response",
            202,
            "OK, request submitted",
            None,
        ),
        (
            "responses/gmp-doc-examples/start_task_response.xml",
            "start_task_response",
            200,
            "OK",
            None,
        ),
        (
            "responses/get_targets_response-gvm-tools-example_target.xml",
            "get_targets_response",
            200,
            "OK",
            None,
        ),
        (
            "responses/get_tasks_response-gvm-tools-example_task.xml",
            "get_tasks_response",
            200,
            "OK",
            None,
        ),
        (
            "responses/omp7-get_version_response.xml",
            "get_version_response",
            200,
            "OK",
            None,
        ),
        (
            "responses/gmp-doc-examples/get_reports_response-no-details-gmp22.8.xml",
            "get_reports_response",
            200,
            "OK",
            None,
        ),
    ];
    for (rel, command, code, text, id) in cases {
        let st = parse_status(fixture(rel)).unwrap();
        assert_eq!(
            (
                st.command.as_str(),
                st.code,
                st.text.as_str(),
                st.id.as_deref()
            ),
            (*command, *code, *text, *id),
            "{rel}"
        );
        assert_eq!(st.is_success(), *code < 300);
    }
    let err = parse_status(fixture(
        "responses/gmp-doc-examples/authenticate_response-400.xml",
    ))
    .unwrap()
    .check()
    .unwrap_err();
    assert!(
        matches!(&err, Error::Status { code: 400, text, .. } if text == "Authentication failed")
    );
    assert_eq!(err.kind(), "status");
    assert!(matches!(parse_status("<x/>"), Err(Error::Missing { .. })));
    assert!(matches!(parse_status("  "), Err(Error::Truncated { .. })));
}

#[test]
fn parse_version_and_start_task() {
    assert_eq!(
        parse_version(fixture(
            "responses/gmp-doc-examples/get_version_response.xml"
        ))
        .unwrap(),
        "1.0"
    );
    assert_eq!(
        parse_version(fixture("responses/omp7-get_version_response.xml")).unwrap(),
        "7.0"
    );
    assert_eq!(
        parse_version(r#"<get_version_response status="200" status_text="OK"><version>22.7</version></get_version_response>"#)
            .unwrap(),
        "22.7"
    );
    assert_eq!(
        parse_start_task(fixture("responses/start_task_response-202.xml")).unwrap(),
        "9cdadab8-d28e-4a29-a2b7-bd63380515e3"
    );
    assert_eq!(
        parse_start_task(fixture(
            "responses/gmp-doc-examples/start_task_response.xml"
        ))
        .unwrap(),
        "330ee785-c2c0-4d4c-ab96-725142c9b789"
    );
    // gvmd's answer to a command before authenticate: a status error, whatever the root name.
    let pre_auth = r#"<gmp_response status="400" status_text="Only command GET_VERSION is allowed before AUTHENTICATE"/>"#;
    match parse_start_task(pre_auth) {
        Err(Error::Status {
            command,
            code: 400,
            text,
        }) => {
            assert_eq!(command, "gmp_response");
            assert!(text.starts_with("Only command GET_VERSION"));
        }
        other => panic!("{other:?}"),
    }
    let wrong =
        parse_version(fixture("responses/gmp-doc-examples/get_tasks_response.xml")).unwrap_err();
    assert!(matches!(
        wrong,
        Error::Unexpected {
            expected: "get_version_response",
            ..
        }
    ));
    assert!(matches!(
        parse_start_task(r#"<start_task_response status="202" status_text="OK"/>"#),
        Err(Error::Missing { .. })
    ));
    assert!(matches!(
        parse_version(r#"<get_version_response status="200"><version>22"#),
        Err(Error::Truncated { .. })
    ));
}

#[test]
fn parse_tasks_on_fixtures() {
    let tasks = parse_tasks(fixture("responses/gmp-doc-examples/get_tasks_response.xml")).unwrap();
    assert_eq!(tasks.len(), 2);
    assert_eq!(tasks[0].id, "254cd3ef-bbe1-4d58-859d-21b8d0c046c6");
    assert_eq!(tasks[0].name, "Scan Webserver");
    assert_eq!(
        tasks[0].target_id.as_deref(),
        Some("1f28d970-17ef-4c69-ba8a-13827059f2b9")
    );
    assert_eq!(tasks[0].status, TaskStatus::Done);
    assert!(tasks[0].status.is_finished());
    assert_eq!(tasks[0].progress, -1);
    assert_eq!(
        tasks[0].last_report_id.as_deref(),
        Some("f0fdf522-276d-4893-9274-fb8699dc2270")
    );
    assert_eq!(tasks[1].name, "Scan Mailserver");
    assert_eq!(tasks[1].status, TaskStatus::Other(String::new()));
    assert_eq!(
        (tasks[1].progress, tasks[1].last_report_id.as_deref()),
        (-1, None)
    );

    let running = parse_task(fixture(
        "responses/get_tasks_response-gvm-tools-example_task.xml",
    ))
    .unwrap();
    assert_eq!(running.id, "c8ef0597-e2c1-4e23-869f-072fa2914bf2");
    assert_eq!(running.name, "sgdfg");
    assert_eq!(running.status, TaskStatus::Running);
    assert!(!running.status.is_finished());
    assert_eq!(running.progress, 0);
    assert_eq!(running.last_report_id, None);
    assert_eq!(
        running.current_report_id.as_deref(),
        Some("38cdd1e7-8c6f-42ec-a9a5-5b06c599b170")
    );

    let omp7 = parse_tasks(fixture("responses/omp7-get_tasks_response-all.xml")).unwrap();
    let got: Vec<_> = omp7
        .iter()
        .map(|t| {
            (
                t.name.as_str(),
                t.status.clone(),
                t.progress,
                t.last_report_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "shellshock_01",
                TaskStatus::Done,
                -1,
                Some("46203d29-ba11-4171-81ef-83d227063c7d")
            ),
            (
                "test",
                TaskStatus::Done,
                -1,
                Some("7a537c8d-a721-410b-9929-db22f46c7099")
            ),
        ]
    );

    let doc = r#"<get_tasks_response status="200" status_text="OK"><task id="a"><name>x</name>
            <status>Stop Requested</status><progress>42</progress></task><task id="b"><status>Queued</status>
            <progress>100.0</progress></task><task id="c"><status>Processing</status></task></get_tasks_response>"#;
    let t = parse_tasks(doc).unwrap();
    assert_eq!(
        (t[0].status.clone(), t[0].progress),
        (TaskStatus::StopRequested, 42)
    );
    assert_eq!(
        (t[1].status.clone(), t[1].progress),
        (TaskStatus::Queued, 100)
    );
    assert_eq!(
        (t[2].status.clone(), t[2].progress),
        (TaskStatus::Processing, -1)
    );
    assert!(matches!(
        parse_task(r#"<get_tasks_response status="200" status_text="OK"/>"#),
        Err(Error::Missing {
            element: "get_tasks_response/task"
        })
    ));
    assert!(matches!(
        parse_task(r#"<get_tasks_response status="404" status_text="Failed to find task 'x'"/>"#),
        Err(Error::Status { code: 404, .. })
    ));
}

#[test]
fn parse_feeds_reads_versions_and_sync_lock() {
    let doc = r#"<get_feeds_response status="200" status_text="OK">
            <feed><type>NVT</type><name>Greenbone Community Feed</name><version>202405101234</version>
              <description>d</description></feed>
            <feed><type>SCAP</type><name>Greenbone SCAP Data Feed</name><version>202405100631</version>
              <currently_syncing><timestamp>Fri May 10 12:00:00 2024</timestamp></currently_syncing></feed>
            <feed><type>CERT</type><name>Greenbone CERT Data Feed</name><version>202405101004</version></feed>
            <feed><type>GVMD_DATA</type><name>Greenbone Data Objects Feed</name><version></version></feed>
            </get_feeds_response>"#;
    let feeds = parse_feeds(doc).unwrap();
    let got: Vec<_> = feeds
        .iter()
        .map(|f| (f.kind.as_str(), f.version.as_str(), f.currently_syncing))
        .collect();
    assert_eq!(
        got,
        vec![
            ("NVT", "202405101234", false),
            ("SCAP", "202405100631", true),
            ("CERT", "202405101004", false),
            ("GVMD_DATA", "", false),
        ]
    );
    assert_eq!(feeds[0].name, "Greenbone Community Feed");
}
