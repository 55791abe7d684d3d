//! The Pipedrive webhook parser on raw bytes, as the receiver sees a body.
//! A user change must carry a bounded, printable delivery key and a user id.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lifecycle_domain::pipedrive_webhook::{parse, Webhook};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(Webhook::User(change)) => {
            let key = &change.delivery_key;
            assert!(!key.is_empty() && key.len() <= 255, "key length {}", key.len());
            assert!(key.bytes().all(|b| b.is_ascii_graphic()), "key {key:?}");
            assert!(!change.user.id.is_empty() && change.user.id.len() <= 255);
            assert!(change.attempt >= 1);
            if change.is_deactivation() {
                assert_eq!(change.user.active_after, Some(false));
            }
        }
        Ok(Webhook::Ignored { object, action, .. }) => {
            assert!(object.chars().count() <= 64 && action.chars().count() <= 64);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
