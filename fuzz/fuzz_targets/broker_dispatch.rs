//! A lane message's body as the worker decodes it (`shared/engine`'s
//! executor: `serde_json::from_slice::<Dispatch>`). Whatever reaches a lane
//! (a buggy or hostile publisher, a message moved by hand) either decodes to
//! a `Dispatch` that round-trips unchanged or is refused with a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifecycle_broker::Dispatch;

fuzz_target!(|data: &[u8]| {
    match serde_json::from_slice::<Dispatch>(data) {
        Ok(d) => {
            // What the worker derives from it, and what it would publish again.
            let id = d.message_id();
            assert!(id.starts_with(&d.run_id) && id.ends_with(&d.dispatch_seq.to_string()));
            let again = serde_json::to_vec(&d).expect("a dispatch serializes");
            let back: Dispatch = serde_json::from_slice(&again).expect("and reads back");
            assert_eq!(back, d);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
