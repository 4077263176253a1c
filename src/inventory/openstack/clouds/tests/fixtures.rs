//! openstacksdk's own clouds.yaml files (tests/fixtures/openstack/openstacksdk/).

use super::*;

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/openstack/openstacksdk/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn sandbox_with(name: &str) -> Sandbox {
    let mut s = Sandbox::new();
    s.set("OS_CLIENT_CONFIG_FILE", &fixture(name));
    s
}

#[test]
fn devstack_cloud_resolves_to_password_by_names_with_domain_ids() {
    let s = sandbox_with("clouds.yaml");
    let c = s.ok(Some("devstack"));
    assert_eq!(c.name, "devstack");
    assert_eq!(c.auth_type, AuthType::Password);
    assert!(c.auth_type.discovers_version());
    let Auth::Password {
        auth_url,
        user,
        password,
        scope,
    } = &c.auth
    else {
        panic!("not password auth: {:?}", c.auth)
    };
    assert_eq!(auth_url, "http://xxx.xxx.xxx.xxx/identity");
    assert_eq!(
        *user,
        UserRef::Name {
            name: "demo".into(),
            domain: DomainRef::Id("default".into())
        }
    );
    assert_eq!(password.expose(), "password");
    assert_eq!(
        *scope,
        Some(ProjectScope::Name {
            name: "demo".into(),
            domain: DomainRef::Id("default".into())
        })
    );
    assert_eq!(c.region.as_deref(), Some("RegionOne"));
    assert_eq!(c.identity_api_version.as_deref(), Some("3"));
    assert_eq!(c.interface, Interface::Public);
    assert!(c.verify);
    assert_eq!(c.cacert, None);
    assert_eq!(
        c.source,
        ConfigSource::Files {
            clouds: Some(PathBuf::from(fixture("clouds.yaml"))),
            secure: None
        }
    );
    // The generic plugin discovers; this is where a v3 plugin would post.
    assert_eq!(
        c.auth.v3_token_url(),
        "http://xxx.xxx.xxx.xxx/identity/v3/auth/tokens"
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn devstack_file_needs_a_selection_and_loads_all_clouds() {
    let s = sandbox_with("clouds.yaml");
    let e = s.err(None);
    assert_eq!(e.kind(), "no_cloud_selected");
    assert!(
        e.to_string()
            .contains("devstack, devstack-admin, devstack-alt"),
        "{e}"
    );

    let all = load_all(&s.env, &[]).expect("all three clouds load");
    let projects: Vec<(&str, &str)> = all
        .iter()
        .map(|c| match &c.auth {
            Auth::Password {
                scope: Some(ProjectScope::Name { name, .. }),
                ..
            } => (c.name.as_str(), name.as_str()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        projects,
        [
            ("devstack", "demo"),
            ("devstack-admin", "admin"),
            ("devstack-alt", "alt_demo")
        ]
    );
}

#[test]
fn unit_test_fixture_v3_cloud_uses_domain_names() {
    let s = sandbox_with("clouds-unit-test-fixture.yaml");
    let c = s.ok(Some("_test_cloud_"));
    assert_eq!(auth_url(&c), "https://identity.example.com");
    assert_eq!(
        c.auth,
        Auth::Password {
            auth_url: "https://identity.example.com".into(),
            user: UserRef::Name {
                name: "admin".into(),
                domain: name_in("default")
            },
            password: Secret::new("password"),
            scope: Some(ProjectScope::Name {
                name: "admin".into(),
                domain: name_in("default")
            }),
        }
    );
    assert_eq!(c.region.as_deref(), Some("RegionOne"));
    assert_eq!(c.identity_api_version, None);
}

#[test]
fn unit_test_fixture_v2_and_bogus_clouds_are_refused() {
    let s = sandbox_with("clouds-unit-test-fixture.yaml");
    let e = s.err(Some("_test_cloud_v2_"));
    assert_eq!(e.kind(), "unsupported_identity_version");
    assert!(e.to_string().contains("\"2.0\""), "{e}");

    let e = s.err(Some("_bogus_test_"));
    assert_eq!(e.kind(), "unsupported_auth_type");
    let msg = e.to_string();
    assert!(msg.contains("\"bogus\""), "{msg}");
    assert!(
        msg.contains("password, v3password, v3applicationcredential"),
        "{msg}"
    );
    assert!(!msg.contains("_test_pass_"), "{msg}");

    // Several bad clouds: every failure is reported at once.
    let names: Vec<String> = ["_test_cloud_", "_test_cloud_v2_", "_bogus_test_"]
        .map(String::from)
        .into();
    let e = load_all(&s.env, &names).expect_err("two clouds are bad");
    assert_eq!(e.kind(), "several");
    let Error::Several { errors } = &e else {
        panic!("{e:?}")
    };
    let kinds: Vec<&str> = errors.iter().map(Error::kind).collect();
    assert_eq!(
        kinds,
        ["unsupported_identity_version", "unsupported_auth_type"]
    );
}

#[test]
fn unit_test_fixture_region_must_be_listed() {
    let s = sandbox_with("clouds-unit-test-fixture.yaml");
    let e = load(&s.env, Some("_test_cloud_"), Some("RegionTwo")).expect_err("not listed");
    assert_eq!(e.kind(), "region_not_found");
    assert!(e.to_string().contains("RegionOne"), "{e}");
    let c = load(&s.env, Some("_test_cloud_"), Some("RegionOne")).expect("listed");
    assert_eq!(c.region.as_deref(), Some("RegionOne"));
}
