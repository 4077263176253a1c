//! Which cloud is picked: asked for, OS_CLOUD, the `envvars` cloud, the only cloud; OS_CLOUD_NAME.

use super::*;

fn two_clouds(s: &Sandbox) {
    let text = format!(
        "{}{}",
        cloud_yaml("a", "https://a.example", ""),
        cloud_yaml("b", "https://b.example", "").trim_start_matches("clouds:\n")
    );
    s.write("cwd/clouds.yaml", &text);
}

fn env_password(s: &mut Sandbox) {
    s.set("OS_AUTH_URL", "https://env.example/v3")
        .set("OS_USERNAME", "env-user")
        .set("OS_PASSWORD", "env-pass")
        .set("OS_USER_DOMAIN_NAME", "Default")
        .set("OS_PROJECT_NAME", "env-proj")
        .set("OS_PROJECT_DOMAIN_NAME", "Default");
}

#[test]
fn os_cloud_selects_and_the_argument_overrides_it() {
    let mut s = Sandbox::new();
    two_clouds(&s);
    s.set("OS_CLOUD", "b");
    assert_eq!(s.ok(None).name, "b");
    assert_eq!(auth_url(&s.ok(None)), "https://b.example");
    assert_eq!(s.ok(Some("a")).name, "a");
    s.set("OS_CLOUD", "nope");
    let e = s.err(None);
    assert_eq!(e.kind(), "cloud_not_found");
    assert!(e.to_string().contains("\"nope\""), "{e}");
    assert!(e.to_string().contains("clouds defined: a, b"), "{e}");
}

#[test]
fn the_only_cloud_is_used_and_several_need_a_choice() {
    let s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("solo", "https://solo.example", ""),
    );
    assert_eq!(s.ok(None).name, "solo");
    two_clouds(&s);
    let e = s.err(None);
    assert_eq!(e.kind(), "no_cloud_selected");
    assert!(e.to_string().contains("OS_CLOUD"), "{e}");
}

#[test]
fn the_envvars_cloud_wins_without_os_cloud_and_is_never_laid_over_a_file_cloud() {
    let mut s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("solo", "https://solo.example", ""),
    );
    env_password(&mut s);
    let c = s.ok(None);
    assert_eq!(c.name, "envvars");
    assert_eq!(c.source, ConfigSource::Environment);
    assert_eq!(auth_url(&c), "https://env.example/v3");

    // OS_CLOUD names the file's cloud: none of the OS_* credentials leak into it.
    s.set("OS_CLOUD", "solo");
    let c = s.ok(None);
    assert_eq!(c.name, "solo");
    let Auth::Password { user, password, .. } = &c.auth else {
        panic!()
    };
    assert_eq!(
        *user,
        UserRef::Name {
            name: "u".into(),
            domain: name_in("Default")
        }
    );
    assert_eq!(password.expose(), "p");

    // And the environment's cloud is still there by name.
    assert_eq!(s.ok(Some("envvars")).name, "envvars");
}

#[test]
fn os_cloud_name_renames_the_environment_cloud() {
    let mut s = Sandbox::new();
    env_password(&mut s);
    s.set("OS_CLOUD_NAME", "from-env");
    let c = s.ok(None);
    assert_eq!(c.name, "from-env");
    assert_eq!(s.err(Some("envvars")).kind(), "cloud_not_found");
}

#[test]
fn os_cloud_name_clashing_with_a_file_cloud_is_an_error() {
    let mut s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("prod", "https://prod.example", ""),
    );
    s.set("OS_CLOUD_NAME", "prod");
    let e = s.err(None);
    assert_eq!(e.kind(), "cloud_name_clash");
    assert!(e.to_string().contains("\"prod\""), "{e}");
    assert!(e.to_string().contains("clouds.yaml"), "{e}");

    // Without OS_CLOUD_NAME the reserved name is "envvars", even when no OS_* credential is set.
    let s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("envvars", "https://x.example", ""),
    );
    assert_eq!(s.err(None).kind(), "cloud_name_clash");
}

#[test]
fn selectors_alone_make_no_environment_cloud() {
    let mut s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("solo", "https://solo.example", "    regions: [R1, R2]\n"),
    );
    s.set("OS_REGION_NAME", "R2")
        .set("OS_CLIENT_SECURE_FILE", "none.yaml")
        .set("OS_CLOUD_NAME", "x");
    let c = s.ok(None);
    assert_eq!(c.name, "solo");
    // As in openstacksdk, OS_REGION_NAME only feeds the environment's cloud.
    assert_eq!(c.region.as_deref(), Some("R1"));
}

#[test]
fn test_runner_variables_are_ignored() {
    let mut s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("solo", "https://solo.example", ""),
    );
    s.set("OS_TEST_TIMEOUT", "60")
        .set("OS_STDOUT_CAPTURE", "1")
        .set("OS_LOG_CAPTURE", "1");
    assert_eq!(s.ok(None).name, "solo");
}

#[test]
fn nothing_at_all_is_the_defaults_cloud_which_cannot_authenticate() {
    // openstacksdk builds an empty `defaults` cloud here; without auth_url it cannot be used.
    let mut s = Sandbox::new();
    assert_eq!(s.err(None).kind(), "no_config");
    assert_eq!(s.err(Some("defaults")).kind(), "no_config");
    s.set("OS_CLOUD", "prod");
    assert_eq!(s.err(None).kind(), "no_config");
}

#[test]
fn load_all_resolves_each_name_once_in_order() {
    let mut s = Sandbox::new();
    two_clouds(&s);
    env_password(&mut s);
    let names: Vec<String> = ["b", "envvars", "b", "a"].map(String::from).into();
    let got: Vec<String> = load_all(&s.env, &names)
        .expect("all load")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(got, ["b", "envvars", "a"]);

    let all: Vec<String> = load_all(&s.env, &[])
        .expect("all")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(all, ["a", "b", "envvars"]);

    let e = load_all(&s.env, &["a".to_owned(), "zz".to_owned()]).expect_err("zz is unknown");
    assert_eq!(e.kind(), "cloud_not_found");
}
