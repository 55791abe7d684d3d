//! The integrators' pages' copy-paste examples are true: every fenced block marked
//! ```` ```sh example expect=STATUS ```` in `docs/integrators/*.md` is a `curl` command that this test
//! sends, page by page and in the page's order, to the producer in process (its own `build`, on a
//! free port, SQLite, no broker: events wait in the outbox), asserting the status the page
//! promises. An example edited into something the intake refuses fails here, naming the page and
//! line.
//!
//! The commands are split as a shell would (`shlex`) after the page's variables are put in:
//! `$INTAKE`, `$TOKEN`, `$SCIM_TOKEN`, `$WEBHOOK_USER`, `$WEBHOOK_PASSWORD`, and from earlier answers
//! `$EVENT_ID` (an intake answer's `event_id`) and `$USER_ID` (a SCIM user's `id`). Of curl's
//! options the examples may use `-X`, `-H`, `-d`, `-u`, `-G` with `--data-urlencode`, and the
//! silent ones (`-s`, `-S`, `-D -`); anything else fails the test rather than being ignored.

mod common;

use lifecycle_store::testing::{Backend, TestDb};
use pulldown_cmark::{CodeBlockKind, Event, Parser, Tag, TagEnd};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const INTAKE_TOKEN: &str = "demo-intake-token";
const SCIM_TOKEN: &str = "docs-scim-token-0123456789";
const WEBHOOK_USER: &str = "pipedrive";
const WEBHOOK_PASSWORD: &str = "docs-webhook-password-0123456789";

/// One marked block: where it is, the command, the status it promises.
struct Example {
    at: String,
    command: String,
    expect: u16,
}

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/integrators")
}

/// The marked blocks of one page, in order.
fn examples(page: &Path) -> Vec<Example> {
    let text = std::fs::read_to_string(page).unwrap();
    let name = page.file_name().unwrap().to_string_lossy().into_owned();
    let mut out = Vec::new();
    let mut open: Option<(usize, u16, String)> = None;
    for (event, range) in Parser::new(&text).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info))) => {
                let mut words = info.split_whitespace();
                if words.next() == Some("sh") && words.next() == Some("example") {
                    let expect = words
                        .find_map(|w| w.strip_prefix("expect="))
                        .and_then(|s| s.parse().ok())
                        .unwrap_or_else(|| panic!("{name}: an example block needs expect=STATUS: `{info}`"));
                    let line = text[..range.start].matches('\n').count() + 1;
                    open = Some((line, expect, String::new()));
                }
            }
            Event::Text(t) => {
                if let Some((_, _, body)) = open.as_mut() {
                    body.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => {
                if let Some((line, expect, command)) = open.take() {
                    out.push(Example { at: format!("docs/integrators/{name}:{line}"), command, expect });
                }
            }
            _ => {}
        }
    }
    out
}

/// A curl command line as the request it sends.
struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
    basic: Option<(String, String)>,
}

fn parse_curl(at: &str, command: &str) -> Request {
    // Line continuations, then shell words.
    let joined = command.replace("\\\n", " ");
    let words = shlex::split(&joined).unwrap_or_else(|| panic!("{at}: the command does not split as shell words"));
    let mut words = words.into_iter();
    assert_eq!(words.next().as_deref(), Some("curl"), "{at}: an example is one curl command");
    let (mut method, mut url, mut headers, mut body, mut basic) = (None, None, Vec::new(), None, None);
    let (mut get, mut query) = (false, Vec::new());
    while let Some(w) = words.next() {
        let mut value = || words.next().unwrap_or_else(|| panic!("{at}: {w} needs a value"));
        match w.as_str() {
            "-s" | "-S" | "-sS" | "-sf" | "-sSf" => {}
            "-D" => assert_eq!(value(), "-", "{at}: -D only as `-D -`"),
            "-X" => method = Some(value()),
            "-H" => {
                let h = value();
                let (k, v) = h.split_once(':').unwrap_or_else(|| panic!("{at}: a header without ':': {h}"));
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
            "-d" | "--data" | "--data-raw" => body = Some(value()),
            "--data-urlencode" => query.push(value()),
            "-G" => get = true,
            "-u" => {
                let v = value();
                let (u, p) = v.split_once(':').unwrap_or_else(|| panic!("{at}: -u USER:PASSWORD"));
                basic = Some((u.to_string(), p.to_string()));
            }
            other if other.starts_with("http") => url = Some(other.to_string()),
            other => panic!("{at}: curl option `{other}` is not one this test knows; add it here"),
        }
    }
    let mut url = url.unwrap_or_else(|| panic!("{at}: no URL"));
    if get {
        let encoded: Vec<String> = query
            .iter()
            .map(|q| match q.split_once('=') {
                Some((k, v)) => format!("{k}={}", urlencode(v)),
                None => urlencode(q),
            })
            .collect();
        url = format!("{url}?{}", encoded.join("&"));
    } else {
        assert!(query.is_empty(), "{at}: --data-urlencode without -G");
    }
    let method = method.unwrap_or_else(|| if body.is_some() { "POST".into() } else { "GET".into() });
    Request { method, url, headers, body, basic }
}

/// What curl's `--data-urlencode` does to a value.
fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A producer with everything the pages speak of: the intake, SCIM with the example mapping,
/// the Pipedrive webhook receiver.
async fn producer(db: &TestDb) -> lifecycle_producer::Running {
    let mapping = lifecycle_config::scim::example_mapping();
    let settings = common::settings(
        &db.url,
        &format!(
            r#"
            [producer]
            intake_tokens = ["{INTAKE_TOKEN}"]
            [producer.pipedrive_webhook]
            username = "{WEBHOOK_USER}"
            password = "{WEBHOOK_PASSWORD}"
            [scim]
            tokens = ["{SCIM_TOKEN}"]
            public_url = "https://lifecycle.example.com"
            {mapping}
            "#
        ),
    );
    lifecycle_producer::build(settings, lifecycle_telemetry::BuildInfo::unknown()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_example_on_the_integrators_pages_gets_the_status_it_promises() {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(docs_dir())
        .expect("docs/integrators/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    let http = reqwest::Client::new();
    let mut ran = 0;
    let mut failures = Vec::new();
    for page in pages {
        let examples = examples(&page);
        if examples.is_empty() {
            continue;
        }
        // A fresh producer and database per page: each page's examples build on each other only.
        let db = TestDb::new(Backend::Sqlite).await;
        let running = producer(&db).await;
        let mut vars: HashMap<&str, String> = HashMap::from([
            ("INTAKE", format!("http://{}", running.addr)),
            ("TOKEN", INTAKE_TOKEN.to_string()),
            ("SCIM_TOKEN", SCIM_TOKEN.to_string()),
            ("WEBHOOK_USER", WEBHOOK_USER.to_string()),
            ("WEBHOOK_PASSWORD", WEBHOOK_PASSWORD.to_string()),
        ]);
        for ex in examples {
            // Longest names first, so `$INTAKE` does not eat the front of `$INTAKE_TOKEN`.
            let mut names: Vec<&str> = vars.keys().copied().collect();
            names.sort_by_key(|n| std::cmp::Reverse(n.len()));
            let mut command = ex.command.clone();
            for n in names {
                command = command.replace(&format!("${n}"), &vars[n]);
            }
            assert!(!command.contains('$'), "{}: a variable this test does not know: {command}", ex.at);
            let req = parse_curl(&ex.at, &command);
            let mut builder = http.request(req.method.parse().unwrap(), &req.url);
            for (k, v) in &req.headers {
                builder = builder.header(k, v);
            }
            if let Some((u, p)) = &req.basic {
                builder = builder.basic_auth(u, Some(p));
            }
            if let Some(b) = &req.body {
                builder = builder.body(b.clone());
            }
            let res = builder.send().await.unwrap_or_else(|e| panic!("{}: {e}", ex.at));
            let status = res.status().as_u16();
            let text = res.text().await.unwrap_or_default();
            ran += 1;
            eprintln!("{} -> {status} {text}", ex.at);
            if status != ex.expect {
                failures.push(format!("{}: expected {}, got {status}: {text}", ex.at, ex.expect));
            }
            if let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) {
                if let Some(id) = json["event_id"].as_str() {
                    vars.insert("EVENT_ID", id.to_string());
                }
                if req.url.contains("/scim/v2/Users") && status == 201 {
                    vars.insert("USER_ID", json["id"].as_str().unwrap_or_default().to_string());
                }
            }
        }
        running.shutdown().await;
    }
    assert!(ran >= 10, "only {ran} examples found: are the pages' blocks still marked `sh example expect=...`?");
    assert!(
        failures.is_empty(),
        "{} of {ran} examples did not get their status:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn curl_lines_become_requests() {
    let r = parse_curl(
        "here",
        "curl -sS -X POST \"http://h/v1/events\" \\\n  -H 'Content-Type: application/json' -d '{\"a\": 1}'",
    );
    assert_eq!((r.method.as_str(), r.url.as_str()), ("POST", "http://h/v1/events"));
    assert_eq!(r.headers, vec![("Content-Type".to_string(), "application/json".to_string())]);
    assert_eq!(r.body.as_deref(), Some("{\"a\": 1}"));
    let g = parse_curl("here", "curl -sS -G http://h/Users --data-urlencode 'filter=userName eq \"a@b\"'");
    assert_eq!(g.method, "GET");
    assert_eq!(g.url, "http://h/Users?filter=userName%20eq%20%22a%40b%22");
}
