//! Client-side rate limiting, shared by every concurrent task of a worker
//! that uses the same vendor credential.
//!
//! Two mechanisms:
//! - a GCRA limiter (`governor`) at the vendor's documented budget, for
//!   vendors that publish one (Pipedrive 80 per 2 s, Calendly 60 or 120 per
//!   minute, CircleCI 1000 per minute). Its burst is small and its rate is
//!   the rest of the budget, so no window of the vendor's length ever sees
//!   more than the budget: we wait here instead of earning 429s;
//! - a gate closed by any 429 until the time the vendor named (or a short
//!   default), so that every task pauses instead of each earning its own 429.
//!   For vendors with no published number (Jira, CrowdStrike) this is the
//!   adaptive part: the vendor's own signal sets the pace.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde::{Deserialize, Serialize};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// `rate_limit = { requests = 80, per = "2s", share = 1.0 }` in a vendor's
/// table: at most `requests` per `per`, of which this worker takes `share`
/// (0.5 for two workers sharing the credential); `enabled = false` turns the
/// client-side limit off (429s still pause every task). Every field is
/// optional: what is not given comes from the vendor's documented budget
/// (`share = 0.5` alone halves it).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(extend("x-type" = "rate limit (`{ requests = 80, per = \"2s\", share = 1.0, enabled = true }`, each optional)"))]
pub struct RateLimitConfig {
    /// The vendor's budget: this many requests per `per`.
    #[serde(default)]
    pub requests: Option<u32>,
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<lifecycle_config::reference::types::HumanDuration>")]
    pub per: Option<Duration>,
    /// This worker's share of the budget when several workers use one
    /// credential (e.g. 0.5 for two workers). Default 1.0.
    #[serde(default = "one")]
    pub share: f64,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}

impl Default for RateLimitConfig {
    /// Nothing configured: everything comes from the documented budget.
    fn default() -> Self {
        Self { requests: None, per: None, share: 1.0, enabled: true }
    }
}

impl RateLimitConfig {
    /// Refuses budgets that cannot work (zero requests or window, a share outside (0, 1]).
    pub fn check(&self) -> Result<(), String> {
        if self.requests == Some(0) || self.per.is_some_and(|p| p.is_zero()) || !(self.share > 0.0 && self.share <= 1.0)
        {
            return Err("rate_limit needs requests > 0, per > 0 and 0 < share <= 1".into());
        }
        Ok(())
    }

    pub const fn new(requests: u32, per: Duration) -> Self {
        Self { requests: Some(requests), per: Some(per), share: 1.0, enabled: true }
    }

    /// Fills what was not configured from the vendor's documented budget.
    pub fn or(self, documented: RateLimitConfig) -> RateLimitConfig {
        RateLimitConfig { requests: self.requests.or(documented.requests), per: self.per.or(documented.per), ..self }
    }
}

/// A vendor credential's limiter and 429 gate.
pub struct Limiter {
    gcra: Option<DefaultDirectRateLimiter>,
    blocked_until: Mutex<Option<Instant>>,
}

impl Limiter {
    pub fn new(config: Option<RateLimitConfig>) -> Self {
        let gcra = config.filter(|c| c.enabled).and_then(|c| Some((c.requests?, c.per?, c.share))).map(
            |(requests, per, share)| {
                let budget = ((requests as f64) * share.clamp(0.01, 1.0)).floor().max(1.0) as u32;
                // A sustained rate of 95 % of the budget with a burst of one, so
                // any window of length `per` sees at most 1 + 0.95 * budget
                // grants. The margin is for the way to the vendor: it counts
                // requests as they arrive, and requests granted evenly can arrive
                // bunched (a pause in the sender, a connection being opened), which
                // at exactly the budget earned a rare 429 (two in one of about
                // seventeen two-worker fleet tests).
                let burst = 1;
                let spread = ((f64::from(budget) * 0.95).floor() as u32).max(1);
                let period = per / spread;
                let quota = Quota::with_period(period.max(Duration::from_micros(1)))
                    .expect("period is positive")
                    .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
                RateLimiter::direct(quota)
            },
        );
        Self { gcra, blocked_until: Mutex::new(None) }
    }

    /// Waits until a request may be sent.
    pub async fn acquire(&self) {
        loop {
            let until = *self.blocked_until.lock().expect("not poisoned");
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t).await,
                _ => break,
            }
        }
        if let Some(g) = &self.gcra {
            g.until_ready().await;
        }
    }

    /// The vendor answered 429: nobody sends before `now + wait`.
    pub fn close_for(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut guard = self.blocked_until.lock().expect("not poisoned");
        if guard.is_none_or(|t| t < until) {
            *guard = Some(until);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // governor keeps its own (real) clock, so this runs in real time on a
    // scaled-down budget: 80 requests per 400 ms.
    #[tokio::test]
    async fn never_exceeds_the_budget_in_any_window() {
        let window = Duration::from_millis(400);
        let limiter = Limiter::new(Some(RateLimitConfig::new(80, window)));
        let start = std::time::Instant::now();
        let mut times = Vec::new();
        for _ in 0..240 {
            limiter.acquire().await;
            times.push(start.elapsed());
        }
        for (i, t) in times.iter().enumerate() {
            let in_window = times[i..].iter().take_while(|u| **u < *t + window).count();
            // At most one burst and 95 % of the budget: a margin below 80.
            assert!(in_window <= 77, "window starting at {t:?} holds {in_window}");
        }
        // The budget is used, not just respected: 240 requests at 95 % of
        // 80 per 400 ms take about 1.26 s.
        let total = times.last().unwrap().as_secs_f64();
        // 1.26 s at the granted rate; the bound leaves room for a loaded machine.
        assert!(total < 2.5, "took {total}s");
    }

    #[test]
    fn a_partial_table_takes_the_rest_from_the_documented_budget() {
        let partial: RateLimitConfig = serde_json::from_value(serde_json::json!({"share": 0.5})).unwrap();
        let effective = partial.or(RateLimitConfig::new(80, Duration::from_secs(2)));
        assert_eq!((effective.requests, effective.per, effective.share), (Some(80), Some(Duration::from_secs(2)), 0.5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_closes_the_gate_for_everyone() {
        let limiter = Limiter::new(None);
        limiter.close_for(Duration::from_secs(3));
        let start = tokio::time::Instant::now();
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_secs(3));
    }
}
