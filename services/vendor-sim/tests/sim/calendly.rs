//! Calendly: auth, URIs (never bare UUIDs), cursor pagination, invitations, memberships, the
//! owner, and the per-minute rate limit with its headers; requests shaped as Calendly's
//! definition has them answered, and everything else refused as Calendly refuses it (404 for
//! an operation it lacks, 400 `Invalid Argument` naming the parameter or field).

use crate::common::{into_reply, now_ms, Reply, TestSim};
use lifecycle_vendor_sim::calendly::{Flags, Plan};
use lifecycle_vendor_sim::{Config, Vendor};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "calendly-admin-token";
const USER_TOKEN: &str = "calendly-user-token";

async fn call(sim: &TestSim, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", base(sim)) };
    let mut req = sim.http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_reply(req.send().await.expect("request reaches the simulator")).await
}

async fn get(sim: &TestSim, path: &str) -> Reply {
    call(sim, Method::GET, path, Some(TOKEN), None).await
}

fn base(sim: &TestSim) -> String {
    sim.running.base_url(Vendor::Calendly)
}

/// The organization URI and UUID, as `/users/me` gives them.
async fn org(sim: &TestSim) -> (String, String) {
    let me = get(sim, "/users/me").await;
    let uri = me.body["resource"]["current_organization"].as_str().expect("an organization").to_owned();
    let uuid = uri.rsplit('/').next().unwrap().to_owned();
    (uri, uuid)
}

fn enc(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

fn emails(page: &Value) -> Vec<String> {
    page["collection"].as_array().unwrap().iter().map(|m| m["user"]["email"].as_str().unwrap().to_owned()).collect()
}

async fn with_user_member(sim: &TestSim) {
    sim.seed(json!({"calendly": {"members": [
        {"email": "ursula@example.com", "name": "Ursula User", "token": USER_TOKEN}
    ]}}))
    .await;
}

fn membership_of<'a>(state: &'a Value, email: &str) -> Option<&'a Value> {
    state["calendly"]["memberships"].as_array().unwrap().iter().find(|m| m["email"] == email)
}

#[tokio::test]
async fn users_me_gives_the_token_owner_and_uris_built_from_the_sims_base() {
    let sim = TestSim::start().await;
    let r = get(&sim, "/users/me").await;
    assert_eq!(r.status, StatusCode::OK);
    let me = &r.body["resource"];
    assert_eq!(me["email"], "admin@sim.example");
    assert!(me["avatar_url"].is_string(), "the model's avatar_url is a string");
    let uri = me["uri"].as_str().unwrap();
    let prefix = format!("{}/users/", base(&sim));
    assert!(uri.starts_with(&prefix), "{uri}");
    let uuid = &uri[prefix.len()..];
    assert_eq!(uuid.len(), 16);
    let org = me["current_organization"].as_str().unwrap();
    assert!(org.starts_with(&format!("{}/organizations/", base(&sim))), "{org}");
    // The user by URI, as a client would follow it.
    let r = get(&sim, uri).await;
    assert_eq!(r.body["resource"]["email"], "admin@sim.example");
}

#[tokio::test]
async fn missing_or_unknown_token_is_401_without_rate_limit_headers() {
    let sim = TestSim::start().await;
    for token in [None, Some("nope")] {
        let r = call(&sim, Method::GET, "/users/me", token, None).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        assert_eq!(r.body, json!({"title": "Unauthenticated", "message": "The access token is invalid"}));
        assert!(r.headers.get("x-ratelimit-limit").is_none());
    }
    // The token is a Bearer token, not a query parameter.
    let r = call(&sim, Method::GET, &format!("/users/me?access_token={TOKEN}"), None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_bare_uuid_where_a_uri_is_expected_is_an_invalid_argument() {
    let sim = TestSim::start().await;
    let (org_uri, org_uuid) = org(&sim).await;
    let r = get(&sim, &format!("/organization_memberships?organization={org_uuid}")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["title"], "Invalid Argument");
    assert_eq!(r.body["details"][0]["parameter"], "organization");
    let r = get(&sim, "/organization_memberships?user=AAAAAAAAAAAAAAAA").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["details"][0]["parameter"], "user");
    // A URI must match exactly the one /users/me returned.
    let other = format!("https://api.calendly.com/organizations/{org_uuid}");
    let r = get(&sim, &format!("/organization_memberships?organization={}", enc(&other))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["title"], "Resource Not Found");
    let r = get(&sim, &format!("/organization_memberships?organization={}", enc(&org_uri))).await;
    assert_eq!(r.status, StatusCode::OK);
    // Neither organization nor user.
    let r = get(&sim, "/organization_memberships").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn memberships_page_by_cursor_up_to_100_at_a_time() {
    let sim = TestSim::start().await;
    let members: Vec<Value> = (0..150).map(|i| json!({"email": format!("m{i:03}@example.com")})).collect();
    sim.seed(json!({"calendly": {"members": members}})).await;
    let (org_uri, _) = org(&sim).await;
    let first_url = format!("/organization_memberships?organization={}&count=100", enc(&org_uri));

    let r = get(&sim, &first_url).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["collection"].as_array().unwrap().len(), 100);
    assert_eq!(r.body["pagination"]["count"], 100);
    assert!(r.body["pagination"]["previous_page_token"].is_null());
    let token = r.body["pagination"]["next_page_token"].as_str().expect("a next page").to_owned();
    let next_page = r.body["pagination"]["next_page"].as_str().unwrap().to_owned();
    assert!(next_page.starts_with(&format!("{}/organization_memberships?", base(&sim))), "{next_page}");
    assert!(next_page.contains("page_token=") && next_page.contains("count=100"), "{next_page}");
    let mut seen = emails(&r.body);

    // By token, and by following next_page: the same page.
    let r2 = get(&sim, &format!("{first_url}&page_token={token}")).await;
    let r3 = get(&sim, &next_page).await;
    assert_eq!(r2.body, r3.body);
    assert_eq!(r2.body["collection"].as_array().unwrap().len(), 53, "150 seeded + owner, admin, grace");
    assert!(r2.body["pagination"]["next_page_token"].is_null());
    assert!(r2.body["pagination"]["next_page"].is_null());
    seen.extend(emails(&r2.body));
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 153, "everyone exactly once");

    // Back again.
    let prev = r2.body["pagination"]["previous_page_token"].as_str().unwrap();
    let back = get(&sim, &format!("{first_url}&page_token={prev}")).await;
    assert_eq!(emails(&back.body), emails(&r.body));

    // Default page size 20; more than 100 is refused; a made-up token too.
    let r = get(&sim, &format!("/organization_memberships?organization={}", enc(&org_uri))).await;
    assert_eq!(r.body["collection"].as_array().unwrap().len(), 20);
    let r = get(&sim, &format!("/organization_memberships?organization={}&count=101", enc(&org_uri))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["details"][0]["parameter"], "count");
    let r = get(&sim, &format!("{first_url}&page_token=abc123")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["details"][0]["parameter"], "page_token");
}

#[tokio::test]
async fn memberships_and_invitations_filter_by_email_case_insensitively() {
    let sim = TestSim::start().await;
    let members: Vec<Value> = (0..150).map(|i| json!({"email": format!("m{i:03}@example.com")})).collect();
    sim.seed(json!({"calendly": {
        "members": members,
        "invitations": [
            {"email": "Ivy@Example.com"},
            {"email": "ivy@example.com", "status": "declined"},
            {"email": "other@example.com"}
        ]
    }}))
    .await;
    let (org_uri, org_uuid) = org(&sim).await;
    let members_of = |email: &str| {
        format!(
            "/organization_memberships?organization={}&email={}&count=100",
            enc(&org_uri),
            email.replace('@', "%40")
        )
    };

    // One member among 153, past the first page, whatever the case of the address.
    let r = get(&sim, &members_of("M149@EXAMPLE.com")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(emails(&r.body), ["m149@example.com"]);
    assert!(r.body["collection"][0]["uri"].as_str().unwrap().contains("/organization_memberships/"));
    // The usual envelope, with nothing after.
    assert_eq!(r.body["pagination"]["count"], 1);
    assert!(r.body["pagination"]["next_page_token"].is_null() && r.body["pagination"]["next_page"].is_null());
    assert!(r.body["pagination"]["previous_page_token"].is_null());
    // Exact match only: no prefix, no substring; nobody is an empty collection.
    for nobody in ["m14@example.com", "149@example.com", "m149@example.co", "stranger@example.com"] {
        let r = get(&sim, &members_of(nobody)).await;
        assert_eq!(r.status, StatusCode::OK, "{nobody}");
        assert_eq!(r.body["collection"], json!([]), "{nobody}");
        assert_eq!(r.body["pagination"]["count"], 0);
    }
    // An invitee is not a member.
    assert_eq!(get(&sim, &members_of("ivy@example.com")).await.body["collection"], json!([]));
    // The organization is still required, and exactly the one /users/me gave.
    let r = get(&sim, "/organization_memberships?email=m149%40example.com").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r =
        get(&sim, &format!("/organization_memberships?organization={}X&email=m149%40example.com", enc(&org_uri))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get(&sim, &format!("/organization_memberships?organization={}&email=", enc(&org_uri))).await;
    assert_eq!((r.status, r.body["details"][0]["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some("email")));

    // Invitations: every status but revoked, or with status= too.
    let invitations_of = |query: &str| format!("/organizations/{org_uuid}/invitations?{query}");
    let r = get(&sim, &invitations_of("email=IVY%40example.COM")).await;
    assert_eq!(r.status, StatusCode::OK);
    let statuses: Vec<&str> =
        r.body["collection"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["pending", "declined"]);
    assert!(r.body["collection"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["email"].as_str().unwrap().eq_ignore_ascii_case("ivy@example.com")));
    assert_eq!(r.body["pagination"]["count"], 2);
    let r = get(&sim, &invitations_of("email=ivy%40example.com&status=pending")).await;
    assert_eq!(r.body["collection"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["collection"][0]["status"], "pending");
    let r = get(&sim, &invitations_of("email=m149%40example.com")).await;
    assert_eq!(r.body["collection"], json!([]), "a member is no invitation");
    let r = get(&sim, &invitations_of("email=")).await;
    assert_eq!((r.status, r.body["details"][0]["parameter"].as_str()), (StatusCode::BAD_REQUEST, Some("email")));

    // A filtered list pages like any other, the filter kept in next_page.
    for _ in 0..2 {
        let r = call(
            &sim,
            Method::POST,
            &format!("/organizations/{org_uuid}/invitations"),
            Some(TOKEN),
            Some(json!({"email": "ivy@example.com"})),
        )
        .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "already invited");
    }
    sim.seed(json!({"calendly": {"decline_invitations": ["ivy@example.com"]}})).await;
    sim.seed(json!({"calendly": {"invitations": [{"email": "ivy@example.com"}]}})).await;
    let r = get(&sim, &invitations_of("email=ivy%40example.com&count=2")).await;
    assert_eq!(r.body["collection"].as_array().unwrap().len(), 2);
    let next = r.body["pagination"]["next_page"].as_str().expect("a next page").to_owned();
    assert!(next.contains("email=ivy%40example.com"), "{next}");
    let r = get(&sim, &next).await;
    let rest: Vec<&str> =
        r.body["collection"].as_array().unwrap().iter().map(|i| i["email"].as_str().unwrap()).collect();
    assert_eq!(rest, ["ivy@example.com"]);
    assert!(r.body["pagination"]["next_page_token"].is_null());

    // A user token may not look people up this way either.
    with_user_member(&sim).await;
    let r = call(&sim, Method::GET, &members_of("m149@example.com"), Some(USER_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = call(&sim, Method::GET, &invitations_of("email=ivy%40example.com"), Some(USER_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_cursor_does_not_skip_anyone_when_members_are_removed_while_paging() {
    let sim = TestSim::start().await;
    let members: Vec<Value> = (0..10).map(|i| json!({"email": format!("p{i}@example.com")})).collect();
    sim.seed(json!({"calendly": {"members": members}})).await;
    let (org_uri, _) = org(&sim).await;
    let url = format!("/organization_memberships?organization={}&count=5", enc(&org_uri));
    let page1 = get(&sim, &url).await;
    // Remove two people of the first page, then continue.
    for m in page1.body["collection"].as_array().unwrap().iter().filter(|m| m["role"] == "user").take(2) {
        let r = call(&sim, Method::DELETE, m["uri"].as_str().unwrap(), Some(TOKEN), None).await;
        assert_eq!(r.status, StatusCode::NO_CONTENT);
    }
    let token = page1.body["pagination"]["next_page_token"].as_str().unwrap();
    let page2 = get(&sim, &format!("{url}&page_token={token}")).await;
    assert_eq!(
        emails(&page2.body),
        ["p2@example.com", "p3@example.com", "p4@example.com", "p5@example.com", "p6@example.com"]
    );
}

#[tokio::test]
async fn a_user_token_cannot_list_invite_revoke_or_remove() {
    let sim = TestSim::start().await;
    with_user_member(&sim).await;
    let (org_uri, org_uuid) = org(&sim).await;
    let state = sim.state().await;
    let grace = membership_of(&state, "grace@example.com").unwrap()["uuid"].as_str().unwrap().to_owned();
    let cases = [
        (Method::GET, format!("/organization_memberships?organization={}", enc(&org_uri)), None),
        (Method::GET, format!("/organizations/{org_uuid}/invitations"), None),
        (Method::POST, format!("/organizations/{org_uuid}/invitations"), Some(json!({"email": "x@example.com"}))),
        (Method::DELETE, format!("/organization_memberships/{grace}"), None),
    ];
    for (method, path, body) in cases {
        let r = call(&sim, method.clone(), &path, Some(USER_TOKEN), body).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(r.body["title"], "Permission Denied");
        assert!(r.headers.get("x-ratelimit-remaining").is_some(), "after auth");
    }
    // Their own membership, through the user filter, is theirs to see.
    let me = call(&sim, Method::GET, "/users/me", Some(USER_TOKEN), None).await;
    let my_uri = me.body["resource"]["uri"].as_str().unwrap();
    let r = call(&sim, Method::GET, &format!("/organization_memberships?user={}", enc(my_uri)), Some(USER_TOKEN), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(emails(&r.body), ["ursula@example.com"]);
    assert!(sim.state().await["calendly"]["log"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn inviting_creates_a_pending_invitation_and_no_membership() {
    let sim = TestSim::start().await;
    let (org_uri, org_uuid) = org(&sim).await;
    let path = format!("/organizations/{org_uuid}/invitations");
    let r = call(&sim, Method::POST, &path, Some(TOKEN), Some(json!({"email": "ada@example.com"}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let inv = &r.body["resource"];
    assert_eq!(inv["status"], "pending");
    assert_eq!(inv["email"], "ada@example.com");
    assert_eq!(inv["organization"], org_uri.as_str());
    assert!(inv["uri"].as_str().unwrap().starts_with(&format!("{org_uri}/invitations/")));

    let state = sim.state().await;
    assert!(membership_of(&state, "ada@example.com").is_none(), "not a member until accepted");
    assert_eq!(state["calendly"]["log"][0]["action"], "invitation.create");

    // Again, in another case: already invited. A member: already a member. Both are the
    // definition's 400 (it declares no 409 for this operation), naming the address.
    let r = call(&sim, Method::POST, &path, Some(TOKEN), Some(json!({"email": "ADA@example.com"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["title"], "Invalid Argument");
    assert_eq!(r.body["details"][0]["parameter"], "email");
    assert!(r.body["details"][0]["message"].as_str().unwrap().contains("pending invitation"), "{}", r.body);
    let r = call(&sim, Method::POST, &path, Some(TOKEN), Some(json!({"email": "grace@example.com"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["details"][0]["message"].as_str().unwrap().contains("already a member"), "{}", r.body);
    for body in [json!({}), json!({"email": "not-an-email"}), json!({"email": 3}), json!({"email": null})] {
        let r = call(&sim, Method::POST, &path, Some(TOKEN), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body["details"][0]["parameter"], "email");
    }
    // The organization in the path is a UUID; anything else is not found.
    let r = call(
        &sim,
        Method::POST,
        "/organizations/AAAAAAAAAAAAAAAA/invitations",
        Some(TOKEN),
        Some(json!({"email": "b@example.com"})),
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Listing, filtered by status.
    let r = get(&sim, &format!("{path}?status=pending&count=100")).await;
    let listed: Vec<&str> =
        r.body["collection"].as_array().unwrap().iter().map(|i| i["email"].as_str().unwrap()).collect();
    assert_eq!(listed, ["ada@example.com"]);
    let r = get(&sim, &format!("{path}?status=accepted")).await;
    assert!(r.body["collection"].as_array().unwrap().is_empty());
    let r = get(&sim, &format!("{path}?status=bogus")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn accepting_through_the_control_api_makes_a_member() {
    let sim = TestSim::start().await;
    let (_, org_uuid) = org(&sim).await;
    let path = format!("/organizations/{org_uuid}/invitations");
    call(&sim, Method::POST, &path, Some(TOKEN), Some(json!({"email": "ada@example.com"}))).await;
    let created = sim
        .seed(json!({"calendly": {"accept_invitations": [{"email": "ada@example.com", "name": "Ada Lovelace"}]}}))
        .await;
    assert_eq!(created["calendly"]["accepted"][0]["role"], "user");
    let state = sim.state().await;
    let m = membership_of(&state, "ada@example.com").expect("a member now");
    assert_eq!(m["name"], "Ada Lovelace");
    let inv = &state["calendly"]["invitations"][0];
    assert_eq!(inv["status"], "accepted");
    assert!(inv["user"].as_str().unwrap().ends_with(m["user_uuid"].as_str().unwrap()));
    // Accepting what is not pending is refused.
    let r = sim
        .control_raw(Method::POST, "/_sim/seed", Some(json!({"calendly": {"accept_invitations": ["ada@example.com"]}})))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn only_pending_invitations_can_be_revoked() {
    let sim = TestSim::start().await;
    let (_, org_uuid) = org(&sim).await;
    let path = format!("/organizations/{org_uuid}/invitations");
    let r = call(&sim, Method::POST, &path, Some(TOKEN), Some(json!({"email": "pending@example.com"}))).await;
    let pending = r.body["resource"]["uri"].as_str().unwrap().to_owned();
    let r = call(&sim, Method::POST, &path, Some(TOKEN), Some(json!({"email": "joined@example.com"}))).await;
    let accepted = r.body["resource"]["uri"].as_str().unwrap().to_owned();
    sim.seed(json!({"calendly": {"accept_invitations": ["joined@example.com"]}})).await;

    let r = call(&sim, Method::DELETE, &accepted, Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["message"].as_str().unwrap().contains("Only pending invitations can be revoked"), "{}", r.body);

    let r = call(&sim, Method::DELETE, &pending, Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Gone from listings; a second revoke finds nothing.
    let r = get(&sim, &path).await;
    let listed: Vec<&str> =
        r.body["collection"].as_array().unwrap().iter().map(|i| i["email"].as_str().unwrap()).collect();
    assert_eq!(listed, ["joined@example.com"]);
    let r = call(&sim, Method::DELETE, &pending, Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let state = sim.state().await;
    let statuses: Vec<&str> =
        state["calendly"]["invitations"].as_array().unwrap().iter().map(|i| i["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["revoked", "accepted"]);
    let actions: Vec<&str> =
        state["calendly"]["log"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["invitation.create", "invitation.create", "invitation.revoke"]);
}

#[tokio::test]
async fn the_owner_cannot_be_removed_and_removal_keeps_the_account() {
    let sim = TestSim::start().await;
    let state = sim.state().await;
    let owner = membership_of(&state, "owner@sim.example").unwrap().clone();
    assert_eq!(owner["role"], "owner");
    let r = call(&sim, Method::DELETE, owner["uri"].as_str().unwrap(), Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body["message"].as_str().unwrap().contains("owner"), "{}", r.body);

    let grace = membership_of(&state, "grace@example.com").unwrap().clone();
    let r = get(&sim, grace["uri"].as_str().unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["resource"]["user"]["email"], "grace@example.com");
    // Roles cannot be changed through this endpoint: the definition has no such operation.
    let r =
        call(&sim, Method::PATCH, grace["uri"].as_str().unwrap(), Some(TOKEN), Some(json!({"role": "admin"}))).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.body["title"], "Resource Not Found");
    let r = call(&sim, Method::DELETE, grace["uri"].as_str().unwrap(), Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = get(&sim, grace["uri"].as_str().unwrap()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = call(&sim, Method::DELETE, grace["uri"].as_str().unwrap(), Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let state = sim.state().await;
    assert!(membership_of(&state, "owner@sim.example").is_some());
    assert!(membership_of(&state, "grace@example.com").is_none());
    let account =
        state["calendly"]["users"].as_array().unwrap().iter().find(|u| u["email"] == "grace@example.com").unwrap();
    assert!(account["current_organization"].is_null(), "the account stays, outside the organization");
    let log = state["calendly"]["log"].as_array().unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0]["action"], "membership.delete");
    assert_eq!(log[0]["email"], "grace@example.com");
}

#[tokio::test]
async fn get_user_needs_the_same_organization_or_an_admin() {
    let sim = TestSim::start().await;
    with_user_member(&sim).await;
    let state = sim.state().await;
    let grace = membership_of(&state, "grace@example.com").unwrap().clone();
    let grace_user = format!("/users/{}", grace["user_uuid"].as_str().unwrap());
    let r = call(&sim, Method::GET, &grace_user, Some(USER_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::OK, "same organization");
    call(&sim, Method::DELETE, grace["uri"].as_str().unwrap(), Some(TOKEN), None).await;
    let r = call(&sim, Method::GET, &grace_user, Some(USER_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "no longer in the organization");
    let r = get(&sim, &grace_user).await;
    assert_eq!(r.status, StatusCode::OK, "an admin sees them");
    let r = get(&sim, "/users/0000000000000000").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Sleep out the end of the current minute if a burst might straddle it.
async fn avoid_minute_boundary(burst_ms: i64) {
    let into = now_ms().rem_euclid(60_000);
    if into > 60_000 - burst_ms {
        tokio::time::sleep(std::time::Duration::from_millis((60_000 - into + 20) as u64)).await;
    }
}

#[tokio::test]
async fn sixty_requests_a_minute_then_the_documented_429() {
    let sim = TestSim::start().await;
    avoid_minute_boundary(10_000).await;
    let mut remaining = Vec::new();
    for _ in 0..60 {
        let r = get(&sim, "/users/me").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header_i64("x-ratelimit-limit"), 60);
        let reset = r.header_i64("x-ratelimit-reset");
        assert!((0..=60).contains(&reset), "Reset is seconds from now, not a timestamp: {reset}");
        remaining.push(r.header_i64("x-ratelimit-remaining"));
    }
    assert_eq!((remaining[0], remaining[59]), (59, 0));
    let r = get(&sim, "/users/me").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["title"], "Too Many Requests");
    // As developer.calendly.com documents it: Limit, Remaining 0, Reset in seconds; no Retry-After.
    let reset = r.header_i64("x-ratelimit-reset");
    assert!((1..=60).contains(&reset), "seconds until the window ends: {reset}");
    assert_eq!(r.header_i64("x-ratelimit-limit"), 60);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    assert!(r.headers.get("retry-after").is_none(), "Calendly documents no Retry-After");

    // Another token has its own budget.
    with_user_member(&sim).await;
    let r = call(&sim, Method::GET, "/users/me", Some(USER_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let counters = &sim.state().await["calendly"]["counters"];
    assert_eq!(counters["rate_limited"], 1);
}

#[tokio::test]
async fn the_enterprise_plan_allows_120_a_minute_by_flag_or_knob() {
    let config = Config { calendly: Flags { plan: Plan::Enterprise, ..Flags::default() }, ..Config::ephemeral() };
    let sim = TestSim::start_with(config).await;
    let r = get(&sim, "/users/me").await;
    assert_eq!(r.header_i64("x-ratelimit-limit"), 120);
    let config = sim.control(Method::GET, "/_sim/config", None).await;
    assert_eq!(config["calendly"]["plan"], "enterprise");

    let sim = TestSim::start().await;
    let config = sim.control(Method::POST, "/_sim/config", Some(json!({"calendly": {"plan": "enterprise"}}))).await;
    assert_eq!(config["calendly"]["rate_limit"]["requests"], 120);
    avoid_minute_boundary(10_000).await;
    for _ in 0..120 {
        assert_eq!(get(&sim, "/users/me").await.status, StatusCode::OK);
    }
    assert_eq!(get(&sim, "/users/me").await.status, StatusCode::TOO_MANY_REQUESTS);
    let bad = sim.control_raw(Method::POST, "/_sim/config", Some(json!({"calendly": {"plan": "gold"}}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Reset restores the flag's plan.
    sim.control(Method::POST, "/_sim/reset", None).await;
    let config = sim.control(Method::GET, "/_sim/config", None).await;
    assert_eq!(config["calendly"]["plan"], "standard");
    assert_eq!(config["calendly"]["rate_limit"]["requests"], 60);
}

#[tokio::test]
async fn an_injected_429_looks_like_calendlys_own() {
    let sim = TestSim::start().await;
    sim.fault(json!({"vendor": "calendly", "path": "/users/me", "kind": "status", "status": 429})).await;
    let r = get(&sim, "/users/me").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.body["title"], "Too Many Requests");
    assert!(r.headers.get("retry-after").is_none());
    assert!((1..=60).contains(&r.header_i64("x-ratelimit-reset")));
    assert_eq!(r.header_i64("x-ratelimit-limit"), 60);
    assert_eq!(r.header_i64("x-ratelimit-remaining"), 0);
    sim.fault(json!({"vendor": "calendly", "path": "/users/me", "kind": "status", "status": 503})).await;
    let r = get(&sim, "/users/me").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.body["title"], "Internal Server Error");
    assert_eq!(get(&sim, "/users/me").await.status, StatusCode::OK);
}

#[tokio::test]
async fn reset_keeps_the_owner_and_the_admin() {
    let sim = TestSim::start_empty().await;
    let state = sim.state().await;
    let roles: Vec<(&str, &str)> = state["calendly"]["memberships"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["email"].as_str().unwrap(), m["role"].as_str().unwrap()))
        .collect();
    assert_eq!(roles, [("owner@sim.example", "owner"), ("admin@sim.example", "admin")]);
    sim.control(Method::POST, "/_sim/reset", Some(json!({"fixture": "default"}))).await;
    assert!(membership_of(&sim.state().await, "grace@example.com").is_some());
    assert_eq!(get(&sim, "/users/me").await.status, StatusCode::OK);
}

#[test]
fn the_command_line_takes_the_calendly_flags() {
    use clap::{CommandFactory, Parser};
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }
    Cli::command().debug_assert();
    let cli = Cli::try_parse_from(["sim", "--calendly-plan", "enterprise", "--calendly-admin-token", "other"]).unwrap();
    assert_eq!(cli.config.calendly.plan, Plan::Enterprise);
    assert_eq!(cli.config.calendly.admin_token, "other");
    assert!(!format!("{:?}", cli.config).contains("other"), "the token is never printed");
    assert!(Cli::try_parse_from(["sim", "--calendly-plan", "gold"]).is_err());
}

/// Asserts `value` has exactly the fields of the definition's model (the speakeasy SDK's
/// `shared.<Model>`), none null but `optional` ones.
fn has_fields(value: &Value, fields: &[&str], optional: &[&str], what: &str) {
    let object = value.as_object().unwrap_or_else(|| panic!("{what} is an object: {value}"));
    for f in fields {
        let v = object.get(*f).unwrap_or_else(|| panic!("{what} lacks {f}: {value}"));
        assert!(!v.is_null() || optional.contains(f), "{what}.{f} is null: {value}");
    }
    for k in object.keys() {
        assert!(fields.contains(&k.as_str()) || optional.contains(&k.as_str()), "{k} is no field of {what}: {value}");
    }
}

const USER_FIELDS: &[&str] =
    &["avatar_url", "created_at", "email", "name", "scheduling_url", "slug", "timezone", "updated_at", "uri"];
const MEMBERSHIP_FIELDS: &[&str] = &["created_at", "organization", "role", "updated_at", "uri", "user"];
const INVITATION_FIELDS: &[&str] =
    &["created_at", "email", "last_sent_at", "organization", "status", "updated_at", "uri"];
const PAGINATION_FIELDS: &[&str] = &["count", "next_page", "next_page_token", "previous_page", "previous_page_token"];

/// Each of the nine operations, with every parameter the definition gives it, is answered
/// with the definition's status and fields.
#[tokio::test]
async fn requests_shaped_as_the_definition_has_them_are_answered_in_its_shapes() {
    let sim = TestSim::start().await;
    sim.seed(json!({"calendly": {"invitations": [{"email": "ivy@example.com"}, {"email": "dan@example.com", "status": "declined"}]}}))
        .await;
    let (org_uri, org_uuid) = org(&sim).await;

    // GetMyUserAccount, GetUser.
    let me = get(&sim, "/users/me").await;
    assert_eq!(me.status, StatusCode::OK);
    has_fields(&me.body["resource"], &[USER_FIELDS, &["current_organization"]].concat(), &[], "User");
    let my_uri = me.body["resource"]["uri"].as_str().unwrap().to_owned();
    let r = get(&sim, &format!("/users/{}", my_uri.rsplit('/').next().unwrap())).await;
    assert_eq!(r.status, StatusCode::OK);
    has_fields(&r.body["resource"], &[USER_FIELDS, &["current_organization"]].concat(), &[], "User");

    // GetOrganizationMemberships: count, email, organization, page_token, role, user.
    let all = format!("/organization_memberships?organization={}&count=100", enc(&org_uri));
    let r = get(&sim, &all).await;
    assert_eq!(r.status, StatusCode::OK);
    // "null" indicates no further page (the model's comment): the four links may be null.
    has_fields(&r.body["pagination"], &["count"], &PAGINATION_FIELDS[1..], "Pagination");
    for m in r.body["collection"].as_array().unwrap() {
        has_fields(m, MEMBERSHIP_FIELDS, &[], "OrganizationMembership");
        has_fields(&m["user"], USER_FIELDS, &[], "OrganizationMembershipUser");
        assert!(["owner", "admin", "user"].contains(&m["role"].as_str().unwrap()), "{m}");
    }
    let r = get(&sim, &format!("{all}&email=grace%40example.com&role=user&user={}", enc(&my_uri))).await;
    assert_eq!((r.status, r.body["collection"].as_array().unwrap().len()), (StatusCode::OK, 0), "{}", r.body);
    let r = get(&sim, &format!("/organization_memberships?organization={}&role=owner", enc(&org_uri))).await;
    assert_eq!(emails(&r.body), ["owner@sim.example"]);
    let r = get(&sim, &format!("/organization_memberships?user={}", enc(&my_uri))).await;
    assert_eq!(emails(&r.body), ["admin@sim.example"]);
    let first = get(&sim, &format!("/organization_memberships?organization={}&count=1", enc(&org_uri))).await;
    let token = first.body["pagination"]["next_page_token"].as_str().unwrap();
    let r = get(&sim, &format!("/organization_memberships?organization={}&count=1&page_token={token}", enc(&org_uri)))
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // GetOrganizationsUUIDMemberships, and the invitations: list (count, email, page_token,
    // sort, status), get, create, revoke; remove a membership.
    let grace = membership_of(&sim.state().await, "grace@example.com").unwrap()["uuid"].as_str().unwrap().to_owned();
    let r = get(&sim, &format!("/organization_memberships/{grace}")).await;
    assert_eq!(r.status, StatusCode::OK);
    has_fields(&r.body["resource"], MEMBERSHIP_FIELDS, &[], "OrganizationMembership");
    let invitations = format!("/organizations/{org_uuid}/invitations");
    let r = get(&sim, &format!("{invitations}?count=100&email=ivy%40example.com&sort=created_at%3Aasc&status=pending"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // "null" indicates no further page (the model's comment): the four links may be null.
    has_fields(&r.body["pagination"], &["count"], &PAGINATION_FIELDS[1..], "Pagination");
    let ivy = r.body["collection"][0].clone();
    has_fields(&ivy, INVITATION_FIELDS, &["user"], "OrganizationInvitation");
    let r = get(&sim, ivy["uri"].as_str().unwrap()).await;
    assert_eq!((r.status, &r.body["resource"]), (StatusCode::OK, &ivy), "GetOrganizationsOrgUUIDInvitationsUUID");
    let r = call(&sim, Method::POST, &invitations, Some(TOKEN), Some(json!({"email": "new@example.com"}))).await;
    assert_eq!(r.status, StatusCode::CREATED);
    has_fields(&r.body["resource"], INVITATION_FIELDS, &["user"], "OrganizationInvitation");
    let r = call(&sim, Method::DELETE, ivy["uri"].as_str().unwrap(), Some(TOKEN), None).await;
    assert_eq!((r.status, r.body.clone()), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(get(&sim, ivy["uri"].as_str().unwrap()).await.status, StatusCode::NOT_FOUND, "revoked is gone");
    let r = call(&sim, Method::DELETE, &format!("/organization_memberships/{grace}"), Some(TOKEN), None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}

/// A path or a method Calendly's definition does not have is Calendly's 404.
#[tokio::test]
async fn an_operation_the_definition_lacks_is_a_404() {
    let sim = TestSim::start().await;
    let (_, org_uuid) = org(&sim).await;
    let grace = membership_of(&sim.state().await, "grace@example.com").unwrap()["uuid"].as_str().unwrap().to_owned();
    let cases = [
        (Method::GET, "/users".to_owned()),
        (Method::GET, "/users/me/".to_owned()),
        (Method::GET, "/organization_members".to_owned()),
        (Method::GET, "/v2/organization_memberships".to_owned()),
        (Method::GET, format!("/organizations/{org_uuid}/members")),
        (Method::POST, "/organization_memberships".to_owned()),
        (Method::PATCH, format!("/organization_memberships/{grace}")),
        (Method::PUT, format!("/organization_memberships/{grace}")),
        (Method::DELETE, format!("/organizations/{org_uuid}/invitations")),
        (Method::DELETE, "/users/me".to_owned()),
    ];
    for (method, path) in cases {
        let r = call(&sim, method.clone(), &path, Some(TOKEN), Some(json!({"role": "admin"}))).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(r.body["title"], "Resource Not Found", "{method} {path}");
        assert!(r.body["message"].is_string());
    }
    assert!(membership_of(&sim.state().await, "grace@example.com").is_some());
}

/// An unknown, repeated, missing, ill-typed or out-of-range query parameter is a 400
/// `Invalid Argument` whose details name it, on every operation.
#[tokio::test]
async fn query_parameters_off_the_definition_are_a_400_naming_them() {
    let sim = TestSim::start().await;
    sim.seed(json!({"calendly": {"invitations": [{"email": "ivy@example.com"}]}})).await;
    let (org_uri, org_uuid) = org(&sim).await;
    let state = sim.state().await;
    let grace = membership_of(&state, "grace@example.com").unwrap().clone();
    let ivy = state["calendly"]["invitations"][0]["uuid"].as_str().unwrap().to_owned();
    let members = format!("/organization_memberships?organization={}", enc(&org_uri));
    let invitations = format!("/organizations/{org_uuid}/invitations");
    let refused = |r: &Reply, parameter: &str, what: &str| {
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert_eq!(r.body["title"], "Invalid Argument", "{what}");
        assert!(r.body["message"].is_string(), "{what}");
        assert_eq!(r.body["details"][0]["parameter"], parameter, "{what}: {}", r.body);
        assert!(r.body["details"][0]["message"].is_string(), "{what}");
        assert!(r.headers.get("x-ratelimit-remaining").is_some(), "{what}: counted like any answer");
    };

    // A parameter the operation does not take, on each of the nine.
    let each = [
        (Method::GET, "/users/me".to_owned()),
        (Method::GET, format!("/users/{}", grace["user_uuid"].as_str().unwrap())),
        (Method::GET, members.clone()),
        (Method::GET, format!("/organization_memberships/{}", grace["uuid"].as_str().unwrap())),
        (Method::DELETE, format!("/organization_memberships/{}", grace["uuid"].as_str().unwrap())),
        (Method::GET, invitations.clone()),
        (Method::POST, invitations.clone()),
        (Method::GET, format!("{invitations}/{ivy}")),
        (Method::DELETE, format!("{invitations}/{ivy}")),
    ];
    for (method, path) in each {
        let sep = if path.contains('?') { '&' } else { '?' };
        let body = (method == Method::POST).then(|| json!({"email": "new@example.com"}));
        let r = call(&sim, method.clone(), &format!("{path}{sep}limit=10"), Some(TOKEN), body).await;
        refused(&r, "limit", &format!("{method} {path}"));
    }
    // What another operation takes is no parameter of this one.
    refused(&get(&sim, &format!("{invitations}?organization={}", enc(&org_uri))).await, "organization", "invitations");
    refused(&get(&sim, &format!("{members}&sort=created_at%3Aasc")).await, "sort", "members");
    refused(&get(&sim, &format!("{members}&status=pending")).await, "status", "members");

    // Given twice; missing; ill-typed or out of range.
    let cases = [
        (format!("{members}&count=10&count=20"), "count"),
        (format!("{members}&organization={}", enc(&org_uri)), "organization"),
        ("/organization_memberships?email=grace%40example.com".to_owned(), "organization"),
        ("/organization_memberships?count=10".to_owned(), "organization"),
        (format!("{members}&count=0"), "count"),
        (format!("{members}&count=101"), "count"),
        (format!("{members}&count=ten"), "count"),
        (format!("{members}&count=10.5"), "count"),
        (format!("{members}&count=-1"), "count"),
        (format!("{members}&count="), "count"),
        (format!("{members}&role=member"), "role"),
        (format!("{members}&role=Owner"), "role"),
        (format!("{members}&email="), "email"),
        (format!("{members}&page_token=abc"), "page_token"),
        ("/organization_memberships?organization=BBBBBBBBBBBBBBBB".to_owned(), "organization"),
        ("/organization_memberships?user=AAAAAAAAAAAAAAAA".to_owned(), "user"),
        (format!("{invitations}?count=1000"), "count"),
        (format!("{invitations}?status=revoked"), "status"),
        (format!("{invitations}?status=PENDING"), "status"),
        (format!("{invitations}?status="), "status"),
        (format!("{invitations}?sort=email%3Aasc"), "sort"),
        (format!("{invitations}?sort=created_at"), "sort"),
        (format!("{invitations}?sort=created_at%3Aup"), "sort"),
        (format!("{invitations}?status=pending&status=declined"), "status"),
    ];
    for (path, parameter) in cases {
        refused(&get(&sim, &path).await, parameter, &path);
    }
    // A cursor of one list is no cursor of another (nor of the same list in the other order).
    let page = get(&sim, &format!("{members}&count=1")).await;
    let token = page.body["pagination"]["next_page_token"].as_str().unwrap().to_owned();
    refused(&get(&sim, &format!("{invitations}?page_token={token}")).await, "page_token", "a membership cursor");
    sim.seed(json!({"calendly": {"invitations": [{"email": "jo@example.com"}]}})).await;
    let page = get(&sim, &format!("{invitations}?count=1")).await;
    let token = page.body["pagination"]["next_page_token"].as_str().unwrap().to_owned();
    assert_eq!(get(&sim, &format!("{invitations}?count=1&page_token={token}")).await.status, StatusCode::OK);
    refused(
        &get(&sim, &format!("{invitations}?count=1&sort=created_at%3Adesc&page_token={token}")).await,
        "page_token",
        "an ascending cursor in a descending list",
    );
    // Nothing was changed by any of it.
    assert!(sim.state().await["calendly"]["log"].as_array().unwrap().is_empty());
}

/// The invitation body is `{"email"}`: another field, none, or one of another type is a 400
/// naming it, and nothing is sent.
#[tokio::test]
async fn an_invitation_body_off_the_schema_is_a_400_naming_the_field() {
    let sim = TestSim::start().await;
    let (_, org_uuid) = org(&sim).await;
    let path = format!("/organizations/{org_uuid}/invitations");
    let cases = [
        (json!({"email": "ada@example.com", "role": "admin"}), "role"),
        (json!({"email": "ada@example.com", "name": "Ada"}), "name"),
        (json!({"emails": ["ada@example.com"]}), "emails"),
        (json!({}), "email"),
        (json!({"email": ["ada@example.com"]}), "email"),
        (json!({"email": ""}), "email"),
        (json!(["ada@example.com"]), "body"),
    ];
    for (body, parameter) in cases {
        let r = call(&sim, Method::POST, &path, Some(TOKEN), Some(body.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.body["title"], "Invalid Argument", "{body}");
        assert_eq!(r.body["details"][0]["parameter"], parameter, "{body}: {}", r.body);
    }
    let r = sim
        .http
        .post(format!("{}{path}", base(&sim)))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(sim.state().await["calendly"]["invitations"].as_array().unwrap().is_empty(), "nothing was sent");
}

/// `sort=created_at:desc` lists the newest invitations first, and pages that way.
#[tokio::test]
async fn invitations_sort_newest_first_and_page_in_that_order() {
    let sim = TestSim::start().await;
    let (_, org_uuid) = org(&sim).await;
    let invitations: Vec<Value> = (0..5).map(|i| json!({"email": format!("i{i}@example.com")})).collect();
    sim.seed(json!({"calendly": {"invitations": invitations}})).await;
    let listed = |page: &Value| -> Vec<String> {
        page["collection"].as_array().unwrap().iter().map(|i| i["email"].as_str().unwrap().to_owned()).collect()
    };
    let path = format!("/organizations/{org_uuid}/invitations?count=2&sort=created_at%3Adesc");
    let mut seen = Vec::new();
    let mut page = get(&sim, &path).await;
    loop {
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        seen.extend(listed(&page.body));
        match page.body["pagination"]["next_page"].as_str() {
            Some(next) => {
                assert!(next.contains("sort=created_at%3Adesc"), "{next}");
                page = get(&sim, next).await;
            }
            None => break,
        }
    }
    assert_eq!(seen, ["i4@example.com", "i3@example.com", "i2@example.com", "i1@example.com", "i0@example.com"]);
    let asc =
        get(&sim, &format!("/organizations/{org_uuid}/invitations?sort=created_at%3Aasc,created_at%3Adesc")).await;
    assert_eq!(listed(&asc.body)[0], "i0@example.com", "the first key decides");
}
