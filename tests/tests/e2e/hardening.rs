//! Hostile and broken input on every door of the producer: over a thousand
//! malformed requests write nothing and leave it serving; a stalled request
//! times out; credentials never reach a log or the database.

use futures::StreamExt;
use lifecycle_domain::RunState;
use lifecycle_e2e::stack::contract_joiner;
use lifecycle_e2e::stack::{
    pipedrive_joiner, pipedrive_webhook_fixture, INTAKE_TOKEN, PIPEDRIVE_TOKEN, WEBHOOK_PASSWORD, WEBHOOK_USER,
};
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TABLES: [&str; 6] = ["events", "runs", "outbox", "steps", "drift", "audit_log"];

/// One malformed request: where, what, with which headers.
struct Bad {
    kind: &'static str,
    path: &'static str,
    method: reqwest::Method,
    headers: Vec<(&'static str, Vec<u8>)>,
    body: Vec<u8>,
    /// A body so large the server may close the connection before reading it all.
    may_close: bool,
}

fn intake(kind: &'static str, body: impl Into<Vec<u8>>) -> Bad {
    Bad {
        kind,
        path: "/v1/events",
        method: reqwest::Method::POST,
        headers: vec![
            ("authorization", format!("Bearer {INTAKE_TOKEN}").into_bytes()),
            ("content-type", b"application/json".to_vec()),
            ("idempotency-key", uuid::Uuid::new_v4().to_string().into_bytes()),
        ],
        body: body.into(),
        may_close: false,
    }
}

fn webhook(kind: &'static str, body: impl Into<Vec<u8>>) -> Bad {
    use base64::Engine as _;
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{WEBHOOK_USER}:{WEBHOOK_PASSWORD}"));
    Bad {
        kind,
        path: "/v1/webhooks/pipedrive",
        method: reqwest::Method::POST,
        headers: vec![
            ("authorization", format!("Basic {creds}").into_bytes()),
            ("content-type", b"application/json".to_vec()),
        ],
        body: body.into(),
        may_close: false,
    }
}

impl Bad {
    fn header(mut self, name: &'static str, value: Option<&[u8]>) -> Self {
        self.headers.retain(|(n, _)| *n != name);
        if let Some(v) = value {
            self.headers.push((name, v.to_vec()));
        }
        self
    }
}

fn set(v: &Value, path: &str, to: Value) -> Value {
    let mut v = v.clone();
    let parts: Vec<&str> = path.split('.').collect();
    let mut target = &mut v;
    for p in &parts[..parts.len() - 1] {
        target = target.get_mut(*p).unwrap();
    }
    target[parts[parts.len() - 1]] = to;
    v
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

/// Over a thousand requests, each wrong in its own way.
fn malformed_requests() -> Vec<Bad> {
    let mut out = Vec::new();
    let valid = contract_joiner();
    let valid_text = serde_json::to_string(&valid).unwrap();

    // Truncated at every length: bad JSON at every depth.
    for n in 0..valid_text.len() {
        out.push(intake("truncated-event", valid_text[..n].to_string()));
    }
    // Wrong types everywhere (each replacement is invalid for its field).
    let string_fields = [
        "type",
        "occurred_at",
        "employee.id",
        "employee.email",
        "employee.given_name",
        "employee.family_name",
        "successor_email",
        "apps.pipedrive.role",
        "apps.circleci.login",
    ];
    for f in string_fields {
        for bad in [json!(42), json!([]), json!({}), json!(true), json!(-1.5), json!([["deep"]])] {
            out.push(intake("wrong-type", bytes(&set(&valid, f, bad))));
        }
    }
    let object_fields = ["employee", "apps", "apps.pipedrive", "apps.calendly", "apps.jira"];
    for f in object_fields {
        for bad in [json!(42), json!([]), json!("x"), json!(true), json!([{}])] {
            out.push(intake("wrong-type", bytes(&set(&valid, f, bad))));
        }
    }
    for f in ["apps.crowdstrike.roles", "apps.jira.products", "apps.jira.groups"] {
        for bad in [json!(42), json!("x"), json!({}), json!(true), json!([1]), json!([null]), json!(["a\u{0}b"])] {
            out.push(intake("wrong-type", bytes(&set(&valid, f, bad))));
        }
    }
    // Bad values of the right type.
    for email in [
        "",
        " ",
        "plain",
        "@example.com",
        "a@",
        "a@b",
        "a@@b.com",
        "a b@example.com",
        "a@exa mple.com",
        ".a@example.com",
        "a.@example.com",
        "a..b@example.com",
        "a@-x.com",
        "a@x-.com",
        "a@.com",
        "a@example..com",
        "\u{0}@example.com",
        "a@example.com\nb",
        "😀@",
        &"x".repeat(300),
    ] {
        out.push(intake("bad-email", bytes(&set(&valid, "employee.email", json!(email)))));
        out.push(intake("bad-email", bytes(&set(&valid, "successor_email", json!(email)))));
    }
    for t in ["JOINER", "hire", "", "joiner ", "leaver\u{0}"] {
        out.push(intake("bad-type", bytes(&set(&valid, "type", json!(t)))));
    }
    for t in ["yesterday", "2026-13-01T00:00:00Z", "2026-11-22", "1732262400", "2026-11-22T09:00:00"] {
        out.push(intake("bad-time", bytes(&set(&valid, "occurred_at", json!(t)))));
    }
    out.push(intake("successor-is-self", bytes(&set(&valid, "successor_email", json!("ADA@example.com")))));
    out.push(intake(
        "joiner-without-names",
        bytes(&set(&valid, "employee", json!({"id": "E-1", "email": "a@example.com"}))),
    ));
    out.push(intake("long-id", bytes(&set(&valid, "employee.id", json!("x".repeat(256))))));
    out.push(intake("control-in-name", bytes(&set(&valid, "employee.given_name", json!("Ada\u{7}")))));
    out.push(intake("empty-apps", bytes(&set(&valid, "apps", json!({})))));
    out.push(intake("bad-jira-group", bytes(&set(&valid, "apps.jira.groups", json!(["jira-software-users"])))));
    // Unknown vendors and fields.
    for vendor in ["workday", "PIPEDRIVE", "pipedrive ", "", "slack", "__proto__", "jira/../calendly"] {
        out.push(intake(
            "unknown-vendor",
            bytes(&set(&valid, &format!("apps.{vendor}").replace("..", "_"), json!({}))),
        ));
    }
    for (path, field) in
        [("", "extra"), ("employee.", "manager"), ("apps.pipedrive.", "roles"), ("apps.calendly.", "role")]
    {
        let mut v = valid.clone();
        let target = if path.is_empty() {
            &mut v
        } else {
            v.pointer_mut(&format!("/{}", path.trim_end_matches('.').replace('.', "/"))).unwrap()
        };
        target[field] = json!("x");
        out.push(intake("unknown-field", bytes(&v)));
    }
    // Not an event at all.
    for body in [
        "",
        "null",
        "true",
        "42",
        "\"joiner\"",
        "[]",
        "[{}]",
        "{}",
        "{\"type\":\"joiner\"}",
        "{\"type\":\"joiner\",}",
        "{'type':'joiner'}",
        "\u{feff}{}",
    ] {
        out.push(intake("not-an-event", body));
    }
    // Deep bodies.
    for depth in [200, 1_000, 20_000] {
        out.push(intake("deep", format!("{}{}", "[".repeat(depth), "]".repeat(depth))));
        let inner = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        out.push(intake("deep", valid_text.replacen("{\"role\":\"Sales Rep\"}", &inner, 1)));
    }
    // Invalid UTF-8.
    for bytes_in in [&b"\xff\xfe"[..], b"\xc3\x28", b"\xed\xa0\x80", b"\xf0\x28\x8c\x28", b"\x80"] {
        let mut b = valid_text.clone().into_bytes();
        let at = b.windows(3).position(|w| w == b"Ada").unwrap();
        b.splice(at..at + 3, bytes_in.iter().copied());
        out.push(intake("invalid-utf8", b));
    }
    // Huge bodies (the limit is 64 KiB).
    for size in [64 * 1024 + 1, 200 * 1024, 900 * 1024] {
        out.push(intake("huge", bytes(&set(&valid, "employee.given_name", json!("x".repeat(size))))));
    }
    out.push(Bad { may_close: true, ..intake("huge", vec![b' '; 3 * 1024 * 1024]) });
    // Bad or absent credentials.
    for auth in [
        None,
        Some(&b"Bearer"[..]),
        Some(b"Bearer "),
        Some(b"Bearer wrong-token"),
        Some(b"bearer test-intake-token-and-more"),
        Some(b"Bearer test-intake-toke"),
        Some(b"Basic dGVzdDp0ZXN0"),
        Some(b"Token test-intake-token"),
        Some(b"test-intake-token"),
        Some(b"Bearer \xfftest-intake-token"),
    ] {
        out.push(intake("bad-auth", valid_text.clone()).header("authorization", auth));
    }
    let long = format!("Bearer {}", "t".repeat(8000));
    out.push(intake("bad-auth", valid_text.clone()).header("authorization", Some(long.as_bytes())));
    // Bad idempotency keys.
    let long_key = "k".repeat(256);
    for key in [
        None,
        Some(&b""[..]),
        Some(b" "),
        Some(b"has space"),
        Some(long_key.as_bytes()),
        Some(b"caf\xc3\xa9"),
        Some(b"tab\there"),
    ] {
        out.push(intake("bad-key", valid_text.clone()).header("idempotency-key", key));
    }
    // Wrong content types.
    for ct in [
        None,
        Some(&b"text/plain"[..]),
        Some(b"application/xml"),
        Some(b"application/jsonx"),
        Some(b"multipart/form-data; boundary=x"),
        Some(b"application/x-www-form-urlencoded"),
        Some(b"json"),
        Some(b""),
    ] {
        out.push(intake("content-type", valid_text.clone()).header("content-type", ct));
    }
    // Wrong methods and paths.
    for (method, path) in [
        (reqwest::Method::PUT, "/v1/events"),
        (reqwest::Method::DELETE, "/v1/events"),
        (reqwest::Method::PATCH, "/v1/events"),
        (reqwest::Method::POST, "/v1/event"),
        (reqwest::Method::POST, "/v2/events"),
        (reqwest::Method::POST, "/v1/events/"),
        (reqwest::Method::POST, "/v1/webhooks/jira"),
        (reqwest::Method::GET, "/v1/webhooks/pipedrive"),
    ] {
        out.push(Bad { method, path, ..intake("wrong-route", valid_text.clone()) });
    }

    // ---- Pipedrive webhooks ----
    let v2 = pipedrive_webhook_fixture("v2-user-deactivated.json", 17, "linus@example.com");
    let v1 = pipedrive_webhook_fixture("v1-user-added.json", 17, "shadow@example.com");
    for fixture in [&v2, &v1] {
        let text = serde_json::to_string(fixture).unwrap();
        for n in (0..text.len()).step_by(3) {
            out.push(webhook("truncated-webhook", text[..n].to_string()));
        }
    }
    for (path, values) in [
        ("meta", vec![json!([]), json!("meta"), json!(1)]),
        ("meta.action", vec![json!(1), json!([]), json!({})]),
        ("meta.entity", vec![json!(1), json!(["user"]), json!({"user": true})]),
        ("meta.id", vec![json!(1.5), json!([]), json!({}), json!(""), json!("x\u{0}")]),
        ("meta.entity_id", vec![json!(true), json!([17]), json!("")]),
        ("meta.attempt", vec![json!(-1), json!("1"), json!(1.5)]),
        ("meta.version", vec![json!("3.0"), json!("two")]),
        ("data", vec![json!("data"), json!(17), json!([])]),
        ("previous", vec![json!("prev"), json!(17)]),
        ("data.active_flag", vec![json!("false"), json!([]), json!(2)]),
        ("previous.active_flag", vec![json!("true"), json!({})]),
    ] {
        for bad in values {
            out.push(webhook("webhook-wrong-type", bytes(&set(&v2, path, bad))));
        }
    }
    for (path, values) in [
        ("meta.timestamp_micro", vec![json!(null)]),
        ("meta.action", vec![json!(7)]),
        ("current", vec![json!("c"), json!([1]), json!(5)]),
        ("retry", vec![json!(-1), json!("0")]),
        ("event", vec![json!(1)]),
    ] {
        for bad in values {
            let mut b = set(&v1, path, bad);
            if path == "meta.timestamp_micro" {
                b["meta"].as_object_mut().unwrap().remove("timestamp");
            }
            out.push(webhook("webhook-wrong-type", bytes(&b)));
        }
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    for _ in 0..150 {
        let len = rng.random_range(0..400);
        let garbage: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        out.push(webhook("webhook-garbage", garbage));
    }
    for body in [
        "",
        "null",
        "[]",
        "{}",
        "\"x\"",
        "{\"v\":3}",
        "{\"meta\":{}}",
        "{\"v\":1,\"meta\":{}}",
        "{\"meta\":{\"version\":\"2.0\"}}",
    ] {
        out.push(webhook("webhook-garbage", body));
    }
    out.push(webhook("webhook-deep", format!("{}{}", "[".repeat(5_000), "]".repeat(5_000))));
    out.push(webhook("webhook-huge", vec![b' '; 256 * 1024 + 1]));
    let mut b = bytes(&v2);
    let at = b.windows(5).position(|w| w == b"Linus").unwrap();
    b.splice(at..at + 5, b"\xff\xfe".iter().copied());
    out.push(webhook("webhook-invalid-utf8", b));
    use base64::Engine as _;
    let enc = |s: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(s)).into_bytes();
    for auth in [
        None,
        Some(enc(&format!("{WEBHOOK_USER}:wrong"))),
        Some(enc(&format!("{WEBHOOK_USER}:{WEBHOOK_PASSWORD}x"))),
        Some(enc(&format!("x{WEBHOOK_USER}:{WEBHOOK_PASSWORD}"))),
        Some(enc(WEBHOOK_USER)),
        Some(enc(":")),
        Some(b"Basic !!!not-base64!!!".to_vec()),
        Some(format!("Bearer {INTAKE_TOKEN}").into_bytes()),
        Some(format!("Basic {WEBHOOK_USER}:{WEBHOOK_PASSWORD}").into_bytes()),
    ] {
        out.push(webhook("webhook-bad-auth", bytes(&v2)).header("authorization", auth.as_deref()));
    }
    for ct in [None, Some(&b"text/plain"[..]), Some(b"application/x-www-form-urlencoded")] {
        out.push(webhook("webhook-content-type", bytes(&v2)).header("content-type", ct));
    }
    out
}

async fn send(stack: &Stack, client: &reqwest::Client, bad: &Bad) -> Result<u16, String> {
    let mut req = client.request(bad.method.clone(), format!("{}{}", stack.producer_url, bad.path));
    for (name, value) in &bad.headers {
        let value = reqwest::header::HeaderValue::from_bytes(value).map_err(|e| format!("unsendable header: {e}"))?;
        req = req.header(*name, value);
    }
    match req.body(bad.body.clone()).send().await {
        Ok(r) => Ok(r.status().as_u16()),
        Err(e) => Err(format!("{e:?}")),
    }
}

async fn a_thousand_malformed_requests_write_nothing_and_the_producer_still_serves(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "malformed")).await;
    let requests = malformed_requests();
    assert!(requests.len() >= 1000, "only {} requests", requests.len());

    // A fresh connection per request: a refused request's connection is
    // closed by the server (its body unread), and a pooled client could race
    // that close and report it as a failure of the next request.
    let client = reqwest::Client::builder().pool_max_idle_per_host(0).timeout(Duration::from_secs(30)).build().unwrap();
    let results: Vec<(usize, Result<u16, String>)> = futures::stream::iter(requests.iter().enumerate())
        .map(|(i, bad)| {
            let (stack, client) = (&stack, &client);
            async move { (i, send(stack, client, bad).await) }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let mut kinds = std::collections::BTreeMap::<&str, usize>::new();
    for (i, result) in &results {
        let bad = &requests[*i];
        *kinds.entry(bad.kind).or_default() += 1;
        match result {
            Ok(status) => assert!(
                (400..500).contains(status),
                "{} request #{i} got {status}: {:?}",
                bad.kind,
                String::from_utf8_lossy(&bad.body[..bad.body.len().min(300)])
            ),
            Err(e) if bad.may_close => eprintln!("{} #{i}: connection closed early ({e}), as allowed", bad.kind),
            Err(e) => panic!(
                "{} request #{i} failed at the transport: {e:?}; headers {:?}",
                bad.kind,
                bad.headers
                    .iter()
                    .map(|(n, v)| (n, String::from_utf8_lossy(&v[..v.len().min(60)])))
                    .collect::<Vec<_>>()
            ),
        }
    }
    eprintln!("sent {} malformed requests: {kinds:?}", results.len());
    assert!(kinds.len() >= 20, "{kinds:?}");

    for table in TABLES {
        assert_eq!(stack.count(table).await, 0, "a malformed request wrote to {table}");
    }
    // Still serving: a valid event is accepted and its run succeeds.
    let accepted = stack.accept(&pipedrive_joiner("E-1", "ada@example.com", "Sales Rep")).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    // And a valid webhook too.
    let r = stack.post_webhook(&pipedrive_webhook_fixture("v1-user-added.json", 99, "shadow@example.com")).await;
    assert_eq!(r.status(), 200);
}

async fn a_request_that_stalls_is_cut_off_by_the_timeout(backend: Backend) {
    let stack =
        Stack::start(StackOptions::new(backend, "stall").workers(0).env("LIFECYCLE_PRODUCER__REQUEST_TIMEOUT", "1s"))
            .await;
    let addr = stack.producer_url.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Promises 100 bytes, sends 10, then waits.
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {INTAKE_TOKEN}\r\ncontent-type: application/json\r\nidempotency-key: stall-1\r\ncontent-length: 100\r\n\r\n{{\"type\":\"j"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 1024];
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the producer kept the stalled request waiting");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(stack.count("events").await, 0);
}

/// Every process log, and everything in the database, as text.
async fn everything_written(stack: &Stack) -> String {
    let mut all = stack.logs();
    use sea_orm::{ConnectionTrait, Statement};
    let db = &stack.store;
    let backend = db.get_database_backend();
    for table in TABLES {
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => format!("SELECT row_to_json(t)::text AS r FROM {table} t"),
            _ => {
                // SQLite: every column of every row, as text.
                let cols = db
                    .query_all(Statement::from_string(
                        backend,
                        format!("SELECT name FROM pragma_table_info('{table}')"),
                    ))
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| format!("COALESCE(CAST(\"{}\" AS TEXT), '')", r.try_get::<String>("", "name").unwrap()))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                format!("SELECT {cols} AS r FROM {table}")
            }
        };
        for row in db.query_all(Statement::from_string(backend, sql)).await.unwrap() {
            all.push_str(&row.try_get::<String>("", "r").unwrap());
            all.push('\n');
        }
    }
    all
}

async fn credentials_never_reach_a_log_or_the_database(backend: Backend) {
    // Debug logging in every process: the most they would ever say.
    let stack = Stack::start(
        StackOptions::new(backend, "secrets")
            .env("RUST_LOG", "debug")
            .env("LIFECYCLE_VENDORS__PIPEDRIVE__FALLBACK_OWNER_EMAIL", "admin@sim.example"),
    )
    .await;
    let wrong_token = "wrong-intake-token-7f3a";
    let wrong_password = "wrong-webhook-password-9c1d";
    use base64::Engine as _;
    let encoded_good = base64::engine::general_purpose::STANDARD.encode(format!("{WEBHOOK_USER}:{WEBHOOK_PASSWORD}"));
    let encoded_bad = base64::engine::general_purpose::STANDARD.encode(format!("{WEBHOOK_USER}:{wrong_password}"));

    // Wrong credentials on both doors...
    let event = pipedrive_joiner("E-1", "ada@example.com", "Sales Rep");
    let r = stack
        .http
        .post(format!("{}/v1/events", stack.producer_url))
        .bearer_auth(wrong_token)
        .header("idempotency-key", "k-1")
        .json(&event)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let hook = pipedrive_webhook_fixture("v1-user-added.json", 7, "shadow@example.com");
    assert_eq!(stack.post_webhook_as(&hook, WEBHOOK_USER, wrong_password).await.status(), 401);
    // ...then the real ones, and work at the vendor with its token.
    let accepted = stack.accept(&event).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    assert_eq!(runs[0].state, RunState::Succeeded);
    assert_eq!(stack.post_webhook(&hook).await.status(), 200);
    let ada = stack.sim_state().await["pipedrive"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ada@example.com")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let deact = pipedrive_webhook_fixture("v2-user-deactivated.json", ada, "ada@example.com");
    assert_eq!(stack.post_webhook(&deact).await.status(), 200);
    stack.wait_all(Duration::from_secs(60)).await;

    let written = everything_written(&stack).await;
    assert!(written.contains("ada@example.com"), "the dump holds the data it should");
    for secret in
        [INTAKE_TOKEN, WEBHOOK_PASSWORD, PIPEDRIVE_TOKEN, wrong_token, wrong_password, &encoded_good, &encoded_bad]
    {
        assert!(!written.contains(secret), "{secret:?} was written to a log or the database");
    }
}

both_databases!(
    a_thousand_malformed_requests_write_nothing_and_the_producer_still_serves,
    a_request_that_stalls_is_cut_off_by_the_timeout,
    credentials_never_reach_a_log_or_the_database,
);

// --- The throttle judges the handlers' verdicts, per kind of credential (issue 25) ---

const SCIM_TOKEN: &str = "e2e-scim-token-0123456789";

/// A stack with SCIM on (its config file lives as long as the guard).
async fn with_scim(name: &str, extra: &[(&str, &str)]) -> (Stack, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scim.toml");
    let mapping = lifecycle_config::scim::example_mapping();
    std::fs::write(&file, format!("[scim]\ntokens = [\"{SCIM_TOKEN}\"]\n{mapping}")).unwrap();
    let mut opts = StackOptions::new(Backend::Sqlite, name).env("LIFECYCLE_CONFIG", file.to_str().unwrap());
    for (k, v) in extra {
        opts = opts.env(k, v);
    }
    (Stack::start(opts).await, dir)
}

async fn scim_users(stack: &Stack, token: &str) -> u16 {
    let r = stack.http.get(format!("{}/scim/v2/Users", stack.producer_url)).bearer_auth(token).send().await.unwrap();
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_scim_tokens_do_not_lock_out_the_right_intake_scim_or_webhook_callers() {
    let (stack, _config) = with_scim("throttle-tables", &[]).await;
    let mut wrong = Vec::new();
    for i in 0..11 {
        wrong.push(scim_users(&stack, &format!("wrong-scim-token-{i:02}-0123456789")).await);
    }
    assert!(wrong.contains(&429), "past the free failures, wrong tokens are refused: {wrong:?}");
    // From the same address, at once: every right credential is served.
    let r = stack.post_event(&pipedrive_joiner("E-T1", "ada@example.com", "Sales Rep"), "throttle-1").await;
    assert_eq!(r.status(), 202, "the right intake token after 11 wrong SCIM tokens");
    assert_eq!(scim_users(&stack, SCIM_TOKEN).await, 200, "the right SCIM token after 11 wrong ones");
    let hook = pipedrive_webhook_fixture("v1-user-added.json", 77, "grace@example.com");
    assert_eq!(stack.post_webhook(&hook).await.status(), 200, "the webhook's credentials after 11 wrong SCIM tokens");
    // The intake's and the webhook's tables are their own: a first wrong token there is a plain 401.
    let r = stack
        .http
        .post(format!("{}/v1/events", stack.producer_url))
        .bearer_auth("wrong-intake-token")
        .header("Idempotency-Key", "throttle-2")
        .json(&pipedrive_joiner("E-T2", "bob@example.com", "Sales Rep"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(stack.post_webhook_as(&hook, WEBHOOK_USER, "wrong-password").await.status(), 401);
    // And the SCIM guesser is still refused: serving the right token cleared nothing.
    assert_eq!(scim_users(&stack, "wrong-scim-token-99-0123456789").await, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guess_then_a_400_on_an_id_route_does_not_clear_failures() {
    let stack = Stack::start(StackOptions::new(Backend::Sqlite, "throttle-400")).await;
    let get = |path: String| stack.http.get(format!("{}{path}", stack.producer_url)).bearer_auth("a-wrong-guess");
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..30 {
        *statuses.entry(get(format!("/v1/events/E-{i}")).send().await.unwrap().status().as_u16()).or_default() += 1;
        // `Path` refuses a non-UTF-8 id with 400 before the handler looks at the token.
        assert_eq!(get("/v1/events/%ff".into()).send().await.unwrap().status(), 400);
    }
    assert_eq!(statuses, [(401, 3), (429, 27)].into(), "the 400s must not clear the guesser's failures");
    // The right token is still served from there, at once.
    let r = stack.http.get(format!("{}/v1/events/E-0", stack.producer_url)).bearer_auth(INTAKE_TOKEN).send().await;
    assert_eq!(r.unwrap().status(), 404);
}

/// Spans an OTLP/HTTP receiver got: (name, trace id in hex).
type Received = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

async fn otlp_receiver() -> (String, Received) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let got: Received = Default::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |axum::extract::State(got): axum::extract::State<Received>, body: axum::body::Bytes| async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP/HTTP protobuf export");
                    let mut got = got.lock().unwrap();
                    for s in request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans) {
                        got.push((s.name, s.trace_id.iter().map(|b| format!("{b:02x}")).collect()));
                    }
                    ""
                },
            ),
        )
        .with_state(got.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unauthenticated_request_with_a_traceparent_does_not_continue_it() {
    let (endpoint, got) = otlp_receiver().await;
    let (stack, _config) = with_scim(
        "traces-unauthenticated",
        &[("LIFECYCLE_TELEMETRY__OTLP_ENDPOINT", &endpoint), ("OTEL_BSP_SCHEDULE_DELAY", "100")],
    )
    .await;
    let trace = |n: u8| format!("{n:02x}{}", "ab".repeat(15));
    let parent = |n: u8| format!("00-{}-00f067aa0ba902b7-01", trace(n));
    let url = |path: &str| format!("{}{path}", stack.producer_url);
    let joiner = pipedrive_joiner("E-TR", "ada@example.com", "Sales Rep");
    // Wrong credentials, each with a trace of the caller's choosing.
    let r = stack.http.post(url("/v1/events")).bearer_auth("wrong").header("Idempotency-Key", "tr-1");
    let r = r.header("traceparent", parent(1)).json(&joiner).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let hook = pipedrive_webhook_fixture("v1-user-added.json", 5, "eve@example.com");
    let r = stack.http.post(url("/v1/webhooks/pipedrive")).basic_auth(WEBHOOK_USER, Some("wrong"));
    assert_eq!(r.header("traceparent", parent(2)).json(&hook).send().await.unwrap().status(), 401);
    let r = stack.http.post(url("/scim/v2/Users")).bearer_auth("wrong-scim-token-0123456789");
    let r = r.header("traceparent", parent(3)).header("content-type", "application/scim+json");
    assert_eq!(r.body(json!({"userName": "eve@example.com"}).to_string()).send().await.unwrap().status(), 401);
    // Then an authenticated one: its trace is continued, and shows the exporter is running.
    let r = stack.http.post(url("/v1/events")).bearer_auth(INTAKE_TOKEN).header("Idempotency-Key", "tr-4");
    assert_eq!(r.header("traceparent", parent(4)).json(&joiner).send().await.unwrap().status(), 202);
    let until = std::time::Instant::now() + Duration::from_secs(10);
    while !got.lock().unwrap().iter().any(|(name, t)| name == "intake" && *t == trace(4)) {
        assert!(std::time::Instant::now() < until, "no intake span continuing the caller's trace: {:?}", got.lock());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = got.lock().unwrap().clone();
    for n in 1..=3 {
        assert!(!got.iter().any(|(_, t)| *t == trace(n)), "an unauthenticated request's trace was continued: {got:?}");
    }
    let handler_spans = got.iter().filter(|(name, _)| ["intake", "pipedrive.webhook", "scim"].contains(&name.as_str()));
    assert_eq!(handler_spans.count(), 1, "only the authenticated request made a span: {got:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_listen_set_the_intake_port_does_not_serve_metrics() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let listen = format!("127.0.0.1:{port}");
    let opts = StackOptions::new(Backend::Sqlite, "metrics-listen").env("LIFECYCLE_PRODUCER__METRICS_LISTEN", &listen);
    let stack = Stack::start(opts).await;
    let r = stack.http.get(format!("{}/metrics", stack.producer_url)).send().await.unwrap();
    assert_eq!(r.status(), 404, "/metrics is not on the intake");
    let r = stack.http.get(format!("http://{listen}/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("lifecycle_"), "the producer's metrics");
    // Only metrics there: no intake route.
    let r = stack.http.post(format!("http://{listen}/v1/events")).bearer_auth(INTAKE_TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 404);
}
