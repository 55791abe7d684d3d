//! Traces across the queue (issue 18): one HR event is one trace, from the
//! intake through the outbox, RabbitMQ and a worker's run to each vendor
//! request, and no span says a credential. The collector is a small OTLP/HTTP
//! receiver started here, decoding what the producer and the worker export.
//!
//! With `LIFECYCLE_TRACE_DUMP=<file>` the spans received are written there as
//! JSON (what `scripts/trace-picture` draws for docs/operators/observability.md).

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::Router;
use lifecycle_domain::RunState;
use lifecycle_e2e::stack::{pipedrive_joiner, INTAKE_TOKEN, PIPEDRIVE_TOKEN};
use lifecycle_e2e::{Backend, Stack, StackOptions};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One span as received, with its service.
#[derive(Debug, Clone)]
struct Got {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
    start_ns: u64,
    end_ns: u64,
    attrs: Vec<(String, String)>,
    /// (trace id, span id) of each link.
    links: Vec<(String, String)>,
    /// Every string the export held about this span (attributes, events,
    /// links, its resource), for the credential check.
    texts: Vec<String>,
}

impl Got {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

type Spans = Arc<Mutex<Vec<Got>>>;

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter().map(|kv| (kv.key.clone(), text(&kv.value))).collect()
}

async fn receive(State(spans): State<Spans>, body: Bytes) -> &'static str {
    let request = ExportTraceServiceRequest::decode(body).expect("an OTLP/HTTP protobuf export");
    let mut got = spans.lock().unwrap();
    for rs in request.resource_spans {
        let resource = rs.resource.map(|r| pairs(&r.attributes)).unwrap_or_default();
        let service = resource.iter().find(|(k, _)| k == "service.name").map(|(_, v)| v.clone()).unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                let attrs = pairs(&s.attributes);
                let mut texts: Vec<String> =
                    resource.iter().chain(&attrs).flat_map(|(k, v)| [k.clone(), v.clone()]).collect();
                texts.push(s.name.clone());
                for e in &s.events {
                    texts.push(e.name.clone());
                    texts.extend(pairs(&e.attributes).into_iter().flat_map(|(k, v)| [k, v]));
                }
                for l in &s.links {
                    texts.extend(pairs(&l.attributes).into_iter().flat_map(|(k, v)| [k, v]));
                    texts.push(l.trace_state.clone());
                }
                if let Some(st) = &s.status {
                    texts.push(st.message.clone());
                }
                got.push(Got {
                    service: service.clone(),
                    name: s.name,
                    trace: hex(&s.trace_id),
                    id: hex(&s.span_id),
                    parent: hex(&s.parent_span_id),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                    attrs,
                    links: s.links.iter().map(|l| (hex(&l.trace_id), hex(&l.span_id))).collect(),
                    texts,
                });
            }
        }
    }
    ""
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The receiver: its base URL (what `otlp_endpoint` names) and what it got.
async fn collector() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let app = Router::new().route("/v1/traces", post(receive)).with_state(spans.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

/// Waits until `done` holds for the spans received (the exporters send in batches).
async fn wait_for(spans: &Spans, what: &str, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let now = spans.lock().unwrap().clone();
        if done(&now) {
            return now;
        }
        assert!(Instant::now() < until, "no {what} within 10 s; received: {:#?}", names(&now));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(spans: &[Got]) -> Vec<String> {
    spans.iter().map(|s| format!("{}:{} {}<-{}", s.service, s.name, s.id, s.parent)).collect()
}

fn random_hex(len: usize) -> String {
    uuid::Uuid::new_v4().simple().to_string()[..len].to_string()
}

async fn post_traced(stack: &Stack, body: &Value, traceparent: &str) -> Value {
    let r = stack
        .http
        .post(format!("{}/v1/events", stack.producer_url))
        .bearer_auth(INTAKE_TOKEN)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .header("traceparent", traceparent)
        .json(body)
        .send()
        .await
        .expect("the producer answers");
    assert_eq!(r.status().as_u16(), 202);
    r.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_joiner_is_one_trace_from_the_intake_to_each_vendor_request_and_no_span_holds_a_credential() {
    let (endpoint, spans) = collector().await;
    let stack = Stack::start(
        StackOptions::new(Backend::Sqlite, "traces")
            .env("LIFECYCLE_TELEMETRY__OTLP_ENDPOINT", &endpoint)
            // Batches every 100 ms instead of 5 s: the test waits for them.
            .env("OTEL_BSP_SCHEDULE_DELAY", "100"),
    )
    .await;

    // The caller's own trace: the intake continues it.
    let (caller_trace, caller_span) = (random_hex(32), random_hex(16));
    let accepted = post_traced(
        &stack,
        &pipedrive_joiner("E-1", "ada@example.com", "Sales Rep"),
        &format!("00-{caller_trace}-{caller_span}-01"),
    )
    .await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(runs[0].state, RunState::Succeeded, "{:?}\n{}", runs[0].outcome, stack.logs());
    let run_id = runs[0].id.clone();

    let got = wait_for(&spans, "run span with its vendor requests", |s| {
        s.iter().any(|x| x.name == "run" && x.attr("run_id") == Some(run_id.as_str()))
            && s.iter().filter(|x| x.name == "vendor.request" && x.trace == caller_trace).count() >= 2
    })
    .await;
    let trace: Vec<&Got> = got.iter().filter(|s| s.trace == caller_trace).collect();
    let one = |name: &str| {
        let of: Vec<&&Got> = trace.iter().filter(|s| s.name == name).collect();
        assert_eq!(of.len(), 1, "one {name} span in the trace: {:#?}", names(&got));
        (**of[0]).clone()
    };

    // The parent chain: caller -> intake -> outbox.publish -> run -> step -> vendor.request.
    let intake = one("intake");
    assert_eq!((intake.service.as_str(), intake.parent.as_str()), ("lifecycle-producer", caller_span.as_str()));
    assert_eq!(intake.attr("http.response.status_code"), Some("202"));
    let publish = one("outbox.publish");
    assert_eq!((publish.service.as_str(), publish.parent.as_str()), ("lifecycle-producer", intake.id.as_str()));
    let run = one("run");
    assert_eq!((run.service.as_str(), run.parent.as_str()), ("lifecycle-worker", publish.id.as_str()));
    assert_eq!(run.attr("run_id"), Some(run_id.as_str()));
    let steps: Vec<&&Got> = trace.iter().filter(|s| s.name == "step").collect();
    assert!(!steps.is_empty(), "{:#?}", names(&got));
    assert!(steps.iter().all(|s| s.parent == run.id && s.service == "lifecycle-worker"), "{:#?}", names(&got));
    let vendor: Vec<&&Got> = trace.iter().filter(|s| s.name == "vendor.request").collect();
    for v in &vendor {
        // In a step, or (a cached catalogue read, such as Pipedrive's roles) in the run itself.
        assert!(
            steps.iter().any(|s| s.id == v.parent) || v.parent == run.id,
            "a vendor request outside the run: {v:#?}"
        );
        let method = v.attr("http.request.method").unwrap_or_default();
        assert!(["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&method), "{v:#?}");
        let template = v.attr("url.template").unwrap_or_default();
        assert!(template.starts_with("/pipedrive/api/v1/"), "{v:#?}");
        // Ids are templated: no segment but a version holds a digit.
        assert!(
            template.split('/').all(|seg| seg == "v1" || !seg.bytes().any(|b| b.is_ascii_digit())),
            "an id in the path template: {template}"
        );
        let status: u16 = v.attr("http.response.status_code").and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!((200..300).contains(&status), "{v:#?}");
        assert_eq!(v.attr("http.request.resend_count"), Some("0"));
    }
    assert!(vendor.iter().any(|v| v.attr("http.request.method") == Some("POST")), "the user was created: {vendor:#?}");
    assert!(
        vendor.iter().any(|v| steps.iter().any(|s| s.id == v.parent)),
        "the steps' own requests are their children: {:#?}",
        names(&got)
    );

    // A replayed run starts its own trace, linked to the original.
    let mut bad = pipedrive_joiner("E-2", "bob@example.com", "No Such Role");
    bad["employee"]["given_name"] = json!("Bob");
    let (bad_trace, bad_span) = (random_hex(32), random_hex(16));
    let accepted = post_traced(&stack, &bad, &format!("00-{bad_trace}-{bad_span}-01")).await;
    let runs = stack.wait_event(accepted["event_id"].as_str().unwrap(), Duration::from_secs(30)).await;
    assert_eq!(runs[0].state, RunState::Dead, "{:?}", runs[0].outcome);
    let dead_id = runs[0].id.clone();
    let replay = stack.ctl(&["dead", "replay", &dead_id, "--reason", "traces test"]).await;
    assert_eq!(replay.code, 0, "{replay:?}");
    let got = wait_for(&spans, "replayed run span", |s| {
        s.iter().filter(|x| x.name == "run" && x.attr("run_id") == Some(dead_id.as_str())).count() >= 2
    })
    .await;
    let bad_intake = got.iter().find(|s| s.name == "intake" && s.trace == bad_trace).expect("the second intake span");
    let replayed = got
        .iter()
        .find(|s| s.name == "run" && s.attr("run_id") == Some(dead_id.as_str()) && s.trace != bad_trace)
        .unwrap_or_else(|| panic!("the replay's run span has its own trace: {:#?}", names(&got)));
    assert!(replayed.parent.is_empty(), "the replay's run is a root: {replayed:#?}");
    assert_eq!(replayed.links, vec![(bad_trace.clone(), bad_intake.id.clone())], "linked to the original trace");

    // No span, event, link or resource holds a credential or a query string.
    for s in &got {
        for t in &s.texts {
            for secret in [INTAKE_TOKEN, PIPEDRIVE_TOKEN, "api_token=", "Bearer", "bearer ", "?"] {
                assert!(!t.contains(secret), "{:?} in span {} ({}): {t:?}", secret, s.name, s.service);
            }
        }
    }

    if let Ok(path) = std::env::var("LIFECYCLE_TRACE_DUMP") {
        let mut of_joiner: Vec<&Got> = got.iter().filter(|s| s.trace == caller_trace).collect();
        of_joiner.sort_by_key(|s| s.start_ns);
        let dump: Vec<Value> = of_joiner
            .iter()
            .map(|s| {
                json!({"service": s.service, "name": s.name, "id": s.id, "parent": s.parent, "trace": s.trace,
                       "start_ns": s.start_ns, "end_ns": s.end_ns, "attributes": s.attrs.iter().cloned().collect::<std::collections::BTreeMap<_, _>>()})
            })
            .collect();
        std::fs::write(&path, serde_json::to_string_pretty(&dump).unwrap()).unwrap();
    }
}
