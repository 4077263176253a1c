//! Integration tests: the real `stinger` binary against real listeners on 127.0.0.0/8, a real RocksDB
//! directory and real promtool. One binary, one module per topic; the fake cloud, the fake gvmd,
//! test certificates and promtool checks come from `stinger_testsupport`.

mod agent;
mod alerts;
mod changes;
mod dashboards;
mod email;
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
mod packets;
mod prometheus;
mod scope;
mod services;
mod shards;
mod store_faults;
mod tarpit;
mod udp;
mod util;
mod vulns;
mod web;
