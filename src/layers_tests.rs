//! The layering of the crate's top-level modules, checked on the source: data flows one way
//! (inventory → scan → judge → store → expose, wired by app), so a module may name only the modules
//! below it. Every `.rs` file under `src/` is read and each `crate::<module>` it names outside test
//! code is checked against [`ALLOWED`].
//!
//! Test code may name anything: files called `tests.rs` or `*_tests.rs`, files under a `tests/`
//! directory, modules declared `#[cfg(test)] mod name;` (their file and everything below it), and
//! `#[cfg(test)]` items inside other files. Comments (doc links included) do not count. `super::`
//! paths are not followed: they stay inside one top-level module unless a file climbs out with
//! `super::super::…` from its top, which nothing does. A grouped `use crate::{a::X, b::Y}` is
//! refused, because it would hide its modules from this check: write one `use` per module.
//!
//! The layers, bottom to top (a module may use only rows above it in this list, never one beside
//! it):
//!
//! 1. `model` (plain data), `tls`, `shutdown`, `build`: nothing in the crate.
//! 2. `ports`: port lists, on `model`.
//! 3. The stages `inventory`, `scan`, `judge`, `store`: on the layers below, never on each other —
//!    what two stages share (a VM's security groups, read by inventory and judge; an exposure,
//!    written by judge and kept by store) is `model` data.
//! 4. `state`: the in-memory view, holding the scans' progress (`scan`).
//! 5. `expose`: metrics, the API, the e-mail digest, reading `state` and `store`.
//! 6. `config`: builds every stage's typed settings (scan's `TcpSettings`, judge's `Policy`,
//!    inventory's `TargetGroup`, …) and validates the web config with `expose`'s parser.
//! 7. `telemetry`: logging set-up, from `config`'s `--log.format`.
//! 8. `app`: wires everything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each top-level module may name (`crate::<module>`). Every module of
/// `src/` has a row; a module may always name itself.
const ALLOWED: &[(&str, &[&str])] = &[
    ("model", &[]),
    ("tls", &[]),
    ("shutdown", &[]),
    ("build", &[]),
    ("ports", &["model"]),
    ("inventory", &["model", "ports", "tls", "build"]),
    ("scan", &["model", "ports", "tls", "build"]),
    ("judge", &["model", "ports"]),
    ("store", &["model", "ports"]),
    (
        "state",
        &["model", "ports", "inventory", "scan", "judge", "store"],
    ),
    (
        "expose",
        &[
            "model",
            "ports",
            "tls",
            "build",
            "inventory",
            "scan",
            "judge",
            "store",
            "state",
        ],
    ),
    (
        "config",
        &[
            "model",
            "ports",
            "inventory",
            "scan",
            "judge",
            "store",
            "expose",
        ],
    ),
    ("telemetry", &["config"]),
    (
        "app",
        &[
            "model",
            "ports",
            "tls",
            "shutdown",
            "build",
            "inventory",
            "scan",
            "judge",
            "store",
            "state",
            "expose",
            "config",
            "telemetry",
        ],
    ),
];

/// Known edges against the table, each confined to the files and the path it is about and each with
/// the reason it is not fixed yet: `(file or directory under the crate root, path prefix, why)`.
/// An entry nothing matches any more fails the check, so a fix also removes its entry here.
const EXCEPTIONS: &[(&str, &str, &str)] = &[];

fn allowed() -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    ALLOWED
        .iter()
        .map(|(m, deps)| (*m, deps.iter().copied().collect()))
        .collect()
}

/// One `crate::<module>` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    line: usize,
    /// The top-level module named, e.g. `inventory`; empty for a grouped `crate::{…}`.
    module: String,
    /// The path as written, e.g. `crate::inventory::openstack::types`.
    path: String,
}

/// The top-level module a source file belongs to (`src/judge/exposure.rs` → `judge`), or `None` for
/// the crate roots (`lib.rs`, `main.rs`).
fn module_of(relative: &Path) -> Option<String> {
    let mut parts = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy());
    let first = parts.next()?;
    if first != "src" {
        return None;
    }
    let top = parts.next()?;
    let top = top.strip_suffix(".rs").unwrap_or(&top);
    (top != "lib" && top != "main").then(|| top.to_string())
}

/// The directory a file's child modules live in: `src/a/mod.rs` → `src/a`, `src/a/b.rs` → `src/a/b`.
fn child_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap_or(Path::new("")).to_path_buf();
    match file.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs" | "lib.rs" | "main.rs") => parent,
        _ => parent.join(file.file_stem().unwrap_or_default()),
    }
}

/// Whether a file is test code by its name: `tests.rs`, `*_tests.rs`, or inside a `tests` or
/// `*_tests` directory.
fn is_test_by_name(relative: &Path) -> bool {
    relative.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        let stem = c.strip_suffix(".rs").unwrap_or(&c);
        stem == "tests" || stem.ends_with("_tests")
    })
}

/// A line without its `//` comment (a `//` inside a string literal is kept).
fn strip_comment(line: &str) -> &str {
    let mut in_string = false;
    let mut escaped = false;
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b'/' && bytes.get(i + 1) == Some(&b'/') {
            return &line[..i];
        }
    }
    line
}

/// What one file (`file`, relative to the crate root) contributes: its `crate::` references outside
/// `#[cfg(test)]` items, and the files (and directories) of the modules it declares
/// `#[cfg(test)] mod name;`.
fn scan_source(text: &str, file: &Path) -> (Vec<Reference>, Vec<PathBuf>) {
    let dir = child_dir(file);
    let lines: Vec<&str> = text.lines().collect();
    let mut refs = Vec::new();
    let mut test_paths = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if line.trim() == "#[cfg(test)]" {
            // Skip the item the attribute gates, with any attributes after it.
            let mut j = i + 1;
            let mut path_attr = None;
            while j < lines.len() && lines[j].trim_start().starts_with("#[") {
                let attr = lines[j].trim();
                if let Some(p) = attr
                    .strip_prefix("#[path = \"")
                    .and_then(|p| p.strip_suffix("\"]"))
                {
                    path_attr = Some(p.to_string());
                }
                j += 1;
            }
            let Some(item) = lines.get(j) else { break };
            let indent = item.len() - item.trim_start().len();
            let code = strip_comment(item).trim_end();
            if code.ends_with(';') {
                // `mod name;`: the module's file and everything below it are test code.
                let decl = code.trim_start();
                let decl = decl.strip_prefix("pub").map_or(decl, |rest| {
                    rest.trim_start()
                        .strip_prefix('(')
                        .and_then(|r| r.split_once(')'))
                        .map_or(rest, |(_, r)| r)
                        .trim_start()
                });
                if let Some(name) = decl.strip_prefix("mod ").and_then(|n| n.strip_suffix(';')) {
                    let name = name.trim();
                    match &path_attr {
                        // `#[path]` is relative to the declaring file's own directory.
                        Some(p) => {
                            test_paths.push(file.parent().unwrap_or(Path::new("")).join(p));
                        }
                        None => {
                            test_paths.push(dir.join(format!("{name}.rs")));
                            test_paths.push(dir.join(name));
                        }
                    }
                }
                i = j + 1;
            } else {
                // A block item: up to the `}` at the item's own indentation.
                let mut k = j + 1;
                while k < lines.len() {
                    let l = lines[k];
                    if l.len() > indent
                        && l[..indent].trim().is_empty()
                        && l[indent..].starts_with('}')
                    {
                        break;
                    }
                    k += 1;
                }
                i = k + 1;
            }
            continue;
        }
        refs.extend(references(strip_comment(line), i + 1));
        i += 1;
    }
    (refs, test_paths)
}

/// Every `crate::<module>` in one line of code (not `$crate::`, not `some_crate::`).
fn references(code: &str, line: usize) -> Vec<Reference> {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut from = 0;
    while let Some(at) = code[from..].find("crate::") {
        let start = from + at;
        from = start + "crate::".len();
        let before = start.checked_sub(1).map(|b| bytes[b]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$') {
            continue;
        }
        let rest = &code[from..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let path = format!("crate::{}", rest[..end].trim_end_matches(':'));
        let module = rest[..end].split("::").next().unwrap_or("").to_string();
        out.push(Reference { line, module, path });
    }
    out
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        panic!("cannot read {}", dir.display());
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Check every file under `<root>/src`; returns the forbidden edges found, one line each.
fn check(root: &Path) -> Vec<String> {
    let table = allowed();
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    let sources: Vec<(PathBuf, String)> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
            (f.strip_prefix(root).unwrap_or(f).to_path_buf(), text)
        })
        .collect();
    let mut scanned = Vec::new();
    let mut test_paths = Vec::new();
    for (relative, text) in &sources {
        let (refs, tests) = scan_source(text, relative);
        scanned.push((relative, refs));
        test_paths.extend(tests);
    }
    let mut problems = Vec::new();
    let mut used = vec![false; EXCEPTIONS.len()];
    for (relative, refs) in scanned {
        if is_test_by_name(relative) || test_paths.iter().any(|t| relative.starts_with(t)) {
            continue;
        }
        let Some(from) = module_of(relative) else {
            continue;
        };
        let Some(may) = table.get(from.as_str()) else {
            problems.push(format!(
                "{}: module `{from}` has no row in ALLOWED (src/layers_tests.rs)",
                relative.display()
            ));
            continue;
        };
        let file = relative.to_string_lossy();
        for r in refs {
            let at = format!("{file}:{}", r.line);
            if r.module.is_empty() {
                problems.push(format!(
                    "{at}: grouped `crate::{{…}}` hides which modules it uses; write one `use \
                     crate::<module>::…` per module"
                ));
                continue;
            }
            if r.module == from || may.contains(r.module.as_str()) {
                continue;
            }
            if let Some(i) = EXCEPTIONS
                .iter()
                .position(|(f, p, _)| file.starts_with(f) && format!("{}::", r.path).starts_with(p))
            {
                used[i] = true;
                continue;
            }
            let why = if table.contains_key(r.module.as_str()) {
                let mut may: Vec<_> = may.iter().copied().collect();
                may.sort_unstable();
                if may.is_empty() {
                    format!("`{from}` may use nothing else in the crate")
                } else {
                    format!("`{from}` may use only: {}", may.join(", "))
                }
            } else {
                format!("`{}` has no row in ALLOWED", r.module)
            };
            problems.push(format!(
                "{at}: forbidden edge {from} -> {} (`{}`); {why}",
                r.module, r.path
            ));
        }
    }
    for (i, (f, p, _)) in EXCEPTIONS.iter().enumerate() {
        if !used[i] {
            problems.push(format!(
                "EXCEPTIONS entry ({f:?}, {p:?}) matches nothing any more: remove it"
            ));
        }
    }
    problems
}

#[test]
fn no_module_names_a_module_above_it() {
    let problems = check(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        problems.is_empty(),
        "{} forbidden module edge(s) (allowed edges: ALLOWED in src/layers_tests.rs):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_table_is_layered() {
    let table = allowed();
    // Every module named is a module with a row, and nothing lists itself.
    for (m, deps) in &table {
        for d in deps {
            assert!(table.contains_key(d), "{m} may use {d}, which has no row");
            assert_ne!(m, d, "{m} lists itself");
        }
    }
    // The brief's hard rules.
    assert!(table["model"].is_empty(), "model must name nothing");
    for (m, deps) in &table {
        assert!(!deps.contains("app"), "{m} may not use app");
    }
    let stages = ["inventory", "scan", "judge", "store"];
    for a in stages {
        for b in stages {
            assert!(!table[a].contains(b), "stage {a} may not use stage {b}");
        }
    }
    // No cycles: repeatedly peel off the modules whose dependencies are all peeled.
    let mut done: BTreeSet<&str> = BTreeSet::new();
    while done.len() < table.len() {
        let next: Vec<&str> = table
            .iter()
            .filter(|(m, deps)| !done.contains(*m) && deps.iter().all(|d| done.contains(d)))
            .map(|(m, _)| *m)
            .collect();
        assert!(
            !next.is_empty(),
            "ALLOWED has a cycle among {:?}",
            table
                .keys()
                .filter(|m| !done.contains(*m))
                .collect::<Vec<_>>()
        );
        done.extend(next);
    }
}

#[test]
fn every_top_level_module_has_a_row() {
    let table = allowed();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).unwrap_or_default();
    let declared: BTreeSet<String> = lib
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l
                .strip_prefix("pub(crate) ")
                .or_else(|| l.strip_prefix("pub "))
                .unwrap_or(l);
            let name = l.strip_prefix("mod ")?;
            Some(name.trim_end_matches([';', '{', ' ']).to_string())
        })
        .filter(|n| !n.ends_with("_tests"))
        .collect();
    let rows: BTreeSet<String> = table.keys().map(|m| m.to_string()).collect();
    assert_eq!(
        declared, rows,
        "the modules lib.rs declares and the rows of ALLOWED differ"
    );
}

#[test]
fn the_scanner_sees_code_and_skips_tests_and_comments() {
    let text = "\
//! See [`crate::app`].
use crate::model::Target; // crate::app in a comment
use crate::inventory::openstack::types::Server;
macro_rules! m { () => { $crate::app::x() } }
let s = \"// not a comment\"; let t = crate::store::Store::open;
pub use crate::{model, ports};

#[cfg(test)]
use crate::app::y;

#[cfg(test)]
#[path = \"other_tests.rs\"]
mod other;

#[cfg(test)]
pub(crate) mod testdata;

#[cfg(test)]
mod tests {
    use crate::app::z;
    fn f() {
    }
}
fn g() -> crate::judge::Verdict {}
";
    let (refs, tests) = scan_source(text, Path::new("src/x/y.rs"));
    let seen: Vec<(usize, &str)> = refs.iter().map(|r| (r.line, r.module.as_str())).collect();
    assert_eq!(
        seen,
        [
            (2, "model"),
            (3, "inventory"),
            (5, "store"),
            (6, ""),
            (24, "judge")
        ]
    );
    assert_eq!(refs[1].path, "crate::inventory::openstack::types::Server");
    assert_eq!(
        tests,
        [
            PathBuf::from("src/x/other_tests.rs"),
            PathBuf::from("src/x/y/testdata.rs"),
            PathBuf::from("src/x/y/testdata"),
        ]
    );
    assert_eq!(
        module_of(Path::new("src/judge/exposure.rs")).as_deref(),
        Some("judge")
    );
    assert_eq!(
        module_of(Path::new("src/state.rs")).as_deref(),
        Some("state")
    );
    assert_eq!(module_of(Path::new("src/lib.rs")), None);
    assert_eq!(child_dir(Path::new("src/a/mod.rs")), Path::new("src/a"));
    assert_eq!(child_dir(Path::new("src/a/b.rs")), Path::new("src/a/b"));
    assert!(is_test_by_name(Path::new("src/app/loop_tests.rs")));
    assert!(is_test_by_name(Path::new("src/scan/udp/tests.rs")));
    assert!(is_test_by_name(Path::new(
        "src/expose/vm_metrics/tests/x.rs"
    )));
    assert!(!is_test_by_name(Path::new("src/expose/testdata.rs")));
}
