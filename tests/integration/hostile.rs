//! Hostile label values through the real agent, from every source that feeds a label: banners a
//! real nmap reads off loopback listeners (a quote, a backslash, invalid UTF-8, non-ASCII), VM,
//! project, user and security-group names from the fake cloud and the real Keystone (quotes,
//! backslashes, line feed, carriage return, NUL, 10 kB), a Greenbone feed name from the fake gvmd,
//! and a target group name from the config. Both exposition formats stay valid (`promtool check
//! metrics` for the text format; a real Prometheus, which negotiates OpenMetrics, keeps the target
//! `up` and reads every hostile value back as the agent's clean form of it).

use crate::keystone_server::{keystone, keystone_call, register_region};
use crate::services::Banner;
use crate::util::*;
use serde_json::{json, Value};
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use stinger::expose::labels::clean;
use stinger_testsupport::fake_cloud::{
    Cloud, FakeCloud, FakeConfig, RuleSpec, SecurityGroupSpec, ServerSpec, TokenCheck,
};
use stinger_testsupport::fake_gvmd::{FakeGvmd, Faults, PASSWORD, USER};
use stinger_testsupport::promtool;

const VM: &str = "0e7b1d6e-0000-4000-8000-0000000000e1";
const LONG_VM: &str = "0e7b1d6e-0000-4000-8000-0000000000e2";
const CLOUD_ADDR: &str = "127.0.90.10";
const CIDR_ADDR: &str = "127.0.90.20";
const PROM: &str = "127.0.90.1:19390";

/// A VM name a tenant chose.
const VM_NAME: &str = "web\"1\\ line\nfeed\rcr\0nul ü λ 🐝 \"} evil{x=\"1\"} 1";
/// A target group name an operator typed (TOML basic string: `dmz"\x ü`).
const GROUP_TOML: &str = r#"dmz\"\\x ü"#;
const GROUP: &str = "dmz\"\\x ü";
/// A Greenbone feed type (XML text as gvmd would send it).
const FEED_XML: &str = "NVT&quot;\\x&#10;feed";
const FEED: &str = "NVT\"\\x\nfeed";

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A listener that greets every connection with raw bytes (invalid UTF-8 included).
fn raw_banner(addr: &str, bytes: &'static [u8]) {
    let l = std::net::TcpListener::bind(addr).unwrap();
    std::thread::spawn(move || {
        // nmap's version probes connect a handful of times; stop after plenty.
        for c in l.incoming().take(200) {
            let Ok(mut c) = c else { continue };
            let _ = c.write_all(bytes);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                drop(c);
            });
        }
    });
}

/// Creates a Keystone project and user with hostile names; returns their ids.
fn hostile_identity(tag: &str) -> (String, String, String, String) {
    let project = format!("evil\"proj\\ü {tag}");
    let (st, v) = keystone_call(
        "POST",
        "/projects",
        &json!({"project": {"name": project, "domain_id": "default"}}),
    );
    assert_eq!(st, 201, "create project {project:?}: {v}");
    let project_id = v["project"]["id"].as_str().unwrap().to_owned();
    let user = format!("evil\"user\\λ {tag}");
    let (st, v) = keystone_call(
        "POST",
        "/users",
        &json!({"user": {"name": user, "domain_id": "default"}}),
    );
    assert_eq!(st, 201, "create user {user:?}: {v}");
    let user_id = v["user"]["id"].as_str().unwrap().to_owned();
    (project_id, project, user_id, user)
}

fn cloud(project_id: &str, user_id: &str) -> Cloud {
    let mut c = Cloud::empty().expect("fake cloud templates");
    c.add_security_group(SecurityGroupSpec {
        id: None,
        name: "sg\"\\\n\0 ü".into(),
        project_id: project_id.into(),
        stateful: true,
        rules: Some(vec![RuleSpec::ingress_tcp(20101, 20104, "0.0.0.0/0")]),
    })
    .unwrap();
    let mut vm = ServerSpec::new(VM, VM_NAME, project_id)
        .fixed("private", "127.0.91.10".parse().unwrap())
        .floating(CLOUD_ADDR.parse().unwrap());
    vm.user_id = user_id.into();
    vm.security_groups = vec!["sg\"\\\n\0 ü".into()];
    c.add_server(vm).unwrap();
    let long = ServerSpec::new(LONG_VM, &long_name(), project_id)
        .fixed("private", "127.0.91.11".parse().unwrap())
        .floating("127.0.90.11".parse().unwrap());
    c.add_server(long).unwrap();
    c
}

fn long_name() -> String {
    format!("{}\"", "x".repeat(10_000))
}

/// Prometheus' answer to an instant query: the `data.result` array.
fn query(q: &str) -> Vec<Value> {
    let path = format!(
        "/api/v1/query?{}",
        serde_urlencoded::to_string([("query", q)]).unwrap()
    );
    let (status, _, body) = http_get(PROM, &path, None);
    assert_eq!(status, 200, "{q}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[test]
fn hostile_labels_neither_break_the_scrape_nor_reach_it_raw() {
    // Banners nmap reads: `9.2p1 Debian 2"x`, a backslash and quote through an FTP product version,
    // invalid UTF-8 (nmap prints such bytes as dots), non-ASCII.
    let _ssh = Banner::new(
        &format!("{CLOUD_ADDR}:20101"),
        "SSH-2.0-OpenSSH_9.2p1 Debian-2\"x\r\n",
    );
    raw_banner(
        "127.0.90.10:20102",
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2\\\xff\xfe\"}x\r\n",
    );
    let _ftp = Banner::new(
        &format!("{CLOUD_ADDR}:20104"),
        "220 ProFTPD 1.3.5\"\\x Server (Debian) [127.0.0.1]\r\n",
    );
    let _cidr = Banner::new(
        &format!("{CIDR_ADDR}:20105"),
        "SSH-2.0-OpenSSH_9.2p1 Debian-2ü\r\n",
    );
    let _long = Listener::new("127.0.90.11:20103");

    let ks = keystone();
    let tag = format!("{}-{}", std::process::id(), now_nanos());
    let (project_id, project, user_id, user) = hostile_identity(&tag);
    let fake = FakeCloud::start(FakeConfig::new(
        "127.0.90.2".parse().unwrap(),
        cloud(&project_id, &user_id),
        TokenCheck::Keystone {
            url: ks.url.clone(),
        },
    ))
    .expect("start the fake cloud");
    let region = format!("HOSTILE-{tag}");
    register_region(&region, &fake.compute_url(), &fake.network_url());

    let rt = tokio::runtime::Runtime::new().unwrap();
    let gvmd = rt.block_on(FakeGvmd::start(Faults {
        report_host: Some(CIDR_ADDR.into()),
        feed_type: Some(FEED_XML.into()),
        ..Faults::default()
    }));

    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("gmp-password");
    std::fs::write(&pw, format!("{PASSWORD}\n")).unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  hostile:\n    region_name: {region}\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n",
            ks.url
        ),
    )
    .unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[schedule]\ndiscovery = \"3s\"\njitter = \"0s\"\n\
             [[targets]]\nname = \"{GROUP_TOML}\"\ncidrs = [\"{CIDR_ADDR}\"]\nports = \"20105\"\n\
             [scan.nmap]\nenabled = true\nbatch_timeout = \"60s\"\n\
             [scan.gmp]\nenabled = true\nsocket = \"{}\"\nusername = \"{USER}\"\n\
             password_file = \"{}\"\ninterval = \"1h\"\npoll_interval = \"100ms\"\n\
             [[openstack]]\nname = \"cloud\"\ncloud = \"hostile\"\naddresses = \"floating\"\n\
             ports = \"20101-20104\"\nscanner_source = \"127.0.0.1\"\nretries = 0\ntimeout = \"5s\"\n",
            gvmd.socket.display(),
            pw.display()
        ),
    );
    let clouds_env = clouds.display().to_string();
    let agent = Agent::start_env(&config, &[], &[("OS_CLIENT_CONFIG_FILE", &clouds_env)]);

    // Wait for every source to have reached the exposition: nmap's versions, the cloud's names,
    // Greenbone's feed, the group.
    let text = wait_for(
        "every hostile value in /metrics",
        Duration::from_secs(120),
        || {
            let m = agent.metrics();
            let ready = m.contains(r#"version="9.2p1 Debian 2\"x""#)
                && m.contains(r#"version="1.3.5\"\\x""#)
                && m.contains("stinger_gmp_feed_timestamp_seconds{")
                && m.contains(&format!("vm_id=\"{LONG_VM}\""))
                && m.contains(&format!("project=\"{}\"", escape(&clean(&project))));
            ready.then_some(m)
        },
    );
    promtool::check_metrics(&text).unwrap();
    // Every label value is bounded and free of control characters; nothing was injected.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.len() < 4096, "unbounded series: {}…", &line[..200]);
        assert!(!line.starts_with("evil"), "injected series: {line}");
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    }
    let (status, head, om) = http_get(
        &agent.addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0"),
    );
    assert_eq!(status, 200);
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert_eq!(om.lines().filter(|l| *l == "# EOF").count(), 1);
    assert!(om.ends_with("# EOF\n"));

    // A real Prometheus (it asks for OpenMetrics first) scrapes it and reads every value back.
    let prom_yml = dir.path().join("prometheus.yml");
    std::fs::write(
        &prom_yml,
        format!(
            "global:\n  scrape_interval: 1s\n\
             scrape_configs:\n  - job_name: stinger\n    static_configs:\n      - targets: ['{}']\n",
            agent.addr
        ),
    )
    .unwrap();
    let _prom = Proc(
        Command::new("prometheus")
            .args([
                format!("--config.file={}", prom_yml.display()),
                format!("--storage.tsdb.path={}", dir.path().join("prom").display()),
                format!("--web.listen-address={PROM}"),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus is needed (Debian package prometheus)"),
    );
    let vm_info = wait_for(
        "Prometheus to scrape the hostile VM",
        Duration::from_secs(60),
        || {
            std::panic::catch_unwind(|| {
                let up = query(r#"up{job="stinger"}"#);
                let up_ok = up.first().is_some_and(|s| s["value"][1] == "1");
                let vm = query(&format!(r#"stinger_vm_info{{vm_id="{VM}"}}"#));
                (up_ok && !vm.is_empty()).then_some(vm)
            })
            .ok()
            .flatten()
        },
    );
    let m = &vm_info[0]["metric"];
    assert_eq!(m["name"], clean(VM_NAME).as_ref(), "{m}");
    assert_eq!(m["project"], project.as_str(), "{m}");
    assert_eq!(m["user"], user.as_str(), "{m}");
    let long = query(&format!(r#"stinger_vm_info{{vm_id="{LONG_VM}"}}"#));
    let long_seen = long[0]["metric"]["name"].as_str().unwrap_or_default();
    assert_eq!(long_seen, clean(&long_name()), "the 10 kB name, cut");
    assert!(long_seen.len() <= 256 && long_seen.ends_with('…'));

    let version = |port: u16| {
        let r = query(&format!(r#"stinger_open_port_info{{port="{port}"}}"#));
        assert_eq!(r.len(), 1, "port {port}: {r:?}");
        r[0]["metric"].clone()
    };
    assert_eq!(version(20101)["version"], "9.2p1 Debian 2\"x");
    assert_eq!(version(20104)["version"], "1.3.5\"\\x");
    let odd = version(20102);
    assert!(
        odd["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("9.2p1 Debian 2\\")),
        "invalid UTF-8 banner: {odd}"
    );
    assert_eq!(version(20105)["group"], GROUP);
    let feed = query("stinger_gmp_feed_timestamp_seconds");
    assert_eq!(feed[0]["metric"]["feed"], clean(FEED).as_ref(), "{feed:?}");
    // Still up after all of it.
    let up = query(r#"up{job="stinger"}"#);
    assert_eq!(up[0]["value"][1], "1", "{up:?}");
    drop(agent);
}

/// The label value as written in the text format.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}
