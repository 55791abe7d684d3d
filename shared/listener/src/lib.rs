//! The limits every lifecycle HTTP listener wears, in one place so the
//! intake, the webhook receiver, the worker's metrics listener and the admin
//! API cannot drift apart: a timeout per request, a cap on requests in
//! flight, a cap on body size, and panics turned into a 500.
//!
//! ```text
//! let app = lifecycle_listener::harden(router, &Limits::new(Duration::from_secs(10), 512, 64 * 1024));
//! ```
//!
//! Errors produced here are RFC 9457 problems like the handlers' own, so a
//! client sees one error format whichever layer refused it.
//!
//! [`serve`] runs a hardened router with what `axum::serve` leaves open: a
//! deadline for the request head (a client that trickles its headers is cut
//! off; the request timeout only starts once they are in) and a cap on open
//! connections.

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use std::time::Duration;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

/// How much one listener accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// From the request head to the last byte of the answer, waiting for a
    /// place under the concurrency limit included. Past it: 408.
    pub request_timeout: Duration,
    /// Requests handled at once; more wait (and count against their timeout).
    pub max_concurrent_requests: usize,
    /// Bodies larger than this are refused with 413 (by `Content-Length`
    /// before reading, or as soon as a streamed body passes it). Handlers
    /// with a tighter, per-route limit enforce their own below it.
    pub max_body_bytes: usize,
    /// How long a client may take to send a request head (also while an
    /// idle keep-alive connection waits for the next one).
    pub header_read_timeout: Duration,
    /// Open connections at once; more are closed as they arrive.
    pub max_connections: usize,
}

impl Limits {
    pub fn new(request_timeout: Duration, max_concurrent_requests: usize, max_body_bytes: usize) -> Self {
        Self {
            request_timeout,
            max_concurrent_requests,
            max_body_bytes,
            header_read_timeout: request_timeout.min(Duration::from_secs(10)),
            // Room for keep-alive connections that are idle between requests.
            max_connections: max_concurrent_requests.saturating_mul(4).max(16),
        }
    }

    /// For listeners that only serve small GETs (`/metrics`, `/healthz`).
    pub fn small() -> Self {
        Self::new(Duration::from_secs(10), 64, 16 * 1024)
    }
}

/// Wraps `router` in the limits. Outermost first: panics caught, refusals made
/// problems, timeout, concurrency, body size.
pub fn harden(router: Router, limits: &Limits) -> Router {
    // Innermost first; each `Router::layer` turns the response body back into
    // axum's, which the next layer needs.
    router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        // Global: one count for the whole listener, not one per route.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(limits.max_concurrent_requests.max(1)))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout.max(Duration::from_millis(100)),
        ))
        .layer(axum::middleware::map_response(as_problem))
        .layer(CatchPanicLayer::custom(|_| {
            problem(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the request failed inside lifecycle; it has been logged",
            )
        }))
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and lets connections finish their requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto;
    use hyper_util::service::TowerToHyperService;
    use std::sync::Arc;
    use tower::ServiceExt;

    let connections = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let header_timeout = limits.header_read_timeout.max(Duration::from_millis(100));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: pause rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            metrics::counter!("lifecycle_http_connections_refused_total").increment(1);
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(
            app.clone().map_request(|req: axum::http::Request<hyper::body::Incoming>| req.map(Body::new)),
        );
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(header_timeout);
            builder.http2().timer(TokioTimer::new());
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The layers' own refusals (413 from the body limit, 408 from the timeout)
/// come without a body we chose: give them one in the house format.
async fn as_problem(response: Response<Body>) -> Response<Body> {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if is_problem {
        return response;
    }
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-too-large",
            "Body too large",
            "the body is larger than this endpoint accepts",
        ),
        StatusCode::REQUEST_TIMEOUT => problem(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "Request timeout",
            "the request took too long (sending it, or waiting for a free place); retry it",
        ),
        _ => response,
    }
}

/// An RFC 9457 problem response.
pub fn problem(status: StatusCode, slug: &str, title: &str, detail: &str) -> Response<Body> {
    let body = serde_json::json!({
        "type": format!("/problems/{slug}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn app(limits: Limits) -> Router {
        let router = Router::new()
            .route("/echo", post(|body: axum::body::Bytes| async move { body.len().to_string() }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route(
                "/hold",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "held"
                }),
            )
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    "never"
                }),
            );
        harden(router, &limits)
    }

    fn req(method: &str, uri: &str, body: Vec<u8>) -> axum::http::Request<Body> {
        axum::http::Request::builder().method(method).uri(uri).body(Body::from(body)).unwrap()
    }

    #[tokio::test]
    async fn bodies_over_the_limit_get_a_413_problem() {
        let limits = Limits::new(Duration::from_secs(5), 4, 100);
        let ok = app(limits).oneshot(req("POST", "/echo", vec![b'a'; 100])).await.unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        let big = app(limits).oneshot(req("POST", "/echo", vec![b'a'; 101])).await.unwrap();
        assert_eq!(big.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(big.headers()[header::CONTENT_TYPE], "application/problem+json");
    }

    #[tokio::test]
    async fn slow_handlers_time_out_with_a_408_problem() {
        let limits = Limits::new(Duration::from_millis(200), 4, 100);
        let r = app(limits).oneshot(req("GET", "/slow", vec![])).await.unwrap();
        assert_eq!(r.status(), StatusCode::REQUEST_TIMEOUT);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
    }

    #[tokio::test]
    async fn the_concurrency_limit_covers_every_route_of_the_listener() {
        let app = app(Limits::new(Duration::from_secs(5), 1, 100));
        let held = tokio::spawn(app.clone().oneshot(req("GET", "/hold", vec![])));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let r = app.oneshot(req("POST", "/echo", b"x".to_vec())).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(150), "served at once: {:?}", started.elapsed());
        assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_client_that_trickles_its_headers_is_cut_off() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut limits = Limits::new(Duration::from_secs(5), 4, 100);
        limits.header_read_timeout = Duration::from_millis(300);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = std::sync::Arc::new(tokio::sync::Notify::new());
        let server = tokio::spawn({
            let stop = stop.clone();
            async move { serve(listener, app(limits), &limits, async move { stop.notified().await }).await }
        });
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(b"GET /hold HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(3), socket.read_to_end(&mut buf)).await;
        assert!(closed.is_ok(), "the connection stayed open");
        assert!(started.elapsed() < Duration::from_secs(2));
        // A well-behaved client is still served.
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.write_all(b"GET /hold HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
        let mut buf = Vec::new();
        socket.read_to_end(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
        stop.notify_one();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_panic_is_a_500_problem_not_a_dropped_connection() {
        let r = app(Limits::small()).oneshot(req("GET", "/panic", vec![])).await.unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
