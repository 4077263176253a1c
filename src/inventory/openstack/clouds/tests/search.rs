//! Which file is read: search order, first found wins, secure.yaml merged over it, bad files.

use super::*;

fn url_of(s: &Sandbox) -> String {
    auth_url(&s.ok(None)).to_owned()
}

#[test]
fn directories_are_searched_in_openstacksdk_order() {
    let mut s = Sandbox::new();
    s.env.xdg_config_home = Some(s.root().join("xdg-home"));
    let layers = [
        ("cwd", "https://cwd.example/v3"),
        ("xdg-home/openstack", "https://xdg-home.example/v3"),
        ("home/.config/openstack", "https://home.example/v3"),
        ("etc/xdg/openstack", "https://etc-xdg.example/v3"),
        ("etc/openstack", "https://etc.example/v3"),
    ];
    for (dir, url) in layers {
        s.write(&format!("{dir}/clouds.yaml"), &cloud_yaml("c", url, ""));
    }
    for (dir, url) in layers {
        assert_eq!(url_of(&s), url, "expected {dir} to win");
        std::fs::remove_file(s.root().join(dir).join("clouds.yaml")).expect("rm");
    }
    assert_eq!(s.err(None).kind(), "no_config");
}

#[test]
fn xdg_config_dirs_replace_etc_xdg_and_snap_real_home_replaces_home() {
    let mut s = Sandbox::new();
    s.env.xdg_config_dirs = Some(s.root().join("site").display().to_string());
    s.write(
        "etc/xdg/openstack/clouds.yaml",
        &cloud_yaml("c", "https://etc-xdg.example", ""),
    );
    s.write(
        "site/openstack/clouds.yaml",
        &cloud_yaml("c", "https://site.example", ""),
    );
    assert_eq!(url_of(&s), "https://site.example");

    s.env.snap_real_home = Some(s.root().join("real-home"));
    s.write(
        "real-home/.config/openstack/clouds.yaml",
        &cloud_yaml("c", "https://snap.example", ""),
    );
    assert_eq!(url_of(&s), "https://snap.example");
}

#[test]
fn yaml_beats_yml_beats_json_in_one_directory() {
    let s = Sandbox::new();
    let json = r#"{"clouds": {"c": {"auth": {"auth_url": "https://json.example", "username": "u",
        "password": "p", "user_domain_name": "D", "project_id": "p1"}}}}"#;
    s.write("home/.config/openstack/clouds.json", json);
    assert_eq!(url_of(&s), "https://json.example");
    s.write(
        "home/.config/openstack/clouds.yml",
        &cloud_yaml("c", "https://yml.example", ""),
    );
    assert_eq!(url_of(&s), "https://yml.example");
    s.write(
        "home/.config/openstack/clouds.yaml",
        &cloud_yaml("c", "https://yaml.example", ""),
    );
    assert_eq!(url_of(&s), "https://yaml.example");
}

#[test]
fn first_file_found_is_used_alone_not_merged() {
    let s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("near", "https://near.example", ""),
    );
    s.write(
        "etc/openstack/clouds.yaml",
        &cloud_yaml("far", "https://far.example", ""),
    );
    let e = s.err(Some("far"));
    assert_eq!(e.kind(), "cloud_not_found");
    let msg = e.to_string();
    assert!(msg.contains("clouds defined: near"), "{msg}");
    assert!(msg.contains("cwd/clouds.yaml"), "{msg}");
}

#[test]
fn os_client_config_file_goes_first_and_is_relative_to_cwd() {
    let mut s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("c", "https://cwd.example", ""),
    );
    s.write(
        "cwd/conf/mine.yaml",
        &cloud_yaml("c", "https://mine.example", ""),
    );
    s.set("OS_CLIENT_CONFIG_FILE", "conf/mine.yaml");
    assert_eq!(url_of(&s), "https://mine.example");
    // A named file that does not exist just falls through to the search path.
    s.set("OS_CLIENT_CONFIG_FILE", "conf/missing.yaml");
    assert_eq!(url_of(&s), "https://cwd.example");
}

#[test]
fn secure_yaml_is_deep_merged_over_clouds_yaml() {
    let s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        "clouds:\n  c:\n    region_name: R1\n    auth:\n      auth_url: https://k.example/v3\n      \
         username: from-clouds\n      user_domain_name: D\n      project_name: P\n      \
         project_domain_name: D\n",
    );
    // In another directory: each file is searched for on its own.
    s.write(
        "etc/openstack/secure.yaml",
        "clouds:\n  c:\n    auth:\n      username: from-secure\n      password: sekrit\n",
    );
    let c = s.ok(None);
    let Auth::Password {
        user,
        password,
        scope,
        auth_url,
        ..
    } = &c.auth
    else {
        panic!("{:?}", c.auth)
    };
    assert_eq!(
        auth_url, "https://k.example/v3",
        "clouds.yaml's auth keys are kept"
    );
    assert_eq!(
        *user,
        UserRef::Name {
            name: "from-secure".into(),
            domain: name_in("D")
        }
    );
    assert_eq!(password.expose(), "sekrit");
    assert!(scope.is_some());
    assert_eq!(c.region.as_deref(), Some("R1"));
    assert_eq!(
        c.source,
        ConfigSource::Files {
            clouds: Some(s.root().join("cwd/clouds.yaml")),
            secure: Some(s.root().join("etc/openstack/secure.yaml")),
        }
    );
}

#[test]
fn os_client_secure_file_goes_first() {
    let mut s = Sandbox::new();
    s.write("cwd/clouds.yaml", &cloud_yaml("c", "https://k.example", ""));
    s.write(
        "cwd/secure.yaml",
        "clouds:\n  c:\n    auth:\n      password: from-search\n",
    );
    s.write(
        "elsewhere/s.yaml",
        "clouds:\n  c:\n    auth:\n      password: from-var\n",
    );
    s.set(
        "OS_CLIENT_SECURE_FILE",
        &s.root().join("elsewhere/s.yaml").display().to_string(),
    );
    let Auth::Password { password, .. } = s.ok(None).auth else {
        panic!()
    };
    assert_eq!(password.expose(), "from-var");
}

#[test]
fn nothing_found_lists_the_paths_searched_and_the_variables() {
    let s = Sandbox::new();
    let e = s.err(None);
    assert_eq!(e.kind(), "no_config");
    let msg = e.to_string();
    for needle in [
        s.root().join("cwd/clouds.yaml").display().to_string(),
        s.root()
            .join("home/.config/openstack/clouds.yml")
            .display()
            .to_string(),
        s.root()
            .join("etc/openstack/clouds.json")
            .display()
            .to_string(),
        "OS_CLIENT_CONFIG_FILE".into(),
        "OS_AUTH_URL".into(),
        "OS_APPLICATION_CREDENTIAL_ID".into(),
    ] {
        assert!(msg.contains(&needle), "{needle} missing from: {msg}");
    }
}

#[test]
fn an_empty_file_still_stops_the_search() {
    let s = Sandbox::new();
    let empty = s.write("cwd/clouds.yaml", "");
    s.write(
        "etc/openstack/clouds.yaml",
        &cloud_yaml("c", "https://etc.example", ""),
    );
    let e = s.err(None);
    assert_eq!(e.kind(), "no_clouds");
    assert!(e.to_string().contains(&empty.display().to_string()), "{e}");
}

#[test]
fn invalid_or_unreadable_files_are_errors_naming_the_file() {
    let s = Sandbox::new();
    s.write(
        "etc/openstack/clouds.yaml",
        &cloud_yaml("c", "https://etc.example", ""),
    );

    let bad = s.write("cwd/clouds.yaml", "clouds:\n  c: [unclosed\n");
    let e = s.err(None);
    assert_eq!(e.kind(), "invalid_file");
    assert!(e.to_string().contains(&bad.display().to_string()), "{e}");

    s.write("cwd/clouds.yaml", "- just\n- a list\n");
    let e = s.err(None);
    assert_eq!(e.kind(), "invalid_file");
    assert!(e.to_string().contains("not a mapping"), "{e}");

    s.write("cwd/clouds.yaml", "clouds: [a, b]\n");
    assert_eq!(s.err(None).kind(), "invalid_file");

    s.write("cwd/clouds.yaml", "clouds:\n  c: !vault abc\n");
    assert_eq!(s.err(None).kind(), "invalid_file");

    // A directory where the file should be cannot be read (permissions cannot be tested as root).
    std::fs::remove_file(&bad).expect("rm");
    std::fs::create_dir(&bad).expect("mkdir");
    let e = s.err(None);
    assert_eq!(e.kind(), "unreadable_file");
    assert!(e.to_string().contains(&bad.display().to_string()), "{e}");

    let json = s.write("cwd/x/clouds.json", "{\"clouds\": {");
    let mut s = s;
    s.set("OS_CLIENT_CONFIG_FILE", &json.display().to_string());
    assert_eq!(s.err(None).kind(), "invalid_file");
}

#[test]
fn a_file_without_clouds_key_has_no_clouds_and_says_so() {
    let mut s = Sandbox::new();
    s.write("cwd/clouds.yaml", "cache:\n  max_age: 3600\n");
    assert_eq!(s.err(None).kind(), "no_clouds");
    s.set("OS_AUTH_URL", "https://env.example")
        .set("OS_USER_ID", "u")
        .set("OS_PASSWORD", "p");
    let c = s.ok(None);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("no top-level `clouds` key")),
        "{:?}",
        c.warnings
    );
}
