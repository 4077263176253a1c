//! A host that answers everything, through the judge and the findings' lifecycle: one record, one
//! event and one finding in place of one a port; the thresholds and their hysteresis; the way back
//! to per-port judgement.

use super::*;
use crate::judge::findings::{observe, Context, Covers, Settings};
use crate::judge::{judge_host, Judged, Policy};
use crate::model::{FindingState, Target, Verdict};
use crate::ports::PortMatcher;
use std::collections::BTreeMap;

fn target() -> Target {
    Target::address("127.0.0.9".parse().unwrap(), "lo")
}

/// 22/tcp expected, everything else unexpected.
fn policy() -> Policy {
    Policy {
        expected: PortMatcher::parse(&["22"]).unwrap(),
        ..Policy::default()
    }
}

/// `open` answered; `closed` more of those probed answered with a reset.
fn obs(open: impl IntoIterator<Item = u16>, closed: u32) -> HostObservation {
    HostObservation {
        open: open.into_iter().collect(),
        closed,
        ..HostObservation::default()
    }
}

/// A host and its findings, carried from pass to pass as the agent does.
#[derive(Default)]
struct Host {
    state: Option<HostState>,
    findings: BTreeMap<String, Finding>,
}

impl Host {
    /// Judge one pass at time `t` (also its scan id); returns what the judge said.
    fn pass(&mut self, o: &HostObservation, t: f64) -> Judged {
        let policy = policy();
        let j = judge_host(&target(), o, self.state.as_ref(), &policy, t as u64, t);
        let state = j.state.clone().expect("a judged host");
        let settings = Settings::default();
        let ctx = Context {
            settings: &settings,
            policy: &policy,
            scan_id: Some(t as u64),
            now: t,
        };
        let prev: Vec<&Finding> = self.findings.values().collect();
        for f in observe(&prev, &state, Covers::All, &ctx) {
            self.findings.insert(f.id.clone(), f);
        }
        self.state = Some(state);
        j
    }

    fn of_kind(&self, kind: FindingKind) -> Vec<&Finding> {
        self.findings.values().filter(|f| f.kind == kind).collect()
    }
}

fn kinds(j: &Judged) -> Vec<(EventKind, Option<u16>)> {
    j.events.iter().map(|e| (e.kind, e.port)).collect()
}

#[test]
fn every_port_answering_is_one_record_event_and_finding_and_stopping_resumes_per_port_judgement() {
    let mut host = Host::default();
    // A real host first: 40 open ports, 39 of them unexpected findings.
    let real: Vec<u16> = std::iter::once(22).chain(8000..8039).collect();
    host.pass(&obs(real.iter().copied(), 960), 100.0);
    assert_eq!(host.of_kind(FindingKind::UnexpectedPort).len(), 39);

    // It becomes a tarpit: all 65 535 ports answer.
    let j = host.pass(&obs(1..=u16::MAX, 0), 200.0);
    let s = j.state.as_ref().unwrap();
    assert!(s.ports.is_empty(), "no port records: {}", s.ports.len());
    assert_eq!(
        s.answers_everything,
        Some(AnswersEverything {
            open: 65_535,
            probed: 65_535,
            since: 200.0
        })
    );
    // One event: the 40 ports are superseded, not closed, and nothing is opened.
    assert_eq!(kinds(&j), [(EventKind::AnswersEverythingStarted, None)]);
    assert_eq!(j.events[0].protocol, Some(Protocol::Tcp));
    // The stored record stays small.
    let size = serde_json::to_vec(s).unwrap().len();
    assert!(size < 1024, "{size} bytes");
    // One new finding, confirmed at once; the port findings resolve as superseded.
    let tarpit = host.of_kind(FindingKind::AnswersEverything);
    assert_eq!(tarpit.len(), 1);
    let f = tarpit[0];
    assert_eq!(
        (f.state, f.severity, f.key.as_str(), f.port),
        (FindingState::Confirmed, Severity::High, "host", None)
    );
    assert!(
        f.evidence.starts_with("65535 of 65535 TCP ports"),
        "{}",
        f.evidence
    );
    assert_eq!(host.findings.len(), 40, "39 port findings and this one");
    for p in host.of_kind(FindingKind::UnexpectedPort) {
        assert_eq!(p.state, FindingState::Resolved, "{}", p.key);
        let why = p.history.last().and_then(|e| e.detail.as_deref()).unwrap();
        assert!(why.starts_with("superseded"), "{why}");
    }
    let tarpit_id = f.id.clone();

    // A second tarpit pass changes nothing worth an event.
    let j = host.pass(&obs(1..=u16::MAX, 0), 300.0);
    assert!(j.events.is_empty(), "{:?}", j.events);
    assert_eq!(j.state.unwrap().answers_everything.unwrap().since, 200.0);

    // It stops: 3 ports answer, the rest reset. Per-port judgement resumes.
    let j = host.pass(&obs([22, 8080, 9000], 65_532), 400.0);
    assert_eq!(
        kinds(&j),
        [
            (EventKind::AnswersEverythingStopped, None),
            (EventKind::PortOpened, Some(22)),
            (EventKind::PortOpened, Some(8080)),
            (EventKind::PortOpened, Some(9000)),
        ]
    );
    let s = j.state.unwrap();
    assert_eq!(s.answers_everything, None);
    let verdicts: Vec<(u16, Verdict)> = s.ports.iter().map(|p| (p.port, p.verdict)).collect();
    assert_eq!(
        verdicts,
        [
            (22, Verdict::Expected),
            (8080, Verdict::Unexpected),
            (9000, Verdict::Unexpected)
        ]
    );
    let f = &host.findings[&tarpit_id];
    assert_eq!(f.state, FindingState::Resolved, "resolved at once");
    assert_eq!(f.resolved_at, Some(400.0));
    let mut open: Vec<&str> = host
        .of_kind(FindingKind::UnexpectedPort)
        .into_iter()
        .filter(|f| f.state != FindingState::Resolved)
        .map(|f| f.key.as_str())
        .collect();
    open.sort_unstable();
    assert_eq!(open, ["tcp/8080", "tcp/9000"]);
}

#[test]
fn a_host_starts_answering_everything_at_1000_ports_that_are_90_percent_of_those_probed() {
    let fresh = |o: &HostObservation| judge_host(&target(), o, None, &policy(), 1, 1.0);
    // 999 of 1000: a busy host, judged port by port.
    let j = fresh(&obs(1..=999, 1));
    let s = j.state.unwrap();
    assert_eq!((s.ports.len(), s.answers_everything), (999, None));
    assert_eq!(
        j.events.len(),
        1 + 999,
        "host_appeared and a port_opened each"
    );
    // 1000 of 1000: answers everything; appears with one event besides host_appeared.
    let j = fresh(&obs(1..=1000, 0));
    assert_eq!(
        kinds(&j),
        [
            (EventKind::HostAppeared, None),
            (EventKind::AnswersEverythingStarted, None)
        ]
    );
    let s = j.state.unwrap();
    assert!(s.ports.is_empty());
    assert_eq!(
        s.answers_everything.map(|a| (a.open, a.probed)),
        Some((1000, 1000))
    );
    // The share: 1000 of 1111 is 90.0%, 1000 of 1112 is not.
    assert!(assess(&obs(1..=1000, 111), None, 1.0).is_some());
    assert!(assess(&obs(1..=1000, 112), None, 1.0).is_none());
    // Timeouts count as probed; local errors do not.
    let timeouts = HostObservation {
        filtered: 112,
        ..obs(1..=1000, 0)
    };
    assert!(assess(&timeouts, None, 1.0).is_none());
    let errors = HostObservation {
        errors: 5000,
        ..obs(1..=1000, 0)
    };
    assert!(assess(&errors, None, 1.0).is_some());
}

#[test]
fn it_lasts_while_1000_ports_or_half_of_those_probed_answer_and_while_the_host_is_silent() {
    let mut host = Host::default();
    host.pass(&obs(1..=u16::MAX, 0), 100.0);
    // A tarpit dropping SYNs under load (40 000 answer, the rest time out): still one record.
    let loaded = HostObservation {
        filtered: 25_535,
        ..obs(1..=40_000, 0)
    };
    let j = host.pass(&loaded, 200.0);
    assert!(j.events.is_empty(), "{:?}", j.events);
    assert_eq!(
        j.state.as_ref().unwrap().answers_everything.unwrap().open,
        40_000
    );
    assert!(j.state.unwrap().ports.is_empty());
    // A targeted pass over three of its ports, all answering: kept.
    let j = host.pass(&obs([22, 80, 443], 0), 300.0);
    assert!(j.events.is_empty(), "{:?}", j.events);
    // Silent: unreachable, it keeps the record (its finding goes stale, not resolved).
    let j = host.pass(
        &HostObservation {
            filtered: 65_535,
            ..HostObservation::default()
        },
        400.0,
    );
    assert_eq!(kinds(&j), [(EventKind::HostDisappeared, None)]);
    assert!(j.state.unwrap().answers_everything.is_some());
    let f = host.of_kind(FindingKind::AnswersEverything)[0];
    assert_eq!(f.state, FindingState::Stale);
    // Fewer than 1000 and under half of those probed: it stops.
    let j = host.pass(&obs(1..=499, 501), 500.0);
    assert_eq!(j.events[1].kind, EventKind::AnswersEverythingStopped);
    assert_eq!(j.state.unwrap().ports.len(), 499);
}

#[test]
fn ports_a_targeted_pass_carried_over_do_not_make_a_busy_host_answer_everything() {
    // A real host with 1500 listeners in 1-65535 (2%), then a targeted pass over 5 ports that
    // keeps the other 1495 from its last state.
    let busy = obs(1..=1500, 64_035);
    assert!(assess(&busy, None, 1.0).is_none());
    let targeted = HostObservation {
        carried: 1495,
        ..obs(1..=1500, 0)
    };
    assert!(assess(&targeted, None, 1.0).is_none());
    assert!(assess(
        &HostObservation {
            carried: 0,
            ..targeted
        },
        None,
        1.0
    )
    .is_some());
}

#[test]
fn records_stored_before_it_existed_still_load_and_it_is_left_out_when_absent() {
    let j = judge_host(&target(), &obs([22], 999), None, &policy(), 1, 1.0);
    let s = j.state.unwrap();
    let json = serde_json::to_value(&s).unwrap();
    assert!(json.get("answers_everything").is_none(), "{json}");
    let back: HostState = serde_json::from_value(json).unwrap();
    assert_eq!(back, s);
    let tarpit = judge_host(&target(), &obs(1..=2000, 0), None, &policy(), 1, 1.0);
    let t = tarpit.state.unwrap();
    let json = serde_json::to_value(&t).unwrap();
    assert_eq!(json["answers_everything"]["open"], 2000);
    assert_eq!(serde_json::from_value::<HostState>(json).unwrap(), t);
}
