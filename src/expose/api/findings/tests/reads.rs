//! Reading findings: every list filter, the order and cursor paging, one finding in full, 400s
//! naming the parameter, 404s, and the OpenAPI description of all findings endpoints.

use super::*;

#[tokio::test]
async fn the_list_is_most_severe_first_and_every_filter_works() {
    let api = serve(Web::Plain).await;
    let all = api.ok("/api/v1/findings").await;
    assert_eq!(ids(&all), ALL);
    assert!(all["next_cursor"].is_null());
    // Each item without its history, with counts and its URL.
    let first = &all["findings"][0];
    assert!(
        first.get("history").is_none() && first.get("previous").is_none(),
        "{first}"
    );
    assert_eq!(first["history_events"], 2);
    assert_eq!(first["previous_occurrences"], 0);
    assert_eq!(first["api_url"], format!("/api/v1/findings/{CRIT}"));
    assert_eq!(first["alerting"], true);
    assert_eq!(first["last_change"], T0 + 10.0);
    assert_eq!(first["state"], "confirmed");
    let vm = &all["findings"][1];
    assert_eq!(vm["alerting"], false, "acknowledged: {vm}");
    assert_eq!(vm["ack"]["by"], "bob");
    assert_eq!(vm["vm"]["vm_name"], "web-1");

    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(api.ids("state=confirmed").await, s(&[CRIT, HIGH_VM]));
    assert_eq!(api.ids("state=stale,open").await, s(&[MEDIUM, LOW_STALE]));
    assert_eq!(api.ids("state=resolved").await, s(&[HIGH_RESOLVED]));
    assert_eq!(api.ids("kind=vulnerability").await, s(&[HIGH_RESOLVED]));
    assert_eq!(
        api.ids("kind=amplifier,world_open").await,
        s(&[HIGH_VM, MEDIUM])
    );
    assert_eq!(api.ids("severity=high").await, s(&[HIGH_VM, HIGH_RESOLVED]));
    assert_eq!(
        api.ids("severity=low,critical").await,
        s(&[CRIT, LOW_STALE])
    );
    assert_eq!(
        api.ids("min_severity=high").await,
        s(&[CRIT, HIGH_VM, HIGH_RESOLVED])
    );
    assert_eq!(api.ids("min_severity=low").await, s(&ALL));
    // project and vm: by id or by name; CIDR hosts never match.
    assert_eq!(api.ids("project=demo").await, s(&[HIGH_VM]));
    assert_eq!(api.ids("project=p-2").await, s(&[HIGH_RESOLVED]));
    assert!(api.ids("project=Demo").await.is_empty(), "exact match");
    assert_eq!(api.ids("vm=vm-b").await, s(&[HIGH_RESOLVED]));
    assert_eq!(api.ids("vm=web-1").await, s(&[HIGH_VM]));
    assert_eq!(
        api.ids("cidr=10.0.0.0/24").await,
        s(&[CRIT, HIGH_RESOLVED, LOW_STALE])
    );
    assert_eq!(api.ids("cidr=192.168.1.3").await, s(&[MEDIUM]));
    assert!(api.ids("cidr=2001:db8::/32").await.is_empty());
    assert_eq!(api.ids("port=22").await, s(&[HIGH_VM, HIGH_RESOLVED]));
    assert_eq!(api.ids("cve=cve-2023-38408").await, s(&[HIGH_RESOLVED]));
    assert_eq!(api.ids("acknowledged=true").await, s(&[HIGH_VM, LOW_STALE]));
    assert_eq!(
        api.ids("acknowledged=false").await,
        s(&[CRIT, HIGH_RESOLVED, MEDIUM])
    );
    // since: the last history event at or after it (Unix seconds or RFC 3339).
    assert_eq!(
        api.ids(&format!("since={}", T0 + 50.0)).await,
        s(&[HIGH_RESOLVED, LOW_STALE])
    );
    assert_eq!(
        api.ids("since=2025-11-24T16:00:20Z").await,
        s(&[HIGH_VM, HIGH_RESOLVED, LOW_STALE])
    );
    // ANDed.
    assert_eq!(
        api.ids("min_severity=high&acknowledged=false&state=confirmed")
            .await,
        s(&[CRIT])
    );
    assert!(api.ids("port=22&kind=unexpected_port").await.is_empty());
}

#[tokio::test]
async fn pages_follow_the_cursor_through_the_whole_list() {
    let api = serve(Web::Plain).await;
    for limit in 1..=5 {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..10 {
            let q = match &cursor {
                Some(c) => format!("/api/v1/findings?limit={limit}&cursor={c}"),
                None => format!("/api/v1/findings?limit={limit}"),
            };
            let page = api.ok(&q).await;
            let got = ids(&page);
            assert!(got.len() <= limit, "{page}");
            seen.extend(got);
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(seen, ALL, "limit {limit}");
    }
    // With a filter, and the cursor's finding gone (acknowledged since, say): the list goes on.
    let page = api.ok("/api/v1/findings?min_severity=high&limit=1").await;
    assert_eq!(ids(&page), [CRIT]);
    assert_eq!(page["next_cursor"], format!("critical:{CRIT}"));
    let rest = api
        .ok("/api/v1/findings?min_severity=high&cursor=high:00000000000000a9")
        .await;
    assert_eq!(ids(&rest), [HIGH_RESOLVED]);
}

#[tokio::test]
async fn bad_parameters_get_a_400_naming_them() {
    let api = serve(Web::Plain).await;
    for (query, parameter) in [
        ("state=closed", "state"),
        ("state=open,,stale", "state"),
        ("state=", "state"),
        ("kind=port", "kind"),
        ("severity=urgent", "severity"),
        ("min_severity=high,low", "min_severity"),
        ("project=", "project"),
        ("vm=", "vm"),
        ("cidr=10.0.0.0/33", "cidr"),
        ("port=0", "port"),
        ("port=65536", "port"),
        ("cve=", "cve"),
        ("acknowledged=maybe", "acknowledged"),
        ("since=yesterday", "since"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=high:", "cursor"),
        ("cursor=severe:00", "cursor"),
        ("state=open&state=stale", "state"),
        ("sort=id", "sort"),
    ] {
        api.bad(&format!("/api/v1/findings?{query}"), parameter)
            .await;
    }
}

#[tokio::test]
async fn one_finding_in_full_or_a_404() {
    let api = serve(Web::Plain).await;
    let v = api.ok(&format!("/api/v1/findings/{HIGH_VM}")).await;
    let f = &v["finding"];
    assert_eq!(f["id"], HIGH_VM);
    assert_eq!(f["api_url"], format!("/api/v1/findings/{HIGH_VM}"));
    let kinds: Vec<&str> = f["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["opened", "acknowledged"]);
    assert_eq!(f["ack"]["source"], "api");
    assert_eq!(f["alerting"], false);
    assert_eq!(f["seen"], 1);

    for path in [
        "/api/v1/findings/ffffffffffffffff",
        "/api/v1/findings/..%2F..%2Fetc",
        "/api/v1/findings/%00",
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains("no finding"),
            "{body}"
        );
    }
    // Not UTF-8 once decoded: a 400 naming the id, in JSON.
    api.bad("/api/v1/findings/%FF%FE", "id").await;
    let (status, body) = api.send("POST", "/api/v1/findings/%FF/ack", &[], b"").await;
    assert_eq!(status, 403, "writes are off before anything else: {body}");
}

/// The spec names every parameter `/api/v1/findings` takes, documents the write endpoints with
/// their errors and basic auth, and has the schemas.
#[test]
fn openapi_documents_the_findings_endpoints() {
    let spec: Value = serde_norway::from_str(crate::expose::OPENAPI).unwrap();
    let list = &spec["paths"]["/api/v1/findings"]["get"];
    let params: std::collections::BTreeSet<&str> = list["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| match p["$ref"].as_str() {
            Some(r) => spec["components"]["parameters"][r.rsplit('/').next().unwrap()]["name"]
                .as_str()
                .unwrap(),
            None => p["name"].as_str().unwrap(),
        })
        .collect();
    let want: std::collections::BTreeSet<&str> = crate::expose::api::query::FINDINGS_PARAMS
        .iter()
        .copied()
        .collect();
    assert_eq!(params, want);
    assert!(spec["paths"]["/api/v1/findings/{id}"]["get"]["responses"]["404"].is_object());
    let ack = &spec["paths"]["/api/v1/findings/{id}/ack"];
    for (method, codes) in [
        (
            "post",
            &[
                "200", "400", "401", "403", "404", "409", "413", "415", "503",
            ][..],
        ),
        (
            "delete",
            &["200", "400", "401", "403", "404", "409", "503"][..],
        ),
    ] {
        for code in codes {
            assert!(
                ack[method]["responses"][code].is_object(),
                "{method} {code}"
            );
        }
        assert_eq!(ack[method]["security"][0]["basic"], json!([]), "{method}");
    }
    assert_eq!(
        spec["components"]["securitySchemes"]["basic"]["scheme"],
        "basic"
    );
    for schema in [
        "Finding",
        "FindingSummary",
        "FindingEvent",
        "Ack",
        "Occurrence",
        "AckRequest",
    ] {
        assert!(
            spec["components"]["schemas"][schema].is_object(),
            "{schema}"
        );
    }
    // Every state, kind, severity and history event kind the model has.
    let names = |schema: &str| -> Vec<String> {
        spec["components"]["schemas"][schema]["enum"]
            .as_array()
            .unwrap_or_else(|| panic!("{schema} has no enum"))
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let all = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names("FindingState"),
        all(&FindingState::ALL.map(|s| s.as_str()))
    );
    assert_eq!(
        names("FindingKind"),
        all(&FindingKind::ALL.map(|s| s.as_str()))
    );
    assert_eq!(names("Severity"), all(&Severity::ALL.map(|s| s.as_str())));
    let events = [
        FindingEventKind::Opened,
        FindingEventKind::Confirmed,
        FindingEventKind::Stale,
        FindingEventKind::Reachable,
        FindingEventKind::Resolved,
        FindingEventKind::Changed,
        FindingEventKind::Acknowledged,
        FindingEventKind::Unacknowledged,
        FindingEventKind::AckExpired,
        FindingEventKind::AckVoided,
    ];
    assert_eq!(names("FindingEventKind"), all(&events.map(|k| k.as_str())));
}
