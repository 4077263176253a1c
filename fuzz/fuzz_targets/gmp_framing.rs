//! GMP response framing: the bytes are pushed into a ResponseSplitter in chunks whose sizes
//! come from the input (first byte: seed of a xorshift; sizes 1..=max), the rest re-pushed
//! after each completed response, as the session loop does. Every framed response is then
//! handed to the response parsers (they must not panic).
//! Invariants: never panics; `Some(n)` has 1 <= n <= chunk length; the total consumed never
//! exceeds the input; after an error the splitter stays failed; the response boundaries and the
//! error/no-error outcome are the same as when the input is pushed in one piece.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stinger_fuzz::scan::gmp_xml::{
    parse_feeds, parse_start_task, parse_status, parse_task, parse_tasks, parse_version,
    ResponseSplitter,
};

const MAX_BYTES: usize = 4096;
const MAX_DEPTH: u32 = 16;

/// Frames `data` pushed in the given chunk sizes; returns (end offsets of responses, failed?).
fn frame(data: &[u8], mut next_size: impl FnMut() -> usize) -> (Vec<usize>, bool) {
    let mut s = ResponseSplitter::with_max_depth(MAX_BYTES, MAX_DEPTH);
    let mut ends = Vec::new();
    let mut pos = 0usize; // bytes handed to the splitter and accounted for
    while pos < data.len() {
        let end = pos.saturating_add(next_size()).min(data.len());
        let mut chunk = &data[pos..end];
        while !chunk.is_empty() {
            match s.push(chunk) {
                Ok(Some(n)) => {
                    assert!(
                        n >= 1 && n <= chunk.len(),
                        "Some({n}) for a {}-byte chunk",
                        chunk.len()
                    );
                    pos += n;
                    ends.push(pos);
                    chunk = &chunk[n..];
                }
                Ok(None) => {
                    pos += chunk.len();
                    chunk = &[];
                }
                Err(_) => {
                    assert!(
                        s.push(b"<a/>").is_err(),
                        "splitter recovered after an error"
                    );
                    assert!(pos <= data.len());
                    return (ends, true);
                }
            }
            assert!(pos <= data.len(), "consumed {pos} of {} bytes", data.len());
        }
    }
    assert_eq!(pos, data.len());
    // At end of input, finish() fails exactly when a response was started but not completed.
    assert_eq!(s.finish().is_err(), s.in_progress());
    (ends, false)
}

fuzz_target!(|data: &[u8]| {
    let (seed, body) = match data.split_first() {
        Some((s, rest)) => (*s, rest),
        None => return,
    };
    let max = 1 + usize::from(seed & 0x3f);
    let mut x = u32::from(seed) | 0x9e37_7900;
    let chunked = frame(body, || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        1 + (x as usize) % max
    });
    let whole = frame(body, || usize::MAX);
    assert_eq!(chunked, whole, "framing depends on chunk sizes (max {max})");

    let mut start = 0;
    for &end in &chunked.0 {
        let doc = &body[start..end];
        let _ = parse_status(doc);
        let _ = parse_version(doc);
        let _ = parse_start_task(doc);
        let _ = parse_tasks(doc);
        let _ = parse_task(doc);
        let _ = parse_feeds(doc);
        start = end;
    }
});
