//! The shipped Grafana dashboards are importable (datasource input and variable, no fixed id, stable
//! uids, current schema, unique panel ids), link to each other, and every PromQL expression in them
//! parses (real `promtool check rules`) and names only metrics the agent exports. No network, no agent.

use crate::util::repo;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use stinger_testsupport::promtool;

const DASHBOARDS: [(&str, &str); 2] = [
    ("dashboards/stinger-overview.json", "stinger-overview"),
    ("dashboards/stinger-vm.json", "stinger-vm"),
];

/// Where the agent's metric names are written down, as string literals.
const COLLECTORS: [&str; 2] = ["src/expose/metrics.rs", "src/expose/vm_metrics.rs"];

/// What Grafana puts in place of its built-in variables (plausible values, for parsing only).
const BUILTINS: [(&str, &str); 5] = [
    ("__rate_interval", "5m"),
    ("__interval", "1m"),
    ("__range", "6h"),
    ("__range_s", "21600"),
    ("__interval_ms", "60000"),
];

fn load(path: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not valid JSON: {e}"))
}

fn is_ds_variable(ds: &Value) -> bool {
    ds.get("type").and_then(Value::as_str) == Some("prometheus")
        && ds.get("uid").and_then(Value::as_str) == Some("${DS_PROMETHEUS}")
}

/// Every panel, rows' nested panels included.
fn panels(d: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(nested) = p.get("panels") {
                walk(nested, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&d["panels"], &mut out);
    out
}

fn variables(d: &Value) -> Vec<&Value> {
    d["templating"]["list"]
        .as_array()
        .map(|l| l.iter().collect())
        .unwrap_or_default()
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// A query variable's query: a string, or (newer editors) an object with a `query` string.
fn variable_query(v: &Value) -> &str {
    match v.get("query") {
        Some(Value::String(s)) => s,
        Some(q) => str_of(q, "query"),
        None => "",
    }
}

/// The series selector inside `label_values(<selector>, <label>)`, if there is one.
fn label_values_selector(query: &str) -> Option<&str> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, _label) = inner.rsplit_once(',')?;
    Some(selector.trim())
}

/// Plausible values for a dashboard's variables: a query variable's "All" value (a regex) or a
/// word, a custom variable's first option.
fn variable_values(d: &Value) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = BUILTINS
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for v in variables(d) {
        let value = match str_of(v, "type") {
            "custom" | "interval" => variable_query(v)
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            "query" => match str_of(v, "allValue") {
                "" => "example".to_string(),
                all => all.to_string(),
            },
            _ => "prometheus".to_string(),
        };
        values.insert(str_of(v, "name").to_string(), value);
    }
    values
}

/// Replace `$var`, `${var}` and `${var:format}` with the values; `$1` and the like (label_replace
/// references) stay. An unknown variable is an error.
fn substitute(expr: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| format!("unclosed ${{ in {expr}"))?;
            let inner = &braced[..end];
            (inner.split(':').next().unwrap_or(inner), end + 2)
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            out.push('$');
            rest = after;
            continue;
        }
        let value = values
            .get(name)
            .ok_or_else(|| format!("unknown variable ${name}"))?;
        out.push_str(value);
        rest = &after[consumed..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The string literals of a Rust source file that look like metric names.
fn name_literals(source: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut chars = source.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        match c {
            '/' if chars.peek().map(|&(_, n)| n) == Some('/') => {
                for (_, n) in chars.by_ref() {
                    if n == '\n' {
                        break;
                    }
                }
            }
            // A char literal such as '"' or '\''; lifetimes ('a) are left alone.
            '\'' => {
                let ahead: Vec<char> = chars.clone().take(3).map(|(_, c)| c).collect();
                if ahead.first() == Some(&'\\') && ahead.get(2) == Some(&'\'') {
                    chars.nth(2);
                } else if ahead.get(1) == Some(&'\'') {
                    chars.nth(1);
                }
            }
            '"' => {
                let mut lit = String::new();
                while let Some((_, n)) = chars.next() {
                    match n {
                        '\\' => {
                            chars.next();
                            lit.push('\\');
                        }
                        '"' => break,
                        n => lit.push(n),
                    }
                }
                if !lit.is_empty()
                    && lit.starts_with(|c: char| c.is_ascii_lowercase())
                    && lit
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                {
                    names.insert(lit);
                }
            }
            _ => {}
        }
    }
    names
}

/// Metric names the agent can export: `stinger_` + a registered name + an optional unit suffix +
/// an optional type suffix.
fn exportable(known: &BTreeSet<String>, metric: &str) -> bool {
    let Some(name) = metric.strip_prefix("stinger_") else {
        return false;
    };
    const UNITS: [&str; 3] = ["", "_seconds", "_bytes"];
    const TYPES: [&str; 6] = ["", "_total", "_bucket", "_sum", "_count", "_info"];
    UNITS.iter().any(|u| {
        TYPES.iter().any(|t| {
            name.strip_suffix(t)
                .and_then(|n| n.strip_suffix(u))
                .is_some_and(|base| known.contains(base))
        })
    })
}

/// The `stinger_*` metric names an expression uses.
fn stinger_metrics(expr: &str) -> Vec<&str> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = expr[from..].find("stinger_").map(|i| i + from) {
        let starts_token = i == 0 || {
            let b = bytes[i - 1];
            !(b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        };
        let end = expr[i..]
            .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
            .map_or(expr.len(), |e| e + i);
        if starts_token {
            out.push(&expr[i..end]);
        }
        from = end.max(i + 1);
    }
    out
}

/// One PromQL expression and where it comes from.
struct Expr {
    record: String,
    place: String,
    expr: String,
}

/// Every `url` string in the document.
fn urls(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("url", Value::String(s)) => out.push(s.clone()),
                    _ => urls(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| urls(v, out)),
        _ => {}
    }
}

/// Structure checks; the dashboard's expressions (substituted) are appended to `exprs`.
fn check_dashboard(path: &str, uid: &str, d: &Value, exprs: &mut Vec<Expr>) -> Vec<String> {
    let mut errors = Vec::new();
    let mut err = |m: String| errors.push(format!("{path}: {m}"));

    let inputs = d["__inputs"].as_array().cloned().unwrap_or_default();
    if !inputs.iter().any(|i| {
        str_of(i, "name") == "DS_PROMETHEUS"
            && str_of(i, "type") == "datasource"
            && str_of(i, "pluginId") == "prometheus"
    }) {
        err("__inputs has no DS_PROMETHEUS datasource input for prometheus".into());
    }
    if d.get("id") != Some(&Value::Null) {
        err(format!("id must be null, is {:?}", d.get("id")));
    }
    if str_of(d, "uid") != uid {
        err(format!("uid must be {uid:?}, is {:?}", d.get("uid")));
    }
    match d["schemaVersion"].as_u64() {
        Some(v) if v >= 39 => {}
        other => err(format!("schemaVersion must be 39 or later, is {other:?}")),
    }

    let vars = variables(d);
    if !vars.iter().any(|v| {
        str_of(v, "name") == "DS_PROMETHEUS"
            && str_of(v, "type") == "datasource"
            && variable_query(v) == "prometheus"
    }) {
        err("no DS_PROMETHEUS variable of type datasource, query prometheus".into());
    }
    let values = variable_values(d);
    let prefix = uid.replace('-', "_");
    for v in &vars {
        if str_of(v, "type") != "query" {
            continue;
        }
        let name = str_of(v, "name");
        if !is_ds_variable(&v["datasource"]) {
            err(format!(
                "variable {name}: datasource is {}, not the DS_PROMETHEUS variable",
                v["datasource"]
            ));
        }
        let query = variable_query(v);
        if !query.trim_start().starts_with("label_values(") {
            err(format!(
                "variable {name}: query {query:?} does not use label_values("
            ));
            continue;
        }
        if let Some(selector) = label_values_selector(query) {
            match substitute(selector, &values) {
                Ok(expr) => exprs.push(Expr {
                    record: format!("{prefix}:variable_{name}"),
                    place: format!("{path}, variable {name}"),
                    expr,
                }),
                Err(e) => err(format!("variable {name}: {e} in {query:?}")),
            }
        }
    }

    let mut ids = BTreeSet::new();
    for p in panels(d) {
        let title = str_of(p, "title");
        let Some(id) = p["id"].as_u64() else {
            err(format!("panel {title:?} has no numeric id"));
            continue;
        };
        let place = format!("panel {id} {title:?}");
        if !ids.insert(id) {
            err(format!("{place}: id {id} is not unique"));
        }
        let grid = &p["gridPos"];
        if grid["x"].as_u64().unwrap_or(99) + grid["w"].as_u64().unwrap_or(99) > 24 {
            err(format!("{place}: gridPos {grid} is wider than 24"));
        }
        if let Some(ds) = p.get("datasource") {
            if !is_ds_variable(ds) {
                err(format!("{place}: datasource is {ds}"));
            }
        }
        for t in p["targets"].as_array().into_iter().flatten() {
            let r = str_of(t, "refId");
            if !is_ds_variable(&t["datasource"]) {
                err(format!(
                    "{place}, target {r}: datasource is {}",
                    t["datasource"]
                ));
            }
            let expr = str_of(t, "expr");
            if expr.trim().is_empty() {
                err(format!("{place}, target {r}: no expr"));
                continue;
            }
            match substitute(expr, &values) {
                Ok(e) => exprs.push(Expr {
                    record: format!("{prefix}:panel_{id}_{r}"),
                    place: format!("{path}, {place}, target {r}"),
                    expr: e,
                }),
                Err(e) => err(format!("{place}, target {r}: {e} in {expr:?}")),
            }
        }
    }
    errors
}

/// `promtool check rules` on the expressions as recording rules (JSON is YAML).
fn promtool_check(exprs: &[&Expr]) -> Result<(), promtool::Failure> {
    let rules: Vec<Value> = exprs
        .iter()
        .map(|e| serde_json::json!({"record": e.record, "expr": e.expr}))
        .collect();
    let doc = serde_json::json!({"groups": [{"name": "dashboards", "rules": rules}]});
    promtool::check_rules_yaml(
        "dashboards.rules.yml",
        &serde_json::to_string_pretty(&doc).unwrap(),
    )
}

#[test]
fn dashboards_are_importable_and_their_queries_are_valid() {
    let mut errors = Vec::new();
    let mut exprs = Vec::new();
    let mut docs = BTreeMap::new();
    for (path, uid) in DASHBOARDS {
        let d = load(path);
        errors.extend(check_dashboard(path, uid, &d, &mut exprs));
        docs.insert(uid, d);
    }

    // The overview links to the VM dashboard, and such links set only the VM dashboard's variables.
    let vm_vars: BTreeSet<String> = variables(&docs["stinger-vm"])
        .iter()
        .map(|v| str_of(v, "name").to_string())
        .collect();
    for (uid, d) in &docs {
        let mut all = Vec::new();
        urls(d, &mut all);
        let to_vm: Vec<&String> = all.iter().filter(|u| u.contains("/d/stinger-vm")).collect();
        if *uid == "stinger-overview" && to_vm.is_empty() {
            errors.push("stinger-overview: no link to /d/stinger-vm".into());
        }
        for url in to_vm {
            let query = url.split_once('?').map_or("", |(_, q)| q);
            for param in query.split('&') {
                if let Some(var) = param.strip_prefix("var-") {
                    let name = var.split('=').next().unwrap_or(var);
                    if !vm_vars.contains(name) {
                        errors.push(format!(
                            "{uid}: link {url:?} sets var-{name}, not a variable of stinger-vm"
                        ));
                    }
                }
            }
        }
    }

    // Metric names: only what the collectors register.
    let mut known = BTreeSet::new();
    for path in COLLECTORS {
        let source = std::fs::read_to_string(repo().join(path)).unwrap();
        known.extend(name_literals(&source));
    }
    assert!(
        exportable(&known, "stinger_open_port_info")
            && exportable(&known, "stinger_vm_cpu_seconds_total")
            && !exportable(&known, "stinger_open_ports_info"),
        "metric names were not found in {COLLECTORS:?}"
    );
    for e in &exprs {
        for metric in stinger_metrics(&e.expr) {
            if !exportable(&known, metric) {
                errors.push(format!(
                    "{}: {metric} is not a metric the agent exports (names from {COLLECTORS:?}): {}",
                    e.place, e.expr
                ));
            }
        }
    }

    // Every expression parses. On failure, check them one by one to name the culprits.
    let all: Vec<&Expr> = exprs.iter().collect();
    if let Err(whole) = promtool_check(&all) {
        let mut named = false;
        for e in &exprs {
            if let Err(out) = promtool_check(&[e]) {
                named = true;
                errors.push(format!(
                    "{}: promtool rejects {:?}:\n{out}",
                    e.place, e.expr
                ));
            }
        }
        if !named {
            errors.push(format!("promtool check rules failed:\n{whole}"));
        }
    }
    assert!(
        exprs.len() > 40,
        "only {} expressions found in the dashboards",
        exprs.len()
    );
    assert!(
        errors.is_empty(),
        "{} problem(s) in the dashboards:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn substitution_keeps_label_replace_references_and_rejects_unknown_variables() {
    let values: BTreeMap<String, String> = [("vm", "abc"), ("window", "1h")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        substitute(
            r#"label_replace(rate(x{host=~"${vm:regex}/.*"}[$window]), "vm_id", "$1", "host", "(.*)")"#,
            &values
        )
        .unwrap(),
        r#"label_replace(rate(x{host=~"abc/.*"}[1h]), "vm_id", "$1", "host", "(.*)")"#
    );
    assert!(substitute("x{a=\"$nope\"}", &values).is_err());
    assert_eq!(
        stinger_metrics("sum(stinger_a_total) / d:stinger_b + stinger_c{x=\"stinger\"}"),
        ["stinger_a_total", "stinger_c"]
    );
}
