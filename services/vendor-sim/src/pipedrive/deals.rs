//! Pipedrive's deals (API v2): list them (filters, sorting, cursor pages), get one, and update
//! one, checked against getDeals, getDeal and updateDeal of the definition.

use std::cmp::Ordering;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use serde_json::{json, Map, Value};

use super::model::{Deal, DealStatus};
use super::wire::{
    decode_cursor, encode_cursor, include_field_names, ok, parse_id, v2_page, ApiError, ApiResult, Fields, Params,
    Query, MAX_LIMIT,
};
use super::VENDOR;
use crate::extract::{json_object, Empty, Op};
use crate::registry::update_field;
use crate::sim::{now_ms, Sim};

const STATUSES: &[&str] = &["open", "won", "lost", "deleted"];
const SORT_BY: &[&str] = &["id", "update_time", "add_time"];
const SORT_DIRECTION: &[&str] = &["asc", "desc"];
/// getDeals' filters that name a linked entity: the simulator's deals link none but the
/// pipeline and stage (both 1) unless a PATCH set them.
const LINK_FILTERS: &[&str] = &["person_id", "org_id", "pipeline_id", "stage_id"];

/// `include_fields` (a comma-separated list of the names getDeals and getDeal offer).
fn include_fields<'a>(q: &Query<'a>) -> Result<Vec<&'a str>, ApiError> {
    Ok(q.list_of("include_fields", &include_field_names())?.unwrap_or_default())
}

/// `custom_fields`: a comma-separated list of at most 15 keys (the simulator has none to show).
fn custom_fields(q: &Query) -> Result<(), ApiError> {
    if q.get("custom_fields").is_some_and(|raw| raw.split(',').count() > 15) {
        return Err(ApiError::bad_request("custom_fields: a maximum of 15 keys is allowed"));
    }
    Ok(())
}

/// A deal's linked entity as a filter sees it.
fn link(d: &Deal, key: &str) -> Option<i64> {
    match d.extra.get(key) {
        Some(v) => v.as_i64(),
        None if key == "pipeline_id" || key == "stage_id" => Some(1),
        None => None,
    }
}

/// getDeals: `filter_id`, `ids`, `owner_id`, `person_id`, `org_id`, `pipeline_id`, `stage_id`,
/// `status` (comma-separated; default every deal not deleted), `updated_since`, `updated_until`,
/// `sort_by`, `sort_direction`, `include_fields`, `custom_fields`, `limit` (1 to 500, default
/// 100) and `cursor`; `additional_data.next_cursor` names the next page's first deal.
pub(super) async fn list_deals(AxState(sim): AxState<Sim>, params: Params) -> ApiResult {
    let q = Query::only(
        &params,
        &[
            "filter_id",
            "ids",
            "owner_id",
            "person_id",
            "org_id",
            "pipeline_id",
            "stage_id",
            "status",
            "updated_since",
            "updated_until",
            "sort_by",
            "sort_direction",
            "include_fields",
            "custom_fields",
            "limit",
            "cursor",
        ],
    )?;
    if let Some(filter) = q.int("filter_id")? {
        return Err(ApiError::bad_request(format!("filter_id {filter} does not exist")));
    }
    let ids: Option<Vec<i64>> = match q.get("ids") {
        None => None,
        Some(raw) => {
            let ids: Vec<i64> = raw
                .split(',')
                .map(|s| parse_id(s.trim(), "deal"))
                .collect::<Result<_, _>>()
                .map_err(|_| ApiError::bad_request("ids must be comma-separated deal ids"))?;
            if ids.len() > 100 {
                return Err(ApiError::bad_request("ids: at most 100"));
            }
            Some(ids)
        }
    };
    let owner = q.int("owner_id")?;
    let mut links = Vec::new();
    for key in LINK_FILTERS {
        if let Some(id) = q.int(key)? {
            links.push((*key, id));
        }
    }
    let statuses: Option<Vec<DealStatus>> =
        q.list_of("status", STATUSES)?.map(|l| l.into_iter().filter_map(DealStatus::parse).collect());
    let since = q.time("updated_since")?;
    let until = q.time("updated_until")?;
    let sort_by = q.one_of("sort_by", SORT_BY)?.unwrap_or("id");
    let descending = q.one_of("sort_direction", SORT_DIRECTION)? == Some("desc");
    let include = include_fields(&q)?;
    custom_fields(&q)?;
    let limit = match q.int("limit")? {
        None => 100,
        Some(l) if (1..=MAX_LIMIT as i64).contains(&l) => l as usize,
        Some(_) => return Err(ApiError::bad_request(format!("limit must be between 1 and {MAX_LIMIT}"))),
    };
    let after = q.get("cursor").map(decode_cursor).transpose()?;

    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let key = |d: &Deal| match sort_by {
        "update_time" => format!("{:020}", d.update_ms),
        "add_time" => format!("{:020}", d.add_ms),
        _ => String::new(),
    };
    let mut deals: Vec<(String, &Deal)> = pd
        .deals
        .values()
        .filter(|d| ids.as_ref().is_none_or(|ids| ids.contains(&d.id)))
        .filter(|d| owner.is_none_or(|o| d.owner == o))
        .filter(|d| links.iter().all(|(k, id)| link(d, k) == Some(*id)))
        .filter(|d| match &statuses {
            Some(wanted) => wanted.contains(&d.status),
            None => d.status != DealStatus::Deleted,
        })
        .filter(|d| since.is_none_or(|t| d.update_ms >= t) && until.is_none_or(|t| d.update_ms < t))
        .map(|d| (key(d), d))
        .collect();
    let order = |a: &(String, &Deal), b: &(String, &Deal)| (a.0.as_str(), a.1.id).cmp(&(b.0.as_str(), b.1.id));
    deals.sort_by(|a, b| if descending { order(b, a) } else { order(a, b) });
    if let Some((k, id)) = &after {
        // Keyset: from the marked deal on, so a deal reassigned meanwhile shifts nothing.
        deals.retain(|(dk, d)| {
            let at = (dk.as_str(), d.id).cmp(&(k.as_str(), *id));
            if descending {
                at != Ordering::Greater
            } else {
                at != Ordering::Less
            }
        });
    }
    let next = deals.get(limit).map(|(k, d)| encode_cursor(k, d.id));
    let data: Vec<Value> = deals.iter().take(limit).map(|(_, d)| pd.deal_json(d, &include)).collect();
    Ok(v2_page(data, next))
}

/// getDeal: `include_fields`, `custom_fields`.
pub(super) async fn get_deal(AxState(sim): AxState<Sim>, Path(raw): Path<String>, params: Params) -> ApiResult {
    let q = Query::only(&params, &["include_fields", "custom_fields"])?;
    let include = include_fields(&q)?;
    custom_fields(&q)?;
    let id = parse_id(&raw, "deal")?;
    let world = sim.lock();
    let pd = &world.tenants.pipedrive;
    let deal = pd.deals.get(&id).ok_or_else(|| ApiError::not_found("Deal not found"))?;
    Ok(ok(pd.deal_json(deal, &include)))
}

/// The body fields of updateDeal (SDK v2 model `UpdateDealRequest`) the simulator keeps as sent,
/// with the type each must have.
const KEPT_FIELDS: &[(&str, Kind)] = &[
    ("person_id", Kind::Integer),
    ("org_id", Kind::Integer),
    ("pipeline_id", Kind::Integer),
    ("stage_id", Kind::Integer),
    ("archive_time", Kind::String),
    ("probability", Kind::NullableNumber),
    ("lost_reason", Kind::NullableString),
    ("visible_to", Kind::Integer),
    ("close_time", Kind::NullableString),
    ("won_time", Kind::String),
    ("lost_time", Kind::String),
    ("expected_close_date", Kind::String),
    ("label_ids", Kind::Integers),
    ("custom_fields", Kind::Object),
];

#[derive(Clone, Copy)]
enum Kind {
    Integer,
    String,
    NullableString,
    NullableNumber,
    Integers,
    Object,
}

impl Kind {
    fn fits(self, v: &Value) -> bool {
        match self {
            Kind::Integer => v.is_i64(),
            Kind::String => v.is_string(),
            Kind::NullableString => v.is_string() || v.is_null(),
            Kind::NullableNumber => v.is_number() || v.is_null(),
            Kind::Integers => v.as_array().is_some_and(|a| a.iter().all(Value::is_i64)),
            Kind::Object => v.is_object(),
        }
    }
}

/// updateDeal: a partial update with the fields of `UpdateDealRequest` only (`owner_id`, not
/// v1's `user_id`). A new owner must be an active user.
pub(super) async fn update_deal(
    AxState(sim): AxState<Sim>,
    Path(raw): Path<String>,
    params: Params,
    op: Op,
    body: Bytes,
) -> ApiResult {
    Query::only(&params, &[])?;
    let id = parse_id(&raw, "deal")?;
    let obj = json_object(&body, Empty::IsObject)?;
    let f = Fields(&obj);
    let mut known = vec!["title", "owner_id", "value", "currency", "is_deleted", "is_archived", "status"];
    known.extend(KEPT_FIELDS.iter().map(|(k, _)| *k));
    f.only(&known)?;
    let owner = f.id("owner_id")?;
    let title = f.string("title")?;
    let value = f.number("value")?;
    let currency = f.string("currency")?;
    let is_deleted = f.bool("is_deleted")?;
    let is_archived = f.bool("is_archived")?;
    let status = f
        .string("status")?
        .map(|s| match s.as_str() {
            "open" | "won" | "lost" => Ok(DealStatus::parse(&s).unwrap_or(DealStatus::Open)),
            _ => Err(ApiError::bad_request(format!("invalid status {s:?}: open, won or lost"))),
        })
        .transpose()?;
    if title.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(ApiError::bad_request("title must not be empty"));
    }
    let mut kept = Map::new();
    for (key, kind) in KEPT_FIELDS {
        if let Some(v) = obj.get(*key) {
            if !kind.fits(v) {
                return Err(ApiError::bad_request(format!("{key} has the wrong type")));
            }
            kept.insert((*key).to_owned(), v.clone());
        }
    }

    let mut world = sim.lock();
    let world = &mut *world;
    let pd = &mut world.tenants.pipedrive;
    if !pd.deals.contains_key(&id) {
        return Err(ApiError::not_found("Deal not found"));
    }
    if let Some(o) = owner {
        if !pd.users.get(&o).is_some_and(|u| u.active) {
            return Err(ApiError::bad_request(format!("User {o} does not exist or is not active")));
        }
    }
    let Some(deal) = pd.deals.get_mut(&id) else {
        return Err(ApiError::not_found("Deal not found"));
    };
    let previous_owner = deal.owner;
    let mut changed: Vec<&str> = Vec::new();
    if let Some(o) = owner {
        if o != deal.owner {
            deal.owner = o;
            deal.owner_history.push(o);
            changed.push("owner_id");
        }
    }
    let status = match (is_deleted, status) {
        (Some(true), _) => Some(DealStatus::Deleted),
        (Some(false), None) if deal.status == DealStatus::Deleted => Some(DealStatus::Open),
        (_, s) => s,
    };
    update_field(&mut deal.title, title, "title", &mut changed);
    update_field(&mut deal.value, value, "value", &mut changed);
    update_field(&mut deal.currency, currency, "currency", &mut changed);
    update_field(&mut deal.status, status, "status", &mut changed);
    update_field(&mut deal.is_archived, is_archived, "is_archived", &mut changed);
    for (key, v) in kept {
        if deal.extra.get(&key) != Some(&v) {
            if let Some((name, _)) = KEPT_FIELDS.iter().find(|(k, _)| *k == key) {
                changed.push(name);
            }
            deal.extra.insert(key, v);
        }
    }
    if !changed.is_empty() {
        deal.update_ms = now_ms();
    }
    let deal = deal.clone();
    let data = pd.deal_json(&deal, &[]);
    let mut details = Map::new();
    details.insert("deal_id".into(), id.into());
    details.insert("user_id".into(), deal.owner.into());
    if deal.owner != previous_owner {
        details.insert("previous_user_id".into(), previous_owner.into());
    }
    details.insert("changed".into(), json!(changed));
    world.journal.mutation(VENDOR, &op.method, &op.path, "deal.update", details);
    Ok(ok(data))
}
