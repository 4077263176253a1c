//! The fake Nova's `servers` and `servers/detail`: query validation, `all_tenants` and project
//! scope, filters, `changes-since` (deleted servers after the live ones), `limit`/`marker` paging
//! with `servers_links`, and pages assembled from per-server JSON cached per shape.

use std::sync::Arc;

use serde_json::{json, Value};

use super::auth::Identity;
use super::cloud::Cloud;
use super::http::{absolute, nova_error, parse_query, truthy, Out};
use super::nova::render_server;
use super::server::Ctx;
use super::values::utc_seconds;

/// The query parameters Nova knows (from 2.75 on, others are a 400).
const NOVA_LIST_PARAMS: &[&str] = &[
    "all_tenants",
    "limit",
    "marker",
    "project_id",
    "tenant_id",
    "status",
    "name",
    "changes-since",
    "changes-before",
    "sort_key",
    "sort_dir",
    "deleted",
    "host",
    "ip",
    "ip6",
    "image",
    "flavor",
    "user_id",
    "reservation_id",
    "locked",
    "tags",
    "tags-any",
    "not-tags",
    "not-tags-any",
    "availability_zone",
    "config_drive",
    "key_name",
    "created_at",
    "description",
    "display_name",
];

#[allow(clippy::too_many_arguments)]
pub(super) fn list_servers(
    ctx: &Ctx,
    cloud: &Cloud,
    query: &str,
    id: &Identity,
    minor: u32,
    host: &str,
    path: &str,
    detail: bool,
) -> Out {
    let params = match parse_query(query) {
        Ok(p) => p,
        Err(e) => return nova_error(400, &e),
    };
    let get = |k: &str| {
        params
            .iter()
            .find(|(pk, _)| pk == k)
            .map(|(_, v)| v.as_str())
    };
    if minor >= 75 {
        if let Some((k, _)) = params
            .iter()
            .find(|(k, _)| !NOVA_LIST_PARAMS.contains(&k.as_str()))
        {
            return nova_error(
                400,
                &format!(
                    "Invalid input for query parameters {k}. Additional properties are not allowed"
                ),
            );
        }
    }
    let all_tenants = match get("all_tenants").map(truthy) {
        None => false,
        Some(Some(b)) => b,
        Some(None) => return nova_error(400, "Invalid input for query parameters all_tenants."),
    };
    if all_tenants && !id.admin {
        return nova_error(
            403,
            "Policy doesn't allow os_compute_api:servers:detail:get_all_tenants to be performed.",
        );
    }
    let limit = match get("limit") {
        None => ctx.max_limit,
        Some(l) => match l.parse::<usize>() {
            Ok(0) => ctx.max_limit,
            Ok(n) => n.min(ctx.max_limit),
            Err(_) => return nova_error(400, "limit param must be an integer"),
        },
    };
    let project_filter: Option<String> = if all_tenants {
        get("project_id").or(get("tenant_id")).map(str::to_string)
    } else {
        id.project_id.clone()
    };
    let status = get("status").map(str::to_ascii_uppercase);
    let name = get("name");
    let changes_since = match get("changes-since") {
        None => None,
        Some(v) => match utc_seconds(v) {
            Some(t) => Some(t),
            None => {
                return nova_error(
                    400,
                    &format!("Invalid input for query parameters changes-since. Value: {v}. '{v}' is not a 'date-time'"),
                )
            }
        },
    };
    let since_ok = |v: Option<&Value>| {
        changes_since.as_deref().is_none_or(|t| {
            v.and_then(|s| s.get("updated"))
                .and_then(Value::as_str)
                .and_then(utc_seconds)
                .is_some_and(|u| u.as_str() >= t)
        })
    };
    // Live servers (indices into `servers`), then, with changes-since, deleted ones (indices into
    // `deleted`, offset by the number of servers).
    let live = cloud.servers.len();
    let stored = |i: usize| {
        if i < live {
            cloud.servers.get(i)
        } else {
            cloud.deleted.get(i - live)
        }
    };
    let field = |i: usize, k: &str| -> &str {
        stored(i)
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    let dead = (live..live + cloud.deleted.len()).filter(|_| changes_since.is_some());
    let mut visible = cloud.order.iter().copied().chain(dead).filter(|&i| {
        project_filter
            .as_deref()
            .is_none_or(|p| field(i, "tenant_id") == p)
            && (i >= live || status.as_deref().is_none_or(|st| field(i, "status") == st))
            && name.is_none_or(|n| field(i, "name").contains(n))
            && since_ok(stored(i))
    });
    if let Some(marker) = get("marker") {
        if !visible.by_ref().any(|i| field(i, "id") == marker) {
            return nova_error(400, &format!("marker [{marker}] not found"));
        }
    }
    let page: Vec<usize> = visible.take(limit).collect();

    // Serialize each server once per shape and host; a page is then a concatenation.
    let bucket = SHAPE_THRESHOLDS.iter().filter(|t| **t <= minor).count();
    let generation = ctx.generation.load(std::sync::atomic::Ordering::SeqCst);
    let mut raw = b"{\"servers\":[".to_vec();
    {
        let Ok(mut cache) = ctx.render_cache.lock() else {
            return nova_error(500, "fake cloud render cache is poisoned");
        };
        if cache.generation != generation {
            cache.variants.clear();
            cache.generation = generation;
        }
        let slots = cache
            .variants
            .entry((bucket, id.admin, detail, host.to_string()))
            .or_insert_with(|| vec![None; cloud.servers.len()]);
        for (k, &i) in page.iter().enumerate() {
            if i >= live {
                let v =
                    stored(i).map(|s| render_server(&cloud.t, s, minor, id.admin, host, detail));
                if k > 0 {
                    raw.push(b',');
                }
                raw.extend_from_slice(
                    &serde_json::to_vec(&v.unwrap_or(Value::Null)).unwrap_or_default(),
                );
                continue;
            }
            let Some(slot) = slots.get_mut(i) else {
                continue;
            };
            let bytes = match slot {
                Some(b) => b.clone(),
                None => {
                    let v = cloud
                        .servers
                        .get(i)
                        .map(|s| render_server(&cloud.t, s, minor, id.admin, host, detail));
                    let b =
                        Arc::new(serde_json::to_vec(&v.unwrap_or(Value::Null)).unwrap_or_default());
                    *slot = Some(b.clone());
                    b
                }
            };
            if k > 0 {
                raw.push(b',');
            }
            raw.extend_from_slice(&bytes);
        }
    }
    raw.push(b']');
    if page.len() == limit {
        if let Some(&last) = page.last() {
            let mut next: Vec<(String, String)> = params
                .iter()
                .filter(|(k, _)| k != "marker")
                .cloned()
                .collect();
            next.push(("marker".into(), field(last, "id").to_string()));
            let links = json!([{"href": absolute(host, path, &next), "rel": "next"}]);
            raw.extend_from_slice(b",\"servers_links\":");
            raw.extend_from_slice(&serde_json::to_vec(&links).unwrap_or_default());
        }
    }
    raw.push(b'}');
    Out {
        raw: Some(raw),
        ..Out::ok(Value::Null, Some("servers"))
    }
}

/// Every microversion at which the server JSON changes shape (see `render_server`).
const SHAPE_THRESHOLDS: &[u32] = &[3, 9, 19, 26, 47, 63, 71, 73, 90, 96, 98, 100];
