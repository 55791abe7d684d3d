//! Shared helpers for the black-box tests: start a simulator on port 0 and talk to it.
#![allow(dead_code)]

use lifecycle_vendor_sim::{build, Config, Fixture, Running, Vendor};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const ADMIN_TOKEN: &str = "pd-admin-token";

/// A running simulator plus an HTTP client.
pub struct TestSim {
    pub running: Running,
    pub http: reqwest::Client,
}

/// What a request returned.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn header_i64(&self, name: &str) -> i64 {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("missing header {name}"))
            .to_str()
            .expect("ascii header")
            .parse()
            .expect("integer header")
    }
}

impl TestSim {
    pub async fn start() -> Self {
        Self::start_with(Config::ephemeral()).await
    }

    pub async fn start_empty() -> Self {
        Self::start_with(Config { fixture: Fixture::Empty, ..Config::ephemeral() }).await
    }

    pub async fn start_with(config: Config) -> Self {
        let running = build(config).await.expect("simulator starts");
        TestSim { running, http: reqwest::Client::new() }
    }

    /// A Pipedrive URL: `path` under the company base, in API v1 (`/users/me` is
    /// `/api/v1/users/me`) unless it names its API (`/api/v2/deals`).
    pub fn pd_url(&self, path: &str) -> String {
        let api = if path.starts_with("/api/") { "" } else { "/api/v1" };
        format!("{}{api}{path}", self.running.base_url(Vendor::Pipedrive))
    }

    /// A Pipedrive request authenticated with the `x-api-token` header (if a token is given).
    pub async fn pd(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, self.pd_url(path));
        if let Some(t) = token {
            req = req.header("x-api-token", t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_reply(req.send().await.expect("request reaches the simulator")).await
    }

    pub async fn pd_get(&self, path: &str) -> Reply {
        self.pd(Method::GET, path, Some(ADMIN_TOKEN), None).await
    }

    pub async fn pd_send(&self, method: Method, path: &str, body: Value) -> Reply {
        self.pd(method, path, Some(ADMIN_TOKEN), Some(body)).await
    }

    /// A control endpoint request; panics unless it answers 2xx.
    pub async fn control(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let reply = self.control_raw(method, path, body).await;
        assert!(reply.status.is_success(), "{path} answered {}: {}", reply.status, reply.body);
        reply.body
    }

    pub async fn control_raw(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{}", self.running.url(), path));
        if let Some(b) = body {
            req = req.json(&b);
        }
        into_reply(req.send().await.expect("request reaches the simulator")).await
    }

    pub async fn seed(&self, body: Value) -> Value {
        self.control(Method::POST, "/_sim/seed", Some(body)).await
    }

    pub async fn state(&self) -> Value {
        self.control(Method::GET, "/_sim/state", None).await
    }

    pub async fn fault(&self, spec: Value) -> Value {
        self.control(Method::POST, "/_sim/faults", Some(spec)).await
    }

    /// The id of the Pipedrive user with this email, from `/_sim/state`.
    pub async fn pd_user_id(&self, email: &str) -> i64 {
        let state = self.state().await;
        state["pipedrive"]["users"]
            .as_array()
            .expect("users")
            .iter()
            .find(|u| u["email"] == email)
            .unwrap_or_else(|| panic!("no user {email}"))["id"]
            .as_i64()
            .expect("id")
    }
}

pub async fn into_reply(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("body");
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| panic!("non-JSON body: {}", String::from_utf8_lossy(&bytes)))
    };
    Reply { status, headers, body }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis() as i64
}

/// Sleep until just after a `window_ms` boundary, so a burst of requests fits in one window.
pub async fn align_to_window_start(window_ms: i64) {
    let into = now_ms().rem_euclid(window_ms);
    let wait = (window_ms - into + 20) % window_ms;
    tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
}
