//! [`Error`]: every way parsing nmap XML can fail, each with the byte offset where it did
//! and a stable metrics label ([`Error::kind`]).

/// Offsets are bytes from the start of the input, pointing at the start of the offending
/// markup (for `Xml`, where quick-xml located the problem).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("malformed nmap XML at byte {offset}: {message}")]
    Xml { offset: u64, message: String },
    #[error(
        "nmap XML ends at byte {offset} before </nmaprun> ({hosts_complete} complete hosts); \
         the scan was interrupted or its output cut short"
    )]
    Truncated { offset: u64, hosts_complete: usize },
    #[error("not nmap XML: root element is <{root}>, expected <nmaprun> (run nmap with -oX)")]
    NotNmap { root: String },
    #[error("nmap XML exceeds the {what} limit of {limit} at byte {offset}")]
    Limit {
        offset: u64,
        what: &'static str,
        limit: usize,
    },
    #[error("invalid {attribute}=\"{value}\" on <{element}> at byte {offset}")]
    InvalidValue {
        offset: u64,
        element: &'static str,
        attribute: &'static str,
        value: String,
    },
    #[error("<{element}> at byte {offset} lacks required {attribute}")]
    Missing {
        offset: u64,
        element: &'static str,
        attribute: &'static str,
    },
    /// The input itself failed (e.g. reading nmap's stdout); not an XML problem.
    #[error("reading nmap XML failed at byte {offset}: {message}")]
    Io { offset: u64, message: String },
}

impl Error {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Xml { .. } => "xml",
            Error::Truncated { .. } => "truncated",
            Error::NotNmap { .. } => "not_nmap",
            Error::Limit { .. } => "limit",
            Error::InvalidValue { .. } => "invalid_value",
            Error::Missing { .. } => "missing_value",
            Error::Io { .. } => "io",
        }
    }
}
