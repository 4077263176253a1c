//! Secrets never show in Debug output or in any error.

use super::*;

const PW: &str = "s3cr3t-XYZZY";
const AC: &str = "ac-s3cr3t-PLUGH";

fn assert_clean(text: &str) {
    assert!(
        !text.contains(PW) && !text.contains(AC),
        "secret leaked: {text}"
    );
}

fn assert_error_clean(e: &Error) {
    assert_clean(&e.to_string());
    assert_clean(&format!("{e:?}"));
}

#[test]
fn secret_prints_as_stars() {
    let s = Secret::new(PW);
    assert_eq!(format!("{s}"), "***");
    assert_eq!(format!("{s:?}"), "***");
    assert_eq!(s.expose(), PW);
}

#[test]
fn cloud_configs_and_env_debug_without_secrets() {
    let mut s = Sandbox::new();
    s.write(
        "cwd/clouds.yaml",
        &cloud_yaml("c", "https://k.example/v3", "").replace(": p\n", &format!(": {PW}\n")),
    );
    s.set("OS_AUTH_TYPE", "v3applicationcredential")
        .set("OS_AUTH_URL", "https://k.example/v3")
        .set("OS_APPLICATION_CREDENTIAL_ID", "id")
        .set("OS_APPLICATION_CREDENTIAL_SECRET", AC)
        .set("OS_PASSWORD", PW);
    let env_cloud = s.ok(None);
    let file_cloud = s.ok(Some("c"));
    let Auth::Password { password, .. } = &file_cloud.auth else {
        panic!()
    };
    assert_eq!(password.expose(), PW, "the file's password was read");
    for text in [
        format!("{env_cloud:?}"),
        format!("{file_cloud:?}"),
        format!("{env_cloud:#?}"),
        format!("{:?}", s.env),
    ] {
        assert_clean(&text);
        assert!(
            text.contains("***") || text.contains("OS_PASSWORD"),
            "{text}"
        );
    }
}

#[test]
fn errors_after_the_secret_was_read_do_not_carry_it() {
    let s = Sandbox::new();
    let cases = [
        // password present, user missing
        format!("clouds:\n  c:\n    auth:\n      auth_url: https://k.example\n      password: {PW}\n"),
        // domain scope refused
        format!(
            "clouds:\n  c:\n    domain_name: D\n    auth:\n      auth_url: https://k.example\n      \
             user_id: u\n      password: {PW}\n"
        ),
        // password of the wrong type
        format!(
            "clouds:\n  c:\n    auth:\n      auth_url: https://k.example\n      user_id: u\n      \
             password: [{PW}]\n"
        ),
        // credentials in the URL
        format!("clouds:\n  c:\n    auth:\n      auth_url: ftp://u:{PW}@k.example/v3\n      user_id: u\n      password: x\n"),
        // bad identity version next to an app credential secret
        format!(
            "clouds:\n  c:\n    auth_type: v3applicationcredential\n    identity_api_version: 2\n    \
             auth:\n      auth_url: https://k.example\n      application_credential_secret: {AC}\n"
        ),
        // app credential with neither id nor name
        format!(
            "clouds:\n  c:\n    auth_type: v3applicationcredential\n    auth:\n      \
             auth_url: https://k.example\n      application_credential_secret: {AC}\n"
        ),
        // YAML syntax errors around the secret
        format!("clouds:\n  c:\n    auth:\n      password: {PW}\n     bad: [\n"),
        format!("clouds:\n  c:\n    auth:\n      password: \"{PW}\n"),
        format!("clouds:\n  c:\n    auth:\n      password: {PW}\n      password: {PW}\n"),
    ];
    for text in &cases {
        s.write("cwd/clouds.yaml", text);
        let e = s.err(None);
        assert_error_clean(&e);
    }
    // And every one together, as load_all reports them.
    let mut s = s;
    s.write("cwd/clouds.yaml", &cases[0]);
    s.write("cwd/x.yaml", &cases[1]);
    s.set("OS_CLIENT_CONFIG_FILE", "x.yaml");
    let e = load_all(&s.env, &["c".to_owned(), "d".to_owned()]).expect_err("both fail");
    assert_error_clean(&e);
}

#[test]
fn urls_in_errors_lose_their_user_info() {
    assert_eq!(
        error::redact_url("https://user:pw@k.example:5000/v3?x=y@z"),
        "https://***@k.example:5000/v3?x=y@z"
    );
    assert_eq!(
        error::redact_url("https://k.example/v3"),
        "https://k.example/v3"
    );
    assert_eq!(error::redact_url("no-scheme"), "no-scheme");
}
