//! CircleCI v2, as its published definition has it: auth (its three schemes), collaborations
//! with `vcs-type`, users, the groups operations (admin only, members not included), token
//! pagination, refused parameters and paths (no member operation exists), rate limits.

use crate::common::{into_reply, now_ms, Reply, TestSim};
use lifecycle_vendor_sim::circleci::{
    ADMIN_LOGIN, ADMIN_USER_ID, BB_ORG_ID, DEFAULT_ADMIN_TOKEN, MEMBER_TOKEN, ORG_ID, ORG_SLUG,
};
use lifecycle_vendor_sim::{Config, Vendor};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const GRACE_ID: &str = "dffac8e5-5c5f-4ee2-b2b7-4d82448d5afc";

fn url(sim: &TestSim, path: &str) -> String {
    format!("{}{}", sim.running.base_url(Vendor::CircleCi), path)
}

/// A CircleCI request with `Circle-Token` (if a token is given).
async fn ci(sim: &TestSim, method: Method, path: &str, token: Option<&str>) -> Reply {
    let mut req = sim.http.request(method, url(sim, path));
    if let Some(t) = token {
        req = req.header("Circle-Token", t);
    }
    into_reply(req.send().await.expect("request reaches the simulator")).await
}

async fn get(sim: &TestSim, path: &str) -> Reply {
    ci(sim, Method::GET, path, Some(DEFAULT_ADMIN_TOKEN)).await
}

#[tokio::test]
async fn circle_token_header_authenticates_and_me_is_the_token_owner() {
    let sim = TestSim::start().await;
    let r = get(&sim, "/me").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["id"], ADMIN_USER_ID);
    assert_eq!(r.body["login"], ADMIN_LOGIN);
    assert_eq!(r.body["name"], "Sim Admin");
    assert!(r.body["avatar_url"].is_string());
    assert!(r.body.get("token").is_none(), "tokens are never shown");
}

#[tokio::test]
async fn basic_auth_with_the_token_as_username_authenticates() {
    let sim = TestSim::start().await;
    let resp = sim.http.get(url(&sim, "/me")).basic_auth(DEFAULT_ADMIN_TOKEN, Some("")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["login"], ADMIN_LOGIN);
}

#[tokio::test]
async fn missing_or_unknown_token_is_401_with_a_message_and_no_rate_headers() {
    let sim = TestSim::start().await;
    for token in [None, Some("nope")] {
        let r = ci(&sim, Method::GET, "/me", token).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body, json!({"message": "You must log in first."}));
        assert!(r.headers.get("x-ratelimit-limit").is_none(), "no headers before auth");
    }
    // A bearer token is not how CircleCI authenticates.
    let resp = sim.http.get(url(&sim, "/me")).bearer_auth(DEFAULT_ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn custom_admin_token_replaces_the_default() {
    let sim = TestSim::start_with(Config {
        circleci: lifecycle_vendor_sim::circleci::Flags { admin_token: "other-secret".into() },
        ..Config::ephemeral()
    })
    .await;
    assert_eq!(ci(&sim, Method::GET, "/me", Some("other-secret")).await.status, StatusCode::OK);
    assert_eq!(ci(&sim, Method::GET, "/me", Some(DEFAULT_ADMIN_TOKEN)).await.status, StatusCode::UNAUTHORIZED);
}

#[test]
fn the_admin_token_flag_parses_beside_the_other_vendors_flags() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }
    let cli = Cli::try_parse_from(["sim", "--circleci-admin-token", "t1", "--pipedrive-admin-token", "t2"]).unwrap();
    assert_eq!(cli.config.circleci.admin_token, "t1");
    assert_eq!(cli.config.pipedrive.admin_token, "t2");
    let cli = Cli::try_parse_from(["sim"]).unwrap();
    assert_eq!(cli.config.circleci.admin_token, DEFAULT_ADMIN_TOKEN);
    assert!(!format!("{:?}", cli.config).contains(DEFAULT_ADMIN_TOKEN), "never in debug output");
}

#[tokio::test]
async fn collaborations_list_only_the_owners_orgs_with_uuid_and_slug() {
    let sim = TestSim::start().await;
    sim.seed(json!({"circleci": {"orgs": [{"slug": "gh/someone-else"}]}})).await;
    let r = get(&sim, "/me/collaborations").await;
    assert_eq!(r.status, StatusCode::OK);
    let orgs = r.body.as_array().expect("a plain array, not a page");
    assert_eq!(orgs.len(), 2, "{orgs:?}");
    // Same name on Bitbucket, listed first: only the slug tells them apart.
    assert_eq!(orgs[0]["id"], BB_ORG_ID);
    assert_eq!(orgs[0]["name"], "sim-org");
    assert_eq!(orgs[0]["slug"], "bb/sim-org");
    assert_eq!(orgs[0]["vcs-type"], "bitbucket");
    assert_eq!(
        orgs[1],
        json!({"id": ORG_ID, "vcs-type": "github", "name": "sim-org",
               "avatar_url": orgs[1]["avatar_url"], "slug": "gh/sim-org"}),
        "the definition's Collaboration: vcs-type with a hyphen, avatar_url a string"
    );
    assert!(orgs[1]["avatar_url"].is_string());
    assert!(!orgs.iter().any(|o| o["slug"] == "gh/someone-else"), "not a roster of all orgs");
}

/// The definition has no organization-member operation: the guide's member routes (and its
/// `/org/{orgID}/groups`) are unknown paths, 404 in CircleCI's shape, for any method.
#[tokio::test]
async fn member_routes_do_not_exist_and_unknown_paths_are_404() {
    let sim = TestSim::start().await;
    let cases = [
        (Method::GET, format!("/org/{ORG_ID}/members")),
        (Method::GET, format!("/org/{ORG_ID}/members?page-size=100")),
        (Method::GET, format!("/org/{ORG_ID}/members/{GRACE_ID}")),
        (Method::DELETE, format!("/org/{ORG_ID}/members/{GRACE_ID}")),
        (Method::POST, format!("/org/{ORG_ID}/members")),
        (Method::GET, format!("/org/{ORG_ID}/groups")),
        (Method::GET, format!("/organizations/{ORG_ID}/members")),
        (Method::GET, "/members".to_string()),
        (Method::GET, "/me/organizations".to_string()),
    ];
    for (method, path) in cases {
        let r = ci(&sim, method.clone(), &path, Some(DEFAULT_ADMIN_TOKEN)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(r.body, json!({"message": "Not found."}), "{method} {path}");
    }
    let state = sim.state().await;
    assert_eq!(state["circleci"]["log"], json!([]), "nothing changed");
    assert_eq!(state["circleci"]["memberships"].as_array().unwrap().len(), 5, "nobody removed");
    assert_eq!(state["circleci"]["counters"]["by_route"]["GET (unmatched)"], 7);
}

/// Each operation takes only the query parameters the definition gives it (and the deprecated
/// `circle-token`); `format: uuid` path parameters must be UUIDs. 400 `{"message"}` otherwise.
#[tokio::test]
async fn unknown_or_malformed_parameters_are_400_in_circlecis_shape() {
    let sim = TestSim::start().await;
    let groups = format!("/organizations/{ORG_ID}/groups");
    for path in [
        "/me?login=grace-gh".to_string(),
        "/me/collaborations?page-size=100".to_string(),
        "/me/collaborations?vcs_type=github".to_string(),
        format!("/user/{GRACE_ID}?org={ORG_ID}"),
        "/user/grace-gh".to_string(),
        format!("{groups}?page-size=5"),
        format!("{groups}?limit=0"),
        format!("{groups}?limit=ten"),
        format!("{groups}?limit=1&limit=2"),
        format!("{groups}?page-token=not-a-token"),
        format!("{groups}/not-a-uuid"),
    ] {
        let r = get(&sim, &path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert!(r.body["message"].is_string(), "{path}: {}", r.body);
        assert_eq!(r.body.as_object().unwrap().len(), 1, "{path}: only a message: {}", r.body);
    }
    // What the definition does take is served.
    for path in ["/me".to_string(), "/me/collaborations".to_string(), format!("{groups}?limit=1")] {
        assert_eq!(get(&sim, &path).await.status, StatusCode::OK, "{path}");
    }
}

/// The definition's third security scheme: `circle-token` in the query (deprecated).
#[tokio::test]
async fn the_deprecated_circle_token_query_parameter_authenticates() {
    let sim = TestSim::start().await;
    let r = into_reply(sim.http.get(url(&sim, "/me?circle-token=circleci-member-token")).send().await.unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["login"], "grace-gh");
}

#[tokio::test]
async fn groups_need_the_org_uuid_and_an_admin_and_show_no_members() {
    let sim = TestSim::start().await;
    let base = format!("/organizations/{ORG_ID}/groups");
    let r = get(&sim, &base).await;
    assert_eq!(r.status, StatusCode::OK);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[0],
        json!({"id": "3b1c2775-a451-40e7-942f-c3b899c83456", "name": "developers",
               "description": "Build and deploy the projects."}),
        "the definition's group: id, name, description and nothing else"
    );
    assert_eq!(items[1]["name"], "admins");
    assert_eq!(r.body["next_page_token"], Value::Null);

    let r = get(&sim, &format!("{base}?limit=1")).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let token = r.body["next_page_token"].as_str().unwrap().to_owned();
    let r = get(&sim, &format!("{base}?limit=1&page-token={token}")).await;
    assert_eq!(r.body["items"][0]["name"], "admins");
    assert_eq!(r.body["next_page_token"], Value::Null);

    let r = get(&sim, &format!("{base}/3B1C2775-A451-40E7-942F-C3B899C83456")).await;
    assert_eq!(r.status, StatusCode::OK, "upper-case UUIDs are the same UUID");
    assert_eq!(r.body["name"], "developers");
    assert!(r.body.get("members").is_none() && r.body.get("member_count").is_none(), "members not included");
    let r = get(&sim, &format!("{base}/00000000-0000-4000-8000-000000000000")).await;
    assert_eq!((r.status, r.body.clone()), (StatusCode::NOT_FOUND, json!({"message": "Group does not exist."})));

    // A slug (or a name) where the UUID goes: no such organization.
    for org in ["gh%2Fsim-org", "sim-org"] {
        let r = get(&sim, &format!("/organizations/{org}/groups")).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{org}");
        assert_eq!(r.body, json!({"message": "Organization does not exist."}));
    }
    // Not an admin: grace (a contributor), or the admin token in bb/sim-org (a contributor there).
    let r = ci(&sim, Method::GET, &base, Some(MEMBER_TOKEN)).await;
    assert_eq!((r.status, r.body.clone()), (StatusCode::FORBIDDEN, json!({"message": "Permission denied."})));
    assert!(r.headers.contains_key("x-ratelimit-remaining"), "after auth");
    assert_eq!(get(&sim, &format!("/organizations/{BB_ORG_ID}/groups")).await.status, StatusCode::FORBIDDEN);
    // /me and collaborations work for anyone.
    let r = ci(&sim, Method::GET, "/me/collaborations", Some(MEMBER_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
}

/// Membership is what people do in the web app (seeded): it shows in the collaborations of the
/// person's own token, and nowhere an admin could read it.
#[tokio::test]
async fn a_seeded_membership_shows_only_in_the_members_own_collaborations() {
    let sim = TestSim::start().await;
    sim.seed(json!({"circleci": {"users": [{"login": "ada-gh", "token": "ada-token"}],
                                 "memberships": [{"org": "gh/sim-org", "login": "ada-gh"}]}}))
        .await;
    let r = ci(&sim, Method::GET, "/me/collaborations", Some("ada-token")).await;
    let slugs: Vec<&str> = r.body.as_array().unwrap().iter().map(|o| o["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["gh/sim-org"]);
    let state = sim.state().await;
    let ada = state["circleci"]["memberships"].as_array().unwrap().iter().find(|m| m["login"] == "ada-gh").cloned();
    assert_eq!(ada.unwrap()["role"], "contributor");
}

#[tokio::test]
async fn user_by_id_only_shows_users_the_owner_can_see() {
    let sim = TestSim::start().await;
    let created = sim
        .seed(json!({"circleci": {
            "orgs": [{"slug": "gh/elsewhere"}],
            "users": [{"login": "stranger-gh", "name": "A Stranger"}],
            "memberships": [{"org": "gh/elsewhere", "login": "stranger-gh", "role": "admin"}]
        }}))
        .await;
    let stranger = created["circleci"]["users"][0]["id"].as_str().unwrap().to_owned();
    let r = get(&sim, &format!("/user/{GRACE_ID}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["login"], "grace-gh");
    assert!(r.body.get("role").is_none(), "basic profile only");
    assert!(r.body["avatar_url"].is_string());
    let r = get(&sim, &format!("/user/{ADMIN_USER_ID}")).await;
    assert_eq!(r.status, StatusCode::OK, "itself");
    let r = get(&sim, &format!("/user/{stranger}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "shares no org");
    assert_eq!(r.body, json!({"message": "User does not exist."}));
}

#[tokio::test]
async fn responses_carry_rate_limit_headers_and_the_budget_is_1000_a_minute_per_token() {
    let sim = TestSim::start().await;
    // Stay clear of a minute boundary so the burst fits in one window.
    let into = now_ms().rem_euclid(60_000);
    if into > 50_000 {
        tokio::time::sleep(std::time::Duration::from_millis((60_000 - into + 50) as u64)).await;
    }
    let r = get(&sim, "/me").await;
    assert_eq!(r.header_i64("x-ratelimit-limit"), 1000);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 999);
    let reset = r.header_i64("x-ratelimit-reset");
    assert!((1..=60).contains(&reset), "seconds until the window resets: {reset}");
    for _ in 0..999 {
        let r = get(&sim, "/me").await;
        assert_eq!(r.status, StatusCode::OK);
    }
    let r = get(&sim, "/me").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body, json!({"message": "Rate limit exceeded"}));
    assert!(r.headers.get("retry-after").is_none(), "CircleCI sends no Retry-After");
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    // Another token has its own budget.
    assert_eq!(ci(&sim, Method::GET, "/me", Some(MEMBER_TOKEN)).await.status, StatusCode::OK);
    let state = sim.state().await;
    assert_eq!(state["circleci"]["counters"]["rate_limited"], 1);
}

#[tokio::test]
async fn limits_are_adjustable_at_runtime_and_reset_restores_them() {
    let sim = TestSim::start().await;
    let config = sim
        .control(
            Method::POST,
            "/_sim/config",
            Some(json!({"circleci": {"rate_limit": {"requests": 2, "window_ms": 3_600_000}}})),
        )
        .await;
    assert_eq!(config["circleci"]["rate_limit"]["requests"], 2);
    for _ in 0..2 {
        assert_eq!(get(&sim, "/me").await.status, StatusCode::OK);
    }
    let r = get(&sim, "/me").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers.get("retry-after").is_none());
    let bad = sim.control_raw(Method::POST, "/_sim/config", Some(json!({"circleci": {"page_size": 5}}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    sim.control(Method::POST, "/_sim/reset", None).await;
    let config = sim.control(Method::GET, "/_sim/config", None).await;
    assert_eq!(config["circleci"]["rate_limit"], json!({"enabled": true, "requests": 1000, "window_ms": 60000}));
}

#[tokio::test]
async fn injected_429_looks_like_circlecis_own_without_retry_after() {
    let sim = TestSim::start().await;
    sim.fault(json!({"vendor": "circleci", "path": "/me/collaborations", "kind": "status", "status": 429})).await;
    let r = get(&sim, "/me/collaborations").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body, json!({"message": "Rate limit exceeded"}));
    assert!(r.headers.get("retry-after").is_none());
    assert_eq!(r.header_i64("x-ratelimit-limit"), 1000);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    let r = sim.state().await;
    assert_eq!(r["circleci"]["counters"]["rate_limited"], 1);
    // A 5xx is in CircleCI's error shape too.
    sim.fault(json!({"vendor": "circleci", "path": "/me", "kind": "status", "status": 503})).await;
    let r = get(&sim, "/me").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.body["message"].is_string());
}

#[tokio::test]
async fn seed_adds_orgs_users_memberships_and_groups_and_refuses_bad_input() {
    let sim = TestSim::start_empty().await;
    let state = sim.state().await;
    assert_eq!(state["circleci"]["users"].as_array().unwrap().len(), 1, "only the admin");
    assert_eq!(state["circleci"]["orgs"][0]["slug"], ORG_SLUG);

    let created = sim
        .seed(json!({"circleci": {
            "orgs": [{"slug": "github/acme", "name": "Acme"}],
            "users": [{"login": "ada-gh", "name": "Ada Lovelace", "token": "ada-token",
                       "id": "6BCDF7AF-08C6-4694-B35A-04FDAFE03BEF"}],
            "memberships": [{"org": "gh/acme", "login": "sim-admin", "role": "admin"},
                            {"org": "gh/acme", "login": "ada-gh"}],
            "groups": [{"org": "gh/acme", "name": "devs", "members": ["ada-gh"]}]
        }}))
        .await;
    let acme = created["circleci"]["orgs"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["circleci"]["groups"][0]["member_count"], 1);
    assert_eq!(created["circleci"]["orgs"][0]["slug"], "gh/acme", "github/ is written gh/");
    assert_eq!(created["circleci"]["users"][0]["id"], "6bcdf7af-08c6-4694-b35a-04fdafe03bef");
    assert_eq!(created["circleci"]["memberships"][1]["role"], "contributor", "the default role");
    let r = ci(&sim, Method::GET, "/me", Some("ada-token")).await;
    assert_eq!(r.body["login"], "ada-gh");
    let r = ci(&sim, Method::GET, "/me/collaborations", Some("ada-token")).await;
    assert_eq!(r.body[0]["id"], acme.as_str());
    assert_eq!(r.body[0]["name"], "Acme");
    let r = get(&sim, &format!("/organizations/{acme}/groups")).await;
    assert_eq!(r.body["items"][0]["name"], "devs");
    assert_eq!(r.body["items"][0]["description"], "", "no description given");
    let state = sim.state().await;
    let roster: Vec<&str> = state["circleci"]["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["org_slug"] == "gh/acme")
        .map(|m| m["login"].as_str().unwrap())
        .collect();
    assert_eq!(roster, ["sim-admin", "ada-gh"], "/_sim/state keeps its shape: memberships in joining order");

    for bad in [
        json!({"users": [{"login": "ADA-GH"}]}),
        json!({"orgs": [{"slug": "sim-org"}]}),
        json!({"memberships": [{"org": "gh/acme", "login": "nobody"}]}),
        json!({"memberships": [{"org": "gh/acme", "login": "ada-gh"}]}),
        json!({"memberships": [{"org": "gh/acme", "login": "sim-admin", "role": "owner"}]}),
        json!({"users": [{"login": "x", "token": "ada-token"}]}),
        json!({"groups": [{"org": "gh/acme", "name": "x", "members": ["margaret-gh"]}]}),
        json!({"people": []}),
    ] {
        let r = sim.control_raw(Method::POST, "/_sim/seed", Some(json!({"circleci": bad.clone()}))).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    let state = sim.state().await;
    assert_eq!(state["circleci"]["users"].as_array().unwrap().len(), 2, "failed seeds change nothing");
    let text = serde_json::to_string(&state).unwrap();
    assert!(!text.contains("ada-token") && !text.contains(DEFAULT_ADMIN_TOKEN), "tokens never appear in state");
}
