//! The fake Nova: version documents, microversion negotiation (echoed with `Vary`), one server
//! rendered for a microversion and a role, `servers/{id}` and `servers/{id}/diagnostics`. The
//! server lists are in `nova_list`.

use axum::http::HeaderMap;
use serde_json::{json, Value};

use super::auth::{authenticate, Identity};
use super::cloud::Cloud;
use super::http::{header, nova_error, Out};
use super::nova_list::list_servers;
use super::samples::{Templates, ADMIN_ONLY};
use super::server::Ctx;
use super::spec::DiagnosticsReply;

/// Nova's microversion range (minor numbers of 2.N).
pub const NOVA_MIN_MINOR: u32 = 1;
pub const NOVA_MAX_MINOR: u32 = 104;

/// Fields that appear from a microversion on (minor number).
const GATED: &[(&str, u32)] = &[
    ("locked", 9),
    ("description", 19),
    ("tags", 26),
    ("trusted_image_certificates", 63),
    ("server_groups", 71),
    ("locked_reason", 73),
    ("pinned_availability_zone", 96),
    ("scheduler_hints", 100),
];

/// The negotiated minor version, or the error reply.
fn microversion(headers: &HeaderMap) -> Result<u32, Out> {
    let parse = |v: &str| -> Result<u32, Out> {
        let v = v.trim();
        if v.eq_ignore_ascii_case("latest") {
            return Ok(NOVA_MAX_MINOR);
        }
        let parsed = v
            .split_once('.')
            .and_then(|(ma, mi)| Some((ma.parse::<u32>().ok()?, mi.parse::<u32>().ok()?)));
        let Some((major, minor)) = parsed else {
            return Err(nova_error(
                400,
                &format!("API Version String {v} is of invalid format. Must be of format MajorNum.MinorNum."),
            ));
        };
        if major != 2 || !(NOVA_MIN_MINOR..=NOVA_MAX_MINOR).contains(&minor) {
            return Err(nova_error(
                406,
                &format!("Version {major}.{minor} is not supported by the API. Minimum is 2.{NOVA_MIN_MINOR} and maximum is 2.{NOVA_MAX_MINOR}."),
            ));
        }
        Ok(minor)
    };
    for v in headers.get_all("openstack-api-version") {
        let Ok(v) = v.to_str() else { continue };
        for part in v.split(',') {
            let mut it = part.split_whitespace();
            if let (Some(svc), Some(ver)) = (it.next(), it.next()) {
                if svc.eq_ignore_ascii_case("compute") {
                    return parse(ver);
                }
            }
        }
    }
    if let Some(v) = header(headers, "x-openstack-nova-api-version") {
        return parse(&v);
    }
    Ok(1)
}

/// A stored server as a client at `minor` sees it (`detail`: the full form, else id, name and
/// links).
pub(super) fn render_server(
    t: &Templates,
    stored: &Value,
    minor: u32,
    admin: bool,
    host: &str,
    detail: bool,
) -> Value {
    let id = stored
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let links = json!([
        {"href": format!("http://{host}/v2.1/servers/{id}"), "rel": "self"},
        {"href": format!("http://{host}/servers/{id}"), "rel": "bookmark"},
    ]);
    if !detail {
        return json!({"id": id, "name": stored.get("name").cloned().unwrap_or(Value::Null), "links": links});
    }
    let mut v = stored.clone();
    if let Some(o) = v.as_object_mut() {
        for (k, since) in GATED {
            if minor < *since {
                o.remove(*k);
            }
        }
        if !admin {
            for k in ADMIN_ONLY {
                o.remove(*k);
            }
        }
        if !(minor >= 90 || (admin && minor >= 3)) {
            o.remove("OS-EXT-SRV-ATTR:hostname");
        }
        if minor < 47 {
            o.insert("flavor".into(), t.flavor_v21.clone());
        }
        if minor < 98 {
            if let Some(img) = o.get_mut("image").and_then(Value::as_object_mut) {
                img.remove("properties");
            }
        }
        o.insert("links".into(), links);
    }
    v
}

/// Every request to the compute service.
pub(super) async fn nova(
    ctx: &Ctx,
    path: &str,
    query: &str,
    token: Option<&str>,
    headers: &HeaderMap,
    host: &str,
) -> Out {
    let doc = |pick: fn(&Templates) -> &Value| -> Option<Value> {
        ctx.cloud.read().ok().map(|c| {
            let mut v = pick(&c.t).clone();
            rehost(&mut v, host);
            v
        })
    };
    match path {
        "/" => {
            let Some(v) = doc(|t| &t.versions) else {
                return nova_error(500, "fake cloud state is poisoned");
            };
            return Out {
                status: 300,
                ..Out::ok(v, Some("versions"))
            };
        }
        "/v2.1" | "/v2.1/" => {
            let Some(v) = doc(|t| &t.version_v21) else {
                return nova_error(500, "fake cloud state is poisoned");
            };
            return Out::ok(v, Some("version"));
        }
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/v2.1/") else {
        return nova_error(404, "The resource could not be found.");
    };
    let identity = match authenticate(ctx, token).await {
        Ok(i) => i,
        Err(out) => return out,
    };
    let minor = match microversion(headers) {
        Ok(m) => m,
        Err(out) => return out,
    };
    let mut out = nova_route(ctx, rest, query, &identity, minor, host);
    out.headers
        .push(("openstack-api-version", format!("compute 2.{minor}")));
    out.headers
        .push(("x-openstack-nova-api-version", format!("2.{minor}")));
    out.headers.push((
        "vary",
        "OpenStack-API-Version, X-OpenStack-Nova-API-Version".to_string(),
    ));
    out
}

fn rehost(v: &mut Value, host: &str) {
    match v {
        Value::String(s) if s.starts_with("http://openstack.example.com") => {
            *s = s.replacen("openstack.example.com", host, 1);
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rehost(x, host)),
        Value::Object(o) => o.values_mut().for_each(|x| rehost(x, host)),
        _ => {}
    }
}

fn nova_route(ctx: &Ctx, rest: &str, query: &str, id: &Identity, minor: u32, host: &str) -> Out {
    let mut segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    // A catalog URL may carry the project id: /v2.1/{project_id}/servers/...
    if segs.len() >= 2 && segs[0] != "servers" && segs[1] == "servers" {
        segs.remove(0);
    }
    let Ok(cloud) = ctx.cloud.read() else {
        return nova_error(500, "fake cloud state is poisoned");
    };
    let base_path = format!("/v2.1/{rest}");
    match segs.as_slice() {
        ["servers", "detail"] => {
            list_servers(ctx, &cloud, query, id, minor, host, &base_path, true)
        }
        ["servers"] => list_servers(ctx, &cloud, query, id, minor, host, &base_path, false),
        ["servers", sid] => match visible_server(&cloud, sid, id) {
            Some(s) => Out::ok(
                json!({"server": render_server(&cloud.t, s, minor, id.admin, host, true)}),
                Some("server"),
            ),
            None => nova_error(404, &format!("Instance {sid} could not be found.")),
        },
        ["servers", sid, "diagnostics"] => diagnostics(&cloud, sid, id, minor),
        _ => nova_error(404, "The resource could not be found."),
    }
}

fn visible_server<'a>(cloud: &'a Cloud, sid: &str, id: &Identity) -> Option<&'a Value> {
    let s = cloud
        .server_index
        .get(sid)
        .and_then(|&i| cloud.servers.get(i))?;
    let project = s.get("tenant_id").and_then(Value::as_str);
    match (&id.project_id, id.admin) {
        (_, true) | (None, _) => Some(s),
        (Some(p), false) => (project == Some(p.as_str())).then_some(s),
    }
}

fn diagnostics(cloud: &Cloud, sid: &str, id: &Identity, minor: u32) -> Out {
    let Some(s) = visible_server(cloud, sid, id) else {
        return nova_error(404, &format!("Instance {sid} could not be found."));
    };
    if !id.admin {
        return nova_error(
            403,
            "Policy doesn't allow os_compute_api:os-server-diagnostics to be performed.",
        );
    }
    match cloud
        .diagnostics
        .get(sid)
        .unwrap_or(&DiagnosticsReply::Fixture)
    {
        DiagnosticsReply::Status(code) => {
            let msg = match code {
                409 => format!(
                    "Cannot 'get_diagnostics' instance {sid} while it is in vm_state stopped"
                ),
                501 => "Action get_diagnostics is not implemented by the virt driver".to_string(),
                _ => format!("diagnostics of {sid} refused (injected)"),
            };
            nova_error(*code, &msg)
        }
        DiagnosticsReply::Body(v) => Out::ok(v.clone(), None),
        DiagnosticsReply::Fixture => {
            if s.get("status").and_then(Value::as_str) != Some("ACTIVE") {
                let state = s
                    .get("OS-EXT-STS:vm_state")
                    .and_then(Value::as_str)
                    .unwrap_or("?");
                return nova_error(
                    409,
                    &format!(
                        "Cannot 'get_diagnostics' instance {sid} while it is in vm_state {state}"
                    ),
                );
            }
            if minor >= 48 {
                Out::ok(cloud.t.diag_standard.clone(), None)
            } else {
                Out::ok(cloud.t.diag_legacy.clone(), None)
            }
        }
    }
}
