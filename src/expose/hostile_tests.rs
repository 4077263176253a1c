//! Hostile label values through every label source of the state collectors (host ids, group and
//! source names, VM/project/user names and status, NIC and disk names, nmap service, product and
//! version, policy rule names, Greenbone feed names): both exposition formats stay parseable, every
//! value reads back as exactly what [`clean`] made of it, and promtool accepts the text format.

use crate::expose::labels::{clean, MAX_LABEL_VALUE_BYTES};
use crate::expose::{encode_metrics, metrics, testdata};
use crate::model::{ServiceInfo, Stage};
use crate::state::{GroupStatus, State, View};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use stinger_testsupport::promtool;

/// What a scanned host or a tenant can send: each is appended to every outside string.
const HOSTILE: &[&str] = &[
    "2\"x",
    "back\\slash\\",
    "line\nfeed",
    "carriage\rreturn",
    "nul\0byte",
    "\u{FFFD}\u{FFFD} (invalid UTF-8 as the parsers decode it)",
    "\"} evil_series{x=\"1\\\"} 1\n# EOF\n",
    "ünïcødé λ 日本語 🐝",
    "esc\u{1b}[31mred\u{7f}\u{85}",
    "tab\there",
];

/// The test view with `s` appended to every string that comes from outside.
fn hostile_view(s: &str) -> View {
    let mut view = testdata::view();
    let hosts = std::mem::take(&mut view.hosts);
    for (_, mut h) in hosts {
        h.id = format!("{}{s}", h.id);
        h.group = format!("{}{s}", h.group);
        for p in &mut h.ports {
            p.rule = format!("{}{s}", p.rule);
            let svc = p.service.get_or_insert_with(ServiceInfo::default);
            svc.name = Some(format!("svc{s}"));
            svc.product = Some(format!("product{s}"));
            svc.version = Some(format!("9.2p1 Debian {s}"));
        }
        view.hosts.insert(h.id.clone(), h);
    }
    let vms = std::mem::take(&mut view.vms);
    for (_, vm) in vms {
        let mut vm = Arc::unwrap_or_clone(vm);
        vm.id = format!("{}{s}", vm.id);
        vm.cloud = format!("{}{s}", vm.cloud);
        vm.name = format!("{}{s}", vm.name);
        vm.status = format!("{}{s}", vm.status);
        vm.project_id = format!("{}{s}", vm.project_id);
        vm.project_name = Some(format!("project{s}"));
        vm.user_id = format!("{}{s}", vm.user_id);
        vm.user_name = Some(format!("user{s}"));
        if let Some(d) = vm.diagnostics.as_mut() {
            for n in &mut d.nics {
                n.name = format!("{}{s}", n.name);
            }
            for k in &mut d.disks {
                k.name = format!("{}{s}", k.name);
            }
        }
        view.vms.insert(vm.id.clone(), Arc::new(vm));
    }
    let sources = std::mem::take(&mut view.sources);
    for (name, st) in sources {
        view.sources.insert(format!("{name}{s}"), st);
    }
    view.gmp_feeds = vec![(format!("NVT{s}"), 1_800_000_000.0)];
    view.groups = vec![GroupStatus {
        name: format!("dmz{s}"),
        targets: 3,
        last_success: Some(1_800_000_000.0),
        last_duration: 1.0,
    }];
    view
}

fn scrape(view: View, openmetrics: bool) -> String {
    let state = Arc::new(State::default());
    *state.write() = view;
    let (reg, m) = metrics::registry(state, Arc::new(AtomicUsize::new(10_000)));
    m.run(Stage::Discovery, "success", 1.0);
    encode_metrics(&reg, openmetrics).unwrap()
}

/// The label pairs of a sample line, unescaped as Prometheus' parsers do (`\\`, `\"`, `\n`); `None`
/// when the line is not `name{labels} value` with well-formed labels.
fn labels(line: &str) -> Option<Vec<(String, String)>> {
    let (_, rest) = line.split_once('{')?;
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        match chars.peek()? {
            '}' => {
                chars.next();
                let tail: String = chars.collect();
                return tail.starts_with(' ').then_some(out);
            }
            ',' => {
                chars.next();
            }
            _ => {}
        }
        let name: String = chars.by_ref().take_while(|&c| c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    '\\' => value.push('\\'),
                    '"' => value.push('"'),
                    'n' => value.push('\n'),
                    _ => return None,
                },
                '\n' => return None,
                c => value.push(c),
            }
        }
        out.push((name, value));
    }
}

#[test]
fn hostile_values_read_back_as_their_clean_form_in_both_formats() {
    for s in HOSTILE {
        let view = hostile_view(s);
        let expected_vm_names: Vec<String> = view
            .vms
            .values()
            .map(|v| clean(&v.name).into_owned())
            .collect();
        for om in [false, true] {
            let text = scrape(hostile_view(s), om);
            let mut vm_names = Vec::new();
            for line in text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
            {
                let pairs = labels(line)
                    .or_else(|| (!line.contains('{')).then(Vec::new))
                    .unwrap_or_else(|| panic!("{s:?} (openmetrics {om}): bad line {line:?}"));
                for (name, value) in &pairs {
                    assert!(
                        value.len() <= MAX_LABEL_VALUE_BYTES
                            && !value.chars().any(char::is_control),
                        "{s:?}: {name}={value:?} in {line:?}"
                    );
                }
                if line.starts_with("stinger_vm_info{") {
                    vm_names.extend(
                        pairs
                            .iter()
                            .filter(|(n, _)| n == "name")
                            .map(|(_, v)| v.clone()),
                    );
                }
                assert!(
                    !line.starts_with("evil_series"),
                    "{s:?}: injected series {line:?}"
                );
            }
            vm_names.sort();
            let mut want = expected_vm_names.clone();
            want.sort();
            assert_eq!(vm_names, want, "{s:?} (openmetrics {om})");
            if om {
                assert_eq!(text.lines().filter(|l| *l == "# EOF").count(), 1, "{s:?}");
                assert!(text.ends_with("# EOF\n"));
            }
        }
        promtool::check_metrics(&scrape(view, false)).unwrap();
    }
}

#[test]
fn a_ten_kilobyte_banner_makes_a_bounded_series() {
    let big = "A".repeat(10_000);
    let text = scrape(hostile_view(&big), false);
    let longest = text.lines().map(str::len).max().unwrap_or(0);
    // The open-port series has 11 labels; each value is at most the limit.
    assert!(longest < 12 * (MAX_LABEL_VALUE_BYTES + 20), "{longest}");
    assert!(text.contains("…"));
    promtool::check_metrics(&text).unwrap();
}

#[test]
fn the_version_nmap_reported_for_the_issue_banner_is_escaped() {
    // The banner `SSH-2.0-OpenSSH_9.2p1 Debian-2"x` as nmap reports it.
    let with_banner = || {
        let mut view = testdata::view();
        for h in view.hosts.values_mut() {
            for p in &mut h.ports {
                p.service = Some(ServiceInfo {
                    name: Some("ssh".into()),
                    product: Some("OpenSSH".into()),
                    version: Some("9.2p1 Debian 2\"x".into()),
                    ..ServiceInfo::default()
                });
            }
        }
        view
    };
    for om in [false, true] {
        let text = scrape(with_banner(), om);
        assert!(text.contains(r#"version="9.2p1 Debian 2\"x""#), "{text}");
    }
}

#[test]
fn help_texts_need_no_escaping_in_either_format() {
    // prometheus-client writes OpenMetrics HELP raw: a backslash, a quote or a line feed in one of
    // ours would corrupt the exposition. Every HELP is static; keep it free of them.
    let text = scrape(testdata::view(), true);
    let helps: Vec<&str> = text.lines().filter(|l| l.starts_with("# HELP ")).collect();
    assert!(helps.len() > 40, "{}", helps.len());
    for h in helps {
        assert!(!h.contains('\\') && !h.contains('"'), "{h}");
    }
    // Every line of the exposition is a comment, a sample or the EOF marker: no HELP was split.
    for line in text.lines() {
        assert!(
            line.starts_with('#') || line.starts_with("stinger_"),
            "a stray line: {line:?}"
        );
    }
}
