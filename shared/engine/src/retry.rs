//! When to try a failed run again.

use backon::{BackoffBuilder, ExponentialBuilder};
use lifecycle_config::RetryPolicy;
use std::time::Duration;

/// The delay before attempt `attempts + 1`, after `attempts` failed ones.
///
/// What the vendor said wins (`Retry-After`, Pipedrive's reset timestamp,
/// CrowdStrike's `X-RateLimit-RetryAfter`): retrying earlier only earns
/// another 429. Otherwise exponential backoff with jitter, between the
/// policy's minimum and maximum.
pub fn delay(policy: &RetryPolicy, attempts: i32, vendor_hint: Option<Duration>) -> Duration {
    if let Some(hint) = vendor_hint {
        return hint.max(Duration::from_millis(200));
    }
    let n = attempts.max(1) as usize;
    ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
        .nth(n - 1)
        .unwrap_or(policy.max_delay)
        .min(policy.max_delay.saturating_mul(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            max_age: Duration::from_secs(3600),
            min_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }

    #[test]
    fn honours_what_the_vendor_said() {
        assert_eq!(delay(&policy(), 1, Some(Duration::from_secs(37))), Duration::from_secs(37));
        assert_eq!(delay(&policy(), 9, Some(Duration::from_secs(2))), Duration::from_secs(2));
    }

    #[test]
    fn grows_exponentially_with_jitter_and_stays_capped() {
        let first = delay(&policy(), 1, None);
        assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2), "{first:?}");
        let third = delay(&policy(), 3, None);
        assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8), "{third:?}");
        for attempts in 1..40 {
            assert!(delay(&policy(), attempts, None) <= Duration::from_secs(120));
        }
    }
}
