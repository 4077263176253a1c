//! The fake Neutron: ports paged and sorted by id, filters on device, project and tenant,
//! floating IPs, security groups and networks.

use super::*;

#[test]
fn neutron_pages_and_filters() {
    let fake = start(
        9,
        Cloud::generated(30).unwrap(),
        TokenCheck::admin(&[ADMIN]),
    );
    let n = fake.network_addr();
    let h = [("X-Auth-Token", ADMIN)];
    let (sizes, all) = walk(&format!("http://{n}/v2.0/ports?limit=7"), "ports", &h, 10);
    assert_eq!(sizes, vec![7, 7, 7, 7, 2]);
    let mut sorted = all.clone();
    sorted.sort();
    assert_eq!(all, sorted, "Neutron sorts by id");
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 30);
    let body = admin_get(n, "/v2.0/ports?limit=7").json();
    let next = next_link(&body, "ports").unwrap();
    assert!(
        next.starts_with(&format!("http://{n}/v2.0/ports?")) && next.contains("limit=7"),
        "{next}"
    );

    let servers = fake.with_cloud(|c| c.server_ids()).unwrap();
    let q = format!(
        "/v2.0/ports?device_id={}&device_id={}",
        servers[0], servers[1]
    );
    let body = admin_get(n, &q).json();
    let devices: HashSet<&str> = body["ports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["device_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        devices,
        [servers[0].as_str(), servers[1].as_str()]
            .into_iter()
            .collect()
    );
    assert!(body["ports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["device_owner"] == "compute:nova"));

    let project = body["ports"][0]["project_id"].as_str().unwrap().to_string();
    let body = admin_get(
        n,
        &format!("/v2.0/ports?project_id={project}&device_id={}", servers[0]),
    )
    .json();
    assert!(
        ids(&body, "ports").len() <= 1,
        "filters on different fields AND"
    );
    let body = admin_get(n, &format!("/v2.0/ports?tenant_id={project}")).json();
    assert!(!ids(&body, "ports").is_empty());
    assert!(body["ports"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["project_id"] == project.as_str()));

    let fips = admin_get(n, "/v2.0/floatingips").json();
    assert_eq!(
        ids(&fips, "floatingips").len(),
        6,
        "every fifth server has one"
    );
    assert!(
        fips.get("floatingips_links").is_none(),
        "no limit, no paging"
    );
    let sgs = admin_get(n, "/v2.0/security-groups?limit=100").json();
    assert_eq!(ids(&sgs, "security_groups").len(), 100);
    assert!(next_link(&sgs, "security_groups").is_some());
    assert!(
        sgs["security_groups"][0]["security_group_rules"]
            .as_array()
            .unwrap()
            .len()
            >= 2
    );
    assert_eq!(admin_get(n, "/v2.0/networks?marker=nope").status, 400);
}
