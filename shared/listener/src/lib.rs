//! The limits every lifecycle HTTP listener wears, in one place so the
//! intake, the webhook receiver, the worker's metrics listener and the admin
//! API cannot drift apart: a timeout per request, a deadline for the body, a
//! cap on requests in flight, a cap on body size, and panics turned into a 500.
//!
//! ```text
//! let app = lifecycle_listener::harden(router, &Limits::new(Duration::from_secs(10), 512, 64 * 1024));
//! ```
//!
//! Errors produced here are RFC 9457 problems like the handlers' own, so a
//! client sees one error format whichever layer refused it.
//!
//! [`serve`] runs a hardened router with what `axum::serve` leaves open: a
//! cap on open connections, a deadline for each request head counted from
//! the moment the connection was accepted (a client that connects and says
//! nothing is closed), an idle bound between requests, a maximum connection
//! age, and, when the cap is reached, room made by closing the connection
//! that has been idle longest instead of refusing the newcomer. It also puts
//! the client's address in each request (`axum::extract::ConnectInfo`), which
//! [`throttle`] uses to slow down whoever keeps presenting wrong credentials.

mod conn;
pub mod throttle;

pub use conn::serve;
pub use throttle::{AuthThrottle, AuthVerdict, ThrottlePolicy, TrustedProxies};

use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
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
    /// How long a client may take to send a request head: counted from the
    /// accept for the first request, and from the end of the previous
    /// answer for the next ones (so it is also how long an idle keep-alive
    /// connection is kept).
    pub header_read_timeout: Duration,
    /// From the request head to the body's last byte. A body still arriving
    /// then is cut off with 408 (the handler's place under the concurrency
    /// limit is given back at once, not at `request_timeout`).
    pub body_read_timeout: Duration,
    /// Open connections at once. At the cap, the connection idle longest
    /// (between requests, or not having sent one yet) is closed to make
    /// room; when every connection is busy, the newcomer is closed.
    pub max_connections: usize,
    /// A connection older than this is closed after the answer in progress
    /// (and dropped `request_timeout` later if that answer is not done).
    pub max_connection_age: Duration,
}

impl Limits {
    pub fn new(request_timeout: Duration, max_concurrent_requests: usize, max_body_bytes: usize) -> Self {
        let header_read_timeout = request_timeout.min(Duration::from_secs(10));
        Self {
            request_timeout,
            max_concurrent_requests,
            max_body_bytes,
            header_read_timeout,
            body_read_timeout: header_read_timeout,
            // Room for keep-alive connections that are idle between requests.
            max_connections: max_concurrent_requests.saturating_mul(4).max(16),
            max_connection_age: Duration::from_secs(300),
        }
    }

    /// For listeners that only serve small GETs (`/metrics`, `/healthz`).
    pub fn small() -> Self {
        Self::new(Duration::from_secs(10), 64, 16 * 1024)
    }
}

/// Wraps `router` in the limits. Outermost first: panics caught, refusals made
/// problems, timeout, concurrency, body deadline, body size.
pub fn harden(router: Router, limits: &Limits) -> Router {
    let body_deadline = limits.body_read_timeout.max(Duration::from_millis(100));
    // Innermost first; each `Router::layer` turns the response body back into
    // axum's, which the next layer needs.
    router
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        // Inside the concurrency limit: the clock starts when the handler does.
        .layer(axum::middleware::from_fn(move |req, next| body_read_deadline(body_deadline, req, next)))
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

/// Gives the body `deadline` to arrive in full. Past it the handler's next
/// read fails, and whatever the handler answers to that is replaced by a 408:
/// the client was too slow, the body was not malformed.
async fn body_read_deadline(
    deadline: Duration,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response<Body> {
    let expired = Arc::new(AtomicBool::new(false));
    let req = req.map(|inner| {
        Body::new(DeadlineBody { inner, deadline: Box::pin(tokio::time::sleep(deadline)), expired: expired.clone() })
    });
    let response = next.run(req).await;
    if expired.load(Ordering::Relaxed) {
        metrics::counter!("lifecycle_http_body_timeouts_total").increment(1);
        tracing::info!(?deadline, "a request body did not arrive in time; answered 408");
        let mut r = problem(
            StatusCode::REQUEST_TIMEOUT,
            "body-timeout",
            "Body too slow",
            &format!("the request body did not arrive within {deadline:?}; send it at once, then retry"),
        );
        // The rest of the body is not read: the connection cannot be reused.
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    response
}

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl hyper::body::Body for DeadlineBody {
    type Data = hyper::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        if self.expired.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        // What has arrived is handed on even at the deadline.
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new("the request body did not arrive in time"))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
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
    use axum::extract::ConnectInfo;
    use axum::routing::{get, post};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tower::ServiceExt;

    /// A real listener on 127.0.0.1:0 serving `app(limits)`.
    struct Server {
        addr: std::net::SocketAddr,
        stop: Arc<tokio::sync::Notify>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Server {
        async fn start(limits: Limits) -> Self {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let stop = Arc::new(tokio::sync::Notify::new());
            let task = tokio::spawn({
                let stop = stop.clone();
                async move { serve(listener, app(limits), &limits, async move { stop.notified().await }).await }
            });
            Server { addr, stop, task }
        }

        /// One request on a fresh connection; the answer's status line and body.
        async fn get(&self, path: &str) -> String {
            let mut socket = TcpStream::connect(self.addr).await.unwrap();
            socket
                .write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes())
                .await
                .unwrap();
            let mut buf = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), socket.read_to_end(&mut buf))
                .await
                .expect("answered in time")
                .expect("answered, not reset");
            String::from_utf8_lossy(&buf).into_owned()
        }

        async fn stop(self) {
            self.stop.notify_one();
            tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("stops").unwrap();
        }
    }

    /// Waits until the server closes `socket`; how long that took.
    async fn closed_by_server(socket: &mut TcpStream, within: Duration) -> Duration {
        let started = Instant::now();
        let mut buf = Vec::new();
        let r = tokio::time::timeout(within, socket.read_to_end(&mut buf)).await;
        assert!(r.is_ok(), "the server kept the connection open for {within:?}");
        started.elapsed()
    }

    fn small_limits() -> Limits {
        let mut limits = Limits::new(Duration::from_secs(2), 4, 1000);
        limits.max_connections = 8;
        limits.header_read_timeout = Duration::from_millis(500);
        limits
    }

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
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>| async move { peer.ip().to_string() }),
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
    async fn silent_connections_beyond_the_cap_do_not_lock_out_a_real_request() {
        let limits = small_limits();
        let server = Server::start(limits).await;
        // Three times the cap of connections that never send a byte.
        let mut silent = Vec::new();
        for _ in 0..3 * limits.max_connections {
            silent.push(TcpStream::connect(server.addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        // A real request is answered at once: it takes the place of the idlest silent socket.
        let started = Instant::now();
        let answer = server.get("/peer").await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("127.0.0.1"), "the handler sees the client's address: {answer}");
        assert!(started.elapsed() < Duration::from_millis(400), "waited {:?}", started.elapsed());
        // And every silent socket is closed by the server, within the head deadline counted from the accept.
        for socket in &mut silent {
            closed_by_server(socket, Duration::from_secs(2)).await;
        }
        // A fresh flood while a real client sends its request slowly but in time.
        let mut flood = Vec::new();
        for _ in 0..2 * limits.max_connections {
            flood.push(TcpStream::connect(server.addr).await.unwrap());
        }
        assert!(server.get("/echo-missing").await.starts_with("HTTP/1.1 404"));
        server.stop().await;
    }

    #[tokio::test]
    async fn a_quiet_http2_connection_and_an_idle_keep_alive_one_are_closed() {
        let server = Server::start(small_limits()).await;
        // The HTTP/2 preface, then silence: HTTP/1.1 only, so it is refused at once.
        let mut h2 = TcpStream::connect(server.addr).await.unwrap();
        h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await.unwrap();
        let took = closed_by_server(&mut h2, Duration::from_secs(2)).await;
        assert!(took < Duration::from_millis(400), "{took:?}");
        // A keep-alive connection is served, then closed once idle for the head deadline.
        let mut ka = TcpStream::connect(server.addr).await.unwrap();
        ka.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
        let mut first = [0u8; 12];
        ka.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        let took = closed_by_server(&mut ka, Duration::from_secs(3)).await;
        assert!(took >= Duration::from_millis(300), "closed before it was idle long: {took:?}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_connection_is_closed_after_its_maximum_age_even_while_busy() {
        let mut limits = small_limits();
        limits.max_connection_age = Duration::from_secs(1);
        let server = Server::start(limits).await;
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        let started = Instant::now();
        let mut answers = 0;
        let mut buf = vec![0u8; 4096];
        // A client that keeps the connection busy with a request every 100 ms.
        let ended = loop {
            if socket.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\n\r\n").await.is_err() {
                break started.elapsed();
            }
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break started.elapsed(),
                Ok(_) => answers += 1,
            }
            assert!(started.elapsed() < Duration::from_secs(5), "the connection outlived its maximum age");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(answers >= 5, "{answers} answers");
        assert!(ended >= Duration::from_millis(900) && ended < Duration::from_secs(3), "{ended:?}");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_body_that_trickles_in_is_cut_off_with_a_408() {
        let mut limits = small_limits();
        limits.body_read_timeout = Duration::from_millis(300);
        let server = Server::start(limits).await;
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\nabc").await.unwrap();
        let started = Instant::now();
        let mut buf = Vec::new();
        // A byte every 100 ms would take 10 s.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if socket.write_all(b"d").await.is_err() {
                break;
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(3), socket.read_to_end(&mut buf)).await;
        let answer = String::from_utf8_lossy(&buf);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("/problems/body-timeout"), "{answer}");
        assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
        // A body sent at once is read as before.
        let mut socket = TcpStream::connect(server.addr).await.unwrap();
        socket
            .write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 3\r\n\r\nabc")
            .await
            .unwrap();
        let mut buf = Vec::new();
        socket.read_to_end(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_waits_for_the_request_in_progress() {
        let server = Server::start(small_limits()).await;
        let addr = server.addr;
        let held = tokio::spawn(async move {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            socket.write_all(b"GET /hold HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
            let mut buf = Vec::new();
            let _ = socket.read_to_end(&mut buf).await;
            String::from_utf8_lossy(&buf).into_owned()
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        server.stop().await;
        let answer = held.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.ends_with("held"), "{answer}");
    }

    #[tokio::test]
    async fn a_panic_is_a_500_problem_not_a_dropped_connection() {
        let r = app(Limits::small()).oneshot(req("GET", "/panic", vec![])).await.unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/problem+json");
    }
}
