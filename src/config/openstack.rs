//! `[[openstack]]` sections: one cloud each, as written in the file and as validated. The cloud's
//! credentials are resolved here, at load time, from clouds.yaml / secure.yaml / OS_* exactly as
//! openstacksdk would, so `check-config` and start-up fail (exit 64) on a missing or broken cloud
//! before anything binds or scans.

use super::file::PortsField;
use super::Problem;
use crate::inventory::openstack::clouds::{self, Env};
pub use crate::inventory::openstack::settings::{AddressChoice, OpenStackSource};
use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// One `[[openstack]]` section as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OpenStackFile {
    /// The target group name of this cloud's VMs (in policy rules, metrics and the API).
    pub name: String,
    /// The clouds.yaml entry; empty: `OS_CLOUD`, else the OS_* variables' cloud, else the only one.
    pub cloud: String,
    /// The region; empty: the cloud's `region_name`, else its first.
    pub region: String,
    /// `floating`, `fixed` or `both`.
    pub addresses: AddressChoice,
    /// Server statuses whose VMs are scanned (others are inventoried only).
    pub statuses: Vec<String>,
    pub ports: PortsField,
    /// List the servers of every project (`all_tenants`; needs an admin token).
    pub all_projects: bool,
    /// Probe fixed addresses from inside the network's `qdhcp-<network id>` namespace (needs
    /// CAP_SYS_ADMIN, on a Neutron network node).
    pub namespaces: bool,
    pub namespace_dir: PathBuf,
    /// Fetch `/servers/{id}/diagnostics` (admin only by default policy).
    pub diagnostics: bool,
    pub diagnostics_concurrency: usize,
    /// Highest compute microversion asked for (the server's maximum if lower).
    pub compute_microversion: String,
    pub page_size: u32,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Attempts after a failed inventory, with backoff, before the cycle goes on with the last good
    /// inventory.
    pub retries: u32,
    /// How often to ask the cloud what changed since the last look (Nova changes-since, Neutron
    /// changed_since) between full inventories; 0: only full inventories.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// The address the scanner's probes come from, as the VMs see it: open ports that no
    /// security-group rule admits from there are reported (a group that does not do what its owner
    /// thinks). Unset: only world-open rules count.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scanner_source: Option<IpAddr>,
}

impl Default for OpenStackFile {
    fn default() -> Self {
        OpenStackFile {
            name: String::new(),
            cloud: String::new(),
            region: String::new(),
            addresses: AddressChoice::Floating,
            statuses: vec!["ACTIVE".into()],
            ports: PortsField::top1000(),
            all_projects: true,
            namespaces: false,
            namespace_dir: PathBuf::from("/run/netns"),
            diagnostics: true,
            diagnostics_concurrency: 8,
            compute_microversion: "2.100".into(),
            page_size: 1000,
            timeout: Duration::from_secs(30),
            retries: 2,
            poll_interval: Duration::from_secs(60),
            scanner_source: None,
        }
    }
}

/// `2.100` → (2, 100).
fn parse_microversion(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.trim().split_once('.')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Validate every section; `problem` collects what is wrong, keyed `openstack[i].<key>`.
pub(super) fn build(
    sections: &[OpenStackFile],
    env: &Env,
    problems: &mut Vec<Problem>,
) -> Vec<OpenStackSource> {
    let mut out = Vec::new();
    let mut problem = |key: String, message: String| problems.push(Problem { key, message });
    for (i, s) in sections.iter().enumerate() {
        let key = |k: &str| format!("openstack[{i}].{k}");
        let mut ok = true;
        if s.name.trim().is_empty() {
            problem(
                key("name"),
                "must be set: it names the target group of this cloud's VMs".into(),
            );
            ok = false;
        }
        if sections[..i].iter().any(|o| o.name == s.name) {
            problem(
                key("name"),
                format!("{:?} names another [[openstack]] section too", s.name),
            );
            ok = false;
        }
        if s.ports.0.is_empty() {
            problem(key("ports"), "lists no ports".into());
            ok = false;
        }
        if s.statuses.is_empty() {
            problem(
                key("statuses"),
                "lists no server status; e.g. [\"ACTIVE\"]".into(),
            );
            ok = false;
        }
        let mv = parse_microversion(&s.compute_microversion).filter(|&(a, b)| a == 2 && b >= 1);
        if mv.is_none() {
            problem(
                key("compute_microversion"),
                format!(
                    "{:?} is not a compute microversion like \"2.100\"",
                    s.compute_microversion
                ),
            );
            ok = false;
        }
        if !s.poll_interval.is_zero() && s.poll_interval < Duration::from_secs(1) {
            problem(
                key("poll_interval"),
                "must be 0 (no change polls) or at least 1s (e.g. \"60s\")".into(),
            );
            ok = false;
        }
        if s.page_size == 0 {
            problem(key("page_size"), "must be at least 1".into());
            ok = false;
        }
        if s.diagnostics_concurrency == 0 {
            problem(key("diagnostics_concurrency"), "must be at least 1".into());
            ok = false;
        }
        if s.timeout < Duration::from_millis(100) {
            problem(
                key("timeout"),
                "must be at least 100ms (e.g. \"30s\")".into(),
            );
            ok = false;
        }
        let cloud_name = (!s.cloud.is_empty()).then_some(s.cloud.as_str());
        let region = (!s.region.is_empty()).then_some(s.region.as_str());
        let cloud = match clouds::load(env, cloud_name, region) {
            Ok(c) => Some(c),
            Err(e) => {
                problem(key("cloud"), e.to_string());
                None
            }
        };
        if let (true, Some(cloud), Some(mv)) = (ok, cloud, mv) {
            out.push(OpenStackSource {
                name: s.name.clone(),
                cloud,
                addresses: s.addresses,
                statuses: s.statuses.iter().map(|x| x.to_uppercase()).collect(),
                ports: s.ports.0.clone(),
                all_projects: s.all_projects,
                namespaces: s.namespaces.then(|| s.namespace_dir.clone()),
                diagnostics: s.diagnostics,
                diagnostics_concurrency: s.diagnostics_concurrency,
                compute_microversion: mv,
                page_size: s.page_size,
                timeout: s.timeout,
                retries: s.retries,
                poll_interval: s.poll_interval,
                scanner_source: s.scanner_source,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env(dir: &std::path::Path) -> Env {
        Env {
            vars: BTreeMap::new(),
            cwd: dir.to_path_buf(),
            home: None,
            xdg_config_home: None,
            xdg_config_dirs: None,
            snap_real_home: None,
            etc: dir.join("etc"),
        }
    }

    #[test]
    fn microversions_parse() {
        assert_eq!(parse_microversion("2.100"), Some((2, 100)));
        assert_eq!(parse_microversion(" 2.1 "), Some((2, 1)));
        assert_eq!(parse_microversion("2"), None);
        assert_eq!(parse_microversion("latest"), None);
    }

    #[test]
    fn a_cloud_is_resolved_and_every_problem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("clouds.yaml"),
            "clouds:\n  prod:\n    auth:\n      auth_url: http://127.0.0.1:5000/v3\n      username: u\n      password: s3cret-Pass-919\n      user_domain_name: Default\n      project_name: p\n      project_domain_name: Default\n",
        )
        .unwrap();
        let good = OpenStackFile {
            name: "prod".into(),
            cloud: "prod".into(),
            ..OpenStackFile::default()
        };
        let mut problems = Vec::new();
        let built = build(std::slice::from_ref(&good), &env(dir.path()), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(built.len(), 1);
        assert_eq!(built[0].cloud.name, "prod");
        assert_eq!(built[0].compute_microversion, (2, 100));
        assert_eq!(built[0].statuses, ["ACTIVE"]);

        let bad = OpenStackFile {
            name: "".into(),
            cloud: "nope".into(),
            compute_microversion: "3".into(),
            page_size: 0,
            statuses: vec![],
            ..OpenStackFile::default()
        };
        let mut problems = Vec::new();
        let built = build(&[bad], &env(dir.path()), &mut problems);
        assert!(built.is_empty());
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        for k in [
            "openstack[0].name",
            "openstack[0].cloud",
            "openstack[0].compute_microversion",
            "openstack[0].page_size",
            "openstack[0].statuses",
        ] {
            assert!(keys.contains(&k), "{k} missing from {keys:?}");
        }
        let cloud_msg = &problems
            .iter()
            .find(|p| p.key == "openstack[0].cloud")
            .unwrap()
            .message;
        assert!(cloud_msg.contains("nope"), "{cloud_msg}");
        assert!(
            !format!("{problems:?}").contains("s3cret-Pass-919"),
            "no password in errors"
        );
    }
}
