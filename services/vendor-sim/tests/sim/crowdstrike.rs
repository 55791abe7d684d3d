//! CrowdStrike Falcon: OAuth2 tokens and their expiry, regions, scopes, and the current
//! user-management operations exactly as Falcon's definition publishes them (FalconPy 1.6.2's
//! endpoint table, gofalcon's models): requests shaped as FalconPy sends them are accepted; the
//! legacy and invented routes, unknown or ill-typed parameters and bodies with fields the
//! model lacks are refused with Falcon's error envelope; rate limits and their headers.

use crate::common::{into_reply, now_ms, Reply, TestSim};
use lifecycle_vendor_sim::{Config, Vendor};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const ID: &str = "cs-client-id";
const SECRET: &str = "cs-client-secret";
const CID: &str = "5f4e3d2c1b0a49588776655443322110";

const QUERY_USERS: &str = "/user-management/queries/users/v1";
const RETRIEVE_USERS: &str = "/user-management/entities/users/GET/v1";
const USERS: &str = "/user-management/entities/users/v1";
const QUERY_ROLES: &str = "/user-management/queries/roles/v1";
const USER_ROLES: &str = "/user-management/combined/user-roles/v2";
const ROLE_ACTION: &str = "/user-management/entities/user-role-actions/v1";

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

/// `GET` with query pairs, encoded as reqwest (and FalconPy's `requests`) encode them.
async fn get_query(sim: &TestSim, path: &str, token: &str, query: &[(&str, &str)]) -> Reply {
    into_reply(sim.http.get(url(sim, path)).query(query).bearer_auth(token).send().await.unwrap()).await
}

async fn post(sim: &TestSim, path: &str, token: &str, body: Value) -> Reply {
    cs(sim, Method::POST, path, token, Some(body)).await
}

fn first_error(r: &Reply) -> String {
    r.body["errors"][0]["message"].as_str().unwrap_or_default().to_owned()
}

/// A 400 in Falcon's envelope (`msa.ReplyMetaOnly`: meta, errors with code and message).
fn assert_refused(r: &Reply, what: &str) {
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
    assert_eq!(r.body["errors"][0]["code"], 400, "{what}: {}", r.body);
    assert!(r.body["errors"][0]["message"].is_string(), "{what}: {}", r.body);
    assert!(r.body["meta"]["trace_id"].is_string(), "{what}: {}", r.body);
}

fn ids(r: &Reply) -> Vec<String> {
    r.body["resources"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

async fn uuid_of(sim: &TestSim, username: &str) -> String {
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

/// The user's role ids, as CombinedUserRolesV2 lists its grants.
async fn roles_of(sim: &TestSim, token: &str, uuid: &str) -> Vec<String> {
    let r = get_query(sim, USER_ROLES, token, &[("user_uuid", uuid)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r.body["resources"].as_array().unwrap().iter().map(|g| g["role_id"].as_str().unwrap().to_owned()).collect()
}

fn action(action: &str, uuid: &str, roles: &[&str]) -> Value {
    json!({"action": action, "cid": CID, "role_ids": roles, "uuid": uuid})
}

#[tokio::test]
async fn the_token_endpoint_issues_30_minute_tokens_for_form_encoded_credentials() {
    let sim = TestSim::start().await;
    // As FalconPy sends it: client_id and client_secret only.
    let r = token_reply(&sim, "/oauth2/token", &[("client_id", ID), ("client_secret", SECRET)]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["token_type"], "bearer");
    assert_eq!(r.body["expires_in"], 1800);
    assert_eq!(r.headers["x-cs-region"], "us-1", "the tenant's region, as FalconPy's autodiscovery reads it");
    let issued = r.body["access_token"].as_str().unwrap().to_owned();
    assert!(issued.len() > 20);
    // What OAuth2 clients add is accepted too.
    let r = token_reply(
        &sim,
        "/oauth2/token",
        &[("grant_type", "client_credentials"), ("client_id", ID), ("client_secret", SECRET)],
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);

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
    let r = token_reply(&sim, "/oauth2/token", &[("client_id", ID), ("client_secret", SECRET), ("scope", "all")]).await;
    assert_refused(&r, "a form field the definition does not list");
    let json_body = sim
        .http
        .post(url(&sim, "/oauth2/token"))
        .json(&json!({"client_id": ID, "client_secret": SECRET}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body.status(), StatusCode::BAD_REQUEST, "the body is a form, not JSON");

    let state = sim.state().await;
    assert_eq!(state["crowdstrike"]["tokens"]["issued"], 2);
    let text = state.to_string();
    assert!(!text.contains(SECRET) && !text.contains(&issued), "no secrets in state");
    let calls = sim.control(Method::GET, "/_sim/calls?vendor=crowdstrike", None).await.to_string();
    assert!(!calls.contains(SECRET) && !calls.contains(&issued), "nor in the call log");
}

#[tokio::test]
async fn an_expired_or_unknown_token_is_401() {
    let sim = TestSim::start().await;
    let r = get(&sim, QUERY_ROLES, "nope").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(first_error(&r), "access denied, invalid bearer token");
    assert!(r.headers.get("x-ratelimit-limit").is_none(), "no rate-limit headers before auth");
    let r = into_reply(sim.http.get(url(&sim, QUERY_ROLES)).send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let config = sim.control(Method::POST, "/_sim/config", Some(json!({"crowdstrike": {"token_ttl_secs": 1}}))).await;
    assert_eq!(config["crowdstrike"]["token_ttl_secs"], 1);
    let r = token_reply(&sim, "/oauth2/token", &[("client_id", ID), ("client_secret", SECRET)]).await;
    assert_eq!(r.body["expires_in"], 1);
    let t = r.body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(get(&sim, QUERY_ROLES, &t).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let r = get(&sim, QUERY_ROLES, &t).await;
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
    assert_eq!(get(&sim, &format!("/us-1{QUERY_ROLES}"), &t).await.status, StatusCode::OK);
    for region in ["us-2", "eu-1", "us-gov-1"] {
        let r = token_reply(&sim, &format!("/{region}/oauth2/token"), &[("client_id", ID), ("client_secret", SECRET)])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{region}");
        assert_eq!(first_error(&r), "Failed to issue access token - Not Authorized");
        assert!(r.headers.get("location").is_none(), "never a redirect");
        let r = get(&sim, &format!("/{region}{QUERY_ROLES}"), &t).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "a us-1 token means nothing in {region}");
    }
    let r = get(&sim, &format!("/mars-1{QUERY_ROLES}"), &t).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A tenant in eu-1: the base prefix is eu-1, and us-1 is foreign.
    let mut config = Config::ephemeral();
    config.crowdstrike.region = "eu-1".into();
    let eu = TestSim::start_with(config).await;
    let r = token_reply(&eu, "/eu-1/oauth2/token", &[("client_id", ID), ("client_secret", SECRET)]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.headers["x-cs-region"], "eu-1");
    let r = token_reply(&eu, "/us-1/oauth2/token", &[("client_id", ID), ("client_secret", SECRET)]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(eu.state().await["crowdstrike"]["region"], "eu-1");
}

#[tokio::test]
async fn each_scope_gates_its_operations() {
    let sim = TestSim::start().await;
    sim.seed(json!({"crowdstrike": {"api_clients": [
        {"client_id": "reader", "client_secret": "reader-secret", "scopes": ["user-management:read"]}
    ]}}))
    .await;
    let t = token_for(&sim, "reader", "reader-secret").await;
    let r = get(&sim, QUERY_USERS, &t).await;
    assert_eq!(r.status, StatusCode::OK);
    // retrieveUsersGETV1 is a POST that reads: the read scope is enough.
    let r = post(&sim, RETRIEVE_USERS, &t, json!({"ids": [ids(&r)[0]]})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = json!({"uid": "x@example.com", "first_name": "X", "last_name": "Y"});
    let r = post(&sim, USERS, &t, body).await;
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
async fn the_legacy_and_invented_routes_are_gone() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    let grace = uuid_of(&sim, "grace@example.com").await;
    let gone = [
        (Method::GET, "/users/queries/user-uids/v1?uid=grace@example.com".to_owned(), None),
        (Method::GET, "/users/queries/user-uids/v1?offset=0&limit=500".to_owned(), None),
        (Method::GET, "/user-roles/queries/roles/v1".to_owned(), None),
        (Method::GET, format!("/users/entities/users/v1?ids={grace}"), None),
        (
            Method::POST,
            "/users/entities/users/v1".to_owned(),
            Some(json!({"username": "n@example.com", "first_name": "N", "last_name": "O"})),
        ),
        (Method::PATCH, format!("/users/entities/users/v1?user_uuid={grace}"), Some(json!({"first_name": "G"}))),
        (Method::DELETE, format!("/users/entities/users/v1?user_uuid={grace}"), None),
        (Method::GET, format!("/user-roles/queries/user-role-ids-by-user-uuid/v1?user_uuid={grace}"), None),
        (
            Method::POST,
            "/user-roles/entities/user-roles/v1".to_owned(),
            Some(json!({"roleIds": ["falcon_analyst"], "user_uuid": grace})),
        ),
        (Method::DELETE, format!("/user-roles/entities/user-roles/v1?user_uuid={grace}&roleId=falcon_admin"), None),
        (Method::GET, "/users/queries/user-uuids-by-email/v1?uid=grace@example.com".to_owned(), None),
        (Method::GET, "/user-management/combined/user-roles/v1".to_owned(), None),
    ];
    for (method, path, body) in gone {
        let r = cs(&sim, method.clone(), &path, &t, body).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}: {}", r.body);
        assert_eq!(first_error(&r), "no route found");
    }
    // Nothing happened to Grace.
    assert_eq!(roles_of(&sim, &t, &grace).await, ["falcon_admin", "falcon_analyst"]);
}

#[tokio::test]
async fn query_user_returns_ids_only_with_offset_pagination_up_to_500() {
    let sim = TestSim::start().await;
    let users: Vec<Value> = (0..250)
        .map(|i| json!({"username": format!("p{i:03}@example.com"), "first_name": "P", "last_name": format!("{i}")}))
        .collect();
    sim.seed(json!({"crowdstrike": {"users": users}})).await;
    let t = token(&sim).await;

    let r = get(&sim, QUERY_USERS, &t).await;
    assert_eq!(r.status, StatusCode::OK);
    let page = r.body["resources"].as_array().unwrap();
    assert_eq!(page.len(), 100, "default page size");
    assert!(page.iter().all(Value::is_string), "ids only");
    assert_eq!(r.body["meta"]["pagination"], json!({"offset": 0, "limit": 100, "total": 252}));
    assert!(r.body["meta"]["trace_id"].is_string() && r.body["meta"]["query_time"].is_number());
    assert_eq!(r.body["errors"], json!([]));
    // Sorted by `uid` (the login) by default: alan, grace, then p000...
    assert_eq!(ids(&r)[0], uuid_of(&sim, "alan@example.com").await);

    let r = get(&sim, &format!("{QUERY_USERS}?offset=200&limit=100"), &t).await;
    assert_eq!(ids(&r).len(), 52);
    let r = get(&sim, &format!("{QUERY_USERS}?offset=0&limit=500&sort=uid|desc"), &t).await;
    assert_eq!(ids(&r).len(), 252);
    assert_eq!(ids(&r)[0], uuid_of(&sim, "p249@example.com").await);
    for bad in ["limit=501", "limit=0", "offset=-1", "limit=ten", "sort=username.asc", "uid=p001@example.com", "ids=x"]
    {
        let r = get(&sim, &format!("{QUERY_USERS}?{bad}"), &t).await;
        assert_refused(&r, bad);
    }
    let r = get(&sim, &format!("{QUERY_USERS}?limit=501"), &t).await;
    assert!(first_error(&r).contains("500"), "{}", r.body);
}

#[tokio::test]
async fn the_uid_filter_finds_one_user_by_login_address_ignoring_case() {
    let sim = TestSim::start().await;
    let users: Vec<Value> = (0..600)
        .map(|i| json!({"username": format!("f{i}@example.com"), "first_name": "F", "last_name": format!("{i}")}))
        .chain([
            json!({"username": "Ada.Lovelace@Example.com", "first_name": "Ada", "last_name": "Lovelace"}),
            json!({"username": "o'brien+ops@example.com", "first_name": "Pat", "last_name": "O'Brien"}),
        ])
        .collect();
    sim.seed(json!({"crowdstrike": {"users": users}})).await;
    let ada = uuid_of(&sim, "Ada.Lovelace@Example.com").await;
    let t = token(&sim).await;
    let find = |who: &str| format!("uid:'{who}'");

    for asked in ["ada.lovelace@example.com", "ADA.LOVELACE@EXAMPLE.COM", "Ada.Lovelace@Example.com"] {
        let r = get_query(&sim, QUERY_USERS, &t, &[("filter", &find(asked))]).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(ids(&r), std::slice::from_ref(&ada), "{asked}: the one user, however the address is cased");
        assert_eq!(r.body["meta"]["pagination"]["total"], 1);
    }
    // An FQL string: a quote escaped, a `+` (FQL's "and") inside the quotes is the address's.
    let r = get_query(&sim, QUERY_USERS, &t, &[("filter", r"uid:'o\'brien+ops@example.com'")]).await;
    assert_eq!(ids(&r), [uuid_of(&sim, "o'brien+ops@example.com").await], "{}", r.body);
    // Exact, not a prefix or a substring; someone absent is an empty list, not an error.
    for absent in ["ada.lovelace@example", "ada.lovelace", "lovelace@example.com", "nobody@example.com"] {
        let r = get_query(&sim, QUERY_USERS, &t, &[("filter", &find(absent))]).await;
        assert_eq!((r.status, ids(&r).len()), (StatusCode::OK, 0), "{absent}: {}", r.body);
        assert_eq!(r.body["meta"]["pagination"]["total"], 0);
    }
    // Terms joined with `+` must all hold.
    let r = get_query(&sim, QUERY_USERS, &t, &[("filter", "uid:'f7@example.com'+last_name:'7'")]).await;
    assert_eq!(ids(&r), [uuid_of(&sim, "f7@example.com").await]);
    let r = get_query(&sim, QUERY_USERS, &t, &[("filter", "uid:'f7@example.com'+last_name:'8'")]).await;
    assert!(ids(&r).is_empty());
    // Not FQL, or a field the definition does not list: refused, never read as "everyone".
    for bad in
        ["uid:f1@example.com", "uid:'f1@example.com", "username:'f1@example.com'", "f1@example.com", "uid:'a' uid:'b'"]
    {
        let r = get_query(&sim, QUERY_USERS, &t, &[("filter", bad)]).await;
        assert_refused(&r, bad);
    }
    // Without the filter the listing is as before: every id, paginated.
    let r = get(&sim, &format!("{QUERY_USERS}?limit=500"), &t).await;
    assert_eq!((ids(&r).len(), &r.body["meta"]["pagination"]["total"]), (500, &json!(604)));

    // A deleted user is no longer found.
    let r = cs(&sim, Method::DELETE, &format!("{USERS}?user_uuid={ada}"), &t, None).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = get_query(&sim, QUERY_USERS, &t, &[("filter", &find("ada.lovelace@example.com"))]).await;
    assert_eq!((r.status, ids(&r).len()), (StatusCode::OK, 0));
}

#[tokio::test]
async fn retrieve_users_takes_ids_in_a_body_and_answers_domain_users() {
    let sim = TestSim::start().await;
    let users: Vec<Value> = (0..120)
        .map(|i| json!({"username": format!("b{i}@example.com"), "first_name": "B", "last_name": format!("{i}")}))
        .collect();
    sim.seed(json!({"crowdstrike": {"users": users}})).await;
    let t = token(&sim).await;
    let all = ids(&get(&sim, &format!("{QUERY_USERS}?limit=500"), &t).await);

    // As FalconPy's retrieve_users sends it.
    let r = post(&sim, RETRIEVE_USERS, &t, json!({ "ids": all })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["resources"].as_array().unwrap().len(), 122);

    let grace = uuid_of(&sim, "grace@example.com").await;
    let r = post(&sim, RETRIEVE_USERS, &t, json!({ "ids": [grace] })).await;
    let user = &r.body["resources"][0];
    assert_eq!(user["uuid"], grace.as_str(), "the id is `uuid`");
    assert_eq!(user["uid"], "grace@example.com", "`uid` is the login e-mail");
    assert_eq!((&user["first_name"], &user["last_name"]), (&json!("Grace"), &json!("Hopper")));
    assert_eq!(user["cid"], CID);
    assert!(user["created_at"].is_string() && user["status"].is_string());
    assert!(user.get("username").is_none() && user.get("firstName").is_none(), "no legacy names: {user}");
    assert!(user.get("roles").is_none(), "role data is not embedded in the user");

    let missing = "00000000-0000-4000-8000-000000000000";
    let r = post(&sim, RETRIEVE_USERS, &t, json!({ "ids": [grace, missing] })).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["resources"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["errors"][0]["code"], 404, "the missing one is named in errors");
    let r = post(&sim, RETRIEVE_USERS, &t, json!({ "ids": [missing] })).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // At most 5000 ids; the body is msaspec.IdsRequest and nothing else.
    let many: Vec<String> = (0..5001).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect();
    assert!(first_error(&post(&sim, RETRIEVE_USERS, &t, json!({ "ids": many })).await).contains("at most 5000"));
    for (body, what) in [
        (json!({}), "no ids"),
        (json!({"ids": []}), "empty ids"),
        (json!({"ids": grace}), "ids not an array"),
        (json!({"ids": [grace], "uuids": [grace]}), "a field the model lacks"),
    ] {
        assert_refused(&post(&sim, RETRIEVE_USERS, &t, body).await, what);
    }
    let r = cs(&sim, Method::POST, &format!("{RETRIEVE_USERS}?ids={grace}"), &t, Some(json!({"ids": [grace]}))).await;
    assert_refused(&r, "a query parameter the operation does not declare");
    assert_eq!(get(&sim, &format!("{RETRIEVE_USERS}?ids={grace}"), &t).await.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn create_user_takes_the_models_body_and_refuses_the_old_shapes() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    // As FalconPy's create_user_mssp sends it (domain.CreateUserRequest).
    let r =
        post(&sim, USERS, &t, json!({"uid": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let user = &r.body["resources"][0];
    let uuid = user["uuid"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&uuid).is_ok());
    assert_eq!(
        (&user["uid"], &user["first_name"], &user["cid"]),
        (&json!("ada@example.com"), &json!("Ada"), &json!(CID))
    );
    assert_eq!(roles_of(&sim, &t, &uuid).await, Vec::<String>::new(), "no roles: they are never set at creation");
    let log = sim.state().await["crowdstrike"]["log"].clone();
    assert_eq!(log[0]["action"], "user.create");
    assert_eq!(log[0]["user_uuid"], uuid.as_str());

    // The old shapes: the legacy guide's snake_case body with `username`, the legacy
    // CreateUser's camelCase names, inline roles; each a field domain.CreateUserRequest lacks.
    for (body, field) in [
        (json!({"username": "bob@example.com", "first_name": "Bob", "last_name": "B"}), "username"),
        (json!({"uid": "bob@example.com", "firstName": "Bob", "lastName": "B"}), "firstName"),
        (json!({"uid": "bob@example.com", "first_name": "Bob", "last_name": "B", "roles": ["falcon_admin"]}), "roles"),
        (
            json!({"uid": "bob@example.com", "first_name": "Bob", "last_name": "B", "roleIds": ["falcon_admin"]}),
            "roleIds",
        ),
    ] {
        let r = post(&sim, USERS, &t, body).await;
        assert_refused(&r, field);
        assert!(first_error(&r).contains(field), "{field}: {}", r.body);
    }
    assert_refused(&post(&sim, USERS, &t, json!({"first_name": "N", "last_name": "O"})).await, "no uid");
    assert_refused(&post(&sim, USERS, &t, json!({"uid": "nope"})).await, "not an e-mail");
    assert_refused(&post(&sim, USERS, &t, json!({"uid": "n@example.com", "first_name": 7})).await, "wrong type");
    assert_refused(&post(&sim, USERS, &t, json!({"uid": "n@example.com", "cid": "0000"})).await, "another CID");
    // A taken login, however cased: 400 (the operation declares no 409).
    let r = post(&sim, USERS, &t, json!({"uid": "ADA@example.com", "first_name": "A", "last_name": "L"})).await;
    assert_refused(&r, "duplicate");
    assert!(first_error(&r).contains("already exists"));
    // Names and password are optional; validate_only checks and creates nothing.
    let r =
        cs(&sim, Method::POST, &format!("{USERS}?validate_only=true"), &t, Some(json!({"uid": "v@example.com"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = cs(&sim, Method::POST, &format!("{USERS}?validate_only=maybe"), &t, Some(json!({"uid": "v@example.com"})))
        .await;
    assert_refused(&r, "validate_only not a boolean");
    let r = post(&sim, USERS, &t, json!({"uid": "p@example.com", "password": "S3cret!pass", "cid": CID})).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let state = sim.state().await;
    let users = state["crowdstrike"]["users"].as_array().unwrap();
    assert!(users.iter().all(|u| u["username"] != "v@example.com" && u["username"] != "bob@example.com"));
    assert!(!state.to_string().contains("S3cret!pass"), "no password in state");
}

#[tokio::test]
async fn update_takes_both_names_and_delete_the_user_uuid_in_the_query() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    let alan = uuid_of(&sim, "alan@example.com").await;
    let at = format!("{USERS}?user_uuid={alan}");

    // As FalconPy's update_user_mssp sends it (domain.UpdateUserRequest).
    let r = cs(&sim, Method::PATCH, &at, &t, Some(json!({"first_name": "Al", "last_name": "Turing"}))).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!((&r.body["resources"][0]["first_name"], &r.body["resources"][0]["uuid"]), (&json!("Al"), &json!(alan)));
    for (path, body, what) in [
        (at.clone(), json!({"first_name": "Al"}), "one name only: both are required"),
        (at.clone(), json!({"firstName": "Al", "lastName": "T"}), "the legacy camelCase names"),
        (at.clone(), json!({"first_name": "Al", "last_name": "T", "user_uuid": alan}), "user_uuid in the body"),
        (USERS.to_owned(), json!({"first_name": "Al", "last_name": "T"}), "no user_uuid"),
        (
            format!("{at}&uid=alan@example.com"),
            json!({"first_name": "Al", "last_name": "T"}),
            "an undeclared parameter",
        ),
    ] {
        assert_refused(&cs(&sim, Method::PATCH, &path, &t, Some(body)).await, what);
    }

    assert_refused(&cs(&sim, Method::DELETE, USERS, &t, Some(json!({"user_uuid": alan}))).await, "uuid in a body");
    assert_refused(&cs(&sim, Method::DELETE, &at, &t, Some(json!({"user_uuid": alan}))).await, "any body");
    let r = cs(&sim, Method::DELETE, &at, &t, None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["errors"], json!([]));
    assert!(r.body["meta"].is_object() && r.body.get("resources").is_none(), "msaspec.ResponseFields: {}", r.body);
    let r = cs(&sim, Method::DELETE, &at, &t, None).await;
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
async fn the_role_catalogue_and_a_users_grants_are_queried_as_declared() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    let grace = uuid_of(&sim, "grace@example.com").await;

    let r = get(&sim, QUERY_ROLES, &t).await;
    let roles = ids(&r);
    for role in ["falcon_admin", "falcon_analyst", "detection_monitor", "falcon_console_guest"] {
        assert!(roles.contains(&role.to_owned()), "{role} in {roles:?}");
    }
    let r = get_query(&sim, QUERY_ROLES, &t, &[("cid", CID), ("user_uuid", &grace), ("action", "grant")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_refused(&get(&sim, &format!("{QUERY_ROLES}?role=x"), &t).await, "an undeclared parameter");

    // CombinedUserRolesV2, as FalconPy's get_user_grants sends it.
    let r = get_query(&sim, USER_ROLES, &t, &[("user_uuid", &grace), ("direct_only", "true"), ("limit", "500")]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let grants = r.body["resources"].as_array().unwrap();
    assert_eq!(grants.len(), 2);
    assert_eq!(grants[0]["role_id"], "falcon_admin");
    assert_eq!(grants[0]["role_name"], "Falcon Administrator");
    assert_eq!(
        (&grants[0]["cid"], &grants[0]["grant_type"], &grants[0]["uuid"]),
        (&json!(CID), &json!("direct"), &json!(grace))
    );
    assert_eq!(r.body["meta"]["pagination"], json!({"offset": 0, "limit": 500, "total": 2}));
    let r = get_query(&sim, USER_ROLES, &t, &[("user_uuid", &grace), ("filter", "role_id:'falcon_analyst'")]).await;
    assert_eq!(r.body["resources"].as_array().unwrap().len(), 1);
    for bad in
        ["", "user_uuid=x&limit=501", "user_uuid=x&direct_only=1", "user_uuid=x&sort=role_id", "user_uuid=x&ids=y"]
    {
        assert_refused(&get(&sim, &format!("{USER_ROLES}?{bad}"), &t).await, bad);
    }
    let r = get_query(&sim, USER_ROLES, &t, &[("user_uuid", "00000000-0000-4000-8000-000000000000")]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn role_actions_take_the_grant_input_and_refuse_the_old_shapes() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    let alan = uuid_of(&sim, "alan@example.com").await;

    // As FalconPy's user_roles_action sends it (flightcontrolapi.grantInput).
    let r = post(&sim, ROLE_ACTION, &t, action("grant", &alan, &["falcon_admin", "falcon_analyst"])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["errors"], json!([]));
    assert_eq!(roles_of(&sim, &t, &alan).await, ["detection_monitor", "falcon_admin", "falcon_analyst"]);
    // Granting a held role again changes nothing; an expiry is accepted.
    let mut again = action("grant", &alan, &["falcon_admin"]);
    again["expires_at"] = json!("2027-01-01T00:00:00Z");
    assert_eq!(post(&sim, ROLE_ACTION, &t, again).await.status, StatusCode::OK);

    // The old shapes: the legacy grant body (`roleIds`, `user_uuid` in the body), the
    // invented revoke's `roleId`, and a body without what the definition requires.
    for (body, what) in [
        (json!({"roleIds": ["falcon_console_guest"], "user_uuid": alan}), "the legacy grant body"),
        (json!({"action": "grant", "cid": CID, "role_ids": ["falcon_console_guest"], "user_uuid": alan}), "user_uuid"),
        (json!({"action": "revoke", "cid": CID, "roleId": "falcon_admin", "uuid": alan}), "roleId"),
        (json!({"action": "grant", "cid": CID, "roleIds": ["falcon_console_guest"], "uuid": alan}), "roleIds"),
        (json!({"action": "grant", "role_ids": ["falcon_console_guest"], "uuid": alan}), "no cid"),
        (json!({"cid": CID, "role_ids": ["falcon_console_guest"], "uuid": alan}), "no action"),
        (json!({"action": "grant", "cid": CID, "role_ids": [], "uuid": alan}), "no role"),
        (json!({"action": "grant", "cid": CID, "role_ids": ["falcon_console_guest"]}), "no uuid"),
        (json!({"action": "assign", "cid": CID, "role_ids": ["falcon_console_guest"], "uuid": alan}), "action"),
        (json!({"action": "grant", "cid": "0000", "role_ids": ["falcon_console_guest"], "uuid": alan}), "another CID"),
        (json!({"action": "grant", "cid": CID, "role_ids": "falcon_console_guest", "uuid": alan}), "role_ids type"),
    ] {
        assert_refused(&post(&sim, ROLE_ACTION, &t, body).await, what);
    }
    let r = cs(
        &sim,
        Method::POST,
        &format!("{ROLE_ACTION}?user_uuid={alan}"),
        &t,
        Some(action("grant", &alan, &["falcon_console_guest"])),
    )
    .await;
    assert_refused(&r, "user_uuid as a query parameter");
    assert_eq!(
        roles_of(&sim, &t, &alan).await,
        ["detection_monitor", "falcon_admin", "falcon_analyst"],
        "none applied"
    );

    // Role ids are case-sensitive; all or nothing.
    let r = post(&sim, ROLE_ACTION, &t, action("grant", &alan, &["falcon_console_guest", "Falcon_Admin"])).await;
    assert_refused(&r, "a wrongly cased role");
    assert!(first_error(&r).contains("Falcon_Admin"));
    // Revoking a role not held is an error, and revokes nothing.
    let r = post(&sim, ROLE_ACTION, &t, action("revoke", &alan, &["falcon_admin", "falcon_console_guest"])).await;
    assert_refused(&r, "a role not held");
    assert!(first_error(&r).contains("falcon_console_guest is not assigned"), "{}", r.body);
    assert_eq!(roles_of(&sim, &t, &alan).await, ["detection_monitor", "falcon_admin", "falcon_analyst"]);
    let r = post(&sim, ROLE_ACTION, &t, action("revoke", &alan, &["falcon_admin", "falcon_analyst"])).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(roles_of(&sim, &t, &alan).await, ["detection_monitor"]);
    let r =
        post(&sim, ROLE_ACTION, &t, action("grant", "00000000-0000-4000-8000-000000000000", &["falcon_admin"])).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let state = sim.state().await;
    let log = state["crowdstrike"]["log"].as_array().unwrap();
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["role.grant", "role.grant", "role.revoke", "role.revoke"]);
    assert_eq!(log[0]["role_ids"], json!(["falcon_admin", "falcon_analyst"]));
    assert_eq!(log[1]["role_ids"], json!([]), "nothing newly granted");
    let revoked: Vec<&str> = log[2..].iter().map(|e| e["role_id"].as_str().unwrap()).collect();
    assert_eq!(revoked, ["falcon_admin", "falcon_analyst"], "one entry per role revoked");
}

#[tokio::test]
async fn the_per_minute_budget_is_per_api_client_with_a_retry_after_in_epoch_milliseconds() {
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
        let r = get(&sim, QUERY_ROLES, &t).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header_i64("x-ratelimit-limit"), 4);
        remaining.push(r.header_i64("x-ratelimit-remaining"));
    }
    assert_eq!(remaining, [2, 1, 0]);
    let r = get(&sim, QUERY_ROLES, &t).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["errors"][0]["code"], 429);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    // "retry after this time (as milliseconds since epoch)".
    let retry_at_ms = r.header_i64("x-ratelimit-retryafter");
    let now = now_ms();
    assert!(retry_at_ms > now && retry_at_ms - now <= 61_000, "ms since the epoch, within the minute: {retry_at_ms}");
    assert_eq!(retry_at_ms % 60_000, 0, "the end of the minute window");

    let other = token_for(&sim, "other", "other-secret").await;
    assert_eq!(get(&sim, QUERY_ROLES, &other).await.status, StatusCode::OK, "its own budget");
    assert_eq!(sim.state().await["crowdstrike"]["counters"]["rate_limited"], 1);
}

#[tokio::test]
async fn an_injected_429_looks_like_falcons_own() {
    let sim = TestSim::start().await;
    let t = token(&sim).await;
    sim.fault(json!({"vendor": "crowdstrike", "path": "/user-management/**", "kind": "status", "status": 429})).await;
    let r = get(&sim, QUERY_USERS, &t).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(first_error(&r), "API rate limit exceeded.");
    assert_eq!(r.header_i64("x-ratelimit-limit"), 6000);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    let retry_at_ms = r.header_i64("x-ratelimit-retryafter");
    assert!(retry_at_ms > now_ms() && retry_at_ms < now_ms() + 61_000, "ms since the epoch: {retry_at_ms}");
    let r = get(&sim, QUERY_USERS, &t).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = sim
        .fault(json!({"vendor": "crowdstrike", "path": "/user-management/**", "kind": "status", "status": 503}))
        .await;
    assert!(r["id"].is_u64());
    let r = get(&sim, QUERY_USERS, &t).await;
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
