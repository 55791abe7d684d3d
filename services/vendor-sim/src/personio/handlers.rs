//! Personio's HTTP handlers, the reads behind [`guard`] (bearer token, then the per-token
//! budget), and the token endpoint.

use axum::extract::rejection::FormRejection;
use axum::extract::{Path, Query, Request, State as AxState};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use serde_json::{json, Value};

use crate::extract::bearer;
use crate::sim::{now_ms, rfc3339_ms, Sim};
use crate::token::Token;

/// Personio's v2 error body (`application/problem+json`).
pub(super) fn problem(status: StatusCode, title: &str, detail: &str) -> Response {
    let body = json!({
        "personio_trace_id": uuid::Uuid::new_v4().to_string(),
        "timestamp": rfc3339_ms(now_ms()),
        "errors": [{ "title": title, "detail": detail }],
    });
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
    response
}

pub(super) fn too_many_requests(retry_after_secs: i64, _now_ms: i64) -> Response {
    let mut response = problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "rate limit exceeded");
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs.max(1)));
    response
}

/// A valid, unexpired token; then one request counted against its budget.
pub(super) async fn guard(AxState(sim): AxState<Sim>, req: Request, next: Next) -> Response {
    let now = now_ms();
    let decision = {
        let mut world = sim.lock();
        let p = &mut world.tenants.personio;
        let Some(token) = bearer(req.headers()).filter(|t| p.tokens.get(t.expose()).is_some_and(|exp| *exp > now))
        else {
            return problem(StatusCode::UNAUTHORIZED, "Unauthorized", "missing, unknown or expired access token");
        };
        p.limiter.check(token.expose(), now)
    };
    if !decision.allowed {
        return too_many_requests(decision.retry_after_secs(now), now);
    }
    next.run(req).await
}

/// `POST /v2/auth/token`: client credentials in a form body.
pub(super) async fn issue_token(
    AxState(sim): AxState<Sim>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    let oauth_error = |status: StatusCode, error: &str, description: &str| {
        (status, Json(json!({ "error": error, "error_description": description }))).into_response()
    };
    let Ok(Form(pairs)) = form else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be application/x-www-form-urlencoded",
        );
    };
    let field = |k: &str| pairs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty());
    match field("grant_type") {
        Some("client_credentials") => {}
        Some(_) => return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "only client_credentials"),
        None => return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
    let (Some(client_id), Some(secret)) = (field("client_id"), field("client_secret")) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "client_id and client_secret are required");
    };
    let now = now_ms();
    let mut world = sim.lock();
    let p = &mut world.tenants.personio;
    if client_id != p.client_id || !p.client_secret.matches(secret) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "client authentication failed");
    }
    let token = Token::new(format!("papi-{}", uuid::Uuid::new_v4().simple()));
    let ttl = p.token_ttl_secs;
    p.tokens.insert(token.clone(), now + (ttl as i64) * 1000);
    Json(json!({
        "access_token": token.expose(),
        "token_type": "Bearer",
        "expires_in": ttl,
        "scope": "personio:persons:read personio:organization:read",
    }))
    .into_response()
}

/// `GET /v2/persons/{id}`.
pub(super) async fn person(AxState(sim): AxState<Sim>, Path(id): Path<String>) -> Response {
    let world = sim.lock();
    let p = &world.tenants.personio;
    match p.persons.get(&id) {
        Some(person) => Json(p.person_json(person)).into_response(),
        None => problem(StatusCode::NOT_FOUND, "Person not found", "no person with this id"),
    }
}

/// `GET /v2/persons/{id}/employments`: one page holds them all (at most 50, as the limit allows).
pub(super) async fn employments(
    AxState(sim): AxState<Sim>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if let Some((k, v)) = query.iter().find(|(k, _)| k == "limit") {
        if !v.parse::<u32>().is_ok_and(|n| (1..=50).contains(&n)) {
            return problem(StatusCode::BAD_REQUEST, "Bad Request", &format!("{k} must be between 1 and 50"));
        }
    }
    let world = sim.lock();
    let p = &world.tenants.personio;
    let Some(person) = p.persons.get(&id) else {
        return problem(StatusCode::NOT_FOUND, "Person not found", "no person with this id");
    };
    let data: Vec<Value> = person.employments.iter().map(|e| p.employment_json(person, e)).collect();
    Json(
        json!({ "_data": data, "_meta": { "links": { "self": { "href": format!("/v2/persons/{id}/employments") } } } }),
    )
    .into_response()
}

/// `GET /v2/org-units/{id}?type=department|team` (`type` is required).
pub(super) async fn org_unit(
    AxState(sim): AxState<Sim>,
    Path(id): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let Some(kind) = query.iter().find(|(k, _)| k == "type").map(|(_, v)| v.to_ascii_lowercase()) else {
        return problem(StatusCode::BAD_REQUEST, "Bad Request", "the type query parameter is required");
    };
    let world = sim.lock();
    match world.tenants.personio.org_units.get(&id).filter(|u| u.kind == kind) {
        Some(unit) => Json(json!({ "id": unit.id, "type": unit.kind, "name": unit.name })).into_response(),
        None => problem(StatusCode::NOT_FOUND, "Not Found", "the Org Unit with the provided id could not be found"),
    }
}
