//! Every PromQL expression of the Grafana dashboards in `dashboards/*.json`, run against the live
//! Prometheus with the dashboard's variables set to values that exist there.

use super::stack::Stack;
use crate::util::repo;
use serde_json::Value;
use std::collections::BTreeMap;

/// Every `expr` under `v` (panels, nested rows, targets), with the title of its panel.
fn exprs(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(m) => {
            let title = m.get("title").and_then(Value::as_str).unwrap_or(title);
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", Value::String(e)) if !e.trim().is_empty() => {
                        out.push((title.to_owned(), e.clone()))
                    }
                    ("templating", _) => {}
                    _ => exprs(x, title, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| exprs(x, title, out)),
        _ => {}
    }
}

/// Replaces `$name`, `${name}`, `${name:format}` and `[[name]]` with the values in `vars`;
/// unknown names are left as they are.
pub fn substitute(expr: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(i) = rest.find(['$', '[']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let ident = |s: &str| {
            s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(s.len())
        };
        let (name, len) = if let Some(t) = tail.strip_prefix("${") {
            match t.find('}') {
                Some(end) => (t[..end].split(':').next().unwrap_or(""), end + 3),
                None => ("", 1),
            }
        } else if let Some(t) = tail.strip_prefix("[[") {
            match t.find("]]") {
                Some(end) => (t[..end].split(':').next().unwrap_or(""), end + 4),
                None => ("", 1),
            }
        } else if let Some(t) = tail.strip_prefix('$') {
            let n = ident(t);
            (&t[..n], n + 1)
        } else {
            ("", 1)
        };
        match vars.get(name) {
            Some(v) if !name.is_empty() => out.push_str(v),
            _ => out.push_str(&tail[..len]),
        }
        rest = &tail[len..];
    }
    out.push_str(rest);
    out
}

/// A value for each template variable of `dash`, in their order (later ones may use earlier
/// ones): query variables take the first value Prometheus has for their label; custom and
/// interval ones a short duration (their own values are hours and days).
fn variables(
    stack: &Stack,
    dash: &Value,
    mut vars: BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    for v in dash["templating"]["list"].as_array().into_iter().flatten() {
        let Some(name) = v["name"].as_str() else {
            continue;
        };
        let query = match &v["query"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => o
                .get("query")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            _ => String::new(),
        };
        let value = match v["type"].as_str().unwrap_or("") {
            "query" => {
                let q = substitute(&query, &vars);
                let args = q
                    .trim()
                    .strip_prefix("label_values(")
                    .and_then(|a| a.strip_suffix(')'))
                    .unwrap_or_else(|| panic!("variable {name}: unsupported query {q:?}"));
                let (selector, label) = match args.rsplit_once(',') {
                    Some((s, l)) => (Some(s.trim()), l.trim()),
                    None => (None, args.trim()),
                };
                let values = stack.label_values(label, selector);
                values
                    .into_iter()
                    .next()
                    .unwrap_or_else(|| panic!("variable {name}: {q} has no value in Prometheus"))
            }
            "custom" | "interval" => "1m".to_owned(),
            "constant" | "textbox" => query,
            _ => continue,
        };
        vars.insert(name.to_owned(), value);
    }
    vars
}

/// Runs every expression of every dashboard over the time since `start`; returns
/// (file, panel, expression as run) of those that returned no data, and how many ran.
pub fn check(stack: &Stack, start: f64) -> (Vec<(String, String, String)>, usize) {
    let range = format!("{}s", (super::stack::now() - start).ceil() as u64);
    let builtins: BTreeMap<String, String> = [
        ("__rate_interval", "4s"),
        ("__interval", "1s"),
        ("__range", range.as_str()),
        ("__range_s", range.trim_end_matches('s')),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut files: Vec<_> = std::fs::read_dir(repo().join("dashboards"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards/*.json");
    let mut empty = Vec::new();
    let mut ran = 0;
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap();
        let dash: Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        // Dashboards exported for import nest the dashboard under "dashboard".
        let dash = if dash.get("dashboard").is_some() {
            dash["dashboard"].clone()
        } else {
            dash
        };
        let vars = variables(stack, &dash, builtins.clone());
        let mut list = Vec::new();
        exprs(&dash["panels"], "", &mut list);
        exprs(&dash["rows"], "", &mut list);
        for (title, e) in list {
            let q = substitute(&e, &vars);
            ran += 1;
            let result = stack.query_range(&q, start);
            let points = result
                .iter()
                .map(|s| s["values"].as_array().map_or(0, Vec::len))
                .sum::<usize>();
            if points == 0 {
                empty.push((name.clone(), title, q));
            }
        }
    }
    (empty, ran)
}

#[test]
fn dashboard_variables_are_substituted() {
    let vars: BTreeMap<String, String> = [("instance", "a:1"), ("vm", "web"), ("window", "1m")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(
        substitute(
            r#"rate(x{instance=~"$instance",vm="${vm}",v="[[vm]]",id="$vm_id"}[$window]) [5m]"#,
            &vars
        ),
        r#"rate(x{instance=~"a:1",vm="web",v="web",id="$vm_id"}[1m]) [5m]"#
    );
    assert_eq!(substitute("${vm:regex} $", &vars), "web $");
}
