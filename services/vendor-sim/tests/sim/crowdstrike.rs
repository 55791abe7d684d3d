//! CrowdStrike Falcon: OAuth2 tokens and their expiry, regions, scopes, ids-only queries and
//! batched entities, roles granted and revoked separately, rate limits and their headers.

use crate::common::{into_reply, now_ms, Reply, TestSim};
use lifecycle_vendor_sim::{Config, Vendor};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ID: &str = "cs-client-id";
const SECRET: &str = "cs-client-secret";

fn url(sim: &TestSim, path: &str) -> String {
    format!("{}{}", sim.running.base_url(Vendor::CrowdStrike), path)
}

async fn token_reply(sim: &TestSim, path: &str, form: &[(&str, &str)]) -> Reply {
    into_reply(sim.http.post(url(sim, path)).form(form).send().await.unwrap()).await
}

async fn token_for(sim: &TestSim, id: &str, secret: &str) -> String {
    let r = token_reply(sim, "/oauth2/token", &[("client_id", id), ("client_secret", secret)]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    r.body["access_token"].as_str().unwrap().to_owned()
}

async fn token(sim: &TestSim) -> String {
    token_for(sim, ID, SECRET).await
}

async fn cs(sim: &TestSim, method: Method, path: &str, token: &str, body: Option<Value>) -> Reply {
    let mut req = sim.http.request(method, url(sim, path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_reply(req.send().await.unwrap()).await
}

async fn get(sim: &TestSim, path: &str, token: &str) -> Reply {
    cs(sim, Method::GET, path, token, None).await
}

fn first_error(r: &Reply) -> String {
    r.body["errors"][0]["message"].as_str().unwrap_or_default().to_owned()
}

async fn uid_of(sim: &TestSim, username: &str) -> String {
    let state = sim.state().await;
    state["crowdstrike"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == username)
        .unwrap_or_else(|| panic!("no user {username}"))["uid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn the_token_endpoint_issues_30_minute_tokens_for_form_encoded_credentials() {
    let sim = TestSim::start().await;
    let r = token_reply(
        &sim,
        "/oauth2/token",
        &[("grant_type", "client_credentials"), ("client_id", ID), ("client_secret", SECRET)],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 1800);
    let issued = r.body["access_token"].as_str().unwrap().to_owned();
    assert!(issued.len() > 20);

    let r = token_reply(&sim, "/oauth2/token", &[("client_id", ID), ("client_secret", "wrong")]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(first_error(&r), "Failed to issue access token - Not Authorized");
    assert_eq!(r.body["errors"][0]["code"], 403);
    let r = token_reply(&sim, "/oauth2/token", &[("client_id", ID)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r =
        token_reply(&sim, "/oauth2/token", &[("grant_type", "password"), ("client_id", ID), ("client_secret", SECRET)])
            .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let json_body = sim
        .http
        .post(url(&sim, "/oauth2/token"))
        .json(&json!({"client_id": ID, "client_secret": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST, "the body is a form, not JSON");

    let state = sim.state().await;
    assert_eq!(state["crowdstrike"]["tokens"]["issued"], 1);
    let text = state.to_string();
    assert!(!text.contains(SECRET) && !text.contains(&issued), "no secrets in state");
    let calls = sim.control(Method::GET, "/_sim/calls?vendor=crowdstrike", None).await.to_string();
    assert!(!calls.contains(SECRET) && !calls.contains(&issued), "nor in the call log");
}

#[tokio::test]
async fn an_expired_or_unknown_token_is_401() {
    let sim = TestSim::start().await;
    let r = get(&sim, "/user-roles/queries/roles/v1", "nope").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(first_error(&r), "access denied, invalid bearer token");
    assert!(r.headers.get("x-ratelimit-limit").is_none(), "no rate-limit headers before auth");
    let r = into_reply(sim.http.get(url(&sim, "/user-roles/queries/roles/v1")).send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let config = sim.control(Method::POST, "/_sim/config", Some(json!({"crowdstrike": {"token_ttl_secs": 1}}))).await;
    assert_eq!(config["crowdstrike"]["token_ttl_secs"], 1);
    let r = token_reply(&sim, "/oauth2/token", &[("client_id", ID), ("client_secret", SECRET)]).await;
    assert_eq!(r.body["expires_in"], 1);
    let t = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get(&sim, "/user-roles/queries/roles/v1", &t).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = get(&sim, "/user-roles/queries/roles/v1", &t).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "expired");
    assert_eq!(first_error(&r), "access denied, invalid bearer token");
}

#[tokio::test]
async fn the_token_ttl_flag_shortens_every_token() {
    let mut config = Config::ephemeral();
    config.crowdstrike.token_ttl_secs = 2;
    let sim = TestSim::start_with(config).await;
    let r = token_reply(&sim, "/oauth2/token", &[("client_id", ID), ("client_secret", SECRET)]).await;
    assert_eq!(r.body["expires_in"], 2);
}

#[tokio::test]
async fn other_regions_refuse_the_tenants_credentials_instead_of_redirecting() {
    let sim = TestSim::start().await;
    // The tenant lives in us-1: /crowdstrike and /crowdstrike/us-1 are its host.
    let t = token_for(&sim, ID, SECRET).await;
    let r = token_reply(&sim, "/us-1/oauth2/token", &[("client_id", ID), ("client_secret", SECRET)]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(get(&sim, "/us-1/user-roles/queries/roles/v1", &t).await.status, StatusCode::OK);
    for region in ["us-2", "eu-1", "us-gov-1"] {
        let r = token_reply(&sim, &format!("/{region}/oauth2/token"), &[("client_id", ID), ("client_secret", SECRET)])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{region}");
        assert_eq!(first_error(&r), "Failed to issue access token - Not Authorized");
        assert!(r.headers.get("location").is_none(), "never a redirect");
        let r = get(&sim, &format!("/{region}/user-roles/queries/roles/v1"), &t).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a us-1 token means nothing in {region}");
    }
    let r = get(&sim, "/mars-1/user-roles/queries/roles/v1", &t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A tenant in eu-1: the base prefix is eu-1, and us-1 is foreign.
    let mut config = Config::ephemeral();
    config.crowdstrike.region = "eu-1".into();
    let eu = TestSim::start_with(config).await;
    let r = token_reply(&eu, "/eu-1/oauth2/token", &[("client_id", ID), ("client_secret", SECRET)]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = token_reply(&eu, "/us-1/oauth2/token", &[("client_id", ID), ("client_secret", SECRET)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(eu.state().await["crowdstrike"]["region"], "eu-1");
}

#[tokio::test]
async fn each_scope_gates_its_methods() {
    let sim = TestSim::start().await;
    sim.seed(json!({"crowdstrike": {"api_clients": [
        {"client_id": "reader", "client_secret": "reader-secret", "scopes": ["user-management:read"]}
    ]}}))
    .await;
    let t = token_for(&sim, "reader", "reader-secret").await;
    assert_eq!(get(&sim, "/users/queries/user-uids/v1", &t).await.status, StatusCode::OK);
    let body = json!({"username": "x@example.com", "first_name": "X", "last_name": "Y"});
    let r = cs(&sim, Method::POST, "/users/entities/users/v1", &t, Some(body)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(first_error(&r), "access denied, authorization failed");
    assert!(r.headers.get("x-ratelimit-limit").is_some());
    assert!(sim.state().await["crowdstrike"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .all(|u| u["username"] != "x@example.com"));
}

#[tokio::test]
async fn queries_return_ids_only_with_offset_pagination_up_to_500() {
    let sim = TestSim::start().await;
    let users: Vec<Value> = (0..250)
        .map(|i| json!({"username": format!("p{i:03}@example.com"), "first_name": "P", "last_name": format!("{i}")}))
        .collect();
    sim.seed(json!({"crowdstrike": {"users": users}})).await;
    let t = token(&sim).await;

    let r = get(&sim, "/users/queries/user-uids/v1", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.body["resources"].as_array().unwrap();
    assert_eq!(page.len(), 100, "default page size");
    assert!(page.iter().all(Value::is_string), "ids only");
    assert_eq!(r.body["meta"]["pagination"], json!({"offset": 0, "limit": 100, "total": 252}));

    let r = get(&sim, "/users/queries/user-uids/v1?offset=200&limit=100", &t).await;
    assert_eq!(r.body["resources"].as_array().unwrap().len(), 52);
    let r = get(&sim, "/users/queries/user-uids/v1?offset=0&limit=500", &t).await;
    assert_eq!(r.body["resources"].as_array().unwrap().len(), 252);
    let r = get(&sim, "/users/queries/user-uids/v1?limit=501", &t).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(first_error(&r).contains("500"));
    let r = get(&sim, "/users/queries/user-uids/v1?offset=-1", &t).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);

    let r = get(&sim, "/user-roles/queries/roles/v1", &t).await;
    let roles: Vec<&str> = r.body["resources"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for role in ["falcon_admin", "falcon_analyst", "detection_monitor", "falcon_console_guest"] {
        assert!(roles.contains(&role), "{role} in {roles:?}");
    }
}

#[tokio::test]
async fn the_uid_filter_finds_one_user_by_login_address_ignoring_case() {
    let sim = TestSim::start().await;
    let users: Vec<Value> = (0..600)
        .map(|i| json!({"username": format!("f{i}@example.com"), "first_name": "F", "last_name": format!("{i}")}))
        .chain([json!({"username": "Ada.Lovelace@Example.com", "first_name": "Ada", "last_name": "Lovelace"})])
        .collect();
    sim.seed(json!({"crowdstrike": {"users": users}})).await;
    let ada = uid_of(&sim, "Ada.Lovelace@Example.com").await;
    let t = token(&sim).await;
    let uids = |r: &Reply| -> Vec<String> {
        r.body["resources"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };

    for asked in ["ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM", "Ada.Lovelace@Example.com"] {
        let r = get(&sim, &format!("/users/queries/user-uids/v1?uid={asked}"), &t).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(uids(&r), std::slice::from_ref(&ada), "{asked}: the one user, however the address is cased");
        assert_eq!(r.body["meta"]["pagination"]["total"], 1);
    }
    // Exact, not a prefix or a substring; someone absent is an empty list, not an error.
    for absent in ["ada.lovelace@example", "ada.lovelace", "lovelace@example.com", "nobody@example.com"] {
        let r = get(&sim, &format!("/users/queries/user-uids/v1?uid={absent}"), &t).await;
        assert_eq!((r.status, uids(&r).len()), (StatusCode::OK, 0), "{absent}: {}", r.body);
        assert_eq!(r.body["meta"]["pagination"]["total"], 0);
    }
    // Another query parameter the endpoint does not know changes nothing, as elsewhere.
    let r = get(&sim, "/users/queries/user-uids/v1?uid=f599@example.com&sort=username.asc", &t).await;
    assert_eq!(uids(&r), [uid_of(&sim, "f599@example.com").await]);
    // One address per request; an empty one is refused rather than read as "everyone".
    let r = get(&sim, "/users/queries/user-uids/v1?uid=f1@example.com&uid=f2@example.com", &t).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(first_error(&r).contains("one login e-mail"), "{}", r.body);
    let r = get(&sim, "/users/queries/user-uids/v1?uid=", &t).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Without the filter the listing is as before: every uid, paginated.
    let r = get(&sim, "/users/queries/user-uids/v1?limit=500", &t).await;
    assert_eq!((uids(&r).len(), &r.body["meta"]["pagination"]["total"]), (500, &json!(603)));

    // A deleted user is no longer found.
    let r = cs(&sim, Method::DELETE, &format!("/users/entities/users/v1?user_uuid={ada}"), &t, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get(&sim, "/users/queries/user-uids/v1?uid=ada.lovelace@example.com", &t).await;
    assert_eq!((r.status, uids(&r).len()), (StatusCode::OK, 0));
}

#[tokio::test]
async fn entities_take_at_most_100_ids_and_carry_no_roles() {
    let sim = TestSim::start().await;
    let users: Vec<Value> = (0..120)
        .map(|i| json!({"username": format!("b{i}@example.com"), "first_name": "B", "last_name": format!("{i}")}))
        .collect();
    sim.seed(json!({"crowdstrike": {"users": users}})).await;
    let t = token(&sim).await;
    let all = get(&sim, "/users/queries/user-uids/v1?limit=500", &t).await.body["resources"].clone();
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let query = |n: usize| ids[..n].iter().map(|id| format!("ids={id}")).collect::<Vec<_>>().join("&");

    let r = get(&sim, &format!("/users/entities/users/v1?{}", query(100)), &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["resources"].as_array().unwrap().len(), 100);
    let r = get(&sim, &format!("/users/entities/users/v1?{}", query(101)), &t).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(first_error(&r).contains("at most 100"), "{}", r.body);

    let grace = uid_of(&sim, "grace@example.com").await;
    let r = get(&sim, &format!("/users/entities/users/v1?ids={grace}"), &t).await;
    let user = &r.body["resources"][0];
    assert_eq!(user["uid"], grace.as_str());
    assert_eq!(user["username"], "grace@example.com");
    assert_eq!(user["first_name"], "Grace");
    assert!(user["customer_id"].is_string() && user["created_at"].is_string());
    assert!(user.get("roles").is_none(), "role data is not embedded in the user");

    let r =
        get(&sim, &format!("/users/entities/users/v1?ids={grace}&ids=00000000-0000-4000-8000-000000000000"), &t).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["resources"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["errors"][0]["code"], 404, "the missing one is named in errors");
    let r = get(&sim, "/users/entities/users/v1?ids=00000000-0000-4000-8000-000000000000", &t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&sim, "/users/entities/users/v1", &t).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn creating_a_user_ignores_inline_roles_and_refuses_a_taken_username() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    let body = json!({"username": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace",
                      "roles": ["falcon_admin"], "roleIds": ["falcon_admin"]});
    let r = cs(&sim, Method::POST, "/users/entities/users/v1", &t, Some(body)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let uid = r.body["resources"][0]["uid"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&uid).is_ok());

    let r = get(&sim, &format!("/user-roles/queries/user-role-ids-by-user-uuid/v1?user_uuid={uid}"), &t).await;
    assert_eq!(r.body["resources"], json!([]), "no roles: they are never set at creation");
    let state = sim.state().await;
    let log = state["crowdstrike"]["log"].as_array().unwrap();
    assert_eq!(log[0]["action"], "user.create");
    assert_eq!(log[0]["ignored_fields"], json!(["roleIds", "roles"]));

    let dup = json!({"username": "ADA@example.com", "first_name": "A", "last_name": "L"});
    let r = cs(&sim, Method::POST, "/users/entities/users/v1", &t, Some(dup)).await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(first_error(&r).contains("already exists"));
    let r = cs(&sim, Method::POST, "/users/entities/users/v1", &t, Some(json!({"username": "b@example.com"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = cs(
        &sim,
        Method::POST,
        "/users/entities/users/v1",
        &t,
        Some(json!({"username": "nope", "first_name": "N", "last_name": "O"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn patch_and_delete_take_user_uuid_as_a_query_parameter() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    let alan = uid_of(&sim, "alan@example.com").await;

    let r =
        cs(&sim, Method::PATCH, "/users/entities/users/v1", &t, Some(json!({"user_uuid": alan, "first_name": "Al"})))
            .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(first_error(&r).contains("query parameter"), "{}", r.body);
    let r = cs(
        &sim,
        Method::PATCH,
        &format!("/users/entities/users/v1?user_uuid={alan}"),
        &t,
        Some(json!({"first_name": "Al"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["resources"][0]["first_name"], "Al");
    assert_eq!(r.body["resources"][0]["last_name"], "Turing");

    let r = cs(&sim, Method::DELETE, "/users/entities/users/v1", &t, Some(json!({"user_uuid": alan}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = cs(&sim, Method::DELETE, &format!("/users/entities/users/v1?user_uuid={alan}"), &t, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["resources"], json!([alan]));
    assert_eq!(r.body["errors"], json!([]));
    let r = cs(&sim, Method::DELETE, &format!("/users/entities/users/v1?user_uuid={alan}"), &t, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "deletion is immediate and irreversible");

    let state = sim.state().await;
    let log = state["crowdstrike"]["log"].as_array().unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["user.update", "user.delete"]);
    assert_eq!(log[0]["changed"], json!(["first_name"]));
    assert_eq!(log[1]["roles_at_delete"], json!(["detection_monitor"]));
    assert_eq!(log[1]["username"], "alan@example.com");
}

#[tokio::test]
async fn role_ids_are_case_sensitive_and_revoking_an_unassigned_role_is_an_error() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    let alan = uid_of(&sim, "alan@example.com").await;
    let grant = |roles: Value| json!({"roleIds": roles, "user_uuid": alan});

    let r =
        cs(&sim, Method::POST, "/user-roles/entities/user-roles/v1", &t, Some(grant(json!(["Falcon_Admin"])))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(first_error(&r).contains("Falcon_Admin"));
    let r = cs(
        &sim,
        Method::POST,
        "/user-roles/entities/user-roles/v1",
        &t,
        Some(grant(json!(["falcon_admin", "falcon_analyst"]))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["resources"][0]["role_id"], "falcon_admin");
    assert_eq!(r.body["resources"][0]["user_uuid"], alan.as_str());
    let r = get(&sim, &format!("/user-roles/queries/user-role-ids-by-user-uuid/v1?user_uuid={alan}"), &t).await;
    assert_eq!(r.body["resources"], json!(["detection_monitor", "falcon_admin", "falcon_analyst"]));

    let revoke = |role: &str| format!("/user-roles/entities/user-roles/v1?user_uuid={alan}&roleId={role}");
    let r = cs(&sim, Method::DELETE, &revoke("falcon_console_guest"), &t, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(first_error(&r).contains("not assigned"), "{}", r.body);
    let r = cs(&sim, Method::DELETE, &revoke("falcon_admin"), &t, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["resources"], json!(["falcon_admin"]));
    let r = cs(&sim, Method::DELETE, &revoke("falcon_admin"), &t, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a second revoke is an error too");
    let r = cs(&sim, Method::DELETE, "/user-roles/entities/user-roles/v1?roleId=falcon_analyst", &t, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "user_uuid is required");

    let r = get(&sim, "/user-roles/entities/user-roles/v1?ids=falcon_admin", &t).await;
    assert_eq!(r.body["resources"][0]["display_name"], "Falcon Administrator");

    let state = sim.state().await;
    let log = state["crowdstrike"]["log"].as_array().unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["role.grant", "role.revoke"]);
    assert_eq!(log[0]["role_ids"], json!(["falcon_admin", "falcon_analyst"]));
    assert_eq!(log[1]["role_id"], "falcon_admin");
}

#[tokio::test]
async fn one_revoke_takes_several_roles_all_or_nothing() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    let grace = uid_of(&sim, "grace@example.com").await;
    let roles = |r: &Reply| r.body["resources"].clone();
    let held = format!("/user-roles/queries/user-role-ids-by-user-uuid/v1?user_uuid={grace}");
    assert_eq!(roles(&get(&sim, &held, &t).await), json!(["falcon_admin", "falcon_analyst"]));

    // One role not held: the whole request is refused, and nothing is revoked.
    let path = |ids: &[&str]| {
        let q: String = ids.iter().map(|r| format!("&roleId={r}")).collect();
        format!("/user-roles/entities/user-roles/v1?user_uuid={grace}{q}")
    };
    let r = cs(&sim, Method::DELETE, &path(&["falcon_admin", "detection_monitor"]), &t, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(first_error(&r).contains("detection_monitor is not assigned"), "{}", r.body);
    assert_eq!(roles(&get(&sim, &held, &t).await), json!(["falcon_admin", "falcon_analyst"]));

    let r = cs(&sim, Method::DELETE, &path(&["falcon_admin", "falcon_analyst"]), &t, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(roles(&r), json!(["falcon_admin", "falcon_analyst"]));
    assert_eq!(roles(&get(&sim, &held, &t).await), json!([]));
    let state = sim.state().await;
    let log = state["crowdstrike"]["log"].as_array().unwrap();
    let revoked: Vec<&str> = log.iter().map(|e| e["role_id"].as_str().unwrap()).collect();
    assert_eq!(revoked, ["falcon_admin", "falcon_analyst"], "one entry per role revoked");
}

#[tokio::test]
async fn the_per_minute_budget_is_per_api_client_with_an_epoch_retry_after() {
    let sim = TestSim::start().await;
    sim.seed(json!({"crowdstrike": {"api_clients": [
        {"client_id": "other", "client_secret": "other-secret", "scopes": ["user-management:read"]}
    ]}}))
    .await;
    sim.control(Method::POST, "/_sim/config", Some(json!({"crowdstrike": {"rate_limit": {"requests": 4}}}))).await;
    // Not near the end of a minute, so all four land in one window.
    let into = now_ms().rem_euclid(60_000);
    if into > 55_000 {
        tokio::time::sleep(std::time::Duration::from_millis((60_000 - into + 50) as u64)).await;
    }
    let t = token(&sim).await; // the token request counts too
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = get(&sim, "/user-roles/queries/roles/v1", &t).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header_i64("x-ratelimit-limit"), 4);
        remaining.push(r.header_i64("x-ratelimit-remaining"));
    }
    assert_eq!(remaining, [2, 1, 0]);
    let r = get(&sim, "/user-roles/queries/roles/v1", &t).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["errors"][0]["code"], 429);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    let retry_at_ms = r.header_i64("x-ratelimit-retryafter") * 1000;
    let now = now_ms();
    assert!(retry_at_ms > now && retry_at_ms - now <= 61_000, "a Unix timestamp within the minute: {retry_at_ms}");
    assert_eq!(retry_at_ms % 60_000, 0, "the end of the minute window");

    let other = token_for(&sim, "other", "other-secret").await;
    assert_eq!(get(&sim, "/user-roles/queries/roles/v1", &other).await.status, StatusCode::OK, "its own budget");
    assert_eq!(sim.state().await["crowdstrike"]["counters"]["rate_limited"], 1);
}

#[tokio::test]
async fn an_injected_429_looks_like_falcons_own() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    sim.fault(json!({"vendor": "crowdstrike", "path": "/users/**", "kind": "status", "status": 429})).await;
    let r = get(&sim, "/users/queries/user-uids/v1", &t).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first_error(&r), "API rate limit exceeded.");
    assert_eq!(r.header_i64("x-ratelimit-limit"), 6000);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    assert!(r.header_i64("x-ratelimit-retryafter") * 1000 > now_ms());
    let r = get(&sim, "/users/queries/user-uids/v1", &t).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = sim.fault(json!({"vendor": "crowdstrike", "path": "/users/**", "kind": "status", "status": 503})).await;
    assert!(r["id"].is_u64());
    let r = get(&sim, "/users/queries/user-uids/v1", &t).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["errors"][0]["code"], 503);
}

#[tokio::test]
async fn seeds_are_all_or_nothing_and_knobs_are_validated() {
    let sim = TestSim::start_empty().await;
    let state = sim.state().await;
    assert_eq!(state["crowdstrike"]["users"], json!([]));
    assert!(state["crowdstrike"]["roles"].as_array().unwrap().len() >= 4, "built-in roles exist in every tenant");

    let created = sim
        .seed(json!({"crowdstrike": {
            "roles": [{"id": "custom_auditor", "display_name": "Auditor"}],
            "users": [{"username": "s@example.com", "first_name": "S", "last_name": "T", "roles": ["custom_auditor"]}]
        }}))
        .await;
    assert_eq!(created["crowdstrike"]["users"][0]["roles"], json!(["custom_auditor"]));
    let bad = sim
        .control_raw(
            Method::POST,
            "/_sim/seed",
            Some(json!({"crowdstrike": {"users": [
                {"username": "ok@example.com", "first_name": "O", "last_name": "K"},
                {"username": "bad@example.com", "first_name": "B", "last_name": "D", "roles": ["Falcon_Admin"]}
            ]}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(sim.state().await["crowdstrike"]["users"].as_array().unwrap().len(), 1, "nothing from a failed seed");

    for knob in [json!({"token_ttl_secs": 0}), json!({"region": "mars-1"}), json!({"ttl": 5})] {
        let r = sim.control_raw(Method::POST, "/_sim/config", Some(json!({ "crowdstrike": knob }))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{knob}");
    }
    let config = sim.control(Method::GET, "/_sim/config", None).await;
    assert_eq!(config["crowdstrike"]["rate_limit"]["requests"], 6000);
    assert_eq!(config["crowdstrike"]["rate_limit"]["window_ms"], 60_000);
    assert_eq!(config["crowdstrike"]["token_ttl_secs"], 1800);
    assert_eq!(config["crowdstrike"]["region"], "us-1");
}
