//! Jira Cloud and its SCIM directory: auth, privacy, pagination, groups by id, site access
//! removal, rate-limit headers; requests shaped as the published definitions say are served,
//! anything else is refused in the vendor's error shape.

use crate::common::{into_reply, Reply, TestSim};
use lifecycle_vendor_sim::jira::{
    ADMIN_ACCOUNT_ID, ADMIN_EMAIL, DEFAULT_ADMIN_TOKEN, DEFAULT_DIRECTORY_ID, DEFAULT_SCIM_TOKEN, SCIM_MOUNT,
    SOFTWARE_USERS_GROUP_ID,
};
use lifecycle_vendor_sim::Vendor;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const GRACE: &str = "5b10ac8d82e05b22cc7d4ef5";
const HIDDEN: &str = "712020:6f1c0b7e-4c1d-4f0e-9a55-2f0d8c1b7a11";

enum Auth<'a> {
    None,
    Basic(&'a str, &'a str),
    Bearer(&'a str),
}

const ADMIN: Auth<'static> = Auth::Basic(ADMIN_EMAIL, DEFAULT_ADMIN_TOKEN);

async fn jira(sim: &TestSim, method: Method, path: &str, auth: Auth<'_>, body: Option<Value>) -> Reply {
    let mut req = sim.http.request(method, format!("{}{}", sim.running.base_url(Vendor::Jira), path));
    req = match auth {
        Auth::None => req,
        Auth::Basic(email, token) => req.basic_auth(email, Some(token)),
        Auth::Bearer(token) => req.bearer_auth(token),
    };
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_reply(req.send().await.expect("request reaches the simulator")).await
}

async fn get(sim: &TestSim, path: &str) -> Reply {
    jira(sim, Method::GET, path, ADMIN, None).await
}

async fn scim(sim: &TestSim, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
    let url = format!("{}{SCIM_MOUNT}/directory/{DEFAULT_DIRECTORY_ID}{path}", sim.running.url());
    let mut req = sim.http.request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    into_reply(req.send().await.expect("request reaches the simulator")).await
}

fn header<'a>(r: &'a Reply, name: &str) -> &'a str {
    r.headers.get(name).unwrap_or_else(|| panic!("missing header {name}")).to_str().unwrap()
}

fn jira_state(state: &Value) -> &Value {
    &state["jira"]
}

fn user_in_state<'a>(state: &'a Value, account_id: &str) -> &'a Value {
    jira_state(state)["users"].as_array().unwrap().iter().find(|u| u["accountId"] == account_id).unwrap()
}

fn actions(state: &Value) -> Vec<String> {
    jira_state(state)["log"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_string()).collect()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn basic_auth_needs_the_token_owners_email_and_bearer_works_too() {
    let sim = TestSim::start().await;
    let r = jira(&sim, Method::GET, "/myself", Auth::None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.body["errorMessages"][0].as_str().unwrap().contains("authenticated"));
    assert!(r.headers.contains_key("www-authenticate"));
    assert_eq!(jira(&sim, Method::GET, "/myself", Auth::Basic(ADMIN_EMAIL, "nope"), None).await.status, 401);
    let r = jira(&sim, Method::GET, "/myself", Auth::Basic("grace@example.com", DEFAULT_ADMIN_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the email must be the token owner's");

    let r = get(&sim, "/myself").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["accountId"], ADMIN_ACCOUNT_ID);
    let r = jira(&sim, Method::GET, "/myself", Auth::Bearer(DEFAULT_ADMIN_TOKEN), None).await;
    assert_eq!(r.body["accountId"], ADMIN_ACCOUNT_ID);

    // Tokens of deactivated users stop working; non-admins cannot manage users.
    sim.seed(json!({"jira": {"users": [
        {"emailAddress": "gone@example.com", "apiToken": "gone-token", "active": false},
        {"emailAddress": "plain@example.com", "apiToken": "plain-token"}
    ]}}))
    .await;
    let gone = jira(&sim, Method::GET, "/myself", Auth::Basic("gone@example.com", "gone-token"), None).await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    let plain = Auth::Basic("plain@example.com", "plain-token");
    assert_eq!(jira(&sim, Method::GET, "/myself", plain, None).await.status, StatusCode::OK);
    let plain = Auth::Basic("plain@example.com", "plain-token");
    let r = jira(&sim, Method::GET, "/users/search", plain, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "site admins only");
    let plain = Auth::Basic("plain@example.com", "plain-token");
    let body = json!({"emailAddress": "x@example.com", "products": []});
    assert_eq!(jira(&sim, Method::POST, "/user", plain, Some(body)).await.status, StatusCode::FORBIDDEN);
    let text = serde_json::to_string(&sim.state().await).unwrap();
    assert!(!text.contains(DEFAULT_ADMIN_TOKEN) && !text.contains("plain-token"), "tokens never appear in state");
}

#[tokio::test]
async fn users_are_identified_by_account_id_only() {
    let sim = TestSim::start().await;
    for legacy in ["/user?username=grace", "/user?key=grace", "/user/groups?username=grace"] {
        let r = get(&sim, legacy).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{legacy}");
        assert!(r.body["errorMessages"][0].as_str().unwrap().contains("accountId"), "{}", r.body);
    }
    assert_eq!(get(&sim, "/user").await.status, StatusCode::BAD_REQUEST);
    let r = get(&sim, &format!("/user?accountId={GRACE}&expand=groups,applicationRoles")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["emailAddress"], "grace@example.com");
    assert_eq!(r.body["accountType"], "atlassian");
    assert_eq!(r.body["groups"]["size"], 2);
    assert_eq!(r.body["applicationRoles"]["items"][0]["key"], "jira-software");
    let r = get(&sim, "/user?accountId=712020:nobody").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body["errorMessages"].is_array() && r.body["errors"].is_object());
}

#[tokio::test]
async fn a_hidden_address_reads_null_yet_still_matches_a_search() {
    let sim = TestSim::start().await;
    let r = get(&sim, "/user/search?query=alex.private@example.com").await;
    assert_eq!(r.status, StatusCode::OK);
    let found = r.body.as_array().unwrap();
    assert_eq!(found.len(), 1, "the search matched the hidden address");
    assert_eq!(found[0]["accountId"], HIDDEN);
    // Hidden: the field is left out (the schema types it a string; "may be returned as null").
    assert!(found[0].get("emailAddress").is_none(), "but the address is not shown: {}", found[0]);
    assert!(get(&sim, &format!("/user?accountId={HIDDEN}")).await.body.get("emailAddress").is_none());
    // "The string can match the prefix of the attribute's value": a prefix of the hidden
    // address or of the name finds it, a substring does not. A search hit is not a match.
    for query in ["alex.priv", "ALEX%20Pri"] {
        let r = get(&sim, &format!("/user/search?query={query}")).await;
        assert_eq!(r.body.as_array().unwrap().len(), 1, "{query}: {}", r.body);
    }
    assert_eq!(get(&sim, "/user/search?query=example.com").await.body, json!([]), "not a substring");
    assert_eq!(get(&sim, "/user/search").await.status, StatusCode::BAD_REQUEST, "query or accountId is required");
    let both = get(&sim, &format!("/user/search?query=grace&accountId={GRACE}")).await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST, "query and accountId together: {}", both.body);
    let by_id = get(&sim, &format!("/user/search?accountId={GRACE}")).await;
    assert_eq!(by_id.body[0]["accountId"], GRACE);

    // "Returns a list of active users": a deactivated account is not found, getAllUsers lists it.
    sim.seed(json!({"jira": {"users": [{"emailAddress": "off@example.com", "active": false}]}})).await;
    assert_eq!(get(&sim, "/user/search?query=off@example.com").await.body, json!([]));
    let all = get(&sim, "/users/search").await.body;
    let off = all.as_array().unwrap().iter().find(|u| u["emailAddress"] == "off@example.com").unwrap();
    assert_eq!(off["active"], false);

    // Every account type, and an app has no address at all.
    let all = get(&sim, "/users/search").await.body;
    let types: Vec<&str> = all.as_array().unwrap().iter().map(|u| u["accountType"].as_str().unwrap()).collect();
    assert!(types.contains(&"app") && types.contains(&"customer") && types.contains(&"atlassian"), "{types:?}");
    let app = all.as_array().unwrap().iter().find(|u| u["accountType"] == "app").unwrap();
    assert!(app.get("emailAddress").is_none());
    // The simulator's own state always shows the real address.
    assert_eq!(user_in_state(&sim.state().await, HIDDEN)["emailAddress"], "alex.private@example.com");
}

#[tokio::test]
async fn offset_pagination_defaults_to_50_clamps_at_1000_and_group_members_take_at_most_50() {
    let sim = TestSim::start().await;
    let users: Vec<Value> = (0..1100)
        .map(|i| json!({"emailAddress": format!("u{i:04}@bulk.example"), "displayName": format!("Bulk {i}")}))
        .collect();
    sim.seed(json!({"jira": {"users": users}})).await;
    let total = 1100 + 5;
    assert_eq!(get(&sim, "/users/search").await.body.as_array().unwrap().len(), 50);
    assert_eq!(get(&sim, "/users/search?maxResults=5000").await.body.as_array().unwrap().len(), 1000);
    let last = get(&sim, "/users/search?startAt=1000&maxResults=1000").await.body;
    assert_eq!(last.as_array().unwrap().len(), total - 1000);
    let a = get(&sim, "/users/search?startAt=10&maxResults=3").await.body;
    let b = get(&sim, "/users/search?startAt=12&maxResults=1").await.body;
    assert_eq!(a[2]["accountId"], b[0]["accountId"], "pages are stable");
    assert_eq!(get(&sim, "/users/search?startAt=99999").await.body, json!([]));
    assert_eq!(get(&sim, "/users/search?maxResults=-1").await.status, StatusCode::BAD_REQUEST);
    assert_eq!(get(&sim, "/users/search?startAt=ten").await.status, StatusCode::BAD_REQUEST);
    // u0000..u1099: a prefix of 1100 addresses, served up to the thousandth.
    let search = get(&sim, "/user/search?query=u0&maxResults=1000").await.body;
    assert_eq!(search.as_array().unwrap().len(), 1000);

    // Group listings are page beans.
    let page = get(&sim, "/group/bulk?maxResults=2").await.body;
    assert_eq!(
        (page["total"].clone(), page["isLast"].clone(), page["maxResults"].clone()),
        (json!(5), json!(false), json!(2))
    );
    assert_eq!(page["values"].as_array().unwrap().len(), 2);
    let end = get(&sim, "/group/bulk?startAt=4&maxResults=2").await.body;
    assert_eq!(end["isLast"], true);
    let one = get(
        &sim,
        &format!("/group/bulk?groupId={SOFTWARE_USERS_GROUP_ID}&groupId=0b5e1d2c-0000-4000-8000-000000000000"),
    )
    .await
    .body;
    assert_eq!(one["total"], 1, "unknown ids are simply not returned");
    assert_eq!(one["values"][0]["name"], "jira-software-users");
    let members = get(&sim, &format!("/group/member?groupId={SOFTWARE_USERS_GROUP_ID}&maxResults=1")).await.body;
    assert_eq!(members["total"], 3);
    assert_eq!(members["isLast"], false);
    let next = members["nextPage"].as_str().unwrap();
    assert!(next.ends_with(&format!("groupId={SOFTWARE_USERS_GROUP_ID}&startAt=1&maxResults=1")), "{next}");
    // UserDetails: no `locale`, unlike a User.
    assert!(members["values"][0].get("locale").is_none(), "{}", members["values"][0]);

    // getUsersFromGroup: "number should be between 1 and 50".
    let fifty = get(&sim, &format!("/group/member?groupId={SOFTWARE_USERS_GROUP_ID}&maxResults=50")).await;
    assert_eq!(fifty.status, StatusCode::OK);
    assert_eq!(fifty.body["maxResults"], 50);
    for bad in ["51", "1000", "0"] {
        let r = get(&sim, &format!("/group/member?groupId={SOFTWARE_USERS_GROUP_ID}&maxResults={bad}")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "maxResults={bad}");
        assert!(r.body["errorMessages"][0].as_str().unwrap().contains("between 1 and 50"), "{}", r.body);
        assert!(r.body["errors"].is_object());
    }
    let r = get(&sim, &format!("/group/member?groupId={SOFTWARE_USERS_GROUP_ID}&includeInactiveUsers=yes")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a boolean");
}

/// 120 members of one group: three pages of at most 50, the last one saying so.
#[tokio::test]
async fn a_group_of_120_is_three_pages_of_50() {
    let sim = TestSim::start().await;
    let gid = "5d6e7f80-1111-4222-8333-944455556666";
    let users: Vec<Value> =
        (0..120).map(|i| json!({"emailAddress": format!("m{i:03}@example.com"), "groups": [gid]})).collect();
    sim.seed(json!({"jira": {"groups": [{"name": "big", "groupId": gid}], "users": users}})).await;
    let mut seen = 0;
    for (start, want, last) in [(0, 50, false), (50, 50, false), (100, 20, true)] {
        let page =
            get(&sim, &format!("/group/member?groupId={gid}&includeInactiveUsers=true&startAt={start}&maxResults=50"))
                .await
                .body;
        assert_eq!(page["values"].as_array().unwrap().len(), want);
        assert_eq!((page["isLast"].clone(), page["total"].clone()), (json!(last), json!(120)));
        assert_eq!(page.get("nextPage").is_some(), !last);
        seen += want;
    }
    assert_eq!(seen, 120);
}

#[tokio::test]
async fn create_user_grants_products_invites_and_answers_201_for_an_existing_user_with_access() {
    let sim = TestSim::start().await;
    // The definition's own example body.
    let body = json!({"emailAddress": "mia@example.com", "products": ["jira-software"]});
    let r = jira(&sim, Method::POST, "/user", ADMIN, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let id = r.body["accountId"].as_str().unwrap().to_string();
    assert_eq!(r.body["emailAddress"], "mia@example.com");
    // The answer counts groups and products without listing them.
    assert_eq!(r.body["groups"], json!({"size": 0, "items": []}));
    assert_eq!(r.body["applicationRoles"], json!({"size": 1, "items": []}));
    let r = get(&sim, &format!("/user?accountId={id}&expand=applicationRoles")).await;
    assert_eq!(r.body["applicationRoles"]["items"][0]["key"], "jira-software");

    // `displayName` is "no longer available": accepted, and the name is not taken from it.
    let named =
        json!({"emailAddress": "ada@example.com", "displayName": "Ada Lovelace", "products": ["jira-software"]});
    let r = jira(&sim, Method::POST, "/user", ADMIN, Some(named)).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["displayName"], "ada", "the person names themself when they accept the invitation");

    // "If the user exists and has access to Jira, the operation returns a 201": the same
    // account, whatever the case of the address, hidden or not; nothing changes, no invitation.
    let again = json!({"emailAddress": "MIA@example.com", "products": ["jira-servicedesk"]});
    let r = jira(&sim, Method::POST, "/user", ADMIN, Some(again)).await;
    assert_eq!((r.status, r.body["accountId"].clone()), (StatusCode::CREATED, json!(id)));
    let r = get(&sim, &format!("/user?accountId={id}&expand=applicationRoles")).await;
    assert_eq!(r.body["applicationRoles"]["size"], 1, "products unchanged: {}", r.body);
    let hidden = json!({"emailAddress": "alex.private@example.com", "products": []});
    let r = jira(&sim, Method::POST, "/user", ADMIN, Some(hidden)).await;
    assert_eq!((r.status, r.body["accountId"].clone()), (StatusCode::CREATED, json!(HIDDEN)));
    assert!(r.body.get("emailAddress").is_none(), "still hidden: {}", r.body);
    // "If the user exists but does not have access to Jira, … a 400": here, no product.
    sim.seed(json!({"jira": {"users": [{"emailAddress": "noproduct@example.com", "products": []}]}})).await;
    let r = jira(
        &sim,
        Method::POST,
        "/user",
        ADMIN,
        Some(json!({"emailAddress": "noproduct@example.com", "products": ["jira-software"]})),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["errorMessages"][0].as_str().unwrap().contains("does not have access to Jira"), "{}", r.body);

    // NewUserDetails: emailAddress and products required, products valid keys, nothing else.
    let r = jira(&sim, Method::POST, "/user", ADMIN, Some(json!({"emailAddress": "b@example.com"}))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["errorMessages"], json!([]));
    assert!(r.body["errors"]["products"].is_string(), "{}", r.body);
    let bad = json!({"emailAddress": "b@example.com", "products": ["jira-rocket"]});
    let r = jira(&sim, Method::POST, "/user", ADMIN, Some(bad)).await;
    assert!(r.body["errors"]["products"].as_str().unwrap().contains("jira-rocket"));
    let bad = json!({"emailAddress": "not-an-address", "products": []});
    assert!(jira(&sim, Method::POST, "/user", ADMIN, Some(bad)).await.body["errors"]["emailAddress"].is_string());
    for off in [
        json!({"emailAddress": "b@example.com", "products": [], "groups": ["x"]}),
        json!({"emailAddress": "b@example.com", "products": [], "name": "b"}),
        json!({"emailAddress": "b@example.com", "products": "jira-software"}),
        json!({"emailAddress": 7, "products": []}),
    ] {
        let r = jira(&sim, Method::POST, "/user", ADMIN, Some(off.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{off}");
        assert!(r.body["errorMessages"].is_array() && r.body["errors"].is_object(), "{}", r.body);
    }
    let r = jira(&sim, Method::POST, "/user?notify=true", ADMIN, Some(body)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "createUser takes no query parameter");

    let state = sim.state().await;
    assert_eq!(actions(&state), ["user.create", "user.create"], "a 201 for an existing user changes nothing");
    let invitations = jira_state(&state)["invitations"].as_array().unwrap();
    assert_eq!(invitations.len(), 2);
    assert_eq!(invitations[0]["accountId"], id.as_str());
}

#[tokio::test]
async fn delete_user_removes_site_access_not_the_account_and_refuses_scim_managed_users() {
    let sim = TestSim::start().await;
    let r = jira(&sim, Method::DELETE, &format!("/user?accountId={GRACE}"), ADMIN, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "Grace is managed by the SCIM directory");
    assert!(r.body["errorMessages"][0].as_str().unwrap().contains("SCIM"));

    let created = sim
        .seed(json!({"jira": {"users": [{"emailAddress": "temp@example.com", "products": ["jira-software"],
                                         "groups": [SOFTWARE_USERS_GROUP_ID]}]}}))
        .await;
    let id = created["jira"]["users"][0]["accountId"].as_str().unwrap().to_string();
    let r = jira(&sim, Method::DELETE, &format!("/user?accountId={id}"), ADMIN, None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(get(&sim, &format!("/user?accountId={id}")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&sim, "/user/search?query=temp@example.com").await.body, json!([]));
    let state = sim.state().await;
    let user = user_in_state(&state, &id);
    assert_eq!((user["siteAccess"].clone(), user["groups"].clone()), (json!(false), json!([])));
    assert_eq!(jira(&sim, Method::DELETE, &format!("/user?accountId={id}"), ADMIN, None).await.status, 404);

    // The account remains: getAllUsers lists it ("previously deleted users"), inactive, and
    // POST /user refuses it ("exists but does not have access to Jira").
    let all = get(&sim, "/users/search").await.body;
    let listed = all.as_array().unwrap().iter().find(|u| u["accountId"] == id.as_str()).expect("still listed");
    assert_eq!(listed["active"], false);
    let body = json!({"emailAddress": "temp@example.com", "products": ["jira-software"]});
    let r = jira(&sim, Method::POST, "/user", ADMIN, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body["errorMessages"][0].as_str().unwrap().contains("does not have access"), "{}", r.body);
    assert_eq!(actions(&sim.state().await), ["user.delete"]);
    // An admin gives it access again (admin.atlassian.com; `grantAccess` plays that): same account.
    let granted = sim
        .seed(json!({"jira": {"grantAccess": [{"emailAddress": "temp@example.com", "products": ["jira-software"]}]}}))
        .await;
    assert_eq!(granted["jira"]["granted"][0]["accountId"], id.as_str());
    assert_eq!(get(&sim, &format!("/user?accountId={id}")).await.body["active"], true);
    let r = jira(&sim, Method::POST, "/user", ADMIN, Some(body)).await;
    assert_eq!((r.status, r.body["accountId"].clone()), (StatusCode::CREATED, json!(id)));
    let bad = sim
        .control_raw(
            Method::POST,
            "/_sim/seed",
            Some(json!({"jira": {"grantAccess": [{"emailAddress": "nobody@example.com"}]}})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    let me = jira(&sim, Method::DELETE, &format!("/user?accountId={ADMIN_ACCOUNT_ID}"), ADMIN, None).await;
    assert_eq!(me.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn groups_are_addressed_by_id_or_by_groupname_never_both() {
    let sim = TestSim::start().await;
    let created = sim.seed(json!({"jira": {"users": [{"emailAddress": "g@example.com"}]}})).await;
    let id = created["jira"]["users"][0]["accountId"].as_str().unwrap().to_string();
    let body = json!({ "accountId": id });

    let r = jira(&sim, Method::POST, "/group/user?groupId=jira-software-users", ADMIN, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "a name where an id is expected");
    assert!(r.body["errorMessages"][0].as_str().unwrap().contains(SOFTWARE_USERS_GROUP_ID));
    let r =
        jira(&sim, Method::POST, "/group/user?groupId=0b5e1d2c-0000-4000-8000-000000000000", ADMIN, Some(body.clone()))
            .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let both = format!("/group/user?groupId={SOFTWARE_USERS_GROUP_ID}&groupname=jira-software-users");
    let r = jira(&sim, Method::POST, &both, ADMIN, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "groupname cannot be used with groupId");
    // `groupName` is bulkGetGroups' parameter, not addUserToGroup's (`groupname`).
    let r = jira(&sim, Method::POST, "/group/user?groupName=jira-software-users", ADMIN, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for off in [json!({"accountId": id, "role": "x"}), json!({"name": "g"}), json!({})] {
        let path = format!("/group/user?groupId={SOFTWARE_USERS_GROUP_ID}");
        let r = jira(&sim, Method::POST, &path, ADMIN, Some(off.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{off}");
    }

    let path = format!("/group/user?groupId={SOFTWARE_USERS_GROUP_ID}");
    let r = jira(&sim, Method::POST, &path, ADMIN, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.body["groupId"], SOFTWARE_USERS_GROUP_ID);
    assert_eq!(r.body["name"], "jira-software-users");
    let r = jira(&sim, Method::POST, &path, ADMIN, Some(body.clone())).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "already a member");
    let groups = get(&sim, &format!("/user/groups?accountId={id}")).await.body;
    assert_eq!(
        groups,
        json!([{"name": "jira-software-users", "groupId": SOFTWARE_USERS_GROUP_ID,
                               "self": format!("https://sim.atlassian.net/rest/api/3/group?groupId={SOFTWARE_USERS_GROUP_ID}")}])
    );

    let del = format!("/group/user?groupId={SOFTWARE_USERS_GROUP_ID}&accountId={id}");
    let r = jira(&sim, Method::DELETE, &del, ADMIN, None).await;
    assert_eq!((r.status, r.body.clone()), (StatusCode::OK, Value::Null), "200, no body (the definition gives none)");
    assert_eq!(jira(&sim, Method::DELETE, &del, ADMIN, None).await.status, StatusCode::BAD_REQUEST, "not a member");
    assert_eq!(get(&sim, &format!("/user/groups?accountId={id}")).await.body, json!([]));
    // By name, as the definition allows ("use of groupId is recommended").
    let by_name = "/group/user?groupname=jira-software-users";
    assert_eq!(jira(&sim, Method::POST, by_name, ADMIN, Some(body.clone())).await.status, StatusCode::CREATED);
    let del = format!("{by_name}&accountId={id}");
    assert_eq!(jira(&sim, Method::DELETE, &del, ADMIN, None).await.status, StatusCode::OK);

    let state = sim.state().await;
    assert_eq!(actions(&state), ["group.add", "group.remove", "group.add", "group.remove"]);
    let entry = &jira_state(&state)["log"][0];
    assert_eq!(
        (entry["group_id"].as_str(), entry["account_id"].as_str()),
        (Some(SOFTWARE_USERS_GROUP_ID), Some(id.as_str()))
    );
}

/// `groupId` is nullable in GroupName, GroupDetails and Group: a group Jira shows without one
/// is listed with `groupId: null`, and can be addressed by name only.
#[tokio::test]
async fn a_group_may_show_a_null_group_id() {
    let sim = TestSim::start().await;
    let key = "7a7a7a7a-0000-4000-8000-000000000001";
    let seeded = sim
        .seed(json!({"jira": {
            "groups": [{"name": "legacy-group", "groupId": key, "nullGroupId": true}],
            "users": [{"emailAddress": "old@example.com", "groups": [key]}]
        }}))
        .await;
    assert_eq!(seeded["jira"]["groups"][0]["nullGroupId"], true);
    let id = seeded["jira"]["users"][0]["accountId"].as_str().unwrap().to_string();
    let page = get(&sim, "/group/bulk?maxResults=1000").await.body;
    let legacy = page["values"].as_array().unwrap().iter().find(|g| g["name"] == "legacy-group").unwrap();
    assert_eq!(legacy, &json!({"name": "legacy-group", "groupId": null}));
    let groups = get(&sim, &format!("/user/groups?accountId={id}")).await.body;
    assert!(groups[0]["groupId"].is_null(), "{groups}");
    assert_eq!(get(&sim, &format!("/group/member?groupId={key}")).await.status, StatusCode::NOT_FOUND);
    let members = get(&sim, "/group/member?groupname=legacy-group").await.body;
    assert_eq!(members["values"][0]["accountId"], id.as_str());
    assert_eq!(get(&sim, &format!("/group/bulk?groupId={key}")).await.body["total"], 0);
}

#[tokio::test]
async fn every_answer_carries_rate_limit_headers_and_a_429_says_retry_after_in_seconds() {
    let sim = TestSim::start().await;
    sim.control(
        Method::POST,
        "/_sim/config",
        Some(json!({"jira": {"rate_limit": {"requests": 3, "window_ms": 60_000}}})),
    )
    .await;
    for (left, near) in [(2, "false"), (1, "false"), (0, "true")] {
        let r = get(&sim, "/myself").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.header_i64("x-ratelimit-limit"), 3);
        assert_eq!(r.header_i64("x-ratelimit-remaining"), left);
        assert_eq!(header(&r, "x-ratelimit-nearlimit"), near);
    }
    let r = get(&sim, "/myself").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    let wait = r.header_i64("retry-after");
    assert!((1..=60).contains(&wait), "seconds, not a timestamp: {wait}");
    let reset = header(&r, "x-ratelimit-reset");
    assert!(chrono::DateTime::parse_from_rfc3339(reset).is_ok(), "an ISO 8601 timestamp: {reset}");
    assert_eq!(header(&r, "ratelimit-reason"), "jira-burst-based");
    assert!(r.body["errorMessages"].is_array());

    // The wait can be set outright; another credential has its own budget.
    sim.control(Method::POST, "/_sim/config", Some(json!({"jira": {"retry_after_secs": 7}}))).await;
    assert_eq!(get(&sim, "/myself").await.header_i64("retry-after"), 7);
    sim.seed(json!({"jira": {"users": [{"emailAddress": "r@example.com", "apiToken": "r-token"}]}})).await;
    assert_eq!(jira(&sim, Method::GET, "/myself", Auth::Bearer("r-token"), None).await.status, StatusCode::OK);

    // An injected 429 looks the same.
    sim.control(Method::POST, "/_sim/config", Some(json!({"jira": {"rate_limit": {"enabled": false}}}))).await;
    sim.fault(json!({"vendor": "jira", "path": "/user/search", "kind": "status", "status": 429})).await;
    let r = get(&sim, "/user/search?query=grace").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.header_i64("retry-after"), 7);
    assert!(r.headers.contains_key("x-ratelimit-reset"));
    assert_eq!(get(&sim, "/user/search?query=grace").await.status, StatusCode::OK);

    let state = sim.state().await;
    assert_eq!(jira_state(&state)["counters"]["rate_limited"], 3);
    let config = sim.control(Method::GET, "/_sim/config", None).await;
    assert_eq!(config["jira"]["retry_after_secs"], 7);
    let bad = sim.control_raw(Method::POST, "/_sim/config", Some(json!({"jira": {"retry_after_secs": 0}}))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_scim_directory_finds_by_user_name_and_deactivates_without_deleting() {
    let sim = TestSim::start().await;
    let token = Some(DEFAULT_SCIM_TOKEN);
    assert_eq!(scim(&sim, Method::GET, "/Users", None, None).await.status, StatusCode::UNAUTHORIZED);
    let r = scim(&sim, Method::GET, "/Users", Some(DEFAULT_ADMIN_TOKEN), None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "the Jira token is not the directory's");
    // The definition's 401 is a `Failure`.
    assert!(r.body["error"].is_string() && r.body["traceId"].is_string(), "{}", r.body);
    let url = format!("{}{SCIM_MOUNT}/directory/another/Users", sim.running.url());
    let other = into_reply(sim.http.get(url).bearer_auth(DEFAULT_SCIM_TOKEN).send().await.unwrap()).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);

    sim.seed(json!({"jira": {"users": [
        {"emailAddress": "m1@example.com", "scimManaged": true},
        {"emailAddress": "m2@example.com", "scimManaged": true, "emailVisible": false}
    ]}}))
    .await;
    let all = scim(&sim, Method::GET, "/Users?startIndex=1&count=2", token, None).await.body;
    assert_eq!((all["totalResults"].clone(), all["itemsPerPage"].clone()), (json!(3), json!(2)));
    let rest = scim(&sim, Method::GET, "/Users?startIndex=3&count=2", token, None).await.body;
    assert_eq!(rest["Resources"].as_array().unwrap().len(), 1);

    // The directory shows the address Jira hides.
    let r = scim(&sim, Method::GET, "/Users?filter=userName%20eq%20%22M2@example.com%22", token, None).await;
    assert_eq!(r.body["totalResults"], 1);
    let m2 = &r.body["Resources"][0];
    assert_eq!(m2["userName"], "m2@example.com");
    // Atlassian's extension, exactly: `urn:scim:schemas:extension:atlassian-external:1.0`.
    let ext = "urn:scim:schemas:extension:atlassian-external:1.0";
    assert_eq!(m2["schemas"], json!(["urn:ietf:params:scim:schemas:core:2.0:User", ext]));
    assert!(m2.get("urn:scim:schemas:extension:atlassian-external:2.0:User").is_none());
    assert_eq!(m2["meta"]["resourceType"], "USER", "ScimMetadata's enum");
    let account = m2[ext]["atlassianAccountId"].as_str().unwrap().to_string();
    let scim_id = m2["id"].as_str().unwrap().to_string();
    assert!(get(&sim, &format!("/user?accountId={account}")).await.body.get("emailAddress").is_none());
    let r = scim(&sim, Method::GET, "/Users?filter=displayName%20co%20%22m%22", token, None).await;
    assert_eq!((r.status, r.body["scimType"].clone()), (StatusCode::BAD_REQUEST, json!("invalidFilter")));

    let deactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "replace", "path": "active", "value": false}]});
    let r = scim(&sim, Method::PATCH, &format!("/Users/{scim_id}"), token, Some(deactivate.clone())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["active"], false);
    let user = get(&sim, &format!("/user?accountId={account}")).await;
    assert_eq!(
        (user.status, user.body["active"].clone()),
        (StatusCode::OK, json!(false)),
        "inactive, still on the site"
    );
    // Identity providers also send the value-object form with "False"/"True" strings.
    let reactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "Operations": [{"op": "Replace", "value": {"active": "True"}}]});
    let r = scim(&sim, Method::PATCH, &format!("/Users/{scim_id}"), token, Some(reactivate)).await;
    assert_eq!(r.body["active"], true);
    // The definition's spelling, `operations`, is the same attribute (RFC 7643 §2.1).
    let lower = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                       "operations": [{"op": "replace", "path": "Active", "value": false}]});
    let r = scim(&sim, Method::PATCH, &format!("/Users/{scim_id}"), token, Some(lower)).await;
    assert_eq!((r.status, r.body["active"].clone()), (StatusCode::OK, json!(false)));
    let reactivate = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                            "operations": [{"op": "replace", "path": "active", "value": true}]});
    assert_eq!(
        scim(&sim, Method::PATCH, &format!("/Users/{scim_id}"), token, Some(reactivate)).await.body["active"],
        true
    );
    let patch_op = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
    let off = |v: Value| v;
    for bad in [
        off(json!({"Operations": [{"op": "replace", "path": "active", "value": false}]})),
        off(json!({"schemas": [patch_op]})),
        off(json!({"schemas": [patch_op], "ops": [{"op": "replace", "path": "active", "value": false}]})),
        off(json!({"schemas": [patch_op], "Operations": [{"op": "replace", "path": "active", "value": false}],
                   "operations": [{"op": "replace", "path": "active", "value": true}]})),
        off(
            json!({"schemas": [patch_op], "Operations": [{"op": "replace", "path": "active", "value": false, "extra": 1}]}),
        ),
        off(json!({"schemas": [patch_op], "Operations": [{"op": "replace", "path": "colour", "value": "blue"}]})),
        off(json!({"schemas": [patch_op], "Operations": [{"op": "replace", "path": "active", "value": "maybe"}]})),
    ] {
        let r = scim(&sim, Method::PATCH, &format!("/Users/{scim_id}"), token, Some(bad.clone())).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error", "{}", r.body);
    }
    // A valid attribute the simulator does not keep: not simulated, not refused.
    let title = json!({"schemas": [patch_op], "Operations": [{"op": "replace", "path": "title", "value": "CTO"}]});
    let r = scim(&sim, Method::PATCH, &format!("/Users/{scim_id}"), token, Some(title)).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    // Query parameters: the definition's, and only them.
    let r = scim(
        &sim,
        Method::GET,
        &format!("/Users/{scim_id}?attributes=userName,urn:scim:schemas:extension:atlassian-external:1.0"),
        token,
        None,
    )
    .await;
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 4, "id, schemas, userName, the extension: {keys:?}");
    assert_eq!(r.body[ext]["atlassianAccountId"], account.as_str());
    let r = scim(
        &sim,
        Method::GET,
        "/Users?excludedAttributes=emails,meta&filter=userName%20eq%20%22m1@example.com%22",
        token,
        None,
    )
    .await;
    assert!(r.body["Resources"][0].get("emails").is_none() && r.body["Resources"][0]["userName"] == "m1@example.com");
    for bad in ["/Users?attributes=userName&excludedAttributes=emails", "/Users?sortBy=userName", "/Users/x?count=1"] {
        let r = scim(&sim, Method::GET, bad, token, None).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
    }
    assert_eq!(
        scim(&sim, Method::GET, "/Users?filter=externalId%20eq%20%2200u1%22", token, None).await.body["totalResults"],
        0
    );
    assert_eq!(scim(&sim, Method::GET, "/Nothing", token, None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(scim(&sim, Method::GET, "/Users/nope", token, None).await.status, StatusCode::NOT_FOUND);

    // Faults reach the SCIM mount with paths relative to it.
    sim.fault(json!({"vendor": "jira", "method": "PATCH", "path": "/directory/*/Users/*", "kind": "apply_then_fail", "status": 502}))
        .await;
    let r = scim(&sim, Method::PATCH, &format!("/Users/{scim_id}"), token, Some(deactivate)).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.body["status"], "502", "in SCIM's error format");
    let state = sim.state().await;
    assert_eq!(user_in_state(&state, &account)["active"], false, "applied, then failed");
    assert_eq!(user_in_state(&state, &account)["siteAccess"], true);
    assert_eq!(
        actions(&state),
        [
            "scim.user.deactivate",
            "scim.user.activate",
            "scim.user.deactivate",
            "scim.user.activate",
            "scim.user.deactivate"
        ]
    );
    let calls = sim.control(Method::GET, "/_sim/calls?vendor=jira", None).await;
    let last = calls["calls"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["path"], format!("/directory/{DEFAULT_DIRECTORY_ID}/Users/{scim_id}"));
    assert_eq!(last["fault"], "apply_then_fail");
}

#[tokio::test]
async fn seeds_name_groups_by_id_and_reset_keeps_only_the_admin() {
    let sim = TestSim::start().await;
    let created = sim
        .seed(json!({"jira": {
            "groups": [{"name": "support", "groupId": "5d6e7f80-1111-4222-8333-944455556666"}],
            "users": [{"emailAddress": "s@example.com", "groups": ["5d6e7f80-1111-4222-8333-944455556666"], "siteAdmin": false}]
        }}))
        .await;
    assert_eq!(created["jira"]["groups"][0]["name"], "support");
    assert_eq!(created["jira"]["users"][0]["groups"], json!(["5d6e7f80-1111-4222-8333-944455556666"]));
    for bad in [
        json!({"jira": {"users": [{"emailAddress": "t@example.com", "groups": ["support"]}]}}),
        json!({"jira": {"users": [{"emailAddress": "grace@example.com"}]}}),
        json!({"jira": {"users": [{"emailAddress": "t@example.com", "colour": "blue"}]}}),
        json!({"jira": {"groups": [{"name": "SUPPORT"}]}}),
    ] {
        assert_eq!(sim.control_raw(Method::POST, "/_sim/seed", Some(bad.clone())).await.status, 400, "{bad}");
    }
    sim.control(Method::POST, "/_sim/reset", None).await;
    let state = sim.state().await;
    let users = jira_state(&state)["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["accountId"], ADMIN_ACCOUNT_ID);
    assert_eq!(jira_state(&state)["groups"], json!([]));
    assert_eq!(get(&sim, "/myself").await.status, StatusCode::OK, "the admin token still works");
}

/// What the workflows look people and groups up with: one search finds an address among a
/// thousand people (exactly the accounts whose name or address contains it), and `/group/bulk`
/// without a `groupId` lists every group (the catalogue a worker keeps).
#[tokio::test]
async fn one_search_finds_an_address_among_a_thousand_and_bulk_lists_every_group() {
    let sim = TestSim::start().await;
    let users: Vec<Value> = (0..1000)
        .map(|i| json!({"emailAddress": format!("person{i}@example.com"), "displayName": format!("Person {i}")}))
        .collect();
    sim.seed(json!({"jira": {"users": users}})).await;
    let found = get(&sim, "/user/search?query=person417@example.com&maxResults=1000").await.body;
    let found = found.as_array().unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["emailAddress"], "person417@example.com");
    // Without case; a prefix of several addresses finds each of them, and only them.
    let found = get(&sim, "/user/search?query=PERSON41&maxResults=1000").await.body;
    assert_eq!(found.as_array().unwrap().len(), 11, "person41 and person410..=person419");
    assert_eq!(get(&sim, "/user/search?query=nobody@example.com").await.body, json!([]));

    let all = get(&sim, "/group/bulk?startAt=0&maxResults=1000").await.body;
    assert_eq!((all["total"].clone(), all["isLast"].clone()), (json!(5), json!(true)));
    let ids: Vec<&str> = all["values"].as_array().unwrap().iter().map(|g| g["groupId"].as_str().unwrap()).collect();
    assert!(ids.contains(&SOFTWARE_USERS_GROUP_ID), "{ids:?}");
}

/// Each operation takes the query parameters its definition lists, and nothing else; an
/// unknown path is Jira's 404. Requests shaped as the definition's examples are served.
#[tokio::test]
async fn each_operation_takes_its_own_parameters_and_an_unknown_path_is_a_404() {
    let sim = TestSim::start().await;
    let served = [
        format!("/user?accountId={GRACE}&expand=groups,applicationRoles"),
        "/myself?expand=groups".to_string(),
        "/user/search?query=query&startAt=0&maxResults=50".to_string(),
        "/users/search?startAt=0&maxResults=1000".to_string(),
        format!("/user/groups?accountId={GRACE}"),
        format!("/group/bulk?groupId={SOFTWARE_USERS_GROUP_ID}&groupName=jira-admins&startAt=0&maxResults=10"),
        "/group/bulk?accessType=site-admin&applicationKey=jira-software".to_string(),
        format!("/group/member?groupId={SOFTWARE_USERS_GROUP_ID}&includeInactiveUsers=false&startAt=0&maxResults=2"),
    ];
    for path in &served {
        let r = get(&sim, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    }
    let refused = [
        format!("/user?accountId={GRACE}&includeDeleted=true"),
        "/myself?accountId=x".to_string(),
        "/user/search?query=grace&limit=10".to_string(),
        "/users/search?query=grace".to_string(),
        format!("/user/groups?accountId={GRACE}&startAt=0"),
        "/group/bulk?groupid=x".to_string(),
        "/group/bulk?accessType=owner".to_string(),
        "/group/bulk?applicationKey=confluence".to_string(),
        format!("/group/member?groupId={SOFTWARE_USERS_GROUP_ID}&expand=users"),
        "/user/search?property=nonsense".to_string(),
    ];
    for path in &refused {
        let r = get(&sim, path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.body);
        assert!(r.body["errorMessages"].is_array() && r.body["errors"].is_object(), "{path}: {}", r.body);
    }
    let r = jira(&sim, Method::DELETE, &format!("/user?accountId={GRACE}&force=true"), ADMIN, None).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    for path in ["/users", "/user/bulk", "/group", "/rest/api/2/user"] {
        let r = get(&sim, path).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
        assert!(r.body["errorMessages"].is_array(), "{path}: {}", r.body);
    }
    assert_eq!(get(&sim, "/user/search?query=grace&username=grace").await.status, StatusCode::BAD_REQUEST);
}
