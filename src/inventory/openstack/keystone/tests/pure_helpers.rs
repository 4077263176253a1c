//! Unit tests of the pure helpers: authentication bodies, endpoint selection from a catalog,
//! error messages from reply bodies, token expiry parsing and version documents.

use super::*;
use crate::inventory::openstack::keystone::auth_body::auth_body;
use crate::inventory::openstack::keystone::catalog::CatalogEntry;
use crate::inventory::openstack::keystone::request::display_path;
use crate::inventory::openstack::keystone::token::{parse_expiry, v3_link};

#[test]
fn auth_bodies() {
    let by_name = auth_body(&password_auth("http://k/v3", "alice", "pw"));
    assert_eq!(
        by_name,
        json!({"auth": {"identity": {"methods": ["password"], "password": {"user":
            {"name": "alice", "domain": {"id": "default"}, "password": "pw"}}},
            "scope": {"project": {"name": "alpha", "domain": {"name": "Default"}}}}})
    );
    let by_id = auth_body(&Auth::Password {
        auth_url: "http://k/v3".into(),
        user: UserRef::Id("u1".into()),
        password: Secret::new("pw"),
        scope: Some(ProjectScope::Id("p1".into())),
    });
    assert_eq!(
        by_id["auth"]["identity"]["password"]["user"],
        json!({"id": "u1", "password": "pw"})
    );
    assert_eq!(by_id["auth"]["scope"], json!({"project": {"id": "p1"}}));
    let unscoped = auth_body(&Auth::Password {
        auth_url: "http://k/v3".into(),
        user: UserRef::Id("u1".into()),
        password: Secret::new("pw"),
        scope: None,
    });
    assert!(unscoped["auth"].get("scope").is_none());
    let ac_id = auth_body(&Auth::ApplicationCredential {
        auth_url: "http://k/v3".into(),
        cred: AppCredRef::Id("ac1".into()),
        secret: Secret::new("s"),
    });
    assert_eq!(
        ac_id,
        json!({"auth": {"identity": {"methods": ["application_credential"],
            "application_credential": {"id": "ac1", "secret": "s"}}}})
    );
    let ac_name = auth_body(&Auth::ApplicationCredential {
        auth_url: "http://k/v3".into(),
        cred: AppCredRef::Name {
            name: "ac".into(),
            user: UserRef::Name {
                name: "demo".into(),
                domain: DomainRef::Name("Default".into()),
            },
        },
        secret: Secret::new("s"),
    });
    assert_eq!(
        ac_name["auth"]["identity"]["application_credential"],
        json!({"name": "ac", "secret": "s", "user": {"name": "demo", "domain": {"name": "Default"}}})
    );
    assert!(ac_name["auth"].get("scope").is_none());
}

#[test]
fn endpoint_selection() {
    let catalog: Vec<CatalogEntry> = serde_json::from_value(catalog("http://h")).unwrap();
    let pick = |service, interface, region| select_endpoint(&catalog, service, interface, region);
    assert_eq!(
        pick(ServiceType::Compute, Interface::Public, Some("RegionOne")).unwrap(),
        "http://h/compute/v2.1"
    );
    assert_eq!(
        pick(ServiceType::Compute, Interface::Internal, Some("RegionOne")).unwrap(),
        "http://h/compute-internal/v2.1"
    );
    assert_eq!(
        pick(ServiceType::Compute, Interface::Public, Some("RegionTwo")).unwrap(),
        "http://h/compute-two/v2.1"
    );
    // No region asked for: the first endpoint of that interface.
    assert_eq!(
        pick(ServiceType::Compute, Interface::Public, None).unwrap(),
        "http://h/compute/v2.1"
    );
    // Only the legacy `region` field.
    assert_eq!(
        pick(ServiceType::Network, Interface::Public, Some("RegionOne")).unwrap(),
        "http://h/network"
    );
    let e = pick(ServiceType::Compute, Interface::Admin, Some("RegionOne")).unwrap_err();
    assert_eq!(e.kind(), "openstack_no_endpoint");
    let text = e.to_string();
    assert!(
        text.contains("no admin endpoint in region \"RegionOne\""),
        "{text}"
    );
    assert!(
        text.contains("public in RegionOne, internal in RegionOne, public in RegionTwo"),
        "{text}"
    );
    let e = pick(ServiceType::Network, Interface::Internal, Some("RegionTwo")).unwrap_err();
    assert!(e.to_string().contains("public in RegionOne"), "{e}");
    let e =
        select_endpoint(&catalog[..1], ServiceType::Network, Interface::Public, None).unwrap_err();
    assert!(
        e.to_string()
            .contains("no network service; the catalog has identity"),
        "{e}"
    );
    let e = select_endpoint(&[], ServiceType::Compute, Interface::Public, None).unwrap_err();
    assert!(e.to_string().contains("unscoped"), "{e}");
}

#[test]
fn error_messages() {
    use super::http::error_message;
    let m = |body: &str, status| error_message(body.as_bytes(), status);
    assert_eq!(
        m(r#"{"itemNotFound": {"message": "gone", "code": 404}}"#, 404),
        "gone"
    );
    assert_eq!(
        m(
            r#"{"NeutronError": {"type": "X", "message": "nope", "detail": ""}}"#,
            404
        ),
        "nope"
    );
    assert_eq!(
        m(
            r#"{"error": {"code": 401, "message": "who?", "title": "Unauthorized"}}"#,
            401
        ),
        "who?"
    );
    assert_eq!(m(r#"{"message": "top"}"#, 500), "top");
    assert_eq!(
        m("<html><title>404 Not Found</title><h1>x</h1></html>", 404),
        "404 Not Found"
    );
    assert_eq!(m("", 503), "Service Unavailable");
    assert_eq!(m("  plain\n text ", 500), "plain text");
    let long = m(&"y".repeat(1000), 500);
    assert_eq!(long.chars().count(), 201);
    assert!(long.ends_with('…'));
}

#[test]
fn expiry_and_versions() {
    let t = parse_expiry("2026-11-24T12:16:17.000000Z").unwrap();
    assert_eq!(t, humantime::parse_rfc3339("2026-11-24T12:16:17Z").unwrap());
    assert_eq!(parse_expiry("2026-11-24T12:16:17+00:00"), Some(t));
    assert_eq!(parse_expiry("tomorrow"), None);
    let doc = json!({"versions": {"values": [
        {"id": "v2.0", "links": [{"rel": "self", "href": "http://k/v2.0/"}]},
        {"id": "v3.14", "links": [{"rel": "describedby", "href": "http://docs"}, {"rel": "self", "href": "http://k/v3/"}]}
    ]}});
    assert_eq!(v3_link(&doc).as_deref(), Some("http://k/v3/"));
    assert_eq!(
        v3_link(&json!({"versions": {"values": [{"id": "v2.0"}]}})),
        None
    );
    assert_eq!(display_path("http://h:1/a/b?c=d"), "/a/b?c=d");
    assert_eq!(display_path("/servers?limit=1"), "/servers?limit=1");
}
