//! Scope by packet counting: a full pass sends nothing outside `[scope]` (see the parent module).

use super::*;

/// In scope: group a's /29 minus its own exclusion (.3) and the global one (.4); group b's .3 (a's
/// exclusion holds for a only) and .9; the cloud's .20; the IPv6 group's address (on lo).
const IN_V4: &str = "127.0.98.0 127.0.98.1 127.0.98.2 127.0.98.3 127.0.98.5 127.0.98.6 127.0.98.7 \
                     127.0.98.9 127.0.98.20";
const IN_V6: &str = "2001:db8:98::1";
/// The in-scope addresses with a listener (port 20810): nmap's.
const OPEN: [&str; 4] = ["127.0.98.1", "127.0.98.3", "127.0.98.20", "2001:db8:98::1"];
/// Named by a group or the cloud, and out: excluded by [scope], outside allow, special. A connect
/// to 0.0.0.0 (::) goes to 127.0.0.1 (::1), so those rules catch it as well.
const OUT_V4: &str = "127.0.98.4 127.0.98.10 127.0.99.1 127.0.99.2 127.0.0.1 0.0.0.0/8 \
                      10.0.0.0/24 169.254.0.0/16 224.0.0.0/4 255.255.255.255";
const OUT_V6: &str = "2001:db8:99::/64 ::1 ::/128 fe80::/10 ff00::/8";
/// Where the fake Nova and Neutron listen, inside the namespace.
const FAKE_CLOUD: &str = "127.0.97.250";

fn vm(id: u8, project: &str) -> ServerSpec {
    ServerSpec::new(
        &format!("0e7b1d6e-0000-4000-8000-0000000017{id:02}"),
        &format!("packets-{id}"),
        project,
    )
}

/// The fake cloud, started inside `ns`: VMs whose addresses are in scope (127.0.98.20), excluded,
/// outside allow, and special (unspecified, multicast, broadcast, link-local, loopback), IPv4
/// floating with 10.0.0.x fixed, IPv6 fixed. Returns it with its Keystone region.
fn cloud_in(ns: &TestNs, keystone_url: &str) -> (FakeCloud, String) {
    let (st, projects) = keystone_call("GET", "/projects?name=admin", &Value::Null);
    assert_eq!(st, 200);
    let project = projects["projects"][0]["id"].as_str().unwrap().to_owned();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let mut cloud = Cloud::empty().unwrap();
    let floating = "127.0.98.20 127.0.98.4 127.0.99.2 0.0.0.0 224.0.0.1 255.255.255.255 \
                    169.254.169.254 127.0.0.1";
    for (id, a) in (20..).zip(floating.split_whitespace()) {
        let spec = vm(id, &project).fixed("private", ip(&format!("10.0.0.{id}")));
        cloud.add_server(spec.floating(ip(a))).unwrap();
    }
    for (id, a) in (40..).zip("2001:db8:99::5 fe80::1 ff02::1 :: ::1".split_whitespace()) {
        cloud
            .add_server(vm(id, &project).fixed("private6", ip(a)))
            .unwrap();
    }
    let tokens = TokenCheck::Keystone {
        url: keystone_url.to_string(),
    };
    let fake = in_ns(ns, || {
        FakeCloud::start(FakeConfig::new(ip(FAKE_CLOUD), cloud, tokens))
    })
    .expect("start the fake cloud in the namespace");
    let region = format!("PACKETS-{}", std::process::id());
    register_region(&region, &fake.compute_url(), &fake.network_url());
    (fake, region)
}

/// OUTPUT rules of the scope test, first match wins: to an in-scope address (counted by nmap's
/// TCP, TCP, UDP, other) or an API, and replies (from those, or of established connections), are
/// accepted; everything else is counted as out of scope (per named destination, then a catch-all
/// per family) and dropped.
fn scope_rules(ns: &TestNs, apis: &[(&str, SocketAddr)]) {
    for (v6, inside) in [(false, IN_V4), (true, IN_V6)] {
        for a in inside.split_whitespace() {
            let nmap = format!("-d {a} -p tcp -m owner --uid-owner {NMAP_UID} -j ACCEPT");
            rule(ns, v6, "OUTPUT", &format!("nmap {a}"), &nmap);
            for proto in ["tcp", "udp"] {
                let spec = format!("-d {a} -p {proto} -j ACCEPT");
                rule(ns, v6, "OUTPUT", &format!("{proto} {a}"), &spec);
            }
            rule(
                ns,
                v6,
                "OUTPUT",
                &format!("other {a}"),
                &format!("-d {a} -j ACCEPT"),
            );
            rule(
                ns,
                v6,
                "OUTPUT",
                &format!("reply {a}"),
                &format!("-s {a} -j ACCEPT"),
            );
        }
    }
    for (name, at) in apis {
        let (ip, port) = (at.ip(), at.port());
        let to = format!("-d {ip} -p tcp --dport {port} -j ACCEPT");
        rule(ns, false, "OUTPUT", &format!("api {name}"), &to);
        let from = format!("-s {ip} -p tcp --sport {port} -j ACCEPT");
        rule(ns, false, "OUTPUT", &format!("api reply {name}"), &from);
    }
    for (v6, outside) in [(false, OUT_V4), (true, OUT_V6)] {
        let established = "-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT";
        rule(ns, v6, "OUTPUT", "established", established);
        for a in outside.split_whitespace() {
            rule(
                ns,
                v6,
                "OUTPUT",
                &format!("OUT {a}"),
                &format!("-d {a} -j DROP"),
            );
        }
        rule(ns, v6, "OUTPUT", "OUT anything else", "-j DROP");
    }
}

#[test]
fn a_full_pass_sends_no_packet_outside_the_scope() {
    let Some(ns) = counting_namespace("a_full_pass_sends_no_packet_outside_the_scope") else {
        return;
    };
    ns.exec(
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:98::1/128",
            "dev",
            "lo",
            "nodad",
        ],
        true,
    );
    let _listeners: Vec<Listener> = in_ns(&ns, || {
        OPEN.iter()
            .map(|a| Listener::new(&SocketAddr::new(a.parse().unwrap(), 20810).to_string()))
            .collect()
    });
    // Keystone runs in the test's namespace and is forwarded in at the same address (the
    // catalog names it); the fake Nova and Neutron check tokens through the same forwarder.
    let ks = keystone();
    let ks_addr: SocketAddr = ks
        .root
        .trim_start_matches("http://")
        .parse()
        .expect("Keystone's root is http://ip:port");
    let _forward = Forward::new(&ns, ks_addr);
    let (fake, region) = cloud_in(&ns, &ks.url);
    scope_rules(
        &ns,
        &[
            ("keystone", ks_addr),
            ("compute", fake.compute_addr()),
            ("network", fake.network_addr()),
        ],
    );

    let dir = tempfile::tempdir().unwrap();
    let clouds = dir.path().join("clouds.yaml");
    std::fs::write(
        &clouds,
        format!(
            "clouds:\n  packets:\n    region_name: {region}\n    auth:\n      auth_url: {}\n      username: admin\n      password: secret\n      user_domain_name: Default\n      project_name: admin\n      project_domain_name: Default\n",
            ks.url
        ),
    )
    .unwrap();
    let ports = "ports = \"20810-20811\"";
    let config = write_config(
        dir.path(),
        &format!(
            "[scope]\nallow = [\"127.0.98.0/24\", \"2001:db8:98::/64\"]\n\
             exclude = [\"127.0.98.4\", \"127.0.98.10\"]\n\
             [[targets]]\nname = \"a\"\ncidrs = [\"127.0.98.0/29\"]\nexclude = [\"127.0.98.3\"]\n{ports}\n\
             [[targets]]\nname = \"b\"\ncidrs = [\"127.0.98.3\", \"127.0.98.9\", \"127.0.98.10\", \"127.0.99.1\"]\n{ports}\n\
             [[targets]]\nname = \"v6\"\ncidrs = [\"2001:db8:98::1\", \"2001:db8:99::1\"]\n{ports}\n\
             [scan.tcp]\ninitial_timeout = \"500ms\"\n\
             [scan.udp]\nports = \"15353:dns\"\n\
             [scan.nmap]\nenabled = true\npath = \"{}\"\nbatch_timeout = \"60s\"\n\
             [[openstack]]\nname = \"cloud\"\ncloud = \"packets\"\naddresses = \"both\"\n{ports}\n\
             scanner_source = \"127.0.0.1\"\nretries = 0\ntimeout = \"10s\"\ndiagnostics = false\n",
            nmap_as_nobody(dir.path()).display()
        ),
    );
    let clouds_env = clouds.display().to_string();
    let ran = scan_once(&ns, &config, &[("OS_CLIENT_CONFIG_FILE", &clouds_env)]);
    let counts = counters(&ns, true);
    let table: String = counts
        .iter()
        .map(|(k, v)| format!("{v:>8} {k}\n"))
        .collect();

    let leaks: Vec<String> = counts
        .iter()
        .filter(|(k, &v)| k.starts_with("OUT ") && v > 0)
        .map(|(k, v)| format!("{v} packets to {}", &k[4..]))
        .collect();
    assert!(
        leaks.is_empty(),
        "packets left for addresses outside [scope]: {leaks:?}\n{table}\n{}",
        ran.stderr
    );
    let doc = ran.json();
    assert_eq!(
        ran.code,
        Some(1),
        "unexpected open ports and no failed stage: {doc}\n{}",
        ran.stderr
    );
    let mut found: Vec<&str> = doc["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["address"].as_str())
        .collect();
    let mut open = OPEN;
    found.sort();
    open.sort();
    assert_eq!(found, open, "{doc}");
    assert_eq!(doc["scan"]["targets"], 10, "the in-scope targets: {doc}");
    // The counting works and every stage ran: each in-scope address got TCP and UDP probes,
    // each open one nmap's, and the cloud's APIs were asked.
    let got = |k: String| counts.get(&k).copied().unwrap_or(0);
    for a in IN_V4.split_whitespace().chain(IN_V6.split_whitespace()) {
        for proto in ["tcp", "udp"] {
            assert!(
                got(format!("{proto} {a}")) > 0,
                "no {proto} to {a}:\n{table}"
            );
        }
    }
    for a in OPEN {
        assert!(
            got(format!("nmap {a}")) > 0,
            "no nmap packet to {a}:\n{table}"
        );
    }
    for api in ["keystone", "compute", "network"] {
        assert!(got(format!("api {api}")) > 0, "{api} not asked:\n{table}");
    }
    eprintln!("packets by rule:\n{table}");
}
