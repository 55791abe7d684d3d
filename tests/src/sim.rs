//! Reading the simulator's state in assertions.

use serde_json::Value;

/// Every entry of a vendor's list (`users`, `deals`, `log`, ...).
pub fn list<'a>(state: &'a Value, vendor: &str, key: &str) -> Vec<&'a Value> {
    state[vendor][key].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

/// Pipedrive users with this e-mail address (case-insensitive).
pub fn pd_users<'a>(state: &'a Value, email: &str) -> Vec<&'a Value> {
    list(state, "pipedrive", "users")
        .into_iter()
        .filter(|u| u["email"].as_str().is_some_and(|e| e.eq_ignore_ascii_case(email)))
        .collect()
}

/// The actions of a vendor's mutation log, in order.
pub fn actions(state: &Value, vendor: &str) -> Vec<String> {
    list(state, vendor, "log").into_iter().filter_map(|e| e["action"].as_str().map(str::to_string)).collect()
}

/// Mutation log entries with this action about this user id.
pub fn log_for<'a>(state: &'a Value, vendor: &str, action: &str, user_id: &Value) -> Vec<&'a Value> {
    list(state, vendor, "log").into_iter().filter(|e| e["action"] == action && &e["user_id"] == user_id).collect()
}
