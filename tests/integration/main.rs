//! Integration tests: the real `stinger` binary against real listeners on 127.0.0.0/8, a real RocksDB
//! directory and real promtool. One binary, one module per topic.

mod agent;
mod alerts;
mod changes;
mod dashboards;
mod email;
#[path = "../../examples/fake_cloud/server.rs"]
mod fake_cloud;
mod fake_cloud_selftest;
mod findings;
mod findings_api;
mod hostile;
mod keystone;
mod keystone_server;
mod on_demand;
mod once;
mod openstack;
mod openstack_changes;
mod openstack_faults;
mod orphans;
mod prometheus;
mod scope;
mod services;
mod shards;
mod udp;
mod util;
mod vulns;
mod web;

/// The fake gvmd of the GMP client's own tests, reused here (it names `crate::scan::gmp_xml`).
#[path = "../../src/scan/gmp/tests/fake.rs"]
#[allow(dead_code)]
mod fake_gvmd;
mod scan {
    pub use stinger::scan::{gmp, gmp_xml};
}
