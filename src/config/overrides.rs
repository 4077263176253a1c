//! Command-line overrides: lay `Overrides` over the file's keys before anything is validated.

use super::file::{FileConfig, PortsField, TargetFile};
use super::{Overrides, Problem};

/// Replace the file's keys with the command line's values; a bad value is a problem named after
/// its flag.
pub(crate) fn apply(file: &mut FileConfig, o: &Overrides, problems: &mut Vec<Problem>) {
    if let Some(v) = &o.listen_address {
        file.web.listen_address = v.clone();
    }
    if let Some(v) = &o.web_config_file {
        file.web.config_file = Some(v.clone());
    }
    if let Some(v) = &o.telemetry_path {
        file.web.telemetry_path = v.clone();
    }
    if let Some(v) = &o.storage_path {
        file.storage.path = v.clone();
    }
    if let Some(v) = o.concurrency {
        file.scan.tcp.concurrency = v;
    }
    if let Some(v) = o.max_rate {
        file.scan.tcp.max_rate = v;
    }
    if let Some(v) = o.retries {
        file.scan.tcp.retries = v;
    }
    if let Some(v) = o.shard_count {
        file.shard.count = v;
    }
    if let Some(v) = &o.shard_index {
        file.shard.index = super::shard::IndexField::parse(v);
    }
    let ports = match &o.ports {
        Some(spec) => match PortsField::try_from(spec.clone()) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(Problem {
                    key: "--ports".into(),
                    message: e.to_string(),
                });
                None
            }
        },
        None => None,
    };
    if !o.targets.is_empty() {
        let mut nets = |list: &[String], flag: &str| {
            list.iter()
                .filter_map(|s| match s.parse() {
                    Ok(n) => Some(n),
                    Err(e) => {
                        problems.push(Problem {
                            key: flag.into(),
                            message: format!("{s:?} is not an address or CIDR: {e}"),
                        });
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        let cidrs = nets(&o.targets, "--target");
        let exclude = nets(&o.exclude, "--exclude");
        file.targets = vec![TargetFile {
            name: "cli".into(),
            cidrs,
            exclude,
            ports: ports.clone().unwrap_or_else(PortsField::top1000),
        }];
        // --target means exactly those targets: no cloud is inventoried.
        file.openstack.clear();
    } else if !o.exclude.is_empty() {
        problems.push(Problem {
            key: "--exclude".into(),
            message: "only applies together with --target".into(),
        });
    }
    if let Some(p) = ports {
        for t in &mut file.targets {
            t.ports = p.clone();
        }
        // --ports means exactly those ports, for the clouds' VMs too.
        for c in &mut file.openstack {
            c.ports = p.clone();
        }
    }
}
