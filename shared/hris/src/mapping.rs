//! From an employee record to joiner, mover and leaver events, and the
//! birthright rules (`[hris] everyone`, `[[hris.rules]]`): common to every
//! source, so a BambooHR person and a Personio person with the same record
//! get the same apps.
//!
//! What a person should have is the union of what each applying rule gives
//! and what everyone gets ([`desired`]), united per vendor as SCIM groups are
//! (`AppRequest::unite`). What lifecycle last asked for them is kept
//! ([`Known`], the `hris_people` row), and each record is compared with it
//! ([`decide`]), as SCIM compares a user with what it last applied:
//! - **joiner** for vendors the person should now have and did not (a hire,
//!   a rehire, a rule that now applies), `effective_at` the hire date at
//!   00:00 in `[hris] timezone` when that is still ahead;
//! - **mover** for vendors kept whose access changed (another Pipedrive role);
//! - **leaver** for vendors no longer given, and for all of them when the
//!   person is inactive or the delivery says they left, `effective_at` the
//!   day after the termination date at 00:00 when that is still ahead (their
//!   last day is a working day).
//!
//! A mover cannot say "remove this vendor" (every vendor's mover states the
//! access to end with), hence leavers per vendor. A record that changes no
//! vendor's access makes no event: a retried delivery, BambooHR's `updated`
//! after its `created`, a changed phone number. Each event's idempotency key
//! comes from the person, the generation of their `hris_people` row and the
//! event itself ([`Mapped::idempotency_key`]), so two producers mapping the
//! `created` and `updated` of one hire at once still store one joiner.
//!
//! A record lifecycle cannot act on — no work e-mail, a status it does not
//! know, a joiner without a name — is not dropped: it needs a person
//! ([`Decision::NeedsPerson`]), shown with the raw delivery in the console.

use crate::{Delivery, DeliveryKind, EmploymentStatus, Record, SourceKind};
use chrono::{DateTime, NaiveDate, Utc};
use lifecycle_config::hris::{HrisSettings, RuleField};
use lifecycle_domain::{AppRequest, Event, EventType, VendorKind};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The vendors and access a person has, per vendor.
pub type Apps = BTreeMap<VendorKind, AppRequest>;

/// What lifecycle last derived for a person (their `hris_people` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    /// The address their events used: a leaver for someone the HRIS no
    /// longer shows (BambooHR's `deleted`) still finds their accounts.
    pub email: String,
    pub last_event_type: EventType,
    /// What they have now (empty after a leaver of everything).
    pub apps: Apps,
    /// Bumped by every write: part of each event's idempotency key.
    pub version: i32,
}

/// Where a mapping happens.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub source: SourceKind,
    pub tenant: &'a str,
    pub settings: &'a HrisSettings,
    pub now: DateTime<Utc>,
}

/// One event to submit.
#[derive(Debug, Clone)]
pub struct Mapped {
    pub event_type: EventType,
    /// The event as the intake would have received it (kept with the event).
    pub payload: Value,
    pub event: Event,
    /// Unique per source in `events`: the same person, generation and change
    /// give the same key whichever delivery made it.
    pub idempotency_key: String,
}

/// What a delivery means, once its record is read.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Zero or more events (none: nothing lifecycle acts on changed), and
    /// what to keep for the person afterwards (None: keep the row as it is).
    Events { events: Vec<Mapped>, after: Option<Known>, note: String },
    /// Lifecycle cannot act on it: why, in words an operator acts on.
    NeedsPerson(String),
}

/// The apps the rules give a record: every applying rule's, then everyone's,
/// united per vendor in that order.
pub fn desired(settings: &HrisSettings, record: &Record) -> Apps {
    let value = |field: RuleField| -> Option<String> {
        match field {
            RuleField::Department => record.department.clone(),
            RuleField::JobTitle => record.job_title.clone(),
            RuleField::Location => record.location.clone(),
            RuleField::EmploymentStatus => record.employment_status.clone(),
        }
    };
    let mut out = Apps::new();
    let given = settings.rules.iter().filter(|r| r.applies(value)).map(|r| &r.apps);
    for apps in given.chain(std::iter::once(&settings.everyone)) {
        for (vendor, app) in apps {
            match out.get_mut(vendor) {
                None => {
                    out.insert(*vendor, app.clone());
                }
                Some(have) => have.unite(app),
            }
        }
    }
    out
}

/// A stable digest of a set of apps (what `hris_people.apps_hash` holds).
pub fn apps_hash(apps: &Apps) -> String {
    let text = serde_json::to_string(apps).expect("apps always serialize");
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The event's `employee.id`: unique across sources and tenants.
pub fn employee_id(source: SourceKind, tenant: &str, id: &str) -> String {
    format!("{source}:{tenant}:{id}")
}

/// Decides the events a delivery makes. `record` is None when the HRIS no
/// longer knows the employee (only a `Left` delivery of a known person then
/// makes a leaver; the caller shows anything else to a person).
pub fn decide(ctx: &Context<'_>, delivery: &Delivery, record: Option<&Record>, known: Option<&Known>) -> Decision {
    let source = ctx.source;
    let Some(hr_id) = delivery.employee_id.as_deref().or(record.map(|r| r.employee_id.as_str())) else {
        return Decision::NeedsPerson(format!("the {source} delivery names no employee"));
    };
    // They have something exactly when lifecycle gave them apps they have not left
    // (a leaver of only some vendors, at a change of department, leaves them the rest).
    let active_before = known.is_some_and(|k| !k.apps.is_empty());
    let had = known.filter(|_| active_before).map(|k| k.apps.clone()).unwrap_or_default();

    let Some(record) = record else {
        return match known {
            Some(k) if delivery.kind == DeliveryKind::Left => {
                leaving_entirely(ctx, delivery, hr_id, &k.email, None, &had, known, None)
            }
            _ => Decision::NeedsPerson(format!(
                "{source} no longer has employee {hr_id}, and lifecycle made no event for them: check whether they have accounts to remove"
            )),
        };
    };
    let email = match record.email.as_deref().map(str::trim).filter(|e| !e.is_empty()) {
        Some(e) => e.to_string(),
        None => match known {
            // A leaver still finds the accounts by the address their joiner used.
            Some(k) if delivery.kind == DeliveryKind::Left || record.status == EmploymentStatus::Inactive => {
                k.email.clone()
            }
            _ => {
                return Decision::NeedsPerson(format!(
                    "employee {hr_id} has no work e-mail in {source}: add one there, then retry this delivery"
                ))
            }
        },
    };
    let leaving = delivery.kind == DeliveryKind::Left || record.status == EmploymentStatus::Inactive;
    if leaving {
        // Never seen: what the rules say they would have (they may predate lifecycle).
        let had = if known.is_none() { desired(ctx.settings, record) } else { had };
        let end = record.termination_date;
        return leaving_entirely(ctx, delivery, hr_id, &email, Some(record), &had, known, end);
    }
    match &record.status {
        EmploymentStatus::Active | EmploymentStatus::Pending => {}
        EmploymentStatus::Unknown => {
            return Decision::NeedsPerson(format!(
                "employee {hr_id} has the {source} status {:?}, which lifecycle does not know as active or inactive: \
                 decide by hand, or correct it in {source} and retry this delivery",
                record.employment_status.as_deref().unwrap_or("(none)")
            ))
        }
        EmploymentStatus::Inactive => unreachable!("handled above"),
    }
    let wants = desired(ctx.settings, record);
    let joining: Apps = wants.iter().filter(|(v, _)| !had.contains_key(v)).map(|(v, a)| (*v, a.clone())).collect();
    let moving: Apps =
        wants.iter().filter(|(v, a)| had.get(v).is_some_and(|h| h != *a)).map(|(v, a)| (*v, a.clone())).collect();
    let dropping: Apps = had.iter().filter(|(v, _)| !wants.contains_key(v)).map(|(v, a)| (*v, a.clone())).collect();
    if joining.is_empty() && moving.is_empty() && dropping.is_empty() {
        let note = if wants.is_empty() {
            format!("no rule gives employee {hr_id} any app; nothing to do")
        } else {
            format!("nothing lifecycle acts on changed for employee {hr_id}")
        };
        return Decision::Events { events: Vec::new(), after: None, note };
    }
    // A first day still ahead is when their accounts should work; a vendor
    // added later to someone already here is theirs at once.
    let starts = (!active_before).then(|| record.hire_date.and_then(|d| midnight(ctx, d))).flatten();
    let version = known.map_or(0, |k| k.version);
    let mut events = Vec::new();
    for (ty, apps, effective_at) in
        [(EventType::Leaver, &dropping, None), (EventType::Mover, &moving, None), (EventType::Joiner, &joining, starts)]
    {
        if apps.is_empty() {
            continue;
        }
        match build(ctx, delivery, hr_id, &email, Some(record), ty, apps, effective_at, version) {
            Ok(m) => events.push(m),
            Err(why) => return Decision::NeedsPerson(why),
        }
    }
    let last = events.last().map_or(EventType::Mover, |m| m.event_type);
    let note = summary(&events);
    Decision::Events {
        events,
        after: Some(Known { email, last_event_type: last, apps: wants, version: version + 1 }),
        note,
    }
}

/// A leaver of every vendor `had` gives (nothing when they have none, or
/// already left).
#[allow(clippy::too_many_arguments)]
fn leaving_entirely(
    ctx: &Context<'_>,
    delivery: &Delivery,
    hr_id: &str,
    email: &str,
    record: Option<&Record>,
    had: &Apps,
    known: Option<&Known>,
    last_day: Option<NaiveDate>,
) -> Decision {
    if had.is_empty() {
        let note = if known.is_some_and(|k| k.last_event_type == EventType::Leaver) {
            format!("employee {hr_id} already left; nothing to do")
        } else {
            format!("employee {hr_id} left and no rule gives them any app; nothing to do")
        };
        return Decision::Events { events: Vec::new(), after: None, note };
    }
    let ends = last_day.and_then(|d| d.succ_opt()).and_then(|d| midnight(ctx, d));
    let version = known.map_or(0, |k| k.version);
    match build(ctx, delivery, hr_id, email, record, EventType::Leaver, had, ends, version) {
        Ok(m) => {
            let note = summary(std::slice::from_ref(&m));
            let after = Known {
                email: email.to_string(),
                last_event_type: EventType::Leaver,
                apps: Apps::new(),
                version: version + 1,
            };
            Decision::Events { events: vec![m], after: Some(after), note }
        }
        Err(why) => Decision::NeedsPerson(why),
    }
}

/// `day` at 00:00 in the configured zone, when that is still ahead.
fn midnight(ctx: &Context<'_>, day: NaiveDate) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    let date = jiff::civil::date(day.year() as i16, day.month() as i8, day.day() as i8);
    let ts = ctx.settings.timezone.to_timestamp(date.at(0, 0, 0, 0)).ok()?;
    let at = DateTime::<Utc>::from_timestamp_micros(ts.as_microsecond())?;
    (at > ctx.now).then_some(at)
}

#[allow(clippy::too_many_arguments)]
fn build(
    ctx: &Context<'_>,
    delivery: &Delivery,
    hr_id: &str,
    email: &str,
    record: Option<&Record>,
    ty: EventType,
    apps: &Apps,
    effective_at: Option<DateTime<Utc>>,
    version: i32,
) -> Result<Mapped, String> {
    let source = ctx.source;
    let id = employee_id(source, ctx.tenant, hr_id);
    let mut employee = json!({"id": id, "email": email});
    if let Some(r) = record {
        for (key, value) in [("given_name", &r.given_name), ("family_name", &r.family_name)] {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                employee[key] = json!(v);
            }
        }
    }
    let apps_json: Map<String, Value> = apps.iter().map(|(v, a)| (v.as_str().to_string(), app_json(a))).collect();
    let mut payload = json!({"type": ty.as_str(), "employee": employee, "apps": apps_json});
    if let Some(at) = delivery.occurred_at {
        payload["occurred_at"] = json!(at.to_rfc3339());
    }
    if let Some(at) = effective_at {
        payload["effective_at"] = json!(at.to_rfc3339());
    }
    let event = Event::parse(&payload).map_err(|errors| {
        let fields: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.detail)).collect();
        format!(
            "employee {hr_id}'s {source} record cannot make a {}: {} — correct it in {source}, then retry this delivery",
            ty.as_str(),
            fields.join("; ")
        )
    })?;
    // What makes two mappings the same change: the person, the generation of
    // what lifecycle knew of them, and the change itself (never the delivery).
    let identity = json!({
        "tenant": ctx.tenant, "employee": hr_id, "version": version, "type": ty.as_str(),
        "apps": apps_hash(apps), "effective_at": effective_at.map(|t| t.to_rfc3339()),
    });
    let idempotency_key = format!("{}-{}", ty.as_str(), hex::encode(Sha256::digest(identity.to_string().as_bytes())));
    Ok(Mapped { event_type: ty, payload, event, idempotency_key })
}

fn summary(events: &[Mapped]) -> String {
    let parts: Vec<String> = events
        .iter()
        .map(|m| {
            let vendors: Vec<&str> = m.event.apps.keys().map(|v| v.as_str()).collect();
            format!("{} at {}", m.event_type.as_str(), vendors.join(", "))
        })
        .collect();
    parts.join("; ")
}

/// An app as the intake's `apps.<vendor>` object (the twin of the SCIM
/// mapping's: the serialized request without its tag and empty fields).
fn app_json(app: &AppRequest) -> Value {
    let mut v = serde_json::to_value(app).expect("an app always serializes");
    if let Value::Object(o) = &mut v {
        o.remove("vendor");
        o.retain(|_, x| !x.is_null());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use figment::providers::{Format, Toml};

    fn settings(tz: &str) -> HrisSettings {
        #[derive(serde::Deserialize)]
        struct T {
            hris: HrisSettings,
        }
        let toml = format!("[hris]\ntimezone = \"{tz}\"\n{}", lifecycle_config::hris::example_rules());
        figment::Figment::new().merge(Toml::string(&toml)).extract::<T>().unwrap().hris
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap()
    }

    fn delivery(kind: DeliveryKind) -> Delivery {
        Delivery {
            company_id: "12345".into(),
            key: "k".into(),
            kind,
            type_name: "employee.updated".into(),
            employee_id: Some("7".into()),
            occurred_at: Some(now()),
        }
    }

    fn ada(department: &str) -> Record {
        Record {
            employee_id: "7".into(),
            email: Some("ada@example.com".into()),
            given_name: Some("Ada".into()),
            family_name: Some("Lovelace".into()),
            status: EmploymentStatus::Active,
            department: Some(department.into()),
            employment_status: Some("Active".into()),
            ..Record::default()
        }
    }

    fn run(s: &HrisSettings, d: &Delivery, r: Option<&Record>, k: Option<&Known>) -> Decision {
        let ctx = Context { source: SourceKind::Bamboohr, tenant: "acme", settings: s, now: now() };
        decide(&ctx, d, r, k)
    }

    fn events(d: Decision) -> (Vec<Mapped>, Option<Known>) {
        match d {
            Decision::Events { events, after, .. } => (events, after),
            Decision::NeedsPerson(why) => panic!("needs a person: {why}"),
        }
    }

    fn vendors(m: &Mapped) -> Vec<&'static str> {
        m.event.apps.keys().map(|v| v.as_str()).collect()
    }

    #[test]
    fn rules_and_everyone_unite() {
        let s = settings("UTC");
        let apps = desired(&s, &ada("sales"));
        assert_eq!(apps.keys().map(|v| v.as_str()).collect::<Vec<_>>(), ["pipedrive", "calendly"]);
        assert_eq!(desired(&s, &ada("Finance")).len(), 1, "everyone's only");
    }

    #[test]
    fn a_new_hire_is_a_joiner_on_their_first_day_in_the_zone() {
        let s = settings("Europe/Berlin");
        let mut r = ada("Sales");
        r.status = EmploymentStatus::Pending;
        r.hire_date = NaiveDate::from_ymd_opt(2027, 1, 4);
        let (ev, after) = events(run(&s, &delivery(DeliveryKind::Joined), Some(&r), None));
        assert_eq!(ev.len(), 1);
        let j = &ev[0];
        assert_eq!(j.event_type, EventType::Joiner);
        assert_eq!(j.event.employee.id, "bamboohr:acme:7");
        assert_eq!(j.event.effective_at, Some(Utc.with_ymd_and_hms(2027, 1, 3, 23, 0, 0).unwrap()), "00:00 in Berlin");
        assert_eq!(j.event.occurred_at, Some(now()));
        assert_eq!(vendors(j), ["pipedrive", "calendly"]);
        let after = after.unwrap();
        assert_eq!((after.last_event_type, after.version, after.apps.len()), (EventType::Joiner, 1, 2));
        // A hire date passed: at once.
        r.hire_date = NaiveDate::from_ymd_opt(2026, 11, 1);
        let (ev, _) = events(run(&s, &delivery(DeliveryKind::Joined), Some(&r), None));
        assert_eq!(ev[0].event.effective_at, None);
    }

    #[test]
    fn created_then_updated_make_one_joiner() {
        let s = settings("UTC");
        let r = ada("Sales");
        let (first, after) = events(run(&s, &delivery(DeliveryKind::Joined), Some(&r), None));
        // The `updated` after it, mapped once the joiner is known: nothing.
        let (second, none) = events(run(&s, &delivery(DeliveryKind::Changed), Some(&r), after.as_ref()));
        assert!(second.is_empty() && none.is_none());
        // Mapped at the same time by another producer (nothing known yet): the same key.
        let mut later = delivery(DeliveryKind::Changed);
        later.occurred_at = Some(now() + chrono::Duration::seconds(2));
        let (again, _) = events(run(&s, &later, Some(&r), None));
        assert_eq!(first[0].idempotency_key, again[0].idempotency_key);
    }

    #[test]
    fn a_move_changes_vendors_with_a_leaver_and_a_joiner_and_roles_with_a_mover() {
        let s = settings("UTC");
        let (_, known) = events(run(&s, &delivery(DeliveryKind::Joined), Some(&ada("Sales")), None));
        let known = known.unwrap();
        let (ev, after) = events(run(&s, &delivery(DeliveryKind::Changed), Some(&ada("Security")), Some(&known)));
        let kinds: Vec<(EventType, Vec<&str>)> = ev.iter().map(|m| (m.event_type, vendors(m))).collect();
        assert_eq!(kinds, [(EventType::Leaver, vec!["pipedrive"]), (EventType::Joiner, vec!["crowdstrike"])]);
        assert_eq!(ev[1].event.effective_at, None, "someone already here gets a new vendor at once");
        assert_eq!(after.unwrap().version, 2);
        // Another role at a kept vendor: a mover.
        let mut k = known.clone();
        k.apps.insert(
            VendorKind::Pipedrive,
            AppRequest::Pipedrive(lifecycle_domain::apps::PipedriveApp { role: Some("Intern".into()) }),
        );
        let (ev, _) = events(run(&s, &delivery(DeliveryKind::Changed), Some(&ada("Sales")), Some(&k)));
        assert_eq!(ev.iter().map(|m| m.event_type).collect::<Vec<_>>(), [EventType::Mover]);
        assert_eq!(ev[0].payload["apps"]["pipedrive"]["role"], "Sales Rep");
    }

    #[test]
    fn losing_one_vendor_keeps_the_others_and_changes_nothing_after() {
        let s = settings("UTC");
        let (_, known) = events(run(&s, &delivery(DeliveryKind::Joined), Some(&ada("Sales")), None));
        let (ev, after) = events(run(&s, &delivery(DeliveryKind::Changed), Some(&ada("Finance")), known.as_ref()));
        assert_eq!(
            ev.iter().map(|m| (m.event_type, vendors(m))).collect::<Vec<_>>(),
            [(EventType::Leaver, vec!["pipedrive"])]
        );
        let after = after.unwrap();
        assert_eq!(after.apps.keys().collect::<Vec<_>>(), [&VendorKind::Calendly]);
        // Another delivery about the same record: they still have Calendly, nothing to do.
        let (ev, none) = events(run(&s, &delivery(DeliveryKind::Changed), Some(&ada("Finance")), Some(&after)));
        assert!(ev.is_empty() && none.is_none(), "{ev:?}");
    }

    #[test]
    fn a_leaver_leaves_the_day_after_their_last_day() {
        let s = settings("UTC");
        let (_, known) = events(run(&s, &delivery(DeliveryKind::Joined), Some(&ada("Sales")), None));
        let mut r = ada("Sales");
        r.status = EmploymentStatus::Inactive;
        r.termination_date = NaiveDate::from_ymd_opt(2026, 12, 31);
        let (ev, after) = events(run(&s, &delivery(DeliveryKind::Changed), Some(&r), known.as_ref()));
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].event_type, EventType::Leaver);
        assert_eq!(ev[0].event.effective_at, Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()));
        assert_eq!(vendors(&ev[0]), ["pipedrive", "calendly"]);
        let after = after.unwrap();
        assert!(after.apps.is_empty() && after.last_event_type == EventType::Leaver);
        // Past: at once. Again: nothing.
        r.termination_date = NaiveDate::from_ymd_opt(2026, 12, 1);
        let (ev, _) = events(run(&s, &delivery(DeliveryKind::Left), Some(&r), known.as_ref()));
        assert_eq!(ev[0].event.effective_at, None);
        let (ev, _) = events(run(&s, &delivery(DeliveryKind::Left), Some(&r), Some(&after)));
        assert!(ev.is_empty());
        // Deleted in the HRIS: the leaver goes by the known address.
        let (ev, _) = events(run(&s, &delivery(DeliveryKind::Left), None, known.as_ref()));
        assert_eq!(ev[0].event.employee.email.to_string(), "ada@example.com");
    }

    #[test]
    fn what_lifecycle_cannot_act_on_needs_a_person() {
        let s = settings("UTC");
        let needs = |r: &Record| match run(&s, &delivery(DeliveryKind::Joined), Some(r), None) {
            Decision::NeedsPerson(why) => why,
            Decision::Events { .. } => panic!("mapped {r:?}"),
        };
        let mut r = ada("Sales");
        r.email = None;
        assert!(needs(&r).contains("no work e-mail"));
        let mut r = ada("Sales");
        r.status = EmploymentStatus::Unknown;
        r.employment_status = Some("Sabbatical".into());
        assert!(needs(&r).contains("\"Sabbatical\""));
        let mut r = ada("Sales");
        r.family_name = None;
        assert!(needs(&r).contains("employee.family_name"), "{}", needs(&r));
        let mut r = ada("Sales");
        r.email = Some("not-an-address".into());
        assert!(needs(&r).contains("employee.email"));
        match run(&s, &delivery(DeliveryKind::Left), None, None) {
            Decision::NeedsPerson(why) => assert!(why.contains("no longer has employee 7")),
            other => panic!("{other:?}"),
        }
    }
}
