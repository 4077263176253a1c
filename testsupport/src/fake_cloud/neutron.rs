//! The fake Neutron: the version document, `/v2.0/extensions`, and the collections (ports,
//! floating IPs, networks, security groups, security-group rules) listed with filters,
//! `changed_since`, `fields` and `limit`/`marker` paging, or fetched one by one.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::auth::{authenticate, Identity};
use super::cloud::Cloud;
use super::http::{absolute, neutron_error, parse_query, truthy, Out};
use super::server::Ctx;
use super::values::{strip_timestamps, utc_seconds};

/// Every request to the network service.
pub(super) async fn neutron(
    ctx: &Ctx,
    path: &str,
    query: &str,
    token: Option<&str>,
    host: &str,
) -> Out {
    if path == "/" {
        return Out::ok(
            json!({"versions": [{"id": "v2.0", "status": "CURRENT",
                   "links": [{"href": format!("http://{host}/v2.0/"), "rel": "self"}]}]}),
            Some("versions"),
        );
    }
    let identity = match authenticate(ctx, token).await {
        Ok(i) => i,
        Err(out) => return out,
    };
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let strip = |s: &str| s.strip_suffix(".json").unwrap_or(s).to_string();
    let Ok(cloud) = ctx.cloud.read() else {
        return neutron_error(500, "fake cloud state is poisoned");
    };
    match segs.as_slice() {
        ["v2.0", "extensions"] => {
            let mut ext = vec![
                json!({"alias": "security-group", "name": "security-group"}),
                json!({"alias": "router", "name": "Neutron L3 Router"}),
                json!({"alias": "sorting", "name": "Sorting support"}),
            ];
            if ctx.neutron_pagination {
                ext.push(json!({"alias": "pagination", "name": "Pagination support"}));
            }
            if ctx.neutron_timestamps {
                ext.push(json!({"alias": "standard-attr-timestamp",
                                "name": "Resource timestamps"}));
            }
            Out::ok(json!({"extensions": ext}), Some("extensions"))
        }
        ["v2.0", coll] if strip(coll) == "security-group-rules" => {
            let rules: BTreeMap<String, Value> = cloud
                .security_groups
                .values()
                .filter_map(|g| g.get("security_group_rules")?.as_array())
                .flatten()
                .filter_map(|r| Some((r.get("id")?.as_str()?.to_string(), r.clone())))
                .collect();
            list_neutron(
                ctx,
                &rules,
                "security_group_rules",
                query,
                &identity,
                host,
                path,
            )
        }
        ["v2.0", coll] => {
            let coll = strip(coll);
            match collection(&cloud, &coll) {
                Some((items, key, _)) => {
                    list_neutron(ctx, items, key, query, &identity, host, path)
                }
                None => neutron_error(404, "The resource could not be found."),
            }
        }
        ["v2.0", coll, rid] => {
            let coll = strip(coll);
            let rid = strip(rid);
            match collection(&cloud, &coll) {
                Some((items, _, single)) => {
                    match items.get(&rid).filter(|v| neutron_visible(v, &identity)) {
                        Some(v) => Out::ok(json!({ single: v }), Some(single)),
                        None => neutron_error(404, &format!("{single} {rid} could not be found.")),
                    }
                }
                None => neutron_error(404, "The resource could not be found."),
            }
        }
        _ => neutron_error(404, "The resource could not be found."),
    }
}

fn collection<'a>(
    cloud: &'a Cloud,
    name: &str,
) -> Option<(&'a BTreeMap<String, Value>, &'static str, &'static str)> {
    match name {
        "ports" => Some((&cloud.ports, "ports", "port")),
        "floatingips" => Some((&cloud.floatingips, "floatingips", "floatingip")),
        "networks" => Some((&cloud.networks, "networks", "network")),
        "security-groups" => Some((&cloud.security_groups, "security_groups", "security_group")),
        _ => None,
    }
}

fn neutron_visible(v: &Value, id: &Identity) -> bool {
    if id.admin {
        return true;
    }
    let Some(p) = &id.project_id else {
        return true;
    };
    v.get("project_id").and_then(Value::as_str) == Some(p.as_str())
        || v.get("shared").and_then(Value::as_bool) == Some(true)
}

fn field_matches(v: Option<&Value>, wanted: &str) -> bool {
    match v {
        Some(Value::String(s)) => s == wanted,
        Some(Value::Bool(b)) => truthy(wanted) == Some(*b),
        Some(Value::Number(n)) => n.to_string() == wanted,
        Some(Value::Null) | None => wanted.is_empty(),
        Some(_) => false,
    }
}

const NEUTRON_RESERVED: &[&str] = &[
    "changed_since",
    "limit",
    "marker",
    "page_reverse",
    "fields",
    "sort_key",
    "sort_dir",
];

fn list_neutron(
    ctx: &Ctx,
    items: &BTreeMap<String, Value>,
    key: &'static str,
    query: &str,
    id: &Identity,
    host: &str,
    path: &str,
) -> Out {
    let params = match parse_query(query) {
        Ok(p) => p,
        Err(e) => return neutron_error(400, &e),
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    };
    let mut filters: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (k, v) in &params {
        if NEUTRON_RESERVED.contains(&k.as_str()) {
            continue;
        }
        let k = if k == "tenant_id" {
            "project_id"
        } else {
            k.as_str()
        };
        filters.entry(k.to_string()).or_default().push(v.as_str());
    }
    let changed_since = match get("changed_since") {
        None => None,
        Some(_) if !ctx.neutron_timestamps => {
            return neutron_error(400, "[changed_since] is invalid filter")
        }
        Some(v) => match utc_seconds(v) {
            Some(t) => Some(t),
            None => {
                return neutron_error(
                    400,
                    &format!(
                        "The given changed_since parameter {v:?} is not a valid timestamp; use \
                         YYYY-MM-DDTHH:MM:SSZ"
                    ),
                )
            }
        },
    };
    let fields: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "fields")
        .map(|(_, v)| v.as_str())
        .collect();
    let (limit, marker) = if ctx.neutron_pagination {
        let asked = match get("limit") {
            None => None,
            Some(l) => match l.parse::<i64>() {
                Ok(n) if n > 0 => Some(n as usize),
                Ok(_) => None,
                Err(_) => {
                    return neutron_error(
                        400,
                        &format!("Bad limit request: limit {l:?} is not an integer."),
                    )
                }
            },
        };
        let limit = match (asked, ctx.neutron_max_limit) {
            (Some(a), Some(m)) => Some(a.min(m)),
            (a, m) => a.or(m),
        };
        (limit, get("marker"))
    } else {
        (None, None)
    };
    let range: Box<dyn Iterator<Item = (&String, &Value)>> = match marker {
        Some(m) => {
            if !items.contains_key(m) {
                return neutron_error(400, &format!("Bad request: marker {m} could not be found."));
            }
            Box::new(
                items.range::<str, _>((std::ops::Bound::Excluded(m), std::ops::Bound::Unbounded)),
            )
        }
        None => Box::new(items.iter()),
    };
    let matching = range.map(|(_, v)| v).filter(|v| {
        changed_since.as_deref().is_none_or(|since| {
            v.get("updated_at")
                .and_then(Value::as_str)
                .and_then(utc_seconds)
                .is_some_and(|u| u.as_str() >= since)
        }) && neutron_visible(v, id)
            && filters
                .iter()
                .all(|(k, wanted)| wanted.iter().any(|w| field_matches(v.get(k.as_str()), w)))
    });
    let page: Vec<Value> = match limit {
        Some(l) => matching.take(l).cloned().collect(),
        None => matching.cloned().collect(),
    };
    let ids: Vec<String> = page
        .iter()
        .filter_map(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
        .collect();
    let mut page = page;
    if !ctx.neutron_timestamps {
        // No timestamp plugin: Neutron has no created_at / updated_at to show.
        for v in &mut page {
            strip_timestamps(v);
        }
    }
    let page: Vec<Value> = if fields.is_empty() {
        page
    } else {
        page.into_iter()
            .map(|v| {
                let kept: Map<String, Value> = v
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .filter(|(k, _)| fields.contains(&k.as_str()))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                Value::Object(kept)
            })
            .collect()
    };
    let mut body = Map::new();
    let n = page.len();
    body.insert(key.to_string(), Value::Array(page));
    if let Some(l) = limit {
        let mut links = Vec::new();
        let others: Vec<(String, String)> = params
            .iter()
            .filter(|(k, _)| k != "marker" && k != "page_reverse")
            .cloned()
            .collect();
        if n == l {
            if let Some(last) = ids.last() {
                let mut q = others.clone();
                q.push(("marker".into(), last.clone()));
                links.push(json!({"href": absolute(host, path, &q), "rel": "next"}));
            }
        }
        if marker.is_some() {
            if let Some(first) = ids.first() {
                let mut q = others;
                q.push(("marker".into(), first.clone()));
                q.push(("page_reverse".into(), "True".into()));
                links.push(json!({"href": absolute(host, path, &q), "rel": "previous"}));
            }
        }
        if !links.is_empty() {
            body.insert(format!("{key}_links"), Value::Array(links));
        }
    }
    Out::ok(Value::Object(body), Some(key))
}
