//! openstacksdk's renames and value rules: interfaces, regions, TLS, numbers, profiles.

use super::*;

fn with(extra: &str) -> Sandbox {
    let s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("c", "https://k.example/v3", extra),
    );
    s
}

#[test]
fn endpoint_type_becomes_interface() {
    let c = with("    endpoint_type: internal\n    compute_endpoint_type: adminURL\n").ok(None);
    assert_eq!(c.interface, Interface::Internal);
    assert_eq!(c.interface_for("compute"), Interface::Admin);
    assert_eq!(c.interface_for("network"), Interface::Internal);

    let c = with("    network_interface: publicURL\n").ok(None);
    assert_eq!(c.interface, Interface::Public);
    assert_eq!(
        c.service_interfaces.get("network"),
        Some(&Interface::Public)
    );

    let e = with("    interface: private\n").err(None);
    assert_eq!(e.kind(), "invalid_value");
    assert!(e.to_string().contains("public, internal or admin"), "{e}");
}

#[test]
fn regions_list_first_by_default_and_asked_for_by_name() {
    let s = with("    regions:\n      - R1\n      - name: R2\n        values:\n          interface: internal\n");
    let c = s.ok(None);
    assert_eq!(
        (c.region.as_deref(), c.interface),
        (Some("R1"), Interface::Public)
    );
    let c = load(&s.env, None, Some("R2")).expect("R2 is listed");
    assert_eq!(
        (c.region.as_deref(), c.interface),
        (Some("R2"), Interface::Internal)
    );
    let e = load(&s.env, None, Some("r2")).expect_err("case-sensitive");
    assert_eq!(e.kind(), "region_not_found");
    assert!(e.to_string().contains("R1, R2"), "{e}");
}

#[test]
fn region_values_can_override_auth_keys() {
    let s = with("    regions:\n      - name: east\n        values:\n          auth:\n            auth_url: https://east.example/v3\n");
    let c = load(&s.env, None, Some("east")).expect("east");
    assert_eq!(auth_url(&c), "https://east.example/v3");
    // The rest of auth: is kept.
    assert!(matches!(c.auth, Auth::Password { scope: Some(_), .. }));
}

#[test]
fn region_name_forms() {
    let c = with("    region_name: Solo\n").ok(None);
    assert_eq!(c.region.as_deref(), Some("Solo"));
    assert!(c.warnings.is_empty());

    let s = with("    region_name: A,B\n");
    let c = s.ok(None);
    assert_eq!(c.region.as_deref(), Some("A"));
    assert!(
        c.warnings.iter().any(|w| w.contains("comma-separated")),
        "{:?}",
        c.warnings
    );
    assert_eq!(
        load(&s.env, None, Some("B")).expect("B").region.as_deref(),
        Some("B")
    );

    // A cloud that lists no region takes the one asked for as it is.
    let s = with("");
    assert_eq!(s.ok(None).region, None);
    assert_eq!(
        load(&s.env, None, Some("X")).expect("X").region.as_deref(),
        Some("X")
    );

    let e = with("    regions:\n      - name: R\n        other: 1\n").err(None);
    assert_eq!(e.kind(), "invalid_value");
}

#[test]
fn insecure_is_converted_from_the_string_true_only() {
    for (value, verify) in [
        ("'true'", false),
        ("'True'", false),
        ("true", false),
        ("false", true),
    ] {
        let c = with(&format!("    insecure: {value}\n")).ok(None);
        assert_eq!(c.verify, verify, "insecure: {value}");
        assert!(c.warnings.is_empty(), "{value}: {:?}", c.warnings);
    }
    // PyYAML would read an unquoted yes as true; here it is a string that is not "true".
    let c = with("    insecure: yes\n").ok(None);
    assert!(c.verify);
    assert!(
        c.warnings.iter().any(|w| w.contains("counts as false")),
        "{:?}",
        c.warnings
    );

    let mut s = Sandbox::new();
    s.set("OS_AUTH_URL", "https://k.example/v3")
        .set("OS_USER_ID", "u")
        .set("OS_PASSWORD", "p");
    s.set("OS_PROJECT_ID", "p1").set("OS_INSECURE", "true");
    assert!(!s.ok(None).verify);
}

#[test]
fn verify_and_cacert() {
    let c = with("    cacert: /etc/ssl/ca.pem\n").ok(None);
    assert!(c.verify);
    assert_eq!(c.cacert, Some(PathBuf::from("/etc/ssl/ca.pem")));

    // verify off and a CA bundle: openstacksdk warns and does not verify.
    for extra in ["    verify: false\n", "    insecure: true\n"] {
        let c = with(&format!("{extra}    cacert: /etc/ssl/ca.pem\n")).ok(None);
        assert!(!c.verify, "{extra}");
        assert_eq!(c.cacert, None, "{extra}");
        assert!(
            c.warnings
                .iter()
                .any(|w| w.contains("will not be verified")),
            "{:?}",
            c.warnings
        );
    }

    // A verify string is a CA bundle path for requests...
    let c = with("    verify: /opt/ca.pem\n").ok(None);
    assert_eq!(
        (c.verify, c.cacert),
        (true, Some(PathBuf::from("/opt/ca.pem")))
    );

    // ...so OS_VERIFY=false cannot mean "off".
    let mut s = Sandbox::new();
    s.set("OS_AUTH_URL", "https://k.example/v3")
        .set("OS_USER_ID", "u")
        .set("OS_PASSWORD", "p");
    s.set("OS_PROJECT_ID", "p1").set("OS_VERIFY", "false");
    let e = s.err(None);
    assert_eq!(e.kind(), "invalid_value");
    assert!(e.to_string().contains("OS_INSECURE=true"), "{e}");
}

#[test]
fn client_certificate_needs_cert_for_key() {
    let c = with("    cert: /c.pem\n    key: /k.pem\n").ok(None);
    assert_eq!(
        (c.cert.as_deref(), c.key.as_deref()),
        (Some(Path::new("/c.pem")), Some(Path::new("/k.pem")))
    );
    let c = with("    key: /k.pem\n").ok(None);
    assert_eq!(c.key, None);
    assert!(
        c.warnings.iter().any(|w| w.contains("without cert")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn numbers_become_strings_and_dashes_underscores() {
    let s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        "clouds:\n  c:\n    identity-api-version: 3\n    auth:\n      auth-url: https://k.example/v3\n      \
         user-id: 1001\n      password: 12345\n      project-id: 42\n",
    );
    let c = s.ok(None);
    assert_eq!(c.identity_api_version.as_deref(), Some("3"));
    let Auth::Password {
        user,
        password,
        scope,
        ..
    } = &c.auth
    else {
        panic!()
    };
    assert_eq!(*user, UserRef::Id("1001".into()));
    assert_eq!(password.expose(), "12345");
    assert_eq!(*scope, Some(ProjectScope::Id("42".into())));
}

#[test]
fn vendor_profiles_are_not_applied_but_said_so() {
    let c = with("    profile: vexxhost\n").ok(None);
    assert!(
        c.warnings.iter().any(|w| w.contains("\"vexxhost\"")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn cloud_and_auth_must_be_mappings() {
    let s = Sandbox::new();
    s.write("cwd/clouds.yaml", "clouds:\n  c: just-a-string\n");
    assert_eq!(s.err(None).kind(), "invalid_value");
    s.write("cwd/clouds.yaml", "clouds:\n  c:\n    auth: [a]\n");
    assert_eq!(s.err(None).kind(), "invalid_value");
}
