//! `Event::parse` from raw bytes, as the intake sees a body: decode, then
//! validate. Every input must either parse or name at least one bad field,
//! and an accepted event must hold only valid values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifecycle_domain::{Event, IdempotencyKey};

fuzz_target!(|data: &[u8]| {
    // The same bytes as an Idempotency-Key header.
    if let Ok(key) = IdempotencyKey::parse(data) {
        assert!(!key.as_str().is_empty() && key.as_str().len() <= 255);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    match Event::parse(&value) {
        Ok(event) => {
            assert!(!event.apps.is_empty());
            assert!(!event.employee.id.trim().is_empty());
            let inputs = event.run_inputs();
            assert_eq!(inputs.len(), event.apps.len());
            for input in inputs {
                // What is stored with a run must read back as it was.
                let text = serde_json::to_string(&input).expect("a run input serializes");
                let back: lifecycle_domain::RunInput = serde_json::from_str(&text).expect("and reads back");
                assert_eq!(back, input);
            }
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            assert!(errors.iter().all(|e| !e.detail.is_empty()));
        }
    }
});
