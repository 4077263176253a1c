//! Credentials from OS_* variables in every form the Keystone client takes, and keystoneauth's
//! checks on them.

use super::*;

fn env(vars: &[(&str, &str)]) -> Sandbox {
    let mut s = Sandbox::new();
    for (k, v) in vars {
        s.set(k, v);
    }
    s
}

fn missing(s: &Sandbox) -> String {
    let e = s.err(None);
    assert_eq!(e.kind(), "missing_auth", "{e}");
    e.to_string()
}

#[test]
fn password_by_names() {
    let s = env(&[
        ("OS_AUTH_URL", "https://keystone.example:5000/v3"),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", "pw"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_NAME", "admin"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", "RegionOne"),
        ("OS_INTERFACE", "internal"),
        ("OS_IDENTITY_API_VERSION", "3"),
    ]);
    let c = s.ok(None);
    assert_eq!(
        (c.name.as_str(), &c.source),
        ("envvars", &ConfigSource::Environment)
    );
    assert_eq!(
        c.auth,
        Auth::Password {
            auth_url: "https://keystone.example:5000/v3".into(),
            user: UserRef::Name {
                name: "admin".into(),
                domain: name_in("Default")
            },
            password: Secret::new("pw"),
            scope: Some(ProjectScope::Name {
                name: "admin".into(),
                domain: name_in("Default")
            }),
        }
    );
    assert_eq!(c.region.as_deref(), Some("RegionOne"));
    assert_eq!(c.interface, Interface::Internal);
    assert_eq!(
        c.auth.v3_token_url(),
        "https://keystone.example:5000/v3/auth/tokens"
    );
}

#[test]
fn password_by_ids_with_v3password() {
    let s = env(&[
        ("OS_AUTH_TYPE", "v3password"),
        ("OS_AUTH_URL", "https://keystone.example/identity/v3/"),
        ("OS_USER_ID", "u-1"),
        ("OS_PASSWORD", "pw"),
        ("OS_PROJECT_ID", "p-1"),
    ]);
    let c = s.ok(None);
    assert_eq!(c.auth_type, AuthType::V3Password);
    assert!(!c.auth_type.discovers_version());
    let Auth::Password { user, scope, .. } = &c.auth else {
        panic!()
    };
    assert_eq!(*user, UserRef::Id("u-1".into()));
    assert_eq!(*scope, Some(ProjectScope::Id("p-1".into())));
    assert_eq!(
        c.auth.v3_token_url(),
        "https://keystone.example/identity/v3/auth/tokens"
    );
}

#[test]
fn application_credential_by_id() {
    let s = env(&[
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_AUTH_URL", "https://keystone.example/v3"),
        ("OS_APPLICATION_CREDENTIAL_ID", "ac-1"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "shh"),
    ]);
    let c = s.ok(None);
    assert_eq!(
        c.auth,
        Auth::ApplicationCredential {
            auth_url: "https://keystone.example/v3".into(),
            cred: AppCredRef::Id("ac-1".into()),
            secret: Secret::new("shh"),
        }
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn application_credential_by_name_needs_its_user() {
    let mut s = env(&[
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_AUTH_URL", "https://keystone.example/v3"),
        ("OS_APPLICATION_CREDENTIAL_NAME", "scanner"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "shh"),
    ]);
    let msg = missing(&s);
    assert!(
        msg.contains("auth.user_id (OS_USER_ID) or auth.username (OS_USERNAME)"),
        "{msg}"
    );

    s.set("OS_USERNAME", "svc");
    let msg = missing(&s);
    assert!(
        msg.contains("auth.user_domain_name (OS_USER_DOMAIN_NAME)"),
        "{msg}"
    );

    s.set("OS_USER_DOMAIN_NAME", "Default");
    let Auth::ApplicationCredential { cred, .. } = s.ok(None).auth else {
        panic!()
    };
    assert_eq!(
        cred,
        AppCredRef::Name {
            name: "scanner".into(),
            user: UserRef::Name {
                name: "svc".into(),
                domain: name_in("Default")
            }
        }
    );
}

#[test]
fn application_credential_ignores_a_leftover_project_with_a_warning() {
    let s = env(&[
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_AUTH_URL", "https://keystone.example/v3"),
        ("OS_APPLICATION_CREDENTIAL_ID", "ac-1"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "shh"),
        ("OS_PROJECT_NAME", "old"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
    ]);
    let c = s.ok(None);
    assert!(matches!(c.auth, Auth::ApplicationCredential { .. }));
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("auth.project_name ignored")),
        "{:?}",
        c.warnings
    );

    let s = env(&[
        ("OS_AUTH_TYPE", "v3applicationcredential"),
        ("OS_AUTH_URL", "https://keystone.example/v3"),
        ("OS_APPLICATION_CREDENTIAL_SECRET", "shh"),
    ]);
    let msg = missing(&s);
    assert!(
        msg.contains("auth.application_credential_id (OS_APPLICATION_CREDENTIAL_ID) or"),
        "{msg}"
    );
}

#[test]
fn missing_keys_are_named_with_their_variables() {
    let mut s = env(&[("OS_USERNAME", "u")]);
    assert!(missing(&s).contains("auth.auth_url (OS_AUTH_URL)"));
    s.set("OS_AUTH_URL", "https://k.example");
    assert!(missing(&s).contains(
        "auth.user_domain_name (OS_USER_DOMAIN_NAME) or auth.user_domain_id (OS_USER_DOMAIN_ID)"
    ));
    s.set("OS_USER_DOMAIN_ID", "default");
    let msg = missing(&s);
    assert!(msg.contains("auth.password (OS_PASSWORD)"), "{msg}");
    assert!(msg.contains("auth_type password"), "{msg}");
    s.set("OS_PASSWORD", "p").set("OS_PROJECT_NAME", "proj");
    assert!(missing(&s).contains("auth.project_domain_name (OS_PROJECT_DOMAIN_NAME)"));

    let s = env(&[("OS_AUTH_URL", "https://k.example"), ("OS_PASSWORD", "p")]);
    assert!(missing(&s).contains("auth.username (OS_USERNAME) or auth.user_id (OS_USER_ID)"));
}

#[test]
fn os_domain_name_fills_user_and_project_domains() {
    let s = env(&[
        ("OS_AUTH_URL", "https://k.example/v3"),
        ("OS_USERNAME", "u"),
        ("OS_PASSWORD", "p"),
        ("OS_PROJECT_NAME", "proj"),
        ("OS_DOMAIN_NAME", "Acme"),
        ("OS_PROJECT_DOMAIN_ID", "acme-id"),
    ]);
    let Auth::Password { user, scope, .. } = s.ok(None).auth else {
        panic!()
    };
    assert_eq!(
        user,
        UserRef::Name {
            name: "u".into(),
            domain: name_in("Acme")
        }
    );
    // An explicit project domain is kept; the id beats the copied name.
    assert_eq!(
        scope,
        Some(ProjectScope::Name {
            name: "proj".into(),
            domain: DomainRef::Id("acme-id".into())
        })
    );
}

#[test]
fn domain_name_without_a_project_is_a_domain_scope_and_refused() {
    let s = env(&[
        ("OS_AUTH_URL", "https://k.example/v3"),
        ("OS_USER_ID", "u"),
        ("OS_PASSWORD", "p"),
        ("OS_DOMAIN_NAME", "Acme"),
    ]);
    let e = s.err(None);
    assert_eq!(e.kind(), "unsupported_scope");
    assert!(
        e.to_string().contains("auth.domain_name (OS_DOMAIN_NAME)"),
        "{e}"
    );

    let s = env(&[
        ("OS_AUTH_URL", "https://k.example/v3"),
        ("OS_USER_ID", "u"),
        ("OS_PASSWORD", "p"),
        ("OS_PROJECT_ID", "p1"),
        ("OS_SYSTEM_SCOPE", "all"),
    ]);
    assert_eq!(s.err(None).kind(), "unsupported_scope");
}

#[test]
fn no_project_is_an_unscoped_token_with_a_warning() {
    let s = env(&[
        ("OS_AUTH_URL", "https://k.example/v3"),
        ("OS_USER_ID", "u"),
        ("OS_PASSWORD", "p"),
    ]);
    let c = s.ok(None);
    assert!(matches!(c.auth, Auth::Password { scope: None, .. }));
    assert!(
        c.warnings.iter().any(|w| w.contains("unscoped")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn v3_plugins_accept_an_unversioned_auth_url_and_append_v3() {
    // keystoneauth's v3 plugins post to <auth_url>/v3/auth/tokens unless auth_url ends in v3.
    let s = env(&[
        ("OS_AUTH_TYPE", "v3password"),
        ("OS_AUTH_URL", "https://k.example:5000/"),
        ("OS_USER_ID", "u"),
        ("OS_PASSWORD", "p"),
        ("OS_PROJECT_ID", "p1"),
    ]);
    let c = s.ok(None);
    assert_eq!(
        c.auth.v3_token_url(),
        "https://k.example:5000/v3/auth/tokens"
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    let s = env(&[
        ("OS_AUTH_URL", "keystone:5000"),
        ("OS_USER_ID", "u"),
        ("OS_PASSWORD", "p"),
    ]);
    let e = s.err(None);
    assert_eq!(e.kind(), "invalid_value");
    assert!(e.to_string().contains("http:// or https://"), "{e}");
}

#[test]
fn default_domain_serves_the_generic_plugin_only() {
    let mut s = env(&[
        ("OS_AUTH_URL", "https://k.example"),
        ("OS_USERNAME", "u"),
        ("OS_PASSWORD", "p"),
        ("OS_PROJECT_NAME", "proj"),
        ("OS_DEFAULT_DOMAIN_ID", "default"),
    ]);
    let Auth::Password { user, scope, .. } = s.ok(None).auth else {
        panic!()
    };
    assert_eq!(
        user,
        UserRef::Name {
            name: "u".into(),
            domain: DomainRef::Id("default".into())
        }
    );
    assert!(matches!(
        scope,
        Some(ProjectScope::Name {
            domain: DomainRef::Id(_),
            ..
        })
    ));

    s.set("OS_AUTH_TYPE", "v3password");
    assert!(missing(&s).contains("user_domain_name"));
}

#[test]
fn old_names_and_top_level_options_end_up_in_auth() {
    let s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        "clouds:\n  c:\n    auth_plugin: v3password\n    auth_url: https://top.example/v3\n    \
         user_name: top-user\n    password: top-pass\n    user-domain-name: D\n    \
         tenant_name: top-tenant\n    project_domain_id: d1\n    auth:\n      \
         username: auth-user\n      project_name: auth-project\n",
    );
    let c = s.ok(None);
    // The old auth_plugin loses to auth_type, which the defaults always set: dead, as in openstacksdk.
    assert_eq!(c.auth_type, AuthType::Password);
    assert_eq!(auth_url(&c), "https://top.example/v3");
    let Auth::Password {
        user,
        password,
        scope,
        ..
    } = &c.auth
    else {
        panic!()
    };
    // auth: beats the top level for plugin options...
    assert_eq!(
        *user,
        UserRef::Name {
            name: "auth-user".into(),
            domain: name_in("D")
        }
    );
    assert_eq!(password.expose(), "top-pass");
    // ...but for project and domain keys openstacksdk prefers the top level (and tenant_* are old
    // project_* spellings that lose to project_* itself).
    assert_eq!(
        *scope,
        Some(ProjectScope::Name {
            name: "auth-project".into(),
            domain: DomainRef::Id("d1".into())
        })
    );

    s.write(
        "cwd/clouds.yaml",
        "clouds:\n  c:\n    project_name: top-project\n    auth:\n      auth_url: https://k.example\n      \
         user_id: u\n      password: p\n      project_name: auth-project\n      project_domain_id: d\n",
    );
    let Auth::Password { scope, .. } = s.ok(None).auth else {
        panic!()
    };
    assert_eq!(
        scope,
        Some(ProjectScope::Name {
            name: "top-project".into(),
            domain: DomainRef::Id("d".into())
        })
    );
}

#[test]
fn unsupported_auth_types_are_named() {
    for t in ["v2password", "token", "none", ""] {
        let s = env(&[
            ("OS_AUTH_TYPE", t),
            ("OS_AUTH_URL", "https://k.example"),
            ("OS_PASSWORD", "p"),
        ]);
        let e = s.err(None);
        assert_eq!(e.kind(), "unsupported_auth_type", "{t}: {e}");
    }
}
