//! Integration tests: the real `stinger` binary against real listeners on 127.0.0.0/8, a real RocksDB
//! directory and real promtool. One binary, one module per topic.

mod agent;
mod alerts;
mod once;
mod services;
mod util;
mod web;
