//! [`Error`], the one error type of every GMP XML builder and parser, and the helpers that map
//! quick-xml failures onto it and clip server text put into messages.

use quick_xml::errors::{IllFormedError, SyntaxError};

/// Everything that can go wrong turning GMP XML into values. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed GMP XML at byte {offset}: {message}")]
    Xml { offset: u64, message: String },
    #[error(
        "GMP XML ended early at byte {offset}; gvmd closed the connection or the read timed out mid-response"
    )]
    Truncated { offset: u64 },
    #[error("gvmd rejected {command} with status {code}: {text}")]
    Status {
        command: String,
        code: u16,
        text: String,
    },
    #[error("unexpected GMP XML: expected {expected}, found {found}")]
    Unexpected {
        expected: &'static str,
        found: String,
    },
    #[error(
        "GMP XML exceeds the {what} limit of {limit}; raise the limit if the input is legitimate"
    )]
    Limit { what: &'static str, limit: u64 },
    #[error("GMP XML lacks the required {element}")]
    Missing { element: &'static str },
    #[error("reading GMP XML failed at byte {offset}: {message}")]
    Io { offset: u64, message: String },
}

impl Error {
    /// Stable snake_case label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Xml { .. } => "xml",
            Error::Truncated { .. } => "truncated",
            Error::Status { .. } => "status",
            Error::Unexpected { .. } => "unexpected",
            Error::Limit { .. } => "limit",
            Error::Missing { .. } => "missing",
            Error::Io { .. } => "io",
        }
    }
}

/// Server-supplied text put into an error, cut short so a hostile peer cannot bloat logs.
pub(super) fn snippet(s: &str) -> String {
    const MAX: usize = 80;
    let s = s.trim();
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

pub(super) fn doctype_error() -> Error {
    Error::Unexpected {
        expected: "GMP XML without a DOCTYPE (entities are never expanded)",
        found: "<!DOCTYPE …>".to_owned(),
    }
}

/// Maps a quick-xml error. `at_eof`: the input is exhausted, so an unclosed construct means truncation.
pub(super) fn map_qx(e: quick_xml::Error, offset: u64, at_eof: bool) -> Error {
    match e {
        quick_xml::Error::Io(io) => Error::Io {
            offset,
            message: io.to_string(),
        },
        quick_xml::Error::Syntax(SyntaxError::InvalidBangMarkup) if !at_eof => Error::Xml {
            offset,
            message: SyntaxError::InvalidBangMarkup.to_string(),
        },
        quick_xml::Error::Syntax(_)
        | quick_xml::Error::IllFormed(IllFormedError::UnclosedReference)
            if at_eof =>
        {
            Error::Truncated { offset }
        }
        other => Error::Xml {
            offset,
            message: other.to_string(),
        },
    }
}
