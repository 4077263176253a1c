//! The prepared clouds: the sample-based one rewritten to loopback and consistent across Nova
//! and Neutron, and the generated 10 000-server one listed in ten pages.

use super::*;
use stinger_testsupport::fake_cloud::{
    SAMPLE_FIXED_IP, SAMPLE_FLOATING_IP, SAMPLE_PROJECT, SAMPLE_SERVER_ID,
};

#[test]
fn samples_are_rewritten_to_loopback_and_consistent() {
    let fake = start(
        10,
        Cloud::from_samples().unwrap(),
        TokenCheck::admin(&[ADMIN]),
    );
    let (c, n) = (fake.compute_addr(), fake.network_addr());
    let server =
        admin_get(c, &format!("/v2.1/servers/{SAMPLE_SERVER_ID}")).json()["server"].clone();
    assert_eq!(server["tenant_id"], SAMPLE_PROJECT);
    assert_eq!(server["metadata"]["My Server Name"], "Apache1");
    let addrs = &server["addresses"]["private"];
    assert_eq!(addrs[0]["addr"], SAMPLE_FIXED_IP.to_string());
    assert_eq!(addrs[0]["OS-EXT-IPS:type"], "fixed");
    assert_eq!(addrs[1]["addr"], SAMPLE_FLOATING_IP.to_string());
    assert_eq!(addrs[1]["OS-EXT-IPS:type"], "floating");

    let ports = admin_get(n, &format!("/v2.0/ports?device_id={SAMPLE_SERVER_ID}")).json();
    let port = &ports["ports"][0];
    assert_eq!(
        port["fixed_ips"][0]["ip_address"],
        SAMPLE_FIXED_IP.to_string()
    );
    assert_eq!(port["mac_address"], addrs[0]["OS-EXT-IPS-MAC:mac_addr"]);
    let fips = admin_get(
        n,
        &format!("/v2.0/floatingips?port_id={}", port["id"].as_str().unwrap()),
    )
    .json();
    assert_eq!(
        fips["floatingips"][0]["floating_ip_address"],
        SAMPLE_FLOATING_IP.to_string()
    );
    assert_eq!(
        fips["floatingips"][0]["fixed_ip_address"],
        SAMPLE_FIXED_IP.to_string()
    );
    let sg_ids: Vec<&str> = port["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let sgs = admin_get(n, "/v2.0/security-groups").json();
    let sg = sgs["security_groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == sg_ids[0])
        .unwrap();
    assert_eq!(sg["name"], "default");
    assert_eq!(sg["project_id"], SAMPLE_PROJECT);

    // Every address anywhere in Neutron is loopback (router ports and free floating IPs included).
    let all_ports = admin_get(n, "/v2.0/ports").json();
    assert!(all_ports["ports"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["device_owner"] == "network:router_gateway"));
    for p in all_ports["ports"].as_array().unwrap() {
        let a: IpAddr = p["fixed_ips"][0]["ip_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(a.is_loopback(), "{a}");
    }
    for f in admin_get(n, "/v2.0/floatingips").json()["floatingips"]
        .as_array()
        .unwrap()
    {
        let a: IpAddr = f["floating_ip_address"].as_str().unwrap().parse().unwrap();
        assert!(a.is_loopback(), "{a}");
    }
    let nets = admin_get(n, "/v2.0/networks?router:external=true").json();
    assert_eq!(nets["networks"][0]["name"], "public");
}

#[test]
fn generated_10k_servers_in_ten_pages() {
    let t0 = Instant::now();
    let cloud = Cloud::generated(10_000).unwrap();
    let built = t0.elapsed();
    let fake = start(13, cloud, TokenCheck::admin(&[ADMIN]));
    let c = fake.compute_addr();
    let t1 = Instant::now();
    let (sizes, all) = walk(
        &format!("http://{c}/v2.1/servers/detail?all_tenants=1"),
        "servers",
        &[
            ("X-Auth-Token", ADMIN),
            ("OpenStack-API-Version", "compute 2.100"),
        ],
        20,
    );
    let served = t1.elapsed();
    // Again: now every server's JSON is cached, as in the benchmark's later cycles.
    let t2 = Instant::now();
    let (sizes2, _) = walk(
        &format!("http://{c}/v2.1/servers/detail?all_tenants=1"),
        "servers",
        &[
            ("X-Auth-Token", ADMIN),
            ("OpenStack-API-Version", "compute 2.100"),
        ],
        20,
    );
    let again = t2.elapsed();
    assert_eq!(sizes2, sizes);
    println!(
        "fake cloud: built 10 000 servers in {built:?}; listed them in {} pages in {served:?} \
         (cold), {again:?} (cached; both include this client's JSON parsing)",
        sizes.len()
    );
    assert_eq!(&sizes[..10], &[1000; 10]);
    assert!(sizes[10..].iter().all(|&s| s == 0), "{sizes:?}");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 10_000);

    let (projects, addrs) = fake
        .with_cloud(|cl| {
            let mut addrs = HashSet::new();
            for id in cl.server_ids() {
                for a in cl.server_addresses(&id) {
                    assert!(addrs.insert(a), "address {a} used twice");
                }
            }
            let p: HashSet<String> = (0..10_000)
                .map(|i| format!("57170000{:024x}", i % 50))
                .collect();
            (p, addrs)
        })
        .unwrap();
    assert_eq!(projects.len(), 50);
    assert_eq!(addrs.len(), 12_000, "10 000 fixed + 2 000 floating");
    for a in &addrs {
        let IpAddr::V4(v4) = a else { panic!("{a}") };
        let o = v4.octets();
        assert!(
            o[0] == 127 && (200..=203).contains(&o[1]),
            "{a} outside 127.200.0.0/14"
        );
    }
}
