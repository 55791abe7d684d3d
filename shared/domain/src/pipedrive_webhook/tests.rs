//! Unit tests of `pipedrive_webhook.rs`.

use super::*;
use serde_json::json;

fn v1_user(event: &str, current: Value, previous: Value, retry: u64, ts: u64) -> Value {
    let (action, object) = event.split_once('.').unwrap();
    json!({
        "v": 1,
        "matches_filters": {"current": []},
        "meta": {
            "v": 1, "action": action, "object": object, "id": 17, "company_id": 7001, "user_id": 1,
            "host": "acme.pipedrive.com", "timestamp": ts / 1_000_000, "timestamp_micro": ts,
            "permitted_user_ids": [1], "trans_pending": false, "is_bulk_update": false,
            "pipedrive_service_name": false, "change_source": "app", "webhook_id": "88"
        },
        "retry": retry,
        "current": current,
        "previous": previous,
        "event": event
    })
}

fn v2_user(action: &str, data: Value, previous: Value, event_id: &str, attempt: u64) -> Value {
    json!({
        "meta": {
            "action": action, "entity": "user", "company_id": "7001",
            "correlation_id": "0b6f2f0e-7d0c-4d7e-9b0e-6f1d2b7f2a11", "entity_id": "17", "id": event_id,
            "is_bulk_edit": false, "timestamp": "2026-11-22T10:00:00.000Z", "type": "general",
            "user_id": "1", "version": "2.0", "webhook_id": "88", "webhook_owner_id": "1",
            "change_source": "app", "attempt": attempt, "host": "acme.pipedrive.com"
        },
        "data": data,
        "previous": previous
    })
}

fn user(v: Value) -> UserChange {
    match parse_value(&v).unwrap() {
        Webhook::User(u) => u,
        other => panic!("not a user change: {other:?}"),
    }
}

#[test]
fn v1_deactivation_reads_the_user_from_one_element_arrays() {
    let u = user(v1_user(
        "updated.user",
        json!([{"id": 17, "name": "Linus", "email": "Linus@Example.com", "active_flag": false}]),
        json!([{"id": 17, "name": "Linus", "email": "Linus@Example.com", "active_flag": true}]),
        0,
        1_795_000_000_123_456,
    ));
    assert_eq!(u.version, WebhookVersion::V1);
    assert!(u.is_deactivation());
    assert_eq!(u.user.id, "17");
    assert_eq!(u.user.email.unwrap().normalized(), "linus@example.com");
    assert_eq!(u.attempt, 1);
}

#[test]
fn a_v1_retry_has_the_same_key_and_another_change_does_not() {
    let cur = json!([{"id": 17, "email": "a@example.com", "active_flag": false}]);
    let prev = json!([{"id": 17, "email": "a@example.com", "active_flag": true}]);
    let first = user(v1_user("updated.user", cur.clone(), prev.clone(), 0, 1_795_000_000_000_001));
    let retry = user(v1_user("updated.user", cur.clone(), prev.clone(), 2, 1_795_000_000_000_001));
    let later = user(v1_user("updated.user", cur, prev, 0, 1_795_000_000_500_000));
    assert_eq!(first.delivery_key, retry.delivery_key);
    assert_eq!(retry.attempt, 3);
    assert_ne!(first.delivery_key, later.delivery_key);
}

#[test]
fn v2_keys_are_the_event_id_whatever_the_attempt() {
    let a = user(v2_user("change", json!({"id": 17, "active_flag": false}), json!({"active_flag": true}), "e-1", 1));
    let b = user(v2_user("change", json!({"id": 17, "active_flag": false}), json!({"active_flag": true}), "e-1", 3));
    let c = user(v2_user("change", json!({"id": 17, "active_flag": false}), json!({"active_flag": true}), "e-2", 1));
    assert_eq!(a.delivery_key, "v2:e-1");
    assert_eq!(a.delivery_key, b.delivery_key);
    assert_ne!(a.delivery_key, c.delivery_key);
    assert!(a.is_deactivation());
}

#[test]
fn v2_change_without_active_flag_in_previous_is_not_a_deactivation() {
    let u = user(v2_user("change", json!({"id": 17, "active_flag": false, "name": "N"}), json!({"name": "M"}), "e", 1));
    assert!(!u.is_deactivation());
}

#[test]
fn v2_delete_takes_the_address_from_the_last_state() {
    let u = user(v2_user("delete", Value::Null, json!({"id": 17, "email": "gone@example.com"}), "e", 1));
    assert_eq!(u.action, WebhookAction::Deleted);
    assert_eq!(u.user.email.unwrap().as_str(), "gone@example.com");
}

#[test]
fn other_objects_are_ignored() {
    let mut v = v2_user("change", json!({}), Value::Null, "e", 1);
    v["meta"]["entity"] = json!("deal");
    assert!(matches!(parse_value(&v).unwrap(), Webhook::Ignored { .. }));
    let v = v1_user("added.deal", json!({"id": 1}), Value::Null, 0, 1);
    assert!(matches!(parse_value(&v).unwrap(), Webhook::Ignored { .. }));
}

#[test]
fn garbage_is_refused_with_a_reason() {
    assert!(matches!(parse(b"not json"), Err(WebhookError::NotJson(_))));
    assert_eq!(parse(b"[]"), Err(WebhookError::NotObject));
    assert_eq!(parse(b"{}"), Err(WebhookError::UnknownVersion));
    assert!(matches!(parse(b"{\"v\":1,\"meta\":[]}"), Err(WebhookError::Field { .. })));
    let deep = "[".repeat(10_000);
    assert!(matches!(parse(deep.as_bytes()), Err(WebhookError::NotJson(_))));
}

/// Found by the fuzzer (FUZZING.md): `meta.attempt: 0` gave attempt 0.
#[test]
fn a_v2_attempt_of_zero_counts_as_the_first() {
    let u = user(v2_user("change", json!({"id": 17}), Value::Null, "e", 0));
    assert_eq!(u.attempt, 1);
}

#[test]
fn a_user_id_that_is_not_a_positive_integer_is_refused_naming_its_field() {
    for bad in [json!("abc"), json!("17a"), json!(""), json!("-3"), json!(0), json!(-1), json!(1.5), json!(true)] {
        let mut v = v2_user("change", json!({"id": 17}), Value::Null, "e", 1);
        v["meta"]["entity_id"] = bad.clone();
        let e = parse_value(&v).unwrap_err();
        assert!(matches!(e, WebhookError::Field { field: "meta.entity_id", .. }), "{bad}: {e}");
        assert!(e.to_string().contains("positive integer"), "{e}");
    }
    let mut v = v2_user("change", json!({"id": "x"}), Value::Null, "e", 1);
    v["meta"].as_object_mut().unwrap().remove("entity_id");
    assert!(matches!(parse_value(&v), Err(WebhookError::Field { field: "data.id", .. })));
    let v = v1_user("updated.user", json!([{"id": "abc"}]), Value::Null, 0, 1);
    let mut v = v;
    v["meta"]["id"] = Value::Null;
    assert!(matches!(parse_value(&v), Err(WebhookError::Field { field: "current.id", .. })));
    // Digits as a string (v2's way) and as a number (v1's) are the same id.
    let mut v = v2_user("change", json!({"id": 17}), Value::Null, "e", 1);
    v["meta"]["entity_id"] = json!(17);
    assert_eq!(user(v).user.id, "17");
}

#[test]
fn errors_name_the_field_of_the_payload_version() {
    let v = v2_user("change", json!({"id": 17, "active_flag": "no"}), json!({}), "e", 1);
    let e = parse_value(&v).unwrap_err();
    assert!(matches!(e, WebhookError::Field { field: "data.active_flag", .. }), "{e}");
    assert_eq!(e.field_error().unwrap().pointer, "#/data/active_flag");
    let v = v1_user("updated.user", json!([{"id": 17, "active_flag": "no"}]), Value::Null, 0, 1);
    assert!(matches!(parse_value(&v), Err(WebhookError::Field { field: "current.active_flag", .. })));
    let v = v2_user("change", json!({"id": 17}), json!({"active_flag": "yes"}), "e", 1);
    assert!(matches!(parse_value(&v), Err(WebhookError::Field { field: "previous.active_flag", .. })));
}

#[test]
fn a_repeated_key_is_refused_naming_it() {
    let body = br#"{"meta":{"version":"2.0","entity":"user","action":"change","action":"delete","entity_id":"17","id":"e"},"data":{"id":17}}"#;
    let e = parse(body).unwrap_err();
    assert_eq!(e, WebhookError::DuplicateKey { field: "meta.action".into() });
    assert_eq!(e.field_error().unwrap().field, "meta.action");
}

#[test]
fn invisible_characters_do_not_reach_a_name() {
    let u = user(v2_user("change", json!({"id": 17, "name": "Li\u{202e}nus\u{200b}"}), Value::Null, "e", 1));
    assert_eq!(u.user.name.as_deref(), Some("Linus"));
}

#[test]
fn long_or_odd_ids_still_give_bounded_keys() {
    let id = "x".repeat(250);
    let u = user(v2_user("change", json!({"id": 1}), Value::Null, &id, 1));
    assert!(u.delivery_key.len() <= 255);
    assert!(u.delivery_key.starts_with("v2:sha256:"));
}

proptest::proptest! {
    #[test]
    fn parse_never_panics_and_keys_fit(s in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
        if let Ok(Webhook::User(u)) = parse(&s) {
            proptest::prop_assert!(!u.delivery_key.is_empty() && u.delivery_key.len() <= 255);
            proptest::prop_assert!(u.delivery_key.bytes().all(|b| b.is_ascii_graphic()));
        }
    }

    #[test]
    fn mutated_real_payloads_parse_or_say_why(
        path in proptest::sample::select(vec!["meta", "meta.action", "meta.entity", "meta.id", "meta.entity_id", "meta.attempt", "meta.version", "data", "data.active_flag", "data.email", "previous", "previous.active_flag"]),
        replacement in proptest::prop_oneof![
            proptest::strategy::Just(json!(null)),
            proptest::strategy::Just(json!(-1)),
            proptest::strategy::Just(json!(1.5)),
            proptest::strategy::Just(json!("")),
            proptest::strategy::Just(json!([])),
            proptest::strategy::Just(json!({})),
            proptest::strategy::Just(json!(true)),
            ".{0,40}".prop_map(Value::String),
        ],
    ) {
        let mut v = v2_user("change", json!({"id": 17, "email": "a@example.com", "active_flag": false}), json!({"active_flag": true}), "e-1", 1);
        let parts: Vec<&str> = path.split('.').collect();
        let mut target = &mut v;
        for p in &parts[..parts.len() - 1] {
            target = target.get_mut(*p).unwrap();
        }
        target[parts[parts.len() - 1]] = replacement;
        match parse_value(&v) {
            Ok(Webhook::User(u)) => proptest::prop_assert!(u.delivery_key.len() <= 255),
            Ok(Webhook::Ignored { .. }) => {}
            Err(e) => proptest::prop_assert!(!e.to_string().is_empty()),
        }
    }

    #[test]
    fn depth_check_agrees_with_nesting(depth in 0usize..200) {
        let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        proptest::prop_assert_eq!(json_depth_exceeds(body.as_bytes(), MAX_NESTING), depth > MAX_NESTING);
    }
}
use proptest::prelude::Strategy;
