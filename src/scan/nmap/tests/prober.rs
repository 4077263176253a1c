//! nmap behind the scanner seam: jobs that share an address are asked about once, in one batch,
//! and each job gets back what was said about its own open ports only.

use super::*;
use crate::model::Protocol;
use crate::scan::prober::{Job as ProbeJob, Phase, Prober};

fn probe_job(addresses: &[&str], open: Vec<Vec<u16>>) -> ProbeJob {
    let addresses = addresses.iter().map(|a| ip(a)).collect();
    ProbeJob::on_open(addresses, open, None, CancellationToken::new())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_sharing_an_address_share_one_batch_and_keep_their_own_ports() {
    let p1 = serve("127.0.141.1", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
    let p2 = serve("127.0.141.1", 0, b"SSH-2.0-OpenSSH_9.0\r\n", false).await;
    let progress = Arc::new(Progress::default());
    let nmap = Arc::new(Services::new(settings(), caps(true), progress.clone()));
    assert_eq!((nmap.name(), nmap.phase()), ("nmap", Phase::Identify));
    // Two units (e.g. two target groups) with the same address: one has p1 open, the other both;
    // a third address with nothing open is not asked about.
    let jobs = vec![
        probe_job(&["127.0.141.1"], vec![vec![p1]]),
        probe_job(&["127.0.141.1", "127.0.141.2"], vec![vec![p1, p2], vec![]]),
    ];
    let batch = tokio::time::timeout(LIMIT, nmap.probe_many(jobs))
        .await
        .expect("nmap finished in time");
    assert!(batch.errors.is_empty(), "{:?}", batch.errors);
    assert_eq!(batch.jobs.len(), 2);
    assert_eq!(progress.batches_total.load(Ordering::Relaxed), 1);
    let ports = |h: &crate::model::HostObservation| -> Vec<u16> {
        h.services
            .iter()
            .filter(|(proto, ..)| *proto == Protocol::Tcp)
            .map(|(_, port, _)| *port)
            .collect()
    };
    let first = &batch.jobs[0].hosts;
    assert_eq!(first.len(), 1);
    assert!(first[0].services_known);
    assert_eq!(ports(&first[0]), [p1], "only the port this job asked about");
    assert!(first[0].open.is_empty(), "nmap does not discover ports");
    let second = &batch.jobs[1].hosts;
    assert_eq!(second.len(), 2);
    let mut both = vec![p1, p2];
    both.sort_unstable();
    let mut got = ports(&second[0]);
    got.sort_unstable();
    assert_eq!(got, both, "{:?}", second[0]);
    assert!(!second[1].services_known && second[1].services.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_job_alone_is_an_error_only_when_nothing_was_identified() {
    let p = serve("127.0.141.3", 0, b"SSH-2.0-OpenSSH_8.0\r\n", false).await;
    let nmap = Services::new(settings(), caps(true), Arc::default());
    let out = tokio::time::timeout(
        LIMIT,
        nmap.probe(probe_job(&["127.0.141.3"], vec![vec![p]])),
    )
    .await
    .expect("in time")
    .expect("identified");
    assert!(out.hosts[0].services_known);

    let missing = Services::new(
        Settings {
            path: "/nonexistent/nmap".into(),
            ..settings()
        },
        caps(true),
        Arc::default(),
    );
    let e = tokio::time::timeout(
        LIMIT,
        missing.probe(probe_job(&["127.0.141.3"], vec![vec![p]])),
    )
    .await
    .expect("in time")
    .expect_err("no nmap");
    assert!(matches!(e, crate::scan::Error::Nmap(_)), "{e}");
    assert!(e.kind().starts_with("nmap"), "{}", e.kind());
}
