//! What the fake gvmd answers to each GMP command, given its [`State`]: the session rule (only
//! `get_version` before `authenticate`), targets and tasks created, started, polled through a
//! status sequence, stopped and deleted, the fixture report, the feed, and the [`Faults`] that bend
//! those answers.

use super::xml::{attr, root_name, text};
use super::{FTarget, FTask, Faults, State, FULL_AND_FAST, PASSWORD, REPORT_FIXTURE, USER};

fn status(cmd: &str, code: u16, text: &str) -> String {
    format!("<{cmd}_response status=\"{code}\" status_text=\"{text}\"/>")
}

/// What to do with a command's answer.
pub(super) enum Reply {
    Send(Vec<u8>),
    SendAndClose(Vec<u8>),
    /// Send the first half, then close.
    Truncate(Vec<u8>),
}

/// Task status sequence over successive polls after start_task.
fn steps(f: &Faults) -> &'static [(&'static str, i32)] {
    if f.stop_task {
        &[("Requested", 0), ("Running", 30), ("Stopped", -1)]
    } else if f.never_done {
        &[("Requested", 0), ("Running", 30)]
    } else {
        &[
            ("Requested", 0),
            ("Running", 30),
            ("Running", 70),
            ("Done", -1),
        ]
    }
}

fn task_xml(t: &FTask) -> String {
    let mut s = format!(
        "<task id=\"{}\"><name>{}</name><comment/><status>{}</status><progress>{}</progress>",
        t.id, t.name, t.status, t.progress
    );
    if !t.target_id.is_empty() {
        s.push_str(&format!("<target id=\"{}\"/>", t.target_id));
    }
    if let Some(r) = &t.last_report {
        s.push_str(&format!(
            "<last_report><report id=\"{r}\"><timestamp>2025-01-01T00:00:00Z</timestamp></report></last_report>"
        ));
    }
    if let Some(r) = &t.current_report {
        s.push_str(&format!(
            "<current_report><report id=\"{r}\"><timestamp>2025-01-01T00:00:00Z</timestamp></report></current_report>"
        ));
    }
    s.push_str("</task>");
    s
}

/// The answer to one command; `authed` is the connection's session state.
pub(super) fn respond(st: &mut State, doc: &str, authed: &mut bool) -> Reply {
    let cmd = root_name(doc);
    st.log.push(cmd.clone());
    st.raw.push(doc.to_owned());
    let ok = |s: String| Reply::Send(s.into_bytes());
    if cmd == "get_version" {
        return ok("<get_version_response status=\"200\" status_text=\"OK\"><version>22.7</version></get_version_response>".into());
    }
    if cmd == "authenticate" {
        let user = text(doc, "username").unwrap_or_default();
        let pw = text(doc, "password").unwrap_or_default();
        if user == USER && pw == PASSWORD {
            *authed = true;
            return ok("<authenticate_response status=\"200\" status_text=\"OK\"><role>Admin</role><timezone>UTC</timezone></authenticate_response>".into());
        }
        return ok(status("authenticate", 400, "Authentication failed"));
    }
    if !*authed {
        return Reply::SendAndClose(
            "<gmp_response status=\"400\" status_text=\"Only command GET_VERSION is allowed before AUTHENTICATE\"/>"
                .as_bytes()
                .to_vec(),
        );
    }
    match cmd.as_str() {
        "create_target" => {
            let name = text(doc, "name").unwrap_or_default();
            if st.targets.iter().any(|t| t.name == name) {
                return ok(status(&cmd, 400, "Target exists already"));
            }
            let id = st.id(1);
            st.targets.push(FTarget {
                id: id.clone(),
                name,
                hosts: text(doc, "hosts").unwrap_or_default(),
                port_range: text(doc, "port_range").unwrap_or_default(),
                alive_tests: text(doc, "alive_tests").unwrap_or_default(),
            });
            ok(format!(
                "<create_target_response status=\"201\" status_text=\"OK, resource created\" id=\"{id}\"/>"
            ))
        }
        "create_task" => {
            let config = attr(doc, "config", "id").unwrap_or_default();
            if config != FULL_AND_FAST {
                return ok(status(&cmd, 404, &format!("Failed to find config '{config}'")));
            }
            let target_id = attr(doc, "target", "id").unwrap_or_default();
            if !st.targets.iter().any(|t| t.id == target_id) {
                return ok(status(&cmd, 404, "Failed to find target"));
            }
            let id = st.id(2);
            st.tasks.push(FTask {
                id: id.clone(),
                name: text(doc, "name").unwrap_or_default(),
                target_id,
                status: "New".into(),
                progress: -1,
                polls: 0,
                last_report: None,
                current_report: None,
            });
            ok(format!(
                "<create_task_response status=\"201\" status_text=\"OK, resource created\" id=\"{id}\"/>"
            ))
        }
        "start_task" => {
            if st.faults.start_503 > 0 {
                st.faults.start_503 -= 1;
                return ok(status(&cmd, 503, "Service temporarily down"));
            }
            let task_id = attr(doc, "start_task", "task_id").unwrap_or_default();
            let report = st.id(4);
            let Some(t) = st.tasks.iter_mut().find(|t| t.id == task_id) else {
                return ok(status(&cmd, 404, "Failed to find task"));
            };
            if matches!(t.status.as_str(), "Requested" | "Running" | "Queued") {
                return ok(status(&cmd, 400, "Task is active already"));
            }
            t.status = "Requested".into();
            t.progress = 0;
            t.polls = 0;
            t.current_report = Some(report.clone());
            ok(format!(
                "<start_task_response status=\"202\" status_text=\"OK, request submitted\"><report_id>{report}</report_id></start_task_response>"
            ))
        }
        "stop_task" => {
            let task_id = attr(doc, "stop_task", "task_id").unwrap_or_default();
            match st.tasks.iter_mut().find(|t| t.id == task_id) {
                Some(t) => {
                    t.status = "Stopped".into();
                    t.progress = -1;
                    t.current_report = None;
                    ok(status(&cmd, 202, "OK, request submitted"))
                }
                None => ok(status(&cmd, 404, "Failed to find task")),
            }
        }
        "get_tasks" => {
            if let Some(task_id) = attr(doc, "get_tasks", "task_id") {
                let steps = steps(&st.faults);
                let Some(t) = st.tasks.iter_mut().find(|t| t.id == task_id) else {
                    return ok(status(&cmd, 404, &format!("Failed to find task '{task_id}'")));
                };
                if t.current_report.is_some() {
                    let (s, p) = steps[t.polls.min(steps.len() - 1)];
                    t.polls += 1;
                    t.status = s.into();
                    t.progress = p;
                    if s == "Done" {
                        t.last_report = t.current_report.take();
                    }
                    if s == "Stopped" {
                        t.current_report = None;
                    }
                }
                return ok(format!(
                    "<get_tasks_response status=\"200\" status_text=\"OK\">{}</get_tasks_response>",
                    task_xml(t)
                ));
            }
            let filter = attr(doc, "get_tasks", "filter").unwrap_or_default();
            let want = filter
                .split_whitespace()
                .find_map(|w| w.strip_prefix("name~"))
                .unwrap_or("")
                .trim_matches('"')
                .to_owned();
            let body: String = st
                .tasks
                .iter()
                .filter(|t| t.name.contains(&want))
                .map(task_xml)
                .collect();
            ok(format!(
                "<get_tasks_response status=\"200\" status_text=\"OK\">{body}<filters id=\"\"><term>{}</term></filters></get_tasks_response>",
                filter
            ))
        }
        "get_reports" => {
            let id = attr(doc, "get_reports", "report_id").unwrap_or_default();
            let known = st
                .tasks
                .iter()
                .any(|t| t.last_report.as_deref() == Some(&id) || t.current_report.as_deref() == Some(&id));
            if !known {
                return ok(status(&cmd, 404, "Failed to find report"));
            }
            let mut body =
                b"<get_reports_response status=\"200\" status_text=\"OK\">".to_vec();
            let mut report = std::fs::read_to_string(REPORT_FIXTURE)
                .unwrap_or_else(|e| panic!("fake gvmd: read {REPORT_FIXTURE}: {e}"));
            if let Some(h) = &st.faults.report_host {
                report = report.replace("127.0.0.1", h);
            }
            if st.faults.rows_cut {
                report = report.replacen("<filtered>4</filtered>", "<filtered>1000</filtered>", 1);
            }
            body.extend(report.into_bytes());
            body.extend(b"</get_reports_response>");
            if st.faults.truncate_report {
                Reply::Truncate(body)
            } else {
                Reply::Send(body)
            }
        }
        "get_feeds" => ok(format!(
            "<get_feeds_response status=\"200\" status_text=\"OK\"><feed><type>{}</type><name>Greenbone Community Feed</name><version>202501010000</version></feed></get_feeds_response>",
            st.faults.feed_type.as_deref().unwrap_or("NVT")
        )),
        "delete_task" => {
            let id = attr(doc, "delete_task", "task_id").unwrap_or_default();
            let before = st.tasks.len();
            st.tasks.retain(|t| t.id != id);
            if st.tasks.len() == before {
                ok(status(&cmd, 404, "Failed to find task"))
            } else {
                ok(status(&cmd, 200, "OK"))
            }
        }
        "delete_target" => {
            let id = attr(doc, "delete_target", "target_id").unwrap_or_default();
            if st.tasks.iter().any(|t| t.target_id == id) {
                return ok(status(&cmd, 400, "Target is in use"));
            }
            st.targets.retain(|t| t.id != id);
            ok(status(&cmd, 200, "OK"))
        }
        _ => ok("<gmp_response status=\"400\" status_text=\"Bogus command name\"/>".into()),
    }
}
