//! Acknowledging findings: `POST /api/v1/findings/{id}/ack` accepts a finding's risk until a time
//! (it stays listed but leaves the alerts), `DELETE /api/v1/findings/{id}/ack` withdraws that. The
//! API's only writes. They exist when the web config (`--web.config.file`) has `basic_auth_users`,
//! and the acting user is the one its middleware authenticated. Each change is written to the
//! store, then to the view, under the state's findings lock, so a pass and an ack never overwrite
//! each other, concurrent acks are serialised (the last one wins, both stay in the history), and a
//! failed write changes nothing.

use super::{detail, no_such_finding, path_id, Refusal};
use crate::expose::api::BadRequest;
use crate::expose::webconfig::AuthenticatedUser;
use crate::expose::Shared;
use crate::judge::findings as judge;
use crate::model::{now, AckSource, Finding, FindingState, UnixSeconds};
use crate::state::State as AppState;
use crate::store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::de::{Deserializer, Error as _, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// The largest acknowledgement body accepted (the router sets it as the route's body limit).
pub const ACK_BODY_LIMIT: usize = 16 * 1024;
/// The longest reason, in characters.
const MAX_REASON_CHARS: usize = 1000;

const BODY_FORM: &str =
    r#"a JSON object {"reason": "...", "expires": "2026-12-01T18:00:00Z"} and nothing else"#;
const REASON_FORM: &str =
    "a string of 1 to 1000 characters without control characters (no line breaks or tabs)";
const EXPIRES_FORM: &str = "an RFC 3339 timestamp with an offset (2026-12-01T18:00:00+01:00) or \
     a date (2026-12-01, meaning 00:00 UTC), later than now and at most [findings] max_ack ahead";

/// A valid acknowledgement request.
#[derive(Debug, PartialEq)]
pub(super) struct AckRequest {
    pub(super) reason: String,
    pub(super) expires: UnixSeconds,
}

/// A JSON object's members in order, repeated names included (a map would keep only one).
struct Members(Vec<(String, Value)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Members, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Members, A::Error> {
                let mut out = Vec::new();
                while let Some(member) = m.next_entry::<String, Value>()? {
                    if out.len() == 16 {
                        return Err(A::Error::custom("too many members"));
                    }
                    out.push(member);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

fn bad(field: &str, message: impl Into<String>, expected: &'static str) -> BadRequest {
    BadRequest {
        parameter: field.to_string(),
        message: message.into(),
        expected,
    }
}

/// Characters a reason may not hold: control characters (C0, DEL, C1) and the invisible marks
/// that reorder text, which would make a reason read differently in a log or a mail.
fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A date (`2026-12-01`, 00:00 UTC) or an RFC 3339 timestamp with an offset, as Unix seconds. A
/// date-time without an offset is refused: which zone it meant is unknown. (The same forms as a
/// configuration exception's `expires`.)
fn parse_expiry(s: &str) -> Option<UnixSeconds> {
    if s.contains(['T', 't', ' ']) {
        let ts: jiff::Timestamp = s.parse().ok()?;
        return Some(ts.as_duration().as_secs_f64());
    }
    let date: jiff::civil::Date = s.parse().ok()?;
    let ts = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(ts.as_second() as f64)
}

/// RFC 3339 for messages and logs (whole seconds, UTC).
pub(super) fn rfc3339(t: UnixSeconds) -> String {
    jiff::Timestamp::from_second(t.floor() as i64)
        .map_or_else(|_| format!("{t}"), |ts| ts.to_string())
}

/// A duration as the configuration writes it: `90d`, `12h`, `30m` or `45s`.
fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s > 0 && s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        _ if s > 0 && s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        _ if s > 0 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// Check an acknowledgement body at `now`, given the longest acknowledgement allowed.
pub(super) fn parse_ack(
    body: &[u8],
    now: UnixSeconds,
    max_ack: Duration,
) -> Result<AckRequest, BadRequest> {
    let members: Members = serde_json::from_slice(body)
        .map_err(|e| bad("body", format!("is not a JSON object: {e}"), BODY_FORM))?;
    let (mut reason, mut expires) = (None, None);
    for (name, value) in members.0 {
        let slot = match name.as_str() {
            "reason" => &mut reason,
            "expires" => &mut expires,
            _ => return Err(bad(&name, "unknown field", BODY_FORM)),
        };
        if slot.is_some() {
            return Err(bad(&name, "given more than once", BODY_FORM));
        }
        *slot = Some(value);
    }
    let reason = match reason {
        None => return Err(bad("reason", "is required", REASON_FORM)),
        Some(Value::String(r)) => r.trim().to_string(),
        Some(_) => return Err(bad("reason", "must be a string", REASON_FORM)),
    };
    if reason.is_empty() {
        return Err(bad("reason", "is empty", REASON_FORM));
    }
    let chars = reason.chars().count();
    if chars > MAX_REASON_CHARS {
        return Err(bad(
            "reason",
            format!("is {chars} characters long, more than {MAX_REASON_CHARS}"),
            REASON_FORM,
        ));
    }
    if let Some(c) = reason.chars().find(|c| forbidden(*c)) {
        return Err(bad(
            "reason",
            format!("holds the control character U+{:04X}", u32::from(c)),
            REASON_FORM,
        ));
    }
    let expires = match expires {
        None => return Err(bad("expires", "is required", EXPIRES_FORM)),
        Some(Value::String(e)) => e,
        Some(_) => return Err(bad("expires", "must be a string", EXPIRES_FORM)),
    };
    let Some(t) = parse_expiry(expires.trim()) else {
        return Err(bad(
            "expires",
            format!("{expires:?} is not a date or an RFC 3339 timestamp with an offset"),
            EXPIRES_FORM,
        ));
    };
    let latest = now + max_ack.as_secs_f64();
    if t <= now || t > latest {
        let what = if t <= now {
            "is not in the future"
        } else {
            "is too far ahead"
        };
        return Err(bad(
            "expires",
            format!(
                "{} {what}: allowed is after now ({}) and up to {} ([findings] max_ack = {})",
                rfc3339(t),
                rfc3339(now),
                rfc3339(latest),
                duration(max_ack)
            ),
            EXPIRES_FORM,
        ));
    }
    Ok(AckRequest { reason, expires: t })
}

/// Without users there is nobody to act as: the writes are off, and the answer says how to turn
/// them on.
fn writes_disabled() -> Refusal {
    let body = json!({
        "error": "acknowledging findings is disabled: it needs authenticated users. Give stinger \
                  --web.config.file (or [web] config_file) naming an exporter-toolkit web config \
                  whose basic_auth_users lists users with bcrypt password hashes, then send the \
                  request with HTTP basic auth as one of them",
        "flag": "--web.config.file",
        "key": "basic_auth_users",
    });
    Refusal::Other(StatusCode::FORBIDDEN, body)
}

fn conflict(message: String) -> Refusal {
    Refusal::Other(StatusCode::CONFLICT, json!({ "error": message }))
}

fn store_failed(e: &store::Error) -> Refusal {
    let body = json!({
        "error": format!("the store could not save the change: {e}; nothing changed, try again"),
    });
    Refusal::Other(StatusCode::SERVICE_UNAVAILABLE, body)
}

/// The authenticated user, if the web config has users (`None`: writes are off).
fn acting_user(user: Option<Extension<AuthenticatedUser>>) -> Option<String> {
    user.and_then(|Extension(AuthenticatedUser(u))| u)
}

/// `Content-Type: application/json` (parameters such as `charset` allowed). Required, so that a
/// browser cannot be made to send an acknowledgement cross-site without a CORS preflight.
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
}

/// The request body, or the JSON error that says why it cannot be read.
fn body_of(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<Bytes, Refusal> {
    if !is_json(headers) {
        let body = json!({
            "error": "the body must be JSON: send Content-Type: application/json",
            "parameter": "Content-Type",
            "expected": "application/json",
        });
        return Err(Refusal::Other(StatusCode::UNSUPPORTED_MEDIA_TYPE, body));
    }
    match body {
        Ok(b) => Ok(b),
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let body = json!({
                "error": format!("the body is larger than {ACK_BODY_LIMIT} bytes"),
                "parameter": "body",
                "expected": BODY_FORM,
            });
            Err(Refusal::Other(StatusCode::PAYLOAD_TOO_LARGE, body))
        }
        Err(e) => Err(bad(
            "body",
            format!("cannot be read: {}", e.body_text()),
            BODY_FORM,
        )
        .into()),
    }
}

/// Change one finding under the findings lock: `decide` turns the current record into the new one
/// (or refuses), `write` stores it, and only then does the view get it. Returns (before, after).
pub(super) async fn change<W, Fut>(
    state: &AppState,
    id: &str,
    decide: impl FnOnce(&Finding) -> Result<Finding, Refusal>,
    write: W,
) -> Result<(Finding, Finding), Refusal>
where
    W: FnOnce(Finding) -> Fut,
    Fut: Future<Output = Result<(), store::Error>>,
{
    let _lock = state.lock_findings().await;
    let current = state.read().findings.get(id).cloned();
    let Some(current) = current else {
        return Err(no_such_finding(id));
    };
    let next = decide(&current)?;
    if let Err(e) = write(next.clone()).await {
        tracing::error!(error = %e, finding = %id, "cannot store an acknowledgement change; nothing changed");
        return Err(store_failed(&e));
    }
    state.write().findings.insert(next.id.clone(), next.clone());
    // The agent wakes to enforce this ack's expiry.
    state.notify_findings();
    Ok((current, next))
}

/// Store one finding (one synced batch).
async fn put(store: store::Store, f: Finding) -> Result<(), store::Error> {
    store::blocking(&store, move |s| s.put_findings(std::slice::from_ref(&f))).await
}

/// `POST /api/v1/findings/{id}/ack`.
pub async fn ack(
    State(s): State<Arc<Shared>>,
    user: Option<Extension<AuthenticatedUser>>,
    id: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    acknowledge(&s, user, id, &headers, body)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn acknowledge(
    s: &Shared,
    user: Option<Extension<AuthenticatedUser>>,
    id: Result<Path<String>, PathRejection>,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, Refusal> {
    let by = acting_user(user).ok_or_else(writes_disabled)?;
    let id = path_id(id)?;
    let body = body_of(headers, body)?;
    let max_ack = s.state.read().max_ack;
    let req = parse_ack(&body, now(), max_ack)?;
    let decide = |f: &Finding| {
        if f.state == FindingState::Resolved {
            return Err(conflict(format!(
                "finding {id} is resolved{}: it does not alert, so there is nothing to acknowledge \
                 (seen again, it reopens as a new occurrence, which can be)",
                f.resolved_at
                    .map(|t| format!(" since {}", rfc3339(t)))
                    .unwrap_or_default()
            )));
        }
        Ok(judge::ack(f, &by, &req.reason, req.expires, now()))
    };
    let store = s.store.clone();
    let (before, after) = change(&s.state, &id, decide, |f| put(store, f)).await?;
    tracing::info!(
        user = %by,
        finding = %id,
        expires = %rfc3339(req.expires),
        replaced = before.ack.as_ref().map_or("-", |a| a.by.as_str()),
        reason = %req.reason,
        "finding acknowledged"
    );
    Ok(detail(&after))
}

/// `DELETE /api/v1/findings/{id}/ack`.
pub async fn unack(
    State(s): State<Arc<Shared>>,
    user: Option<Extension<AuthenticatedUser>>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    withdraw(&s, user, id)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn withdraw(
    s: &Shared,
    user: Option<Extension<AuthenticatedUser>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, Refusal> {
    let by = acting_user(user).ok_or_else(writes_disabled)?;
    let id = path_id(id)?;
    let none = || conflict(format!("finding {id} has no acknowledgement to withdraw"));
    let decide = |f: &Finding| match &f.ack {
        None => Err(none()),
        Some(a) if a.source == AckSource::Config => Err(conflict(format!(
            "finding {id} is acknowledged by the configuration exception {:?}; change or remove \
             that [[policy.exceptions]] entry and reload the configuration to withdraw it",
            a.by
        ))),
        Some(_) => judge::unack(f, &by, now()).ok_or_else(none),
    };
    let store = s.store.clone();
    let (before, after) = change(&s.state, &id, decide, |f| put(store, f)).await?;
    let old = before.ack.as_ref();
    tracing::info!(
        user = %by,
        finding = %id,
        acknowledged_by = old.map_or("-", |a| a.by.as_str()),
        expires = %old.map_or_else(|| "-".to_string(), |a| rfc3339(a.expires)),
        "finding acknowledgement withdrawn"
    );
    Ok(detail(&after))
}
