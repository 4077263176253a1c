//! Greenbone behind the scanner seam (`Prober`): what a scan or an import reports per address,
//! and a failed run surfacing as the seam's error with gvmd's kind.

use super::*;

fn job(addresses: &[IpAddr], open: Vec<Vec<u16>>) -> crate::scan::Job {
    crate::scan::Job::on_open(addresses.to_vec(), open, None, CancellationToken::new())
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
