//! Talking to a vendor over HTTP: rate limiting before, classification after.
//!
//! Every vendor request goes through [`VendorHttp::send`], which waits for the
//! credential's rate limiter, sends, and turns the answer into either a
//! response or a typed [`HttpError`]. [`HttpError`] converts into the engine's
//! `StepError` by kind: 429, 5xx and transport errors are transient (with the
//! vendor's own wait when it gave one), other 4xx are permanent.

use crate::ratelimit::Limiter;
use lifecycle_domain::VendorKind;
use lifecycle_engine::StepError;
use reqwest::header::HeaderMap;
use reqwest::{RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How a vendor says when to come back after a 429 (its quirk).
pub type RetryHint = fn(&HeaderMap) -> Option<Duration>;

/// Whether a refusal other than 429 is the vendor's rate limit after all (its quirk: GitHub
/// answers 403 to a spent primary or a secondary limit), from its status, headers and message.
pub type Throttled = fn(StatusCode, &HeaderMap, &str) -> bool;

/// Only 429 is a rate limit (every vendor but GitHub).
pub fn only_429(_: StatusCode, _: &HeaderMap, _: &str) -> bool {
    false
}

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{vendor} rate limit reached (429){}", after(.retry_after))]
    RateLimited { vendor: VendorKind, retry_after: Option<Duration> },
    #[error("{vendor} is unavailable ({status}): {message}")]
    Server { vendor: VendorKind, status: u16, message: String },
    #[error("{vendor} did not answer in time")]
    Timeout { vendor: VendorKind },
    #[error("cannot reach {vendor}: {message}")]
    Transport { vendor: VendorKind, message: String },
    #[error("{vendor} rejected our credentials (401): {message}")]
    Unauthorized { vendor: VendorKind, message: String },
    #[error("{vendor} refused: our credential lacks permission (403): {message}")]
    Forbidden { vendor: VendorKind, message: String },
    #[error("{vendor}: not found (404): {message}")]
    NotFound { vendor: VendorKind, message: String },
    #[error("{vendor} rejected the request ({status}): {message}")]
    Rejected { vendor: VendorKind, status: u16, message: String },
    #[error("{vendor} answered something we cannot read: {message}")]
    Decode { vendor: VendorKind, message: String },
    /// Vendor calls never follow redirects: a redirect could carry our
    /// credential (header or query) to another host.
    #[error("{vendor} answered with a redirect ({status}) to {location}; vendor calls do not follow redirects: check the vendor's base_url")]
    Redirected { vendor: VendorKind, status: u16, location: String },
    /// Not sent: the request could outlive this worker's lease on the run
    /// (see `lifecycle_engine::check_before_send`).
    #[error("not sent to {vendor}: this worker's lease on the run is lost or too short for the request")]
    LeaseLost { vendor: VendorKind },
}

fn after(d: &Option<Duration>) -> String {
    d.map(|d| format!("; it asked us to wait {:.1}s", d.as_secs_f64())).unwrap_or_default()
}

impl HttpError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, HttpError::NotFound { .. })
    }
    pub fn is_rate_limited(&self) -> bool {
        matches!(self, HttpError::RateLimited { .. })
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            HttpError::RateLimited { .. } => Some(429),
            HttpError::Server { status, .. } | HttpError::Rejected { status, .. } => Some(*status),
            HttpError::Unauthorized { .. } => Some(401),
            HttpError::Forbidden { .. } => Some(403),
            HttpError::NotFound { .. } => Some(404),
            _ => None,
        }
    }
    /// The vendor's error message, for workflows that recognise specific refusals.
    pub fn message(&self) -> &str {
        match self {
            HttpError::Server { message, .. }
            | HttpError::Transport { message, .. }
            | HttpError::Unauthorized { message, .. }
            | HttpError::Forbidden { message, .. }
            | HttpError::NotFound { message, .. }
            | HttpError::Rejected { message, .. }
            | HttpError::Decode { message, .. } => message,
            _ => "",
        }
    }
}

impl From<HttpError> for StepError {
    fn from(e: HttpError) -> Self {
        match &e {
            HttpError::RateLimited { retry_after, .. } => {
                StepError::Transient { message: e.to_string(), retry_after: *retry_after }
            }
            HttpError::Server { .. }
            | HttpError::Timeout { .. }
            | HttpError::Transport { .. }
            | HttpError::Decode { .. } => StepError::transient(e.to_string()),
            HttpError::Unauthorized { .. }
            | HttpError::Forbidden { .. }
            | HttpError::NotFound { .. }
            | HttpError::Rejected { .. }
            | HttpError::Redirected { .. } => StepError::permanent(e.to_string()),
            HttpError::LeaseLost { .. } => StepError::LeaseLost,
        }
    }
}

/// One vendor credential's HTTP access.
#[derive(Clone)]
pub struct VendorHttp {
    vendor: VendorKind,
    client: reqwest::Client,
    limiter: Arc<Limiter>,
    hint: RetryHint,
    throttled: Throttled,
    /// How long to pause everyone after a 429 that named no time.
    default_pause: Duration,
    /// The longest a request may take (the client's timeout).
    timeout: Duration,
}

impl VendorHttp {
    pub fn new(vendor: VendorKind, timeout: Duration, limiter: Arc<Limiter>, hint: RetryHint) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("lifecycle/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(64)
            // A redirect is an error (see `HttpError::Redirected`), and no
            // Referer: Pipedrive's token travels in the query string.
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .build()
            .expect("the TLS backend initialises");
        Self { vendor, client, limiter, hint, throttled: only_429, default_pause: Duration::from_secs(1), timeout }
    }

    /// A vendor whose rate limit also comes as another status (GitHub's 403s): those answers
    /// are [`HttpError::RateLimited`] too, and close the gate as a 429 does.
    pub fn with_throttled(mut self, throttled: Throttled) -> Self {
        self.throttled = throttled;
        self
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn vendor(&self) -> VendorKind {
        self.vendor
    }

    /// Sends after the rate limiter allows it; a non-2xx answer becomes an [`HttpError`].
    /// Not sent when it could outlive the worker's lease on the run (a worker
    /// paused while it waited for the limiter wakes past its lease).
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, HttpError> {
        let vendor = self.vendor;
        let (client, request) = request.build_split();
        let request = request.map_err(|e| HttpError::Transport { vendor, message: describe(&e.without_url()) })?;
        // What a trace may hold of the request: its method and its path with
        // the ids taken out; never the query, a header or a body.
        let span = tracing::info_span!(
            "vendor.request",
            otel.kind = "client",
            vendor = vendor.as_str(),
            http.request.method = %request.method(),
            url.template = %path_template(request.url().path()),
            http.request.resend_count = RESENDS.try_with(|n| *n).unwrap_or(0),
            http.response.status_code = tracing::field::Empty,
        );
        let result = self.send_built(&client, request).instrument(span.clone()).await;
        let status = match &result {
            Ok(r) => Some(r.status().as_u16()),
            Err(e) => e.status().or(match e {
                HttpError::Redirected { status, .. } => Some(*status),
                _ => None,
            }),
        };
        if let Some(status) = status {
            span.record("http.response.status_code", status);
        }
        result
    }

    async fn send_built(&self, client: &reqwest::Client, request: reqwest::Request) -> Result<Response, HttpError> {
        self.limiter.acquire().await;
        let vendor = self.vendor;
        lifecycle_engine::check_before_send(self.timeout).await.map_err(|_| HttpError::LeaseLost { vendor })?;
        metrics::counter!("lifecycle_vendor_requests_total", "vendor" => vendor.as_str()).increment(1);
        let response = client.execute(request).await.map_err(|e| {
            // Never let a URL (which may carry a token in its query) into an error.
            let e = e.without_url();
            if e.is_timeout() {
                HttpError::Timeout { vendor }
            } else {
                HttpError::Transport { vendor, message: describe(&e) }
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(self.rate_limited(response.headers()));
        }
        // A conditional request's "nothing changed" (ETag): the caller keeps what it has. Only
        // a client that sent `If-None-Match` gets one.
        if status == StatusCode::NOT_MODIFIED {
            return Ok(response);
        }
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .map(without_query)
                .unwrap_or_else(|| "(no Location)".into());
            return Err(HttpError::Redirected { vendor, status: status.as_u16(), location });
        }
        let headers = response.headers().clone();
        let message = error_text(response).await;
        if (self.throttled)(status, &headers, &message) {
            return Err(self.rate_limited(&headers));
        }
        Err(match status.as_u16() {
            401 => HttpError::Unauthorized { vendor, message },
            403 => HttpError::Forbidden { vendor, message },
            404 => HttpError::NotFound { vendor, message },
            s if s >= 500 => HttpError::Server { vendor, status: s, message },
            s => HttpError::Rejected { vendor, status: s, message },
        })
    }

    /// A rate-limit answer: every task of this credential waits for the time the vendor
    /// named (or a short pause) before its next request.
    fn rate_limited(&self, headers: &HeaderMap) -> HttpError {
        let retry_after = (self.hint)(headers);
        self.limiter.close_for(retry_after.unwrap_or(self.default_pause));
        metrics::counter!("lifecycle_vendor_429_total", "vendor" => self.vendor.as_str()).increment(1);
        HttpError::RateLimited { vendor: self.vendor, retry_after }
    }

    /// Sends and decodes a JSON body.
    pub async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T, HttpError> {
        let response = self.send(request).await?;
        let vendor = self.vendor;
        let bytes =
            response.bytes().await.map_err(|e| HttpError::Transport { vendor, message: describe(&e.without_url()) })?;
        serde_json::from_slice(&bytes).map_err(|e| HttpError::Decode { vendor, message: e.to_string() })
    }
}

/// Sends a read again after a 429, up to `patience` 429s in a row (then the 429 is the
/// answer). [`VendorHttp::send`] closed the client's gate for the vendor's wait (or a default
/// pause), so the next attempt waits for it first: a long directory read crosses rate windows
/// instead of failing. `rate_limited` says which errors are a 429, since connectors wrap
/// [`HttpError`] in their own types ([`HttpError::is_rate_limited`] when they do not).
pub async fn patiently<T, E, F, Fut>(patience: u32, rate_limited: impl Fn(&E) -> bool, mut read: F) -> Result<T, E>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut left = patience;
    loop {
        // Each request's span says how many times it was sent before.
        match RESENDS.scope(patience - left, read()).await {
            Err(e) if left > 0 && rate_limited(&e) => left -= 1,
            other => return other,
        }
    }
}

tokio::task_local! {
    /// How many times [`patiently`] has sent the current read before (for the
    /// `vendor.request` span's `http.request.resend_count`).
    static RESENDS: u32;
}

/// A request's path as a trace may hold it: each segment that names
/// something (a number, an id, an e-mail address, anything encoded) becomes
/// `{id}`; words (`users`, `Users`, `organization_memberships`) and versions
/// (`v1`, and the `3` of `/rest/api/3`) stay. Never a query string: only the
/// path is given.
pub fn path_template(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut previous = "";
    for segment in path.split('/').skip(1) {
        out.push('/');
        let word = segment.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-' || b == b'_')
            && segment.bytes().any(|b| b.is_ascii_lowercase());
        let version =
            (segment.len() >= 2 && segment.starts_with('v') && segment[1..].bytes().all(|b| b.is_ascii_digit()))
                || (previous == "api" && segment.len() <= 2 && segment.bytes().all(|b| b.is_ascii_digit()));
        if segment.is_empty() || (word && segment.len() <= 40) || version {
            out.push_str(segment);
        } else {
            out.push_str("{id}");
        }
        previous = segment;
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn describe(e: &reqwest::Error) -> String {
    // The chain holds the useful part ("connection refused").
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// The vendor's error message, shortened: enough for a person, never a dump.
async fn error_text(response: Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let msg = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let first = ["error", "message", "errorMessages", "errors", "detail", "title"]
                .iter()
                .find_map(|k| v.get(k).map(readable).filter(|m| !m.is_empty()))?;
            Some(match v.get("message").and(details(&v)) {
                // GitHub's 422: "Validation Failed" says little; its `errors[].message` says what.
                Some(d) => format!("{first}: {d}"),
                None => first,
            })
        })
        .unwrap_or(text);
    let msg = msg.trim();
    if msg.chars().count() > 300 {
        format!("{}…", msg.chars().take(300).collect::<String>())
    } else if msg.is_empty() {
        "(no message)".into()
    } else {
        msg.to_string()
    }
}

/// The `message` (else `code`) of each object in an `errors` list, beside a top-level
/// `message` (GitHub's validation errors); `None` when there is none.
fn details(v: &serde_json::Value) -> Option<String> {
    let items = v.get("errors")?.as_array()?;
    let parts: Vec<String> = items
        .iter()
        .filter_map(|e| e.get("message").or_else(|| e.get("code")).and_then(|m| m.as_str()))
        .map(|m| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// An error field as text: strings as they are, lists of strings joined (Jira's
/// `errorMessages`), maps as `field: message` (Jira's `errors`); empty ones are empty.
fn readable(v: &serde_json::Value) -> String {
    use serde_json::Value;
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.trim().to_string(),
        Value::Array(items) => items.iter().map(readable).filter(|s| !s.is_empty()).collect::<Vec<_>>().join("; "),
        Value::Object(map) if map.values().all(|x| x.is_string() || x.is_array()) => map
            .iter()
            .map(|(k, x)| (k, readable(x)))
            .filter(|(_, x)| !x.is_empty())
            .map(|(k, x)| format!("{k}: {x}"))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// A redirect's target for messages: never its query string or fragment (they
/// may carry a token), and at most 200 characters.
fn without_query(location: &str) -> String {
    let cut = location.find(['?', '#']).unwrap_or(location.len());
    location[..cut].chars().take(200).collect()
}

/// `Retry-After` in seconds (Jira, Calendly).
pub fn retry_after_seconds(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    v.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

/// No hint at all: the client backs off on its own (CircleCI).
pub fn no_hint(_: &HeaderMap) -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_path_template_keeps_the_words_and_hides_the_ids() {
        for (path, template) in [
            ("/v1/users/42", "/v1/users/{id}"),
            ("/v1/users/find", "/v1/users/find"),
            ("/rest/api/3/user/search", "/rest/api/3/user/search"),
            ("/rest/api/3/group/member", "/rest/api/3/group/member"),
            (
                "/scim/directory/0f9c2d5e-aaaa-4bbb-8ccc-1234567890ab/Users/5b10ac8d82e05b22cc7d4ef5",
                "/scim/directory/{id}/Users/{id}",
            ),
            ("/organization_memberships/AAAAAAAAAAAAAAAA", "/organization_memberships/{id}"),
            ("/user-management/entities/users/v1", "/user-management/entities/users/v1"),
            ("/api/v2/org/8c2f/members", "/api/v2/org/{id}/members"),
            ("/users/ada%40example.com", "/users/{id}"),
            ("/users/ada@example.com", "/users/{id}"),
            ("/", "/"),
            ("", "/"),
        ] {
            assert_eq!(path_template(path), template, "{path}");
        }
    }

    #[test]
    fn a_validation_failure_says_what_failed() {
        let v = json!({"message": "Validation Failed", "errors": [{"resource": "OrganizationInvitation", "code": "custom", "message": "Invitee is already a part of this organization"}]});
        assert_eq!(details(&v).as_deref(), Some("Invitee is already a part of this organization"));
        assert_eq!(details(&json!({"errors": [{"code": "missing_field"}]})).as_deref(), Some("missing_field"));
        assert_eq!(details(&json!({"message": "Not Found"})), None);
    }

    #[test]
    fn error_fields_read_as_sentences() {
        assert_eq!(readable(&json!("Rate limit exceeded")), "Rate limit exceeded");
        // Jira: empty `errorMessages`, the reason in `errors`.
        assert_eq!(readable(&json!([])), "");
        assert_eq!(readable(&json!(["A", "B"])), "A; B");
        assert_eq!(readable(&json!({"products": "unknown product"})), "products: unknown product");
        assert_eq!(readable(&json!({"code": 7})), "{\"code\":7}");
    }

    /// A request that could outlive the run's lease is not sent (port 9 would
    /// refuse the connection if it were); outside a run nothing is refused.
    #[tokio::test]
    async fn a_request_that_could_outlive_the_lease_is_not_sent() {
        use lifecycle_engine::{Lease, StepError};
        let http =
            VendorHttp::new(VendorKind::Pipedrive, Duration::from_secs(10), Arc::new(Limiter::new(None)), no_hint);
        let url = "http://127.0.0.1:9/users";

        let lease = Lease::new(tokio::time::Instant::now() + Duration::from_secs(5));
        let refused = lease.clone().scope(http.send(http.client().get(url))).await.unwrap_err();
        assert!(matches!(refused, HttpError::LeaseLost { .. }), "{refused:?}");
        assert!(matches!(StepError::from(refused), StepError::LeaseLost));
        assert!(lease.is_lost());

        let lease = Lease::new(tokio::time::Instant::now() + Duration::from_secs(15));
        let sent = lease.clone().scope(http.send(http.client().get(url))).await.unwrap_err();
        assert!(matches!(sent, HttpError::Transport { .. }), "sent while the lease lasts: {sent:?}");

        let sent = http.send(http.client().get(url)).await.unwrap_err();
        assert!(matches!(sent, HttpError::Transport { .. }), "no lease in scope: {sent:?}");
    }

    #[test]
    fn a_redirect_target_is_named_without_its_query() {
        assert_eq!(without_query("https://evil.example/x?api_token=secret"), "https://evil.example/x");
        assert_eq!(without_query("/v1/users#frag"), "/v1/users");
    }

    /// A vendor that redirects: the request is not followed (the other host
    /// never sees the credential), and the error names the target.
    #[tokio::test]
    async fn redirects_are_not_followed_and_carry_no_credential() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        // The other host: counts what reaches it.
        let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let other_addr = other.local_addr().unwrap();
        let reached = Arc::new(AtomicUsize::new(0));
        let r = reached.clone();
        tokio::spawn(async move {
            while let Ok((_s, _)) = other.accept().await {
                r.fetch_add(1, Ordering::SeqCst);
            }
        });
        // The vendor: answers every request with a 302 to the other host.
        let vendor = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let vendor_addr = vendor.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = vendor.accept().await {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nLocation: http://{other_addr}/steal?api_token=x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let _ = s.write_all(answer.as_bytes()).await;
            }
        });
        let http = VendorHttp::new(
            VendorKind::Circleci,
            Duration::from_secs(5),
            Arc::new(crate::ratelimit::Limiter::new(None)),
            no_hint,
        );
        let err = http
            .send(http.client().get(format!("http://{vendor_addr}/api/v2/me")).header("Circle-Token", "secret-token"))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, HttpError::Redirected { status: 302, .. }), "{text}");
        assert!(text.contains(&format!("http://{other_addr}/steal")) && !text.contains("api_token"), "{text}");
        assert!(matches!(StepError::from(err), StepError::Permanent { .. }));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(reached.load(Ordering::SeqCst), 0, "the other host was contacted");
    }

    /// Two 429s within its patience: the third send answers; one more than its patience: the
    /// 429 is the answer; any other error at once.
    #[tokio::test]
    async fn a_read_is_sent_again_after_each_429_up_to_its_patience() {
        let limited = || HttpError::RateLimited { vendor: VendorKind::Calendly, retry_after: None };
        let answers = |fail: u32, other: bool| {
            let mut sent = 0u32;
            move || {
                sent += 1;
                let n = sent;
                async move {
                    match n {
                        n if n <= fail && other => Err(HttpError::Timeout { vendor: VendorKind::Calendly }),
                        n if n <= fail => Err(limited()),
                        n => Ok(n),
                    }
                }
            }
        };
        assert_eq!(patiently(2, HttpError::is_rate_limited, answers(2, false)).await.unwrap(), 3);
        let gave_up = patiently(2, HttpError::is_rate_limited, answers(3, false)).await.unwrap_err();
        assert!(gave_up.is_rate_limited(), "{gave_up:?}");
        let other = patiently(2, HttpError::is_rate_limited, answers(1, true)).await.unwrap_err();
        assert!(matches!(other, HttpError::Timeout { .. }), "{other:?}");
    }

    #[test]
    fn retry_after_is_seconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after_seconds(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after_seconds(&h), None);
    }
}
