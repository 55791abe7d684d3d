//! What GitHub's response headers say about paging and rate limits (GitHub's docs, "Using
//! pagination in the REST API" and "Rate limits for the REST API"): the next page's link,
//! whether a refusal is a rate limit, and how long to wait.

use crate::http::retry_after_seconds;
use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// GitHub's docs: no `retry-after` and no spent primary limit: "wait for at least one minute".
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// The `rel="next"` target of a `Link` header (RFC 8288), as GitHub sends it:
/// `<https://api.github.com/...&page=2>; rel="next", <...&page=5>; rel="last"`.
pub fn next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let close = open + rest[open..].find('>')?;
        let target = &rest[open + 1..close];
        let after = &rest[close + 1..];
        // The link's parameters run to the next link (a `<` after a comma) or the end.
        let end = after.find('<').unwrap_or(after.len());
        let is_next = after[..end].split(';').any(|param| {
            let Some((key, value)) = param.split_once('=') else { return false };
            key.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target.trim().to_string());
        }
        rest = &after[end..];
    }
    None
}

/// Whether a refusal is a rate limit (GitHub's docs, "Rate limits for the REST API"): every 429;
/// a 403 with `x-ratelimit-remaining: 0` (a spent primary limit), with `retry-after` or with a
/// message naming the rate limit (a secondary limit). Any other 403 is a permission.
pub fn throttled(status: StatusCode, headers: &HeaderMap, message: &str) -> bool {
    match status.as_u16() {
        429 => return true,
        403 => {}
        _ => return false,
    }
    headers.contains_key("retry-after")
        || remaining(headers) == Some(0)
        || message.to_ascii_lowercase().contains("rate limit")
}

/// How long to wait, by GitHub's rule: `retry-after` seconds when given; else, with the
/// primary limit spent (`x-ratelimit-remaining: 0`), until `x-ratelimit-reset` (epoch seconds);
/// else at least a minute.
pub fn retry_hint(headers: &HeaderMap) -> Option<Duration> {
    if let Some(wait) = retry_after_seconds(headers) {
        return Some(wait);
    }
    if remaining(headers) == Some(0) {
        if let Some(reset) = number(headers, "x-ratelimit-reset") {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_secs();
            // A reset already past (clocks differ): a second, then ask again. An hour at most:
            // the primary window's length.
            return Some(Duration::from_secs(reset.saturating_sub(now).clamp(1, 3600)));
        }
    }
    Some(DEFAULT_WAIT)
}

fn remaining(headers: &HeaderMap) -> Option<u64> {
    number(headers, "x-ratelimit-remaining")
}

fn number(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_next_link_is_found_among_the_others() {
        let h = r#"<https://api.github.com/organizations/16/members?per_page=100&page=2>; rel="next", <https://api.github.com/organizations/16/members?per_page=100&page=5>; rel="last""#;
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/organizations/16/members?per_page=100&page=2")
        );
        let last_page =
            r#"<https://api.github.com/x?page=1>; rel="first", <https://api.github.com/x?page=4>; rel="prev""#;
        assert_eq!(next_link(last_page), None);
        let out_of_order =
            r#"<http://127.0.0.1:9/github/x?page=1>; rel="prev", <http://127.0.0.1:9/github/x?page=3>;rel=next"#;
        assert_eq!(next_link(out_of_order).as_deref(), Some("http://127.0.0.1:9/github/x?page=3"));
        assert_eq!(next_link(""), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(next_link("<unterminated; rel=\"next\""), None);
    }

    #[test]
    fn a_403_is_a_rate_limit_only_when_github_says_so() {
        let forbidden = StatusCode::FORBIDDEN;
        let none = HeaderMap::new();
        assert!(!throttled(forbidden, &none, "You must be an admin to create an invitation."));
        assert!(!throttled(forbidden, &headers(&[("x-ratelimit-remaining", "4999")]), "Must have admin rights"));
        assert!(throttled(forbidden, &headers(&[("x-ratelimit-remaining", "0")]), "API rate limit exceeded"));
        assert!(throttled(forbidden, &headers(&[("x-ratelimit-remaining", "0")]), "(no message)"));
        assert!(throttled(forbidden, &headers(&[("retry-after", "60")]), ""));
        assert!(throttled(forbidden, &none, "You have exceeded a secondary rate limit. Please wait a few minutes"));
        assert!(throttled(StatusCode::TOO_MANY_REQUESTS, &none, ""));
        // Only 403 and 429 are throttles.
        assert!(!throttled(StatusCode::NOT_FOUND, &headers(&[("x-ratelimit-remaining", "0")]), "rate limit"));
        assert!(!throttled(StatusCode::UNPROCESSABLE_ENTITY, &none, "rate limit"));
    }

    #[test]
    fn the_wait_follows_githubs_rule() {
        // retry-after first, even with a spent primary limit.
        let h = headers(&[("retry-after", "30"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")]);
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(30)));
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
        let reset = (now + 120).to_string();
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", &reset)]);
        let wait = retry_hint(&h).unwrap();
        assert!(wait <= Duration::from_secs(120) && wait >= Duration::from_secs(118), "{wait:?}");
        // A reset in the past: a second.
        let h = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1000")]);
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(1)));
        // Remaining left (a secondary limit without retry-after): a minute.
        let h = headers(&[("x-ratelimit-remaining", "12"), ("x-ratelimit-reset", &reset)]);
        assert_eq!(retry_hint(&h), Some(Duration::from_secs(60)));
        assert_eq!(retry_hint(&HeaderMap::new()), Some(Duration::from_secs(60)));
    }
}
