//! [`Session`]: one authenticated GMP connection. One command at a time, each answered by exactly
//! one response document (framed by `gmp_xml::ResponseSplitter`, size-capped, read within the
//! read timeout); reports are parsed as they stream in, on a blocking thread.

use std::io::BufReader;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::stream::{Blocking, Watched, STOP_CANCELLED, STOP_DEADLINE, STOP_IDLE};
use super::transport::{self, Endpoint, Stream};
use super::{Error, Password, Progress};
use crate::scan::gmp_xml::{
    self, Feed, ReportLimits, ReportParser, ReportSummary, ResponseSplitter, TaskInfo, VulnResult,
};

/// Network time limits of a [`Session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timeouts {
    /// Connecting, TLS handshake included.
    pub(crate) connect: Duration,
    /// Sending a command and reading its whole response; while a report streams, the longest
    /// gap without a byte (including the wait for the first one).
    pub(crate) read: Duration,
    /// A whole report.
    pub(crate) report: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            read: Duration::from_secs(120),
            report: Duration::from_secs(60 * 60),
        }
    }
}

/// Largest non-report response accepted (a task list with `rows=-1` is the biggest).
pub(crate) const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 << 20;

const CHUNK: usize = 16 << 10;

/// One GMP connection. A failed or interrupted command closes it (the stream position is then
/// unknown); open a new session to go on. Authenticate again on every new session.
pub(crate) struct Session {
    io: Option<Stream>,
    /// Bytes read past the end of the last response; they start the next one.
    leftover: Vec<u8>,
    endpoint: String,
    timeouts: Timeouts,
    max_response_bytes: usize,
    report_limits: ReportLimits,
    /// A command was started and not finished (its future was dropped): the stream is unusable.
    in_flight: bool,
    progress: Arc<Progress>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("endpoint", &self.endpoint)
            .field("open", &self.is_open())
            .field("timeouts", &self.timeouts)
            .finish_non_exhaustive()
    }
}

/// The element name a command starts with, for logs and errors (never the command itself: an
/// `authenticate` carries the password).
pub(super) fn command_name(xml: &str) -> String {
    let s = xml.trim_start().trim_start_matches('<');
    let end = s
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(s.len());
    s[..end].chars().take(40).collect()
}

impl Session {
    /// Opens the transport. Nothing is sent yet: call [`get_version`](Self::get_version) and/or
    /// [`authenticate`](Self::authenticate) next.
    pub(crate) async fn connect(endpoint: &Endpoint, timeouts: Timeouts) -> Result<Session, Error> {
        let io = transport::open(endpoint, timeouts.connect).await?;
        tracing::debug!(endpoint = %endpoint, "connected to gvmd");
        Ok(Session {
            io: Some(io),
            leftover: Vec::new(),
            endpoint: endpoint.to_string(),
            timeouts,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            report_limits: ReportLimits::default(),
            in_flight: false,
            progress: Arc::new(Progress::default()),
        })
    }

    /// Caps for responses and reports (defaults: [`DEFAULT_MAX_RESPONSE_BYTES`],
    /// `ReportLimits::default()`).
    pub(crate) fn set_limits(&mut self, max_response_bytes: usize, report_limits: ReportLimits) {
        self.max_response_bytes = max_response_bytes;
        self.report_limits = report_limits;
    }

    /// Where [`fetch_report`](Self::fetch_report) counts report bytes and results.
    pub(crate) fn set_progress(&mut self, progress: Arc<Progress>) {
        self.progress = progress;
    }

    /// False once a command failed or was interrupted: the connection is closed.
    pub(crate) fn is_open(&self) -> bool {
        self.io.is_some() && !self.in_flight
    }

    fn close(&mut self) {
        self.io = None;
        self.leftover.clear();
    }

    fn disconnected(&self, during: &str, message: impl Into<String>) -> Error {
        Error::Disconnected {
            endpoint: self.endpoint.clone(),
            during: during.to_owned(),
            message: message.into(),
        }
    }

    fn protocol(&self, command: &str, source: gmp_xml::Error) -> Error {
        match source {
            gmp_xml::Error::Status { code, text, .. } => Error::Status {
                endpoint: self.endpoint.clone(),
                command: command.to_owned(),
                code,
                text,
            },
            source => Error::Protocol {
                endpoint: self.endpoint.clone(),
                command: command.to_owned(),
                source,
            },
        }
    }

    /// Takes the stream for one exchange; `Err` if the session is already closed.
    fn begin(&mut self, cmd: &str) -> Result<(), Error> {
        if self.in_flight {
            // The previous exchange was abandoned half-way.
            self.close();
        }
        if self.io.is_none() {
            return Err(self.disconnected(
                cmd,
                "the connection was closed after an earlier failure; open a new session",
            ));
        }
        self.in_flight = true;
        Ok(())
    }

    /// Sends one command and returns gvmd's whole response document, whatever its status.
    /// Bytes after the document stay buffered for the next call.
    pub(crate) async fn command(&mut self, xml: &str) -> Result<Vec<u8>, Error> {
        let cmd = command_name(xml);
        self.begin(&cmd)?;
        tracing::debug!(endpoint = %self.endpoint, command = %cmd, "GMP command");
        let limit = self.timeouts.read;
        let r = match tokio::time::timeout(limit, self.exchange(xml, &cmd)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                endpoint: self.endpoint.clone(),
                what: format!("the response to {cmd}"),
                after: limit,
                setting: "read_timeout",
            }),
        };
        self.in_flight = false;
        if r.is_err() {
            self.close();
        }
        r
    }

    async fn send(&mut self, xml: &str, cmd: &str) -> Result<(), Error> {
        let Some(io) = self.io.as_mut() else {
            return Err(self.disconnected(cmd, "no connection"));
        };
        let r = async {
            io.write_all(xml.as_bytes()).await?;
            io.flush().await
        }
        .await;
        r.map_err(|e| self.disconnected(cmd, format!("sending failed: {e}")))
    }

    async fn exchange(&mut self, xml: &str, cmd: &str) -> Result<Vec<u8>, Error> {
        self.send(xml, cmd).await?;
        let mut splitter = ResponseSplitter::new(self.max_response_bytes);
        let mut doc = Vec::new();
        let mut pending = std::mem::take(&mut self.leftover);
        let mut chunk = vec![0u8; CHUNK];
        loop {
            if pending.is_empty() {
                let Some(io) = self.io.as_mut() else {
                    return Err(self.disconnected(cmd, "no connection"));
                };
                let n = match io.read(&mut chunk).await {
                    Ok(n) => n,
                    Err(e) => return Err(self.disconnected(cmd, format!("reading failed: {e}"))),
                };
                if n == 0 {
                    let message = if splitter.in_progress() {
                        "gvmd closed the connection in the middle of its response"
                    } else {
                        "gvmd closed the connection without answering"
                    };
                    return Err(self.disconnected(cmd, message));
                }
                pending.extend_from_slice(&chunk[..n]);
            }
            match splitter.push(&pending) {
                Ok(Some(n)) => {
                    doc.extend_from_slice(&pending[..n]);
                    self.leftover = pending.split_off(n);
                    return Ok(doc);
                }
                Ok(None) => {
                    doc.extend_from_slice(&pending);
                    pending.clear();
                }
                Err(e) => return Err(self.protocol(cmd, e)),
            }
        }
    }

    /// [`command`](Self::command), then a non-2xx status becomes [`Error::Status`].
    async fn checked(&mut self, xml: &str) -> Result<(String, Vec<u8>), Error> {
        let cmd = command_name(xml);
        let doc = self.command(xml).await?;
        let status = gmp_xml::parse_status(&doc).map_err(|e| self.protocol(&cmd, e))?;
        if !status.is_success() {
            return Err(Error::Status {
                endpoint: self.endpoint.clone(),
                command: cmd,
                code: status.code,
                text: status.text,
            });
        }
        Ok((cmd, doc))
    }

    /// gvmd's GMP version, e.g. `22.7` (allowed before authenticating).
    pub(crate) async fn get_version(&mut self) -> Result<String, Error> {
        let (cmd, doc) = self.checked(&gmp_xml::get_version()).await?;
        gmp_xml::parse_version(&doc).map_err(|e| self.protocol(&cmd, e))
    }

    /// Logs in. A wrong username or password (gvmd: 400 "Authentication failed") is
    /// [`Error::AuthFailed`]. The password is sent and never logged.
    pub(crate) async fn authenticate(
        &mut self,
        username: &str,
        password: &Password,
    ) -> Result<(), Error> {
        let doc = self
            .command(&gmp_xml::authenticate(username, password.expose()))
            .await?;
        let status = gmp_xml::parse_status(&doc).map_err(|e| self.protocol("authenticate", e))?;
        if status.is_success() {
            return Ok(());
        }
        if status.code == 400 && status.text.to_ascii_lowercase().contains("authentication") {
            return Err(Error::AuthFailed {
                endpoint: self.endpoint.clone(),
            });
        }
        Err(Error::Status {
            endpoint: self.endpoint.clone(),
            command: "authenticate".to_owned(),
            code: status.code,
            text: status.text,
        })
    }

    /// New resource's UUID from a 201 response.
    async fn create(&mut self, xml: &str) -> Result<String, Error> {
        let (cmd, doc) = self.checked(xml).await?;
        let status = gmp_xml::parse_status(&doc).map_err(|e| self.protocol(&cmd, e))?;
        status.id.ok_or_else(|| {
            self.protocol(
                &cmd,
                gmp_xml::Error::Missing {
                    element: "id attribute of the created resource",
                },
            )
        })
    }

    /// Returns the target's UUID. `hosts` must be validated IPs/CIDRs (commas would split them);
    /// `port_range` like `T:22,80`; `alive_test` one of gvmd's strings ("Consider Alive").
    pub(crate) async fn create_target(
        &mut self,
        name: &str,
        hosts: &[String],
        port_range: &str,
        alive_test: &str,
    ) -> Result<String, Error> {
        self.create(&gmp_xml::create_target(name, hosts, port_range, alive_test))
            .await
    }

    /// Returns the task's UUID.
    pub(crate) async fn create_task(
        &mut self,
        name: &str,
        config_id: &str,
        target_id: &str,
        scanner_id: &str,
    ) -> Result<String, Error> {
        self.create(&gmp_xml::create_task(
            name, config_id, target_id, scanner_id,
        ))
        .await
    }

    /// Starts a task; returns the new report's UUID (gvmd answers 202).
    pub(crate) async fn start_task(&mut self, task_id: &str) -> Result<String, Error> {
        let (cmd, doc) = self.checked(&gmp_xml::start_task(task_id)).await?;
        gmp_xml::parse_start_task(&doc).map_err(|e| self.protocol(&cmd, e))
    }

    /// Asks gvmd to stop a running task (it goes to "Stop Requested", then "Stopped").
    pub(crate) async fn stop_task(&mut self, task_id: &str) -> Result<(), Error> {
        // gmp_xml has no stop_task builder; same shape as start_task, value escaped by gmp_xml.
        let mut xml = String::from("<stop_task task_id=\"");
        gmp_xml::escape_into(&mut xml, task_id, true);
        xml.push_str("\"/>");
        self.checked(&xml).await.map(|_| ())
    }

    pub(crate) async fn get_task(&mut self, task_id: &str) -> Result<TaskInfo, Error> {
        let (cmd, doc) = self.checked(&gmp_xml::get_tasks(task_id)).await?;
        gmp_xml::parse_task(&doc).map_err(|e| self.protocol(&cmd, e))
    }

    /// Tasks whose name contains `prefix` (gvmd's `~`); callers check `starts_with` themselves.
    pub(crate) async fn get_tasks_by_name(&mut self, prefix: &str) -> Result<Vec<TaskInfo>, Error> {
        let (cmd, doc) = self
            .checked(&gmp_xml::get_tasks_by_name_filter(prefix))
            .await?;
        gmp_xml::parse_tasks(&doc).map_err(|e| self.protocol(&cmd, e))
    }

    pub(crate) async fn get_feeds(&mut self) -> Result<Vec<Feed>, Error> {
        let (cmd, doc) = self.checked(&gmp_xml::get_feeds()).await?;
        gmp_xml::parse_feeds(&doc).map_err(|e| self.protocol(&cmd, e))
    }

    pub(crate) async fn delete_task(&mut self, task_id: &str, ultimate: bool) -> Result<(), Error> {
        self.checked(&gmp_xml::delete_task(task_id, ultimate))
            .await
            .map(|_| ())
    }

    pub(crate) async fn delete_target(
        &mut self,
        target_id: &str,
        ultimate: bool,
    ) -> Result<(), Error> {
        self.checked(&gmp_xml::delete_target(target_id, ultimate))
            .await
            .map(|_| ())
    }

    /// Fetches a report (all results, details on, XML format) and parses it as it streams in:
    /// the raw report is never held in memory. The parser runs on a blocking thread; each gap
    /// between bytes is bounded by the read timeout, the whole report by the report timeout, and
    /// `cancel` stops it promptly. A report that does not end properly (connection closed,
    /// malformed, over a limit) is an error, never an empty result list. Results gvmd sent that
    /// cannot be read are skipped and counted in `Progress::skipped_results`.
    pub(crate) async fn fetch_report(
        &mut self,
        report_id: &str,
        cancel: &CancellationToken,
    ) -> Result<(Vec<VulnResult>, ReportSummary), Error> {
        const CMD: &str = "get_reports";
        self.begin(CMD)?;
        let xml = gmp_xml::get_reports(report_id);
        tracing::debug!(endpoint = %self.endpoint, command = CMD, report_id, "GMP command");
        let limit = self.timeouts.read;
        let sent = match tokio::time::timeout(limit, self.send(&xml, CMD)).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout {
                endpoint: self.endpoint.clone(),
                what: "get_reports to be sent".to_owned(),
                after: limit,
                setting: "read_timeout",
            }),
        };
        if let Err(e) = sent {
            self.in_flight = false;
            self.close();
            return Err(e);
        }
        let Some(io) = self.io.take() else {
            self.in_flight = false;
            return Err(self.disconnected(CMD, "no connection"));
        };
        // Dropping this future (e.g. an outer timeout) stops the parser thread too.
        let stop_token = cancel.child_token();
        let _stop_on_drop = stop_token.clone().drop_guard();
        let stop = Arc::new(AtomicU8::new(0));
        let watched = Watched::new(
            io,
            std::mem::take(&mut self.leftover),
            self.timeouts.read,
            self.timeouts.report,
            stop_token,
            stop.clone(),
            self.progress.clone(),
        );
        let handle = tokio::runtime::Handle::current();
        let limits = self.report_limits.clone();
        let progress = self.progress.clone();
        let joined = tokio::task::spawn_blocking(move || {
            parse_stream(
                Blocking {
                    inner: watched,
                    handle,
                },
                limits,
                &progress,
            )
        })
        .await;
        self.in_flight = false;
        let failure = match joined {
            Ok(Ok(done)) => {
                self.io = Some(done.io);
                self.leftover = done.leftover;
                return Ok((done.results, done.summary));
            }
            Ok(Err(e)) => e,
            Err(join) => {
                return Err(Error::Report {
                    endpoint: self.endpoint.clone(),
                    report_id: report_id.to_owned(),
                    message: format!("the report parser thread failed: {join}"),
                })
            }
        };
        Err(match stop.load(Ordering::Relaxed) {
            STOP_CANCELLED => Error::Cancelled,
            STOP_IDLE => Error::Timeout {
                endpoint: self.endpoint.clone(),
                what: format!("more bytes of report {report_id}"),
                after: self.timeouts.read,
                setting: "read_timeout",
            },
            STOP_DEADLINE => Error::Timeout {
                endpoint: self.endpoint.clone(),
                what: format!("the whole of report {report_id}"),
                after: self.timeouts.report,
                setting: "report_timeout",
            },
            _ => match failure {
                gmp_xml::Error::Status { code, text, .. } => Error::Status {
                    endpoint: self.endpoint.clone(),
                    command: CMD.to_owned(),
                    code,
                    text,
                },
                other => Error::Report {
                    endpoint: self.endpoint.clone(),
                    report_id: report_id.to_owned(),
                    message: other.to_string(),
                },
            },
        })
    }
}

struct Parsed {
    results: Vec<VulnResult>,
    summary: ReportSummary,
    io: Stream,
    leftover: Vec<u8>,
}

/// Runs on a blocking thread: the whole report through `ReportParser`, then the stream back.
fn parse_stream(
    input: Blocking,
    limits: ReportLimits,
    progress: &Progress,
) -> Result<Parsed, gmp_xml::Error> {
    let mut parser = ReportParser::new(BufReader::with_capacity(64 << 10, input), limits);
    let mut results = Vec::new();
    let mut last_error = None;
    let mut skipped = 0u64;
    loop {
        match parser.next_result() {
            Ok(Some(r)) => {
                results.push(r);
                progress.results.fetch_add(1, Ordering::Relaxed);
            }
            Ok(None) => break,
            // Either about one result (the parser goes on) or final (the next call is Ok(None)
            // and the summary stays incomplete).
            Err(e) => {
                skipped += 1;
                last_error = Some(e);
            }
        }
    }
    let summary = parser.summary().clone();
    if !summary.complete {
        return Err(last_error.unwrap_or(gmp_xml::Error::Truncated {
            offset: parser.offset(),
        }));
    }
    if let Some(e) = last_error {
        progress
            .skipped_results
            .fetch_add(skipped, Ordering::Relaxed);
        tracing::warn!(skipped, last_error = %e, "gvmd report: unreadable results skipped");
    }
    let reader = parser.into_inner();
    let mut leftover = reader.buffer().to_vec();
    let (io, rest) = reader.into_inner().inner.into_parts();
    leftover.extend_from_slice(&rest);
    Ok(Parsed {
        results,
        summary,
        io,
        leftover,
    })
}
