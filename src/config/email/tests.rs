//! `[email]` validation: every key's mistakes named, the schedule and per-project forms.

use super::*;

fn enabled() -> EmailFile {
    EmailFile {
        enabled: true,
        to: vec!["Ops <ops@example.org>".into()],
        ..Default::default()
    }
}

fn keys(p: &[Problem]) -> Vec<&str> {
    p.iter().map(|p| p.key.as_str()).collect()
}

#[test]
fn disabled_is_none_and_never_checked() {
    let mut problems = Vec::new();
    let f = EmailFile {
        from: "not an address".into(),
        ..Default::default()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert!(problems.is_empty());
}

#[test]
fn a_good_section_builds() {
    let mut problems = Vec::new();
    let c = build(&enabled(), &mut problems).expect("valid");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!((c.host.as_str(), c.port), ("127.0.0.1", 25));
    assert_eq!(c.to[0].email.to_string(), "ops@example.org");
    assert_eq!(c.to[0].name.as_deref(), Some("Ops"));
    assert_eq!(c.credentials, None);
    assert_eq!(
        c.schedule,
        Schedule {
            when: When::Every(DEFAULT_INTERVAL),
            tz: jiff::tz::TimeZone::UTC
        }
    );
    assert!(c.projects.is_empty());
    assert_eq!(c.audiences().len(), 1);
}

/// The form the README documents.
#[test]
fn projects_at_and_timezone_parse_from_toml() {
    let f: EmailFile = toml::from_str(
        r#"
enabled = true
to = ["Cloud admins <admins@example.org>"]
at = "07:00"
timezone = "Europe/Berlin"

[projects]
acme = ["Acme ops <ops@acme.example>", "sec@acme.example"]
"0c4e939acacf4376bdcd1129f1a054ad" = ["web@example.org"]
"#,
    )
    .unwrap();
    let mut problems = Vec::new();
    let c = build(&f, &mut problems).expect("valid");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(c.schedule.describe(), "daily at 07:00 Europe/Berlin");
    let audiences = c.audiences();
    let names: Vec<Option<&str>> = audiences.iter().map(|a| a.project.as_deref()).collect();
    assert_eq!(
        names,
        [None, Some("0c4e939acacf4376bdcd1129f1a054ad"), Some("acme")],
        "the admins first, then the projects in key order"
    );
    assert_eq!(audiences[2].to.len(), 2);
    assert_eq!(audiences[2].to[0].email.to_string(), "ops@acme.example");
    // It prints back (check-config) to the same thing.
    let printed = toml::to_string_pretty(&f).unwrap();
    assert_eq!(
        toml::from_str::<EmailFile>(&printed).unwrap(),
        f,
        "{printed}"
    );
    // Only project recipients, no admins: fine.
    let f = EmailFile {
        to: Vec::new(),
        ..f
    };
    let c = build(&f, &mut problems).expect("valid without admins");
    assert_eq!(c.audiences().len(), 2);
}

#[test]
fn schedule_and_project_mistakes_name_their_keys() {
    let mut problems = Vec::new();
    let f = EmailFile {
        at: Some("7am".into()),
        timezone: "Europe/Atlantis".into(),
        projects: [
            (
                "acme".to_string(),
                vec!["ok@acme.example".into(), "nope".into()],
            ),
            ("web team".to_string(), Vec::new()),
            (" ".to_string(), vec!["x@example.org".into()]),
        ]
        .into_iter()
        .collect(),
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert_eq!(
        keys(&problems),
        [
            "email.projects.\" \"",
            "email.projects.acme[1]",
            "email.projects.\"web team\"",
            "email.timezone",
            "email.at",
        ]
    );
    let message = |key: &str| {
        problems
            .iter()
            .find(|p| p.key == key)
            .map(|p| p.message.as_str())
            .unwrap_or_default()
    };
    assert!(message("email.at").contains("HH:MM"), "{problems:?}");
    assert!(message("email.timezone").contains("IANA"), "{problems:?}");
    assert!(
        message("email.projects.acme[1]").starts_with("\"nope\" is not an e-mail address"),
        "{problems:?}"
    );

    problems.clear();
    let f = EmailFile {
        at: Some("07:00".into()),
        interval: Some(Duration::from_secs(3600)),
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert_eq!(keys(&problems), ["email.at"]);
    assert!(problems[0].message.contains("not both"), "{problems:?}");

    problems.clear();
    let f = EmailFile {
        to: Vec::new(),
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert_eq!(keys(&problems), ["email.to"]);
    assert!(problems[0].message.contains("[email.projects]"));
}

#[test]
fn every_bad_key_is_named() {
    let mut problems = Vec::new();
    let f = EmailFile {
        smtp_server: "mail.example.org".into(),
        from: "stinger at example".into(),
        to: vec!["ok@example.org".into(), "@@".into()],
        interval: Some(Duration::from_secs(5)),
        min_cvss: 11.0,
        max_lines: 0,
        password_file: Some("/nonexistent".into()),
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert_eq!(
        keys(&problems),
        [
            "email.smtp_server",
            "email.from",
            "email.to[1]",
            "email.interval",
            "email.min_cvss",
            "email.max_lines",
            "email.password_file"
        ]
    );
    assert!(problems[0].message.contains("host:port"), "{problems:?}");
    let f = EmailFile {
        to: Vec::new(),
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert!(keys(&problems).contains(&"email.to"));
}

#[test]
fn the_password_comes_from_its_file_and_never_prints() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret-smtp\nignored\n").unwrap();
    let mut problems = Vec::new();
    let f = EmailFile {
        username: "stinger".into(),
        password_file: Some(pw),
        ..enabled()
    };
    let c = build(&f, &mut problems).expect("valid");
    let (user, password) = c.credentials.clone().expect("credentials");
    assert_eq!(
        (user.as_str(), password.expose()),
        ("stinger", "s3cret-smtp")
    );
    assert!(!format!("{c:?}").contains("s3cret"));

    let f = EmailFile {
        username: "stinger".into(),
        password_env: "STINGER_TEST_SURELY_UNSET_SMTP_PW".into(),
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert!(problems[0]
        .message
        .contains("STINGER_TEST_SURELY_UNSET_SMTP_PW"));
}

#[test]
fn host_port_forms() {
    assert_eq!(split_host_port("[::1]:587"), Ok(("::1".to_string(), 587)));
    assert_eq!(
        split_host_port("smtp.example.org:465"),
        Ok(("smtp.example.org".to_string(), 465))
    );
    assert!(split_host_port(":25").is_err());
    assert!(split_host_port("host:0").is_err());
    assert!(split_host_port("host:smtp").is_err());
}

#[test]
fn a_ca_file_must_hold_pem_and_needs_tls() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "not a certificate").unwrap();
    let mut problems = Vec::new();
    let f = EmailFile {
        ca_file: Some(ca.clone()),
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert!(problems[0].message.contains("no PEM"), "{problems:?}");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\nbroken\n").unwrap();
    problems.clear();
    let f = EmailFile {
        ca_file: Some(ca.clone()),
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert!(problems[0].message.contains("broken"), "{problems:?}");
    std::fs::write(&ca, stinger_testsupport::tls::Ca::new("test CA").pem()).unwrap();
    problems.clear();
    let f = EmailFile {
        ca_file: Some(ca.clone()),
        ..enabled()
    };
    assert!(build(&f, &mut problems).is_some(), "{problems:?}");
    problems.clear();
    let f = EmailFile {
        ca_file: Some(ca),
        tls: TlsMode::None,
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert_eq!(keys(&problems), ["email.ca_file"]);
}

#[test]
fn auth_without_tls_is_refused_unless_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("pw");
    std::fs::write(&pw, "s3cret\n").unwrap();
    let mut problems = Vec::new();
    let f = EmailFile {
        tls: TlsMode::None,
        username: "stinger".into(),
        password_file: Some(pw.clone()),
        ..enabled()
    };
    assert_eq!(build(&f, &mut problems), None);
    assert_eq!(keys(&problems), ["email.tls"]);
    let msg = format!("{problems:?}");
    assert!(msg.contains("allow_plaintext_auth"), "{msg}");
    assert!(!msg.contains("s3cret"), "{msg}");
    problems.clear();
    let f = EmailFile {
        allow_plaintext_auth: true,
        ..f
    };
    assert!(build(&f, &mut problems).is_some(), "{problems:?}");
    // Without a user there is nothing to protect.
    problems.clear();
    let f = EmailFile {
        tls: TlsMode::None,
        ..enabled()
    };
    assert!(build(&f, &mut problems).is_some(), "{problems:?}");
}
