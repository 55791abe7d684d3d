//! A fixed-window rate limiter any vendor can use, keyed by whatever the vendor limits on
//! (a token, an API client, ...).
//!
//! Windows are aligned to the Unix epoch (a 2 s window starts on even Unix seconds), with an
//! optional daily quota aligned to UTC days. The limiter only decides; each vendor renders the
//! decision its own way through [`RateLimitStyle`] (header names, 429 body, Retry-After or not).
//! Rejected requests do not count against either quota.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

const DAY_MS: i64 = 86_400_000;

/// A vendor's limits; adjustable at runtime through `/_sim/config`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimitConfig {
    /// When false, nothing is counted and nothing is refused (headers still show the limits).
    pub enabled: bool,
    /// Requests allowed per window.
    pub requests: u32,
    /// Window length in milliseconds.
    pub window_ms: u64,
    /// Requests allowed per UTC day, if the vendor has a daily quota.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daily_requests: Option<u32>,
}

/// A partial update of a [`RateLimitConfig`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPatch {
    pub enabled: Option<bool>,
    pub requests: Option<u32>,
    pub window_ms: Option<u64>,
    pub daily_requests: Option<u32>,
}

/// The outcome of one check, with everything a vendor needs for its headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests allowed per window.
    pub limit: u32,
    /// Requests left in the current window after this one.
    pub remaining: u32,
    /// When the current window ends, in Unix milliseconds.
    pub reset_at_ms: i64,
    pub daily_limit: Option<u32>,
    /// Requests left today after this one.
    pub daily_remaining: Option<u32>,
    /// When the refused request may be retried (window end, or day end if the day is used up).
    pub retry_at_ms: i64,
}

impl Decision {
    /// The window's end as a Unix timestamp in whole seconds (rounded up).
    pub fn reset_at_secs(&self) -> i64 {
        ceil_div(self.reset_at_ms, 1000)
    }

    /// Whole seconds from `now_ms` until a refused request may be retried (at least 1).
    pub fn retry_after_secs(&self, now_ms: i64) -> i64 {
        ceil_div(self.retry_at_ms - now_ms, 1000).max(1)
    }
}

/// How a vendor renders rate-limit decisions.
pub trait RateLimitStyle {
    /// Add the vendor's rate-limit headers to a response (allowed or not).
    fn headers(decision: &Decision, now_ms: i64, headers: &mut HeaderMap);
    /// The vendor's complete 429 response, headers included.
    fn rejection(decision: &Decision, now_ms: i64) -> Response;
}

#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    window_start: i64,
    count: u32,
    day_start: i64,
    day_count: u32,
}

/// Fixed-window counters per key.
#[derive(Clone, Debug)]
pub struct Limiter {
    config: RateLimitConfig,
    usage: HashMap<String, Usage>,
}

impl Limiter {
    pub fn new(config: RateLimitConfig) -> Self {
        Limiter { config, usage: HashMap::new() }
    }

    pub fn config(&self) -> RateLimitConfig {
        self.config
    }

    /// Apply a partial update from `/_sim/config`. Usage is cleared so the new limits start
    /// from a clean window.
    pub fn configure(&mut self, patch: Value) -> Result<(), String> {
        let patch: RateLimitPatch = serde_json::from_value(patch).map_err(|e| format!("rate_limit: {e}"))?;
        let mut next = self.config;
        if let Some(enabled) = patch.enabled {
            next.enabled = enabled;
        }
        if let Some(requests) = patch.requests {
            next.requests = requests;
        }
        if let Some(window_ms) = patch.window_ms {
            next.window_ms = window_ms;
        }
        if let Some(daily) = patch.daily_requests {
            next.daily_requests = Some(daily);
        }
        if next.requests == 0 || next.window_ms == 0 || next.daily_requests == Some(0) {
            return Err("rate_limit: requests, window_ms and daily_requests must be at least 1".into());
        }
        self.config = next;
        self.usage.clear();
        Ok(())
    }

    /// The whole `/_sim/config` patch of a vendor whose only knob is `rate_limit`. Checked in
    /// full before anything changes.
    pub fn configure_as_only_knob(&mut self, patch: Value) -> Result<(), String> {
        let Value::Object(mut map) = patch else {
            return Err("expected an object like {\"rate_limit\": {...}}".into());
        };
        if let Some(other) = map.keys().find(|k| *k != "rate_limit") {
            return Err(format!("unknown knob {other:?} (known: rate_limit)"));
        }
        match map.remove("rate_limit") {
            Some(value) => self.configure(value),
            None => Ok(()),
        }
    }

    /// Count one request for `key` and say whether it is allowed.
    pub fn check(&mut self, key: &str, now_ms: i64) -> Decision {
        if !self.config.enabled {
            return self.decide(Usage::default(), now_ms, true);
        }
        let (window_start, day_start) = self.starts(now_ms);
        let usage = self.usage.entry(key.to_owned()).or_default();
        if usage.window_start != window_start {
            usage.window_start = window_start;
            usage.count = 0;
        }
        if usage.day_start != day_start {
            usage.day_start = day_start;
            usage.day_count = 0;
        }
        let window_ok = usage.count < self.config.requests;
        let day_ok = self.config.daily_requests.is_none_or(|d| usage.day_count < d);
        let allowed = window_ok && day_ok;
        if allowed {
            usage.count += 1;
            usage.day_count += 1;
        }
        let usage = *usage;
        self.decide(usage, now_ms, allowed)
    }

    /// The state for `key` without counting anything.
    pub fn peek(&self, key: Option<&str>, now_ms: i64) -> Decision {
        let (window_start, day_start) = self.starts(now_ms);
        let mut usage = key.and_then(|k| self.usage.get(k)).copied().unwrap_or_default();
        if !self.config.enabled || usage.window_start != window_start {
            usage.count = 0;
        }
        if !self.config.enabled || usage.day_start != day_start {
            usage.day_count = 0;
        }
        self.decide(usage, now_ms, true)
    }

    /// A refusal as if the current window were used up (for injected 429 faults).
    pub fn exhausted(&self, key: Option<&str>, now_ms: i64) -> Decision {
        Decision { allowed: false, remaining: 0, ..self.peek(key, now_ms) }
    }

    fn starts(&self, now_ms: i64) -> (i64, i64) {
        let window = self.config.window_ms as i64;
        (now_ms - now_ms.rem_euclid(window), now_ms - now_ms.rem_euclid(DAY_MS))
    }

    fn decide(&self, usage: Usage, now_ms: i64, allowed: bool) -> Decision {
        let (window_start, day_start) = self.starts(now_ms);
        let reset_at_ms = window_start + self.config.window_ms as i64;
        let daily_remaining = self.config.daily_requests.map(|d| d.saturating_sub(usage.day_count));
        let day_used_up = daily_remaining == Some(0);
        Decision {
            allowed,
            limit: self.config.requests,
            remaining: self.config.requests.saturating_sub(usage.count),
            reset_at_ms,
            daily_limit: self.config.daily_requests,
            daily_remaining,
            retry_at_ms: if !allowed && day_used_up { day_start + DAY_MS } else { reset_at_ms },
        }
    }
}

fn ceil_div(a: i64, b: i64) -> i64 {
    -((-a).div_euclid(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipedrive_like() -> Limiter {
        Limiter::new(RateLimitConfig { enabled: true, requests: 3, window_ms: 2000, daily_requests: Some(5) })
    }

    #[test]
    fn windows_are_aligned_to_even_unix_seconds() {
        let mut l = pipedrive_like();
        let d = l.check("t", 1_000_001_500);
        assert_eq!(d.reset_at_ms, 1_000_002_000);
        assert_eq!(d.reset_at_secs(), 1_000_002);
        let d = l.check("t", 1_000_003_999);
        assert_eq!(d.reset_at_ms, 1_000_004_000);
    }

    #[test]
    fn refuses_past_the_limit_then_recovers_in_the_next_window() {
        let mut l = pipedrive_like();
        let t = 1_000_000_000;
        for left in [2, 1, 0] {
            let d = l.check("t", t);
            assert!(d.allowed);
            assert_eq!(d.remaining, left);
        }
        assert!(!l.check("t", t + 10).allowed);
        assert!(l.check("other", t + 10).allowed, "keys are independent");
        let d = l.check("t", t + 2000);
        assert!(d.allowed);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn daily_quota_refuses_until_the_next_utc_day() {
        let mut l = pipedrive_like();
        let day = 20_000 * DAY_MS;
        for i in 0..5 {
            assert!(l.check("t", day + i * 2000).allowed);
        }
        let d = l.check("t", day + 100_000);
        assert!(!d.allowed);
        assert_eq!(d.daily_remaining, Some(0));
        assert_eq!(d.retry_at_ms, day + DAY_MS);
        assert!(l.check("t", day + DAY_MS).allowed);
    }

    #[test]
    fn disabled_limiter_allows_everything() {
        let mut l = pipedrive_like();
        l.configure(serde_json::json!({"enabled": false})).unwrap();
        for _ in 0..100 {
            let d = l.check("t", 1_000_000_000);
            assert!(d.allowed);
            assert_eq!(d.remaining, 3);
        }
    }

    #[test]
    fn configure_validates_and_rejects_unknown_knobs() {
        let mut l = pipedrive_like();
        assert!(l.configure(serde_json::json!({"requests": 0})).is_err());
        assert!(l.configure(serde_json::json!({"burst": 1})).is_err());
        l.configure(serde_json::json!({"requests": 10, "window_ms": 500})).unwrap();
        assert_eq!(l.config().requests, 10);
        assert_eq!(l.config().window_ms, 500);
        assert_eq!(l.config().daily_requests, Some(5));
    }

    #[test]
    fn a_patch_with_an_unknown_knob_changes_nothing() {
        let mut l = pipedrive_like();
        let err = l.configure_as_only_knob(serde_json::json!({"rate_limit": {"requests": 9}, "zzz": 1})).unwrap_err();
        assert!(err.contains("zzz"), "{err}");
        assert_eq!(l.config().requests, 3);
        l.configure_as_only_knob(serde_json::json!({"rate_limit": {"requests": 9}})).unwrap();
        assert_eq!(l.config().requests, 9);
        assert!(l.configure_as_only_knob(serde_json::json!([1])).is_err());
    }
}
