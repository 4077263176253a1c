//! Tests of the GMP session and workflow against a fake gvmd (`stinger_testsupport::fake_gvmd`)
//! over a unix socket and over TLS, plus unit tests of the pure helpers. Every wait is bounded.
//! This module holds the shared helpers; the tests are in the topic modules below.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use stinger_testsupport::fake_gvmd::{FakeGvmd, Faults, FIXTURE_RESULTS, PASSWORD, USER};
use tokio_util::sync::CancellationToken;

use super::plan::is_own_name;
use super::workflow::Outcome;
use super::*;

mod failures;
mod full_cycles;
mod pure_helpers;
mod scanner_seam;
mod session_level;
mod task_retention;

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
