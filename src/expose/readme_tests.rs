//! The README says what is. Its metrics table (between `<!-- metrics-table -->` and
//! `<!-- /metrics-table -->`) names every family `/metrics` exports, and no other, each with the
//! labels its series carry; its configuration block (after `<!-- default-config -->`) is the embedded
//! `src/data/default.toml`, verbatim; its API table (between `<!-- api-table -->` and
//! `<!-- /api-table -->`) names every endpoint and query parameter of `openapi.yaml` (itself checked
//! against the router) and every change kind. Each failure says what to write in the README.

use super::testdata;
use crate::expose::{encode_metrics, metrics};
use crate::model::{EventKind, Stage};
use crate::state::{GroupStatus, StageStatus, State};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::Duration;

const README: &str = include_str!("../../README.md");
const DEFAULT_TOML: &str = include_str!("../data/default.toml");

const METRICS_START: &str = "<!-- metrics-table -->";
const METRICS_END: &str = "<!-- /metrics-table -->";
const CONFIG_MARK: &str = "<!-- default-config -->";
const API_START: &str = "<!-- api-table -->";
const API_END: &str = "<!-- /api-table -->";

/// The README between two markers.
fn section(start: &str, end: &str) -> &'static str {
    let from = README
        .find(start)
        .unwrap_or_else(|| panic!("README.md has no {start} marker"))
        + start.len();
    let len = README[from..]
        .find(end)
        .unwrap_or_else(|| panic!("README.md has no {end} marker after {start}"));
    &README[from..from + len]
}

/// The body rows of a Markdown table, as cells (header and separator rows left out). A `\|`
/// inside a cell is not a separator.
fn rows(table: &str) -> Vec<Vec<String>> {
    let lines: Vec<&str> = table
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('|'))
        .collect();
    lines
        .iter()
        .skip(1)
        .filter(|l| !l.starts_with("|---") && !l.starts_with("| ---"))
        .map(|l| {
            let marked = l.replace("\\|", "\u{0}");
            let inner = marked.trim_matches('|');
            inner
                .split('|')
                .map(|c| c.replace('\u{0}', "|").trim().to_string())
                .collect()
        })
        .collect()
}

/// The `code spans` of a Markdown cell.
fn code_spans(cell: &str) -> Vec<&str> {
    cell.split('`').skip(1).step_by(2).collect()
}

/// The text-format exposition of a registry over the expose test view, with every family given at
/// least one series: stage health, group coverage, Greenbone feeds, e-mail status, event counters.
fn scrape() -> String {
    let state = Arc::new(State::default());
    {
        let mut v = state.write();
        *v = testdata::view();
        v.gmp_feeds = vec![("NVT".into(), 1_799_990_000.0), ("SCAP".into(), 1.8e9)];
        v.out_of_scope = vec![("dmz".into(), "excluded", 2)];
        // An open resolver found by the UDP probes.
        if let Some(h) = v.hosts.get_mut(testdata::CIDR_HOST) {
            let mut p = h.ports[0].clone();
            p.port = 53;
            p.protocol = crate::model::Protocol::Udp;
            p.amplification = Some(1.5);
            p.udp = Some(crate::model::UdpReply {
                service: "dns".into(),
                request: "query".into(),
                request_bytes: 32,
                reply_bytes: 48,
                datagrams: 1,
                recursion: Some(true),
            });
            h.ports.push(p);
        }
        // The test hosts' findings, as a pass makes them (confirmed at once after a re-probe).
        let (settings, policy) = (Default::default(), Default::default());
        let ctx = crate::judge::findings::Context {
            settings: &settings,
            policy: &policy,
            scan_id: Some(7),
            now: 1.8e9,
        };
        let hosts: Vec<_> = v.hosts.values().cloned().collect();
        for h in &hosts {
            let covers = crate::judge::findings::Covers::All;
            for f in crate::judge::findings::observe(&[], h, covers, &ctx) {
                v.findings.insert(f.id.clone(), f);
            }
        }
        v.groups = vec![
            GroupStatus {
                name: "dmz".into(),
                targets: 256,
                last_success: Some(1.8e9),
                last_duration: 4.0,
            },
            GroupStatus {
                name: "east".into(),
                targets: 3,
                last_success: None,
                last_duration: 0.0,
            },
        ];
        for (stage, interval) in [(Stage::Discovery, 900), (Stage::Vulnerabilities, 86_400)] {
            v.stages.insert(
                stage,
                StageStatus {
                    interval: Duration::from_secs(interval),
                    jitter: Duration::from_secs(30),
                    last_success: Some(1.8e9),
                    last_ok: Some(true),
                    ..StageStatus::default()
                },
            );
        }
    }
    let (reg, m) = metrics::registry(state, Arc::new(AtomicUsize::new(10_000)));
    m.run(Stage::Discovery, "success", 3.0);
    m.error(Stage::Email, "smtp");
    encode_metrics(&reg, false).unwrap()
}

/// One family of the exposition: its type, HELP text and the labels of its series, in the order
/// they first appear (`le` and `quantile` left out: they belong to the type).
#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: String,
    labels: Vec<String>,
    series: usize,
}

/// The label names of a sample line's `{...}` (values may hold escaped quotes, commas and braces).
fn label_names(labels: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = labels;
    while let Some(eq) = rest.find("=\"") {
        names.push(rest[..eq].trim_start_matches(',').trim().to_string());
        let mut chars = rest[eq + 2..].char_indices();
        let mut end = rest.len() - eq - 2;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &rest[eq + 2 + end..];
    }
    names
}

/// Every family in a text-format exposition, by name.
fn families(text: &str) -> BTreeMap<String, Family> {
    let mut out: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.into()).or_default().kind = kind.into();
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            out.entry(name.into()).or_default().help = help.into();
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            let sample = &line[..end];
            let family = ["", "_bucket", "_sum", "_count", "_created"]
                .iter()
                .find_map(|s| {
                    let f = sample.strip_suffix(s)?;
                    out.contains_key(f).then(|| f.to_string())
                })
                .unwrap_or_else(|| panic!("sample of no family: {line}"));
            let f = out.get_mut(&family).unwrap();
            f.series += 1;
            if line[end..].starts_with('{') {
                let close = line.rfind('}').unwrap();
                for l in label_names(&line[end + 1..close]) {
                    if l != "le" && l != "quantile" && !f.labels.contains(&l) {
                        f.labels.push(l);
                    }
                }
            }
        }
    }
    out
}

/// The README's metrics table: family name → the labels its row lists.
fn readme_metrics() -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let rows = rows(section(METRICS_START, METRICS_END));
    assert!(!rows.is_empty(), "README.md's metrics table has no rows");
    for row in rows {
        assert!(
            row.len() >= 3,
            "metrics table row with fewer than 3 cells: {row:?}"
        );
        let labels: Vec<String> = row[1]
            .split(',')
            .map(|l| l.trim().trim_matches('`').to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let names = code_spans(&row[0]);
        assert!(
            !names.is_empty(),
            "metrics table row names no `metric`: {row:?}"
        );
        for name in names {
            let dup = out.insert(name.to_string(), labels.clone());
            assert!(dup.is_none(), "README.md lists `{name}` twice");
        }
    }
    out
}

#[test]
fn the_metrics_table_lists_every_family_with_its_labels() {
    let text = scrape();
    let exported = families(&text);
    assert!(exported.len() > 40, "{text}");
    let listed = readme_metrics();
    let mut problems = Vec::new();

    let missing: Vec<_> = exported
        .iter()
        .filter(|(name, _)| !listed.contains_key(*name))
        .collect();
    if !missing.is_empty() {
        let mut s = format!(
            "README.md's metrics table (between {METRICS_START} and {METRICS_END}) lacks families \
             that /metrics exports; add these rows (and say what they mean in your own words):"
        );
        for (name, f) in missing {
            s += &format!(
                "\n| `{name}` | {} | ({}) {} |",
                f.labels.join(", "),
                f.kind,
                f.help
            );
        }
        problems.push(s);
    }
    let gone: Vec<_> = listed
        .keys()
        .filter(|name| !exported.contains_key(*name))
        .collect();
    if !gone.is_empty() {
        problems.push(format!(
            "README.md's metrics table lists families that /metrics does not export (names as in the \
             Prometheus text format: counters end in _total); remove or rename: {gone:?}"
        ));
    }
    for (name, f) in &exported {
        let Some(readme) = listed.get(name) else {
            continue;
        };
        if f.series == 0 {
            problems.push(format!(
                "`{name}` has no series in this test's scrape, so its labels cannot be checked: give \
                 it one in readme_tests::scrape"
            ));
            continue;
        }
        let want: BTreeSet<&String> = f.labels.iter().collect();
        let have: BTreeSet<&String> = readme.iter().collect();
        if want != have {
            problems.push(format!(
                "README.md lists `{name}` with labels [{}], but its series carry [{}]; write its row \
                 as | `{name}` | {} | … |",
                readme.join(", "),
                f.labels.join(", "),
                f.labels.join(", ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
}

#[test]
fn the_exposition_parser_finds_families_labels_and_escaped_values() {
    let text =
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"},z=\\\"\"} 1\n\
                # TYPE h histogram\nh_bucket{stage=\"d\",le=\"1\"} 0\nh_sum{stage=\"d\"} 0\n\
                # TYPE g gauge\ng 2\n";
    let f = families(text);
    assert_eq!(f["a_total"].labels, ["x", "y"]);
    assert_eq!(f["a_total"].help, "A.");
    assert_eq!(f["h"].labels, ["stage"]);
    assert_eq!(f["h"].series, 2);
    assert!(f["g"].labels.is_empty());
    assert_eq!(f["g"].kind, "gauge");
    let r = rows("| a | b |\n|---|---|\n| `x`, `y` | l1, l2 | m \\| n |\n");
    assert_eq!(r, [["`x`, `y`", "l1, l2", "m | n"]]);
    assert_eq!(code_spans(r[0][0].as_str()), ["x", "y"]);
}

#[test]
fn the_configuration_block_is_the_embedded_default() {
    let from = README.find(CONFIG_MARK).unwrap_or_else(|| {
        panic!("README.md has no {CONFIG_MARK} marker before its copy of src/data/default.toml")
    }) + CONFIG_MARK.len();
    let rest = README[from..].trim_start();
    let block = rest
        .strip_prefix("```toml\n")
        .unwrap_or_else(|| panic!("README.md: {CONFIG_MARK} must be followed by a ```toml block"));
    let block = &block[..block.find("\n```").unwrap_or_else(|| {
        panic!("README.md: the ```toml block after {CONFIG_MARK} is not closed")
    }) + 1];
    if block != DEFAULT_TOML {
        let (n, (readme, file)) = block
            .lines()
            .map(Some)
            .chain(std::iter::repeat(None))
            .zip(
                DEFAULT_TOML
                    .lines()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((0, (None, None)));
        panic!(
            "README.md's ```toml block after {CONFIG_MARK} must be src/data/default.toml verbatim \
             (copy the file into it); first difference at line {}:\n  README:       {readme:?}\n  \
             default.toml: {file:?}",
            n + 1
        );
    }
}

#[test]
fn the_api_table_names_every_endpoint_parameter_and_change_kind() {
    let spec: serde_json::Value = serde_norway::from_str(crate::expose::OPENAPI).unwrap();
    let rows = rows(section(API_START, API_END));
    let mut problems = Vec::new();
    let mut documented = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let Some(get) = item.get("get") else { continue };
        let endpoint = format!("GET {path}");
        documented.insert(endpoint.clone());
        let Some(row) = rows
            .iter()
            .find(|r| code_spans(&r[0]).contains(&endpoint.as_str()))
        else {
            problems.push(format!(
                "README.md's API table (between {API_START} and {API_END}) has no row for \
                 `{endpoint}`; add | `{endpoint}` | … |"
            ));
            continue;
        };
        let spans: Vec<&str> = row[1..].iter().flat_map(|c| code_spans(c)).collect();
        let params = get["parameters"].as_array().cloned().unwrap_or_default();
        for p in params {
            let p = match p["$ref"].as_str() {
                Some(r) => spec["components"]["parameters"][r.rsplit('/').next().unwrap()].clone(),
                None => p,
            };
            if p["in"] != "query" {
                continue;
            }
            let name = p["name"].as_str().unwrap();
            if !spans
                .iter()
                .any(|s| *s == name || s.starts_with(&format!("{name}=")))
            {
                problems.push(format!(
                    "README.md's API row for `{endpoint}` does not name its query parameter `{name}`; \
                     add `{name}` (openapi.yaml: {})",
                    p["description"]
                        .as_str()
                        .map_or("no description".to_string(), |d| d
                            .split_whitespace()
                            .collect::<Vec<_>>()
                            .join(" "))
                ));
            }
        }
        if path == "/api/v1/changes" {
            for k in EventKind::ALL {
                if !spans.contains(&k.as_str()) {
                    problems.push(format!(
                        "README.md's API row for `{endpoint}` does not list the change kind `{}`; \
                         add it to the `kind` list",
                        k.as_str()
                    ));
                }
            }
        }
    }
    for row in &rows {
        for span in code_spans(&row[0]) {
            if span.starts_with("GET ") && !documented.contains(span) {
                problems.push(format!(
                    "README.md's API table names `{span}`, which openapi.yaml does not describe"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
