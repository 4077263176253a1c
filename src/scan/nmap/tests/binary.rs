//! The binary: probing it, and fake nmap scripts for errors and streamed progress.

use super::*;

#[tokio::test]
async fn missing_binary_is_not_found_with_the_fix() {
    let s = Settings {
        path: "/nonexistent/nmap".into(),
        ..settings()
    };
    let e = probe_nmap(&s).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert_eq!(e.kind(), "nmap_not_found");
    let msg = e.to_string();
    assert!(msg.contains("/nonexistent/nmap"), "{msg}");
    assert!(msg.contains("install the Debian package nmap"), "{msg}");
    assert!(msg.contains("scan.nmap.path"), "{msg}");

    // run() reports it once and does not try the other batches.
    let progress = Arc::new(Progress::default());
    let jobs = [job("127.0.70.20", &[1]), job("127.0.70.21", &[2])];
    let s = Settings {
        batch_hosts: 1,
        ..s
    };
    let (hosts, errors) = run(
        &jobs,
        &s,
        &caps(true),
        progress.clone(),
        CancellationToken::new(),
    )
    .await;
    assert!(hosts.is_empty());
    assert!(matches!(errors[..], [Error::NotFound { .. }]), "{errors:?}");
    assert_eq!(progress.batches_done.load(Ordering::Relaxed), 2);
    assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 2);
}

#[tokio::test]
async fn missing_binary_in_a_namespace_is_reported_once_and_stops_every_scope() {
    use stinger_testsupport::netns::{privileged, TestNs};
    if !privileged("missing_binary_in_a_namespace_is_reported_once_and_stops_every_scope") {
        return;
    }
    let ns = TestNs::create();
    let s = Settings {
        path: "/nonexistent/nmap".into(),
        batch_hosts: 1,
        parallel_batches: 1,
        ..settings()
    };
    let jobs = [job("127.0.91.30", &[1]), job("127.0.91.31", &[1])];
    let scopes = [
        Scope {
            namespace: Some(&ns.path),
            jobs: &jobs,
        },
        Scope {
            namespace: None,
            jobs: &jobs,
        },
    ];
    let progress = Arc::new(Progress::default());
    let (found, errors) = tokio::time::timeout(
        LIMIT,
        run_scoped(
            &scopes,
            &s,
            &caps(true),
            progress.clone(),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(found, [vec![], vec![]]);
    let [e] = &errors[..] else {
        panic!("one error expected: {errors:?}");
    };
    assert!(matches!(e.innermost(), Error::NotFound { .. }), "{e:?}");
    assert_eq!(e.kind(), "nmap_not_found");
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("in network namespace {}: nmap not found", ns.name)),
        "{msg}"
    );
    assert_eq!(progress.batches_total.load(Ordering::Relaxed), 4);
    assert_eq!(progress.batches_done.load(Ordering::Relaxed), 4);
    assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn probe_reads_the_installed_version() {
    let c = probe_nmap(&settings()).await.unwrap();
    assert!(c.version.starts_with('7'), "{c:?}");
    // The bare name is looked up in PATH.
    let c2 = probe_nmap(&Settings::default()).await.unwrap();
    assert_eq!(c.version, c2.version);
}

#[tokio::test]
async fn old_or_foreign_binaries_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let old = script(
        dir.path(),
        "old",
        "echo 'Nmap version 6.47 ( http://nmap.org )'",
    );
    let e = probe_nmap(&Settings {
        path: old,
        ..settings()
    })
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::TooOld { version } if version == "6.47"),
        "{e:?}"
    );
    assert!(e.to_string().contains("7.0 or newer"), "{e}");
    let foreign = script(dir.path(), "foreign", "echo hello");
    let e = probe_nmap(&Settings {
        path: foreign,
        ..settings()
    })
    .await
    .unwrap_err();
    assert!(matches!(e, Error::Nmap { .. }), "{e:?}");
}

#[tokio::test]
async fn nmap_errors_are_reported_per_batch() {
    let dir = tempfile::tempdir().unwrap();
    // A fatal error after the XML started: nmap closes the document with exit="error".
    let xml = script(
        dir.path(),
        "xml-error",
        r#"cat <<'X'
<?xml version="1.0"?><nmaprun scanner="nmap" version="7.93"><runstats><finished time="1" exit="error" errormsg="Something broke"/><hosts up="0" down="0" total="0"/></runstats></nmaprun>
X
exit 1"#,
    );
    let quit = script(
        dir.path(),
        "quit",
        "echo 'You requested a scan type which requires root privileges.\nQUITTING!' >&2; exit 1",
    );
    let garbage = script(dir.path(), "garbage", "echo '<nmaprun><host>'");
    let jobs = [job("127.0.70.22", &[1])];
    let progress = Arc::new(Progress::default());
    for (path, want) in [(xml, "Something broke"), (quit, "QUITTING!"), (garbage, "")] {
        let s = Settings { path, ..settings() };
        let (hosts, errors) = run(
            &jobs,
            &s,
            &caps(true),
            progress.clone(),
            CancellationToken::new(),
        )
        .await;
        assert!(hosts.is_empty());
        assert_eq!(errors.len(), 1, "{errors:?}");
        if want.is_empty() {
            assert!(matches!(&errors[0], Error::Output { .. }), "{errors:?}");
        } else {
            assert!(
                matches!(&errors[0], Error::Nmap { message } if message.contains(want)),
                "{errors:?}"
            );
        }
    }
    assert_eq!(progress.failed_batches.load(Ordering::Relaxed), 3);
    assert_eq!(progress.percent(), 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_and_results_follow_the_stream() {
    // nmap itself writes <taskprogress> only when an event wakes its loop, so a fake one
    // makes the timing deterministic. It also reports a port and a host nobody asked for.
    let dir = tempfile::tempdir().unwrap();
    let fake = script(
        dir.path(),
        "fake-nmap",
        r#"cat >/dev/null
cat <<'X'
<?xml version="1.0"?>
<nmaprun scanner="nmap" version="7.93">
<taskprogress task="Service scan" time="1" percent="50.00" remaining="3" etc="4"/>
X
sleep 1
cat <<'X'
<host><status state="up" reason="user-set"/><address addr="127.0.70.23" addrtype="ipv4"/><ports><port protocol="tcp" portid="80"><state state="open" reason="syn-ack"/><service name="http" method="probed" conf="10"/></port><port protocol="tcp" portid="81"><state state="open" reason="syn-ack"/></port><port protocol="udp" portid="53"><state state="open" reason="udp-response"/></port></ports></host>
<host><status state="up" reason="user-set"/><address addr="10.9.9.9" addrtype="ipv4"/><ports><port protocol="tcp" portid="80"><state state="open" reason="syn-ack"/></port></ports></host>
<runstats><finished time="2" exit="success"/><hosts up="2" down="0" total="2"/></runstats></nmaprun>
X"#,
    );
    let progress = Arc::new(Progress::default());
    let (watch, midway) = (progress.clone(), Arc::new(AtomicBool::new(false)));
    let saw = midway.clone();
    let sampler = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if watch.percent() == 50.0 {
                saw.store(true, Ordering::Relaxed);
            }
        }
    });
    let s = Settings {
        path: fake,
        ..settings()
    };
    let jobs = [job("127.0.70.23", &[80])];
    let (hosts, errors) = tokio::time::timeout(
        LIMIT,
        run(
            &jobs,
            &s,
            &caps(true),
            progress.clone(),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    sampler.abort();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        midway.load(Ordering::Relaxed),
        "50 % never reached Progress"
    );
    assert_eq!(progress.percent(), 100.0);
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0].address, ip("127.0.70.23"));
    assert_eq!(hosts[0].tcp.len(), 1);
    assert_eq!(hosts[0].tcp[0].port, 80);
    assert!(hosts[0].udp.is_empty(), "UDP was not asked for");
}

#[tokio::test]
async fn nmap_inherits_no_secret_from_the_agent() {
    // The fake nmap writes its whole environment, then a valid empty scan. Whatever the test
    // process holds (CARGO_*, RUST_*, and in production STINGER_*_PASSWORD, OS_*), only the
    // allowed names get through.
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("env");
    let fake = script(
        dir.path(),
        "env-nmap",
        &format!(
            r#"env > '{}'
cat >/dev/null
cat <<'X'
<?xml version="1.0"?><nmaprun scanner="nmap" version="7.93"><runstats><finished time="1" exit="success"/><hosts up="0" down="0" total="0"/></runstats></nmaprun>
X"#,
            env_file.display()
        ),
    );
    assert!(
        std::env::vars().any(|(k, _)| !CHILD_ENV.contains(&k.as_str())),
        "the test process has variables to drop"
    );
    let s = Settings {
        path: fake,
        ..settings()
    };
    let (_, errors) = run(
        &[job("127.0.70.24", &[1])],
        &s,
        &caps(true),
        Arc::new(Progress::default()),
        CancellationToken::new(),
    )
    .await;
    assert!(errors.is_empty(), "{errors:?}");
    let env = std::fs::read_to_string(&env_file).unwrap();
    for line in env.lines().filter(|l| l.contains('=')) {
        let name = line.split('=').next().unwrap_or_default();
        // The shell itself sets these; the agent's marker (set once an in-process agent of
        // another test has started) names a store path, no secret.
        let shell = ["PWD", "OLDPWD", "SHLVL", "_"].contains(&name);
        assert!(
            shell || CHILD_ENV.contains(&name) || name == orphans::MARKER,
            "nmap inherited {name}: {env}"
        );
    }
    if let Ok(path) = std::env::var("PATH") {
        assert!(env.contains(&format!("PATH={path}")), "{env}");
    }
}
