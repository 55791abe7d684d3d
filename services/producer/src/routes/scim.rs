//! `/scim/v2/*` (docs/contract.md §6): authentication, media types, query
//! parameters and the SCIM error message; the resources' shapes are
//! [`crate::scim`]'s, the writes and reads `lifecycle_ops::scim`'s.

use crate::scim::{bulk, off_thread, Groups, Kind, Scim, ScimConfig, Users, Written};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use lifecycle_ops::scim::Change;
use lifecycle_scim::filter::{self, Resource};
use lifecycle_scim::list::{list_response, Page};
use lifecycle_scim::resource::Projection;
use lifecycle_scim::{discovery, ScimError};
use serde_json::Value;
use tracing::warn;

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/scim/v2/Users", get(list::<Users>).post(create::<Users>))
        .route(
            "/scim/v2/Users/{id}",
            get(read::<Users>).put(update::<Users, false>).patch(update::<Users, true>).delete(delete::<Users>),
        )
        .route("/scim/v2/Groups", get(list::<Groups>).post(create::<Groups>))
        .route(
            "/scim/v2/Groups/{id}",
            get(read::<Groups>).put(update::<Groups, false>).patch(update::<Groups, true>).delete(delete::<Groups>),
        )
        // Entra's API-driven inbound provisioning (docs/integrators/scim-entra.md).
        .route("/scim/v2/bulkUpload", axum::routing::post(bulk_upload))
        .route("/scim/v2/bulkUpload/{id}", get(bulk_status))
        .route("/scim/v2/ServiceProviderConfig", get(service_provider_config))
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/ResourceTypes/{id}", get(resource_type))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Schemas/{id}", get(schema))
        .route("/scim/v2/{*rest}", axum::routing::any(unknown))
        .layer(axum::middleware::from_fn_with_state(state, traced))
}

/// A SCIM write is a trace of its own (or continues the caller's
/// `traceparent`): the runs it stores keep its context, so their worker runs
/// join it. Reads are not traced.
async fn traced(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use tracing::Instrument;
    // Reads, and callers without a valid token, are not traced: the latter
    // may not choose a trace to join (`traceparent`) nor fill the collector.
    if request.method() == axum::http::Method::GET || authenticate(&state, request.headers()).is_err() {
        return next.run(request).await;
    }
    let span = tracing::info_span!("scim", otel.kind = "server", http.request.method = %request.method(), http.response.status_code = tracing::field::Empty);
    lifecycle_telemetry::continue_from(&span, super::events::traceparent(request.headers()));
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// A SCIM error as a response.
/// The second field: the credential check's verdict, for the throttle
/// (`lifecycle_listener::AuthVerdict`; set by [`authenticate`] only).
struct Refusal(ScimError, Option<lifecycle_listener::AuthVerdict>);

impl From<ScimError> for Refusal {
    fn from(e: ScimError) -> Self {
        Refusal(e, None)
    }
}

impl From<lifecycle_ops::scim::Error> for Refusal {
    fn from(e: lifecycle_ops::scim::Error) -> Self {
        Refusal(e.into(), None)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let Refusal(e, verdict) = self;
        if e.status >= 500 {
            warn!(status = e.status, detail = %e.detail, "SCIM request failed");
        } else {
            tracing::info!(status = e.status, scim_type = e.scim_type.map(|t| t.as_str()), detail = %e.detail, "SCIM request refused");
        }
        metrics::counter!("lifecycle_scim_refused_total", "status" => e.status.to_string()).increment(1);
        let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = scim_json(status, &e.to_json());
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"scim\""));
        }
        // SCIM's 503 is the database not answering (lifecycle_ops::scim::Error's
        // store errors): the IdP may retry, as the intake's callers are told.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static(crate::problem::STORE_RETRY_AFTER));
        }
        match verdict {
            Some(v) => v.mark(r),
            None => r,
        }
    }
}

type Reply = Result<Response, Refusal>;

fn scim_json(status: StatusCode, body: &Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(lifecycle_scim::MEDIA_TYPE));
    r
}

fn with_version(mut r: Response, version: i64) -> Response {
    if let Ok(v) = HeaderValue::from_str(&lifecycle_scim::etag(version)) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// The SCIM configuration, once the bearer token is one of `[scim] tokens`
/// (each compared in constant time, none skipped).
fn authenticate<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<&'a ScimConfig, Refusal> {
    let config = state.scim.as_ref();
    if config.tokens.is_empty() {
        return Err(ScimError::not_found("SCIM is not configured on this server ([scim] tokens)").into());
    }
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| ScimError::unauthorized("an Authorization: Bearer <token> header is required"))?;
    let ok = config.tokens.iter().fold(false, |acc, t| acc | t.matches(presented.as_bytes()));
    if ok {
        Ok(config)
    } else {
        // A wrong token: the throttle counts it (a missing one is no verdict).
        Err(Refusal(
            ScimError::unauthorized("the bearer token is not valid"),
            Some(lifecycle_listener::AuthVerdict::Wrong),
        ))
    }
}

/// What serves the request, once the caller is [authenticated](authenticate).
fn scim<'a>(state: &'a AppState, headers: &HeaderMap) -> Result<Scim<'a>, Refusal> {
    let config = authenticate(state, headers)?;
    Ok(crate::scim::scim_for(state, config))
}

/// The body's media type: `Some(true)` for `application/scim+json`,
/// `Some(false)` for `application/json`, None for anything else.
fn scim_media(headers: &HeaderMap) -> Option<bool> {
    let m = headers.get(header::CONTENT_TYPE)?.to_str().ok()?.parse::<mime::Mime>().ok()?;
    // `scim+json` parses as subtype `scim` with the suffix `json`.
    match (m.type_() == mime::APPLICATION, m.subtype() == "scim" && m.suffix() == Some(mime::JSON)) {
        (true, true) => Some(true),
        (true, false) if m.subtype() == mime::JSON => Some(false),
        _ => None,
    }
}

/// The JSON body: `application/scim+json` or `application/json`, at most
/// `[scim] max_body_bytes` (`max_group_body_bytes` for a group's write).
async fn read_json<E: Kind>(config: &ScimConfig, headers: &HeaderMap, body: Body) -> Result<Value, ScimError> {
    if scim_media(headers).is_none() {
        return Err(ScimError::new(
            415,
            None,
            "send the body as Content-Type: application/scim+json (or application/json)",
        ));
    }
    let limit = if E::RESOURCE == Resource::Groups { config.max_group_body_bytes } else { config.max_body_bytes };
    read_body(limit, headers, body).await
}

/// The JSON body, at most `limit` bytes, its media type checked by the caller.
async fn read_body(limit: usize, headers: &HeaderMap, body: Body) -> Result<Value, ScimError> {
    let bytes = crate::routes::events::read_body(headers, body, limit)
        .await
        .map_err(|p| ScimError::new(p.status(), None, p.detail().to_string()))?;
    // Repeated keys and control characters refused (lifecycle_scim::body).
    off_thread(move || lifecycle_scim::body::parse(&bytes)).await
}

/// A query parameter, its name compared without regard to case.
fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn int_param(q: &[(String, String)], name: &str) -> Result<Option<i64>, ScimError> {
    param(q, name)
        .map(|v| v.trim().parse::<i64>().map_err(|_| ScimError::invalid_value(format!("{name} must be an integer"))))
        .transpose()
}

fn page(config: &ScimConfig, q: &[(String, String)]) -> Result<Page, ScimError> {
    Ok(Page::new(int_param(q, "startIndex")?, int_param(q, "count")?, config.max_page_size))
}

fn projection(q: &[(String, String)]) -> Projection {
    Projection::parse(param(q, "attributes"), param(q, "excludedAttributes"))
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok())
}

fn created(w: Written) -> Response {
    let location = w.resource["meta"]["location"].as_str().and_then(|l| HeaderValue::from_str(l).ok());
    let mut r = with_version(scim_json(StatusCode::CREATED, &w.resource), w.version);
    if let Some(l) = location {
        r.headers_mut().insert(header::LOCATION, l);
    }
    r
}

fn written(w: Written, q: &[(String, String)]) -> Response {
    let mut resource = w.resource;
    projection(q).apply_value(&mut resource);
    with_version(scim_json(StatusCode::OK, &resource), w.version)
}

/// Wakes the outbox relay when a write stored events, and the push drainer
/// after a group's write (a big one stores a push and no event).
fn wake<E: Kind>(state: &AppState, events: usize) {
    if events > 0 {
        state.relay_wake.notify_one();
    }
    if E::RESOURCE == Resource::Groups {
        state.scim.push_wake.notify_one();
    }
}

// ---- Users and Groups ----

async fn list<E: Kind>(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Reply {
    let s = scim(&state, &headers)?;
    let page = page(s.config, &q)?;
    let filter = param(&q, "filter").map(|f| filter::parse(f, E::RESOURCE)).transpose()?;
    let (total, resources) = E::list(&s, filter, page, &projection(&q)).await?;
    Ok(scim_json(StatusCode::OK, &list_response(total, page, resources)))
}

async fn create<E: Kind>(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    let s = scim(&state, &headers)?;
    let value = read_json::<E>(s.config, &headers, body).await?;
    let w = E::create(&s, &value).await?;
    wake::<E>(&state, w.events);
    Ok(created(w))
}

async fn read<E: Kind>(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
) -> Reply {
    let s = scim(&state, &headers)?;
    lifecycle_scim::body::check_id(&id)?;
    let (resource, version) = E::get(&s, &id, &projection(&q)).await?;
    Ok(with_version(scim_json(StatusCode::OK, &resource), version))
}

/// PUT (`PATCH` false) or PATCH: the body read, the change written, the relay woken.
async fn update<E: Kind, const PATCH: bool>(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<Vec<(String, String)>>,
    body: Body,
) -> Reply {
    let s = scim(&state, &headers)?;
    lifecycle_scim::body::check_id(&id)?;
    let value = read_json::<E>(s.config, &headers, body).await?;
    let change = if PATCH {
        let max = match E::RESOURCE {
            Resource::Groups => lifecycle_scim::patch::MAX_GROUP_ELEMENTS,
            _ => lifecycle_scim::patch::MAX_ELEMENTS,
        };
        Change::Patch(off_thread(move || lifecycle_scim::patch::parse_request_with(&value, max)).await?)
    } else {
        Change::Replace(value)
    };
    // Members stay out of a group PATCH's answer unless asked for: a large group's would be large.
    let asked = param(&q, "attributes").is_some() || param(&q, "excludedAttributes").is_some();
    let mut w = E::update(&s, &id, change, if_match(&headers), !PATCH || asked).await?;
    wake::<E>(&state, w.events);
    if PATCH && E::RESOURCE == Resource::Groups && !asked {
        if let Value::Object(o) = &mut w.resource {
            o.remove("members");
        }
    }
    Ok(written(w, &q))
}

async fn delete<E: Kind>(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let s = scim(&state, &headers)?;
    lifecycle_scim::body::check_id(&id)?;
    let events = E::delete(&s, &id, if_match(&headers)).await?;
    wake::<E>(&state, events);
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- Entra's bulkUpload ----

/// `POST /bulkUpload`: the request checked and stored, answered 202 with
/// where to read its results (`Location`); the work is [`bulk::run`]'s. The
/// same request again is 202 with the same id, `Idempotent-Replayed: true`.
async fn bulk_upload(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Reply {
    let s = scim(&state, &headers)?;
    // Entra requires application/scim+json (learn.microsoft.com, synchronization-synchronizationjob-post-bulkupload).
    if scim_media(&headers) != Some(true) {
        return Err(ScimError::new(
            415,
            Some(lifecycle_scim::ScimType::InvalidSyntax),
            "send a BulkRequest as Content-Type: application/scim+json",
        )
        .into());
    }
    let value = read_body(s.config.max_body_bytes, &headers, body).await?;
    let (value, ops) = off_thread(move || bulk::parse(&value).map(|ops| (value, ops))).await?;
    let accepted = bulk::accept(s.ops.db, &value, &ops).await?;
    if !accepted.replayed {
        s.config.bulk_wake.notify_one();
    }
    let mut r = scim_json(StatusCode::ACCEPTED, &bulk::render(&bulk::status(s.ops.db, &accepted.id).await?, &s.base));
    if let Ok(l) = HeaderValue::from_str(&format!("{}/bulkUpload/{}", s.base, accepted.id)) {
        r.headers_mut().insert(header::LOCATION, l);
    }
    if accepted.replayed {
        r.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(r)
}

/// `GET /bulkUpload/{id}`: each operation's result so far.
async fn bulk_status(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    let s = scim(&state, &headers)?;
    lifecycle_scim::body::check_id(&id)?;
    Ok(scim_json(StatusCode::OK, &bulk::render(&bulk::status(s.ops.db, &id).await?, &s.base)))
}

// ---- discovery ----

async fn service_provider_config(State(state): State<AppState>, headers: HeaderMap) -> Reply {
    let s = scim(&state, &headers)?;
    Ok(scim_json(StatusCode::OK, &discovery::service_provider_config(&s.base, s.config.max_page_size)))
}

async fn resource_types(State(state): State<AppState>, headers: HeaderMap) -> Reply {
    Ok(all_of(discovery::resource_types(&scim(&state, &headers)?.base)))
}

async fn resource_type(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    one_of(discovery::resource_types(&scim(&state, &headers)?.base), &id, "resource type")
}

async fn schemas(State(state): State<AppState>, headers: HeaderMap) -> Reply {
    Ok(all_of(discovery::schemas(&scim(&state, &headers)?.base)))
}

async fn schema(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Reply {
    one_of(discovery::schemas(&scim(&state, &headers)?.base), &id, "schema")
}

/// A discovery list, whole in one page.
fn all_of(all: Vec<Value>) -> Response {
    let n = all.len() as i64;
    scim_json(StatusCode::OK, &list_response(n as u64, Page::new(None, Some(n), n as u64), all))
}

/// The one of a discovery list whose `id` is `id` (`what` names it when none is).
fn one_of(all: Vec<Value>, id: &str, what: &str) -> Reply {
    let found = all.into_iter().find(|r| r["id"] == id);
    found.map(|r| scim_json(StatusCode::OK, &r)).ok_or_else(|| ScimError::not_found(format!("no {what} {id:?}")).into())
}

async fn unknown(State(state): State<AppState>, headers: HeaderMap) -> Reply {
    authenticate(&state, &headers)?;
    Err(ScimError::not_found(
        "no such SCIM endpoint: /Users, /Groups, /bulkUpload, /ServiceProviderConfig, /ResourceTypes, /Schemas",
    )
    .into())
}
