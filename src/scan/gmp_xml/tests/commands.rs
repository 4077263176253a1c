//! Command builders: exact output, escaping, and gvmd's view of what was sent.

use super::super::responses::{walk, Node};
use super::*;

#[test]
fn simple_commands_are_exact() {
    assert_eq!(get_version(), "<get_version/>");
    assert_eq!(get_feeds(), "<get_feeds/>");
    assert_eq!(start_task("t-1"), r#"<start_task task_id="t-1"/>"#);
    assert_eq!(get_tasks("t-1"), r#"<get_tasks task_id="t-1"/>"#);
    assert_eq!(
        delete_task("t-1", true),
        r#"<delete_task task_id="t-1" ultimate="1"/>"#
    );
    assert_eq!(
        delete_target("x", false),
        r#"<delete_target target_id="x" ultimate="0"/>"#
    );
    assert_eq!(
        get_reports("r-1"),
        r#"<get_reports report_id="r-1" details="1" ignore_pagination="1" filter="apply_overrides=0 min_qod=70 rows=-1 levels=chmlg"/>"#
    );
}

#[test]
fn authenticate_escapes_and_round_trips() {
    let user = r#"ad<min>&"o'"#;
    let pass = "p&ss<w>rd\"'\u{1}x";
    let cmd = authenticate(user, pass);
    assert_eq!(
        cmd,
        "<authenticate><credentials><username>ad&lt;min&gt;&amp;&quot;o&apos;</username>\
         <password>p&amp;ss&lt;w&gt;rd&quot;&apos;x</password></credentials></authenticate>"
    );
    // gvmd's view of it: a well-formed document giving back the exact values (minus the C0 control).
    let (mut u, mut p) = (None, None);
    walk(cmd.as_bytes(), |node, _| {
        if let Node::Close { path, text } = node {
            match path.last().map(String::as_str) {
                Some("username") => u = Some(text.to_owned()),
                Some("password") => p = Some(text.to_owned()),
                _ => {}
            }
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(u.as_deref(), Some(user));
    assert_eq!(p.as_deref(), Some("p&ss<w>rd\"'x"));
}

#[test]
fn create_target_and_task_escape_values() {
    let hosts = vec![
        "10.0.0.1".to_owned(),
        " ".to_owned(),
        "10.1.0.0/24".to_owned(),
    ];
    assert_eq!(
        create_target("stinger <a&b>", &hosts, "T:22,80,U:53", "ICMP & TCP-ACK Service Ping"),
        "<create_target><name>stinger &lt;a&amp;b&gt;</name><hosts>10.0.0.1,10.1.0.0/24</hosts>\
         <port_range>T:22,80,U:53</port_range><alive_tests>ICMP &amp; TCP-ACK Service Ping</alive_tests>\
         </create_target>"
    );
    assert_eq!(
        create_task(
            "n\"1",
            "daba56c8-73ec-11df-a475-002264764cea",
            "t\"x",
            "s'y"
        ),
        "<create_task><name>n&quot;1</name><config id=\"daba56c8-73ec-11df-a475-002264764cea\"/>\
         <target id=\"t&quot;x\"/><scanner id=\"s&apos;y\"/></create_task>"
    );
    assert_eq!(
        start_task("a\"/><x y=\""),
        r#"<start_task task_id="a&quot;/&gt;&lt;x y=&quot;"/>"#
    );
    assert_eq!(get_tasks("a\nb"), r#"<get_tasks task_id="a&#10;b"/>"#);
}

#[test]
fn name_filter_quotes_and_strips() {
    assert_eq!(
        get_tasks_by_name_filter("stinger-"),
        r#"<get_tasks filter="name~stinger- rows=-1"/>"#
    );
    assert_eq!(
        get_tasks_by_name_filter("my \"scan\" <x>"),
        r#"<get_tasks filter="name~&quot;my scan &lt;x&gt;&quot; rows=-1"/>"#
    );
}
