//! The Bob company in memory: its employees, the lists their department, title and site come
//! from (Bob stores a list item's id and shows its name), the service user, the fixture and
//! `/_sim/seed`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{ACTIVE_SALES_EMAIL, ACTIVE_SALES_ID, FUTURE_JOINER_ID, NO_EMAIL_ID, RATE_PER_MINUTE, TERMINATED_ID};
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::token::Token;
use crate::Config;

/// One employee, as Bob's People API shows them.
#[derive(Clone, Debug)]
pub(super) struct Employee {
    pub id: String,
    pub email: Option<String>,
    pub first_name: String,
    pub surname: String,
    pub department: Option<String>,
    pub title: Option<String>,
    pub site: Option<String>,
    pub start_date: Option<NaiveDate>,
    /// `internal.status`: `Active` or `Inactive`.
    pub status: &'static str,
    /// `internal.lifecycleStatus`: `hired`, `employed`, `terminated`, ...
    pub lifecycle_status: String,
    pub termination_date: Option<NaiveDate>,
}

/// The HiBob company.
#[derive(Clone, Debug)]
pub struct State {
    pub(super) employees: BTreeMap<String, Employee>,
    /// List name (`department`, `title`, `site`) -> item names; an item's id is its position + 1.
    pub(super) lists: BTreeMap<&'static str, Vec<String>>,
    pub(super) service_user_id: Token,
    pub(super) service_user_token: Token,
    pub(super) limiter: Limiter,
}

impl State {
    pub(super) fn empty(config: &Config) -> Self {
        State {
            employees: BTreeMap::new(),
            lists: BTreeMap::new(),
            service_user_id: config.hibob.service_user_id.clone(),
            service_user_token: config.hibob.service_user_token.clone(),
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: RATE_PER_MINUTE,
                window_ms: 60_000,
                daily_requests: None,
            }),
        }
    }

    /// A list item's id (Bob's machine value), the item added when new.
    pub(super) fn item_id(&mut self, list: &'static str, name: &str) -> String {
        let items = self.lists.entry(list).or_default();
        let pos = items.iter().position(|n| n == name).unwrap_or_else(|| {
            items.push(name.to_owned());
            items.len() - 1
        });
        (pos + 1).to_string()
    }

    /// The fixture: an active salesperson with an e-mail, an engineer without one, a
    /// terminated employee and a hire who has not started.
    pub(super) fn load_default_fixture(&mut self) -> Result<(), String> {
        let seed: Seed = serde_json::from_value(json!({ "employees": [
            { "id": ACTIVE_SALES_ID, "email": ACTIVE_SALES_EMAIL, "first_name": "Ada", "surname": "Lovelace",
              "department": "Sales", "title": "Account Executive", "site": "London", "start_date": "2024-03-01" },
            { "id": NO_EMAIL_ID, "first_name": "Grace", "surname": "Hopper",
              "department": "Engineering", "title": "Software Engineer", "site": "New York", "start_date": "2023-09-01" },
            { "id": TERMINATED_ID, "email": "alan@example.com", "first_name": "Alan", "surname": "Turing",
              "department": "Engineering", "title": "Researcher", "site": "London", "start_date": "2021-01-04",
              "status": "Inactive", "lifecycle_status": "terminated", "termination_date": "2026-10-31" },
            { "id": FUTURE_JOINER_ID, "email": "margaret@example.com", "first_name": "Margaret", "surname": "Hamilton",
              "department": "Engineering", "title": "Software Engineer", "site": "London", "start_date": "2027-01-04",
              "lifecycle_status": "hired" }
        ]}))
        .map_err(|e| e.to_string())?;
        self.apply_seed(seed).map(|_| ())
    }

    pub(super) fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
        let mut created = Vec::new();
        for e in seed.employees {
            let id = e.id.trim().to_owned();
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
                return Err(format!("employee id {id:?} must be digits (Bob's backend ids are)"));
            }
            if self.employees.contains_key(&id) {
                return Err(format!("an employee with id {id} already exists"));
            }
            let status = match e.status.as_deref().unwrap_or("Active") {
                "Active" => "Active",
                "Inactive" => "Inactive",
                other => return Err(format!("status {other:?}: Active or Inactive")),
            };
            let lifecycle_status = e.lifecycle_status.unwrap_or_else(|| {
                if status == "Active" {
                    "employed".into()
                } else {
                    "terminated".into()
                }
            });
            for (list, name) in [("department", &e.department), ("title", &e.title), ("site", &e.site)] {
                if let Some(name) = name {
                    self.item_id(list, name);
                }
            }
            created.push(json!({ "id": id }));
            self.employees.insert(
                id.clone(),
                Employee {
                    id,
                    email: e.email,
                    first_name: e.first_name,
                    surname: e.surname,
                    department: e.department,
                    title: e.title,
                    site: e.site,
                    start_date: e.start_date,
                    status,
                    lifecycle_status,
                    termination_date: e.termination_date,
                },
            );
        }
        Ok(json!({ "employees": created }))
    }

    /// By backend id, or by e-mail (case-insensitively), as the read endpoint's path takes.
    pub(super) fn find(&self, identifier: &str) -> Option<&Employee> {
        self.employees.get(identifier).or_else(|| {
            self.employees.values().find(|e| e.email.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(identifier)))
        })
    }

    pub(super) fn list_id(&self, list: &str, name: &str) -> Option<String> {
        self.lists.get(list)?.iter().position(|n| n == name).map(|p| (p + 1).to_string())
    }

    pub(super) fn snapshot_json(&self) -> Value {
        let employees: Vec<Value> = self
            .employees
            .values()
            .map(|e| {
                json!({
                    "id": e.id, "email": e.email, "first_name": e.first_name, "surname": e.surname,
                    "department": e.department, "title": e.title, "site": e.site,
                    "start_date": e.start_date, "status": e.status, "lifecycle_status": e.lifecycle_status,
                    "termination_date": e.termination_date,
                })
            })
            .collect();
        let lists: Map<String, Value> = self.lists.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        json!({ "employees": employees, "lists": lists })
    }
}

/// HiBob's part of a `/_sim/seed` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Seed {
    #[serde(default)]
    employees: Vec<SeedEmployee>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedEmployee {
    id: String,
    email: Option<String>,
    first_name: String,
    surname: String,
    department: Option<String>,
    title: Option<String>,
    site: Option<String>,
    start_date: Option<NaiveDate>,
    status: Option<String>,
    lifecycle_status: Option<String>,
    termination_date: Option<NaiveDate>,
}
