//! Any bytes as a PUT /api/v1/subscriptions body: refused or turned into a valid subscription,
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use upbit_exporter::subscription::{parse_doc, SubscriptionDoc};

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = serde_json::from_slice::<SubscriptionDoc>(data) {
        let _ = parse_doc(&doc);
    }
});
