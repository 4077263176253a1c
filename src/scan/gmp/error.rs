//! [`Error`]: what can go wrong talking to gvmd or running the workflow, its stable `kind()` label,
//! and which errors the retrying client tries again.

use std::time::Duration;

use super::gmp_xml;

/// GMP session and workflow errors. Messages name the endpoint, never credentials.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to gvmd at {endpoint}: {source}; check that gvmd is running and scan.gmp.socket (or scan.gmp.address for TLS) points at it, and that the agent may open the socket")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("connection to gvmd at {endpoint} lost during {during}: {message}")]
    Disconnected {
        endpoint: String,
        during: String,
        message: String,
    },
    #[error("TLS to gvmd at {endpoint}: {message}")]
    Tls { endpoint: String, message: String },
    #[error("gvmd at {endpoint}: gave up waiting for {what} after {}s (scan.gmp.{setting})", after.as_secs_f64())]
    Timeout {
        endpoint: String,
        what: String,
        after: Duration,
        setting: &'static str,
    },
    #[error("gvmd at {endpoint} rejected the username or password (400 Authentication failed); check scan.gmp.username and the password")]
    AuthFailed { endpoint: String },
    #[error("gvmd at {endpoint} answered {command} with status {code} \"{text}\"{}", status_hint(*code, text))]
    Status {
        endpoint: String,
        command: String,
        code: u16,
        text: String,
    },
    #[error("gvmd task {task_id} ended as \"{status}\" without finishing; its results are incomplete and were not used")]
    TaskEnded { task_id: String, status: String },
    #[error("report {report_id} from gvmd at {endpoint} is unusable: {message}")]
    Report {
        endpoint: String,
        report_id: String,
        message: String,
    },
    #[error("gvmd task {task_id} has no finished report to import yet (scan.gmp.import_task)")]
    NoReport { task_id: String },
    #[error("GMP scan cancelled")]
    Cancelled,
    #[error("gvmd at {endpoint} sent an unusable answer to {command}: {source}")]
    Protocol {
        endpoint: String,
        command: String,
        source: gmp_xml::Error,
    },
    #[error("no host with an open TCP port to scan; gvmd was not contacted")]
    Empty,
}

fn status_hint(code: u16, text: &str) -> &'static str {
    let t = text.to_ascii_lowercase();
    if code == 404 && (t.contains("config") || t.contains("port_list") || t.contains("scanner")) {
        "; the feed data objects may not be loaded yet (see get_feeds), or scan.gmp.scan_config / scanner names a missing UUID"
    } else if code == 503 {
        "; gvmd or its scanner is not available right now"
    } else if code == 400 && t.contains("get_version is allowed") {
        "; authenticate first"
    } else {
        ""
    }
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Error::Connect { .. } | Error::Disconnected { .. } => "connect",
            Error::Tls { .. } => "tls",
            Error::Timeout { .. } => "timeout",
            Error::AuthFailed { .. } => "auth_failed",
            Error::Status { .. } => "status",
            Error::TaskEnded { .. } => "task_ended",
            Error::Report { .. } | Error::NoReport { .. } => "report",
            Error::Cancelled => "cancelled",
            Error::Protocol { .. } => "protocol",
            Error::Empty => "empty",
        }
    }

    /// Connection failures and 5xx answers; the request is retried on a new connection.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. } | Error::Disconnected { .. } => true,
            Error::Status { code, .. } => *code >= 500,
            _ => false,
        }
    }
}
