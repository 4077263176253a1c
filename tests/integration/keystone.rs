//! The Keystone session against a real Keystone (see `keystone_server.rs`): every credential form
//! through the real clouds.yaml / OS_* loader, `auth_url` with and without `/v3`, names, the catalog,
//! a wrong password, a revoked token and renewal before expiry.

use crate::keystone_server::{keystone, Keystone};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};
use stinger::inventory::openstack::api::{Api, Error, ServiceType};
use stinger::inventory::openstack::clouds::{self, CloudConfig, Env};
use stinger::inventory::openstack::keystone::{Session, SessionOptions};

/// An environment that sees only `dir` (clouds.yaml there) and `vars`.
fn env(dir: &Path, vars: &[(&str, &str)]) -> Env {
    Env {
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        cwd: dir.to_owned(),
        home: None,
        xdg_config_home: None,
        xdg_config_dirs: None,
        snap_real_home: None,
        etc: dir.join("etc"),
    }
}

/// Loads cloud `name` from a clouds.yaml holding `yaml` (the text under `clouds:`).
fn cloud_from_yaml(name: &str, yaml: &str) -> CloudConfig {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("clouds.yaml"), format!("clouds:\n{yaml}")).unwrap();
    clouds::load(&env(dir.path(), &[]), Some(name), None)
        .unwrap_or_else(|e| panic!("clouds.yaml for {name}: {e}"))
}

fn session(cloud: &CloudConfig) -> Session {
    Session::new(cloud, SessionOptions::default()).unwrap()
}

/// Every auth_url form works: the generic plugin discovers, the v3 plugins append `/v3` when it is
/// missing.
#[tokio::test]
async fn password_by_names_with_every_auth_url_form() {
    let k = keystone();
    let forms = [
        k.root.clone(),
        format!("{}/", k.root),
        k.url.clone(),
        format!("{}/", k.url),
    ];
    for auth_type in ["password", "v3password"] {
        for auth_url in &forms {
            let cloud = cloud_from_yaml(
                "names",
                &format!(
                    "  names:\n    auth_type: {auth_type}\n    region_name: RegionOne\n    auth:\n      \
                     auth_url: {auth_url}\n      username: demo\n      password: demopass\n      \
                     user_domain_name: Default\n      project_name: demo\n      \
                     project_domain_name: Default\n"
                ),
            );
            let s = session(&cloud);
            s.authenticate()
                .await
                .unwrap_or_else(|e| panic!("{auth_type} with auth_url {auth_url}: {e}"));
            assert_eq!(s.project_id().as_deref(), Some(k.demo_project.as_str()));
            assert_eq!(s.project_name().as_deref(), Some("demo"));
            assert_eq!(s.user_id().as_deref(), Some(k.demo_user.as_str()));
            assert_eq!(s.user_name().as_deref(), Some("demo"));
        }
    }
}

#[tokio::test]
async fn password_by_ids_and_the_catalog() {
    let k = keystone();
    let cloud = cloud_from_yaml(
        "ids",
        &format!(
            "  ids:\n    auth_type: v3password\n    region_name: RegionOne\n    auth:\n      \
             auth_url: {}\n      user_id: {}\n      password: demopass\n      project_id: {}\n",
            k.url, k.demo_user, k.demo_project
        ),
    );
    let s = session(&cloud);
    assert_eq!(
        s.endpoint(ServiceType::Compute).await.unwrap(),
        "http://127.0.0.1:8774/v2.1"
    );
    assert_eq!(s.endpoint(ServiceType::Identity).await.unwrap(), k.url);
    assert_eq!(s.project_id().as_deref(), Some(k.demo_project.as_str()));
    assert_eq!(s.user_name().as_deref(), Some("demo"));
    // No network endpoint in RegionOne (other tests register network services in regions of
    // their own on the same Keystone, so the catalog may or may not list the service).
    let e = s.endpoint(ServiceType::Network).await.unwrap_err();
    assert!(matches!(e, Error::NoEndpoint { .. }), "{e}");
    assert!(e.to_string().contains("network"), "{e}");
    // The member role may not list projects or users: the session's own, marked incomplete.
    let projects = s.project_names().await.unwrap();
    assert!(!projects.complete);
    assert_eq!(projects.map.len(), 1);
    assert_eq!(projects.map[&k.demo_project], "demo");
    let users = s.user_names().await.unwrap();
    assert!(!users.complete);
    assert_eq!(users.map[&k.demo_user], "demo");
    // A region the catalog does not have.
    let mut other = cloud.clone();
    other.region = Some("RegionTwo".into());
    let e = session(&other)
        .endpoint(ServiceType::Compute)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("public in RegionOne"), "{e}");
}

#[tokio::test]
async fn application_credential_by_id_and_by_name() {
    let k = keystone();
    let by_id = cloud_from_yaml(
        "ac-id",
        &format!(
            "  ac-id:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {}\n      \
             application_credential_id: {}\n      application_credential_secret: {}\n",
            k.root, k.appcred_id, k.appcred_secret
        ),
    );
    let by_name = cloud_from_yaml(
        "ac-name",
        &format!(
            "  ac-name:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {}\n      \
             application_credential_name: ac\n      application_credential_secret: {}\n      \
             username: demo\n      user_domain_name: Default\n",
            k.url, k.appcred_secret
        ),
    );
    for cloud in [by_id, by_name] {
        let s = session(&cloud);
        s.authenticate()
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", cloud.name));
        assert_eq!(s.project_id().as_deref(), Some(k.demo_project.as_str()));
        assert_eq!(s.user_id().as_deref(), Some(k.demo_user.as_str()));
        assert_eq!(
            s.endpoint(ServiceType::Compute).await.unwrap(),
            "http://127.0.0.1:8774/v2.1"
        );
    }
}

fn admin_from_env(k: &Keystone) -> CloudConfig {
    let dir = tempfile::tempdir().unwrap();
    let vars = [
        ("OS_AUTH_URL", k.url.as_str()),
        ("OS_USERNAME", "admin"),
        ("OS_PASSWORD", "secret"),
        ("OS_PROJECT_NAME", "admin"),
        ("OS_USER_DOMAIN_NAME", "Default"),
        ("OS_PROJECT_DOMAIN_NAME", "Default"),
        ("OS_REGION_NAME", "RegionOne"),
        ("OS_INTERFACE", "internal"),
    ];
    clouds::load(&env(dir.path(), &vars), None, None).unwrap()
}

#[tokio::test]
async fn admin_from_os_variables_lists_names() {
    let k = keystone();
    let cloud = admin_from_env(k);
    assert_eq!(cloud.name, "envvars");
    let s = session(&cloud);
    let projects = s.project_names().await.unwrap();
    assert!(projects.complete);
    assert_eq!(projects.map[&k.demo_project], "demo");
    assert!(projects.map.values().any(|n| n == "admin"), "{projects:?}");
    let users = s.user_names().await.unwrap();
    assert!(users.complete);
    assert_eq!(users.map[&k.demo_user], "demo");
    assert!(users.map.values().any(|n| n == "admin"), "{users:?}");
    assert_eq!(s.project_name().as_deref(), Some("admin"));
    assert_eq!(s.region(), Some("RegionOne"));
    assert_eq!(s.interface().as_str(), "internal");
    // Plain Api::get on identity, with and without the /v3 prefix.
    for path in ["/v3/projects?name=demo", "/projects?name=demo"] {
        let reply = s.get(ServiceType::Identity, path, &[]).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(v["projects"][0]["id"], k.demo_project.as_str(), "{path}");
    }
    // Keystone's own error message comes through.
    let e = s
        .get(ServiceType::Identity, "/v3/projects/no-such-project", &[])
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e}");
    assert!(e.to_string().contains("no-such-project"), "{e}");
}

#[tokio::test]
async fn a_wrong_password_is_an_auth_error_without_the_password() {
    let k = keystone();
    let wrong = "not-the-Password-42";
    let cloud = cloud_from_yaml(
        "wrong",
        &format!(
            "  wrong:\n    auth:\n      auth_url: {}\n      username: demo\n      password: {wrong}\n      \
             user_domain_name: Default\n      project_name: demo\n      project_domain_name: Default\n",
            k.url
        ),
    );
    let s = session(&cloud);
    let e = s.authenticate().await.unwrap_err();
    assert!(matches!(e, Error::Auth { status: 401, .. }), "{e}");
    assert!(e.to_string().contains("requires authentication"), "{e}");
    for text in [e.to_string(), format!("{e:?}"), format!("{s:?}")] {
        assert!(!text.contains(wrong), "{text}");
    }
    // A wrong application-credential secret as well.
    let cloud = cloud_from_yaml(
        "wrong-ac",
        &format!(
            "  wrong-ac:\n    auth_type: v3applicationcredential\n    auth:\n      auth_url: {}\n      \
             application_credential_id: {}\n      application_credential_secret: {wrong}\n",
            k.url, k.appcred_id
        ),
    );
    let e = session(&cloud).authenticate().await.unwrap_err();
    assert_eq!(e.status(), Some(401), "{e}");
    assert!(!format!("{e} {e:?}").contains(wrong));
}

/// `curl` with the admin token; the HTTP status.
fn curl(k: &Keystone, method: &str, path: &str, subject: &str) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            method,
        ])
        .arg("-H")
        .arg(format!("X-Auth-Token: {}", k.admin_token))
        .arg("-H")
        .arg(format!("X-Subject-Token: {subject}"))
        .arg(format!("{}{path}", k.url))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_revoked_token_is_replaced() {
    let k = keystone();
    let s = session(&admin_from_env(k));
    let first = s.current_token_for_tests().await.unwrap();
    assert_eq!(
        curl(k, "GET", "/auth/tokens", &first),
        200,
        "server pid {}",
        k.server_pid
    );
    assert_eq!(curl(k, "DELETE", "/auth/tokens", &first), 204);
    assert_eq!(curl(k, "GET", "/auth/tokens", &first), 404, "revoked");
    // Keystone keeps revocation times in whole seconds: a token issued in the same second as the
    // revocation would count as revoked too, so let that second pass first.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let reply = s
        .get(ServiceType::Identity, "/v3/projects", &[])
        .await
        .unwrap();
    assert_eq!(reply.status, 200);
    let second = s.current_token_for_tests().await.unwrap();
    assert_ne!(first, second);
    assert_eq!(curl(k, "GET", "/auth/tokens", &second), 200);
}

#[tokio::test]
async fn tokens_are_renewed_before_they_expire() {
    let k = keystone();
    let cloud = admin_from_env(k);
    // Keystone's tokens live 3600 s; a margin above that renews on every call.
    let options = SessionOptions {
        refresh_before: Duration::from_secs(7200),
        ..SessionOptions::default()
    };
    let s = Session::new(&cloud, options).unwrap();
    s.authenticate().await.unwrap();
    let expires = s.token_expires_at().unwrap();
    let left = expires.duration_since(SystemTime::now()).unwrap();
    assert!(
        left > Duration::from_secs(3000) && left <= Duration::from_secs(3600),
        "{left:?}"
    );
    let mut tokens = vec![s.current_token_for_tests().await.unwrap()];
    for _ in 0..2 {
        s.get(ServiceType::Identity, "/v3/projects", &[])
            .await
            .unwrap();
        tokens.push(s.current_token_for_tests().await.unwrap());
    }
    let distinct: std::collections::HashSet<&String> = tokens.iter().collect();
    assert_eq!(distinct.len(), 3, "a new token for each call");
    // With the default margin the token is kept.
    let s = session(&cloud);
    let first = s.current_token_for_tests().await.unwrap();
    s.get(ServiceType::Identity, "/v3/projects", &[])
        .await
        .unwrap();
    assert_eq!(s.current_token_for_tests().await.unwrap(), first);
}
