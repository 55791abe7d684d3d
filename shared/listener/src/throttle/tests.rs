//! Unit tests of `throttle.rs`.

use super::*;

fn policy() -> ThrottlePolicy {
    ThrottlePolicy {
        free_failures: 3,
        base_delay: Duration::from_millis(250),
        max_delay: Duration::from_secs(8),
        max_wait: Duration::from_secs(2),
        warn_after: 5,
        forget_after: Duration::from_secs(600),
        max_tracked: 4,
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[test]
fn the_delay_doubles_past_the_free_failures_up_to_the_cap() {
    let p = policy();
    let delays: Vec<u64> = (1..=10).map(|n| p.delay_after(n).as_millis() as u64).collect();
    assert_eq!(delays, [0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
}

/// A client that keeps guessing, and honours `Retry-After`: how long its
/// wrong guesses take, and how many were checked at all.
async fn guess(t: &AuthThrottle, addr: &str, n: usize) -> (Duration, usize) {
    let started = Instant::now();
    let mut checked = 0;
    while checked < n {
        match t.admit(ip(addr)).await {
            Ok(a) => {
                a.failed();
                checked += 1;
            }
            Err(r) => tokio::time::sleep(r.retry_after).await,
        }
    }
    (started.elapsed(), checked)
}

#[tokio::test(start_paused = true)]
async fn wrong_guesses_from_one_address_are_slowed_and_a_right_one_elsewhere_is_not() {
    let t = AuthThrottle::new("test", policy());
    // Ten wrong guesses: 3 free, then 0.25 + 0.5 + 1 + 2 + 4 + 8 + 8 s of gates.
    let (took, _) = guess(&t, "203.0.113.7", 10).await;
    assert!(took >= Duration::from_millis(23_750), "ten wrong guesses took {took:?}");
    // Someone else is not affected, and goes through at once.
    let started = Instant::now();
    t.admit(ip("198.51.100.1")).await.expect("another address is not throttled").succeeded();
    assert_eq!(started.elapsed(), Duration::ZERO);
    // The guesser's next attempt, even with the right password, waits for its gate.
    assert!(t.admit(ip("203.0.113.7")).await.is_err(), "the gate is still closed for 8 s");
}

#[tokio::test(start_paused = true)]
async fn a_burst_in_parallel_gets_no_more_checks_than_one_after_another() {
    let t = AuthThrottle::new("test", policy());
    let mut admitted = Vec::new();
    let mut refused = 0;
    for _ in 0..50 {
        match t.admit(ip("203.0.113.9")).await {
            Ok(a) => admitted.push(a),
            Err(_) => refused += 1,
        }
    }
    // A first failure is needed before anything is limited...
    assert_eq!((admitted.len(), refused), (50, 0));
    admitted.pop().unwrap().failed();
    drop(admitted);
    // ... after which only the remaining free failures run in parallel.
    let mut admitted = Vec::new();
    for _ in 0..50 {
        if let Ok(a) = t.admit(ip("203.0.113.9")).await {
            admitted.push(a);
        }
    }
    assert_eq!(admitted.len(), 2);
    for a in admitted {
        a.failed();
    }
    // Three failures: the gate is closed for 250 ms; one waits for it, the rest are refused.
    let waiting = tokio::spawn({
        let t = t.clone();
        async move { t.admit(ip("203.0.113.9")).await.map(Attempt::failed).is_ok() }
    });
    tokio::task::yield_now().await;
    let r = t.admit(ip("203.0.113.9")).await.err().expect("a second attempt is refused while one waits");
    assert_eq!(r.retry_after_secs(), 1);
    assert!(waiting.await.unwrap(), "the first one is admitted when the gate opens");
}

#[tokio::test(start_paused = true)]
async fn a_success_clears_the_record_and_addresses_are_grouped_sensibly() {
    let t = AuthThrottle::new("test", policy());
    guess(&t, "2001:db8:1:2::1", 4).await;
    // Another host in the same /64 shares the record; the gate is closed.
    let other_host = t.admit(ip("2001:db8:1:2::99")).await;
    let a = match other_host {
        Ok(a) => a,
        Err(r) => {
            tokio::time::sleep(r.retry_after).await;
            t.admit(ip("2001:db8:1:2::99")).await.unwrap()
        }
    };
    a.succeeded();
    assert!(lock(&t.records).is_empty());
    // An IPv4-mapped address is the IPv4 address.
    guess(&t, "::ffff:192.0.2.1", 3).await;
    assert!(lock(&t.records).contains_key(&Client::V4("192.0.2.1".parse().unwrap())));
}

/// Routes that check the bearer token first and mark a wrong one, like
/// the intake's; `{id}` is read by axum's `Path` (a 400 before the check
/// when it is not UTF-8).
fn intake_like(t: AuthThrottle) -> axum::Router {
    use axum::response::IntoResponse;
    use axum::routing::{get, post};
    /// The refusal, when the token is not the right one.
    fn refusal(headers: &axum::http::HeaderMap) -> Option<Response> {
        match headers.get(header::AUTHORIZATION) {
            None => Some(StatusCode::UNAUTHORIZED.into_response()),
            Some(v) if v == "Bearer right-token-0123456" => None,
            Some(_) => Some(AuthVerdict::Wrong.mark(StatusCode::UNAUTHORIZED.into_response())),
        }
    }
    async fn accept(headers: axum::http::HeaderMap) -> Response {
        refusal(&headers).unwrap_or_else(|| StatusCode::ACCEPTED.into_response())
    }
    async fn status(axum::extract::Path(_id): axum::extract::Path<String>, headers: axum::http::HeaderMap) -> Response {
        refusal(&headers).unwrap_or_else(|| StatusCode::OK.into_response())
    }
    axum::Router::new()
        .route("/v1/events", post(accept))
        .route("/v1/events/{id}", get(status))
        .route_layer(axum::middleware::from_fn_with_state(t, AuthThrottle::guard_by_verdict))
        .route("/healthz", get(|| async { "ok" }))
}

fn request(method: &str, path: &str, addr: &str, token: Option<&str>) -> Request {
    let mut b = axum::http::Request::builder().method(method).uri(path);
    if let Some(t) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let mut req = b.body(axum::body::Body::empty()).unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::new(addr.parse().unwrap(), 50_000)));
    req
}

#[tokio::test(start_paused = true)]
async fn the_intake_guard_judges_only_the_handlers_verdict() {
    use tower::ServiceExt;
    let t = AuthThrottle::new("intake", policy());
    let app = intake_like(t.clone());
    let send = |req| app.clone().oneshot(req);
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(send(request("POST", "/v1/events", "203.0.113.7", Some("guess"))).await.unwrap().status());
    }
    // Three free, then the gate closes: wrong guesses are answered 429 at once, never waited for.
    assert_eq!(statuses[..3], [StatusCode::UNAUTHORIZED; 3]);
    assert_eq!(statuses[3..], [StatusCode::TOO_MANY_REQUESTS; 3]);
    assert_eq!(started.elapsed(), Duration::ZERO);
    // Requests without credentials, other routes and other methods are not counted.
    for _ in 0..10 {
        send(request("POST", "/v1/events", "203.0.113.8", None)).await.unwrap();
        send(request("GET", "/healthz", "203.0.113.8", Some("guess"))).await.unwrap();
        send(request("PUT", "/v1/events", "203.0.113.8", Some("guess"))).await.unwrap();
    }
    assert!(!lock(&t.records).contains_key(&Client::V4("203.0.113.8".parse().unwrap())));
    let r = send(request("POST", "/v1/events", "203.0.113.7", Some("guess"))).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key(header::RETRY_AFTER));
}

#[tokio::test(start_paused = true)]
async fn a_valid_credential_is_never_throttled() {
    use tower::ServiceExt;
    let t = AuthThrottle::new("intake", policy());
    let app = intake_like(t.clone());
    let send = |req| app.clone().oneshot(req);
    for _ in 0..12 {
        send(request("POST", "/v1/events", "203.0.113.9", Some("guess"))).await.unwrap();
    }
    // The guesser's own address, its gate closed for seconds: the right token is served at once.
    let before = Instant::now();
    for _ in 0..3 {
        let r = send(request("POST", "/v1/events", "203.0.113.9", Some("right-token-0123456"))).await.unwrap();
        assert_eq!((r.status(), before.elapsed()), (StatusCode::ACCEPTED, Duration::ZERO));
    }
    // And serving it did not wash the guesser's failures out.
    let r = send(request("POST", "/v1/events", "203.0.113.9", Some("guess"))).await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another address is not affected either.
    let r = send(request("POST", "/v1/events", "198.51.100.1", Some("right-token-0123456"))).await.unwrap();
    assert_eq!((r.status(), before.elapsed()), (StatusCode::ACCEPTED, Duration::ZERO));
}

#[tokio::test(start_paused = true)]
async fn a_guess_then_a_400_on_an_id_route_does_not_clear_failures() {
    use tower::ServiceExt;
    let t = AuthThrottle::new("intake", policy());
    let app = intake_like(t.clone());
    let send = |req| app.clone().oneshot(req);
    let mut checked = 0;
    let mut refused = 0;
    for _ in 0..30 {
        match send(request("GET", "/v1/events/E-1", "203.0.113.7", Some("guess"))).await.unwrap().status() {
            StatusCode::UNAUTHORIZED => checked += 1,
            StatusCode::TOO_MANY_REQUESTS => refused += 1,
            other => panic!("{other}"),
        }
        // `Path` answers 400 before the handler looks at the credential: no verdict.
        let r = send(request("GET", "/v1/events/%ff", "203.0.113.7", Some("guess"))).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    }
    assert_eq!((checked, refused), (3, 27));
}

#[tokio::test(start_paused = true)]
async fn many_other_addresses_do_not_evict_a_blocked_attacker() {
    let t = AuthThrottle::new("test", policy());
    let attacker = Client::V4("203.0.113.66".parse().unwrap());
    guess(&t, "203.0.113.66", 10).await;
    assert!(t.admit(ip("203.0.113.66")).await.is_err(), "the attacker's gate is closed for 8 s");
    // 50 other addresses (the table holds 4) fail once each, each more recently than the attacker.
    for i in 0..50 {
        tokio::time::advance(Duration::from_millis(10)).await;
        if let Ok(a) = t.admit(ip(&format!("192.0.2.{i}"))).await {
            a.failed();
        }
    }
    // The attacker is still remembered, with every failure, and still refused.
    assert_eq!(lock(&t.records).get(&attacker).map(|r| r.failures), Some(10), "the attacker was forgotten");
    assert!(t.admit(ip("203.0.113.66")).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn past_the_bound_newcomers_share_one_record_until_room_is_made() {
    let t = AuthThrottle::new("test", policy());
    for i in 0..50 {
        if let Ok(a) = t.admit(ip(&format!("192.0.2.{i}"))).await {
            a.failed();
        }
    }
    // The table stayed bounded: the newcomers past it share one record, throttled together.
    assert!(lock(&t.records).len() <= 5);
    assert!(lock(&t.records).get(&Client::Overflow).is_some_and(|r| r.failures >= 3));
    assert!(t.wrong(ip("198.51.100.200")).is_err(), "a newcomer past the bound is judged by the shared record");
    // Once the old records are forgotten, room is made again.
    tokio::time::advance(policy().forget_after).await;
    assert!(t.wrong(ip("198.51.100.201")).is_ok());
    assert!(lock(&t.records).contains_key(&Client::V4("198.51.100.201".parse().unwrap())));
}

#[test]
fn behind_a_trusted_proxy_the_client_is_the_nearest_untrusted_forwarded_address() {
    let proxies = TrustedProxies::parse(&["10.0.0.0/8", "2001:db8::/32", "192.0.2.10"]).unwrap();
    let headers = |xff: &[&str]| {
        let mut h = axum::http::HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    };
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    // Not from a proxy: the header is whatever the client wrote, and ignored.
    assert_eq!(proxies.client(Some(ip("198.51.100.7")), &headers(&["1.2.3.4"])), Some(ip("198.51.100.7")));
    // From a proxy: the rightmost address the proxies did not add.
    let h = headers(&["1.2.3.4, 203.0.113.5", "10.1.2.3"]);
    assert_eq!(proxies.client(Some(ip("192.0.2.10")), &h), Some(ip("203.0.113.5")));
    assert_eq!(proxies.client(Some(ip("::ffff:10.9.9.9")), &h), Some(ip("203.0.113.5")));
    // Garbage stops the walk at the last trusted hop; no header leaves the proxy's address.
    assert_eq!(proxies.client(Some(ip("10.0.0.1")), &headers(&["junk, 10.0.0.2"])), Some(ip("10.0.0.2")));
    assert_eq!(proxies.client(Some(ip("2001:db8::1")), &headers(&[])), Some(ip("2001:db8::1")));
    assert_eq!(proxies.client(Some(ip("192.0.2.11")), &headers(&["1.2.3.4"])), Some(ip("192.0.2.11")));
    for bad in ["10.0.0.0/33", "proxy.example", "10.0.0/8", "::/129"] {
        assert!(TrustedProxies::parse(&[bad]).unwrap_err().contains(bad), "{bad}");
    }
}
