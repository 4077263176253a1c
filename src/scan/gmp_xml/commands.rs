//! GMP command builders: the exact XML Stinger sends to gvmd, every value escaped.

/// XML-escapes `s` into `out`. Characters XML 1.0 cannot carry (most C0 controls) are dropped;
/// in attribute values tab/CR/LF become character references so they survive normalisation.
pub(crate) fn escape_into(out: &mut String, s: &str, attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' if attribute => out.push_str("&#13;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

fn elem(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_into(out, text, false);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// `<name attr="value"/>` with every value escaped.
fn empty_elem(name: &str, attrs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(
        32 + attrs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>(),
    );
    out.push('<');
    out.push_str(name);
    for (k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_into(&mut out, v, true);
        out.push('"');
    }
    out.push_str("/>");
    out
}

pub fn get_version() -> String {
    "<get_version/>".to_owned()
}

/// The returned command contains the password in clear: send it, never log it.
pub fn authenticate(user: &str, password: &str) -> String {
    let mut out = String::with_capacity(96 + user.len() + password.len());
    out.push_str("<authenticate><credentials>");
    elem(&mut out, "username", user);
    elem(&mut out, "password", password);
    out.push_str("</credentials></authenticate>");
    out
}

/// `hosts` are joined with commas (gvmd's list syntax), so callers must pass validated IPs/CIDRs:
/// escaping cannot stop a value containing a comma from naming two hosts. Empty entries are skipped.
/// `ports` is a gvmd port_range such as `T:22,80,U:53`; `alive_test` one of the PROTOCOLS.md strings.
pub fn create_target(name: &str, hosts: &[String], ports: &str, alive_test: &str) -> String {
    let mut out = String::with_capacity(160 + name.len() + ports.len() + hosts.len() * 16);
    out.push_str("<create_target>");
    elem(&mut out, "name", name);
    out.push_str("<hosts>");
    let mut first = true;
    for host in hosts.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
        if !first {
            out.push(',');
        }
        first = false;
        escape_into(&mut out, host, false);
    }
    out.push_str("</hosts>");
    elem(&mut out, "port_range", ports);
    elem(&mut out, "alive_tests", alive_test);
    out.push_str("</create_target>");
    out
}

pub fn create_task(name: &str, config_id: &str, target_id: &str, scanner_id: &str) -> String {
    let mut out = String::with_capacity(160 + name.len());
    out.push_str("<create_task>");
    elem(&mut out, "name", name);
    out.push_str(&empty_elem("config", &[("id", config_id)]));
    out.push_str(&empty_elem("target", &[("id", target_id)]));
    out.push_str(&empty_elem("scanner", &[("id", scanner_id)]));
    out.push_str("</create_task>");
    out
}

pub fn start_task(task_id: &str) -> String {
    empty_elem("start_task", &[("task_id", task_id)])
}

pub fn get_tasks(task_id: &str) -> String {
    empty_elem("get_tasks", &[("task_id", task_id)])
}

/// Results filter used for every report fetch (PROTOCOLS.md §2 step 7): details are off by
/// default since GMP 9, `c` enables Critical (22.7+), and `rows=-1` asks for everything.
pub(crate) const REPORT_FILTER: &str = "apply_overrides=0 min_qod=70 rows=-1 levels=chmlg";

pub fn get_reports(report_id: &str) -> String {
    empty_elem(
        "get_reports",
        &[
            ("report_id", report_id),
            ("details", "1"),
            ("ignore_pagination", "1"),
            ("filter", REPORT_FILTER),
        ],
    )
}

pub fn get_feeds() -> String {
    "<get_feeds/>".to_owned()
}

pub fn delete_task(id: &str, ultimate: bool) -> String {
    empty_elem(
        "delete_task",
        &[
            ("task_id", id),
            ("ultimate", if ultimate { "1" } else { "0" }),
        ],
    )
}

pub fn delete_target(id: &str, ultimate: bool) -> String {
    empty_elem(
        "delete_target",
        &[
            ("target_id", id),
            ("ultimate", if ultimate { "1" } else { "0" }),
        ],
    )
}

/// `<get_tasks filter="name~PREFIX rows=-1"/>`. gvmd's `~` means "contains" (not "starts with"),
/// so callers must still check `name.starts_with(prefix)`. `"` is removed from the prefix (gvmd's
/// filter syntax has no escape for it) and a prefix with whitespace is quoted.
pub fn get_tasks_by_name_filter(prefix: &str) -> String {
    let cleaned: String = prefix.chars().filter(|&c| c != '"').collect();
    let value = if cleaned.chars().any(char::is_whitespace) {
        format!("\"{cleaned}\"")
    } else {
        cleaned
    };
    empty_elem("get_tasks", &[("filter", &format!("name~{value} rows=-1"))])
}
