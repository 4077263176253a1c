//! Acknowledging and withdrawing: 403 without users (no web config, or one without
//! `basic_auth_users`), 401 without credentials, each validation error naming its field, 404s and
//! 409s, write-through to the store, concurrent acks, and a failed store write changing nothing.

use super::*;
use crate::expose::api::findings::ack::{change, parse_ack, AckRequest};

#[tokio::test]
async fn writes_are_forbidden_without_users_and_say_how_to_enable_them() {
    let headers = "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n";
    for web in [Web::Plain, Web::Config(headers.to_string())] {
        let api = serve(web).await;
        let ack = json!({"reason": "known", "expires": rfc3339_in(DAY)});
        for (status, body) in [
            api.post_ack(CRIT, "Basic eDp5", &ack).await,
            api.delete_ack(HIGH_VM, "Basic eDp5").await,
        ] {
            assert_eq!(status, 403, "{body}");
            let e = body["error"].as_str().unwrap();
            assert!(
                e.contains("--web.config.file") && e.contains("basic_auth_users"),
                "{body}"
            );
            assert_eq!(body["flag"], "--web.config.file");
            assert_eq!(body["key"], "basic_auth_users");
        }
        assert!(api.viewed(CRIT).ack.is_none());
        assert!(api.viewed(HIGH_VM).ack.is_some());
        // Reads still work.
        assert_eq!(ids(&api.ok("/api/v1/findings").await), ALL);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_is_validated_stored_and_shown_with_its_user() {
    let api = serve(Web::Config(users())).await;
    let good = json!({"reason": "firewall change CHG-1 pending", "expires": rfc3339_in(7 * DAY)});
    // No or wrong credentials: the middleware's 401, nothing changed.
    let path = format!("/api/v1/findings/{CRIT}/ack");
    let (status, _) = api
        .send("POST", &path, &[JSON], good.to_string().as_bytes())
        .await;
    assert_eq!(status, 401);
    let (status, _) = api.post_ack(CRIT, "Basic YWxpY2U6eA==", &good).await;
    assert_eq!(status, 401);
    assert!(api.viewed(CRIT).ack.is_none());

    // Body errors name the field.
    let too_long = "x".repeat(1001);
    let past = "2020-01-01T00:00:00+01:00";
    let cases: Vec<(Value, &str)> = vec![
        (json!([1, 2]), "body"),
        (json!("reason"), "body"),
        (
            json!({"reason": "r", "expires": rfc3339_in(DAY), "by": "root"}),
            "by",
        ),
        (json!({"expires": rfc3339_in(DAY)}), "reason"),
        (json!({"reason": "", "expires": rfc3339_in(DAY)}), "reason"),
        (
            json!({"reason": "   ", "expires": rfc3339_in(DAY)}),
            "reason",
        ),
        (json!({"reason": 5, "expires": rfc3339_in(DAY)}), "reason"),
        (
            json!({"reason": null, "expires": rfc3339_in(DAY)}),
            "reason",
        ),
        (
            json!({"reason": too_long, "expires": rfc3339_in(DAY)}),
            "reason",
        ),
        (
            json!({"reason": "a\nb", "expires": rfc3339_in(DAY)}),
            "reason",
        ),
        (
            json!({"reason": "a\u{1b}[31m", "expires": rfc3339_in(DAY)}),
            "reason",
        ),
        (
            json!({"reason": "a\u{202e}b", "expires": rfc3339_in(DAY)}),
            "reason",
        ),
        (json!({"reason": "r"}), "expires"),
        (json!({"reason": "r", "expires": 1_900_000_000}), "expires"),
        (json!({"reason": "r", "expires": "soon"}), "expires"),
        (
            json!({"reason": "r", "expires": "2030-01-01T00:00:00"}),
            "expires",
        ),
        (json!({"reason": "r", "expires": "2020-01-01"}), "expires"),
        (json!({"reason": "r", "expires": past}), "expires"),
        (
            json!({"reason": "r", "expires": rfc3339_in(91 * DAY)}),
            "expires",
        ),
        (json!({"reason": "r", "expires": "9999-12-31"}), "expires"),
    ];
    for (body, field) in cases {
        let (status, answer) = api.post_ack(CRIT, ALICE, &body).await;
        assert_bad(status, &answer, field, &body.to_string());
    }
    let (status, body) = api
        .post_ack(
            CRIT,
            ALICE,
            &json!({"reason": "r", "expires": "2020-01-01"}),
        )
        .await;
    assert_eq!(status, 400);
    let e = body["error"].as_str().unwrap();
    assert!(
        e.contains("max_ack") && e.contains("not in the future"),
        "{e}"
    );
    let raw = [
        (&b"{\"reason\": \"r\", "[..], "body"),
        (
            &b"{\"reason\":\"a\",\"reason\":\"b\",\"expires\":\"2999-01-01\"}"[..],
            "reason",
        ),
        (&b"\xff\xfe"[..], "body"),
        (&b""[..], "body"),
    ];
    for (body, field) in raw {
        let (status, answer) = api
            .send("POST", &path, &[("Authorization", ALICE), JSON], body)
            .await;
        assert_bad(status, &answer, field, &String::from_utf8_lossy(body));
    }
    // Not JSON by its type; too large.
    let (status, answer) = api
        .send(
            "POST",
            &path,
            &[("Authorization", ALICE), ("Content-Type", "text/plain")],
            good.to_string().as_bytes(),
        )
        .await;
    assert_eq!(status, 415, "{answer}");
    assert_eq!(answer["parameter"], "Content-Type");
    let huge = format!(
        r#"{{"reason": "{}", "expires": "2999-01-01"}}"#,
        "x".repeat(20_000)
    );
    let (status, answer) = api
        .send(
            "POST",
            &path,
            &[("Authorization", ALICE), JSON],
            huge.as_bytes(),
        )
        .await;
    assert_eq!(status, 413, "{answer}");
    assert!(api.viewed(CRIT).ack.is_none(), "nothing changed");

    // Unknown and resolved findings.
    let (status, body) = api.post_ack("ffffffffffffffff", ALICE, &good).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = api.post_ack(HIGH_RESOLVED, ALICE, &good).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("resolved"),
        "{body}"
    );

    // The ack: the answer, the view and the store all have it, by the authenticated user.
    let expires = rfc3339_in(7 * DAY);
    let ok = json!({"reason": "  firewall change CHG-1 pending ", "expires": expires});
    let (status, body) = api.post_ack(CRIT, ALICE, &ok).await;
    assert_eq!(status, 200, "{body}");
    let f = &body["finding"];
    assert_eq!(f["ack"]["by"], "alice");
    assert_eq!(f["ack"]["source"], "api");
    assert_eq!(f["ack"]["reason"], "firewall change CHG-1 pending");
    assert_eq!(f["ack"]["severity"], "critical");
    assert_eq!(f["alerting"], false);
    let want = expires
        .parse::<jiff::Timestamp>()
        .unwrap()
        .as_duration()
        .as_secs_f64();
    assert_eq!(f["ack"]["expires"].as_f64(), Some(want));
    let last = f["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (last["kind"].as_str(), last["by"].as_str()),
        (Some("acknowledged"), Some("alice"))
    );
    assert_eq!(
        api.viewed(CRIT).ack.as_ref().map(|a| a.by.as_str()),
        Some("alice")
    );
    let stored = api.store.findings().unwrap();
    let stored = stored
        .iter()
        .find(|f| f.id == CRIT)
        .expect("written through");
    // (JSON may round a float's last bit: compare what the ack says, not every bit.)
    let viewed = api.viewed(CRIT);
    let (a, b) = (stored.ack.as_ref().unwrap(), viewed.ack.as_ref().unwrap());
    assert_eq!((&a.by, &a.reason, a.source), (&b.by, &b.reason, b.source));
    assert!((a.expires - b.expires).abs() < 1e-3);
    assert_eq!(stored.history.len(), viewed.history.len());
    let (status, listed) = api
        .send(
            "GET",
            "/api/v1/findings?acknowledged=true&state=confirmed",
            &[("Authorization", BOB)],
            b"",
        )
        .await;
    assert_eq!(
        (status, ids(&listed)),
        (200, vec![CRIT.to_string(), HIGH_VM.to_string()])
    );
    // A date means 00:00 UTC that day; an open finding can be acknowledged too.
    let date = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(72))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let (status, body) = api
        .post_ack(
            MEDIUM,
            BOB,
            &json!({"reason": "lab", "expires": date.to_string()}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let midnight = date
        .to_zoned(jiff::tz::TimeZone::UTC)
        .unwrap()
        .timestamp()
        .as_second();
    assert_eq!(
        body["finding"]["ack"]["expires"].as_f64(),
        Some(midnight as f64)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_acks_are_serialised_and_withdrawing_needs_an_api_ack() {
    let api = Arc::new(serve(Web::Config(users())).await);
    let mut tasks = Vec::new();
    for (auth, reason) in [(ALICE, "first"), (BOB, "second")] {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            let body = json!({"reason": reason, "expires": rfc3339_in(DAY)});
            api.post_ack(CRIT, auth, &body).await.0
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let f = api.viewed(CRIT);
    let acks: Vec<&str> = f
        .history
        .iter()
        .filter(|e| e.kind == FindingEventKind::Acknowledged)
        .filter_map(|e| e.by.as_deref())
        .collect();
    assert_eq!(acks.len(), 2, "both recorded: {:?}", f.history);
    // The last write wins: the ack is the one recorded last.
    assert_eq!(f.ack.as_ref().map(|a| a.by.as_str()), acks.last().copied());

    // DELETE withdraws it, by whoever asks; again: nothing to withdraw.
    let (status, body) = api.delete_ack(CRIT, BOB).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["finding"].get("ack").is_none(), "{body}");
    assert_eq!(body["finding"]["alerting"], true);
    let last = api.viewed(CRIT).history.last().cloned().unwrap();
    assert_eq!(last.kind, FindingEventKind::Unacknowledged);
    assert_eq!(last.by.as_deref(), Some("bob"));
    let stored = api.store.findings().unwrap();
    assert!(stored.iter().any(|f| f.id == CRIT && f.ack.is_none()));
    let (status, body) = api.delete_ack(CRIT, BOB).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no acknowledgement"),
        "{body}"
    );
    // A configuration exception's ack is withdrawn in the configuration, not here.
    let (status, body) = api.delete_ack(LOW_STALE, ALICE).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("policy.exceptions"),
        "{body}"
    );
    assert!(api.viewed(LOW_STALE).ack.is_some());
    let (status, _) = api.delete_ack("ffffffffffffffff", ALICE).await;
    assert_eq!(status, 404);
    let (status, _) = api
        .send(
            "DELETE",
            &format!("/api/v1/findings/{HIGH_VM}/ack"),
            &[],
            b"",
        )
        .await;
    assert_eq!(status, 401);
    // Other methods on the ack path are not routes.
    let (status, _) = api
        .send(
            "PUT",
            &format!("/api/v1/findings/{HIGH_VM}/ack"),
            &[("Authorization", ALICE)],
            b"",
        )
        .await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_failed_store_write_changes_nothing() {
    let state = State::default();
    state.write().findings = findings().into_iter().map(|f| (f.id.clone(), f)).collect();
    let before = state.read().findings.clone();
    let r = change(
        &state,
        CRIT,
        |f| Ok(crate::judge::findings::ack(f, "alice", "r", 4e9, T0)),
        |_| async { Err(crate::store::Error::Task("disk on fire".into())) },
    )
    .await;
    let Err(refusal) = r else {
        panic!("a failed write is refused")
    };
    assert_eq!(refusal.status(), 503);
    assert_eq!(state.read().findings, before);
    // And a writer that works: the view changes only after it.
    let r = change(
        &state,
        CRIT,
        |f| Ok(crate::judge::findings::ack(f, "alice", "r", 4e9, T0)),
        |f| async move {
            assert_eq!(f.ack.as_ref().map(|a| a.by.as_str()), Some("alice"));
            Ok(())
        },
    )
    .await;
    assert!(r.is_ok());
    assert!(state.read().findings[CRIT].ack.is_some());
}

#[test]
fn ack_bodies_parse_strictly() {
    let now = 1_800_000_000.0;
    let max = 90 * DAY;
    assert_eq!(
        parse_ack(br#"{"reason": "ok", "expires": "2027-01-31"}"#, now, max),
        Ok(AckRequest {
            reason: "ok".into(),
            expires: 1_801_353_600.0
        })
    );
    let r = parse_ack(
        r#"{"expires": "2027-01-31T18:00:00+01:00", "reason": "ünïcødé λ 🐝"}"#.as_bytes(),
        now,
        max,
    );
    assert_eq!(r.map(|r| r.expires), Ok(1_801_414_800.0));
    // At most max_ack ahead, inclusive; the past and now are refused.
    let at = |t: f64| {
        let ts = jiff::Timestamp::from_second(t as i64).unwrap();
        parse_ack(
            format!(r#"{{"reason":"r","expires":"{ts}"}}"#).as_bytes(),
            now,
            max,
        )
    };
    assert!(at(now + max.as_secs_f64()).is_ok());
    assert_eq!(
        at(now + max.as_secs_f64() + 1.0).unwrap_err().parameter,
        "expires"
    );
    assert_eq!(at(now).unwrap_err().parameter, "expires");
    let e = at(now + max.as_secs_f64() + 1.0).unwrap_err();
    assert!(
        e.message.contains("too far ahead") && e.message.contains("max_ack = 90d)"),
        "{}",
        e.message
    );
    // 1000 characters (not bytes) are fine.
    let long = "é".repeat(1000);
    assert!(parse_ack(
        format!(r#"{{"reason":"{long}","expires":"2027-02-01"}}"#).as_bytes(),
        now,
        max
    )
    .is_ok());
    // Deeply nested or huge numbers are an error, not a crash.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(
        parse_ack(deep.as_bytes(), now, max).unwrap_err().parameter,
        "body"
    );
    let nested = format!(r#"{{"reason": {}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
    assert_eq!(
        parse_ack(nested.as_bytes(), now, max)
            .unwrap_err()
            .parameter,
        "body"
    );
}
