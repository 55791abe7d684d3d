//! The BambooHR company in memory: its employees, the API keys that may read them, the read
//! budget; the default fixture and `/_sim/seed`.

use std::collections::{BTreeMap, HashSet};

use chrono::{Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::token::Token;
use crate::{Config, Fixture};

/// Reads allowed per API key per second. BambooHR publishes no number: this is the
/// simulator's, low enough for a test to reach it.
const RATE_REQUESTS: u32 = 10;
const RATE_WINDOW_MS: u64 = 1_000;

/// One employee, with BambooHR's field names. Seeded as written here (`/_sim/seed`); an
/// existing `id` is replaced, a missing one assigned.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Employee {
    #[serde(default)]
    pub id: Option<u64>,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub work_email: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub job_title: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
    /// `Active` or `Inactive`.
    #[serde(default = "active")]
    pub status: String,
    /// The employment status table's current row: `Full-Time`, `Terminated`, ...
    #[serde(default)]
    pub employment_history_status: Option<String>,
    #[serde(default)]
    pub hire_date: Option<NaiveDate>,
    #[serde(default)]
    pub termination_date: Option<NaiveDate>,
}

fn active() -> String {
    "Active".into()
}

impl Employee {
    /// The value of one of BambooHR's fields as the API writes it (strings; an unset date is
    /// `0000-00-00`), or `None` for a field this simulator does not know (left out).
    pub(super) fn field(&self, name: &str) -> Option<Value> {
        let text = |v: &Option<String>| v.clone().map_or(Value::Null, Value::String);
        let date = |d: &Option<NaiveDate>| {
            Value::String(d.map_or_else(|| "0000-00-00".to_owned(), |d| d.format("%Y-%m-%d").to_string()))
        };
        Some(match name {
            "id" => Value::String(self.id.unwrap_or_default().to_string()),
            "firstName" => Value::String(self.first_name.clone()),
            "lastName" => Value::String(self.last_name.clone()),
            "displayName" => Value::String(format!("{} {}", self.first_name, self.last_name)),
            "workEmail" => text(&self.work_email),
            "department" => text(&self.department),
            "jobTitle" => text(&self.job_title),
            "location" => text(&self.location),
            "status" => Value::String(self.status.clone()),
            "employmentHistoryStatus" => text(&self.employment_history_status),
            "hireDate" => date(&self.hire_date),
            "terminationDate" => date(&self.termination_date),
            _ => return None,
        })
    }
}

/// The company.
#[derive(Clone, Debug)]
pub struct State {
    pub(super) api_keys: HashSet<Token>,
    pub(super) employees: BTreeMap<u64, Employee>,
    pub(super) next_id: u64,
    pub(super) limiter: Limiter,
}

/// A `/_sim/seed` body's `bamboohr` part.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Seed {
    #[serde(default)]
    employees: Vec<Employee>,
    #[serde(default)]
    api_keys: Vec<Token>,
}

impl State {
    pub(super) fn build(config: &Config, fixture: Fixture) -> Self {
        let mut state = State {
            api_keys: HashSet::from([config.bamboohr.api_key.clone()]),
            employees: BTreeMap::new(),
            next_id: 100,
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: RATE_REQUESTS,
                window_ms: RATE_WINDOW_MS,
                daily_requests: None,
            }),
        };
        if fixture == Fixture::Default {
            for e in default_employees() {
                state.upsert(e).expect("the default fixture is valid");
            }
        }
        state
    }

    fn upsert(&mut self, mut e: Employee) -> Result<(u64, bool), String> {
        if e.first_name.trim().is_empty() || e.last_name.trim().is_empty() {
            return Err("firstName and lastName are required".into());
        }
        if !matches!(e.status.as_str(), "Active" | "Inactive") {
            return Err(format!("status {:?}: BambooHR's is Active or Inactive", e.status));
        }
        if let Some(email) = &e.work_email {
            if !crate::extract::valid_email(email) {
                return Err(format!("workEmail {email:?} is not an e-mail address"));
            }
        }
        let id = match e.id {
            Some(0) => return Err("id 0 is the API key's own user in BambooHR".into()),
            Some(id) => id,
            None => {
                while self.employees.contains_key(&self.next_id) {
                    self.next_id += 1;
                }
                self.next_id
            }
        };
        e.id = Some(id);
        self.next_id = self.next_id.max(id + 1);
        let replaced = self.employees.insert(id, e).is_some();
        Ok((id, replaced))
    }

    pub(super) fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
        let mut created = Vec::new();
        for e in seed.employees {
            let (id, replaced) = self.upsert(e)?;
            created.push(json!({ "id": id.to_string(), "replaced": replaced }));
        }
        for key in seed.api_keys {
            if key.is_empty() {
                return Err("an API key must not be empty".into());
            }
            self.api_keys.insert(key);
        }
        Ok(json!({ "employees": created }))
    }

    pub(super) fn snapshot_json(&self) -> Value {
        json!({
            "company_domain": super::COMPANY_DOMAIN,
            "company_id": super::COMPANY_ID,
            "employees": self.employees.values().collect::<Vec<_>>(),
        })
    }
}

/// The default fixture: an active salesperson, an active engineer without a work e-mail, a
/// terminated employee, and a hire starting in two weeks.
fn default_employees() -> Vec<Employee> {
    let person = |id: u64, first: &str, last: &str| Employee {
        id: Some(id),
        first_name: first.into(),
        last_name: last.into(),
        work_email: None,
        department: None,
        job_title: None,
        location: None,
        status: active(),
        employment_history_status: Some("Full-Time".into()),
        hire_date: NaiveDate::from_ymd_opt(2024, 3, 1),
        termination_date: None,
    };
    let in_two_weeks = Utc::now().date_naive().checked_add_days(Days::new(14));
    vec![
        Employee {
            work_email: Some("ada.lovelace@example.com".into()),
            department: Some("Sales".into()),
            job_title: Some("Account Executive".into()),
            location: Some("London".into()),
            ..person(super::ACTIVE_SALES_ID, "Ada", "Lovelace")
        },
        Employee {
            department: Some("Engineering".into()),
            job_title: Some("Engineer".into()),
            location: Some("Remote".into()),
            ..person(super::NO_EMAIL_ID, "Grace", "Hopper")
        },
        Employee {
            work_email: Some("alan.turing@example.com".into()),
            department: Some("Engineering".into()),
            job_title: Some("Researcher".into()),
            location: Some("Manchester".into()),
            status: "Inactive".into(),
            employment_history_status: Some("Terminated".into()),
            hire_date: NaiveDate::from_ymd_opt(2021, 9, 1),
            termination_date: NaiveDate::from_ymd_opt(2026, 11, 30),
            ..person(super::TERMINATED_ID, "Alan", "Turing")
        },
        Employee {
            work_email: Some("katherine.johnson@example.com".into()),
            department: Some("Sales".into()),
            job_title: Some("Sales Development Rep".into()),
            location: Some("London".into()),
            hire_date: in_two_weeks,
            ..person(super::FUTURE_HIRE_ID, "Katherine", "Johnson")
        },
    ]
}
