//! Any bytes as a WebSocket frame payload, through the hot path's brief reader and through the
//! full lenient decode: never a panic, and the same verdict from both (the same messages or the
//! same error codes, the same skipped fields, and each brief the brief of the full message).
#![no_main]

use libfuzzer_sys::fuzz_target;
use upbit_exporter::upbit::brief::Brief;
use upbit_exporter::upbit::decode::{
    decode_as, decode_frame_brief_with, decode_frame_lenient_with, Decoded,
};

fuzz_target!(|data: &[u8]| {
    let (mut full, mut full_skipped) = (Vec::new(), Vec::new());
    decode_frame_lenient_with(
        data,
        |m| full.push(m.map(|m| (Brief::of(&m), m)).map_err(|e| e.code())),
        |f| full_skipped.push(f.to_owned()),
    );
    let (mut brief, mut brief_skipped) = (Vec::new(), Vec::new());
    decode_frame_brief_with(
        data,
        |_| false,
        |m| {
            brief.push(
                m.map(|m| match m {
                    Decoded::Market { brief, json, .. } => {
                        let message = decode_as(brief.data_type, json).expect("its JSON decodes");
                        (Some(brief), message)
                    }
                    Decoded::Control(message) => (None, *message),
                })
                .map_err(|e| e.code()),
            )
        },
        |f| brief_skipped.push(f.to_owned()),
    );
    assert_eq!(brief, full, "the brief path and the full decode disagree");
    assert_eq!(brief_skipped, full_skipped, "skipped fields differ");
});
