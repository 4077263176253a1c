//! The parser modules of the main crate, compiled on their own for fuzzing: they depend only on
//! quick-xml and thiserror, so the fuzz build does not pull in the agent (RocksDB, tokio, ...).
//! Both modules refer to their own parts through `super::` only, so they build at any depth;
//! `scan` re-exports them under the main crate's paths (`scan::nmap_xml`, `scan::gmp_xml`).
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
