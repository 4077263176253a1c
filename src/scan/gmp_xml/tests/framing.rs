//! ResponseSplitter: whole and byte-by-byte framing, back-to-back documents, markup
//! lookalikes across chunk boundaries, caps and truncation.

use std::time::{Duration, Instant};

use super::*;

#[test]
fn splitter_frames_every_fixture_whole_and_byte_by_byte() {
    for rel in RESPONSES.iter().chain(REPORTS) {
        let bytes = fixture(rel);
        let whole = split_whole(&bytes);
        assert_eq!(&bytes[whole - 1..whole], b">", "{rel}");
        let mut s = ResponseSplitter::new(1 << 20);
        let mut done_at = None;
        for (i, b) in bytes.iter().enumerate() {
            if let Some(n) = s.push(std::slice::from_ref(b)).unwrap() {
                assert_eq!(n, 1);
                done_at = Some(i + 1);
                break;
            }
        }
        assert_eq!(done_at, Some(whole), "{rel}");
    }
    // The self-closing, multi-line root of the 400 answer ends exactly at "/>".
    let bytes = fixture("responses/gmp-doc-examples/authenticate_response-400.xml");
    let n = split_whole(&bytes);
    assert!(bytes[..n].ends_with(b"status_text=\"Authentication failed\"/>"));
}

#[test]
fn splitter_handles_back_to_back_documents_in_one_chunk() {
    let a = fixture("responses/gmp-doc-examples/authenticate_response-400.xml");
    let b = fixture("responses/gmp-doc-examples/get_tasks_response.xml");
    let a = &a[..split_whole(&a)];
    let b = &b[..split_whole(&b)];
    let both = [
        a,
        b,
        b"<get_version_response status=\"200\" status_text=\"OK\"/>",
    ]
    .concat();
    let mut s = ResponseSplitter::new(1 << 20);
    let n1 = s.push(&both).unwrap().unwrap();
    assert_eq!(n1, a.len());
    assert_eq!(parse_status(&both[..n1]).unwrap().code, 400);
    let rest = &both[n1..];
    let n2 = s.push(rest).unwrap().unwrap();
    assert_eq!(&rest[..n2], b);
    assert_eq!(parse_tasks(&rest[..n2]).unwrap().len(), 2);
    let rest = &rest[n2..];
    assert_eq!(s.push(rest).unwrap(), Some(rest.len()));
    assert_eq!(parse_status(rest).unwrap().command, "get_version_response");
}

#[test]
fn splitter_ignores_markup_lookalikes_across_chunk_boundaries() {
    let doc: &[u8] = b"<?xml version=\"1.0\"?><!DOCTYPE r [ <!ENTITY a \"</r>\"> ]><!-- <r/> -->\
        <r a=\"x/>\" b='>'><c d=\"/\"/><!-- </r> --><![CDATA[</r>]]]]><?pi </r> ?>text > </r>";
    for cut in 0..doc.len() {
        let mut s = ResponseSplitter::new(4096);
        let first = s.push(&doc[..cut]).unwrap();
        assert_eq!(first, None, "finished early at cut {cut}");
        assert_eq!(
            s.push(&doc[cut..]).unwrap(),
            Some(doc.len() - cut),
            "cut {cut}"
        );
    }
}

#[test]
fn splitter_enforces_caps_and_reports_truncation() {
    let doc = fixture("responses/gmp-doc-examples/get_tasks_response.xml");
    let n = split_whole(&doc);
    let mut s = ResponseSplitter::new(n);
    assert_eq!(
        s.push(&doc[..n]).unwrap(),
        Some(n),
        "exactly at the cap is fine"
    );
    let mut s = ResponseSplitter::new(n - 1);
    match s.push(&doc) {
        Err(Error::Limit {
            what: "response bytes",
            limit,
        }) => assert_eq!(limit, (n - 1) as u64),
        other => panic!("{other:?}"),
    }
    assert!(s.push(b"<x/>").is_err(), "stays failed");

    let deep = "<a>".repeat(100_000);
    let t = Instant::now();
    let mut s = ResponseSplitter::new(1 << 20);
    assert!(matches!(
        s.push(deep.as_bytes()),
        Err(Error::Limit {
            what: "response element depth",
            ..
        })
    ));
    assert!(t.elapsed() < Duration::from_secs(1));

    let mut s = ResponseSplitter::new(1 << 20);
    assert_eq!(
        s.push(b"\n  <get_tasks_response status=\"200\"><task")
            .unwrap(),
        None
    );
    assert!(s.in_progress());
    assert!(matches!(s.finish(), Err(Error::Truncated { .. })));
    assert!(ResponseSplitter::new(10).finish().is_ok());

    let mut s = ResponseSplitter::new(1 << 20);
    assert!(matches!(
        s.push(b"HTTP/1.1 400"),
        Err(Error::Unexpected { .. })
    ));
}
