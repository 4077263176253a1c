//! Greenbone GMP session: connect (unix socket or TLS), authenticate, create or reuse stinger-
//! targets and tasks, start, poll, fetch the report streaming; bounded and cancellable. XML is
//! gmp_xml's.
//!
//! [`scan`] is the whole workflow for one cycle (or, with `import_task`, the import of an existing
//! task's latest report); [`Session`] is one authenticated connection with typed helpers for
//! callers that need single commands. Every network wait is bounded ([`Timeouts`],
//! `scan_timeout`), connection failures and 5xx answers are retried with exponential backoff up to
//! `retries` times, and cancellation is honoured between and during requests. A scan that gvmd
//! stopped or interrupted, or a report that ends early, is an error — never "no vulnerabilities".
//!
//! # Layout
//! - `settings`: [`Settings`] (`[scan.gmp]`) and their defaults; `error`: [`Error`].
//! - `transport`: where gvmd is ([`Endpoint`]) and the connection; `stream`: bounded, cancellable
//!   reads; `session`: one authenticated connection ([`Session`]).
//! - `plan`: the target and task for one host set; `retention`: deleting old `stinger-` tasks.
//! - `client`: the retrying, reconnecting client; `workflow`: [`scan`], its [`Progress`] and
//!   `Outcome`; `findings`: a report's results as model vulnerabilities; `prober`: Greenbone
//!   behind the scanner seam ([`Greenbone`]).

mod client;
mod error;
mod findings;
mod plan;
mod prober;
mod retention;
mod session;
mod settings;
mod stream;
mod transport;
mod workflow;

#[cfg(test)]
mod tests;

pub use error::Error;
use findings::vulnerabilities;
pub use prober::Greenbone;
pub(crate) use session::{Session, Timeouts, DEFAULT_MAX_RESPONSE_BYTES};
pub(crate) use settings::Password;
pub use settings::{Settings, FULL_AND_FAST};
pub(crate) use transport::{Endpoint, DEFAULT_SOCKET};
pub(crate) use workflow::scan;
pub use workflow::Progress;

use super::gmp_xml;
pub(crate) use super::gmp_xml::{ReportLimits, ReportSummary, TaskInfo, TaskStatus, VulnResult};
