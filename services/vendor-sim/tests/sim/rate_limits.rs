//! Pipedrive rate limiting: 80 requests per 2 s per token, headers on every response.

use crate::common::{align_to_window_start, now_ms, TestSim, ADMIN_TOKEN};
use lifecycle_vendor_sim::Config;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_81st_request_in_a_window_is_429_with_pipedrive_headers() {
    let sim = TestSim::start().await;
    align_to_window_start(2000).await;
    let mut remaining = Vec::new();
    let mut reset = None;
    for _ in 0..80 {
        let r = sim.pd_get("/users/me").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header_i64("x-ratelimit-limit"), 80);
        remaining.push(r.header_i64("x-ratelimit-remaining"));
        // Seconds left in the one window: 2, then 1 once a second of it has gone.
        let this_reset = r.header_i64("x-ratelimit-reset");
        assert!((1..=2).contains(&this_reset) && this_reset <= *reset.get_or_insert(this_reset), "one window");
        reset = Some(this_reset);
    }
    assert_eq!(remaining.first(), Some(&79));
    assert_eq!(remaining.last(), Some(&0));

    let r = sim.pd_get("/users/me").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body, json!({"success": false, "error": "Rate limit exceeded", "errorCode": 429}));
    assert!(r.headers.get("retry-after").is_none());
    assert_eq!(r.header_i64("x-ratelimit-limit"), 80);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    assert_eq!(r.header_i64("x-daily-requests-left"), 80_000 - 80);
    // Reset is the seconds left in the window (Pipedrive: "the remaining window before the rate
    // limit resets", example 2), not a Unix time; windows end on even Unix seconds.
    let reset = r.header_i64("x-ratelimit-reset");
    assert!((1..=2).contains(&reset), "{reset}");
    let now = now_ms();
    let reset_ms = now - now.rem_euclid(2000) + 2000;

    // Another token has its own budget.
    sim.seed(json!({"pipedrive": {"users": [
        {"name": "Rita", "email": "rita@example.com", "api_token": "rita"}
    ]}}))
    .await;
    let r = sim.pd(Method::GET, "/users/me", Some("rita"), None).await;
    assert_eq!(r.status, StatusCode::OK);

    // The window ends, the budget returns.
    tokio::time::sleep(std::time::Duration::from_millis((reset_ms - now_ms() + 10).max(0) as u64)).await;
    let r = sim.pd_get("/users/me").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 79);

    let state = sim.state().await;
    assert_eq!(state["pipedrive"]["counters"]["rate_limited"], 1);
    assert_eq!(state["pipedrive"]["counters"]["requests"], 83);
}

#[tokio::test]
async fn errors_after_auth_carry_the_headers_too() {
    let sim = TestSim::start().await;
    let r = sim.pd_get("/users/999999").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header_i64("x-ratelimit-limit"), 80);
    assert!(r.headers.contains_key("x-ratelimit-remaining"));
    assert!(r.headers.contains_key("x-ratelimit-reset"));
    assert!(r.headers.contains_key("x-daily-requests-left"));
}

#[tokio::test]
async fn limits_are_adjustable_at_runtime() {
    let sim = TestSim::start().await;
    let config = sim
        .control(
            Method::POST,
            "/_sim/config",
            Some(json!({"pipedrive": {"rate_limit": {"requests": 3, "window_ms": 3_600_000}}})),
        )
        .await;
    assert_eq!(config["pipedrive"]["rate_limit"]["requests"], 3);
    assert_eq!(config["pipedrive"]["rate_limit"]["window_ms"], 3_600_000);
    assert_eq!(config["pipedrive"]["rate_limit"]["enabled"], true);
    // A one-hour window: a burst cannot straddle a boundary in practice.
    for _ in 0..3 {
        assert_eq!(sim.pd_get("/users/me").await.status, StatusCode::OK);
    }
    let r = sim.pd_get("/users/me").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header_i64("x-ratelimit-limit"), 3);

    sim.control(Method::POST, "/_sim/config", Some(json!({"pipedrive": {"rate_limit": {"enabled": false}}}))).await;
    assert_eq!(sim.pd_get("/users/me").await.status, StatusCode::OK);

    let bad = sim
        .control_raw(Method::POST, "/_sim/config", Some(json!({"pipedrive": {"rate_limit": {"requests": 0}}})))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let bad = sim.control_raw(Method::POST, "/_sim/config", Some(json!({"salesforce": {}}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    // Reset restores the start-up knobs.
    sim.control(Method::POST, "/_sim/reset", None).await;
    let config = sim.control(Method::GET, "/_sim/config", None).await;
    assert_eq!(
        config["pipedrive"]["rate_limit"],
        json!({"enabled": true, "requests": 80, "window_ms": 2000, "daily_requests": 80000})
    );
}

#[tokio::test]
async fn no_rate_limits_flag_disables_limiting() {
    let sim = TestSim::start_with(Config { no_rate_limits: true, ..Config::ephemeral() }).await;
    for _ in 0..200 {
        let r = sim.pd(Method::GET, "/users/me", Some(ADMIN_TOKEN), None).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let config = sim.control(Method::GET, "/_sim/config", None).await;
    assert_eq!(config["pipedrive"]["rate_limit"]["enabled"], false);
    sim.control(Method::POST, "/_sim/reset", None).await;
    let config = sim.control(Method::GET, "/_sim/config", None).await;
    assert_eq!(config["pipedrive"]["rate_limit"]["enabled"], false, "reset keeps the flag");
}
