//! The JSON API's query-string and path-parameter parsers on arbitrary bytes: the input up to the
//! first NUL as a raw query string to every endpoint, the whole input as the value of every
//! parameter, the rest after the NUL as a path parameter (scan id, finding id, VM id to redirect).
//! Invariants (checked by `query_harness`, shared with the main crate's corpus test): never
//! panics; every error names a parameter the endpoint takes or the query gave, and says what is
//! accepted; every accepted request is within the documented bounds; path ids escape reversibly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stinger_fuzz::query_harness::run(data);
});
