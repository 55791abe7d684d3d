//! The intake contract (docs/contract.md §1): authentication, idempotency, validation,
//! and that a refused request writes nothing.

use lifecycle_e2e::stack::{pipedrive_joiner, INTAKE_TOKEN};
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use std::time::Duration;

async fn count(stack: &Stack, table: &str) -> i64 {
    let backend = stack.store.get_database_backend();
    let row = stack
        .store
        .query_one(Statement::from_string(backend, format!("SELECT COUNT(*) AS n FROM {table}")))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap()
}

async fn rows(stack: &Stack) -> (i64, i64, i64, i64) {
    (
        count(stack, "events").await,
        count(stack, "runs").await,
        count(stack, "outbox").await,
        count(stack, "steps").await,
    )
}

async fn the_same_event_twice_with_one_key_creates_one_user(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "idem-same")).await;
    let event = pipedrive_joiner("E-10", "twice@example.com", "Sales Rep");
    let first = stack.post_event(&event, "key-twice").await;
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first_body: Value = first.json().await.unwrap();

    // Same body, different formatting and key order: still the same payload.
    let reordered: Value = serde_json::from_str(&serde_json::to_string_pretty(&event).unwrap()).unwrap();
    let second = stack.post_event(&reordered, "key-twice").await;
    assert_eq!(second.status(), 202);
    assert_eq!(second.headers().get("idempotent-replayed").unwrap(), "true");
    let second_body: Value = second.json().await.unwrap();
    assert_eq!(first_body, second_body, "the replay is the first response");

    stack.wait_event(first_body["event_id"].as_str().unwrap(), Duration::from_secs(60)).await;
    // A third, after processing, changes nothing either.
    assert_eq!(stack.post_event(&event, "key-twice").await.status(), 202);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let state = stack.sim_state().await;
    let users: Vec<&Value> =
        state["pipedrive"]["users"].as_array().unwrap().iter().filter(|u| u["email"] == "twice@example.com").collect();
    assert_eq!(users.len(), 1);
    let creates = state["pipedrive"]["log"].as_array().unwrap().iter().filter(|e| e["action"] == "user.create").count();
    assert_eq!(creates, 1);
    let (events, runs, outbox, _) = rows(&stack).await;
    assert_eq!((events, runs, outbox), (1, 1, 1));
}

async fn the_same_key_with_another_body_is_422(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "idem-other")).await;
    assert_eq!(stack.post_event(&pipedrive_joiner("E-11", "a@example.com", "Sales Rep"), "key-1").await.status(), 202);
    let other = stack.post_event(&pipedrive_joiner("E-11", "b@example.com", "Sales Rep"), "key-1").await;
    assert_eq!(other.status(), 422);
    assert_eq!(other.headers()["content-type"], "application/problem+json");
    let problem: Value = other.json().await.unwrap();
    assert_eq!(problem["type"], "/problems/idempotency-key-reused");
    assert!(problem["detail"].as_str().unwrap().contains("different body"));
    let (events, runs, outbox, _) = rows(&stack).await;
    assert_eq!((events, runs, outbox), (1, 1, 1), "the second body wrote nothing");
}

async fn concurrent_requests_with_one_key_store_one_event(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "idem-race")).await;
    let event = pipedrive_joiner("E-12", "race@example.com", "Sales Rep");
    let posts = (0..8).map(|_| stack.post_event(&event, "key-race"));
    let responses = futures::future::join_all(posts).await;
    let mut bodies = Vec::new();
    for r in responses {
        assert_eq!(r.status(), 202);
        bodies.push(r.json::<Value>().await.unwrap());
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "every answer names the same event");
    let (events, runs, _, _) = rows(&stack).await;
    assert_eq!((events, runs), (1, 1));
}

/// Every bad request gets its precise 4xx as problem+json, and nothing is written.
async fn bad_input_gets_a_precise_4xx_and_writes_nothing(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "bad-input")).await;
    let url = format!("{}/v1/events", stack.producer_url);
    let valid = pipedrive_joiner("E-13", "valid@example.com", "Sales Rep");
    let mut missing_email = valid.clone();
    missing_email["employee"].as_object_mut().unwrap().remove("email");
    let mut unknown_vendor = valid.clone();
    unknown_vendor["apps"]["workday"] = json!({});
    let mut wrong_type = valid.clone();
    wrong_type["employee"]["id"] = json!(1001);
    let huge = format!(r#"{{"type":"joiner","padding":"{}"}}"#, "x".repeat(100 * 1024));

    struct Case {
        name: &'static str,
        body: String,
        token: Option<&'static str>,
        content_type: Option<&'static str>,
        key: Option<String>,
        encoding: Option<&'static str>,
        status: u16,
        problem: &'static str,
        field: Option<&'static str>,
    }
    let case = |name, body: String, status, problem, field| Case {
        name,
        body,
        token: Some(INTAKE_TOKEN),
        content_type: Some("application/json"),
        key: Some(format!("key-{name}")),
        encoding: None,
        status,
        problem,
        field,
    };
    let cases = vec![
        case("malformed-json", r#"{"type": "joiner", "employee": "#.into(), 400, "malformed-json", None),
        case("missing-email", missing_email.to_string(), 400, "invalid-event", Some("employee.email")),
        case("unknown-vendor", unknown_vendor.to_string(), 400, "invalid-event", Some("apps.workday")),
        case("wrong-type", wrong_type.to_string(), 400, "invalid-event", Some("employee.id")),
        case("huge-body", huge.clone(), 413, "body-too-large", None),
        case("not-an-object", "[1,2,3]".into(), 400, "invalid-event", None),
        Case { token: None, ..case("no-token", valid.to_string(), 401, "unauthorized", None) },
        Case { token: Some("wrong-token"), ..case("bad-token", valid.to_string(), 401, "unauthorized", None) },
        Case {
            content_type: Some("text/plain"),
            ..case("text-plain", valid.to_string(), 415, "unsupported-media-type", None)
        },
        Case { content_type: None, ..case("no-content-type", valid.to_string(), 415, "unsupported-media-type", None) },
        Case { key: None, ..case("no-key", valid.to_string(), 400, "invalid-idempotency-key", None) },
        Case {
            key: Some("k".repeat(256)),
            ..case("long-key", valid.to_string(), 400, "invalid-idempotency-key", None)
        },
        Case {
            key: Some("has space".into()),
            ..case("space-key", valid.to_string(), 400, "invalid-idempotency-key", None)
        },
        // The body is plain JSON; a server that ignored the header would accept it.
        Case { encoding: Some("gzip"), ..case("gzip-claimed", valid.to_string(), 415, "unsupported-media-type", None) },
    ];

    // A connection per request: after refusing a request without reading its
    // body the server closes the connection, which a pooled client may reuse.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    for c in cases {
        let mut rb = http.post(&url).body(c.body.clone());
        if let Some(t) = c.token {
            rb = rb.bearer_auth(t);
        }
        if let Some(ct) = c.content_type {
            rb = rb.header("content-type", ct);
        }
        if let Some(k) = &c.key {
            rb = rb.header("idempotency-key", k.as_str());
        }
        if let Some(e) = c.encoding {
            rb = rb.header("content-encoding", e);
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status().as_u16(), c.status, "case {}", c.name);
        assert_eq!(r.headers()["content-type"], "application/problem+json", "case {}", c.name);
        if c.status == 401 {
            assert_eq!(r.headers()["www-authenticate"], "Bearer", "case {}", c.name);
        }
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["type"], format!("/problems/{}", c.problem), "case {}: {p}", c.name);
        assert_eq!(p["status"], c.status, "case {}", c.name);
        if let Some(field) = c.field {
            let named: Vec<&str> =
                p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
            assert!(named.contains(&field), "case {}: {named:?}", c.name);
        }
    }

    // A known path with the wrong method: 405 as a problem, with Allow.
    for method in [reqwest::Method::GET, reqwest::Method::PUT, reqwest::Method::DELETE] {
        let r =
            http.request(method.clone(), &url).bearer_auth(INTAKE_TOKEN).body(valid.to_string()).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 405, "{method}");
        assert_eq!(r.headers()["allow"], "POST", "{method}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "{method}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["type"], "/problems/method-not-allowed", "{method}: {p}");
    }

    assert_eq!(rows(&stack).await, (0, 0, 0, 0), "no row was written");
    // And the producer still serves valid events.
    assert_eq!(stack.post_event(&valid, "key-valid").await.status(), 202);
    assert_eq!(rows(&stack).await.0, 1);
}

/// Refusals added after an outside review: each is a 400 problem naming the
/// field (or the whole body), and none writes anything.
async fn repeated_keys_odd_addresses_and_non_objects_are_named(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "precise-400")).await;
    let valid = pipedrive_joiner("E-15", "precise@example.com", "Sales Rep");
    let text = valid.to_string();
    let with = |path: &[&str], value: Value| {
        let mut v = valid.clone();
        let (last, parents) = path.split_last().unwrap();
        let mut target = &mut v;
        for p in parents {
            target = &mut target[*p];
        }
        target[*last] = value;
        v.to_string()
    };
    // (name, body, the field named, words the field's detail or the problem's detail holds)
    let cases: Vec<(&str, String, &str, &str)> = vec![
        ("empty-array", "[]".into(), "", "the body must be a JSON object"),
        ("array", "[1,2,3]".into(), "", "the body must be a JSON object"),
        // Read as a leaver by serde_json (the last wins), as a joiner by others.
        ("repeated-type", format!(r#"{{"type":"leaver",{}"#, &text[1..]), "type", "more than once"),
        (
            "repeated-email",
            text.replace(
                r#""email":"precise@example.com""#,
                r#""email":"precise@example.com","email":"x@example.com""#,
            ),
            "employee.email",
            "more than once",
        ),
        ("quoted-local-part", with(&["employee", "email"], json!("\"<>/@example.com")), "employee.email", "dot-atom"),
        (
            "zero-width-email",
            with(&["employee", "email"], json!("pre\u{200b}cise@example.com")),
            "employee.email",
            "formatting",
        ),
        ("bidi-name", with(&["employee", "given_name"], json!("Ada\u{202e}")), "employee.given_name", "U+202E"),
        (
            "bidi-successor",
            with(&["successor_email"], json!("gr\u{202e}ace@example.com")),
            "successor_email",
            "formatting",
        ),
    ];
    let mut repeated_checked = false;
    for (name, body, field, words) in cases {
        let r = stack
            .http
            .post(format!("{}/v1/events", stack.producer_url))
            .bearer_auth(INTAKE_TOKEN)
            .header("content-type", "application/json")
            .header("idempotency-key", format!("key-{name}"))
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "case {name}");
        assert_eq!(r.headers()["content-type"], "application/problem+json", "case {name}");
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["type"], "/problems/invalid-event", "case {name}: {p}");
        let detail = p["detail"].as_str().unwrap();
        assert!(!detail.ends_with(": "), "case {name}: a detail naming nothing: {detail}");
        let errors = p["errors"].as_array().unwrap();
        let named = errors.iter().find(|e| e["field"] == field).unwrap_or_else(|| panic!("case {name}: {p}"));
        assert!(named["detail"].as_str().unwrap().contains(words) || detail.contains(words), "case {name}: {p}");
        if field.is_empty() {
            assert_eq!(detail, "the body must be a JSON object", "case {name}");
            assert_eq!(named["pointer"], "#", "case {name}");
        }
        if name == "repeated-type" {
            assert!(detail.contains("repeats keys") && detail.ends_with("type"), "{detail}");
            repeated_checked = true;
        }
    }
    assert!(repeated_checked);
    assert_eq!(rows(&stack).await, (0, 0, 0, 0), "no row was written");
}

async fn the_event_status_endpoint_shows_its_runs(backend: Backend) {
    let stack = Stack::start(StackOptions::new(backend, "event-status")).await;
    let accepted = stack.accept(&pipedrive_joiner("E-14", "status@example.com", "Sales Rep")).await;
    let id = accepted["event_id"].as_str().unwrap();
    assert_eq!(accepted["runs"][0]["vendor"], "pipedrive");
    assert_eq!(accepted["runs"][0]["workflow"], "joiner");
    stack.wait_event(id, Duration::from_secs(60)).await;
    let status: Value = stack
        .http
        .get(format!("{}/v1/events/{id}", stack.producer_url))
        .bearer_auth(INTAKE_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["runs"][0]["state"], "succeeded");
    let unauthenticated = stack.http.get(format!("{}/v1/events/{id}", stack.producer_url)).send().await.unwrap();
    assert_eq!(unauthenticated.status(), 401);
}

both_databases!(
    the_same_event_twice_with_one_key_creates_one_user,
    the_same_key_with_another_body_is_422,
    concurrent_requests_with_one_key_store_one_event,
    bad_input_gets_a_precise_4xx_and_writes_nothing,
    repeated_keys_odd_addresses_and_non_objects_are_named,
    the_event_status_endpoint_shows_its_runs,
);
