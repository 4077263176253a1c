//! GMP XML: command builders, response framing and parsers, streaming report parser; pure, bounded.
//! Owns every byte of Greenbone Management Protocol XML that Stinger writes or reads (PROTOCOLS.md §2).
//! No sockets, no DOM: it reads only the `BufRead` or byte slice it is handed, and every input is
//! capped (bytes, element depth, token size, result count) so a hostile or broken gvmd cannot
//! exhaust memory. The session logic (connect, authenticate, poll) lives in `scan/gmp.rs`.
#![allow(dead_code)]

mod commands;
mod error;
mod framing;
mod report;
mod report_guard;
mod report_state;
mod responses;

#[cfg(test)]
mod tests;

pub use commands::{
    authenticate, create_target, create_task, delete_target, delete_task, get_feeds, get_reports,
    get_tasks, get_tasks_by_name_filter, get_version, start_task,
};
pub use error::Error;
pub use framing::ResponseSplitter;
pub use report::{ReportLimits, ReportParser, ReportSummary, VulnResult};
pub use responses::{
    parse_feeds, parse_start_task, parse_status, parse_task, parse_tasks, parse_version, Feed,
    Status, TaskInfo, TaskStatus,
};

// Crate-visible helpers keep their `gmp_xml::` paths; nothing outside this module uses them yet.
#[allow(unused_imports)]
pub(crate) use commands::{escape_into, REPORT_FILTER};
#[allow(unused_imports)]
pub(crate) use report_state::split_port;
