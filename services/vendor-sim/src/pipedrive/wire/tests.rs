//! Unit tests of `pipedrive/wire.rs`.

use super::*;

#[test]
fn cursors_round_trip_and_garbage_is_refused() {
    let c = encode_cursor("2026-01-01T00:00:00Z", 100_042);
    assert_eq!(decode_cursor(&c).unwrap(), ("2026-01-01T00:00:00Z".to_string(), 100_042));
    assert_eq!(decode_cursor("not a cursor").unwrap_err().status, StatusCode::BAD_REQUEST);
}

#[test]
fn reset_is_the_seconds_left_in_the_window() {
    let d = Decision {
        allowed: true,
        limit: 80,
        remaining: 3,
        reset_at_ms: 10_000,
        daily_limit: None,
        daily_remaining: None,
        retry_at_ms: 10_000,
    };
    let reset = |now| {
        let mut h = HeaderMap::new();
        PipedriveLimits::headers(&d, now, &mut h);
        h["x-ratelimit-reset"].to_str().unwrap().parse::<i64>().unwrap()
    };
    assert_eq!(reset(8_000), 2);
    assert_eq!(reset(8_001), 2);
    assert_eq!(reset(9_700), 1);
    assert_eq!(reset(9_999), 1);
}

#[test]
fn v1_times_are_the_documented_format() {
    assert_eq!(v1_time(0), "1970-01-01 00:00:00");
}
