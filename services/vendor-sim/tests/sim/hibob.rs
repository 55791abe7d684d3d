//! HiBob: the People API read (auth, fields, human-readable values, 404, its rate limit) and
//! the test sender (a signed v2 delivery posted to a receiver, answered with its reply).

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use lifecycle_vendor_sim::hibob::{self, sender};
use lifecycle_vendor_sim::Vendor;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::common::{into_reply, Reply, TestSim};

async fn read(sim: &TestSim, id: &str, body: Value, auth: (&str, &str)) -> Reply {
    let url = format!("{}/v1/people/{id}", sim.running.base_url(Vendor::Hibob));
    let resp = sim.http.post(url).basic_auth(auth.0, Some(auth.1)).json(&body).send().await.expect("request");
    into_reply(resp).await
}

const AUTH: (&str, &str) = (hibob::SERVICE_USER_ID, hibob::SERVICE_USER_TOKEN);

#[tokio::test]
async fn a_person_is_read_with_machine_values_and_their_display_form() {
    let sim = TestSim::start().await;
    let fields = json!(["root.email", "work.department", "work.startDate", "internal.status", "nope.unknown"]);
    let r = read(&sim, hibob::ACTIVE_SALES_ID, json!({ "fields": fields, "humanReadable": "APPEND" }), AUTH).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["email"], hibob::ACTIVE_SALES_EMAIL);
    assert_eq!(r.body["work"]["startDate"], "2024-03-01");
    assert_eq!(r.body["humanReadable"]["work"]["department"], "Sales");
    assert_ne!(r.body["work"]["department"], "Sales", "the machine value is the list item's id");
    assert_eq!(r.body["internal"]["status"], "Active");
    assert!(r.body.get("nope").is_none(), "an unknown field id is left out silently");
    assert!(r.headers.contains_key("x-ratelimit-remaining"));

    // By e-mail too; REPLACE puts the display values in place.
    let r = read(&sim, hibob::ACTIVE_SALES_EMAIL, json!({ "fields": ["work.site"], "humanReadable": "REPLACE" }), AUTH)
        .await;
    assert_eq!(r.body, json!({ "work": { "site": "London" } }));
}

#[tokio::test]
async fn wrong_credentials_are_401_and_an_unknown_person_404() {
    let sim = TestSim::start().await;
    let r = read(&sim, hibob::ACTIVE_SALES_ID, json!({}), (hibob::SERVICE_USER_ID, "wrong")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = read(&sim, "1111", json!({}), AUTH).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r =
        read(&sim, hibob::TERMINATED_ID, json!({ "fields": ["internal.status", "internal.terminationDate"] }), AUTH)
            .await;
    assert_eq!(r.body, json!({ "internal": { "status": "Inactive", "terminationDate": "2026-10-31" } }));
}

#[tokio::test]
async fn past_fifty_reads_a_minute_the_answer_is_429_with_the_reset() {
    let sim = TestSim::start().await;
    // The window is the minute: start well inside one (51 reads take well under 5 s).
    if crate::common::now_ms().rem_euclid(60_000) > 55_000 {
        crate::common::align_to_window_start(60_000).await;
    }
    for _ in 0..hibob::RATE_PER_MINUTE {
        assert_eq!(read(&sim, hibob::ACTIVE_SALES_ID, json!({}), AUTH).await.status, StatusCode::OK);
    }
    let r = read(&sim, hibob::ACTIVE_SALES_ID, json!({}), AUTH).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    assert!(r.header_i64("x-ratelimit-reset") * 1000 > crate::common::now_ms());
}

#[tokio::test]
async fn the_sender_posts_a_signed_delivery_and_returns_the_receivers_answer() {
    let sim = TestSim::start().await;
    // A receiver that records what it got and answers 202.
    let (tx, mut rx) = mpsc::unbounded_channel::<(HeaderMap, Bytes)>();
    let app = axum::Router::new().route(
        "/v1/hr/hibob",
        post(move |headers: HeaderMap, body: Bytes| {
            let tx = tx.clone();
            async move {
                tx.send((headers, body)).ok();
                (axum::http::StatusCode::ACCEPTED, axum::Json(json!({ "stored": true })))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/v1/hr/hibob", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let reply = sim
        .control(
            reqwest::Method::POST,
            "/hibob/_sim/send",
            Some(json!({ "url": receiver, "secret": "abc", "type": "employee.left",
                         "employee_id": hibob::TERMINATED_ID, "company_id": hibob::COMPANY_ID })),
        )
        .await;
    assert_eq!(reply, json!({ "status": 202, "body": { "stored": true } }));
    let (headers, body) = rx.recv().await.expect("the receiver got it");
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(envelope["type"], "employee.left");
    assert_eq!(envelope["companyId"], json!(637323));
    assert_eq!(envelope["data"]["employeeId"], hibob::TERMINATED_ID);
    assert_eq!(headers["bob-signature"].to_str().unwrap(), sender::sign(b"abc", &body));
}
