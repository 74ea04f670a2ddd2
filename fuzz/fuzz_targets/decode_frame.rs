//! Any bytes as a WebSocket frame payload: the decoder returns messages or errors, never panics,
//! and every error has a metric reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upbit_exporter::upbit::decode_frame_with;

fuzz_target!(|data: &[u8]| {
    decode_frame_with(data, |result| {
        if let Err(error) = result {
            assert!(!error.code().is_empty());
        }
    });
});
