//! The whole request path the server runs after the HTTP framing: query parsing,
//! signature check, body parsing, normalization. Input: the query string, a newline,
//! the body (see `tim_kafka_bridge::http::fuzzing`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    tim_kafka_bridge::http::fuzzing::check_one(input);
});
