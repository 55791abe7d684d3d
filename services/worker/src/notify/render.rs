//! The bodies a notification webhook is sent (docs/contract.md §7), its
//! signature, and the form of its URL that may be logged.

use hmac::{Hmac, Mac};
use lifecycle_config::notifications::{NotifyFormat, NotifyKind};
use lifecycle_ops::notifications::Listed;
use serde_json::{json, Value};
use sha2::Sha256;

/// The generic JSON body's `schema`: bumped only by an incompatible change.
pub const SCHEMA: &str = "lifecycle.notification/v1";
/// The signature header, like GitHub's `X-Hub-Signature-256`.
pub const SIGNATURE_HEADER: &str = "x-lifecycle-signature-256";
/// The message's id: the same on every delivery of one message.
pub const DELIVERY_HEADER: &str = "x-lifecycle-delivery";

/// One message, before it becomes a body.
pub struct Message<'a> {
    pub id: &'a str,
    pub kind: NotifyKind,
    /// The runs in it, oldest first; the first `list_runs` are listed.
    pub runs: &'a [Listed],
    pub list_runs: usize,
    /// The console's base address, without a trailing slash.
    pub console_url: Option<&'a str>,
}

impl Message<'_> {
    /// "30 runs need a person".
    pub fn title(&self) -> String {
        let n = self.runs.len();
        let runs = if n == 1 { "1 run".to_string() } else { format!("{n} runs") };
        let (one, many) = match self.kind {
            NotifyKind::NeedsManualAction => ("needs a person", "need a person"),
            NotifyKind::Dead => ("is dead (gave up)", "are dead (gave up)"),
            NotifyKind::Held => ("is held by the blast-radius guard", "are held by the blast-radius guard"),
            NotifyKind::AwaitingApproval => ("awaits approval", "await approval"),
        };
        format!("{runs} {}", if n == 1 { one } else { many })
    }

    fn run_url(&self, id: &str) -> Option<String> {
        self.console_url.map(|base| format!("{base}/runs/{id}"))
    }

    /// The console's list of runs in this state (at this vendor, when all are of one).
    pub fn list_url(&self) -> Option<String> {
        let base = self.console_url?;
        let mut url = format!("{base}/runs?state={}", self.kind.as_str());
        if let Some(first) = self.runs.first() {
            if self.runs.iter().all(|r| r.vendor == first.vendor) {
                url.push_str(&format!("&vendor={}", first.vendor.as_str()));
            }
        }
        Some(url)
    }

    fn listed(&self) -> &[Listed] {
        &self.runs[..self.runs.len().min(self.list_runs)]
    }
}

/// What the run says a person should know: its outcome, else its last error.
fn said(r: &Listed) -> &str {
    r.outcome.as_deref().or(r.last_error.as_deref()).unwrap_or("")
}

/// At most `max` characters, an ellipsis marking a cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The body in the webhook's format.
pub fn body(format: NotifyFormat, m: &Message<'_>) -> Value {
    match format {
        NotifyFormat::Json => json_body(m),
        NotifyFormat::Slack => slack_body(m),
    }
}

/// The generic JSON body (docs/contract.md §7).
pub fn json_body(m: &Message<'_>) -> Value {
    let runs: Vec<Value> = m
        .listed()
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "vendor": r.vendor.as_str(),
                "workflow": r.workflow.as_str(),
                "person": r.person_key,
                "message": said(r),
                "entered_at": r.entered_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "url": m.run_url(&r.id),
            })
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "id": m.id,
        "kind": m.kind.as_str(),
        "title": m.title(),
        "count": m.runs.len(),
        "runs": runs,
        "omitted": m.runs.len() - m.listed().len(),
        "links": { "runs": m.list_url() },
    })
}

/// Slack's mrkdwn treats these three as markup.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// What Slack's incoming webhooks take: `text` (the notification's fallback)
/// and `blocks`: a header, a section per listed run (its link, vendor,
/// workflow, person and message) and a context line for the rest.
pub fn slack_body(m: &Message<'_>) -> Value {
    let title = m.title();
    let mut blocks =
        vec![json!({"type": "header", "text": {"type": "plain_text", "text": cut(&title, 150), "emoji": false}})];
    for r in m.listed() {
        let what = format!("{} · {}", r.vendor.as_str(), r.workflow.as_str());
        let head = match m.run_url(&r.id) {
            Some(url) => format!("*<{url}|{what}>*"),
            None => format!("*{what}*"),
        };
        let message = said(r);
        let mut text = format!("{head}  {}", escape(&r.person_key));
        if !message.is_empty() {
            text.push_str(&format!("\n>{}", escape(&cut(message, 500)).replace('\n', "\n>")));
        }
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&text, 3000)}}));
    }
    let omitted = m.runs.len() - m.listed().len();
    let mut footer = Vec::new();
    if omitted > 0 {
        footer.push(format!("and {omitted} more"));
    }
    if let Some(url) = m.list_url() {
        footer.push(format!("<{url}|Open them in the console>"));
    }
    if !footer.is_empty() {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": footer.join(" · ")}]}));
    }
    json!({ "text": format!("lifecycle: {title}"), "blocks": blocks })
}

/// `sha256=<hex HMAC-SHA256 of body under secret>`: the receiver computes
/// the same over the bytes it got and compares in constant time.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// A webhook URL as logs may show it: its origin and its path's first
/// segment. Not the query (tokens), nor the rest of the path: Slack's
/// incoming-webhook URL carries its credential in the path
/// (`/services/T…/B…/<secret>`).
pub fn redact_url(url: &str) -> String {
    let Ok(u) = reqwest::Url::parse(url) else { return "[unparsable URL]".into() };
    let mut shown = format!("{}://{}", u.scheme(), u.host_str().unwrap_or(""));
    if let Some(port) = u.port() {
        shown.push_str(&format!(":{port}"));
    }
    let mut segments = u.path_segments().into_iter().flatten().filter(|s| !s.is_empty());
    if let Some(first) = segments.next() {
        shown.push('/');
        shown.push_str(first);
        if segments.next().is_some() {
            shown.push_str("/…");
        }
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use lifecycle_domain::{VendorKind, Workflow};

    fn run(i: usize, vendor: VendorKind) -> Listed {
        Listed {
            id: format!("run-{i}"),
            vendor,
            workflow: Workflow::Joiner,
            person_key: format!("p{i}@example.com"),
            outcome: Some(format!("Assign <Sales & Co> to p{i} by hand")),
            last_error: None,
            replays: 0,
            entered_at: Utc.with_ymd_and_hms(2026, 12, 7, 9, 0, i as u32 % 60).unwrap(),
        }
    }

    fn message(runs: &[Listed], console: Option<&'static str>) -> Message<'static> {
        // The tests' runs outlive the message: leak them for a 'static borrow.
        let runs: &'static [Listed] = Box::leak(runs.to_vec().into_boxed_slice());
        Message { id: "batch-1", kind: NotifyKind::NeedsManualAction, runs, list_runs: 20, console_url: console }
    }

    #[test]
    fn json_lists_the_first_runs_counts_all_and_links_the_console() {
        let runs: Vec<Listed> = (0..30).map(|i| run(i, VendorKind::Pipedrive)).collect();
        let m = message(&runs, Some("https://lc.example.com"));
        let b = json_body(&m);
        assert_eq!(b["schema"], SCHEMA);
        assert_eq!((b["id"].as_str(), b["kind"].as_str()), (Some("batch-1"), Some("needs_manual_action")));
        assert_eq!((b["count"].as_u64(), b["omitted"].as_u64()), (Some(30), Some(10)));
        assert_eq!(b["title"], "30 runs need a person");
        let listed = b["runs"].as_array().unwrap();
        assert_eq!(listed.len(), 20);
        assert_eq!(
            listed[0],
            json!({
                "id": "run-0", "vendor": "pipedrive", "workflow": "joiner", "person": "p0@example.com",
                "message": "Assign <Sales & Co> to p0 by hand", "entered_at": "2026-12-07T09:00:00.000Z",
                "url": "https://lc.example.com/runs/run-0",
            })
        );
        assert_eq!(b["links"]["runs"], "https://lc.example.com/runs?state=needs_manual_action&vendor=pipedrive");

        // Two vendors: the list is not narrowed to one; no console: no links.
        let mixed = [run(1, VendorKind::Pipedrive), run(2, VendorKind::Jira)];
        let b = json_body(&message(&mixed, Some("https://lc.example.com")));
        assert_eq!(b["links"]["runs"], "https://lc.example.com/runs?state=needs_manual_action");
        let b = json_body(&message(&mixed, None));
        assert!(b["links"]["runs"].is_null() && b["runs"][0]["url"].is_null());
        assert_eq!(b["title"], "2 runs need a person");
    }

    #[test]
    fn slack_has_a_fallback_text_a_header_a_section_per_run_and_the_rest_linked() {
        let runs: Vec<Listed> = (0..30).map(|i| run(i, VendorKind::Pipedrive)).collect();
        let b = slack_body(&message(&runs, Some("https://lc.example.com")));
        assert_eq!(b["text"], "lifecycle: 30 runs need a person");
        let blocks = b["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 1 + 20 + 1, "header, 20 runs, the footer");
        assert_eq!(blocks[0]["type"], "header");
        assert_eq!(blocks[0]["text"]["text"], "30 runs need a person");
        assert_eq!(
            blocks[1]["text"]["text"],
            "*<https://lc.example.com/runs/run-0|pipedrive · joiner>*  p0@example.com\n>Assign &lt;Sales &amp; Co&gt; to p0 by hand",
            "mrkdwn's markup characters are escaped in what the run says"
        );
        assert_eq!(
            blocks[21]["elements"][0]["text"],
            "and 10 more · <https://lc.example.com/runs?state=needs_manual_action&vendor=pipedrive|Open them in the console>"
        );
        assert!(blocks.len() <= 50, "Slack takes at most 50 blocks");

        let one = [run(0, VendorKind::Jira)];
        let mut m = message(&one, None);
        m.kind = NotifyKind::Held;
        let b = slack_body(&m);
        assert_eq!(b["text"], "lifecycle: 1 run is held by the blast-radius guard");
        assert_eq!(b["blocks"].as_array().unwrap().len(), 2, "no footer: nothing omitted, no console");
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(
            signature(b"Jefe", b"what do ya want for nothing!"),
            signature(b"Jefe", b"what do ya want for nothing?")
        );
    }

    #[test]
    fn a_logged_url_shows_neither_its_query_nor_its_path_beyond_the_first_segment() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"),
            "https://hooks.slack.com/services/…"
        );
        assert_eq!(redact_url("https://alerts.example.com/hook?token=s3cret"), "https://alerts.example.com/hook");
        assert_eq!(redact_url("http://user:pw@127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(redact_url("not a url s3cret"), "[unparsable URL]");
    }
}
