//! Small pure helpers of the fake cloud: deterministic ids, loopback addresses and timestamps,
//! ISO 8601 times compared as strings, and in-place edits of JSON values.

use std::net::Ipv4Addr;

use serde_json::{json, Value};

pub(super) fn rewrite_strings(v: &mut Value, map: &[(&str, &str)]) {
    match v {
        Value::String(s) => {
            if let Some((_, to)) = map.iter().find(|(from, _)| s == from) {
                *s = (*to).to_string();
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rewrite_strings(x, map)),
        Value::Object(o) => o.values_mut().for_each(|x| rewrite_strings(x, map)),
        _ => {}
    }
}

pub(super) fn set_all(v: &mut Value, fields: &[(&str, Value)]) {
    if let Some(o) = v.as_object_mut() {
        for (k, val) in fields {
            o.insert((*k).to_string(), val.clone());
        }
    }
}

/// Removes `created_at` / `updated_at` from a Neutron resource and the rules inside it.
pub(super) fn strip_timestamps(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.remove("created_at");
        o.remove("updated_at");
        if let Some(rules) = o
            .get_mut("security_group_rules")
            .and_then(Value::as_array_mut)
        {
            rules.iter_mut().for_each(strip_timestamps);
        }
    }
}

/// A Neutron resource changed: new `updated_at`, next `revision_number`.
pub(super) fn touch_revision(v: &mut Value, now: &str) {
    let rev = v
        .get("revision_number")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        + 1;
    set_all(
        v,
        &[("updated_at", json!(now)), ("revision_number", json!(rev))],
    );
}

/// `YYYY-MM-DDTHH:MM:SS` of an ISO 8601 UTC time (`Z`, `+00:00`, a fraction or nothing after
/// it), so that times compare as strings; `None` for anything else.
pub(super) fn utc_seconds(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let shape = b.len() >= 19
        && b.iter().take(19).enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let rest = s.get(19..)?;
    let rest = match rest.strip_prefix('.') {
        Some(frac) => frac.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => rest,
    };
    matches!(rest, "" | "Z" | "+00:00").then(|| s[..19].to_string())
}

pub(super) fn generated_project(p: usize) -> String {
    format!("57170000{p:024x}")
}

/// `127.<second>.x.y` for the k-th address, host parts 1–254.
pub fn loopback_ip(second: u8, k: usize) -> Ipv4Addr {
    let host = (k % 254 + 1) as u8;
    let rest = k / 254;
    Ipv4Addr::new(
        127,
        second.saturating_add((rest / 256) as u8),
        (rest % 256) as u8,
        host,
    )
}

/// A deterministic UUID-shaped id: `kind` tells resources apart, `n` numbers them.
pub fn uuid(kind: u16, n: u64) -> String {
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        0x5717_0000u32 | u32::from(kind),
        (n >> 48) & 0xffff,
        (n >> 36) & 0xfff,
        (n >> 24) & 0xfff,
        n & 0xff_ffff_ffff
    )
}

pub(super) fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Unix seconds → `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub(super) fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}
