//! The parser modules of the main crate, compiled on their own for fuzzing: the XML parsers depend
//! only on quick-xml and thiserror, the API's query parsers on serde_urlencoded, humantime,
//! ipnetwork and the main crate's `model` types (serde only) and store key encoding (std only), so
//! the fuzz build does not pull in the agent (RocksDB, tokio, axum, ...).
//! The XML modules refer to their own parts through `super::` only, so they build at any depth;
//! `scan` re-exports them under the main crate's paths (`scan::nmap_xml`, `scan::gmp_xml`). The
//! query modules name `crate::model` and `crate::store::schema`, which exist here at those paths,
//! and the harness names its parser as `super::query`, its sibling here as in the main crate.
//! (A `#[path]` inside an inline `mod scan { }` would be resolved from `src/scan/`, a directory
//! that does not exist here, so the files are included at the crate root.)

#[path = "../../src/scan/gmp_xml/mod.rs"]
#[doc(hidden)]
pub mod gmp_xml;
#[path = "../../src/scan/nmap_xml/mod.rs"]
#[doc(hidden)]
pub mod nmap_xml;

pub mod scan {
    pub use super::{gmp_xml, nmap_xml};
}

#[path = "../../src/model/mod.rs"]
#[doc(hidden)]
#[allow(dead_code)]
pub mod model;
#[path = "../../src/expose/api/query.rs"]
#[doc(hidden)]
pub mod query;
#[path = "../../src/expose/api/query_harness.rs"]
#[doc(hidden)]
pub mod query_harness;
#[path = "../../src/store/schema.rs"]
#[doc(hidden)]
#[allow(dead_code)]
pub mod schema;

pub mod store {
    pub use super::schema;
}
