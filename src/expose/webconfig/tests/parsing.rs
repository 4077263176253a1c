//! Strict parsing and checking of the file (no sockets), and the `Authorization` header.

use super::*;

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_str(
        dir.path(),
        "tls_server_config:\n  cert_file: a\n  bogus_key: 1\n",
    )
    .unwrap_err();
    assert_eq!(e.kind(), "web_config_syntax");
    let m = e.to_string();
    assert!(m.contains("bogus_key") && m.contains("web.yml"), "{m}");
    let e = load_str(dir.path(), "basic_auth_user: {}\n").unwrap_err();
    assert!(e.to_string().contains("basic_auth_user"), "{e}");
    let e = load_str(dir.path(), "http_server_config:\n  http3: true\n").unwrap_err();
    assert!(e.to_string().contains("http3"), "{e}");
}

#[test]
fn bad_client_auth_type() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    let e = load_str(
        dir.path(),
        &tls_yaml("  client_auth_type: RequireEverything\n", ""),
    )
    .unwrap_err();
    assert_eq!(e.kind(), "web_config_invalid");
    let m = e.to_string();
    assert!(m.contains("tls_server_config.client_auth_type"), "{m}");
    assert!(
        m.contains("RequireEverything") && m.contains("RequireAndVerifyClientCert"),
        "{m}"
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("conf");
    std::fs::create_dir(&sub).unwrap();
    pki(&sub);
    // The working directory is the crate, not `sub`: this only loads if paths are resolved.
    let loaded = load(&write(&sub, "web.yml", &tls_yaml("", ""))).unwrap();
    assert!(loaded.tls.is_some());
    assert_eq!(
        loaded.referenced,
        vec![sub.join("server.pem"), sub.join("server.key")]
    );
}

#[test]
fn missing_cert_file_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = load_str(
        dir.path(),
        "tls_server_config:\n  cert_file: nope.pem\n  key_file: nope.key\n",
    )
    .unwrap_err();
    assert_eq!(e.kind(), "web_config_file");
    let m = e.to_string();
    assert!(m.contains("web.yml"), "{m}");
    assert!(m.contains("tls_server_config.cert_file"), "{m}");
    assert!(
        m.contains(&dir.path().join("nope.pem").display().to_string()),
        "{m}"
    );
}

#[test]
fn unsupported_settings_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    for (extra, rest, key) in [
        (
            "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n",
            "",
            "cipher_suites",
        ),
        ("  curve_preferences: [X25519]\n", "", "curve_preferences"),
        ("  client_allowed_sans: [a]\n", "", "client_allowed_sans"),
        (
            "",
            "rate_limit:\n  interval: 1s\n  burst: 2\n",
            "rate_limit",
        ),
    ] {
        let e = load_str(dir.path(), &tls_yaml(extra, rest)).unwrap_err();
        assert_eq!(e.kind(), "web_config_unsupported", "{e}");
        let m = e.to_string();
        assert!(m.contains(key) && m.contains("not supported"), "{m}");
    }
}

#[test]
fn other_checks() {
    let dir = tempfile::tempdir().unwrap();
    pki(dir.path());
    // Empty file: plain HTTP, no auth.
    let l = load_str(dir.path(), "# nothing\n").unwrap();
    assert!(l.tls.is_none() && l.users.is_empty());
    // A password where a hash belongs: error, and the value is not echoed.
    let e = load_str(dir.path(), "basic_auth_users:\n  alice: hunter2\n").unwrap_err();
    assert!(e.to_string().contains("basic_auth_users.alice"), "{e}");
    assert!(!e.to_string().contains("hunter2"), "{e}");
    // Headers: only the five, with their fixed values.
    let e = load_str(
        dir.path(),
        "http_server_config:\n  headers:\n    Server: x\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("http_server_config.headers.Server"),
        "{e}"
    );
    let e = load_str(
        dir.path(),
        "http_server_config:\n  headers:\n    X-Frame-Options: allow\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("deny"), "{e}");
    // TLS versions.
    let e = load_str(
        dir.path(),
        &tls_yaml("  min_version: TLS13\n  max_version: TLS12\n", ""),
    )
    .unwrap_err();
    assert!(e.to_string().contains("max_version"), "{e}");
    let e = load_str(dir.path(), &tls_yaml("  min_version: TLS10\n", "")).unwrap_err();
    assert!(e.to_string().contains("min_version"), "{e}");
    assert!(load_str(dir.path(), &tls_yaml("  min_version: TLS13\n", "")).is_ok());
    // Client CA without client auth, verification without CA.
    let e = load_str(dir.path(), &tls_yaml("  client_ca_file: ca.pem\n", "")).unwrap_err();
    assert!(e.to_string().contains("NoClientCert"), "{e}");
    let e = load_str(
        dir.path(),
        &tls_yaml("  client_auth_type: RequireAndVerifyClientCert\n", ""),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("tls_server_config.client_ca_file"),
        "{e}"
    );
    // A key that does not belong to the certificate.
    let other = stinger_testsupport::tls::key_pem();
    write(dir.path(), "other.key", &other);
    let e = load_str(
        dir.path(),
        "tls_server_config:\n  cert_file: server.pem\n  key_file: other.key\n",
    )
    .unwrap_err();
    assert!(e.to_string().contains("key_file"), "{e}");
    // Inline PEM works like the files.
    let inline = format!(
        "tls_server_config:\n  cert: |\n{}  key_file: server.key\n",
        std::fs::read_to_string(dir.path().join("server.pem"))
            .unwrap()
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    assert!(load_str(dir.path(), &inline).unwrap().tls.is_some());
    // Debug never shows a hash.
    let l = load_str(dir.path(), &users_yaml(&[("alice", "pw")])).unwrap();
    assert!(!format!("{l:?}").contains("$2"), "{l:?}");
    assert!(validate(&dir.path().join("web.yml")).is_ok());
    assert_eq!(
        validate(&dir.path().join("missing.yml"))
            .unwrap_err()
            .kind(),
        "web_config_read"
    );
}

#[test]
fn credentials_parsing() {
    let req = |v: &str| {
        Request::builder()
            .header(AUTHORIZATION, v)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let b = base64::engine::general_purpose::STANDARD.encode("al:ice:pa:ss");
    assert_eq!(
        basic_credentials(&req(&format!("basic {b}"))),
        Some(("al".to_owned(), b"ice:pa:ss".to_vec()))
    );
    assert_eq!(basic_credentials(&req(&format!("Bearer {b}"))), None);
    assert_eq!(basic_credentials(&req("Basic !!!")), None);
}
