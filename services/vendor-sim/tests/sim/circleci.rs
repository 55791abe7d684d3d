//! CircleCI v2: auth, collaborations and org UUIDs, admin-only org endpoints, members, removal,
//! groups, users, token pagination, rate limits and their headers.

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

fn logins(body: &Value) -> Vec<String> {
    body["items"].as_array().expect("items").iter().map(|m| m["login"].as_str().unwrap().to_owned()).collect()
}

/// `n` extra members of gh/sim-org, `member-000` ... in joining order.
async fn seed_members(sim: &TestSim, n: usize) {
    let users: Vec<Value> = (0..n).map(|i| json!({"login": format!("member-{i:03}")})).collect();
    let memberships: Vec<Value> = (0..n).map(|i| json!({"org": ORG_SLUG, "login": format!("member-{i:03}")})).collect();
    sim.seed(json!({"circleci": {"users": users, "memberships": memberships}})).await;
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
    assert_eq!(orgs[0]["vcs_type"], "bitbucket");
    assert_eq!(
        orgs[1],
        json!({"id": ORG_ID, "vcs_type": "github", "name": "sim-org",
               "avatar_url": orgs[1]["avatar_url"], "slug": "gh/sim-org"})
    );
    assert!(!orgs.iter().any(|o| o["slug"] == "gh/someone-else"), "not a roster of all orgs");
}

#[tokio::test]
async fn a_slug_in_an_org_path_is_404_and_only_the_uuid_works() {
    let sim = TestSim::start().await;
    for path in ["/org/gh/sim-org/members", "/org/gh%2Fsim-org/members", "/org/sim-org/members", "/org/sim-org/groups"]
    {
        let r = get(&sim, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.body["message"].is_string(), "{path}: {}", r.body);
    }
    assert_eq!(get(&sim, &format!("/org/{ORG_ID}/members")).await.status, StatusCode::OK);
    // Upper-case UUIDs are the same UUID.
    assert_eq!(get(&sim, &format!("/org/{}/members", ORG_ID.to_uppercase())).await.status, StatusCode::OK);
}

#[tokio::test]
async fn non_admin_token_is_403_on_every_org_endpoint() {
    let sim = TestSim::start().await;
    let cases = [
        (Method::GET, format!("/org/{ORG_ID}/members")),
        (Method::GET, format!("/org/{ORG_ID}/members/{ADMIN_USER_ID}")),
        (Method::DELETE, format!("/org/{ORG_ID}/members/{ADMIN_USER_ID}")),
        (Method::GET, format!("/org/{ORG_ID}/groups")),
    ];
    for (method, path) in cases {
        let r = ci(&sim, method.clone(), &path, Some(MEMBER_TOKEN)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert!(r.body["message"].as_str().unwrap().contains("Permission denied"), "{}", r.body);
        assert!(r.headers.contains_key("x-ratelimit-remaining"), "after auth");
    }
    // The admin token is only a contributor in bb/sim-org: 403 there too.
    assert_eq!(get(&sim, &format!("/org/{BB_ORG_ID}/members")).await.status, StatusCode::FORBIDDEN);
    // /me and collaborations work for anyone.
    let r = ci(&sim, Method::GET, "/me/collaborations", Some(MEMBER_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.as_array().unwrap().len(), 1);
    let state = sim.state().await;
    assert_eq!(state["circleci"]["log"], json!([]), "nothing changed");
    assert_eq!(state["circleci"]["memberships"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn member_list_items_have_no_role_and_member_details_do() {
    let sim = TestSim::start().await;
    let r = get(&sim, &format!("/org/{ORG_ID}/members")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(logins(&r.body), ["sim-admin", "grace-gh", "alan-gh", "margaret-gh"]);
    assert_eq!(r.body["items"][1], json!({"id": GRACE_ID, "login": "grace-gh", "name": "Grace Hopper"}));
    assert_eq!(r.body["next_page_token"], Value::Null);

    let r = get(&sim, &format!("/org/{ORG_ID}/members/{GRACE_ID}")).await;
    assert_eq!(r.body, json!({"id": GRACE_ID, "login": "grace-gh", "name": "Grace Hopper", "role": "contributor"}));
    let r = get(&sim, &format!("/org/{ORG_ID}/members/{ADMIN_USER_ID}")).await;
    assert_eq!(r.body["role"], "admin");
    let r = get(&sim, &format!("/org/{ORG_ID}/members/00000000-0000-4000-8000-000000000000")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn there_is_no_invite_endpoint() {
    let sim = TestSim::start().await;
    let r = ci(&sim, Method::POST, &format!("/org/{ORG_ID}/members"), Some(DEFAULT_ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(r.body["message"].is_string());
    let state = sim.state().await;
    assert_eq!(state["circleci"]["log"], json!([]));
}

#[tokio::test]
async fn delete_member_is_204_then_the_member_get_is_404_and_groups_lose_them() {
    let sim = TestSim::start().await;
    let path = format!("/org/{ORG_ID}/members/{GRACE_ID}");
    let r = ci(&sim, Method::DELETE, &path, Some(DEFAULT_ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.body, Value::Null, "no body");
    let r = get(&sim, &path).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Irreversible and not repeatable: a second delete is 404.
    let r = ci(&sim, Method::DELETE, &path, Some(DEFAULT_ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let state = sim.state().await;
    let circle = &state["circleci"];
    assert!(!circle["memberships"].as_array().unwrap().iter().any(|m| m["login"] == "grace-gh"));
    let developers = circle["groups"].as_array().unwrap().iter().find(|g| g["name"] == "developers").unwrap();
    assert_eq!(developers["member_count"], 1);
    let log = circle["log"].as_array().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "member.remove");
    assert_eq!(log[0]["method"], "DELETE");
    assert_eq!(log[0]["path"], path);
    assert_eq!(log[0]["org_id"], ORG_ID);
    assert_eq!(log[0]["user_id"], GRACE_ID);
    assert_eq!(log[0]["login"], "grace-gh");
    assert_eq!(log[0]["role"], "contributor");
    assert_eq!(log[0]["groups"], json!(["developers"]));
    assert!(circle["users"].as_array().unwrap().iter().any(|u| u["login"] == "grace-gh"), "the user still exists");
}

#[tokio::test]
async fn removal_does_not_revoke_the_members_personal_api_token() {
    let sim = TestSim::start().await;
    let r = ci(&sim, Method::DELETE, &format!("/org/{ORG_ID}/members/{GRACE_ID}"), Some(DEFAULT_ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = ci(&sim, Method::GET, "/me", Some(MEMBER_TOKEN)).await;
    assert_eq!(r.status, StatusCode::OK, "the token still works");
    assert_eq!(r.body["login"], "grace-gh");
    let r = ci(&sim, Method::GET, "/me/collaborations", Some(MEMBER_TOKEN)).await;
    assert_eq!(r.body, json!([]), "but the org is gone from their collaborations");
}

#[tokio::test]
async fn members_pages_default_to_20_follow_page_tokens_and_cap_at_100() {
    let sim = TestSim::start().await;
    seed_members(&sim, 246).await; // 250 members with the fixture's four
    let base = format!("/org/{ORG_ID}/members");
    let first = get(&sim, &base).await;
    assert_eq!(first.body["items"].as_array().unwrap().len(), 20, "default page size");
    let token = first.body["next_page_token"].as_str().expect("more pages").to_owned();

    let r = get(&sim, &format!("{base}?page-size=500")).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 100, "page size is capped at 100");

    // Follow the tokens at the maximum size: every member exactly once, in order.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &next {
            None => format!("{base}?page-size=100"),
            Some(t) => format!("{base}?page-size=100&page-token={t}"),
        };
        let r = get(&sim, &path).await;
        assert_eq!(r.status, StatusCode::OK);
        seen.extend(logins(&r.body));
        pages += 1;
        match r.body["next_page_token"].as_str() {
            Some(t) => next = Some(t.to_owned()),
            None => {
                assert!(r.body["next_page_token"].is_null(), "null on the last page");
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);
    assert_eq!(seen[0], "sim-admin");
    assert_eq!(seen[249], "member-245");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 250);

    // The token from the first (default-size) page continues after its 20th item.
    let r = get(&sim, &format!("{base}?page-token={token}")).await;
    assert_eq!(logins(&r.body)[0], "member-016");

    for bad in ["page-token=20", "page-token=not-a-token", "page-size=0", "page-size=x"] {
        let r = get(&sim, &format!("{base}?{bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.body["message"].is_string());
    }
}

#[tokio::test]
async fn page_tokens_are_cursors_so_removals_while_paging_skip_nobody() {
    let sim = TestSim::start().await;
    seed_members(&sim, 36).await; // 40 members
    let base = format!("/org/{ORG_ID}/members");
    let first = get(&sim, &base).await;
    let token = first.body["next_page_token"].as_str().unwrap().to_owned();
    // Remove everyone on the first page except the admin, then continue.
    for m in first.body["items"].as_array().unwrap().iter().skip(1) {
        let r =
            ci(&sim, Method::DELETE, &format!("{base}/{}", m["id"].as_str().unwrap()), Some(DEFAULT_ADMIN_TOKEN)).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let second = get(&sim, &format!("{base}?page-token={token}")).await;
    let names = logins(&second.body);
    assert_eq!(names.len(), 20);
    assert_eq!(names[0], "member-016");
    assert_eq!(second.body["next_page_token"], Value::Null);
}

#[tokio::test]
async fn groups_are_listed_per_org_with_member_counts() {
    let sim = TestSim::start().await;
    let r = get(&sim, &format!("/org/{ORG_ID}/groups")).await;
    assert_eq!(r.status, StatusCode::OK);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "developers");
    assert_eq!(items[0]["member_count"], 2);
    assert!(items[0]["id"].is_string());
    assert_eq!(items[1]["name"], "admins");
    assert_eq!(r.body["next_page_token"], Value::Null);
    let r = get(&sim, &format!("/org/{ORG_ID}/groups?page-size=1")).await;
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    let token = r.body["next_page_token"].as_str().unwrap().to_owned();
    let r = get(&sim, &format!("/org/{ORG_ID}/groups?page-size=1&page-token={token}")).await;
    assert_eq!(r.body["items"][0]["name"], "admins");
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
    sim.fault(json!({"vendor": "circleci", "path": "/org/*/members", "kind": "status", "status": 429})).await;
    let r = get(&sim, &format!("/org/{ORG_ID}/members")).await;
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
async fn apply_then_fail_on_delete_removes_the_member_and_answers_the_error() {
    let sim = TestSim::start().await;
    sim.fault(json!({"vendor": "circleci", "method": "DELETE", "path": "/org/*/members/*",
                     "kind": "apply_then_fail", "status": 502}))
        .await;
    let path = format!("/org/{ORG_ID}/members/{GRACE_ID}");
    let r = ci(&sim, Method::DELETE, &path, Some(DEFAULT_ADMIN_TOKEN)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(get(&sim, &path).await.status, StatusCode::NOT_FOUND, "the removal happened");
    let state = sim.state().await;
    assert_eq!(state["circleci"]["log"].as_array().unwrap().len(), 1);
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
    assert_eq!(created["circleci"]["orgs"][0]["slug"], "gh/acme", "github/ is written gh/");
    assert_eq!(created["circleci"]["users"][0]["id"], "6bcdf7af-08c6-4694-b35a-04fdafe03bef");
    assert_eq!(created["circleci"]["memberships"][1]["role"], "contributor", "the default role");
    let r = ci(&sim, Method::GET, "/me", Some("ada-token")).await;
    assert_eq!(r.body["login"], "ada-gh");
    let r = get(&sim, &format!("/org/{acme}/members")).await;
    assert_eq!(logins(&r.body), ["sim-admin", "ada-gh"]);

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

/// CircleCI has no search for members: the list takes no login (or e-mail) filter, so a
/// client finds someone by paging. Query parameters it does not know are ignored.
#[tokio::test]
async fn the_members_list_has_no_login_filter() {
    let sim = TestSim::start().await;
    seed_members(&sim, 30).await;
    let all = logins(&get(&sim, &format!("/org/{ORG_ID}/members?page-size=100")).await.body);
    assert_eq!(all.len(), 4 + 30);
    for filter in ["login=member-017", "q=member-017", "email=member-017@example.com", "filter=login%20eq%20member-017"]
    {
        let r = get(&sim, &format!("/org/{ORG_ID}/members?page-size=100&{filter}")).await;
        assert_eq!(r.status, StatusCode::OK, "{filter}");
        assert_eq!(logins(&r.body), all, "{filter} filters nothing");
    }
}
