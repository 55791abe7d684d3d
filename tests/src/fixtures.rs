//! The events and webhook bodies the end-to-end tests send (the contract's examples, Pipedrive
//! joiners and leavers, real Pipedrive webhook fixtures), and reading the simulator's call log.

use serde_json::{json, Value};

/// A fixture from `tests/fixtures/pipedrive-webhooks/`, about the Pipedrive
/// user `user_id` with address `email` (ids and addresses put in where the
/// fixture has them).
pub fn pipedrive_webhook_fixture(name: &str, user_id: i64, email: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pipedrive-webhooks").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut v: Value = serde_json::from_str(&text).expect("a fixture is JSON");
    let v2 = v["meta"]["version"].is_string();
    if v2 {
        v["meta"]["entity_id"] = json!(user_id.to_string());
    } else {
        v["meta"]["id"] = json!(user_id);
    }
    for side in ["current", "previous", "data"] {
        let objects: Vec<&mut Value> = match v.get_mut(side) {
            Some(Value::Array(items)) => items.iter_mut().collect(),
            Some(o @ Value::Object(_)) => vec![o],
            _ => vec![],
        };
        for o in objects {
            if o.get("id").is_some() {
                o["id"] = json!(user_id);
            }
            if o.get("email").is_some() {
                o["email"] = json!(email);
            }
        }
    }
    v
}

/// The contract's example event (docs/contract.md §1): a joiner touching every vendor.
pub fn contract_joiner() -> Value {
    json!({
      "type": "joiner",
      "occurred_at": "2026-11-22T09:00:00Z",
      "employee": {
        "id": "E-1001",
        "email": "ada@example.com",
        "given_name": "Ada",
        "family_name": "Lovelace"
      },
      "successor_email": "grace@example.com",
      "apps": {
        "pipedrive":   { "role": "Sales Rep" },
        "crowdstrike": { "roles": ["falcon_analyst"] },
        "jira":        { "products": ["jira-software"], "groups": ["276f955c-63d7-42c8-9520-92d01dca0625"] },
        "calendly":    {},
        "circleci":    { "login": "ada-gh" },
        "github":      { "login": "ada-gh", "role": "member", "teams": ["platform"] }
      }
    })
}

/// The same person leaving: the contract's example as a leaver.
pub fn contract_leaver() -> Value {
    let mut e = contract_joiner();
    e["type"] = json!("leaver");
    e["occurred_at"] = json!("2026-11-22T18:00:00Z");
    e
}

/// A joiner event of the contract's shape, for Pipedrive only.
pub fn pipedrive_joiner(id: &str, email: &str, role: &str) -> Value {
    json!({
        "type": "joiner",
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": { "id": id, "email": email, "given_name": "Ada", "family_name": "Lovelace" },
        "apps": { "pipedrive": { "role": role } }
    })
}

/// A leaver event for Pipedrive, optionally naming a successor.
pub fn pipedrive_leaver(id: &str, email: &str, successor: Option<&str>) -> Value {
    let mut v = json!({
        "type": "leaver",
        "occurred_at": "2026-11-22T18:00:00Z",
        "employee": { "id": id, "email": email },
        "apps": { "pipedrive": {} }
    });
    if let Some(s) = successor {
        v["successor_email"] = json!(s);
    }
    v
}

/// When the simulator answered `call` (an entry of [`Stack::sim_calls`]), in Unix milliseconds.
pub fn call_at_ms(call: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(call["at"].as_str().expect("a call has a time"))
        .expect("the call time is RFC 3339")
        .timestamp_millis()
}
