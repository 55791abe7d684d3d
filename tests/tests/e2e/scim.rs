//! SCIM 2.0 (docs/contract.md §6) over the real processes: the request
//! sequences Okta and Microsoft Entra send, in their documented shapes
//! (Entra's quirks included), each ending in the right runs and the right
//! accounts at the simulated vendors.

use lifecycle_domain::{RunState, VendorKind};
use lifecycle_e2e::sim::{list, pd_users};
use lifecycle_e2e::{both_databases, Backend, Stack, StackOptions};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);
const TOKEN: &str = "e2e-scim-token-0123456789";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

struct Scim {
    stack: Stack,
    _config: tempfile::TempDir,
}

async fn start(backend: Backend, name: &str) -> Scim {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("scim.toml");
    // Sales → Pipedrive "Sales Rep", SOC → CrowdStrike falcon_analyst, everyone → Calendly.
    let mapping = lifecycle_config::scim::example_mapping();
    std::fs::write(&file, format!("[scim]\ntokens = [\"{TOKEN}\"]\n{mapping}")).unwrap();
    let opts = StackOptions::new(backend, name).env("LIFECYCLE_CONFIG", file.to_str().unwrap());
    Scim { stack: Stack::start(opts).await, _config: dir }
}

impl Scim {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut r =
            self.stack.http.request(method, format!("{}/scim/v2{path}", self.stack.producer_url)).bearer_auth(TOKEN);
        if let Some(b) = body {
            r = r.header("content-type", "application/scim+json").body(b.to_string());
        }
        let res = r.send().await.expect("the producer answers");
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("SCIM answers JSON") })
    }
    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }
    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, answer) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert_eq!(status, 201, "POST {path}: {answer}");
        answer
    }
    async fn patch(&self, path: &str, ops: Value) -> Value {
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        let (status, answer) = self.call(reqwest::Method::PATCH, path, Some(body)).await;
        assert_eq!(status, 200, "PATCH {path}: {answer}");
        answer
    }

    /// The SCIM events so far, (type, vendors), oldest first.
    async fn events(&self) -> Vec<(String, String, Vec<String>)> {
        let db = &self.stack.store;
        let sql = "SELECT id, event_type, payload FROM events WHERE source = 'scim' ORDER BY id";
        let rows = db.query_all(Statement::from_string(db.get_database_backend(), sql.to_string())).await.unwrap();
        rows.iter()
            .map(|r| {
                let payload: Value = serde_json::from_str(&r.try_get::<String>("", "payload").unwrap()).unwrap();
                let vendors = payload["apps"].as_object().unwrap().keys().cloned().collect();
                (r.try_get("", "id").unwrap(), r.try_get("", "event_type").unwrap(), vendors)
            })
            .collect()
    }

    /// Waits for the `n`-th SCIM event (1-based) to be `kind` at `vendors`, and for its runs to succeed.
    async fn expect_event(&self, n: usize, kind: &str, vendors: &[&str]) -> Vec<lifecycle_store::entity::run::Model> {
        let events = lifecycle_e2e::eventually(WAIT, "the SCIM event", || async {
            let e = self.events().await;
            (e.len() >= n).then_some(e)
        })
        .await;
        assert_eq!(events.len(), n, "exactly {n} SCIM events so far: {events:?}");
        let (id, ty, v) = &events[n - 1];
        assert_eq!(
            (ty.as_str(), v.iter().map(String::as_str).collect::<Vec<_>>()),
            (kind, vendors.to_vec()),
            "{events:?}"
        );
        let runs = self.stack.wait_event(id, WAIT).await;
        for r in &runs {
            assert_eq!(
                r.state,
                RunState::Succeeded,
                "{kind} at {}: {:?} {:?}\n{}",
                r.vendor,
                r.outcome,
                r.last_error,
                self.stack.logs()
            );
        }
        runs
    }
}

fn cs_user<'a>(state: &'a Value, email: &str) -> Option<&'a Value> {
    list(state, "crowdstrike", "users")
        .into_iter()
        .find(|u| u["username"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(email)))
}

fn pending_invitations(state: &Value, email: &str) -> usize {
    list(state, "calendly", "invitations")
        .into_iter()
        .filter(|i| i["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)) && i["status"] == "pending")
        .count()
}

/// Okta: developer.okta.com/docs/reference/scim/scim-20 — a lookup by
/// userName, create, deactivate and reactivate with path-less replaces,
/// group push (create, add members, rename with the id in the value, remove
/// by filter), and a delete.
async fn okta_provisions_a_user_from_creation_to_deletion(backend: Backend) {
    let s = start(backend, "scim-okta").await;
    const EMAIL: &str = "ada.okta@example.com";
    let found = s
        .get(&format!("/Users?filter={}&startIndex=1&count=100", urlencode(&format!("userName eq \"{EMAIL}\""))))
        .await;
    assert_eq!(found["totalResults"], 0);
    let user = s
        .post(
            "/Users",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": EMAIL,
                "name": {"givenName": "Ada", "familyName": "Lovelace"},
                "emails": [{"primary": true, "value": EMAIL, "type": "work"}],
                "displayName": "Ada Lovelace",
                "locale": "en-US",
                "externalId": "00ujl29u0le5T6Aj10h7",
                "groups": [],
                "password": "1mJ0T3Ys",
                "active": true
            }),
        )
        .await;
    assert!(user.get("password").is_none(), "a password is never returned");
    let uid = user["id"].as_str().unwrap().to_string();
    let runs = s.expect_event(1, "joiner", &["calendly"]).await;
    assert_eq!(runs[0].access.map(|a| a.as_str()), Some("invited"));
    assert_eq!(pending_invitations(&s.stack.sim_state().await, EMAIL), 1);

    let me = format!("/Users/{uid}");
    s.patch(&me, json!([{"op": "replace", "value": {"active": false}}])).await;
    s.expect_event(2, "leaver", &["calendly"]).await;
    assert_eq!(pending_invitations(&s.stack.sim_state().await, EMAIL), 0);
    s.patch(&me, json!([{"op": "replace", "value": {"active": true}}])).await;
    s.expect_event(3, "joiner", &["calendly"]).await;

    // Group push.
    let groups = s.get(&format!("/Groups?filter={}", urlencode("displayName eq \"Sales\""))).await;
    assert_eq!(groups["totalResults"], 0);
    let group = s
        .post(
            "/Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Sales", "members": []}),
        )
        .await;
    let gid = group["id"].as_str().unwrap().to_string();
    let g = format!("/Groups/{gid}");
    s.patch(&g, json!([{"op": "replace", "value": {"id": gid, "displayName": "Sales"}}])).await;
    s.patch(&g, json!([{"op": "add", "path": "members", "value": [{"value": uid, "display": EMAIL}]}])).await;
    let runs = s.expect_event(4, "joiner", &["pipedrive"]).await;
    assert_eq!(runs[0].vendor, VendorKind::Pipedrive);
    let state = s.stack.sim_state().await;
    let pd = pd_users(&state, EMAIL);
    assert_eq!(pd.len(), 1, "one Pipedrive user");
    assert_eq!(pd[0]["active_flag"], true);
    let listed = s.get("/Groups?excludedAttributes=members&startIndex=1&count=100").await;
    assert!(listed["Resources"][0].get("members").is_none());

    // Removed from the group by filter: Pipedrive is taken away, Calendly stays.
    s.patch(&g, json!([{"op": "remove", "path": format!("members[value eq \"{uid}\"]")}])).await;
    s.expect_event(5, "leaver", &["pipedrive"]).await;
    assert_eq!(pd_users(&s.stack.sim_state().await, EMAIL)[0]["active_flag"], false);

    let (status, _) = s.call(reqwest::Method::DELETE, &me, None).await;
    assert_eq!(status, 204);
    s.expect_event(6, "leaver", &["calendly"]).await;
    assert_eq!(s.call(reqwest::Method::GET, &me, None).await.0, 404);
    let (status, _) = s.call(reqwest::Method::DELETE, &g, None).await;
    assert_eq!(status, 204);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.events().await.len(), 6, "deleting an empty group makes no event");
}

/// Microsoft Entra: learn.microsoft.com/entra/identity/app-provisioning/use-scim-to-provision-users-and-groups —
/// its create (enterprise extension, meta), capitalised ops, an attribute
/// change that gives nobody anything, members added and removed with value
/// lists, and "active": "False" as a string.
async fn entra_provisions_with_its_quirks(backend: Backend) {
    let s = start(backend, "scim-entra").await;
    const EMAIL: &str = "lin.entra@example.com";
    let found = s.get(&format!("/Users?filter={}", urlencode(&format!("userName eq \"{EMAIL}\"")))).await;
    assert_eq!(found["totalResults"], 0);
    let user = s
        .post(
            "/Users",
            json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
                "userName": EMAIL,
                "active": true,
                "displayName": "Lin Entra",
                "emails": [{"primary": true, "type": "work", "value": EMAIL}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "Lin Entra", "familyName": "Entra", "givenName": "Lin"},
                "roles": [],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984", "department": "Security"}
            }),
        )
        .await;
    let uid = user["id"].as_str().unwrap().to_string();
    assert_eq!(user["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["employeeNumber"], "701984");
    s.expect_event(1, "joiner", &["calendly"]).await;

    let groups =
        s.get(&format!("/Groups?excludedAttributes=members&filter={}", urlencode("displayName eq \"SOC\""))).await;
    assert_eq!(groups["totalResults"], 0);
    let group = s
        .post(
            "/Groups",
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                   "displayName": "SOC", "meta": {"resourceType": "Group"}, "members": []}),
        )
        .await;
    let gid = group["id"].as_str().unwrap().to_string();
    let g = format!("/Groups/{gid}");
    s.patch(&g, json!([{"op": "Add", "path": "members", "value": [{"value": uid}]}])).await;
    let runs = s.expect_event(2, "joiner", &["crowdstrike"]).await;
    assert_eq!(runs[0].access.map(|a| a.as_str()), Some("active"));
    let state = s.stack.sim_state().await;
    let roles = &cs_user(&state, EMAIL).expect("a Falcon user")["roles"];
    assert_eq!(roles, &json!(["falcon_analyst"]));
    // Entra's membership check.
    let check = s
        .get(&format!(
            "/Groups?excludedAttributes=members&filter={}",
            urlencode(&format!("id eq \"{gid}\" and members[value eq \"{uid}\"]"))
        ))
        .await;
    assert_eq!(check["totalResults"], 1);

    // Attributes nobody's access depends on: stored, no event.
    let me = format!("/Users/{uid}");
    let changed = s
        .patch(
            &me,
            json!([
                {"op": "Replace", "path": "displayName", "value": "Lin E."},
                {"op": "Add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 425 555 0100"},
                {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "SecOps"}
            ]),
        )
        .await;
    assert_eq!(changed["displayName"], "Lin E.");
    assert_eq!(s.get(&me).await["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["department"], "SecOps");

    // Removed from SOC with a value list: CrowdStrike is taken away.
    s.patch(&g, json!([{"op": "Remove", "path": "members", "value": [{"value": uid}]}])).await;
    s.expect_event(3, "leaver", &["crowdstrike"]).await;
    // Disabled, the boolean as a string.
    let off = s.patch(&me, json!([{"op": "Replace", "path": "active", "value": "False"}])).await;
    assert_eq!(off["active"], false);
    s.expect_event(4, "leaver", &["calendly"]).await;
    let state = s.stack.sim_state().await;
    assert!(
        cs_user(&state, EMAIL).is_none_or(|u| u["roles"].as_array().is_none_or(|r| r.is_empty())),
        "{:?}",
        cs_user(&state, EMAIL)
    );
    assert_eq!(pending_invitations(&state, EMAIL), 0);
    let filtered = s.get(&format!("/Users?filter={}", urlencode(&format!("userName eq \"{EMAIL}\"")))).await;
    assert_eq!(filtered["Resources"][0]["active"], false, "a disabled user reads back disabled");
}

fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Scim {
    /// A raw request: `body` sent as it is, with `headers`; the status, `Location` and the body's text.
    async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> (u16, Option<String>, String) {
        let mut r =
            self.stack.http.request(method, format!("{}/scim/v2{path}", self.stack.producer_url)).bearer_auth(TOKEN);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/scim+json").body(b);
        }
        let res = r.send().await.expect("the producer answers");
        let location = res.headers().get("location").map(|l| l.to_str().unwrap().to_string());
        (res.status().as_u16(), location, res.text().await.unwrap())
    }
}

fn user(email: &str, active: bool) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": email, "active": active,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"value": email, "type": "work", "primary": true}]
    })
}

/// What a database says when it refuses a value, never to reach a client.
fn assert_no_database_words(body: &str) {
    for word in
        ["UTF8", "0x00", "invalid byte", "sqlx", "Query Error", "error returned from database", "null character"]
    {
        assert!(!body.contains(word), "the database's words reached the client ({word}): {body}");
    }
}

/// Issue 25 (LOW 4, 5, 6): a password under its URN is not kept; repeated
/// keys are refused; Location and meta.location never come from the
/// client's Host or X-Forwarded-Proto; invisible characters in the names of
/// a user who makes no event are refused as the intake refuses them; a NUL in
/// an id or a filter is a SCIM 400 without the database's words.
async fn scim_refuses_what_it_must_not_keep(backend: Backend) {
    let s = start(backend, "scim-refusals").await;
    let hdrs = [("host", "evil.example"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "evil.example")];

    // The password, fully qualified.
    let mut body = user("urn.pw@example.com", false);
    body["urn:ietf:params:scim:schemas:core:2.0:User:password"] = json!("hunter2-urn");
    let (status, location, text) = s.raw(reqwest::Method::POST, "/Users", Some(body.to_string()), &hdrs).await;
    assert_eq!(status, 201, "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let created: Value = serde_json::from_str(&text).unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    let read = s.raw(reqwest::Method::GET, &format!("/Users/{id}"), None, &hdrs).await.2;
    assert!(!read.contains("hunter2"), "GET gives the password back: {read}");
    // Location: not the client's Host, not its scheme.
    let location = location.expect("201 has a Location");
    assert_eq!(location, format!("/scim/v2/Users/{id}"), "Location comes from the request");
    assert_eq!(created["meta"]["location"], location.as_str());
    assert!(!read.contains("evil.example"), "{read}");

    // Repeated keys.
    let dup = r#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"dup@example.com","active":true,"active":false,"name":{"givenName":"A","familyName":"B"}}"#;
    let (status, _, text) = s.raw(reqwest::Method::POST, "/Users", Some(dup.to_string()), &[]).await;
    assert_eq!(status, 400, "{text}");
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["scimType"], "invalidSyntax", "{text}");
    let dup_patch = format!(
        r#"{{"schemas":["{PATCH_OP}"],"Operations":[{{"op":"replace","value":{{"active":true}},"value":{{"active":false}}}}]}}"#
    );
    let (status, _, text) = s.raw(reqwest::Method::PATCH, &format!("/Users/{id}"), Some(dup_patch), &[]).await;
    assert_eq!(status, 400, "{text}");

    // Invisible characters in the names of an inactive user (no event made).
    for (at, value) in [("givenName", "Ada\u{202e}"), ("familyName", "\u{200b}Lovelace")] {
        let mut body = user("bidi@example.com", false);
        body["name"][at] = json!(value);
        let (status, _, text) = s.raw(reqwest::Method::POST, "/Users", Some(body.to_string()), &[]).await;
        assert_eq!(status, 400, "{at}: {text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["scimType"], "invalidValue");
    }
    let bidi = json!([{"op": "replace", "path": "name.givenName", "value": "A\u{2066}da"}]);
    let body = json!({"schemas": [PATCH_OP], "Operations": bidi}).to_string();
    let (status, _, text) = s.raw(reqwest::Method::PATCH, &format!("/Users/{id}"), Some(body), &[]).await;
    assert_eq!(status, 400, "{text}");
    assert!(!s.get(&format!("/Users/{id}")).await.to_string().contains('\u{2066}'));

    // A NUL (or another control character) in an id, a filter, a value.
    for path in [
        "/Users/a%00b".to_string(),
        "/Groups/a%00b".to_string(),
        format!("/Users?filter={}", urlencode(r#"userName eq "a\u0000b""#)),
        format!("/Users?filter={}", urlencode("id eq \"a\u{0}b\"")),
        format!("/Groups?filter={}", urlencode(r#"externalId eq "a\u0000b""#)),
    ] {
        let (status, _, text) = s.raw(reqwest::Method::GET, &path, None, &[]).await;
        assert_eq!(status, 400, "GET {path}: {text}");
        assert_no_database_words(&text);
    }
    for method in [reqwest::Method::PATCH, reqwest::Method::DELETE] {
        let body = (method == reqwest::Method::PATCH).then(|| {
            json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "active", "value": true}]})
                .to_string()
        });
        let (status, _, text) = s.raw(method.clone(), "/Users/a%00b", body, &[]).await;
        assert_eq!(status, 400, "{method} {text}");
        assert_no_database_words(&text);
    }
    let mut nul = user("nul@example.com", true);
    nul["externalId"] = json!("x\u{0}y");
    nul["title"] = json!("a\u{0}b");
    let (status, _, text) = s.raw(reqwest::Method::POST, "/Users", Some(nul.to_string()), &[]).await;
    assert_eq!(status, 400, "{text}");
    assert_no_database_words(&text);
    let members = json!([{"op": "add", "path": "members", "value": [{"value": "a\u{0}b"}]}]);
    let group = s
        .post("/Groups", json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Nul"}))
        .await;
    let body = json!({"schemas": [PATCH_OP], "Operations": members}).to_string();
    let gid = group["id"].as_str().unwrap();
    let (status, _, text) = s.raw(reqwest::Method::PATCH, &format!("/Groups/{gid}"), Some(body), &[]).await;
    assert_eq!(status, 400, "{text}");
    assert_no_database_words(&text);
}

/// Issue 25 (MEDIUM 4): a PATCH adding many list elements is linear, bounded
/// (MAX_ELEMENTS; past it a fast 400 tooMany), and does not stall a
/// concurrent intake POST.
async fn a_large_scim_patch_stalls_nothing(backend: Backend) {
    let s = start(backend, "scim-large-patch").await;
    let created = s.post("/Users", user("many@example.com", false)).await;
    let id = created["id"].as_str().unwrap().to_string();
    let emails = |n: usize| -> Value { Value::Array((0..n).map(|i| json!({"value": format!("e{i}")})).collect()) };
    let ops = |n: usize| {
        json!({"schemas": [PATCH_OP], "Operations": [{"op": "add", "path": "emails", "value": emails(n)}]}).to_string()
    };
    let (at_limit, too_many) = (ops(10_000), ops(25_000));
    assert!(too_many.len() < 512 * 1024, "under the body limit: {}", too_many.len());
    let joiner = json!({
        "type": "joiner",
        "employee": {"id": "E-STALL", "email": "stall@example.com", "given_name": "Ada", "family_name": "Lovelace"},
        "apps": {"calendly": {}}
    });
    for (n, body) in [(25_000, too_many), (10_000, at_limit)] {
        let path = format!("/Users/{id}");
        let patch = async {
            let start = std::time::Instant::now();
            let answer = s.raw(reqwest::Method::PATCH, &path, Some(body), &[]).await;
            (answer, start.elapsed())
        };
        let intake = async {
            // Sent once the PATCH is under way.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let start = std::time::Instant::now();
            let r = s.stack.post_event(&joiner, &format!("stall-{n}")).await;
            (r.status().as_u16(), start.elapsed())
        };
        let (((status, _, text), patch_took), (intake_status, intake_took)) = tokio::join!(patch, intake);
        if n > 10_000 {
            assert_eq!(status, 400, "{text}");
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap()["scimType"], "tooMany", "{text}");
        } else {
            assert_eq!(status, 200, "{}", &text[..text.len().min(500)]);
        }
        assert!(patch_took < Duration::from_secs(3), "a PATCH of {n} elements took {patch_took:?}");
        assert!([200, 202].contains(&intake_status), "{intake_status}");
        assert!(intake_took < Duration::from_secs(2), "the intake POST waited {intake_took:?} beside a PATCH of {n}");
    }
    let user = s.get(&format!("/Users/{id}")).await;
    assert_eq!(user["emails"].as_array().unwrap().len(), 10_001);
}

both_databases!(
    okta_provisions_a_user_from_creation_to_deletion,
    entra_provisions_with_its_quirks,
    scim_refuses_what_it_must_not_keep,
    a_large_scim_patch_stalls_nothing
);
