//! Any text as a client request to the simulator: a parsed request or one of Upbit's documented
//! error names, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upbit_exporter::simulator::request::parse;

const NAMES: [&str; 5] = ["WRONG_FORMAT", "NO_TICKET", "NO_TYPE", "NO_CODES", "INVALID_PARAM"];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(error) = parse(text) {
            assert!(NAMES.contains(&error.name), "{}", error.name);
        }
    }
});
