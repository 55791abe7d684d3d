//! Personio's tenant: persons with their employments, org units, issued tokens; the fixture and
//! `/_sim/seed`.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;
use serde_json::{json, Value};

use super::{ACTIVE_SALES, ONBOARDING, TERMINATED, WITHOUT_EMAIL};
use crate::ratelimit::{Limiter, RateLimitConfig};
use crate::token::Token;
use crate::Config;

#[derive(Clone, Debug)]
pub struct Person {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub preferred_name: Option<String>,
    /// None: the person has no work address (a delivery about them needs a person).
    pub email: Option<String>,
    /// Most recent first, as the employments endpoint answers.
    pub employments: Vec<Employment>,
}

#[derive(Clone, Debug)]
pub struct Employment {
    pub id: String,
    pub status: String,
    pub position: Option<String>,
    /// The department's org unit id.
    pub department: Option<String>,
    pub start_date: Option<String>,
    pub termination_date: Option<String>,
}

#[derive(Clone, Debug)]
pub struct OrgUnit {
    pub id: String,
    pub kind: &'static str,
    pub name: String,
}

#[derive(Clone)]
pub struct State {
    pub persons: BTreeMap<String, Person>,
    pub org_units: BTreeMap<String, OrgUnit>,
    /// Issued access tokens and when each expires (Unix ms).
    pub tokens: HashMap<Token, i64>,
    pub client_id: String,
    pub client_secret: Token,
    pub token_ttl_secs: u64,
    pub limiter: Limiter,
    next_id: u64,
}

/// A person in a `/_sim/seed` body (`{"persons": [...]}`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedPerson {
    #[serde(default)]
    pub id: Option<String>,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub preferred_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// `ACTIVE` (default), `ONBOARDING`, `LEAVE` or `INACTIVE`; anything else is kept as sent,
    /// to play a status lifecycle does not know.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub position: Option<String>,
    #[serde(default)]
    pub start_date: Option<String>,
    #[serde(default)]
    pub termination_date: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub persons: Vec<SeedPerson>,
}

impl State {
    pub fn empty(config: &Config) -> Self {
        let flags = &config.personio;
        State {
            persons: BTreeMap::new(),
            org_units: BTreeMap::new(),
            tokens: HashMap::new(),
            client_id: flags.client_id.clone(),
            client_secret: flags.client_secret.clone(),
            token_ttl_secs: flags.token_ttl_secs,
            limiter: Limiter::new(RateLimitConfig {
                enabled: !config.no_rate_limits,
                requests: flags.rate_limit_per_minute.max(1),
                window_ms: 60_000,
                daily_requests: None,
            }),
            next_id: 2000,
        }
    }

    pub fn load_default_fixture(&mut self) {
        let person =
            |id: &str, first: &str, last: &str, email: Option<&str>, status: &str, dept: &str, pos: &str| SeedPerson {
                id: Some(id.into()),
                first_name: first.into(),
                last_name: last.into(),
                preferred_name: None,
                email: email.map(Into::into),
                status: Some(status.into()),
                department: Some(dept.into()),
                position: Some(pos.into()),
                start_date: Some("2024-01-15".into()),
                termination_date: None,
            };
        let mut terminated =
            person(TERMINATED, "Alan", "Turing", Some("alan.turing@example.com"), "INACTIVE", "Finance", "Controller");
        terminated.termination_date = Some("2026-06-30".into());
        let mut onboarding = person(
            ONBOARDING,
            "Katherine",
            "Johnson",
            Some("katherine.johnson@example.com"),
            "ONBOARDING",
            "Engineering",
            "Engineer",
        );
        onboarding.start_date = Some("2099-01-04".into());
        let seed = Seed {
            persons: vec![
                person(
                    ACTIVE_SALES,
                    "Ada",
                    "Lovelace",
                    Some("ada.lovelace@example.com"),
                    "ACTIVE",
                    "Sales",
                    "Account Executive",
                ),
                person(WITHOUT_EMAIL, "Grace", "Hopper", None, "ACTIVE", "Engineering", "Engineer"),
                terminated,
                onboarding,
            ],
        };
        // The fixture is well-formed; a failure here is a bug in the lines above.
        self.apply_seed(seed).expect("the Personio fixture applies");
    }

    fn org_unit_for(&mut self, name: &str) -> String {
        if let Some(unit) = self.org_units.values().find(|u| u.name == name) {
            return unit.id.clone();
        }
        self.next_id += 1;
        let id = self.next_id.to_string();
        self.org_units.insert(id.clone(), OrgUnit { id: id.clone(), kind: "department", name: name.to_owned() });
        id
    }

    pub fn apply_seed(&mut self, seed: Seed) -> Result<Value, String> {
        let mut created = Vec::new();
        for p in seed.persons {
            let id = match p.id {
                Some(id) if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') => {
                    return Err(format!("person id {id:?} is not a plain id"))
                }
                Some(id) => id,
                None => {
                    self.next_id += 1;
                    self.next_id.to_string()
                }
            };
            if self.persons.contains_key(&id) {
                return Err(format!("person {id} already exists"));
            }
            let department = p.department.as_deref().map(|d| self.org_unit_for(d));
            let employment = Employment {
                // The simulator's employment ids are the person's id and a number, so the test
                // sender can name one without reading the state.
                id: format!("{id}-1"),
                status: p.status.unwrap_or_else(|| "ACTIVE".into()),
                position: p.position,
                department,
                start_date: p.start_date,
                termination_date: p.termination_date,
            };
            let person = Person {
                id: id.clone(),
                first_name: p.first_name,
                last_name: p.last_name,
                preferred_name: p.preferred_name,
                email: p.email.filter(|e| !e.is_empty()),
                employments: vec![employment],
            };
            created.push(self.person_json(&person));
            self.persons.insert(id, person);
        }
        Ok(json!({ "persons": created }))
    }

    pub fn person_json(&self, p: &Person) -> Value {
        json!({
            "id": p.id,
            "first_name": p.first_name,
            "last_name": p.last_name,
            "preferred_name": p.preferred_name,
            "email": p.email.clone().unwrap_or_default(),
            "created_at": "2024-01-02T09:00:00Z",
            "updated_at": "2024-01-02T09:00:00Z",
            "employments": p.employments.iter().map(|e| json!({"id": e.id})).collect::<Vec<_>>(),
        })
    }

    pub fn employment_json(&self, person: &Person, e: &Employment) -> Value {
        json!({
            "id": e.id,
            "person": { "id": person.id },
            "status": e.status,
            "position": e.position.as_ref().map(|t| json!({ "title": t })),
            "org_units": e.department.iter().map(|id| json!({ "id": id, "type": "DEPARTMENT" })).collect::<Vec<_>>(),
            "employment_start_date": e.start_date,
            "termination": e.termination_date.as_ref().map(|d| json!({ "date": d })),
            "type": "INTERNAL",
            "created_at": "2024-01-02T09:00:00Z",
            "updated_at": "2024-01-02T09:00:00Z",
        })
    }

    pub fn snapshot_json(&self) -> Value {
        json!({
            "persons": self.persons.values().map(|p| {
                let mut v = self.person_json(p);
                v["employments"] = p.employments.iter().map(|e| self.employment_json(p, e)).collect();
                v
            }).collect::<Vec<_>>(),
            "org_units": self.org_units.values().map(|u| json!({"id": u.id, "type": u.kind, "name": u.name})).collect::<Vec<_>>(),
        })
    }
}
