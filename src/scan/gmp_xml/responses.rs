//! Small-response parsers: the status of any `<cmd>_response`, plus version, started report,
//! tasks and feeds, each read through one bounded, DOCTYPE-free document walk.

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::error::{doctype_error, map_qx, snippet};
use super::Error;

/// The `status`/`status_text`/`id` attributes of a `<cmd>_response` root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Root element name, e.g. `create_target_response`.
    pub command: String,
    pub code: u16,
    /// gvmd's `status_text` (empty if absent).
    pub text: String,
    /// The new resource's UUID on 201 responses.
    pub id: Option<String>,
}

impl Status {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// `Err(Error::Status)` unless the code is 2xx.
    pub fn check(self) -> Result<Status, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::Status {
                command: self.command,
                code: self.code,
                text: self.text,
            })
        }
    }
}

/// Attribute `key` of `e`, entity-decoded. Duplicate or malformed attributes are errors.
pub(super) fn attr(e: &BytesStart<'_>, key: &str, offset: u64) -> Result<Option<String>, Error> {
    for a in e.attributes() {
        let a = a.map_err(|err| Error::Xml {
            offset,
            message: err.to_string(),
        })?;
        if a.key.0 == key {
            let v = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| Error::Xml {
                    offset,
                    message: err.to_string(),
                })?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// Status of a root element, or `None` when it has no `status` attribute (e.g. a bare `<report>`).
pub(super) fn read_status(e: &BytesStart<'_>, offset: u64) -> Result<Option<Status>, Error> {
    let Some(code) = attr(e, "status", offset)? else {
        return Ok(None);
    };
    let code = code.trim().parse::<u16>().map_err(|_| Error::Unexpected {
        expected: "a numeric GMP status",
        found: snippet(&code),
    })?;
    Ok(Some(Status {
        command: e.name().0.to_owned(),
        code,
        text: attr(e, "status_text", offset)?.unwrap_or_default(),
        id: attr(e, "id", offset)?.filter(|s| !s.is_empty()),
    }))
}

/// Checks a response root: non-2xx → `Error::Status` (whatever the name, so gvmd's
/// `<gmp_response status="400" .../>` surfaces as a status), then the expected element name.
fn check_root(e: &BytesStart<'_>, expected: &'static str, offset: u64) -> Result<(), Error> {
    let status = read_status(e, offset)?
        .ok_or(Error::Missing {
            element: "status attribute",
        })?
        .check()?;
    if status.command != expected {
        return Err(Error::Unexpected {
            expected,
            found: snippet(&status.command),
        });
    }
    Ok(())
}

pub(super) fn push_ref(out: &mut String, r: &BytesRef<'_>, offset: u64) -> Result<(), Error> {
    match r.resolve_char_ref() {
        Ok(Some(c)) => out.push(c),
        Ok(None) => match quick_xml::escape::resolve_predefined_entity(r) {
            Some(s) => out.push_str(s),
            None => {
                return Err(Error::Xml {
                    offset,
                    message: format!("undefined entity &{};", snippet(r)),
                })
            }
        },
        Err(e) => {
            return Err(Error::Xml {
                offset,
                message: e.to_string(),
            })
        }
    }
    Ok(())
}

/// Parses the root element's status. Does not judge the code: use [`Status::check`].
pub fn parse_status(doc: impl AsRef<[u8]>) -> Result<Status, Error> {
    let doc = doc.as_ref();
    let mut reader = Reader::from_reader(doc);
    loop {
        let offset = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| map_qx(e, reader.error_position(), true))?;
        match ev {
            Event::Start(e) | Event::Empty(e) => {
                return read_status(&e, offset)?.ok_or(Error::Missing {
                    element: "status attribute",
                })
            }
            Event::Text(t) if t.trim().is_empty() => {}
            Event::Text(t) => {
                return Err(Error::Unexpected {
                    expected: "a GMP response element",
                    found: snippet(&t),
                })
            }
            Event::DocType(_) => return Err(doctype_error()),
            Event::Eof => return Err(Error::Truncated { offset }),
            _ => {}
        }
    }
}

const SMALL_MAX_DEPTH: usize = 256;

/// One step of [`walk`]: `path` runs from the root to the element (inclusive).
pub(super) enum Node<'a> {
    Open {
        path: &'a [String],
        start: &'a BytesStart<'a>,
    },
    /// `text` is the element's own character data (children's text excluded), untrimmed.
    Close { path: &'a [String], text: &'a str },
}

/// Streams a complete small response document through `f`. Rejects DOCTYPEs, caps depth,
/// stops at the root's end.
pub(super) fn walk(
    doc: &[u8],
    mut f: impl FnMut(Node<'_>, u64) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut reader = Reader::from_reader(doc);
    let mut names: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    loop {
        let offset = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| map_qx(e, reader.error_position(), true))?;
        let (open, close) = match &ev {
            Event::Start(_) => (true, false),
            Event::Empty(_) => (true, true),
            Event::End(_) => (false, true),
            Event::Text(t) => {
                match texts.last_mut() {
                    Some(buf) => buf.push_str(t),
                    None if t.trim().is_empty() => {}
                    None => {
                        return Err(Error::Unexpected {
                            expected: "a GMP response element",
                            found: snippet(t),
                        })
                    }
                }
                (false, false)
            }
            Event::CData(t) => {
                if let Some(buf) = texts.last_mut() {
                    buf.push_str(t);
                }
                (false, false)
            }
            Event::GeneralRef(r) => {
                match texts.last_mut() {
                    Some(buf) => push_ref(buf, r, offset)?,
                    None => {
                        return Err(Error::Unexpected {
                            expected: "a GMP response element",
                            found: format!("&{};", snippet(r)),
                        })
                    }
                }
                (false, false)
            }
            Event::DocType(_) => return Err(doctype_error()),
            Event::Eof => return Err(Error::Truncated { offset }),
            _ => (false, false),
        };
        if open {
            if let Event::Start(e) | Event::Empty(e) = &ev {
                if names.len() >= SMALL_MAX_DEPTH {
                    return Err(Error::Limit {
                        what: "element depth",
                        limit: SMALL_MAX_DEPTH as u64,
                    });
                }
                names.push(e.name().0.to_owned());
                texts.push(String::new());
                f(
                    Node::Open {
                        path: &names,
                        start: e,
                    },
                    offset,
                )?;
            }
        }
        if close {
            let text = texts.pop().unwrap_or_default();
            f(
                Node::Close {
                    path: &names,
                    text: &text,
                },
                offset,
            )?;
            names.pop();
            if names.is_empty() {
                return Ok(());
            }
        }
    }
}

fn is_path(path: &[String], want: &[&str]) -> bool {
    path.len() == want.len() && path.iter().zip(want).all(|(a, b)| a == b)
}

pub(super) fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `<get_version_response><version>22.7</version>` → `"22.7"`.
pub fn parse_version(doc: impl AsRef<[u8]>) -> Result<String, Error> {
    let mut version = None;
    walk(doc.as_ref(), |node, offset| {
        match node {
            Node::Open { path, start } if path.len() == 1 => {
                check_root(start, "get_version_response", offset)?
            }
            Node::Close { path, text } if is_path(path, &["get_version_response", "version"]) => {
                version = non_empty(text);
            }
            _ => {}
        }
        Ok(())
    })?;
    version.ok_or(Error::Missing {
        element: "get_version_response/version",
    })
}

/// The report UUID from a 2xx `start_task_response` (trimmed: gvmd may pretty-print it).
pub fn parse_start_task(doc: impl AsRef<[u8]>) -> Result<String, Error> {
    let mut report_id = None;
    walk(doc.as_ref(), |node, offset| {
        match node {
            Node::Open { path, start } if path.len() == 1 => {
                check_root(start, "start_task_response", offset)?
            }
            Node::Close { path, text } if is_path(path, &["start_task_response", "report_id"]) => {
                report_id = non_empty(text);
            }
            _ => {}
        }
        Ok(())
    })?;
    report_id.ok_or(Error::Missing {
        element: "start_task_response/report_id",
    })
}

/// `task/status` as gvmd spells it (PROTOCOLS.md §2 step 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    New,
    Requested,
    /// GMP 20.08 and later.
    Queued,
    Running,
    /// gvmd 22.9/23 and later.
    Processing,
    Done,
    StopRequested,
    Stopped,
    Interrupted,
    DeleteRequested,
    /// Anything else verbatim (e.g. "Ultimate Delete Requested"); empty when gvmd sent no status.
    Other(String),
}

impl TaskStatus {
    pub fn parse(s: &str) -> TaskStatus {
        match s.trim() {
            "New" => TaskStatus::New,
            "Requested" => TaskStatus::Requested,
            "Queued" => TaskStatus::Queued,
            "Running" => TaskStatus::Running,
            "Processing" => TaskStatus::Processing,
            "Done" => TaskStatus::Done,
            "Stop Requested" => TaskStatus::StopRequested,
            "Stopped" => TaskStatus::Stopped,
            "Interrupted" => TaskStatus::Interrupted,
            "Delete Requested" => TaskStatus::DeleteRequested,
            other => TaskStatus::Other(other.to_owned()),
        }
    }

    /// The scan will make no more progress: read the report (Done) or give up (Stopped/Interrupted).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            TaskStatus::Done | TaskStatus::Stopped | TaskStatus::Interrupted
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    pub name: String,
    pub status: TaskStatus,
    /// 0–100 while a report runs; -1 when none does (New, Done).
    pub progress: i32,
    /// `task/last_report/report/@id`: the last *finished* report.
    pub last_report_id: Option<String>,
    /// `task/current_report/report/@id`: the report being produced right now, if any.
    pub current_report_id: Option<String>,
    /// `task/target/@id`: the target the task scans.
    pub target_id: Option<String>,
}

/// Every `task` of a 2xx `get_tasks_response`.
pub fn parse_tasks(doc: impl AsRef<[u8]>) -> Result<Vec<TaskInfo>, Error> {
    let mut tasks = Vec::new();
    let mut cur: Option<TaskInfo> = None;
    walk(doc.as_ref(), |node, offset| {
        match node {
            Node::Open { path, start } => match path.len() {
                1 => check_root(start, "get_tasks_response", offset)?,
                2 if path[1] == "task" => {
                    let id = attr(start, "id", offset)?.ok_or(Error::Missing {
                        element: "task/@id",
                    })?;
                    cur = Some(TaskInfo {
                        id,
                        name: String::new(),
                        status: TaskStatus::Other(String::new()),
                        progress: -1,
                        last_report_id: None,
                        current_report_id: None,
                        target_id: None,
                    });
                }
                3 if path[1] == "task" && path[2] == "target" => {
                    if let Some(t) = cur.as_mut() {
                        t.target_id = attr(start, "id", offset)?.filter(|s| !s.is_empty());
                    }
                }
                4 if path[1] == "task" && path[3] == "report" => {
                    if let Some(t) = cur.as_mut() {
                        let id = attr(start, "id", offset)?.filter(|s| !s.is_empty());
                        match path[2].as_str() {
                            "last_report" => t.last_report_id = id,
                            "current_report" => t.current_report_id = id,
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
            Node::Close { path, text } => match path.len() {
                2 if path[1] == "task" => tasks.extend(cur.take()),
                3 if path[1] == "task" => {
                    if let Some(t) = cur.as_mut() {
                        match path[2].as_str() {
                            "name" => t.name = text.trim().to_owned(),
                            "status" => t.status = TaskStatus::parse(text),
                            // "100.0" appears in some exports; anything unparsable means "none".
                            "progress" => {
                                t.progress = text
                                    .trim()
                                    .parse::<f64>()
                                    .map_or(-1, |p| p.clamp(-1.0, 100.0) as i32)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
        }
        Ok(())
    })?;
    Ok(tasks)
}

/// The first task of a `get_tasks_response` (the one asked for with `task_id`).
pub fn parse_task(doc: impl AsRef<[u8]>) -> Result<TaskInfo, Error> {
    parse_tasks(doc)?.into_iter().next().ok_or(Error::Missing {
        element: "get_tasks_response/task",
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// NVT, SCAP, CERT or GVMD_DATA.
    pub kind: String,
    pub name: String,
    /// Feed timestamp, e.g. `202405101234`; empty until the feed is loaded.
    pub version: String,
    /// gvmd holds the feed lock (a `<currently_syncing>` element is present).
    pub currently_syncing: bool,
}

/// Every `feed` of a 2xx `get_feeds_response`.
pub fn parse_feeds(doc: impl AsRef<[u8]>) -> Result<Vec<Feed>, Error> {
    let mut feeds = Vec::new();
    let mut cur: Option<Feed> = None;
    walk(doc.as_ref(), |node, offset| {
        match node {
            Node::Open { path, start } => match path.len() {
                1 => check_root(start, "get_feeds_response", offset)?,
                2 if path[1] == "feed" => {
                    cur = Some(Feed {
                        kind: String::new(),
                        name: String::new(),
                        version: String::new(),
                        currently_syncing: false,
                    })
                }
                3 if path[1] == "feed" && path[2] == "currently_syncing" => {
                    if let Some(f) = cur.as_mut() {
                        f.currently_syncing = true;
                    }
                }
                _ => {}
            },
            Node::Close { path, text } => match path.len() {
                2 if path[1] == "feed" => feeds.extend(cur.take()),
                3 if path[1] == "feed" => {
                    if let Some(f) = cur.as_mut() {
                        match path[2].as_str() {
                            "type" => f.kind = text.trim().to_owned(),
                            "name" => f.name = text.trim().to_owned(),
                            "version" => f.version = text.trim().to_owned(),
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
        }
        Ok(())
    })?;
    Ok(feeds)
}
